"""Tests of the function transforms against independent references.

References: hand-derived derivatives, scipy's closed-form Rosenbrock gradient
and Hessian, central finite differences, and the perturbation-confusion
examples of Siskind & Pearlmutter (2005) and Manzyuk et al. (2019).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import subprocess
import sys
import threading
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess

import tapegrad as tg
from tapegrad import (
    engine,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    stop_gradient,
    value_and_grad,
    vjp,
)

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
    # Each worker reports a result or the exception it raised: an exception in
    # a thread does not fail the test by itself, so both are collected and
    # checked (a worker that neither finished nor raised is missing too).
    results: dict[int, Any] = {}
    errors: dict[int, BaseException] = {}
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        try:
            barrier.wait()
            x = np.linspace(-1, 1, 6) + 0.1 * k
            out = []
            for _ in range(20):
                out.append((grad(rosen_loop)(x), hessian(rosen_loop)(x)))
            results[k] = (x, out)
        except BaseException as error:
            errors[k] = error

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"workers raised: {errors!r}"
    assert sorted(results) == [0, 1, 2, 3]
    for x, out in results.values():
        assert len(out) == 20
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


# -- repeated argnums ----------------------------------------------------------------


@pytest.mark.parametrize("argnums", [(0, 0), (0, -2)])
def test_repeated_argnums_give_the_gradient_at_each_position(argnums: tuple[int, int]) -> None:
    f = lambda x, y: x * y  # d/dx = y = 3, at x = 2, y = 3
    assert grad(f, argnums=argnums)(2.0, 3.0) == (3.0, 3.0)
    assert value_and_grad(f, argnums=argnums)(2.0, 3.0) == (6.0, (3.0, 3.0))
    # [x y, x^2]: d/dx = [y, 2x] = [3, 4]
    expected_jacobian = [(3.0, 3.0), (4.0, 4.0)]
    assert jacobian(lambda x, y: [x * y, x * x], argnums=argnums)(2.0, 3.0) == expected_jacobian
    assert jacfwd(lambda x, y: [x * y, x * x], argnums=argnums)(2.0, 3.0) == expected_jacobian
    # x^2 y: d2/dx2 = 2 y = 6
    assert hessian(lambda x, y: x * x * y, argnums=argnums)(2.0, 3.0) == ((6.0, 6.0), (6.0, 6.0))


def test_repeated_argnums_give_separate_structures() -> None:
    g = grad(lambda v, s: v[0] * v[1] * s, argnums=(0, 1, 0))([2.0, 5.0], 4.0)
    assert g == ([20.0, 8.0], 10.0, [20.0, 8.0])  # d/dv = [v1 s, v0 s], d/ds = v0 v1
    assert g[0] is not g[2]  # mutating one gradient must not change the other


# -- keyword arguments, names, callability ------------------------------------------

# f(x, y=1) = x^2 y at x = 2, y = 3 (a keyword): f = 12, df/dx = 2xy = 12, d2f/dx2 = 2y = 6
KEYWORD_CASES = [
    (grad, 12.0),
    (value_and_grad, (12.0, 12.0)),
    (jacobian, 12.0),
    (jacrev, 12.0),
    (jacfwd, 12.0),
    (hessian, 6.0),
]


@pytest.mark.parametrize(("transform", "expected"), KEYWORD_CASES)
def test_keyword_arguments_pass_through_undifferentiated(transform: Any, expected: Any) -> None:
    f = lambda x, y=1.0: x * x * y
    assert transform(f)(2.0, y=3.0) == expected


TRANSFORMS_OF_F = [grad, value_and_grad, jacobian, jacrev, jacfwd, hessian]


@pytest.mark.parametrize("transform", TRANSFORMS_OF_F)
def test_transformed_function_keeps_name_docstring_and_signature(transform: Any) -> None:
    def loss(w: float, scale: float = 1.0) -> Any:
        """The loss."""
        return w * w * scale

    g = transform(loss)
    assert g.__name__ == "loss" and g.__doc__ == "The loss."
    assert g.__wrapped__ is loss
    assert inspect.signature(g) == inspect.signature(loss)


@pytest.mark.parametrize("transform", TRANSFORMS_OF_F)
def test_non_callable_f_raises_at_transform_time(transform: Any) -> None:
    with pytest.raises(TypeError, match=rf"^{transform.__name__}: f must be callable, got float"):
        transform(3.0)


def test_non_callable_f_of_vjp_jvp_hvp() -> None:
    with pytest.raises(TypeError, match=r"^vjp: f must be callable"):
        vjp(3.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^jvp: f must be callable"):
        jvp(3.0, (1.0,), (1.0,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^hvp: f must be callable"):
        hvp(3.0, 1.0, 1.0)  # type: ignore[arg-type]


# -- errors name the transform the user called --------------------------------------


@pytest.mark.parametrize("transform", TRANSFORMS_OF_F)
def test_bad_argnums_is_reported_by_the_transform_called(transform: Any) -> None:
    name = transform.__name__
    f = lambda x, y: x * y
    with pytest.raises(ValueError, match=rf"^{name}: argnums 2 is out of range .* 2 positional"):
        transform(f, argnums=2)(1.0, 2.0)
    with pytest.raises(TypeError, match=rf"^{name}: argnums must be an int or a tuple of ints"):
        transform(f, argnums=1.0)  # at transform time, not at the call
    with pytest.raises(TypeError, match=rf"^{name}: argnums must be .* got bool True"):
        transform(f, argnums=True)
    with pytest.raises(ValueError, match=rf"^{name}: argnums must name at least one argument"):
        transform(f, argnums=())


def test_argnums_accepts_numpy_integers() -> None:
    f = lambda x, y: x * x * y  # d/dx = 2xy, d/dy = x^2
    assert grad(f, argnums=np.int64(1))(2.0, 3.0) == 4.0  # one int: one result, not a tuple
    assert grad(f, argnums=(np.int32(0), np.int64(-1)))(2.0, 3.0) == (12.0, 4.0)
    assert grad(f, argnums=[0, 1])(2.0, 3.0) == (12.0, 4.0)


@pytest.mark.parametrize("transform", [grad, value_and_grad, hessian])
def test_non_scalar_output_names_the_transform(transform: Any) -> None:
    name = transform.__name__
    with pytest.raises(TypeError, match=rf"^{name}: f must return a scalar .* got a list of 2"):
        transform(lambda x: [x, x])(1.0)
    with pytest.raises(TypeError, match=rf"^{name}: .* got an array of shape \(2,\)"):
        transform(lambda x: x * 2.0)(np.array([1.0, 2.0]))


@pytest.mark.parametrize("transform", [grad, value_and_grad, hessian])
def test_tuple_output_suggests_has_aux(transform: Any) -> None:
    with pytest.raises(TypeError, match=r"got a tuple of 2 values; .*has_aux=True"):
        transform(lambda x: (x * x, x))(1.0)
    with pytest.raises(TypeError, match=r"str 'note' .*has_aux=True"):
        transform(lambda x: (x * x, "note"))(1.0)


def test_hessian_and_hvp_of_non_scalar_say_so() -> None:
    with pytest.raises(TypeError, match=r"^hessian: .*jacobian\(jacobian\(f\)\)"):
        hessian(lambda x: [x, x])(1.0)
    with pytest.raises(TypeError, match=r"^hvp: f must return a scalar"):
        hvp(lambda x: [x, x], 1.0, 1.0)
    # and the suggested ways out work: second derivatives of [x^3, x^2] are [6x, 2]
    assert jacobian(jacobian(lambda x: [x**3, x**2]))(2.0) == [12.0, 2.0]
    assert jvp(jacobian(lambda x: [x**3, x**2]), (2.0,), (1.0,))[1] == [12.0, 2.0]


def test_counts_in_messages_are_grammatical() -> None:
    with pytest.raises(ValueError, match=r"^jvp: 1 primal but 2 tangents"):
        jvp(lambda x: x, (1.0,), (1.0, 2.0))
    with pytest.raises(ValueError, match=r"with 1 positional argument$"):
        grad(lambda x: x, argnums=1)(1.0)


def test_zero_dimensional_array_output_is_a_scalar() -> None:
    value, g = value_and_grad(lambda x: np.array(x * x))(3.0)  # JAX accepts shape () too
    assert float(value) == 9.0 and g == 6.0


# -- has_aux on jacobian and hessian; jacfwd and jacrev --------------------------------


def test_jacobian_and_hessian_with_aux() -> None:
    def f(x: Any) -> Any:
        return [x[0] * x[1], tg.math.sin(x[0])], {"first": x[0], "note": "kept"}

    jac, aux = jacobian(f, has_aux=True)([2.0, 3.0])
    assert jac == [[3.0, 2.0], [math.cos(2.0), 0.0]]
    assert aux == {"first": 2.0, "note": "kept"} and type(aux["first"]) is float

    def g(x: Any) -> Any:
        return x[0] ** 2 * x[1], x[0] * 10.0  # H = [[2 x1, 2 x0], [2 x0, 0]]

    h, aux = hessian(g, has_aux=True)([2.0, 3.0])
    assert h == [[6.0, 4.0], [4.0, 0.0]] and aux == 20.0
    jac, aux = jacfwd(f, has_aux=True)([2.0, 3.0])
    assert jac == [[3.0, 2.0], [math.cos(2.0), 0.0]] and aux["first"] == 2.0


@pytest.mark.parametrize("transform", [jacobian, jacfwd, jacrev])
def test_jacobians_against_finite_differences(transform: Any) -> None:
    x = [0.3, -1.2, 0.8]
    jac = transform(vector_fn)(x)
    for j in range(3):
        for i in range(3):

            def fi(t: float, i: int = i, j: int = j) -> float:
                y = list(x)
                y[j] = t
                return vector_fn_floats(y)[i]

            assert jac[i][j] == pytest.approx(central(fi, x[j]), rel=1e-8, abs=1e-9)


def test_jacfwd_layouts_and_nesting() -> None:
    v = np.array([1.0, 2.0, 3.0])
    jac = jacfwd(lambda a: a * a)(v)  # diag(2 v)
    assert jac.shape == (3, 3) and jac.dtype == np.float64
    np.testing.assert_array_equal(jac, np.diag(2 * v))
    # a wide Jacobian (more outputs than inputs), structured output: d[x^2, 3x, x y]/d(x, y)
    wide = jacfwd(lambda x, y: {"sq": x * x, "lin": 3.0 * x, "prod": x * y}, argnums=(0, 1))
    assert wide(2.0, 5.0) == {"lin": (3.0, 0.0), "prod": (5.0, 2.0), "sq": (4.0, 0.0)}
    # forward over reverse and reverse over forward: d2/dx2 of x^3 = 6x
    assert jacfwd(grad(lambda x: x**3))(2.0) == 12.0
    assert grad(lambda x: jacfwd(lambda y: y**3)(x))(2.0) == 12.0


def test_jacobian_row_ignores_infinite_partials_of_other_outputs() -> None:
    # d sqrt(x)/dx is inf at 0; the row of the second output, d x / dx = 1,
    # must not pick up 0 * inf = nan from the first output.
    assert jacobian(lambda x: [tg.math.sqrt(x), x])(0.0) == [math.inf, 1.0]
    assert jacfwd(lambda x: [x, 2.0 * x])(0.0) == [1.0, 2.0]


def test_jacobian_of_arrays_with_tuple_argnums_follows_jax_layout() -> None:
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    jx, jy = jacobian(lambda a, b: a * b, argnums=(0, 1))(x, y)  # diag(y), diag(x)
    np.testing.assert_array_equal(jx, np.diag(y))
    np.testing.assert_array_equal(jy, np.diag(x))
    # sum(a^2 b): H_aa = diag(2 b), H_ab = diag(2 a), H_bb = 0
    (haa, hab), (hba, hbb) = hessian(lambda a, b: (a * a * b).sum(), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(haa, np.diag(2 * y))
    np.testing.assert_array_equal(hab, np.diag(2 * x))
    np.testing.assert_array_equal(hba, np.diag(2 * x))
    np.testing.assert_array_equal(hbb, np.zeros((2, 2)))


# -- namedtuples, dataclasses, numpy bools ----------------------------------------------

P = namedtuple("P", "a b")


@dataclasses.dataclass(frozen=True)
class Frozen:
    w: Any
    b: Any


@dataclasses.dataclass
class Layer:
    weights: Any
    bias: Any


def test_namedtuple_arguments_and_results_keep_their_type() -> None:
    g = grad(lambda p: p.a * p.b)(P(2.0, 3.0))
    assert type(g) is P and g == P(a=3.0, b=2.0)
    jac = jacobian(lambda x: P(x * x, 3.0 * x))(2.0)  # [2x, 3]
    assert type(jac) is P and jac == P(4.0, 3.0)
    h = hessian(lambda p: p.a**2 * p.b)(P(2.0, 3.0))  # [[2b, 2a], [2a, 0]]
    assert h == P(a=P(a=6.0, b=4.0), b=P(a=4.0, b=0.0))


def test_dataclass_arguments_frozen_or_not() -> None:
    g = grad(lambda p: p.w * p.b**2)(Frozen(w=3.0, b=2.0))  # [b^2, 2 w b]
    assert type(g) is Frozen and g == Frozen(w=4.0, b=12.0)
    layer = Layer(weights=np.array([1.0, -2.0]), bias=0.5)
    x = np.array([3.0, 4.0])
    g = grad(lambda m: (m.weights * x).sum() + m.bias)(layer)
    assert type(g) is Layer and g.bias == 1.0
    np.testing.assert_array_equal(g.weights, x)
    out, back = vjp(lambda m: Frozen(m.weights[0] * m.bias, m.bias), layer)
    assert out == Frozen(0.5, 0.5)
    (ct,) = back(Frozen(1.0, 0.0))  # d(w0 bias) = [bias, 0], w0
    assert type(ct) is Layer and ct.bias == 1.0 and ct.weights.tolist() == [0.5, 0.0]


def test_numpy_bools_are_treated_as_floats() -> None:
    assert grad(lambda x: x * 3.0)(np.True_) == 3.0
    g = grad(lambda v: (v * v).sum())(np.array([True, False]))  # 2 v
    assert g.dtype == np.float64 and g.tolist() == [2.0, 0.0]
    assert jvp(lambda x: x * x, (2.0,), (np.True_,)) == (4.0, 4.0)


# -- structure of cotangents and tangents ---------------------------------------------


@pytest.mark.parametrize(
    ("f", "primal", "cotangent", "message"),
    [
        (lambda x: (x, 2.0 * x), 1.0, [1.0, 1.0], "a list of length 2 where a tuple"),
        (lambda x: {"a": x, "b": x}, 1.0, {"a": 1.0, "c": 1.0}, r"keys \['a', 'c'\]"),
        (lambda v: v * 2.0, np.ones((2, 3)), np.ones((3, 2)), r"shape \(3, 2\) where"),
        (lambda x: P(x, x), 1.0, (1.0, 1.0), "where a namedtuple P"),
        (lambda x: [x, [x, x]], 1.0, [1.0, (1.0, 1.0)], r"at \[1\], a tuple"),
    ],
)
def test_vjp_rejects_a_cotangent_of_another_structure_with_the_same_size(
    f: Any, primal: Any, cotangent: Any, message: str
) -> None:
    _, back = vjp(f, primal)
    with pytest.raises(ValueError, match=r"^vjp: the cotangent must have the structure"):
        back(cotangent)
    with pytest.raises(ValueError, match=message):
        back(cotangent)


def test_jvp_and_hvp_reject_a_tangent_of_another_structure() -> None:
    with pytest.raises(ValueError, match=r"^jvp: tangent 0 must have the structure of primal 0"):
        jvp(lambda v: v[0], ([1.0, 2.0],), ((1.0, 0.0),))
    with pytest.raises(ValueError, match=r"at \['w'\], an array of shape \(2, 1\)"):
        jvp(lambda p: p["w"].sum(), ({"w": np.ones(2)},), ({"w": np.ones((2, 1))},))
    with pytest.raises(ValueError, match=r"^hvp: v must have the structure of x"):
        hvp(lambda v: v[0] ** 2, np.array([1.0, 2.0]), [1.0, 0.0])


# -- stop_gradient -------------------------------------------------------------------


def test_stop_gradient_makes_a_constant() -> None:
    # d/dx [x * c] with c = x held constant is c = 3
    assert grad(lambda x: x * stop_gradient(x))(3.0) == 3.0
    assert grad(lambda x: stop_gradient(x * x))(3.0) == 0.0
    # d/dx [x^2 c] = 2 x c = 18 at x = c = 3
    assert grad(lambda x: x**2 * stop_gradient(x))(3.0) == 18.0


def test_stop_gradient_under_nested_transforms_stops_the_innermost_only() -> None:
    # API.md: on nested tapes, stop_gradient gives the outer Var. The inner
    # grad sees f(x) = x^2 c with c constant: f' = 2 x c. The outer grad then
    # differentiates 2 x c with c = x as a Var of its own level:
    # d/dx [2 x x] = 4x = 12 at x = 3. (JAX's lax.stop_gradient, which stops
    # every level, would give 2 c = 6.)
    f = lambda x: x**2 * stop_gradient(x)
    assert grad(grad(f))(3.0) == 12.0
    # Two stop_gradients reach the float under two transforms: 2 c = 6.
    g = lambda x: x**2 * stop_gradient(stop_gradient(x))
    assert grad(grad(g))(3.0) == 6.0


def test_stop_gradient_values_and_pytrees() -> None:
    assert stop_gradient(2.5) == 2.5 and type(stop_gradient(2)) is float
    v = tg.Var(4.0)
    assert type(stop_gradient(v)) is float and stop_gradient(v) == 4.0
    out = stop_gradient({"p": P(v, True), "a": np.array([v, v * 2.0], dtype=object)})
    assert out["p"] == P(4.0, 1.0) and type(out["p"]) is P
    assert out["a"].dtype == np.float64 and out["a"].tolist() == [4.0, 8.0]
    with pytest.raises(TypeError, match=r"^stop_gradient: str"):
        stop_gradient("x")
