"""W4 written by hand with numpy: the 10-d Rosenbrock function's value and gradient, batched.

The reference that ``vmap`` is measured against (:mod:`benchmarks.vmap_blocks`):
what a person would write with numpy for ``vmap(value_and_grad(rosen, argnums=1),
in_axes=(None, 0))(COEF, X)``, a few array expressions over the whole batch.

>>> import numpy as np
>>> values, grads = rosen_value_and_grad((1.0, 100.0), np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
>>> values.tolist(), grads.tolist() == [[0.0, 0.0, 0.0], [-2.0, -2.0, 0.0]]
([0.0, 2.0], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["rosen_value_and_grad"]


def rosen_value_and_grad(coef: Sequence[float], x: Any) -> tuple[Any, Any]:
    """Values ``(n,)`` and gradients ``(n, d)`` of ``sum b (x[i+1] - x[i]**2)**2 + (a - x[i])**2``.

    ``x`` is a float64 numpy array of ``n`` samples of ``d`` numbers, one per row.
    """
    import numpy as np

    a, b = float(coef[0]), float(coef[1])
    head, tail = x[:, :-1], x[:, 1:]
    gap = tail - head * head  # x[i+1] - x[i]**2
    miss = a - head  # a - x[i]
    values = (b * gap * gap + miss * miss).sum(axis=1)
    grads = np.empty_like(x)
    grads[:, :-1] = -4.0 * b * head * gap - 2.0 * miss
    grads[:, -1] = 0.0
    grads[:, 1:] += 2.0 * b * gap
    return values, grads
