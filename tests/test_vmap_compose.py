"""``vmap`` composes as JAX users expect: nested, under ``grad`` and ``jit``, pytree ``in_axes``.

Every case is checked against a loop of eager ``f`` over the samples, and
every derivative against a hand formula or central finite differences (never
tapegrad against itself). The cases are the ones JAX's own API tests pose for
``jax.vmap`` (nesting, ``in_axes`` prefixes and their errors, keyword
arguments, differentiating through a mapped loss), with tapegrad's answers.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import OrderedDict, namedtuple
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import array_api_strict
import numpy as np
import pytest
from hypothesis import assume, given
from program_checks import (
    close,
    examples,
    near_points,
    near_threshold,
    on_vars,
    outcome,
    widest_gap,
    with_guard,
)

import tapegrad as tg
from tapegrad.context import note_route
from tapegrad.testing import BUILTIN_OPS, Program, programs

RNG = np.random.default_rng(16)


def branchy(x: Any, y: Any) -> Any:
    """A function with a branch per sample and a smooth op in one branch."""
    return x * y + tg.math.sin(x) if x > 0 else x - 2.0 * y


def central_difference(g: Callable[[np.ndarray], float], w: np.ndarray) -> np.ndarray:
    """The gradient of ``g`` at ``w`` by central differences (step 1e-6)."""
    h = 1e-6
    out = np.empty_like(w)
    for k in range(w.size):
        e = np.zeros_like(w)
        e[k] = h
        out[k] = (g(w + e) - g(w - e)) / (2 * h)
    return out


def no_warnings(fn: Callable[[], Any]) -> Any:
    """``fn()``, failing on any warning (jit's fallback warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn()


# -- nesting -------------------------------------------------------------------------------


def test_vmap_of_vmap_maps_two_batch_axes() -> None:
    x, y = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))
    got = no_warnings(lambda: tg.vmap(tg.vmap(branchy))(x, y))
    want = np.array([[branchy(a, b) for a, b in zip(r, s)] for r, s in zip(x, y)])
    assert got.shape == (4, 5) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_vmap_of_vmap_with_other_axes_and_an_unbatched_argument() -> None:
    x = RNG.normal(size=(3, 4))  # outer batch along axis 1, inner along axis 0 of the rest
    inner = tg.vmap(branchy, in_axes=(0, None))
    got = tg.vmap(inner, in_axes=(1, None))(x, 0.5)
    want = np.array([[branchy(a, 0.5) for a in x[:, j]] for j in range(4)])
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_vmap_of_jit_and_vmap_of_grad() -> None:
    xs = np.array([1.5, -2.0, 0.25])
    f = tg.jit(lambda x: x * x if x > 0 else -x)
    np.testing.assert_array_equal(tg.vmap(f)(xs), [2.25, 2.0, 0.0625])
    slope = tg.vmap(tg.grad(lambda x: x * x * x))
    np.testing.assert_array_equal(slope(xs), 3.0 * xs * xs)  # 3 x**2


# -- under grad ----------------------------------------------------------------------------


def loss(w: Any, x: Any) -> Any:
    """A squared residual of a linear model with a kink: differentiable where tested."""
    r = w[0] * x[0] + w[1] * x[1] - 1.0
    return r * r if r > 0 else -0.5 * r


X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [-2.0, 0.25]])
W = np.array([0.3, -0.2])


def by_hand(w: np.ndarray) -> np.ndarray:
    """d/dw sum_i loss(w, x_i): 2 r x where r > 0, -x / 2 elsewhere."""
    total = np.zeros(2)
    for x in X:
        r = w @ x - 1.0
        total += 2.0 * r * x if r > 0 else -0.5 * x
    return total


def test_grad_of_a_vmapped_loss_equals_the_loop_and_the_hand_formula() -> None:
    def total(w: Any) -> Any:
        return tg.vmap(loss, in_axes=(None, 0))(w, X).sum()

    got = np.array(tg.grad(total)(W))
    loop = sum(np.array(tg.grad(loss)(W, x)) for x in X)
    np.testing.assert_allclose(got, loop, rtol=1e-14)
    np.testing.assert_allclose(got, by_hand(W), rtol=1e-14)
    plain = lambda w: sum(loss(w, x) for x in X)
    np.testing.assert_allclose(got, central_difference(plain, W), rtol=1e-6)
    w2 = np.array([1.0, 1.0])  # other branches
    np.testing.assert_allclose(np.array(tg.grad(total)(w2)), by_hand(w2), rtol=1e-14)


