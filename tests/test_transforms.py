"""Tests of the function transforms against independent references.

References: hand-derived derivatives, scipy's closed-form Rosenbrock gradient
and Hessian, central finite differences, and the perturbation-confusion
examples of Siskind & Pearlmutter (2005) and Manzyuk et al. (2019).
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess

import tapegrad as tg
from tapegrad import engine, grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp

ROOT = Path(__file__).resolve().parents[1]


def central(f: Any, x: float, h: float = 1e-5) -> float:
    """Central difference of a float function, Richardson-extrapolated (error O(h^4))."""
    d1 = (f(x + h) - f(x - h)) / (2 * h)
    d2 = (f(x + 2 * h) - f(x - 2 * h)) / (4 * h)
    return (4 * d1 - d2) / 3


def rosen_loop(x: Any) -> Any:
    total: Any = 0.0
    for i in range(len(x) - 1):
        total = total + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


# -- hand-derived derivatives ---------------------------------------------------


@pytest.mark.parametrize("x", [-1.7, -0.3, 0.0, 0.5, 2.25])
def test_polynomial_derivatives_by_hand(x: float) -> None:
    f = lambda t: 3 * t**4 - 2 * t**3 + t - 7
    assert grad(f)(x) == pytest.approx(12 * x**3 - 6 * x**2 + 1, rel=1e-13, abs=1e-13)
    assert grad(grad(f))(x) == pytest.approx(36 * x**2 - 12 * x, rel=1e-13, abs=1e-13)
    assert grad(grad(grad(f)))(x) == pytest.approx(72 * x - 12, rel=1e-13, abs=1e-13)
    assert grad(grad(grad(grad(f))))(x) == pytest.approx(72.0)


@pytest.mark.parametrize("x", [-2.0, 0.3, 0.7, 1.9])
def test_sin_times_cube_to_third_order(x: float) -> None:
    f = lambda t: tg.math.sin(t) * t**3
    s, c = math.sin(x), math.cos(x)
    assert grad(f)(x) == pytest.approx(c * x**3 + 3 * s * x**2, rel=1e-13)
    assert grad(grad(f))(x) == pytest.approx(-s * x**3 + 6 * c * x**2 + 6 * s * x, rel=1e-12)
    third = -c * x**3 - 9 * s * x**2 + 18 * c * x + 6 * s
    assert grad(grad(grad(f)))(x) == pytest.approx(third, rel=1e-12)


def test_float_in_float_out_and_ints_are_floats() -> None:
    g = grad(lambda x: x * x)(3)
    assert type(g) is float and g == 6.0
    value, g = value_and_grad(lambda x: x**3)(2)
    assert (value, g) == (8.0, 12.0)


# -- Rosenbrock in closed form (scipy) --------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 12])
def test_rosenbrock_gradient_and_hessian_match_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.uniform(-2, 2, size=n)
    assert rosen_loop(x) == pytest.approx(rosen(x), rel=1e-14)
    g = grad(rosen_loop)(x)
    assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == (n,)
    np.testing.assert_allclose(g, rosen_der(x), rtol=1e-12, atol=1e-12)
    h = hessian(rosen_loop)(x)
    assert h.shape == (n, n)
    np.testing.assert_allclose(h, rosen_hess(x), rtol=1e-12, atol=1e-12)
    v = rng.normal(size=n)
    np.testing.assert_allclose(hvp(rosen_loop, x, v), rosen_hess(x) @ v, rtol=1e-12, atol=1e-11)


def test_scipy_example_converges_to_ones() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "scipy_rosenbrock.py")],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    lines = out.splitlines()
    assert lines[0].startswith("n = 10:")
    for line in lines[1:]:
        gap = float(line.rsplit("=", 1)[1])
        assert gap < 1e-6, line


# -- finite differences -----------------------------------------------------------


def vector_fn(x: Any) -> Any:
    return [
        tg.math.exp(x[0]) * x[1],
        tg.math.atan2(x[1], x[2]) + x[0] ** 2,
        x[2] * tg.math.tanh(x[0]),
    ]


def vector_fn_floats(x: list[float]) -> list[float]:
    return [math.exp(x[0]) * x[1], math.atan2(x[1], x[2]) + x[0] ** 2, x[2] * math.tanh(x[0])]


def test_jacobian_against_finite_differences() -> None:
    x = [0.3, -1.2, 0.8]
    jac = jacobian(vector_fn)(x)
    for j in range(3):
        for i in range(3):

            def fi(t: float, i: int = i, j: int = j) -> float:
                y = list(x)
                y[j] = t
                return vector_fn_floats(y)[i]

            assert jac[i][j] == pytest.approx(central(fi, x[j]), rel=1e-8, abs=1e-9)


def test_jvp_vjp_consistency_and_jacobian() -> None:
    x = [0.3, -1.2, 0.8]
    u = [0.5, -1.0, 2.0]
    v = [1.5, 0.25, -0.75]
    _, jv = jvp(vector_fn, (x,), (v,))
    _, back = vjp(vector_fn, x)
    (ju,) = back(u)
    assert sum(a * b for a, b in zip(u, jv)) == pytest.approx(
        sum(a * b for a, b in zip(ju, v)), rel=1e-13
    )
    # and both against finite differences of t -> f(x + t v)
    fd = [
        central(lambda t, i=i: vector_fn_floats([a + t * b for a, b in zip(x, v)])[i], 0.0)
        for i in range(3)
    ]
    assert jv == pytest.approx(fd, rel=1e-8)


def test_grad_equals_jacobian_for_scalar_f() -> None:
    f = lambda x: x[0] * tg.math.sin(x[1]) + x[1] ** 2
    x = [1.5, -0.4]
    assert grad(f)(x) == pytest.approx(jacobian(f)(x), rel=1e-15)


# -- perturbation confusion -------------------------------------------------------


def test_siskind_pearlmutter_perturbation_confusion() -> None:
    # d/dx [ x * (d/dy (x + y))|_{y=1} ] at x = 1 is 1 (a confused AD gives 2).
    assert grad(lambda x: x * grad(lambda y: x + y)(1.0))(1.0) == 1.0


def test_nested_closure_over_outer_variable() -> None:
    # d/dx [ x * d/dy (x * y) ] = d/dx [x * x] = 2x
    assert grad(lambda x: x * grad(lambda y: x * y)(2.0))(3.0) == 6.0
    # f(x) = d/dy (x y)**2 = 2 x**2 y, so df/dx = 4 x y
    f = lambda x: grad(lambda y: (x * y) ** 2)(5.0)
    assert grad(f)(3.0) == pytest.approx(4 * 3.0 * 5.0)


def test_manzyuk_derivative_of_a_function_returning_a_function() -> None:
    # Manzyuk et al.: D(lambda x: lambda y: x * y) must not confuse the two
    # perturbations when the inner function is differentiated later.
    def outer(x: Any) -> Any:
        inner = lambda y: x * y
        return grad(lambda z: inner(z) * grad(inner)(z))(2.0)  # d/dz (x z * x) = x^2

    assert grad(outer)(3.0) == pytest.approx(6.0)  # d/dx x^2 = 2x


# -- pytrees, argnums, has_aux ----------------------------------------------------


def test_pytree_structures_are_mirrored() -> None:
    f = lambda p: p["w"][0] * p["w"][1] + p["b"][0] ** 2
    g = grad(f)({"w": [2.0, 3.0], "b": (4.0,)})
    assert g == {"w": [3.0, 2.0], "b": (8.0,)}
    assert isinstance(g["w"], list) and isinstance(g["b"], tuple)
    arr = np.array([[1.0, 2.0], [3.0, 4.0]])
    ga = grad(lambda a: (a * a).sum())(arr)
    assert ga.shape == (2, 2) and ga.dtype == np.float64
    np.testing.assert_array_equal(ga, 2 * arr)


def test_argnums_int_tuple_negative_and_out_of_range() -> None:
    f = lambda x, y, z: x * y * z
    assert grad(f, argnums=1)(2.0, 3.0, 4.0) == 8.0
    assert grad(f, argnums=(0, 2))(2.0, 3.0, 4.0) == (12.0, 6.0)
    assert grad(f, argnums=-1)(2.0, 3.0, 4.0) == 6.0
    with pytest.raises(ValueError, match="argnums 3 is out of range"):
        grad(f, argnums=3)(2.0, 3.0, 4.0)
    with pytest.raises(TypeError, match="argnums"):
        grad(f, argnums="0")(2.0, 3.0, 4.0)  # type: ignore[arg-type]


def test_has_aux() -> None:
    f = lambda x: (x**2, {"double": 2 * x})
    g, aux = grad(f, has_aux=True)(3.0)
    assert g == 6.0 and aux == {"double": 6.0}
    (value, aux), g = value_and_grad(f, has_aux=True)(3.0)
    assert (value, aux, g) == (9.0, {"double": 6.0}, 6.0)
    with pytest.raises(TypeError, match="pair"):
        grad(lambda x: x, has_aux=True)(1.0)


def test_independent_outputs_give_zeros() -> None:
    assert grad(lambda x, y: y * 2.0)(1.0, 2.0) == 0.0
    assert grad(lambda x: 5.0)(1.0) == 0.0
    assert jacobian(lambda x: [x[0], 1.0])([3.0, 4.0]) == [[1.0, 0.0], [0.0, 0.0]]
    assert jvp(lambda x: 7.0, (1.0,), (1.0,)) == (7.0, 0.0)


# -- hvp, jvp, vjp ----------------------------------------------------------------


def test_hvp_against_hand_hessian() -> None:
    f = lambda x: x[0] ** 3 * x[1] + tg.math.exp(x[1])
    x, v = [1.5, 0.5], [0.25, -2.0]
    h = [[6 * x[0] * x[1], 3 * x[0] ** 2], [3 * x[0] ** 2, math.exp(x[1])]]
    expect = [h[0][0] * v[0] + h[0][1] * v[1], h[1][0] * v[0] + h[1][1] * v[1]]
    assert hvp(f, x, v) == pytest.approx(expect, rel=1e-13)


def test_vjp_returns_one_cotangent_per_primal() -> None:
    out, back = vjp(lambda x, y: [x * y, x + y], 2.0, 3.0)
    assert out == [6.0, 5.0]
    assert back([1.0, 0.0]) == (3.0, 2.0)
    assert back([0.0, 1.0]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="cotangent"):
        back([1.0])


def test_jvp_of_grad_is_second_derivative() -> None:
    f = lambda x: tg.math.sin(x) * x**3
    x = 0.9
    _, t = jvp(grad(f), (x,), (1.0,))
    s, c = math.sin(x), math.cos(x)
    assert t == pytest.approx(-s * x**3 + 6 * c * x**2 + 6 * s * x, rel=1e-13)
    # reverse over forward too
    fwd = lambda y: jvp(f, (y,), (1.0,))[1]
    assert grad(fwd)(x) == pytest.approx(t, rel=1e-13)


# -- custom primitives ------------------------------------------------------------


def test_custom_primitive_at_every_order() -> None:
    cube = tg.primitive(lambda x: x**3, lambda x, out: 3 * x**2, name="cube")
    assert cube(2.0) == 8.0 and isinstance(cube(2.0), float)
    assert grad(cube)(2.0) == 12.0
    assert grad(grad(cube))(2.0) == 12.0
    assert grad(grad(grad(cube)))(2.0) == 6.0
    assert hessian(lambda x: cube(x[0]) * x[1])([2.0, 3.0]) == [[36.0, 12.0], [12.0, 0.0]]
    assert jvp(cube, (2.0,), (0.5,)) == (8.0, 6.0)


def test_custom_primitive_with_three_inputs() -> None:
    fma = tg.primitive(
        lambda x, y, z: x * y + z,
        lambda x, y, z, out: y,
        lambda x, y, z, out: x,
        lambda x, y, z, out: 1.0,
        name="fma",
    )
    assert grad(fma, argnums=(0, 1, 2))(2.0, 3.0, 4.0) == (3.0, 2.0, 1.0)
    assert grad(lambda a: fma(a, a * a, tg.math.sin(a)))(0.5) == pytest.approx(
        3 * 0.5**2 + math.cos(0.5)
    )
    a = tg.Var(2.0)
    out = fma(a, a, a)
    out.backward()
    assert a.grad == 2 * 2.0 + 1.0
    with pytest.raises(TypeError, match="takes 3"):
        fma(1.0, 2.0)


# -- bad input and state ----------------------------------------------------------


def test_non_scalar_output_of_grad() -> None:
    with pytest.raises(TypeError, match=r"scalar.*jacobian"):
        grad(lambda x: [x, x])(1.0)


@pytest.mark.parametrize("bad", ["abc", 1j, None, b"1"])
def test_bad_arguments(bad: Any) -> None:
    with pytest.raises(TypeError):
        grad(lambda x: x)(bad)
    with pytest.raises(TypeError):
        jvp(lambda x: x, (bad,), (1.0,))


def test_exception_inside_f_propagates_and_leaves_no_tape() -> None:
    depth = len(engine.current_stack())

    class Boom(Exception):
        pass

    def f(x: Any) -> Any:
        y = x * 2.0
        raise Boom(y)

    with pytest.raises(Boom):
        grad(f)(1.0)
    with pytest.raises(ZeroDivisionError):
        grad(lambda x: x / 0.0)(1.0)
    assert len(engine.current_stack()) == depth
    assert grad(lambda x: x * x)(4.0) == 8.0


def test_escaped_var_is_reported() -> None:
    leaked: list[Any] = []

    def f(x: Any) -> Any:
        leaked.append(x)
        return x

    grad(f)(1.0)
    with pytest.raises(ValueError, match="finished transform"):
        leaked[0] * 2.0 + leaked[0] * leaked[0]


def test_transforms_in_threads_at_once() -> None:
    results: dict[int, Any] = {}
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        barrier.wait()
        x = np.linspace(-1, 1, 6) + 0.1 * k
        out = []
        for _ in range(20):
            out.append((grad(rosen_loop)(x), hessian(rosen_loop)(x)))
        results[k] = (x, out)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, out in results.values():
        for g, h in out:
            np.testing.assert_allclose(g, rosen_der(x), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(h, rosen_hess(x), rtol=1e-12, atol=1e-12)


def test_grad_closing_over_a_user_var_gives_a_var() -> None:
    # Like PyTorch's create_graph: the gradient depends on w, so it is a Var.
    w = tg.Var(2.0)
    g = grad(lambda x: x * x * w)(3.0)
    assert isinstance(g, tg.Var) and g.data == 12.0
    g.backward()
    assert w.grad == 6.0  # d(2 x w)/dw = 2x
