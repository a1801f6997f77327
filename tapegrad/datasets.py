"""Small synthetic data sets, generated here: no download and no scikit-learn.

:func:`make_moons` is scikit-learn's two interleaving half circles, the data
set of micrograd's demo, drawn with Python's :mod:`random` so that a seed
gives the same points on every machine.

>>> import random
>>> X, y = make_moons(6, noise=0.0, rng=random.Random(0))
>>> len(X), sorted(y)
(6, [0, 0, 0, 1, 1, 1])
"""

from __future__ import annotations

import math
import random

__all__ = ["make_moons"]


def _linspace(start: float, stop: float, n: int) -> list[float]:
    """``n`` evenly spaced numbers from ``start`` to ``stop`` inclusive (numpy's linspace)."""
    if n == 1:
        return [start]
    step = (stop - start) / (n - 1)
    return [start + i * step for i in range(n - 1)] + [stop]


def make_moons(
    n_samples: int = 100,
    noise: float = 0.1,
    rng: random.Random | int | None = None,
    signed: bool = False,
) -> tuple[list[list[float]], list[int]]:
    """Two interleaving half circles in the plane, as ``sklearn.datasets.make_moons``.

    The first ``n_samples // 2`` points lie on the upper half of the unit
    circle centred at ``(0, 0)`` (label 0), the others on the lower half of the
    unit circle centred at ``(1, 0.5)`` (label 1); the points are shuffled and
    Gaussian noise of standard deviation ``noise`` is added to each coordinate.

    Args:
        n_samples: number of points, at least 2 (one per moon).
        noise: standard deviation of the noise, ``>= 0``.
        rng: a ``random.Random``, a seed, or None for a fresh unseeded generator.
        signed: labels ``-1``/``+1`` (for the hinge loss) instead of ``0``/``1``.

    Returns:
        ``(X, y)``: a list of ``[x1, x2]`` points and a list of labels.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"make_moons needs n_samples >= 2 (one point per moon), got {n_samples!r}")
    if not float(noise) >= 0.0 or math.isinf(noise):
        raise ValueError(f"make_moons needs a finite noise >= 0, got {noise!r}")
    gen = rng if isinstance(rng, random.Random) else random.Random(rng)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    points: list[tuple[list[float], int]] = []
    for t in _linspace(0.0, math.pi, n_out):
        points.append(([math.cos(t), math.sin(t)], 0))
    for t in _linspace(0.0, math.pi, n_in):
        points.append(([1.0 - math.cos(t), 0.5 - math.sin(t)], 1))
    gen.shuffle(points)
    X: list[list[float]] = []
    y: list[int] = []
    for (px, py), label in points:
        if noise:
            px += gen.gauss(0.0, noise)
            py += gen.gauss(0.0, noise)
        X.append([px, py])
        y.append(2 * label - 1 if signed else label)
    return X, y