def test_grad_through_vmap_of_a_closure_over_the_differentiated_variable() -> None:
    xs = np.array([1.0, -2.0, 4.0])

    def total(w: Any) -> Any:
        return tg.vmap(lambda x: tg.math.exp(w * x))(xs).sum()

    w = 0.3
    assert tg.grad(total)(w) == pytest.approx(float(np.sum(xs * np.exp(w * xs))), rel=1e-14)


def test_hessian_of_a_vmapped_quadratic() -> None:
    def total(w: Any) -> Any:
        return tg.vmap(lambda w, x: (w[0] * x[0] + w[1] * x[1] - 1.0) ** 2, in_axes=(None, 0))(
            w, X
        ).sum()

    np.testing.assert_allclose(np.array(tg.hessian(total)(list(W))), 2.0 * X.T @ X, rtol=1e-14)


def test_an_array_of_vars_gives_an_array_of_vars_with_derivatives() -> None:
    vs = np.array([tg.Var(1.5), tg.Var(-2.0)], dtype=object)
    out = tg.vmap(lambda x: x * x if x > 0 else -3.0 * x)(vs)
    assert out.dtype == object and [v.data for v in out] == [2.25, 6.0]
    out.sum().backward()
    assert [v.grad for v in vs] == [3.0, -3.0]  # 2x, -3


# -- under jit -----------------------------------------------------------------------------


def test_jit_of_vmap_is_vmap_without_a_warning_and_replays() -> None:
    batched = tg.vmap(branchy)
    fast = tg.jit(batched)
    assert fast is batched  # its programs are already replayed, on arrays
    x, y = RNG.normal(size=6), RNG.normal(size=6)
    for scale in (1.0, 2.0, -1.0):  # the first call traces; later ones replay or retrace
        got = no_warnings(functools.partial(fast, scale * x, y))
        np.testing.assert_allclose(got, [branchy(a, b) for a, b in zip(scale * x, y)], rtol=1e-13)
    assert fast.cache.size >= 1  # type: ignore[attr-defined]


def test_jit_of_grad_of_a_vmapped_loss() -> None:
    fast = tg.jit(tg.grad(lambda w: tg.vmap(loss, in_axes=(None, 0))(w, X).sum()))
    for w in (W, np.array([1.0, 1.0]), W):
        got = no_warnings(functools.partial(fast, w))
        np.testing.assert_allclose(np.asarray(got), by_hand(w), rtol=1e-14)


# -- in_axes and keyword arguments ---------------------------------------------------------


def test_keyword_arguments_are_mapped_along_axis_0() -> None:
    x, y = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.25, -1.0])
    got = tg.vmap(branchy)(x, y=y)
    np.testing.assert_allclose(got, [branchy(a, y=b) for a, b in zip(x, y)], rtol=1e-14)
    got = tg.vmap(branchy, in_axes=None)(x=x, y=y)  # in_axes is about positional ones
    np.testing.assert_allclose(got, [branchy(a, b) for a, b in zip(x, y)], rtol=1e-14)


