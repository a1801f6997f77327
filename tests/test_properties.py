"""Property tests of tapegrad with Hypothesis, against finite differences and identities.

* every primitive, in every call style, against finite differences to second
  order (``check_grads(order=2)``: forward and reverse, and all four
  combinations of them at second order);
* random programs of up to ~50 ops (``tapegrad.testing.programs``), to second
  order, scalar and vector valued;
* every transform (``grad``, ``value_and_grad``, ``jacobian``, ``hessian``,
  ``hvp``, ``jvp``, ``vjp``) against finite differences, and its derivative
  too (second order);
* identities: linearity of the gradient, the chain rule, symmetric Hessians,
  ``<u, J v>`` computed by ``jvp`` and by ``vjp``, ``grad(f) == jacobian(f)``
  for scalar ``f``;
* every primitive at extreme inputs drawn on purpose
  (``tapegrad.testing.extreme_inputs_for``: subnormals, magnitudes near
  1e+-308, domain edges), where finite differences cannot resolve anything:
  first and second derivatives, in reverse and forward mode, against the true
  derivatives of tests/derivative_reference.py.

The number of examples comes from the Hypothesis profile (tests/conftest.py):
each test asks for a multiple of the profile's budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from derivative_reference import KNOWN_WRONG, defined, has_reference, wrong_derivatives
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tapegrad as tg
from tapegrad import check_grads
from tapegrad.checking import check_jacobian
from tapegrad.rules import RULES
from tapegrad.testing import (
    BUILTIN_OPS,
    UNCHECKABLE,
    Op,
    Program,
    extreme_inputs_for,
    inputs_for,
    programs,
)


def examples(weight: float) -> settings:
    """``weight`` times the Hypothesis profile's budget (see tests/conftest.py)."""
    return settings(max_examples=max(1, round(weight * settings().max_examples)))


def as_list_fn(prog: Program) -> Any:
    """The program as a function of one list argument."""
    return lambda xs: prog(*xs)


def close(a: float, b: float, scale: float, value: float, rtol: float = 1e-9) -> bool:
    """``a`` and ``b`` agree to ``rtol`` relative to ``scale`` (the size of the terms).

    Derivatives that cancel to ~0 inside a program carry rounding errors of the
    size of the cancelled terms, which no one sees from outside: as in
    ``check_grads``, differences below ``1e-11 * max(|value|, 1)`` (``value``:
    the function's value) are rounding, not evidence.
    """
    return abs(a - b) <= rtol * max(abs(a), abs(b), scale) + 1e-11 * max(abs(value), 1.0)


# -- primitives ---------------------------------------------------------------------

STYLED = [(name, style) for name in sorted(BUILTIN_OPS) for style in BUILTIN_OPS[name].styles]


@pytest.mark.parametrize(("name", "style"), STYLED)
@examples(0.3)
@given(data=st.data())
def test_every_primitive_to_second_order(name: str, style: str, data: st.DataObject) -> None:
    spec = BUILTIN_OPS[name]
    args = data.draw(inputs_for(name), label="args")
    op = Op(spec, tuple(range(spec.arity)), style)
    check_grads(lambda *xs: op.apply(xs), args, order=2)


@pytest.mark.parametrize("name", [n for n in sorted(BUILTIN_OPS) if BUILTIN_OPS[n].arity == 2])
@examples(0.2)
@given(data=st.data())
def test_binary_primitives_with_a_constant_operand(name: str, data: st.DataObject) -> None:
    spec = BUILTIN_OPS[name]
    x, y = data.draw(inputs_for(name), label="args")
    check_grads(lambda a: spec.fn(a, y), (x,), order=2)
    check_grads(lambda b: spec.fn(x, b), (y,), order=2)


# The rules that tests/test_silent.py shows wrong at some extreme input (engine
# bugs, xfail there) are left out until fixed; they join when KNOWN_WRONG drops them.
# A row without a hand-derived reference (tests/derivative_reference.py) is
# checked at extreme inputs by tests/test_rows.py, generically.
EXTREME_CHECKED = [
    name
    for name in sorted(set(RULES) - UNCHECKABLE)
    if name not in KNOWN_WRONG and has_reference(name)
]


