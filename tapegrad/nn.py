"""Neural nets on tapegrad Vars: micrograd's ``Module``, ``Neuron``, ``Layer``, ``MLP``,
plus the losses and optimisers that micrograd users otherwise write by hand.

>>> import random
>>> from tapegrad.nn import MLP, SGD, mse_loss
>>> model = MLP(3, [4, 4, 1], rng=random.Random(0))
>>> len(model.parameters())
41
>>> xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
>>> ys = [1.0, -1.0, -1.0, 1.0]
>>> opt = SGD(model.parameters(), lr=0.05)
>>> for step in range(3):
...     loss = mse_loss([model(x) for x in xs], ys)
...     opt.zero_grad()
...     loss.backward()
...     opt.step()

What is here
------------
* Models: :class:`Module` (``parameters()``, ``zero_grad()``, ``__call__`` ->
  ``forward``), :class:`Neuron`, :class:`Layer`, :class:`MLP` (micrograd's
  classes, with a choice of activation) and :class:`Linear` (a layer with no
  activation that always returns a list, as toygrad's and PyTorch's).
* Losses: :func:`mse_loss`, :func:`hinge_loss` (the SVM max-margin loss of
  micrograd's demo), :func:`bce_with_logits`, :func:`l2_penalty`, and
  :func:`accuracy` for ``+-1`` labels.
* Optimisers: :class:`SGD` (momentum, learning-rate schedule) and :class:`Adam`;
  :func:`linear_decay` is micrograd's demo schedule ``1.0 - 0.9 * k / 100``.

Choices, as in micrograd unless said otherwise
----------------------------------------------
* Weights start uniform in ``[-1, 1]``, biases at ``0``, drawn in parameter
  order (layer by layer, neuron by neuron, weights then nothing for the bias).
  Pass ``rng=random.Random(seed)`` for reproducible models; without it the
  ``random`` module's global generator is used, so ``random.seed`` works as
  with micrograd (and draws the very same weights as micrograd does).
* ``Layer`` and ``MLP`` return a single Var when the last layer has one
  neuron, a list otherwise (micrograd's convention). ``MLP`` uses its
  activation on hidden layers only; the last layer is linear unless
  ``out_activation`` says otherwise (the lecture's all-tanh network is
  ``MLP(3, [4, 4, 1], out_activation="tanh")``).
* Activations: ``"tanh"``, ``"relu"`` (``relu'(0) = 0``), ``"sigmoid"``,
  ``"linear"``, or any callable from a Var to a Var.

Cheap sums on the tape
----------------------
A neuron computes ``b + w0*x0 + w1*x1 + ...`` with :func:`tapegrad.math.dot`,
which records exactly what the loop ``acc = b; acc = acc + w*x`` records (one
``mul`` and one ``add`` entry per input, starting from the bias, so no
``0 + ...`` entry as with ``sum()``), without a Python operator call and a
Var per term: the demo's training step runs ~25% faster than with the loop
(measured paired in one process on the shared 2-core machine).
Means multiply by ``1 / n`` (a float fast path) instead of dividing.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from tapegrad import math as tmath
from tapegrad.engine import Var

__all__ = [
    "Module",
    "Neuron",
    "Layer",
    "Linear",
    "MLP",
    "ACTIVATIONS",
    "mse_loss",
    "hinge_loss",
    "bce_with_logits",
    "l2_penalty",
    "accuracy",
    "Optimizer",
    "SGD",
    "Adam",
    "linear_decay",
]

Scalar = Var | float
Activation = str | Callable[[Var], Var]
Schedule = Callable[[int], float]


def _linear(x: Var) -> Var:
    return x


def _sigmoid(x: Var) -> Var:
    return x.sigmoid()


def _tanh(x: Var) -> Var:
    return x.tanh()


def _relu(x: Var) -> Var:
    return x.relu()


#: The activations known by name; any callable from a Var to a Var works too.
ACTIVATIONS: dict[str, Callable[[Var], Var]] = {
    "tanh": _tanh,
    "relu": _relu,
    "sigmoid": _sigmoid,
    "linear": _linear,
}


def _activation(activation: Activation) -> tuple[str, Callable[[Var], Var] | None]:
    """The name and function of an activation; the function is None for linear."""
    if isinstance(activation, str):
        fn = ACTIVATIONS.get(activation)
        if fn is None:
            valid = ", ".join(repr(name) for name in ACTIVATIONS)
            raise ValueError(
                f"unknown activation {activation!r}; valid names are {valid}, or pass a callable"
            )
        return activation, (None if fn is _linear else fn)
    if callable(activation):
        return getattr(activation, "__name__", "custom"), activation
    raise TypeError(
        f"activation must be a name or a callable, not {type(activation).__name__}: {activation!r}"
    )


def _check_size(what: str, expected: int, x: Sequence[Scalar]) -> None:
    """ValueError naming the expected and actual input sizes."""
    try:
        n = len(x)
    except TypeError:
        raise TypeError(
            f"{what} takes a sequence of {expected} inputs (numbers or Vars), "
            f"not {type(x).__name__}: {x!r}"
        ) from None
    if n != expected:
        raise ValueError(f"{what} expects {expected} inputs, got {n}")


def _positive_int(what: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a positive int, got {n!r}")
    return n


def _dot(bias: Var, weights: Sequence[Var], x: Sequence[Scalar]) -> Var:
    """``bias + sum(w * x)`` as 2 entries per input; see the module docstring.

    :func:`tapegrad.math.dot` records the same entries as the loop
    ``acc = acc + w * x`` without an operator call and a Var per term.
    """
    out: Var = tmath.dot(weights, x, bias)
    return out


def _sum(terms: Sequence[Scalar]) -> Any:
    """Sum with ``len - 1`` add entries (``sum()`` would add ``0 + t0`` first)."""
    total: Any = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class Module:
    """Base class of models: ``parameters()``, ``zero_grad()``, and ``__call__``.

    ``__call__`` runs ``forward``. The default ``parameters()`` collects, in
    attribute order, the leaf Vars and sub-Modules found in the instance's
    attributes (directly or in lists and tuples), as PyTorch does, so a model
    built from layers needs no ``parameters()`` of its own:

    >>> class Model(Module):
    ...     def __init__(self):
    ...         self.hidden = Linear(2, 3)
    ...         self.out = Linear(3, 1)
    ...     def forward(self, x):
    ...         return self.out([h.relu() for h in self.hidden(x)])
    >>> len(Model().parameters())
    13
    """

    def parameters(self) -> list[Var]:
        """The trainable leaf Vars, each once, in a stable order."""
        seen: set[int] = set()
        found: list[Var] = []
        for value in vars(self).values():
            for p in _params_in(value):
                if id(p) not in seen:
                    seen.add(id(p))
                    found.append(p)
        return found

    def zero_grad(self) -> None:
        """Set ``.grad`` of every parameter to 0 (gradients add up otherwise)."""
        for p in self.parameters():
            p.grad = 0.0

    def with_parameters(self, values: Sequence[Scalar]) -> Module:
        """A copy of this model computing with ``values`` (floats or Vars) as its parameters.

        ``values`` follow the order of :meth:`parameters`. This is the model as
        a function of its parameters, for the transforms (like
        ``torch.func.functional_call``): ``grad(lambda p:
        loss(model.with_parameters(p)))(values)``, and ``jit`` of that. The
        copy's ``parameters()`` is empty when ``values`` are not leaves.

        >>> model = MLP(2, [1], activation="relu", rng=random.Random(0))
        >>> values = [p.data for p in model.parameters()]
        >>> twin = model.with_parameters([2.0 * v for v in values])
        >>> twin([1.0, 1.0]) == 2.0 * model([1.0, 1.0]).data  # floats in, a float out
        True
        """
        params = self.parameters()
        if len(values) != len(params):
            raise ValueError(
                f"with_parameters: {type(self).__name__} has {len(params)} parameters, "
                f"got {len(values)} values"
            )
        # deepcopy consults the memo first: each parameter becomes its value.
        memo: dict[int, Any] = {id(p): v for p, v in zip(params, values)}
        return copy.deepcopy(self, memo)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The model's computation; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} defines no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)


def _params_in(value: object) -> Iterator[Var]:
    """Leaf Vars and parameters of Modules in an attribute value (no recursion on Vars)."""
    if isinstance(value, Module):
        yield from value.parameters()
    elif isinstance(value, Var):
        if value.is_leaf:
            yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _params_in(item)


class Neuron(Module):
    """``activation(b + sum(w_i * x_i))`` with ``nin`` weights and a bias.

    >>> import random
    >>> n = Neuron(2, activation="linear", rng=random.Random(1))
    >>> n.w[0].data = 2.0; n.w[1].data = -1.0; n.b.data = 0.5
    >>> n([3.0, 4.0]).data
    2.5
    """

    def __init__(
        self, nin: int, activation: Activation = "tanh", rng: random.Random | None = None
    ) -> None:
        self.nin = _positive_int("nin", nin)
        self.activation, self._act = _activation(activation)
        uniform = rng.uniform if rng is not None else random.uniform
        self.w = [Var(uniform(-1.0, 1.0), label=f"w{i}") for i in range(nin)]
        self.b = Var(0.0, label="b")

    def forward(self, x: Sequence[Scalar]) -> Var:
        """The neuron's output for the inputs ``x`` (numbers or Vars)."""
        _check_size(repr(self), self.nin, x)
        act = _dot(self.b, self.w, x)
        fn = self._act
        return act if fn is None else fn(act)

    def __call__(self, x: Sequence[Scalar]) -> Var:
        return self.forward(x)

    def parameters(self) -> list[Var]:
        """The weights, then the bias."""
        return [*self.w, self.b]

    def __repr__(self) -> str:
        return f"Neuron({self.nin}, activation={self.activation!r})"