def test_in_axes_is_a_pytree_prefix_of_the_arguments() -> None:
    m = RNG.normal(size=(3, 4))
    params = {"w": m, "b": 0.5, "name": "layer"}

    def f(p: Any, x: Any) -> Any:
        return p["w"][0] * x[0] + p["b"] if p["name"] == "layer" else 0.0

    axes = ({"w": 1, "b": None, "name": None}, 0)
    xs = RNG.normal(size=(4, 2))
    got = tg.vmap(f, in_axes=axes)(params, xs)
    want = [f({"w": m[:, i], "b": 0.5, "name": "layer"}, xs[i]) for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # a list of arrays under one int: each array is batched
    pair = [RNG.normal(size=3), RNG.normal(size=3)]
    got = tg.vmap(lambda p: p[0] * p[1])(pair)
    np.testing.assert_allclose(got, pair[0] * pair[1], rtol=1e-15)
    # a namedtuple prefix for a namedtuple argument
    Pair = namedtuple("Pair", "a b")
    got = tg.vmap(lambda p: p.a * p.b, in_axes=(Pair(0, None),))(Pair(xs[:, 0], 3.0))
    np.testing.assert_array_equal(got, xs[:, 0] * 3.0)
    # a list of entries is read as the tuple (as JAX does), numpy ints are ints
    np.testing.assert_allclose(
        tg.vmap(branchy, in_axes=[np.int64(0), None])(xs[:, 0], 2.0),
        [branchy(a, 2.0) for a in xs[:, 0]],
        rtol=1e-14,
    )


def test_a_dict_argument_is_batched_by_key() -> None:
    d = OrderedDict([("b", np.array([1.0, 2.0])), ("a", np.array([0.5, 0.25]))])
    np.testing.assert_array_equal(tg.vmap(lambda d: d["b"] - d["a"])(d), [0.5, 1.75])


def test_a_dict_argument_keeps_its_class_and_order_while_traced() -> None:
    seen: list[Any] = []

    def f(d: Any) -> Any:
        seen.append(d)
        return d["b"] - d["a"]

    d = OrderedDict([("b", np.array([1.0, 2.0])), ("a", np.array([0.5, 0.25]))])
    tg.vmap(f)(d)
    assert all(type(s) is OrderedDict and list(s) == ["b", "a"] for s in seen)


@pytest.mark.parametrize(
    ("in_axes", "match"),
    [
        ({"x": 0}, "in_axes is a dict"),
        ("0", "in_axes must be an int"),
        ((0, 1.5), r"in_axes\[1\] must be an int"),
        ((0, True), r"in_axes\[1\] must be an int"),
        (({"w": [0, "a"]},), r"in_axes\[0\]\['w'\]\[1\] must be an int"),
    ],
)
def test_bad_in_axes_are_refused_when_vmap_is_created(in_axes: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        tg.vmap(branchy, in_axes=in_axes)


def test_in_axes_that_do_not_fit_the_arguments_name_the_argument() -> None:
    f = tg.vmap(lambda d: d["a"], in_axes=({"a": 0, "b": None},))
    with pytest.raises(ValueError, match=r"argument 0 is a dict with keys \['a'\]"):
        f({"a": np.zeros(2)})
    g = tg.vmap(lambda p: p[0], in_axes=((0, 0),))
    with pytest.raises(ValueError, match="in_axes for argument 0 is a tuple of 2 entries"):
        g([np.zeros(2)])
    with pytest.raises(TypeError, match=r"argument 0\['b'\] is batched .* float"):
        tg.vmap(lambda d: d["a"])({"a": np.zeros(2), "b": 1.0})


def test_unhashable_and_non_numeric_fixed_arguments_are_handed_to_f() -> None:
    xs = np.array([1.0, -2.0])
    config = SimpleNamespace(scale=2.0)  # unhashable: no program is kept for it
    got = tg.vmap(lambda x, c: x * c.scale if x > 0 else x, in_axes=(0, None))(xs, config)
    np.testing.assert_array_equal(got, [2.0, -2.0])
    names = np.array(["ab", "c"])
    got = tg.vmap(lambda x, s, n: x * len(s) + len(n[0]), in_axes=(0, None, None))(
        xs, {1, 2, 3}, names
    )
    np.testing.assert_array_equal(got, [5.0, -4.0])
    with pytest.raises(TypeError, match=r"argument 0 is batched .* array of <U2"):
        tg.vmap(lambda n: 1.0)(names)


# -- outputs -------------------------------------------------------------------------------


def test_a_float_and_a_0d_array_are_the_same_output() -> None:
    def f(x: Any) -> Any:
        return np.asarray(x * 2.0) if x > 0 else x * 3.0

    xs = np.array([1.0, -1.0, 2.0])
    got = tg.vmap(f)(xs)
    np.testing.assert_array_equal(got, [float(f(x)) for x in xs])


def test_a_string_output_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"f returns a str \('pos'\)"):
        tg.vmap(lambda x: "pos" if x > 0 else "neg")(np.array([1.0, -1.0]))


@pytest.mark.parametrize("namespace", [np, array_api_strict])
def test_bool_outputs_stay_bool(namespace: Any) -> None:
    xs = namespace.asarray([1.0, -1.0, float("nan")], dtype=namespace.float64)
    got = tg.vmap(lambda x: x > 0)(xs)
    assert got.dtype == namespace.bool
    assert [bool(v) for v in got] == [True, False, False]  # NaN > 0 is False, as f says
    both = tg.vmap(lambda x: (x > 0, x * 2.0))(xs[:2])
    assert both[0].dtype == namespace.bool and both[1].dtype == namespace.float64


def test_numpy_bool_results_of_f_itself_stay_bool() -> None:
    def f(x: Any) -> Any:
        return np.bool_(float(x) > 0)  # float(): not traceable, so f runs on each sample

    with pytest.warns(RuntimeWarning, match="float"):
        got = tg.vmap(f)(np.array([1.0, -1.0]))
    assert got.dtype == np.bool_ and got.tolist() == [True, False]


# -- the numbered patterns, on vmap's side -------------------------------------------------


@pytest.mark.parametrize("bound", [10**400, -(10**400), 2**53 + 1])
def test_a_guard_against_an_int_beyond_the_floats_compares_as_python(bound: int) -> None:
    def f(x: Any) -> float:
        return 1.0 if x > bound else 0.0

    xs = np.array([1.0, -1e308, 1e308, float("inf"), -float("inf"), 2.0**53, 2.0**53 + 2])
    np.testing.assert_array_equal(tg.vmap(f)(xs), [f(float(x)) for x in xs])


@pytest.mark.parametrize("namespace", [np, array_api_strict])
def test_a_complex_batch_raises_a_type_error(namespace: Any) -> None:
    z = namespace.asarray([1.0 + 2.0j, 3.0 + 0.0j])
    with pytest.raises(TypeError, match="argument 0 is a complex array"):
        tg.vmap(lambda x: x * 2.0)(z)


def test_a_float32_batch_is_computed_as_the_engine_computes_it() -> None:
    # The engine reads a float32 as the float it is (tg.Var(np.float32(x)).data is a
    # float), and so does vmap: f's samples are floats, the results float64.
    xs = np.array([0.1, 2.5, -3.7], dtype=np.float32)

    def f(x: Any) -> Any:
        return x * 0.1 + tg.math.sin(x) if x > 0 else x / 3.0

    got = tg.vmap(f)(xs)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [f(tg.Var(x)).data for x in xs], rtol=1e-15)


