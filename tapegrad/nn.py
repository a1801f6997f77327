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
* State, as in PyTorch: ``Module.named_parameters()``, ``state_dict()`` and
  ``load_state_dict()``, the same two for optimisers (step count, momentum,
  Adam's moments), and :func:`save` / :func:`load` to write and read them as
  JSON, floats bit for bit (docs/nn.md, "Saving and resuming training").

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
* The default activation is tanh (the lecture's); micrograd's ``nonlin=True``
  (ReLU) / ``nonlin=False`` (linear) works for ``Neuron`` and ``Layer``, and
  micrograd's ``MLP`` (ReLU hidden layers) is ``MLP(nin, nouts, activation="relu")``.

Cheap sums on the tape
----------------------
A neuron computes ``b + w0*x0 + w1*x1 + ...`` with :func:`tapegrad.math.dot`,
which records exactly what the loop ``acc = b; acc = acc + w*x`` records (one
``mul`` and one ``add`` entry per input, starting from the bias, so no
``0 + ...`` entry as with ``sum()``), without a Python operator call and a
Var per term: the demo's training step (100 points, ``MLP(2, [16, 16, 1])``)
takes 28.3 ms against 41.2 ms with the loop (medians, pyperf, paired).
Means multiply by ``1 / n`` (a float fast path) instead of dividing.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import numbers
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, Generic, Literal, cast, overload

from tapegrad import math as tmath
from tapegrad.engine import Var

#: What a model call returns: ``Var`` for one output, ``Any`` when the type
#: checker cannot see the number of outputs. A TypeVar default (PEP 696) makes
#: a bare ``Layer`` or ``MLP`` annotation mean ``Layer[Any]``; only type
#: checkers need it, and Python < 3.13's TypeVar takes no default.
if TYPE_CHECKING:
    from typing_extensions import TypeVar, Unpack

    Out = TypeVar("Out", default=Any)
else:
    from typing import TypeVar

    Out = TypeVar("Out")

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
    "save",
    "load",
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

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Var]]:
        """``(name, parameter)`` pairs, each parameter once, in :meth:`parameters`'s order.

        A name is the path of attributes and list positions that reaches the
        parameter, as in PyTorch: ``layers.0.neurons.3.w.1`` is weight 1 of
        neuron 3 of layer 0. A parameter held in two places gets the first
        name. ``prefix`` is put before every name.

        >>> model = MLP(2, [3, 1], rng=random.Random(0))
        >>> for name, p in list(model.named_parameters())[:4]:
        ...     print(name)
        layers.0.neurons.0.w.0
        layers.0.neurons.0.w.1
        layers.0.neurons.0.b
        layers.0.neurons.1.w.0
        >>> len(list(model.named_parameters())) == len(model.parameters()) == 13
        True

        The names come from the attributes, so a Module that overrides
        :meth:`parameters` with another order must override this method too.
        """
        seen: set[int] = set()
        for attribute, value in vars(self).items():
            for name, p in _named_params_in(value, prefix + attribute):
                if id(p) not in seen:
                    seen.add(id(p))
                    yield name, p

    def state_dict(self) -> dict[str, float]:
        """The parameters' values by name (see :meth:`named_parameters`), in order.

        A plain ``dict`` of floats: :func:`save` writes it as JSON, and
        :meth:`load_state_dict` of any model of the same architecture takes it.

        >>> neuron = Neuron(2, rng=random.Random(0))
        >>> neuron.w[0].data, neuron.w[1].data = 0.5, -0.25
        >>> neuron.state_dict()
        {'w.0': 0.5, 'w.1': -0.25, 'b': 0.0}
        """
        return {name: float(p.data) for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Set every parameter's ``.data`` from ``state`` (name to number), in place.

        The names must be exactly this model's: missing or unexpected names
        raise ``KeyError`` naming them, and a value that is not a real number
        (a str, ``None``, a Var, a bool) raises ``TypeError``; in both cases
        no parameter changes. ints become floats; ``inf`` and ``nan`` load as
        they are (a checkpoint keeps what training produced). Gradients are
        left alone, and the Vars stay the same objects, so an optimizer built
        over ``parameters()`` keeps working.

        >>> model = MLP(2, [1], rng=random.Random(0))
        >>> twin = MLP(2, [1], rng=random.Random(1))
        >>> twin.load_state_dict(model.state_dict())
        >>> twin([1.0, 2.0]).data == model([1.0, 2.0]).data
        True
        >>> Neuron(1).load_state_dict({'w.0': 1.0, 'bias': 0.0})
        Traceback (most recent call last):
        KeyError: "load_state_dict: Neuron(1, activation='tanh') is missing 'b'; and has no 'bias'"
        """
        if not isinstance(state, Mapping):
            raise TypeError(
                f"load_state_dict takes a mapping of parameter names to numbers "
                f"(what state_dict() returns), not {type(state).__name__}"
            )
        named = list(self.named_parameters())
        _check_keys(f"load_state_dict: {self!r}", [name for name, _ in named], state)
        values = [_real(f"load_state_dict: {name!r}", state[name]) for name, _ in named]
        for (_, p), value in zip(named, values):
            p.data = value

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


def _named_params_in(value: object, name: str) -> Iterator[tuple[str, Var]]:
    """``(name, leaf)`` pairs in an attribute value, as :func:`_params_in` finds them."""
    if isinstance(value, Module):
        yield from value.named_parameters(name + ".")
    elif isinstance(value, Var):
        if value.is_leaf:
            yield name, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _named_params_in(item, f"{name}.{i}")


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _check_keys(what: str, expected: Sequence[str], given: Mapping[str, Any]) -> None:
    """KeyError naming the missing and the unexpected keys of ``given``, if any."""
    known = set(expected)
    missing = [name for name in expected if name not in given]
    unexpected = [name for name in given if name not in known]
    problems = []
    if missing:
        problems.append(f"is missing {_quoted(missing)}")
    if unexpected:
        problems.append(f"has no {_quoted(unexpected)}")
    if problems:
        raise KeyError(f"{what} {'; and '.join(problems)}")


def _real(what: str, value: object) -> float:
    """``value`` as a float if it is a real number; a bool is not one here."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # True as a weight is a bug far more often than it is 1.0.
        raise TypeError(
            f"{what}: a value must be a real number, not {type(value).__name__}: {value!r}"
        )
    return float(value)


def _choose_activation(who: str, activation: Activation | None, nonlin: object) -> Activation:
    """The activation named by ``activation=`` or by micrograd's ``nonlin=`` (tanh if neither)."""
    if nonlin is None:
        return "tanh" if activation is None else activation
    if activation is not None:
        raise TypeError(
            f"{who}: pass activation= or micrograd's nonlin=, not both "
            f"(got activation={activation!r}, nonlin={nonlin!r})"
        )
    if not isinstance(nonlin, bool):
        raise TypeError(
            f"{who}: nonlin must be True (ReLU) or False (linear), "
            f"not {type(nonlin).__name__}: {nonlin!r}"
        )
    return "relu" if nonlin else "linear"


class Neuron(Module):
    """``activation(b + sum(w_i * x_i))`` with ``nin`` weights and a bias.

    ``activation`` is tanh unless given; micrograd's keyword works too:
    ``nonlin=True`` is ReLU and ``nonlin=False`` linear (give one of the two).

    >>> import random
    >>> n = Neuron(2, activation="linear", rng=random.Random(1))
    >>> n.w[0].data = 2.0; n.w[1].data = -1.0; n.b.data = 0.5
    >>> n([3.0, 4.0]).data
    2.5
    >>> Neuron(2, nonlin=False)
    Neuron(2, activation='linear')
    """

    def __init__(
        self,
        nin: int,
        activation: Activation | None = None,
        rng: random.Random | None = None,
        *,
        nonlin: bool | None = None,
    ) -> None:
        self.nin = _positive_int("nin", nin)
        chosen = _choose_activation("Neuron", activation, nonlin)
        self.activation, self._act = _activation(chosen)
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


class Layer(Module, Generic[Out]):
    """``nout`` independent neurons on the same ``nin`` inputs.

    Returns a list of ``nout`` Vars, or a single Var when ``nout == 1``
    (micrograd's convention; :class:`Linear` always returns a list).
    ``activation`` (tanh unless given) or micrograd's ``nonlin=`` (``True``
    is ReLU, ``False`` linear) applies to every neuron.

    For a type checker, ``Layer(nin, 1)`` returns a ``Var``; with any other
    ``nout`` the call is typed ``Any`` (the checker cannot tell an ``nout``
    that is 1 at run time); :meth:`outputs` is always a ``list[Var]``.

    >>> Layer(3, 2, nonlin=True)
    Layer(3, 2, activation='relu')
    """

    @overload
    def __init__(
        self: Layer[Var],
        nin: int,
        nout: Literal[1],
        activation: Activation | None = None,
        rng: random.Random | None = None,
        *,
        nonlin: bool | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: Layer[Any],
        nin: int,
        nout: int,
        activation: Activation | None = None,
        rng: random.Random | None = None,
        *,
        nonlin: bool | None = None,
    ) -> None: ...
    def __init__(
        self,
        nin: int,
        nout: int,
        activation: Activation | None = None,
        rng: random.Random | None = None,
        *,
        nonlin: bool | None = None,
    ) -> None:
        self.nin = _positive_int("nin", nin)
        self.nout = _positive_int("nout", nout)
        chosen = _choose_activation("Layer", activation, nonlin)
        _activation(chosen)  # validate before drawing any weight
        self.neurons = [Neuron(nin, chosen, rng) for _ in range(nout)]
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

    def forward(self, x: Sequence[Scalar]) -> Out:
        """The outputs; a single Var when the layer has one neuron."""
        outs = self.outputs(x)
        return cast(Out, outs[0] if len(outs) == 1 else outs)

    def __call__(self, x: Sequence[Scalar]) -> Out:
        return self.forward(x)

    def parameters(self) -> list[Var]:
        """Every neuron's parameters, neuron by neuron."""
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer({self.nin}, {self.nout}, activation={self.activation!r})"


class Linear(Layer[list[Var]]):
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


class MLP(Module, Generic[Out]):
    """A multi-layer perceptron: ``nin`` inputs, one layer per entry of ``nouts``.

    Hidden layers use ``activation``, **tanh by default** (the lecture's
    choice); micrograd's ``MLP`` uses ReLU there, which is
    ``MLP(nin, nouts, activation="relu")``. The last layer uses
    ``out_activation``, linear by default as in micrograd (the lecture's
    network, with tanh everywhere, is ``MLP(3, [4, 4, 1],
    out_activation="tanh")``). The output is a single Var when
    ``nouts[-1] == 1``, else a list.

    For a type checker, a call returns a ``Var`` when ``nouts`` is a tuple
    ending in 1 (``MLP(3, (4, 4, 1))``), and ``Any`` otherwise: the last size
    of a list is not visible to it.

    >>> len(MLP(3, [4, 4, 1]).parameters())  # 3*4+4 + 4*4+4 + 4*1+1
    41
    """

    @overload
    def __init__(
        self: MLP[Var],
        nin: int,
        nouts: tuple[Unpack[tuple[int, ...]], Literal[1]],
        activation: Activation = "tanh",
        rng: random.Random | None = None,
        out_activation: Activation = "linear",
    ) -> None: ...
    @overload
    def __init__(
        self: MLP[Any],
        nin: int,
        nouts: Sequence[int],
        activation: Activation = "tanh",
        rng: random.Random | None = None,
        out_activation: Activation = "linear",
    ) -> None: ...
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
        self.layers: list[Layer[Any]] = [
            Layer(sizes[i], sizes[i + 1], activation if i < last else out_activation, rng)
            for i in range(len(nouts))
        ]

    def forward(self, x: Sequence[Scalar]) -> Out:
        """The network's output for the inputs ``x``."""
        _check_size(repr(self), self.nin, x)
        inputs: Sequence[Scalar] = x
        out: list[Var] = []
        for layer in self.layers:
            out = layer.outputs(inputs)
            inputs = out
        return cast(Out, out[0] if len(out) == 1 else out)

    def __call__(self, x: Sequence[Scalar]) -> Out:
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


def _all_referenced_elsewhere(params: tuple[Var, ...]) -> bool:
    """Whether every parameter has a reference besides the optimizer's list (CPython).

    The count a parameter would have if only an optimizer's list held it is
    measured on a probe held the same way (a list, a tuple, the loop), so the
    comparison does not depend on how an interpreter version counts. A
    reference count can only overstate who holds a Var, so False is checked
    further by the caller; True is final.
    """
    getrefcount = getattr(sys, "getrefcount", None)
    if getrefcount is None:  # not CPython
        return False
    probe_list = [Var(0.0)]
    probe = tuple(probe_list)
    baseline = max(getrefcount(p) for p in probe)
    return all(getrefcount(p) > baseline for p in params)


class Optimizer:
    """Common part of the optimisers: the parameters, ``zero_grad``, the step count, the state.

    ``params`` are leaf Vars, or ``(name, Var)`` pairs such as
    ``model.named_parameters()`` gives; the names then key the per-parameter
    state of :meth:`state_dict` (positions ``"0"``, ``"1"``, ... otherwise).
    ``lr`` is a float or a schedule, a function of the step number (0 for the
    first ``step()``) giving the learning rate.

    Pickling an optimizer on its own copies its parameters (a pickle holds
    values, not references to objects elsewhere), so an optimizer unpickled
    apart from its model would update copies that no model reads. ``step()``
    checks, the first time after an unpickling or a ``copy.deepcopy``, that
    something besides the optimizer holds each parameter, and raises
    ``RuntimeError`` if not. The safe path is the state: ``save`` the model's
    and the optimizer's :meth:`state_dict`, and after ``load`` build a new
    optimizer over the new model's parameters and :meth:`load_state_dict`.
    """

    #: The names of the per-parameter buffers of :meth:`state_dict`.
    buffers: tuple[str, ...] = ()

    def __init__(
        self, params: Iterable[Var] | Iterable[tuple[str, Var]], lr: float | Schedule
    ) -> None:
        items: list[Any] = list(params)
        name = type(self).__name__
        if not items:
            raise ValueError(f"{name}: no parameters to optimise")
        named = [isinstance(item, tuple) for item in items]
        if any(named) and not all(named):
            raise TypeError(f"{name}: params must be all Vars or all (name, Var) pairs, not a mix")
        self.param_names: list[str] | None = None
        if all(named):
            if any(len(pair) != 2 or not isinstance(pair[0], str) for pair in items):
                raise TypeError(f"{name}: a named parameter must be a (str, Var) pair")
            self.param_names = [pair[0] for pair in items]
            if len(set(self.param_names)) != len(items):
                raise ValueError(f"{name}: parameter names must be distinct")
            items = [pair[1] for pair in items]
        for p in items:
            if not isinstance(p, Var):
                raise TypeError(f"{name}: parameters must be Vars, not {p!r}")
            if not p.is_leaf:
                raise ValueError(
                    f"{name}: parameters must be leaf Vars (made with Var(...)), "
                    f"not results of operations: {p!r}"
                )
        self.params: list[Var] = items
        if not callable(lr):
            _non_negative("lr", lr)
        self.lr = lr
        self.steps = 0  # number of step() calls so far
        self._restored = False  # unpickled or deep-copied: check the parameters on step()

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

    # -- state ---------------------------------------------------------------

    def _keys(self) -> list[str]:
        """The parameters' keys in the state: their names, or their positions."""
        if self.param_names is not None:
            return list(self.param_names)
        return [str(i) for i in range(len(self.params))]

    def _buffer(self, name: str) -> list[float]:
        buffer: list[float] = getattr(self, name)
        return buffer

    def state_dict(self) -> dict[str, Any]:
        """The training state: the optimiser's class, the step count, each parameter's buffers.

        ``{"optimizer": "SGD", "steps": 10, "params": {key: {buffer: value}}}``,
        with one key per parameter (its name when the optimizer was built from
        ``named_parameters()``, else its position as a str) and the buffers
        ``velocity`` (SGD's momentum) or ``m`` and ``v`` (Adam's moments).
        Hyperparameters (``lr``, ``momentum``, ...) are not part of it: they
        are the constructor's arguments, as the model's sizes are.

        >>> from tapegrad import Var
        >>> p = Var(1.0); p.grad = 0.5
        >>> opt = SGD([p], lr=0.1, momentum=0.9)
        >>> opt.step()
        >>> opt.state_dict()
        {'optimizer': 'SGD', 'steps': 1, 'params': {'0': {'velocity': 0.5}}}
        """
        buffers = {name: self._buffer(name) for name in self.buffers}
        return {
            "optimizer": type(self).__name__,
            "steps": self.steps,
            "params": {
                key: {name: float(values[i]) for name, values in buffers.items()}
                for i, key in enumerate(self._keys())
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take the step count and buffers from ``state`` (what :meth:`state_dict` returns).

        Checked in full before anything changes: a state of another optimiser
        class raises ``ValueError``; missing or unexpected keys (at the top,
        among the parameters, among a parameter's buffers) raise ``KeyError``
        naming them; a step count that is not an int >= 0, or a buffer value
        that is not a real number, raises ``TypeError`` (``ValueError`` for a
        negative count).

        >>> from tapegrad import Var
        >>> p = Var(1.0)
        >>> opt = Adam([p], lr=0.1)
        >>> opt.load_state_dict(
        ...     {'optimizer': 'Adam', 'steps': 3, 'params': {'0': {'m': 0.1, 'v': 0.01}}})
        >>> opt.steps, opt.m, opt.v
        (3, [0.1], [0.01])
        """
        name = type(self).__name__
        what = f"{name}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(
                f"{what} takes a mapping (what state_dict() returns), not {type(state).__name__}"
            )
        _check_keys(f"{what}: the state", ["optimizer", "steps", "params"], state)
        if state["optimizer"] != name:
            raise ValueError(f"{what}: the state is of a {state['optimizer']!r} optimizer")
        steps = state["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise TypeError(f"{what}: steps must be an int, not {type(steps).__name__}: {steps!r}")
        if steps < 0:
            raise ValueError(f"{what}: steps must be >= 0, got {steps}")
        per_param = state["params"]
        if not isinstance(per_param, Mapping):
            raise TypeError(
                f"{what}: params must be a mapping of parameter keys to buffers, "
                f"not {type(per_param).__name__}"
            )
        keys = self._keys()
        _check_keys(f"{what}: the state's params", keys, per_param)
        loaded: dict[str, list[float]] = {buffer: [] for buffer in self.buffers}
        for key in keys:
            entry = per_param[key]
            if not isinstance(entry, Mapping):
                raise TypeError(
                    f"{what}: params[{key!r}] must be a mapping of buffer names to numbers, "
                    f"not {type(entry).__name__}"
                )
            _check_keys(f"{what}: params[{key!r}]", self.buffers, entry)
            for buffer in self.buffers:
                loaded[buffer].append(_real(f"{what}: params[{key!r}][{buffer!r}]", entry[buffer]))
        self.steps = steps
        for buffer, values in loaded.items():
            self._buffer(buffer)[:] = values

    # -- pickles -------------------------------------------------------------

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.param_names = None  # absent from pickles made before optimizers had names
        self.__dict__.update(state)
        self._restored = True

    def _check_parameters_held(self) -> None:
        """RuntimeError if a parameter is held by nothing but this optimizer.

        Runs once after an unpickling or deep copy. Reference counts settle
        the usual case, parameters that a model holds too, in one pass over
        the parameters; otherwise one walk over the objects the garbage
        collector tracks (``gc.get_referrers``), plus the locals of the
        calling frames, which Python 3.11+ does not show to it, tells who
        holds each parameter.
        """
        params = tuple(self.params)
        if _all_referenced_elsewhere(params):
            self._restored = False
            return
        wanted = {id(p): i for i, p in enumerate(params)}
        held: set[int] = set()
        for holder in gc.get_referrers(*params):
            if holder is self.params or holder is params:
                continue
            held.update(id(obj) for obj in gc.get_referents(holder) if id(obj) in wanted)
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and len(held) < len(wanted):
            held.update(id(obj) for obj in frame.f_locals.values() if id(obj) in wanted)
            frame = frame.f_back
        orphans = [i for key, i in wanted.items() if key not in held]
        if orphans:
            name = type(self).__name__
            raise RuntimeError(
                f"{name}.step(): {len(orphans)} of its {len(params)} parameters are held by "
                f"nothing but this optimizer: it was unpickled or deep-copied apart from the "
                f"model that uses them, so a step would update copies no model reads. Pickle "
                f"the model and the optimizer together (pickle.dumps((model, opt))), or save "
                f"model.state_dict() and opt.state_dict() and load them into a new model and a "
                f"new {name} over its parameters (see tapegrad.nn.save)"
            )
        self._restored = False

    def _begin_step(self) -> float:
        """The learning rate of this step, after the once-only check of a restored optimizer."""
        if self._restored:
            self._check_parameters_held()
        return self.current_lr()


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

    buffers = ("velocity",)

    def __init__(
        self,
        params: Iterable[Var] | Iterable[tuple[str, Var]],
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
        lr = self._begin_step()
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

    buffers = ("m", "v")

    def __init__(
        self,
        params: Iterable[Var] | Iterable[tuple[str, Var]],
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
        lr = self._begin_step()
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


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

# JSON has no inf or nan: a non-finite float is written as {"$float": "inf"}
# (or "-inf", "nan"), so that the file stays standard JSON that any reader takes.
_FLOAT_TAG = "$float"
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _to_json(value: object, where: str) -> Any:
    """``value`` with non-finite floats tagged; TypeError for what JSON would change."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        v = float(value)
        if math.isfinite(v):
            return v  # json writes repr(v), which reads back as the very same float
        return {_FLOAT_TAG: "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                # json.dumps would turn 1 into "1" silently.
                raise TypeError(
                    f"save: keys must be str, got {type(key).__name__} {key!r} in {where}"
                )
            out[key] = _to_json(item, f"{where}[{key!r}]")
        if list(out) == [_FLOAT_TAG]:
            raise ValueError(f"save: {where} is a dict with the reserved key {_FLOAT_TAG!r} alone")
        return out
    if isinstance(value, list):
        return [_to_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    hint = " (use a list: a tuple would load as a list)" if isinstance(value, tuple) else ""
    raise TypeError(
        f"save: {where} is a {type(value).__name__}{hint}; a checkpoint holds dicts with str "
        f"keys, lists, floats, ints, str, bool and None"
    )


def _from_json(obj: dict[str, Any]) -> Any:
    """A tagged non-finite float back to a float; other objects unchanged."""
    if list(obj) == [_FLOAT_TAG]:
        text = obj[_FLOAT_TAG]
        if text not in _NON_FINITE:
            raise ValueError(f"load: {{{_FLOAT_TAG!r}: {text!r}}} is not 'inf', '-inf' or 'nan'")
        return _NON_FINITE[text]
    return obj


def save(state: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` (dicts, lists, numbers, str, bool, None) to ``path`` as JSON.

    Typically ``{"model": model.state_dict(), "optimizer": opt.state_dict()}``.
    Every float reads back bit for bit (JSON holds its shortest repr); ``inf``,
    ``-inf`` and ``nan``, which JSON lacks, are written as ``{"$float":
    "inf"}`` and so on. No pickle: any JSON reader opens a checkpoint, and
    loading one runs no code. What JSON would change silently raises
    ``TypeError``: a key that is not a str, a tuple, any other object. The file
    is replaced in one step (written beside it, then renamed), so a crash
    never leaves half a checkpoint.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.json")
    >>> save({"w": [0.1, 1e-300, float("inf")], "steps": 3}, path)
    >>> load(path)
    {'w': [0.1, 1e-300, inf], 'steps': 3}
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"save: state must be a dict, not {type(state).__name__}")
    text = json.dumps(_to_json(state, "state"), indent=1, allow_nan=False)
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, temporary = tempfile.mkstemp(prefix=".tapegrad-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def load(path: str | os.PathLike[str]) -> Any:
    """The state that :func:`save` wrote to ``path`` (see there for an example).

    ``{"$float": "inf"}`` (or ``"-inf"``, ``"nan"``) becomes the float; a
    file that is not JSON raises ``ValueError`` (``json.JSONDecodeError``).
    """
    with open(os.fspath(path), encoding="utf-8") as f:
        return json.load(f, object_hook=_from_json)