@pytest.mark.parametrize("name", EXTREME_CHECKED)
@examples(0.25)
@given(data=st.data())
def test_every_primitive_at_extreme_inputs(name: str, data: st.DataObject) -> None:
    args = data.draw(extreme_inputs_for(name), label="args")
    args = (*args, *(0.0,) * (RULES[name].arity - len(args)))  # round(x): ndigits 0
    assume(defined(name, args))
    problems = wrong_derivatives(name, args)
    assert not problems, "\n".join(problems)


# -- random programs -----------------------------------------------------------------


@examples(2)
@given(prog=programs())
def test_random_programs_to_second_order(prog: Program) -> None:
    check_grads(prog, prog.inputs, order=2)


@examples(0.5)
@given(prog=programs(n_outputs=3, max_ops=25))
def test_random_vector_programs_to_second_order(prog: Program) -> None:
    check_grads(prog, prog.inputs, order=2)


# -- transforms against finite differences --------------------------------------------

small_programs = programs(max_ops=20)


@examples(0.5)
@given(prog=small_programs)
def test_grad_and_value_and_grad(prog: Program) -> None:
    f, xs = as_list_fn(prog), list(prog.inputs)
    check_jacobian(f, (xs,), tg.grad(f)(xs), name="grad")
    value, g = tg.value_and_grad(f)(xs)
    assert value == prog(*prog.inputs)
    assert g == tg.grad(f)(xs)
    # Second order: the derivatives of grad and of value_and_grad themselves.
    check_grads(tg.grad(f), (xs,))
    check_grads(tg.value_and_grad(f), (xs,))


@examples(0.5)
@given(prog=programs(n_outputs=3, max_ops=20))
def test_jacobian(prog: Program) -> None:
    f, xs = as_list_fn(prog), list(prog.inputs)
    check_jacobian(f, (xs,), tg.jacobian(f)(xs), name="jacobian")
    check_grads(tg.jacobian(f), (xs,))


@examples(0.5)
@given(prog=small_programs)
def test_hessian(prog: Program) -> None:
    f, xs = as_list_fn(prog), list(prog.inputs)
    check_jacobian(tg.grad(f), (xs,), tg.hessian(f)(xs), name="hessian")
    check_grads(tg.hessian(f), (xs,))


@examples(0.5)
@given(prog=small_programs, data=st.data())
def test_hvp(prog: Program, data: st.DataObject) -> None:
    f, xs = as_list_fn(prog), list(prog.inputs)
    v = data.draw(st.lists(st.floats(-1.0, 1.0), min_size=len(xs), max_size=len(xs)), label="v")
    # hvp(f, x, v) is the derivative of t -> grad(f)(x + t v) at t = 0.
    along = lambda t: tg.grad(f)([x + t * vi for x, vi in zip(xs, v)])
    check_jacobian(along, (0.0,), tg.hvp(f, xs, v), name="hvp")
    check_grads(lambda xs, v: tg.hvp(f, xs, v), (xs, v))


@examples(0.5)
@given(prog=programs(n_outputs=2, max_ops=20), data=st.data())
def test_jvp_and_vjp(prog: Program, data: st.DataObject) -> None:
    xs = prog.inputs
    n = len(xs)
    v = data.draw(st.tuples(*[st.floats(-1.0, 1.0)] * n), label="v")
    u = data.draw(st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2), label="u")
    out, tangent = tg.jvp(prog, xs, v)
    assert out == prog(*xs)
    check_jacobian(
        lambda t: prog(*[x + t * vi for x, vi in zip(xs, v)]), (0.0,), tangent, name="jvp"
    )
    out2, back = tg.vjp(prog, *xs)
    assert out2 == out
    check_jacobian(lambda *x: sum(ui * yi for ui, yi in zip(u, prog(*x))), xs, back(u), name="vjp")
    # Second order: jvp and vjp as functions of the primals (and tangents).
    check_grads(lambda *x: tg.jvp(prog, x, v)[1], xs)
    check_grads(lambda *x: tg.vjp(prog, *x)[1](u), xs)


# -- identities ------------------------------------------------------------------------


def two_programs_at_the_same_point(max_ops: int = 20) -> st.SearchStrategy[tuple[Program, Program]]:
    return programs(max_ops=max_ops).flatmap(
        lambda p: st.tuples(st.just(p), programs(at=p.inputs, max_ops=max_ops))
    )


