"""Tests of the testing tools: ``check_grads`` and the strategies of ``tapegrad.testing``.

These are the tests that guard the tests. A checker that passes everything
is worse than none, so besides checking that correct derivatives pass, we
build wrong rules with ``tapegrad.primitive`` (off by 0.1%, wrong sign, wrong
only in the second derivative, wrong in one input of two) and require that
``check_grads`` catches each of them and names the culprit; and we require
that the program strategy really draws programs that use every primitive.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tapegrad as tg
from tapegrad import check_grads
from tapegrad import math as tm
from tapegrad.checking import FiniteDifferenceError, check_jacobian, numerical_jacobian
from tapegrad.rules import RULES
from tapegrad.testing import (
    BUILTIN_OPS,
    UNCHECKABLE,
    Program,
    inputs_for,
    op_spec,
    primitive_test,
    programs,
)


def examples(weight: float) -> settings:
    """``weight`` times the Hypothesis profile's budget (see tests/conftest.py)."""
    return settings(max_examples=max(1, round(weight * settings().max_examples)))


# -- correct derivatives pass ------------------------------------------------------


def test_smooth_functions_pass_to_third_order() -> None:
    check_grads(lambda x, y: tm.sin(x) * y**2 + tm.exp(x / y), (0.5, 1.5), order=3)
    check_grads(lambda x: tm.atan2(x, 2.0 - x) + tm.erf(x), (0.3,), order=3)


def test_pytrees_in_and_out() -> None:
    def f(p: dict[str, Any], xs: list[Any]) -> Any:
        s = p["a"] * xs[0] + tm.tanh(p["b"]) * xs[1] ** 2
        return {"s": s, "pair": (tm.log(xs[1]), p["a"] * p["b"])}

    check_grads(f, ({"a": 0.7, "b": -1.2}, [2.0, 3.0]), order=2)


def test_numpy_arrays_in_and_out() -> None:
    def f(w: Any) -> Any:
        return np.array([tm.sin(w[0, 0]) * w[1, 1], w[0, 1] * w[1, 0] - w[0, 0]])

    check_grads(f, (np.array([[0.1, 0.2], [0.3, 0.4]]),), order=2)


def test_constant_and_int_outputs_pass() -> None:
    check_grads(lambda x: 3.0, (1.0,), order=2)
    check_grads(lambda x: [x * 0.0, 7], (1.0,))


def test_domain_edges_shrink_the_steps() -> None:
    # The first steps would leave the domain (sqrt, log of a negative number).
    check_grads(tm.sqrt, (1e-4,), order=2)
    check_grads(lambda x: tm.log(x) + tm.asin(x), (0.004,), order=2)


def test_each_mode_alone() -> None:
    check_grads(tm.cosh, (0.4,), order=2, modes=("fwd",))
    check_grads(tm.cosh, (0.4,), order=2, modes="rev")


def test_the_rosenbrock_function() -> None:
    def rosen(x: list[Any]) -> Any:
        return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(3))

    check_grads(rosen, ([-1.2, 1.0, 0.8, 1.5],), order=2)


def test_a_custom_primitive_that_is_right_passes() -> None:
    softplus = tg.primitive(
        lambda x: math.log1p(math.exp(x)), lambda x, out: tm.sigmoid(x), name="softplus"
    )
    check_grads(softplus, (0.3,), order=3)


# -- wrong derivatives are caught, and named --------------------------------------


def _sin_with(partial: Any) -> Any:
    return tg.primitive(math.sin, partial, name="bad_sin")


# Away from the zeros of cos, where a wrong factor or sign is invisible.
sin_points = st.floats(-3.0, 3.0).filter(lambda x: abs(math.cos(x)) > 0.05)


@examples(0.5)
@given(x=sin_points)
def test_a_rule_off_by_a_tenth_of_a_percent_is_caught(x: float) -> None:
    bad = _sin_with(lambda x, out: 1.001 * tm.cos(x))
    with pytest.raises(AssertionError, match="wrong"):
        check_grads(bad, (x,))


@examples(0.5)
@given(x=sin_points)
def test_a_rule_with_the_wrong_sign_is_caught(x: float) -> None:
    bad = _sin_with(lambda x, out: -tm.cos(x))
    with pytest.raises(AssertionError, match="wrong"):
        check_grads(bad, (x,))


@examples(0.5)
@given(x=sin_points)
def test_each_mode_catches_a_wrong_rule(x: float) -> None:
    bad = _sin_with(lambda x, out: 1.001 * tm.cos(x))
    for mode in ("rev", "fwd"):
        with pytest.raises(AssertionError, match=f"mode {mode}"):
            check_grads(bad, (x,), modes=(mode,))


