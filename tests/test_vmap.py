"""``vmap``: one trace replayed over arrays equals a Python loop of ``f``.

Reference: ``[f(*sample) for sample in batch]``, run eagerly, compared per
sample to a relative 1e-12 (array functions such as numpy's ``sin`` may round
differently from ``math``'s); exceptions by type and message. Tested with
numpy and array-api-strict (the Array API standard and nothing more), and
torch when it and array-api-compat are installed.
"""

from __future__ import annotations

import gc
import importlib
import math
import re
import weakref
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import array_api_strict
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from program_checks import (
    assert_batch_matches,
    counted,
    examples,
    leaves,
    near_points,
    near_threshold,
    on_vars,
    outcome,
    set_segment,
    steady,
    take,
    widest_gap,
    with_guard,
)

import tapegrad as tg
from tapegrad.engine import current_stack
from tapegrad.programs import pyarrays
from tapegrad.testing import BUILTIN_OPS, Program, programs

NAMESPACES = {"numpy": np, "array_api_strict": array_api_strict}


def columns(xp: Any, points: list[tuple[float, ...]]) -> list[Any]:
    """One array per argument, the points as its rows: vmap's batch of ``points``."""
    return [xp.asarray([p[j] for p in points], dtype=xp.float64) for j in range(len(points[0]))]


def loop(f: Callable[..., Any], points: list[tuple[float, ...]]) -> list[Any]:
    """The reference: f at each point."""
    return [f(*p) for p in points]


def finite_everywhere(result: Any) -> bool:
    """Whether every number of a result is a finite real (not inf, NaN, or complex)."""
    try:
        return all(
            bool(np.all(np.isfinite(np.asarray(x, dtype=np.float64))))
            for x in leaves(result)
            if not isinstance(x, str)
        )
    except TypeError:  # a complex number: x ** y of floats with a negative base
        return False


# -- random programs ---------------------------------------------------------------------

TRANSFORMS: dict[str, Callable[[Callable[..., Any], int], Callable[..., Any]]] = {
    "f": lambda f, n: f,
    "value_and_grad": lambda f, n: tg.value_and_grad(f, argnums=tuple(range(n))),
    "hessian": lambda f, n: tg.hessian(f, argnums=tuple(range(n))),
}


# Left out until they batch as f computes them: round (and fmod, whose slope
# rounds; test_round_is_batched), floor, ceil and trunc (whose -0.0 turns
# copysign and atan2 around; test_rounding_functions_give_fs_zero_sign).
# scaled_pow called directly (a rule of the partials, not tapegrad.math) can
# return NaN without raising, where the rule's NaN is positive and numpy's
# pow gives the hardware's negative one: copysign then tells them apart.
LEFT_OUT = ("round", "fmod", "floor", "ceil", "trunc", "scaled_pow")
OPS = [name for name in BUILTIN_OPS if name not in LEFT_OUT]