class Layer(Module):
    """``nout`` independent neurons on the same ``nin`` inputs.

    Returns a list of ``nout`` Vars, or a single Var when ``nout == 1``
    (micrograd's convention; :class:`Linear` always returns a list).
    """

    def __init__(
        self,
        nin: int,
        nout: int,
        activation: Activation = "tanh",
        rng: random.Random | None = None,
    ) -> None:
        self.nin = _positive_int("nin", nin)
        self.nout = _positive_int("nout", nout)
        self.neurons = [Neuron(nin, activation, rng) for _ in range(nout)]
        self.activation = self.neurons[0].activation

    def outputs(self, x: Sequence[Scalar]) -> list[Var]:
        """The outputs as a list, whatever ``nout`` is."""
        _check_size(repr(self), self.nin, x)
        outs = []
        for n in self.neurons:  # the checked size holds for every neuron
            act = _dot(n.b, n.w, x)
            fn = n._act
            outs.append(act if fn is None else fn(act))
        return outs

    def forward(self, x: Sequence[Scalar]) -> Var | list[Var]:
        """The outputs; a single Var when the layer has one neuron."""
        outs = self.outputs(x)
        return outs[0] if len(outs) == 1 else outs

    def __call__(self, x: Sequence[Scalar]) -> Var | list[Var]:
        return self.forward(x)

    def parameters(self) -> list[Var]:
        """Every neuron's parameters, neuron by neuron."""
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, activation={self.activation!r})"