@examples(0.5)
@given(x=st.floats(0.1, 3.0), y=st.floats(0.1, 3.0))
def test_a_wrong_partial_of_the_second_input_is_named(x: float, y: float) -> None:
    # d(x * y**2)/dy = 2xy, here off by 0.1%.
    bad = tg.primitive(
        lambda x, y: x * y * y,
        lambda x, y, out: y * y,
        lambda x, y, out: 2.002 * x * y,
        name="bad_xyy",
    )
    with pytest.raises(AssertionError) as info:
        check_grads(bad, (x, y))
    assert "d out / d args[1] is wrong (argument 1, coordinate 0)" in str(info.value)


def _value(x: Any) -> float:
    """The float behind ``x``: a partial written on it drops its own derivative.

    (``float(x)`` of a Var raises instead, so a real rule cannot do this by accident.)
    """
    while isinstance(x, tg.Var):
        x = x.data
    return float(x)


def test_a_rule_wrong_only_in_its_second_derivative_needs_order_2() -> None:
    # The partial computes on floats, so its own derivative is lost: right at
    # first order, wrong at second.
    bad = _sin_with(lambda x, out: math.cos(_value(x)))
    check_grads(bad, (0.7,), order=1)
    with pytest.raises(AssertionError, match="order 2"):
        check_grads(bad, (0.7,), order=2)


def test_a_wrong_third_derivative_is_caught_at_order_3() -> None:
    # cube's second partial is right, but written on floats its derivative is 0.
    bad = tg.primitive(
        lambda x: x**3,
        lambda x, out: 3.0 * x * x,
        name="cube",
    )
    check_grads(bad, (0.8,), order=3)
    inner = tg.primitive(lambda x: 3.0 * x * x, lambda x, out: 6.0 * _value(x), name="dcube")
    worse = tg.primitive(lambda x: x**3, lambda x, out: inner(x), name="cube")
    check_grads(worse, (0.8,), order=2)
    with pytest.raises(AssertionError, match="order 3"):
        check_grads(worse, (0.8,), order=3)


@examples(0.25)
@given(prog=programs(n_inputs=(1, 3), max_ops=15))
def test_a_wrong_rule_inside_a_random_program_is_caught(prog: Program) -> None:
    assume(any(abs(g) > 1e-3 for g in tg.grad(lambda xs: prog(*xs))(list(prog.inputs))))
    bad = _sin_with(lambda x, out: 1.001 * tm.cos(x))
    y = prog(*prog.inputs)
    assume(abs(math.cos(y)) > 0.05)
    with pytest.raises(AssertionError, match="wrong"):
        check_grads(lambda *xs: bad(prog(*xs)), prog.inputs)


def test_the_message_names_everything() -> None:
    bad = _sin_with(lambda x, out: -tm.cos(x))

    def f(p: dict[str, Any], x: list[Any]) -> Any:
        return [x[0] * p["w"], bad(x[1])]

    with pytest.raises(AssertionError) as info:
        check_grads(f, ({"w": 2.0}, [1.0, 0.5]), modes=("fwd",))
    text = str(info.value)
    assert "order 1, mode fwd: d out[1] / d args[1][1] is wrong (argument 1, coordinate 1)" in text
    ad = -math.cos(0.5)
    assert re.search(rf"AD \(fwd\):\s+{ad!r}", text)
    assert "finite diff: 0.87758256189" in text  # cos(0.5)
    assert "mismatch:" in text and "relative" in text and "tolerance" in text


def test_the_message_of_a_higher_order_check_names_the_derivative_function() -> None:
    bad = _sin_with(lambda x, out: math.cos(_value(x)))
    with pytest.raises(AssertionError) as info:
        check_grads(bad, (0.7,), order=2, modes=("rev",))
    text = str(info.value)
    assert "order 2 (first derivatives of g1(x) = vjp(f, *x)[1](u1) with u1 = " in text
    assert "mode rev" in text


def test_a_kink_is_reported() -> None:
    # relu at 0: AD says 0 (by convention), central differences say 0.5.
    with pytest.raises(AssertionError):
        check_grads(tm.relu, (0.0,))


def test_finite_differences_that_do_not_converge_are_reported() -> None:
    # A jump between all the finite-difference points: no derivative to speak of.
    step = tg.primitive(lambda x: 0.0 if x < 1e-7 else 1.0, lambda x, out: 0.0, name="step")
    with pytest.raises(FiniteDifferenceError, match="do not converge"):
        check_grads(step, (0.0,), modes=("rev",))