@pytest.mark.parametrize("namespace", list(NAMESPACES))
@pytest.mark.parametrize("transform", list(TRANSFORMS))
@examples(1.0)
@given(
    prog=programs(max_ops=20, ops=OPS),
    far=st.lists(st.floats(-3.0, 3.0), min_size=8, max_size=8),
)
def test_random_programs_with_a_branch_match_a_loop(
    namespace: str, transform: str, prog: Program, far: list[float]
) -> None:
    xp = NAMESPACES[namespace]
    n = prog.n_inputs
    near = near_points(prog.inputs)
    threshold = widest_gap([prog(*p) for p in near])  # samples on both sides of the guard
    f = TRANSFORMS[transform](with_guard(prog, threshold), n)
    far_points = [tuple(far[k : k + n]) for k in range(0, len(far) - n + 1, n)]
    points = near + far_points
    results = [outcome(f, *p) for p in points]
    on_var_results = [outcome(on_vars(f), *p) for p in points]

    def good(k: int) -> bool:
        """f gives finite values on floats and on Vars, and the guard is clear-cut."""
        p, r, rv = points[k], results[k], on_var_results[k]
        if r[0] != "ok" or rv[0] != "ok" or not finite_everywhere(f(*p)):
            return False
        return not near_threshold(prog(*p), threshold)

    kept = [k for k in range(len(points)) if good(k)]
    assume(kept)
    samples = [points[k] for k in kept]
    batched = tg.vmap(f)(*columns(xp, samples))
    for x in leaves(batched):
        assert isinstance(x, type(xp.asarray(0.0)))  # arrays of the inputs' namespace
    # Near points are where the program is well conditioned (tapegrad.testing
    # keeps its ops away from edges there); a far point may sit where an ulp of
    # numpy's tanh becomes many in atanh near 1: only steady ones are compared,
    # to a looser tolerance.
    near_rows = [i for i, k in enumerate(kept) if k < len(near)]
    far_rows = [i for i, k in enumerate(kept) if k >= len(near) and steady(f, samples[i])]
    assert_batch_matches(take(batched, near_rows), [f(*samples[i]) for i in near_rows])
    assert_batch_matches(take(batched, far_rows), [f(*samples[i]) for i in far_rows], rtol=1e-8)
    # The whole batch: where f raises at some sample, vmap raises what f raises
    # there (the type: messages differ between f on floats and the Vars vmap traces).
    errors = {r[1] for r in results + on_var_results if r[0] == "raises"}
    if errors:
        got = outcome(tg.vmap(f), *columns(xp, points))
        assert got[0] == "raises" and got[1] in errors, (got, errors)


# -- branches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", list(NAMESPACES))
def test_samples_take_their_own_branch_and_never_the_wrong_one(namespace: str) -> None:
    xp = NAMESPACES[namespace]

    def f(x: Any) -> Any:  # down the wrong branch, log or sqrt would raise
        return tg.math.log(x) if x > 0 else tg.math.sqrt(-x)

    points = [(4.0,), (-4.0,), (0.5,), (-0.25,), (1.0,), (-9.0,), (0.0,)]
    vg = tg.value_and_grad(f)
    assert_batch_matches(tg.vmap(vg)(*columns(xp, points)), loop(vg, points))
    # Hand-derived at -4: sqrt(4) = 2, slope -1 / (2 sqrt(4)) = -0.25.
    values, slopes = tg.vmap(vg)(xp.asarray([-4.0, 4.0]))
    assert float(values[0]) == 2.0 and float(slopes[0]) == -0.25


def test_a_loop_count_per_sample() -> None:
    def halve(x: Any) -> Any:
        n = 0
        while x > 1:
            x = x / 2
            n += 1
        return x, n

    xs = [5.0, 3.0, 9.0, 100.0, 0.5, 5.0, 1.0, 2.0, 1e6, 0.0]
    counted_f, calls = counted(halve)
    got = tg.vmap(counted_f)(np.array(xs))
    assert_batch_matches(got, [halve(x) for x in xs], rtol=0.0)  # halving is exact
    assert len(calls) == 7  # one trace per distinct count (3, 2, 4, 7, 0, 1, 20)


@pytest.mark.parametrize("namespace", list(NAMESPACES))
def test_builtin_max_equality_truth_and_isnan_split_samples(namespace: str) -> None:
    xp = NAMESPACES[namespace]

    def f(x: Any, y: Any) -> Any:
        top = max(x, y)  # y > x ?
        if x == 0:
            return top * 3.0
        if not y:
            return top - 1.0
        return 0.0 if tg.math.isnan(x * y) else top * x * y

    points = [(1.0, 2.0), (2.0, 1.0), (0.0, 5.0), (0.0, -5.0), (3.0, 0.0), (-1.0, -0.0), (2.0, 2.0)]
    points += [(math.nan, 1.0), (1.0, math.nan), (math.inf, 0.5)]
    assert_batch_matches(tg.vmap(f)(*columns(xp, points)), loop(f, points), rtol=0.0)


def test_non_finite_inputs_and_results_are_fs() -> None:
    def f(x: Any) -> Any:
        y = x * 1e308  # overflows to inf without an error, as floats do
        return y + 1.0 if x > -5.0 else x - 1.0

    xs = [1.0, 10.0, -10.0, math.inf, -math.inf, math.nan, 0.0]
    got = tg.vmap(f)(np.array(xs))
    assert_batch_matches(got, [f(x) for x in xs], rtol=0.0)