def test_a_new_branch_per_sample_stops_tracing_and_warns_once_with_the_fix() -> None:
    weights = RNG.normal(size=(8, 3)).tolist()

    def layer(x: Any) -> Any:
        return sum(max(0.0, sum(w * xi for w, xi in zip(row, x))) for row in weights)

    xs = RNG.normal(size=(300, 3))
    batched = tg.vmap(layer)
    with pytest.warns(RuntimeWarning, match=r"tapegrad\.math\.relu") as caught:
        got = batched(xs)
        again = batched(xs)
    assert len(caught) == 1
    want = [layer(x) for x in xs]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(again, want)


def test_a_few_branches_over_a_large_batch_are_traced_without_a_warning() -> None:
    def piecewise(x: Any) -> Any:
        if x < -1.0:
            return -x
        if x < 0.0:
            return x * x
        if x < 1.0:
            return tg.math.sin(x)
        return 2.0 * x

    xs = RNG.normal(size=2000) * 2.0
    got = no_warnings(lambda: tg.vmap(piecewise)(xs))
    np.testing.assert_allclose(got, [piecewise(x) for x in xs], rtol=1e-13)


def test_a_noted_route_makes_the_trace_a_loop_with_a_warning_naming_its_line() -> None:
    calls: list[float] = []

    def f(x: Any) -> Any:
        note_route("format")  # what tapegrad's format() of a traced value reports
        calls.append(x)
        return x * 2.0

    with pytest.warns(RuntimeWarning, match=r"by format at .*test_vmap_compose\.py:\d+"):
        got = tg.vmap(f)(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(got, [2.0, 4.0, 6.0])
    assert calls[1:] == [1.0, 2.0, 3.0]  # traced once, then a loop of f


def test_f_that_converts_to_float_is_a_loop_with_a_warning() -> None:
    def f(x: Any) -> Any:
        return math.sin(x) * 2.0  # Python's math: not traceable

    xs = np.array([0.5, -1.0, 2.0])
    with pytest.warns(RuntimeWarning, match=r"by float\(\) \(or math\)"):
        got = tg.vmap(f)(xs)
    np.testing.assert_array_equal(got, [f(x) for x in xs])


def test_samples_where_a_caught_op_raises_are_computed_by_f() -> None:
    def safe_log(x: Any) -> Any:
        try:
            return tg.math.log(x)
        except ValueError:
            return -1.0

    xs = np.array([-1.0, 2.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = tg.vmap(safe_log)(xs)
    np.testing.assert_array_equal(got, [safe_log(x) for x in xs])


def test_a_formatted_traced_value_is_not_replayed() -> None:
    def f(x: Any) -> Any:
        return float(format(x, ".17g")) * 2.0

    xs = np.array([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = tg.vmap(f)(xs)
    np.testing.assert_array_equal(got, [f(x) for x in xs])


# -- random programs -----------------------------------------------------------------------

# As tests/test_vmap.py: ops that vmap computes as f does, up to ulps.
OPS = [
    name
    for name in BUILTIN_OPS
    if name not in ("round", "fmod", "floor", "ceil", "trunc", "scaled_pow")
]


def clear_points(f: Callable[..., Any], prog: Program, threshold: float) -> list[tuple[float, ...]]:
    """Points near the program's inputs where f is finite on floats and Vars, off the guard."""
    points = []
    for p in near_points(prog.inputs):
        r, rv = outcome(f, *p), outcome(on_vars(f), *p)
        if r[0] == "ok" and rv[0] == "ok" and not near_threshold(prog(*p), threshold):
            try:
                if math.isfinite(f(*p)):
                    points.append(p)
            except TypeError:  # a complex number
                continue
    return points


@examples(0.5)
@given(prog=programs(max_ops=12, ops=OPS))
def test_random_programs_nested_and_under_grad_match_loops(prog: Program) -> None:
    n = prog.n_inputs
    threshold = widest_gap([prog(*p) for p in near_points(prog.inputs)])
    f = with_guard(prog, threshold)
    points = clear_points(f, prog, threshold)
    assume(len(points) >= 2)
    points = points[: 2 * (len(points) // 2)]
    rows = [points[: len(points) // 2], points[len(points) // 2 :]]
    grid = [np.array([[p[j] for p in row] for row in rows]) for j in range(n)]
    nested = tg.vmap(tg.vmap(f))(*grid)
    want = np.array([[f(*p) for p in row] for row in rows])
    assert nested.shape == want.shape
    for a, b in zip(nested.flat, want.flat):
        assert close(float(a), float(b), 1e-12, scale=1.0), (a, b)
    # d/dw_j of sum_i f(w_1 x_i1, ..., w_n x_in) at w = 1: sum_i x_ij (df/dx_j)(x_i)
    flat = [np.array([p[j] for p in points]) for j in range(n)]

    def total(*ws: Any) -> Any:
        return tg.vmap(f)(*[c * w for c, w in zip(flat, ws)]).sum()

    got = tg.grad(total, argnums=tuple(range(n)))(*([1.0] * n))
    slopes = [tg.grad(f, argnums=tuple(range(n)))(*p) for p in points]
    for j in range(n):
        loop = sum(p[j] * s[j] for p, s in zip(points, slopes))
        scale = max(1.0, sum(abs(p[j] * s[j]) for p, s in zip(points, slopes)))
        assert close(float(got[j]), float(loop), 1e-10, scale=scale), (j, got, loop)
