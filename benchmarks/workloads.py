"""The table of workloads, and the functions they time, written once for every library.

Each function uses only Python operators, ``sum`` and a ``relu`` callable that
the library passes in, so the same code runs on floats, tapegrad and
micrograd ``Value``s, PyTorch scalar tensors, autograd boxes, JAX tracers,
CasADi ``SX`` and sympy symbols. :mod:`benchmarks.libs` only wraps inputs and
asks for value and gradient the library's way.

>>> round(rosen(COEF, [1.3, 0.7, 0.8]), 9)
107.8
>>> round(chain(2.0, 2), 9)  # (2 * C + 2) * C + 2
5.999994
>>> [n_ops("mlp", 100), n_ops("rosen", 1000), n_ops("vmap", 10)]
[65077, 8000, 720]
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["WORKLOADS", "Workload", "COEF", "problem", "samples", "n_ops", "rosen", "chain"]

MLP_SIZES = (2, 16, 16, 1)  # micrograd's demo: MLP(2, [16, 16, 1])
ALPHA = 1e-4  # the demo's L2 regularisation
COEF = (1.0, 100.0)  # Rosenbrock's a and b
VMAP_DIM = 10  # the vmap workload: Rosenbrock in 10 dimensions (9 terms)
# y <- y * C + x: with C = 1 - 1e-6 neither values nor adjoints vanish at 10^6
# ops, so no reverse sweep can skip entries whose adjoint underflowed.
CHAIN_C = 1.0 - 1e-6


@dataclass(frozen=True)
class Workload:
    """One row of the table of workloads: its sizes in the full and in the quick run."""

    key: str
    title: str
    unit: str  # what the size counts
    sizes: tuple[int, ...]
    quick: tuple[int, ...]

    @property
    def per_sample(self) -> bool:
        """Whether times are reported per sample of a batch."""
        return self.unit == "samples"


WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in (
        Workload("mlp", "W1: micrograd's demo step, MLP(2, [16, 16, 1])", "points", (100,), (2,)),
        Workload("rosen", "W2: value and gradient of Rosenbrock", "terms", (1000,), (12,)),
        Workload(
            "chain", "W3: a chain y <- y * C + x", "ops", (1000, 10**4, 10**5, 10**6), (100, 1000)
        ),
        Workload(
            "vmap", "W4: batches of 10-d Rosenbrock", "samples", (1, 10, 100, 1000, 10**4), (1, 10)
        ),
    )
}


def relu_float(x: float) -> float:
    """relu on a float, for the plain-Python rows."""
    return x if x > 0.0 else 0.0


def moons(n: int, noise: float = 0.1, seed: int = 1337) -> tuple[list[list[float]], list[float]]:
    """``sklearn.datasets.make_moons`` without sklearn: points and labels -1/+1."""
    rng = random.Random(seed)
    xs: list[list[float]] = []
    ys: list[float] = []
    for label, count in ((-1.0, n // 2), (1.0, n - n // 2)):
        for i in range(count):
            t = math.pi * i / max(count - 1, 1)
            x, y = (math.cos(t), math.sin(t)) if label < 0 else (1 - math.cos(t), 0.5 - math.sin(t))
            xs.append([x + rng.gauss(0.0, noise), y + rng.gauss(0.0, noise)])
            ys.append(label)
    return xs, ys


def init_mlp(seed: int = 0) -> list[float]:
    """Flat parameters, micrograd's init (w ~ U(-1, 1), b = 0): per neuron, weights then bias."""
    rng = random.Random(seed)
    flat: list[float] = []
    for nin, nout in itertools.pairwise(MLP_SIZES):
        for _ in range(nout):
            flat += [rng.uniform(-1.0, 1.0) for _ in range(nin)] + [0.0]
    return flat