@pytest.mark.parametrize(
    ("f", "bad"),
    [
        (lambda x: tg.math.log(x) * 2.0, -1.0),
        (lambda x: 1.0 / (x - 2.0), 2.0),
        (lambda x: tg.math.exp(x * 1000.0), 1.0),
        (lambda x: tg.math.asin(x), 1.5),
        (lambda x: tg.math.pow(x, 0.5), -4.0),
    ],
    ids=["log", "div", "exp-overflow", "asin", "pow"],
)
def test_a_sample_outside_an_ops_domain_raises_fs_error(f: Callable[..., Any], bad: float) -> None:
    # f's error on a float (Python's message) or on a Var (tapegrad's, naming the op).
    expected = {outcome(f, bad), outcome(f, tg.Var(bad))}
    assert all(e[0] == "raises" for e in expected)
    for xs in ([0.5, bad, 0.25], [bad, 0.5]):  # traced at a good sample, or at the bad one
        assert outcome(tg.vmap(f), np.array(xs)) in expected


def test_custom_primitives_and_erf_are_computed_element_by_element() -> None:
    cube = tg.primitive(lambda x: x * x * x, lambda x, out: 3.0 * x * x, name="cube")

    def f(x: Any, y: Any) -> Any:
        return cube(x) * tg.math.erf(y) + tg.math.erf(x * y)

    points = [(0.5, 1.0), (-1.0, 2.0), (2.0, -0.5), (0.0, 0.0)]
    for g in (f, tg.value_and_grad(f, argnums=(0, 1)), tg.hessian(f, argnums=(0, 1))):
        assert_batch_matches(tg.vmap(g)(*columns(array_api_strict, points)), loop(g, points))


def test_a_custom_primitive_is_not_run_on_samples_of_another_branch() -> None:
    p15 = tg.primitive(lambda x: x**1.5, lambda x, out: 1.5 * x**0.5, name="p15")

    def f(x: Any) -> Any:
        return p15(x) if x > 0 else -x

    xs = [4.0, -1.0]
    assert_batch_matches(tg.vmap(f)(np.array(xs)), [f(x) for x in xs])


def test_an_unused_op_that_raises_still_raises() -> None:
    def f(x: Any) -> Any:
        unused = 1.0 / x
        del unused
        return x * 2.0

    with pytest.raises(ZeroDivisionError):
        tg.vmap(f)(np.array([1.0, 0.0]))


def test_a_guard_against_a_large_int_splits_samples_exactly() -> None:
    def f(x: Any) -> Any:
        return x * 2.0 if x > 2**53 + 3 else x * 3.0

    xs = [1.0, 2.0**53 + 4]
    assert_batch_matches(tg.vmap(f)(np.array(xs)), [f(x) for x in xs], rtol=0.0)


@pytest.mark.parametrize("spelling", ["x > c", "c < x"])
@pytest.mark.parametrize("namespace", [np, array_api_strict])
def test_a_guard_against_a_float32_compares_as_f_does(spelling: str, namespace: Any) -> None:
    # A float compares with a numpy float32 in float32: 0.100000002 rounds to
    # float32(0.1), so it is not above it; a float64 batch would say it is.
    c = np.float32(0.1)

    def f(x: Any) -> Any:
        above = x > c if spelling == "x > c" else c < x
        return x * 2.0 if above else x * 3.0

    xs = [0.2, 0.100000002, 0.05, 0.1]
    expected = [f(x) for x in xs]
    assert expected[1] == 0.100000002 * 3.0
    assert_batch_matches(tg.vmap(f)(namespace.asarray(xs)), expected, rtol=0.0)
    assert [tg.grad(f)(x) for x in xs] == [2.0, 3.0, 3.0, 3.0]


