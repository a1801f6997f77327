"""The benchmarked functions, written once for every library.

Each function here uses only Python arithmetic operators, ``sum`` and a
``relu`` callable passed in, so the very same code runs on plain floats,
tapegrad and micrograd ``Value``s, PyTorch scalar tensors, HIPS autograd boxes
and JAX tracers. Only the wrapping differs between libraries, and that lives
in :mod:`benchmarks.cases`.

>>> round(rosenbrock([1.3, 0.7, 0.8]), 9)
107.8
>>> round(chain(2.0, 2), 9)  # (2 * C + 2) * C + 2
5.999994
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "MLP_SIZES",
    "ALPHA",
    "CHAIN_C",
    "moons",
    "init_mlp",
    "mlp_unflatten",
    "mlp_forward",
    "svm_loss",
    "relu_float",
    "rosenbrock",
    "rosenbrock_grad_float",
    "rosenbrock_point",
    "chain",
    "chain_steps",
    "fan",
    "fan_inputs",
    "OpCounter",
    "count_ops",
]

# micrograd's demo: MLP(2, [16, 16, 1]) on 100 points of make_moons.
MLP_SIZES: tuple[int, ...] = (2, 16, 16, 1)
ALPHA = 1e-4  # L2 regularisation of the demo's loss

# The chain multiplies by C and adds the input back: y <- y * C + x. With
# C = 1 - 1e-6 neither values nor adjoints vanish or blow up at 10^6 ops, so
# the reverse sweep cannot skip entries whose adjoint underflowed to 0.
CHAIN_C = 1.0 - 1e-6


def relu_float(x: float) -> float:
    """relu on a plain float, for the plain-Python reference."""
    return x if x > 0.0 else 0.0


def moons(
    n: int = 100, noise: float = 0.1, seed: int = 1337
) -> tuple[list[list[float]], list[float]]:
    """``sklearn.datasets.make_moons`` without sklearn: points and labels -1/+1."""
    rng = random.Random(seed)
    n_out = n // 2
    n_in = n - n_out
    xs: list[list[float]] = []
    ys: list[float] = []
    for i in range(n_out):
        t = math.pi * i / max(n_out - 1, 1)
        xs.append([math.cos(t), math.sin(t)])
        ys.append(-1.0)
    for i in range(n_in):
        t = math.pi * i / max(n_in - 1, 1)
        xs.append([1.0 - math.cos(t), 1.0 - math.sin(t) - 0.5])
        ys.append(1.0)
    for row in xs:
        row[0] += rng.gauss(0.0, noise)
        row[1] += rng.gauss(0.0, noise)
    return xs, ys


def init_mlp(sizes: Sequence[int] = MLP_SIZES, seed: int = 0) -> list[float]:
    """Flat initial parameters, micrograd's init: w ~ U(-1, 1), b = 0.

    Per neuron: its ``nin`` weights, then its bias.
    """
    rng = random.Random(seed)
    flat: list[float] = []
    for nin, nout in itertools.pairwise(sizes):
        for _ in range(nout):
            flat.extend(rng.uniform(-1.0, 1.0) for _ in range(nin))
            flat.append(0.0)
    return flat


def mlp_unflatten(
    flat: Sequence[Any], sizes: Sequence[int] = MLP_SIZES
) -> list[list[tuple[list[Any], Any]]]:
    """Layers of neurons ``(weights, bias)`` from the flat parameter list."""
    layers: list[list[tuple[list[Any], Any]]] = []
    k = 0
    for nin, nout in itertools.pairwise(sizes):
        layer = []
        for _ in range(nout):
            layer.append((list(flat[k : k + nin]), flat[k + nin]))
            k += nin + 1
        layers.append(layer)
    if k != len(flat):
        raise ValueError(f"expected {k} parameters, got {len(flat)}")
    return layers


def neuron_sum(w: Sequence[Any], x: Sequence[Any], b: Any) -> Any:
    """micrograd's ``Neuron``: ``sum((wi * xi for ...), b)``."""
    return sum((wi * xi for wi, xi in zip(w, x)), b)


def mlp_forward(
    layers: list[list[tuple[list[Any], Any]]],
    x: Sequence[Any],
    relu: Callable[[Any], Any],
    neuron: Callable[[Sequence[Any], Sequence[Any], Any], Any] = neuron_sum,
) -> Any:
    """micrograd's ``MLP.__call__``: relu hidden layers, a linear last layer."""
    last = len(layers) - 1
    for li, layer in enumerate(layers):
        out = []
        for w, b in layer:
            act = neuron(w, x, b)
            out.append(act if li == last else relu(act))
        x = out
    return x[0]


