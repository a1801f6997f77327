"""A real client: scipy.optimize.minimize on the n-dimensional Rosenbrock function.

The gradient comes from ``tapegrad.grad`` (BFGS) and Hessian-vector products
from ``tapegrad.hvp`` (Newton-CG); both runs converge to the all-ones minimum.
The function is written as a plain Python loop, the way a user would write it.

Run: ``python examples/scipy_rosenbrock.py``
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize, rosen_der, rosen_hess

import tapegrad as tg


def rosenbrock(x: Any) -> Any:
    """sum of 100 (x[i+1] - x[i]**2)**2 + (1 - x[i])**2, as a Python loop."""
    total = 0.0
    for i in range(len(x) - 1):
        total = total + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


def main(n: int = 10) -> None:
    x0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2] * (n // 5 + 1))[:n]
    jac = tg.grad(rosenbrock)
    gap_grad = np.max(np.abs(jac(x0) - rosen_der(x0)))
    gap_hess = np.max(np.abs(tg.hessian(rosenbrock)(x0) - rosen_hess(x0)))
    print(f"n = {n}: |grad - rosen_der| = {gap_grad:.1e}, |hessian - rosen_hess| = {gap_hess:.1e}")

    bfgs = minimize(rosenbrock, x0, jac=jac, method="BFGS", options={"gtol": 1e-10})
    print(f"BFGS:      {bfgs.nit} iterations, max |x - 1| = {np.max(np.abs(bfgs.x - 1)):.1e}")

    def hessp(x: Any, p: Any) -> Any:
        return tg.hvp(rosenbrock, x, p)

    newton = minimize(
        rosenbrock, x0, jac=jac, hessp=hessp, method="Newton-CG", options={"xtol": 1e-12}
    )
    print(f"Newton-CG: {newton.nit} iterations, max |x - 1| = {np.max(np.abs(newton.x - 1)):.1e}")


if __name__ == "__main__":
    main()