def test_no_false_alarm_where_the_first_steps_are_too_coarse() -> None:
    # Found by a thorough run: at order 2 the extrapolation from the first steps
    # (0.015) was off by 6e-7 relative, 8 times its error estimate; the true
    # value (mpmath, 50 digits) is what AD gives, and finer steps confirm it.
    def curvy(x: Any) -> Any:
        v4 = tm.cos(x)
        v9 = tm.sinh(tm.tanh(tm.tanh(2.0 * tm.relu(v4))))
        v10 = tm.exp(v9)
        v13 = 0.5 + tm.cos(v10)
        v16 = tm.cosh(tm.sin(tm.sqrt(v10)))
        a = tm.minimum(2.0 * tm.sinh(tm.sinh(v9)) * x, tm.hypot(v13, v13))
        b = -tm.hypot(v16, 2.124887035898409) + 1.8614837234549615 * tm.hypot(v16, -1.0)
        return a + b + 6.0 * tm.minimum(v16, 0.5) + tm.softplus(v4)

    check_grads(curvy, (-1.5,), order=2)
    assert tg.grad(tg.grad(curvy))(-1.5) == pytest.approx(9.770930558078424, rel=1e-14)


def test_no_false_alarm_at_a_stationary_point() -> None:
    # Found by a thorough run: the derivative is 0 at 0, and finite differences
    # see only the rounding noise of intermediates (~25) larger than f (~0.46).
    def f(xs: list[Any]) -> Any:
        v = tm.tanh(tm.abs(tm.cos(tm.tanh(tm.atan2(xs[0], tm.acos(tm.erf(xs[0])))))))
        return tm.expm1(tm.sin(4.0 * (2.0 * tm.exp(v * v)) ** 2))

    check_jacobian(f, ([0.0],), tg.grad(f)([0.0]), name="grad")


def test_tolerances_can_be_loosened() -> None:
    bad = _sin_with(lambda x, out: 1.001 * tm.cos(x))
    check_grads(bad, (0.3,), rtol=1e-2)
    check_grads(bad, (0.3,), atol=1e-2)


# -- arguments ---------------------------------------------------------------------


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="tuple"):
        check_grads(tm.sin, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order"):
        check_grads(tm.sin, (0.5,), order=0)
    with pytest.raises(ValueError, match="modes"):
        check_grads(tm.sin, (0.5,), modes=("backward",))
    with pytest.raises(ValueError, match="eps"):
        check_grads(tm.sin, (0.5,), eps=0.0)
    with pytest.raises(ValueError, match="rtol"):
        check_grads(tm.sin, (0.5,), rtol=-1.0)
    with pytest.raises(TypeError, match="argument 0"):
        check_grads(tm.sin, ("x",))
    with pytest.raises(TypeError, match="Var"):
        check_grads(tm.sin, (tg.Var(0.5),))


def test_check_jacobian_and_numerical_jacobian() -> None:
    f = lambda x: [tm.exp(x[0]) * x[1], x[1] ** 3]
    x = [0.5, 2.0]
    J, err = numerical_jacobian(f, (x,))
    want = [[math.exp(0.5) * 2.0, math.exp(0.5)], [0.0, 12.0]]
    for row, want_row, err_row in zip(J, want, err):
        for got, w, e in zip(row, want_row, err_row):
            assert got == pytest.approx(w, rel=1e-11, abs=1e-11)
            assert e < 1e-9
    check_jacobian(f, (x,), tg.jacobian(f)(x), name="jacobian")
    with pytest.raises(AssertionError, match="mode hand"):
        check_jacobian(f, (x,), [[3.3, 1.6], [0.0, 12.0]], name="hand")
    with pytest.raises(ValueError, match="4"):
        check_jacobian(f, (x,), [1.0, 2.0])


# -- the strategies ----------------------------------------------------------------


def test_every_primitive_has_an_input_strategy() -> None:
    expected = set(RULES) - UNCHECKABLE
    assert set(BUILTIN_OPS) == expected, "a primitive of RULES has no domain in tapegrad.testing"
    with pytest.raises(ValueError, match="unknown primitive"):
        inputs_for("no_such_primitive")


@pytest.mark.parametrize("name", sorted(set(RULES) - UNCHECKABLE))
def test_input_strategies_stay_inside_the_domain(name: str) -> None:
    spec = BUILTIN_OPS[name]

    @settings(max_examples=30, derandomize=True, database=None)
    @given(inputs_for(name))
    def inside(args: tuple[float, ...]) -> None:
        assert len(args) == spec.arity
        assert spec.ok(*args)
        value = spec.fn(*args)
        assert math.isfinite(value)

    inside()


def test_programs_use_every_primitive_and_every_call_style() -> None:
    seen: set[str] = set()
    styles: set[tuple[str, str]] = set()
    sizes: list[int] = []

    @settings(max_examples=200, derandomize=True, database=None)
    @given(programs())
    def collect(prog: Program) -> None:
        seen.update(prog.primitives())
        styles.update((op.spec.name, op.style) for op in prog.ops)
        sizes.append(len(prog.ops))

    collect()
    assert seen == set(RULES) - UNCHECKABLE, f"never drawn: {sorted(set(RULES) - seen)}"
    want = {(spec.name, style) for spec in BUILTIN_OPS.values() for style in spec.styles}
    assert styles == want, f"never drawn: {sorted(want - styles)}"
    assert max(sizes) >= 40, "programs should reach ~50 ops"


@examples(0.5)
@given(prog=programs())
def test_programs_run_alike_on_floats_and_on_vars(prog: Program) -> None:
    on_floats = prog(*prog.inputs)
    value, _ = tg.value_and_grad(lambda xs: prog(*xs))(list(prog.inputs))
    assert value == on_floats
    assert math.isfinite(on_floats)
    text = repr(prog)
    assert text.startswith(f"Program(n_inputs={prog.n_inputs}, inputs=")
    assert text.count("\n") == len(prog.ops) + 1
    assert "return v" in text or "return x" in text


def test_program_listing_reads_like_python() -> None:
    from tapegrad.testing import Op

    ops = (
        Op(BUILTIN_OPS["sin"], (0,), "fn"),
        Op(BUILTIN_OPS["mul"], (2, 1), "op"),
        Op(BUILTIN_OPS["exp"], (3,), "method"),
        Op(BUILTIN_OPS["pow"], (4, -1.0), "op"),
    )
    prog = Program(2, ops, (5,), (0.5, -1.25))
    assert repr(prog) == (
        "Program(n_inputs=2, inputs=(0.5, -1.25)):\n"
        "    v2 = tm.sin(x0)\n"
        "    v3 = v2 * x1\n"
        "    v4 = v3.exp()\n"
        "    v5 = v4 ** (-1.0)\n"
        "    return v5"
    )
    want = math.exp(math.sin(0.5) * -1.25) ** -1.0
    assert prog(0.5, -1.25) == pytest.approx(want, rel=1e-15)
    check_grads(prog, prog.inputs, order=2)


def test_programs_with_fixed_inputs_and_several_outputs() -> None:
    @settings(max_examples=20, derandomize=True, database=None)
    @given(programs(at=(0.25, 2.0), n_outputs=3, max_ops=10))
    def run(prog: Program) -> None:
        assert prog.inputs == (0.25, 2.0)
        out = prog(*prog.inputs)
        assert isinstance(out, list) and len(out) == 3

    run()


def test_programs_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="n_inputs"):
        programs(n_inputs=0)
    with pytest.raises(ValueError, match="max_ops"):
        programs(max_ops=0)
    with pytest.raises(ValueError, match="unknown primitive"):
        programs(ops=["nope"])
    with pytest.raises(ValueError, match="arity"):
        op_spec(tm.sin, 0)
    with pytest.raises(ValueError, match="range"):
        op_spec(tm.sin, 1, ranges=[(0.0, 1.0), (0.0, 1.0)])