def svm_loss(
    layers: list[list[tuple[list[Any], Any]]],
    params: Sequence[Any],
    inputs: Sequence[Sequence[Any]],
    labels: Sequence[float],
    relu: Callable[[Any], Any],
    neuron: Callable[[Sequence[Any], Sequence[Any], Any], Any] = neuron_sum,
) -> Any:
    """The demo's loss: mean max-margin (SVM) loss plus ``ALPHA * sum(p * p)``."""
    scores = [mlp_forward(layers, x, relu, neuron) for x in inputs]
    losses = [relu(1 + -yi * si) for yi, si in zip(labels, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = ALPHA * sum(p * p for p in params)
    return data_loss + reg_loss


def rosenbrock(x: Sequence[Any]) -> Any:
    """sum of 100 (x[i+1] - x[i]**2)**2 + (1 - x[i])**2, as a Python loop.

    The same code as ``examples/scipy_rosenbrock.py``.
    """
    total = 0.0
    for i in range(len(x) - 1):
        total = total + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


def rosenbrock_grad_float(x: Sequence[float]) -> tuple[float, list[float]]:
    """Value and gradient of :func:`rosenbrock` on floats, derived by hand."""
    n = len(x)
    g = [0.0] * n
    total = 0.0
    for i in range(n - 1):
        xi = x[i]
        d = x[i + 1] - xi**2
        e = 1.0 - xi
        total = total + 100.0 * d**2 + e**2
        g[i] += -400.0 * d * xi - 2.0 * e
        g[i + 1] += 200.0 * d
    return total, g


def rosenbrock_point(n_terms: int) -> list[float]:
    """The evaluation point: ``n_terms + 1`` values, the scipy example's pattern."""
    base = [1.3, 0.7, 0.8, 1.9, 1.2]
    return [base[i % 5] + 1e-3 * (i // 5) for i in range(n_terms + 1)]


def chain_steps(n_ops: int) -> int:
    """Steps of :func:`chain` that record ``n_ops`` operations (two per step)."""
    return max(n_ops // 2, 1)


def chain(x: Any, steps: int) -> Any:
    """A chain ``2 * steps`` ops deep: ``y <- y * C + x``, starting from ``y = x``.

    One op with a constant, one with the (fanned-out) input per step.
    """
    y = x
    c = CHAIN_C
    for _ in range(steps):
        y = y * c + x
    return y


def fan(x: Any, ws: Sequence[Any]) -> Any:
    """Fan-out/fan-in: ``sum(x * w for w in ws)``, one input used ``len(ws)`` times."""
    return sum(x * w for w in ws)


def fan_inputs(n: int, seed: int = 2) -> tuple[float, list[float]]:
    """``x`` and the ``n`` weights of :func:`fan`."""
    rng = random.Random(seed)
    return 1.5, [rng.uniform(-1.0, 1.0) for _ in range(n)]


class OpCounter:
    """A float stand-in that counts the arithmetic ops and relus done on it.

    Running a workload on OpCounters tells how many primitive ops a tape
    records for it (micrograd records a few more: it builds ``-``, ``/`` and
    unary minus from ``+``, ``*`` and ``**``).
    """

    __slots__ = ("v",)
    count = 0

    def __init__(self, v: float) -> None:
        self.v = float(v)

    @classmethod
    def _op(cls, v: float) -> OpCounter:
        cls.count += 1
        return cls(v)

    @staticmethod
    def _val(o: Any) -> float:
        return o.v if isinstance(o, OpCounter) else float(o)

    def __add__(self, o: Any) -> OpCounter:
        return self._op(self.v + self._val(o))

    def __radd__(self, o: Any) -> OpCounter:
        return self._op(self._val(o) + self.v)

    def __sub__(self, o: Any) -> OpCounter:
        return self._op(self.v - self._val(o))

    def __rsub__(self, o: Any) -> OpCounter:
        return self._op(self._val(o) - self.v)

    def __mul__(self, o: Any) -> OpCounter:
        return self._op(self.v * self._val(o))

    def __rmul__(self, o: Any) -> OpCounter:
        return self._op(self._val(o) * self.v)

    def __pow__(self, o: Any) -> OpCounter:
        return self._op(self.v ** self._val(o))

    def __neg__(self) -> OpCounter:
        return self._op(-self.v)

    def relu(self) -> OpCounter:
        """Counted relu."""
        return self._op(relu_float(self.v))


def count_ops(fn: Callable[[Callable[[float], OpCounter]], Any]) -> int:
    """Ops recorded by ``fn(wrap)``, where ``wrap`` turns a float into a counted scalar."""
    OpCounter.count = 0
    fn(OpCounter)
    return OpCounter.count