@examples(0.5)
@given(pq=two_programs_at_the_same_point(), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_the_gradient_is_linear(pq: tuple[Program, Program], a: float, b: float) -> None:
    p, q = pq
    xs = list(p.inputs)
    gp, gq = tg.grad(as_list_fn(p))(xs), tg.grad(as_list_fn(q))(xs)
    value, g = tg.value_and_grad(lambda x: a * p(*x) + b * q(*x))(xs)
    for gi, pi, qi in zip(g, gp, gq):
        assert close(gi, a * pi + b * qi, abs(a * pi) + abs(b * qi), value)


@examples(0.5)
@given(data=st.data())
def test_the_chain_rule(data: st.DataObject) -> None:
    inner = data.draw(programs(n_outputs=data.draw(st.integers(1, 3)), max_ops=15), label="inner")
    xs = list(inner.inputs)
    ys = inner(*xs)
    ys = ys if isinstance(ys, list) else [ys]
    outer = data.draw(programs(at=ys, max_ops=15), label="outer")

    def composed(x: Sequence[Any]) -> Any:
        y = inner(*x)
        return outer(*(y if isinstance(y, list) else [y]))

    value, g = tg.value_and_grad(composed)(xs)
    J = tg.jacobian(lambda x: list(flat_out(inner(*x))))(xs)  # J[k][j] = d y_k / d x_j
    h = tg.grad(as_list_fn(outer))(ys)
    for j, gj in enumerate(g):
        terms = [h[k] * J[k][j] for k in range(len(ys))]
        assert close(gj, sum(terms), sum(abs(t) for t in terms), value)


def flat_out(y: Any) -> list[Any]:
    return y if isinstance(y, list) else [y]


@examples(0.5)
@given(prog=small_programs)
def test_hessians_are_symmetric(prog: Program) -> None:
    H = tg.hessian(as_list_fn(prog))(list(prog.inputs))
    scale = max((abs(h) for row in H for h in row), default=0.0)
    value = prog(*prog.inputs)
    for i, row in enumerate(H):
        for j in range(i):
            assert close(row[j], H[j][i], 1e-3 * scale, value, rtol=1e-8), (i, j, row[j], H[j][i])


@examples(0.5)
@given(prog=programs(n_outputs=3, max_ops=20), data=st.data())
def test_jvp_and_vjp_agree(prog: Program, data: st.DataObject) -> None:
    xs = prog.inputs
    v = data.draw(st.tuples(*[st.floats(-1.0, 1.0)] * len(xs)), label="v")
    u = data.draw(st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3), label="u")
    _, Jv = tg.jvp(prog, xs, v)
    _, back = tg.vjp(prog, *xs)
    uJ = back(u)
    lhs = [ui * ji for ui, ji in zip(u, Jv)]  # <u, J v>
    rhs = [a * b for a, b in zip(uJ, v)]  # <u J, v>
    J = tg.jacobian(lambda x: prog(*x))(list(xs))
    scale = sum(abs(u[k] * J[k][j] * v[j]) for k in range(3) for j in range(len(xs)))
    assert close(sum(lhs), sum(rhs), scale, max(abs(y) for y in prog(*xs)))


@examples(0.5)
@given(prog=small_programs)
def test_grad_equals_jacobian_for_scalar_functions(prog: Program) -> None:
    f, xs = as_list_fn(prog), list(prog.inputs)
    g = tg.grad(f)(xs)
    J = tg.jacobian(f)(xs)
    assert len(g) == len(J) == len(xs)
    for a, b in zip(g, J):
        assert close(a, b, 0.0, 0.0, rtol=1e-12)


def test_every_primitive_is_covered() -> None:
    assert {name for name, _ in STYLED} == set(RULES) - UNCHECKABLE
    audited = {name for name in set(RULES) - UNCHECKABLE if has_reference(name)}
    assert set(EXTREME_CHECKED) | set(KNOWN_WRONG) == audited


# -- bugs found by the property suite ----------------------------------------------------


def test_pow_records_where_only_its_derivative_overflows() -> None:
    assert (tg.Var(1e-200) ** -1.0).data == 1e200
    assert tg.grad(lambda x: x**-1.0)(1e-200) == -math.inf
    tg.grad(tg.grad(lambda x: x**0.0))(1e-308)  # the second derivative must not raise either