def test_round_is_batched() -> None:
    xs = [0.4, 1.6, 2.5, -0.5]
    got = tg.vmap(lambda x: round(x) * 2.0)(np.array(xs))
    assert_batch_matches(got, [float(round(x)) * 2.0 for x in xs], rtol=0.0)
    g = tg.grad(lambda y: tg.math.fmod(2.0, y))
    assert_batch_matches(tg.vmap(g)(np.array([0.7, 0.9])), [g(0.7), g(0.9)], rtol=0.0)


@pytest.mark.parametrize("name", ["floor", "ceil", "trunc"])
def test_rounding_functions_give_fs_zero_sign(name: str) -> None:
    rounding = getattr(tg.math, name)

    def f(x: Any) -> Any:
        return tg.math.copysign(2.0, rounding(x))

    xs = [-0.5, -0.0, 0.5, 0.0]
    got = np.asarray(tg.vmap(f)(np.array(xs)))
    assert got.tolist() == [f(x) for x in xs]


# -- axes and outputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", list(NAMESPACES))
def test_in_axes_variants(namespace: str) -> None:
    xp = NAMESPACES[namespace]

    def f(row: Any, c: Any) -> Any:
        return row[0] * c + row[1] if row[2] > 0 else row[1] - c

    m = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, -6.0], [7.0, -8.0, 9.0], [0.5, 0.25, -1.0]])
    cs = np.array([2.0, -1.0, 0.5, 3.0])
    want = [f(m[i], cs[i]) for i in range(4)]
    a, at, c = xp.asarray(m), xp.asarray(m.T.copy()), xp.asarray(cs)
    assert_batch_matches(tg.vmap(f)(a, c), want)
    assert_batch_matches(tg.vmap(f, in_axes=(1, 0))(at, c), want)
    assert_batch_matches(tg.vmap(f, in_axes=(-1, 0))(at, c), want)  # last axis
    want_none = [f(m[i], 2.0) for i in range(4)]
    assert_batch_matches(tg.vmap(f, in_axes=(0, None))(a, 2.0), want_none)
    # An unbatched array argument is the same for every sample.
    g = tg.vmap(lambda x, row: row[0] * x + row[1], in_axes=(0, None))
    assert_batch_matches(g(c, m[1]), [m[1][0] * x + m[1][1] for x in cs])


def test_results_never_share_memory_with_the_arguments() -> None:
    """An output that is an input unchanged is a copy: writing to it leaves the caller's array."""
    column = np.array([1.0, -2.0, 3.0])
    got = tg.vmap(lambda x: x)(column)
    assert not np.shares_memory(got, column)
    got[0] = 99.0
    assert column[0] == 1.0
    m = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    first, scaled, row = tg.vmap(lambda r: (r[0], r[1] * 1.0, r))(m)
    for result in (first, scaled, row):
        assert not np.shares_memory(result, m)
    assert np.array_equal(first, m[:, 0]) and np.array_equal(scaled, m[:, 1])
    assert np.array_equal(row, m)
    moved = tg.vmap(lambda r: r[1], in_axes=1)(m.T)
    assert not np.shares_memory(moved, m) and np.array_equal(moved, m[:, 1])