class Linear(Layer):
    """A fully connected layer without activation that always returns a list.

    toygrad's (and PyTorch's) ``Linear(in_features, out_features)``.
    """

    def __init__(self, nin: int, nout: int, rng: random.Random | None = None) -> None:
        super().__init__(nin, nout, activation="linear", rng=rng)

    def forward(self, x: Sequence[Scalar]) -> list[Var]:
        """The ``nout`` outputs, as a list."""
        return self.outputs(x)

    def __call__(self, x: Sequence[Scalar]) -> list[Var]:
        return self.outputs(x)

    def __repr__(self) -> str:
        return f"Linear({self.nin}, {self.nout})"


class MLP(Module):
    """A multi-layer perceptron: ``nin`` inputs, one layer per entry of ``nouts``.

    Hidden layers use ``activation``; the last layer uses ``out_activation``,
    linear by default as in micrograd (the lecture's network, with tanh
    everywhere, is ``MLP(3, [4, 4, 1], out_activation="tanh")``). The output
    is a single Var when ``nouts[-1] == 1``, else a list.

    >>> len(MLP(3, [4, 4, 1]).parameters())  # 3*4+4 + 4*4+4 + 4*1+1
    41
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: Activation = "tanh",
        rng: random.Random | None = None,
        out_activation: Activation = "linear",
    ) -> None:
        self.nin = _positive_int("nin", nin)
        if isinstance(nouts, int) or not nouts:
            raise ValueError(f"nouts must be a non-empty list of layer sizes, got {nouts!r}")
        sizes = [nin, *(_positive_int("layer size", n) for n in nouts)]
        # Validate both activations before drawing any weight.
        self.activation, _ = _activation(activation)
        self.out_activation, _ = _activation(out_activation)
        last = len(nouts) - 1
        self.layers = [
            Layer(sizes[i], sizes[i + 1], activation if i < last else out_activation, rng)
            for i in range(len(nouts))
        ]

    def forward(self, x: Sequence[Scalar]) -> Var | list[Var]:
        """The network's output for the inputs ``x``."""
        _check_size(repr(self), self.nin, x)
        inputs: Sequence[Scalar] = x
        out: list[Var] = []
        for layer in self.layers:
            out = layer.outputs(inputs)
            inputs = out
        return out[0] if len(out) == 1 else out

    def __call__(self, x: Sequence[Scalar]) -> Var | list[Var]:
        return self.forward(x)

    def parameters(self) -> list[Var]:
        """Every layer's parameters, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        sizes = [layer.nout for layer in self.layers]
        extra = (
            "" if self.out_activation == "linear" else f", out_activation={self.out_activation!r}"
        )
        return f"MLP({self.nin}, {sizes}, activation={self.activation!r}{extra})"


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def _pairs(what: str, preds: Sequence[Any], targets: Sequence[Any]) -> int:
    n = len(preds)
    if n != len(targets):
        raise ValueError(f"{what}: {n} predictions but {len(targets)} targets")
    if n == 0:
        raise ValueError(f"{what}: no predictions")
    return n


def _reduce(what: str, terms: list[Any], reduction: str) -> Var:
    if reduction == "mean":
        total: Var = _sum(terms) * (1.0 / len(terms))
        return total
    if reduction == "sum":
        total = _sum(terms)
        return total
    raise ValueError(f"{what}: reduction must be 'mean' or 'sum', not {reduction!r}")


def mse_loss(preds: Sequence[Var], targets: Sequence[Scalar], reduction: str = "mean") -> Var:
    """Mean (or, with ``reduction="sum"``, total) of ``(pred - target) ** 2``.

    micrograd's lecture uses the sum: ``mse_loss(ypred, ys, reduction="sum")``.

    >>> from tapegrad import Var
    >>> mse_loss([Var(1.0), Var(3.0)], [0.0, 1.0]).data  # (1 + 4) / 2
    2.5
    """
    _pairs("mse_loss", preds, targets)
    terms = []
    for p, t in zip(preds, targets):
        d = p - t
        terms.append(d * d)  # one mul entry; ** 2 would go the generic pow path
    return _reduce("mse_loss", terms, reduction)


def hinge_loss(
    scores: Sequence[Var],
    labels: Sequence[float],
    margin: float = 1.0,
    reduction: str = "mean",
) -> Var:
    """The SVM max-margin loss ``relu(margin - label * score)``, labels ``+1``/``-1``.

    micrograd's demo loss (before its L2 term): ``(1 + -yi * scorei).relu()``.

    >>> from tapegrad import Var
    >>> hinge_loss([Var(0.5), Var(-2.0)], [1, -1]).data  # (0.5 + 0) / 2
    0.25
    """
    _pairs("hinge_loss", scores, labels)
    terms = [(s * -float(y) + margin).relu() for s, y in zip(scores, labels)]
    return _reduce("hinge_loss", terms, reduction)


def bce_with_logits(
    logits: Sequence[Var], targets: Sequence[float], reduction: str = "mean"
) -> Var:
    """Binary cross-entropy of ``sigmoid(logit)`` against targets in ``[0, 1]``.

    Computed as ``softplus(z) - t * z``, which equals
    ``-(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)))`` and never overflows
    (PyTorch's ``BCEWithLogitsLoss``).

    >>> import math
    >>> from tapegrad import Var
    >>> round(bce_with_logits([Var(0.0)], [1.0]).data, 12) == round(math.log(2), 12)
    True
    """
    _pairs("bce_with_logits", logits, targets)
    terms = []
    for z, t in zip(logits, targets):
        tv = float(t)
        if not 0.0 <= tv <= 1.0:
            raise ValueError(f"bce_with_logits: targets must be in [0, 1], got {t!r}")
        terms.append(z.softplus() - z * tv if tv else z.softplus())
    return _reduce("bce_with_logits", terms, reduction)


def l2_penalty(params: Iterable[Var], alpha: float) -> Var:
    """``alpha * sum(p * p)``: micrograd's demo regulariser (``alpha = 1e-4``)."""
    squares = [p * p for p in params]
    if not squares:
        raise ValueError("l2_penalty: no parameters")
    penalty: Var = _sum(squares) * alpha
    return penalty


def accuracy(scores: Sequence[Scalar], labels: Sequence[float]) -> float:
    """Fraction of ``+-1`` labels whose sign the score gets right (score 0 is -1)."""
    n = _pairs("accuracy", scores, labels)
    right = sum((float(y) > 0) == (s > 0) for s, y in zip(scores, labels))
    return right / n


# ---------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------


def linear_decay(start: float, end: float, steps: int) -> Schedule:
    """The learning rate ``start + (end - start) * k / steps`` at step ``k``.

    micrograd's demo uses ``1.0 - 0.9 * k / 100``, that is ``linear_decay(1.0, 0.1, 100)``.

    >>> linear_decay(1.0, 0.1, 100)(50)
    0.55
    """
    steps = _positive_int("steps", steps)

    def schedule(k: int) -> float:
        return start + (end - start) * k / steps

    return schedule


class Optimizer:
    """Common part of the optimisers: the parameter list, ``zero_grad``, the step count.

    ``lr`` is a float or a schedule, a function of the step number (0 for the
    first ``step()``) giving the learning rate.
    """

    def __init__(self, params: Iterable[Var], lr: float | Schedule) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: no parameters to optimise")
        for p in self.params:
            if not isinstance(p, Var):
                raise TypeError(f"{type(self).__name__}: parameters must be Vars, not {p!r}")
            if not p.is_leaf:
                raise ValueError(
                    f"{type(self).__name__}: parameters must be leaf Vars (made with Var(...)), "
                    f"not results of operations: {p!r}"
                )
        if not callable(lr):
            _non_negative("lr", lr)
        self.lr = lr
        self.steps = 0  # number of step() calls so far

    def current_lr(self) -> float:
        """The learning rate the next ``step()`` uses."""
        lr = self.lr
        return float(lr(self.steps)) if callable(lr) else float(lr)

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to 0."""
        for p in self.params:
            p.grad = 0.0

    def step(self) -> None:
        """Update the parameters from their ``.grad``; subclasses define it."""
        raise NotImplementedError


def _non_negative(what: str, x: float) -> float:
    v = float(x)
    if not v >= 0.0 or math.isinf(v):
        raise ValueError(f"{what} must be a finite number >= 0, got {x!r}")
    return v


class SGD(Optimizer):
    """Gradient descent ``p -= lr * g``, optionally with (heavy-ball) momentum.

    With ``momentum = mu`` it keeps a velocity per parameter, as PyTorch:
    ``v = mu * v + g; p -= lr * v``. ``weight_decay`` adds ``wd * p`` to ``g``.

    >>> from tapegrad import Var
    >>> p = Var(1.0); p.grad = 0.5
    >>> SGD([p], lr=0.1).step(); p.data
    0.95
    """

    def __init__(
        self,
        params: Iterable[Var],
        lr: float | Schedule = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        mu = _non_negative("momentum", momentum)
        if mu >= 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = mu
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.velocity = [0.0] * len(self.params)

    def step(self) -> None:
        """One update of every parameter."""
        lr = self.current_lr()
        mu = self.momentum
        wd = self.weight_decay
        if mu == 0.0 and wd == 0.0:
            for p in self.params:
                p.data -= lr * float(p.grad)
        else:
            vel = self.velocity
            for i, p in enumerate(self.params):
                g = float(p.grad) + wd * p.data
                v = mu * vel[i] + g  # v starts at 0, so the first v is g (as PyTorch)
                vel[i] = v
                p.data -= lr * v
        self.steps += 1


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, as ``torch.optim.Adam``.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1**t)``
    and ``v_hat = v / (1 - b2**t)``.

    >>> from tapegrad import Var
    >>> p = Var(1.0); p.grad = 4.0
    >>> Adam([p], lr=0.1).step(); round(p.data, 6)  # the first step is ~lr * sign(g)
    0.9
    """

    def __init__(
        self,
        params: Iterable[Var],
        lr: float | Schedule = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        b1, b2 = (float(b) for b in betas)
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {b!r}")
        self.betas = (b1, b2)
        self.eps = _non_negative("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)

    def step(self) -> None:
        """One update of every parameter."""
        lr = self.current_lr()
        b1, b2 = self.betas
        t = self.steps + 1
        c1 = 1.0 - b1**t
        c2 = 1.0 - b2**t
        eps = self.eps
        wd = self.weight_decay
        m, v = self.m, self.v
        for i, p in enumerate(self.params):
            g = float(p.grad) + wd * p.data
            m[i] = b1 * m[i] + (1.0 - b1) * g
            v[i] = b2 * v[i] + (1.0 - b2) * g * g
            p.data -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)
        self.steps = t