def mlp_loss(
    params: Sequence[Any], xs: Sequence[Sequence[Any]], ys: Sequence[float], relu: Any
) -> Any:
    """The demo's loss: mean max-margin loss of micrograd's MLP plus ``ALPHA * sum(p * p)``.

    Neurons are micrograd's ``sum((wi * xi for ...), b)``; hidden layers use
    relu, the last layer is linear.
    """
    layers: list[list[tuple[Sequence[Any], Any]]] = []
    k = 0
    for nin, nout in itertools.pairwise(MLP_SIZES):
        layers.append([])
        for _ in range(nout):
            layers[-1].append((params[k : k + nin], params[k + nin]))
            k += nin + 1
    scores = []
    for x in xs:
        for li, layer in enumerate(layers):
            acts = [sum((wi * xi for wi, xi in zip(w, x)), b) for w, b in layer]
            x = acts if li == len(layers) - 1 else [relu(a) for a in acts]
        scores.append(x[0])
    losses = [relu(1 + -yi * si) for yi, si in zip(ys, scores)]
    return sum(losses) * (1.0 / len(losses)) + ALPHA * sum(p * p for p in params)


def rosen(coef: Sequence[Any], x: Sequence[Any]) -> Any:
    """sum of b (x[i+1] - x[i]**2)**2 + (a - x[i])**2 as a Python loop, as in the scipy example."""
    a, b = coef[0], coef[1]
    total = 0.0
    for i in range(len(x) - 1):
        total = total + b * (x[i + 1] - x[i] ** 2) ** 2 + (a - x[i]) ** 2
    return total


def chain(x: Any, steps: int) -> Any:
    """A chain ``2 * steps`` ops deep, starting from ``y = x``: ``y <- y * C + x``."""
    y = x
    for _ in range(steps):
        y = y * CHAIN_C + x
    return y


def rosen_point(terms: int) -> list[float]:
    """The W2 point: ``terms + 1`` values, the scipy example's pattern."""
    return [(1.3, 0.7, 0.8, 1.9, 1.2)[i % 5] + 1e-3 * (i // 5) for i in range(terms + 1)]


def samples(batch: int, seed: int = 0) -> list[list[float]]:
    """``batch`` points of the vmap workload, uniform in [-1.5, 1.5]^10."""
    rng = random.Random(seed)
    return [[rng.uniform(-1.5, 1.5) for _ in range(VMAP_DIM)] for _ in range(batch)]


def problem(key: str, size: int, relu: Any) -> tuple[Callable[[Any], Any], list[float]]:
    """``f(list of scalars) -> scalar`` and the point of a single-point workload."""
    if key == "mlp":
        xs, ys = moons(size)
        return (lambda ps: mlp_loss(ps, xs, ys, relu)), init_mlp()
    if key == "rosen":
        return (lambda x: rosen(COEF, x)), rosen_point(size)
    if key == "chain":
        steps = max(size // 2, 1)
        return (lambda x: chain(x[0], steps)), [0.5]
    raise ValueError(f"{key!r} is not a single-point workload")


class _Counter:
    """A float stand-in that counts the ops done on it."""

    count = 0

    def __init__(self, v: float) -> None:
        self.v = v

    def _op(self, other: Any, fn: Callable[[float, float], float]) -> _Counter:
        _Counter.count += 1
        return _Counter(fn(self.v, other.v if isinstance(other, _Counter) else other))

    __add__ = __radd__ = lambda s, o: s._op(o, lambda a, b: a + b)
    __mul__ = __rmul__ = lambda s, o: s._op(o, lambda a, b: a * b)
    __sub__ = lambda s, o: s._op(o, lambda a, b: a - b)
    __rsub__ = lambda s, o: s._op(o, lambda a, b: b - a)
    __pow__ = lambda s, o: s._op(o, lambda a, b: a**b)
    __neg__ = lambda s: s._op(0.0, lambda a, _: -a)
    relu = lambda s: s._op(0.0, lambda a, _: relu_float(a))


def n_ops(key: str, size: int) -> int:
    """Primitive ops one call records (counted on a float stand-in, not estimated)."""
    if key == "vmap":
        return size * n_ops("rosen", VMAP_DIM - 1)
    if key == "chain":  # two ops a step; counting 10^6 would take a second
        return 2 * max(size // 2, 1)
    f, x0 = problem(key, size, _Counter.relu)
    _Counter.count = 0
    f([_Counter(v) for v in x0])
    return _Counter.count