# -- a user's own primitive -----------------------------------------------------------

softplus = tg.primitive(
    lambda x: math.log1p(math.exp(x)), lambda x, out: tm.sigmoid(x), name="my_softplus"
)
softplus_spec = op_spec(softplus, 1, lambda x: 30.0 - x)
# primitive_test builds a Hypothesis test: the user's one-liner.
test_a_user_primitive_with_primitive_test = examples(0.25)(primitive_test(softplus_spec))


def test_primitive_test_catches_a_wrong_user_primitive() -> None:
    bad = tg.primitive(
        lambda x: math.log1p(math.exp(x)), lambda x, out: 1.001 * tm.sigmoid(x), name="bad"
    )
    test = settings(max_examples=10, derandomize=True, database=None)(
        primitive_test(op_spec(bad, 1, lambda x: 30.0 - x))
    )
    with pytest.raises(AssertionError, match="wrong"):
        test()


def test_programs_mix_in_required_user_primitives() -> None:
    spec = op_spec(softplus, 1, lambda x: 30.0 - x)
    cube_root = tg.primitive(
        lambda x: math.copysign(abs(x) ** (1 / 3), x),
        lambda x, out: 1.0 / (3.0 * out * out),
        name="cbrt",
    )
    cbrt_spec = op_spec(cube_root, 1, lambda x: abs(x) - 0.01, ranges=[(-8.0, 8.0)])

    @settings(max_examples=20, derandomize=True, database=None)
    @given(programs(extra_ops=[spec, cbrt_spec], require=[spec, cbrt_spec], max_ops=8))
    def run(prog: Program) -> None:
        assert {"my_softplus", "cbrt"} <= prog.primitives()
        check_grads(prog, prog.inputs, order=2)

    run()


def test_import_tapegrad_does_not_import_hypothesis() -> None:
    code = "import sys, tapegrad; tapegrad.check_grads(tapegrad.math.sin, (0.5,)); "
    code += "assert 'hypothesis' not in sys.modules, 'hypothesis imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