def test_memory_held_between_calls_is_the_last_outputs_up_to_a_cap() -> None:
    """A vmapped function holds its last call's output columns (numpy) to the next, under a cap."""
    import gc
    import weakref

    from tapegrad.programs.vmap import KEEP_BYTES

    f = tg.vmap(lambda r: (r[0] * r[1], r[0] + r[1]))
    small = np.ones((1000, 2))  # two outputs of 8 kB: held
    large = np.ones((KEEP_BYTES // 16 + 1000, 2))  # two outputs above the cap together

    def last_output(batch: np.ndarray) -> weakref.ref[np.ndarray]:
        product, _ = f(batch)
        return weakref.ref(product)

    held = last_output(small)
    gc.collect()
    assert held() is not None  # kept until the next call
    not_held = last_output(large)
    assert held() is None and not_held() is None  # released; the large outputs never held
    strict = weakref.ref(f(array_api_strict.asarray(small))[0])
    gc.collect()
    assert strict() is None  # arrays of other namespaces (a GPU's memory) are not held


def test_out_axes_and_pytree_outputs() -> None:
    Pair = namedtuple("Pair", "first second")

    def f(row: Any) -> Any:
        doubled = row * 2.0
        return {"sum": row[0] + row[1], "pair": Pair(row[2], doubled), "none": None}

    m = np.arange(12.0).reshape(4, 3) - 5.0
    got = tg.vmap(f)(m)
    assert isinstance(got["pair"], Pair) and got["none"] is None
    assert got["pair"].second.shape == (4, 3)
    assert_batch_matches(got, [f(r) for r in m])
    moved = tg.vmap(lambda r: r * 2.0, out_axes=1)(m)
    assert moved.shape == (3, 4) and np.array_equal(moved, (m * 2.0).T)
    assert np.array_equal(tg.vmap(lambda r: r * 2.0, out_axes=-1)(m), (m * 2.0).T)


def test_keyword_arguments_are_batched_along_axis_0_as_in_jax() -> None:
    def f(x: Any, *, scale: Any) -> Any:
        return x * scale

    xs, scales = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    got = tg.vmap(f)(xs, scale=scales)  # not the outer product
    assert np.array_equal(got, np.array([f(x, scale=s) for x, s in zip(xs, scales)]))
    with pytest.raises(TypeError, match=r"keyword argument 'scale' is batched .* float"):
        tg.vmap(f)(xs, scale=3.0)


def test_programs_are_kept_between_calls() -> None:
    def f(x: Any) -> Any:
        return x * x if x > 0 else -x

    counted_f, calls = counted(f)
    batched = tg.vmap(counted_f)
    batched(np.array([1.0, -1.0, 2.0]))
    assert len(calls) == 2
    xs = np.array([3.0, -4.0, 0.5, -0.5])
    assert_batch_matches(batched(xs), [f(x) for x in xs], rtol=0.0)
    assert len(calls) == 2  # both branches replayed


def test_small_segments_in_the_array_dialect(monkeypatch: pytest.MonkeyPatch) -> None:
    set_segment(monkeypatch, 2)

    def f(x: Any, y: Any) -> Any:
        a = x * 1.0
        b = tg.math.sin(y) * x
        c = b / 1.0
        for _ in range(3):
            c = c * y + a if c > 0 else c - a * 0.5
        return c, a, 2.5, x

    points = [(0.5, 1.5), (-2.0, 0.25), (1.0, -1.0), (3.0, 2.0), (-0.5, -0.5)]
    for g in (f, tg.value_and_grad(lambda x, y: f(x, y)[0], argnums=(0, 1))):
        assert_batch_matches(tg.vmap(g)(*columns(array_api_strict, points)), loop(g, points))


@pytest.mark.parametrize("segment", [20_000, 7])
def test_the_array_dialect_frees_each_column_after_its_last_use(
    monkeypatch: pytest.MonkeyPatch, segment: int
) -> None:
    # Columns kept alive to the end make every op write to cold memory; each
    # local is deleted right after the last statement that reads it, and only
    # the returned (or, between functions, stored) ones are kept.
    set_segment(monkeypatch, segment)

    def f(x: Any, y: Any) -> Any:
        total = 0.0
        for k in range(4):
            total = total + (y - x * float(k)) ** 2 + tg.math.sin(x * y)
        return total

    g = tg.value_and_grad(f, argnums=(0, 1))
    prog = tg.trace(g, 0.5, 1.5)
    source = pyarrays.array_source(
        prog.n_inputs, prog.steps, prog.guards, prog.outputs, segment=segment, batched={1, 2}
    )
    deleted = 0
    for part in source.parts:
        lines = [line.strip() for line in part.splitlines()]
        for k, line in enumerate(lines):
            if not line.startswith("del "):
                continue
            for name in line[4:].split(", "):
                deleted += 1
                later = " ".join(lines[k + 1 :])
                assert re.search(rf"\b{name}\b", later) is None, f"{name} used after del"
    assert deleted >= len(prog.steps) // 2
    points = [(0.5, 1.5), (-2.0, 0.25), (1.0, -1.0)]
    assert_batch_matches(tg.vmap(g)(*columns(np, points)), loop(g, points))


def test_torch_when_installed() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")

    def f(x: Any, y: Any) -> Any:
        return tg.math.tanh(x * y) if x > y else x - y

    points = [(1.0, 0.5), (-1.0, 2.0), (0.3, 0.2)]
    args = [torch.tensor([p[j] for p in points], dtype=torch.float64) for j in range(2)]
    got = tg.vmap(tg.value_and_grad(f, argnums=(0, 1)))(*args)
    assert all(isinstance(x, torch.Tensor) for x in leaves(got))
    batched = tuple(tuple(x.numpy() for x in leaves(got)))
    want = loop(tg.value_and_grad(f, argnums=(0, 1)), points)
    assert_batch_matches(list(batched), [list(leaves(w)) for w in want])


# -- bad input ---------------------------------------------------------------------------------


def test_batches_of_different_lengths_name_the_arguments() -> None:
    f = tg.vmap(lambda x, y, z: x * y * z)
    with pytest.raises(ValueError, match=r"argument 0: 4, argument 1: 3, argument 2: 4"):
        f(np.zeros(4), np.zeros(3), np.zeros(4))


def test_bad_batched_arguments_and_axes() -> None:
    f = tg.vmap(lambda x, y: x * y)
    with pytest.raises(TypeError, match=r"argument 0\[0\] is batched.*float.*np.asarray"):
        f([1.0, 2.0], np.zeros(2))
    with pytest.raises(TypeError, match=r"argument 1 is batched.*float"):
        f(np.zeros(2), 3.0)
    with pytest.raises(ValueError, match="in_axes 1 is out of range"):
        tg.vmap(lambda x, y: x * y, in_axes=(1, 0))(np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="in_axes -2 is out of range"):
        tg.vmap(lambda x: x, in_axes=-2)(np.zeros(2))
    with pytest.raises(ValueError, match="in_axes has 3 entries for 2"):
        tg.vmap(lambda x, y: x * y, in_axes=(0, 0, 0))(np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="no argument is batched"):
        tg.vmap(lambda x: x, in_axes=None)(np.zeros(2))
    with pytest.raises(TypeError):
        tg.vmap(lambda x: x, in_axes=(True,))(np.zeros(2))
    with pytest.raises(TypeError, match="out_axes"):
        tg.vmap(lambda x: x, out_axes=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        tg.vmap("f")  # type: ignore[arg-type]


def test_out_axes_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="out_axes"):
        tg.vmap(lambda r: r * 2.0, out_axes=2)(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="out_axes"):
        tg.vmap(lambda x: x * 2.0, out_axes=1)(np.zeros(3))


def test_an_empty_batch_is_refused_by_name() -> None:
    # No sample to trace f with: the shape of the results is unknown (jax.vmap
    # knows it from abstract values; tapegrad traces a real sample).
    with pytest.raises(ValueError, match="empty"):
        tg.vmap(lambda x: x * 2.0)(np.zeros(0))
    with pytest.raises(ValueError, match="empty"):
        tg.vmap(lambda x: x * 2.0, in_axes=1)(np.zeros((3, 0)))


def test_samples_with_different_output_structures_are_refused_not_misread() -> None:
    def f(x: Any) -> Any:
        return (x, x) if x > 0 else x

    with pytest.raises(ValueError, match="different structure"):
        tg.vmap(f)(np.array([1.0, -1.0]))


def test_closing_over_a_var_is_a_loop_whose_results_carry_its_derivative() -> None:
    w = tg.Var(2.0)
    xs = np.array([1.0, 2.0, -4.0])
    got = tg.vmap(lambda x: x * w)(xs)
    assert got.dtype == object and [v.data for v in got] == [x * 2.0 for x in xs]
    got.sum().backward()
    assert w.grad == float(xs.sum())  # d/dw sum(x * w), by hand


def test_reading_data_of_a_traced_value_is_a_loop_with_a_warning() -> None:
    def f(x: Any) -> Any:
        y = x * 3.0  # a Var while traced, a float in the loop
        return x * (y.data if isinstance(y, tg.Var) else y)

    xs = np.array([1.0, 2.0, -4.0])
    with pytest.warns(RuntimeWarning, match="reached Python by"):
        got = tg.vmap(f)(xs)
    assert np.array_equal(got, np.array([f(x) for x in xs]))


def test_stop_gradient_is_batched() -> None:
    f = tg.value_and_grad(lambda x: x * tg.stop_gradient(x) * 3.0)
    xs = [2.0, -1.0, 0.5]
    assert_batch_matches(tg.vmap(f)(np.array(xs)), [f(x) for x in xs], rtol=0.0)


def test_two_negations_added() -> None:
    got = tg.vmap(lambda x, y: -x + -y)(np.array([1.0, 2.0]), np.array([3.0, -4.0]))
    assert np.array_equal(got, np.array([-4.0, 2.0]))


def test_a_branch_on_a_closed_over_var_is_not_kept_stale() -> None:
    w = tg.Var(1.0)

    def f(x: Any) -> Any:
        return x * 2.0 if w > 0 else x * 3.0

    batched = tg.vmap(f)
    batched(np.array([1.0]))
    w.data = -1.0
    assert float(batched(np.array([1.0]))[0]) == f(1.0)


def test_an_exception_in_f_leaves_no_tape_and_the_next_call_works() -> None:
    def f(x: Any) -> Any:
        if x > 10.0:
            raise KeyError("too big")
        return x * 2.0

    batched = tg.vmap(f)
    depth = len(current_stack())
    with pytest.raises(KeyError, match="too big"):
        batched(np.array([1.0, 20.0]))
    assert len(current_stack()) == depth
    assert np.array_equal(batched(np.array([1.0, 3.0])), np.array([2.0, 6.0]))


# Blocks: a numpy batch of two vmap.BLOCKs or more is computed block by block
# (tapegrad.programs.vmap._evaluate_blocks). Every op is elementwise over the
# samples, so the results must be the unblocked ones bit for bit: compared with
# BLOCK = 0 (the whole batch at once), byte for byte, and with a loop of f.

VMAP_MODULE = importlib.import_module("tapegrad.programs.vmap")  # not the function vmap


def _blocked_and_whole(
    monkeypatch: pytest.MonkeyPatch, f: Callable[..., Any], *args: Any
) -> tuple[list[Any], list[Any], int]:
    """vmap(f)(*args) with blocks and without (fresh vmaps), and how many blocked evaluations."""
    evaluations = []
    blocks = VMAP_MODULE._evaluate_blocks

    def spy(*spied: Any) -> Any:
        evaluations.append(spied[-1])
        return blocks(*spied)

    with monkeypatch.context() as patch:
        patch.setattr(VMAP_MODULE, "_evaluate_blocks", spy)
        blocked = list(leaves(tg.vmap(f)(*args)))
    with monkeypatch.context() as patch:
        patch.setattr(VMAP_MODULE, "BLOCK", 0)
        whole = list(leaves(tg.vmap(f)(*args)))
    return blocked, whole, len(evaluations)


def _assert_same_bytes(blocked: list[Any], whole: list[Any]) -> None:
    assert len(blocked) == len(whole)
    for b, w in zip(blocked, whole):
        assert b.dtype == w.dtype and b.shape == w.shape
        assert b.tobytes() == w.tobytes()  # bit for bit: signs of zeros and NaNs included


def _transcendental(x: Any) -> Any:
    y = tg.math.exp(x[0]) * tg.math.sin(x[1]) + tg.math.log(1.0 + x[0] ** 2) / x[1]
    return y * tg.math.tanh(x[0] - x[1]) + tg.math.sqrt(x[0] * x[0] + 1.0)


@pytest.mark.parametrize(("blocks", "offset"), [(2, -1), (2, 0), (2, 1), (3, -1), (3, 1000)])
def test_blocks_give_the_unblocked_results_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, blocks: int, offset: int
) -> None:
    # A batch of two blocks or more is cut: 2 blocks - 1 sample is not; 2 blocks + 1
    # ends with a block of one sample, 3 blocks - 1 with one a sample short.
    size = blocks * VMAP_MODULE.BLOCK + offset
    points = np.random.default_rng(size).uniform(-2.0, 2.0, size=(size, 2))
    vg = tg.value_and_grad(_transcendental)
    blocked, whole, evaluations = _blocked_and_whole(monkeypatch, vg, points)
    assert evaluations == (1 if size >= 2 * VMAP_MODULE.BLOCK else 0)
    _assert_same_bytes(blocked, whole)
    # Blocked gradients are a view of rows of the table the values are a row of.
    assert not np.shares_memory(blocked[0], blocked[1])
    assert not np.shares_memory(blocked[1], points)
    rows = np.arange(0, size, 97)  # and f's own values, at every 97th sample
    assert_batch_matches((blocked[0][rows], blocked[1][rows]), [vg(p) for p in points[rows]])


def test_blocks_split_samples_of_other_branches_in_any_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(VMAP_MODULE, "BLOCK", 16)

    def f(x: Any) -> Any:  # down the wrong branch, log or sqrt would raise
        y = tg.math.log(x) if x > 0 else tg.math.sqrt(-x)
        return y * 2.0, x > 0.5, 3.0, x  # a float, a bool, a constant and an input column

    xs = np.linspace(-3.0, 3.0, 70)  # traced at -3: the other branch starts in block 2
    xs[[5, 40, 41]] = [2.5, -1.0, 0.75]  # a sample of each branch inside blocks of the other
    xs[50] = math.nan  # no program covers it: f computes it
    blocked, whole, evaluations = _blocked_and_whole(monkeypatch, f, xs)
    # One program per branch (x <= 0, 0 < x <= 0.5, x > 0.5) and the one traced
    # at the NaN (which fails its own guards), each over the 5 blocks.
    assert evaluations == 4
    _assert_same_bytes(blocked, whole)
    assert_batch_matches(tuple(blocked), [f(float(x)) for x in xs], rtol=0.0)
    assert not np.shares_memory(blocked[3], xs)  # the input column came back copied


def test_blocks_compute_custom_primitives_element_by_element_per_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(VMAP_MODULE, "BLOCK", 8)

    def f(x: Any) -> Any:  # erf has no array form: float code, sample by sample
        return tg.math.erf(x) * x if x < 1.0 else tg.math.exp(-x)

    xs = np.linspace(-2.0, 3.0, 43)
    blocked, whole, evaluations = _blocked_and_whole(monkeypatch, tg.grad(f), xs)
    assert evaluations == 2
    _assert_same_bytes(blocked, whole)
    # d/dx erf(x) x = erf(x) + x 2/sqrt(pi) exp(-x^2); d/dx exp(-x) = -exp(-x), by hand.
    hand = [
        math.erf(x) + x * 2.0 / math.sqrt(math.pi) * math.exp(-x * x) if x < 1.0 else -math.exp(-x)
        for x in xs.tolist()
    ]
    np.testing.assert_allclose(blocked[0], hand, rtol=1e-12, atol=1e-15)


def test_blocks_raise_fs_error_from_any_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VMAP_MODULE, "BLOCK", 4)

    def f(x: Any) -> Any:
        return tg.math.log(x) * 2.0

    xs = np.linspace(1.0, 2.0, 30)
    xs[21] = -1.0  # in the sixth block
    assert outcome(tg.vmap(f), xs) == outcome(f, -1.0)


def test_blocks_keep_the_last_outputs_between_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocked outputs are held to the next call as unblocked ones are (see _State.keep)."""
    monkeypatch.setattr(VMAP_MODULE, "BLOCK", 64)
    f = tg.vmap(lambda x: (x * 2.0, x + 1.0))

    def last_output(batch: np.ndarray) -> weakref.ref[np.ndarray]:
        doubled, _ = f(batch)
        return weakref.ref(doubled)

    held = last_output(np.arange(1000.0))  # 16 blocks
    gc.collect()
    assert held() is not None
    not_held = last_output(np.ones(VMAP_MODULE.KEEP_BYTES // 16 + 1000))  # above the cap
    gc.collect()
    assert held() is None and not_held() is None
