"""Every primitive of the rule table against an independent reference.

* Values: ``tapegrad.math.f(x)`` on floats and ``.data`` of the Var version
  against Python's ``math`` module (bit for bit where ``math`` has the
  function) or against the textbook formula (sigmoid, softplus, relu).
* Derivatives: each partial, read straight from ``RULES`` and obtained through
  ``backward()`` (functions, methods and operators, with Vars and plain
  numbers on either side), against a 5-point central difference of the
  reference function on floats (truncation error O(h**4), see ``central``).
* The fast paths of ``Var``'s operators (``+ - * /``, reflected forms, unary
  ``-``, ``relu``, ``tanh``) with leaves, intermediates, floats, ints and numpy
  scalars as operands, against the same differences.
* Kinks and edges, as documented in ``tapegrad/rules.py``: relu'(0) = 0,
  abs'(0) = 0, min/max ties split 0.5/0.5, sqrt'(0) = inf, asin'(+-1) = inf,
  acos'(+-1) = -inf, d(x**y)/dy = 0 at x = 0 and NaN for x < 0.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from test_rows import library_reference

import tapegrad as tg
from tapegrad import Var
from tapegrad import math as tm
from tapegrad.rules import RULES
from tapegrad.rules import call as apply_rule

Unary = Callable[[float], float]
Binary = Callable[[float, float], float]


def central(f: Callable[[float], float], x: float) -> float:
    """5-point central difference of a float function at ``x``.

    With h = 1e-3 * max(|x|, 0.01) the truncation error is h**4/30 * f^(5)
    (below 1e-8 relative at every point used here) and the rounding error
    about 1.5 * eps * |f| / h (below 1e-10 relative).
    """
    h = 1e-3 * max(abs(x), 0.01)
    return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h)


def fd_tol(expected: float) -> Any:
    return pytest.approx(expected, rel=1e-6, abs=1e-9)


# -- the references: name -> (function on floats, points inside the domain) -------

UNARY: dict[str, tuple[Unary, list[float]]] = {
    "neg": (lambda x: -x, [-2.5, 0.0, 1.75]),
    "abs": (math.fabs, [-2.0, -0.25, 0.5, 3.0]),
    "relu": (lambda x: max(x, 0.0), [-1.5, -0.2, 0.3, 2.0]),
    "tanh": (math.tanh, [-2.0, -0.5, 0.0, 0.3, 1.7]),
    "exp": (math.exp, [-3.0, -0.2, 0.0, 0.7, 4.0]),
    "log": (math.log, [0.05, 0.7, 1.0, 3.5, 250.0]),
    "sigmoid": (lambda x: 1.0 / (1.0 + math.exp(-x)), [-6.0, -0.5, 0.0, 0.8, 5.0]),
    "sin": (math.sin, [-2.5, -0.4, 0.0, 1.1, 3.0]),
    "cos": (math.cos, [-2.5, -0.4, 0.0, 1.1, 3.0]),
    "tan": (math.tan, [-1.2, -0.3, 0.0, 0.5, 1.3]),
    "sqrt": (math.sqrt, [0.01, 0.5, 2.0, 90.0]),
    "log1p": (math.log1p, [-0.9, -0.3, 0.0, 0.5, 7.0]),
    "expm1": (math.expm1, [-2.0, -1e-3, 0.0, 0.3, 2.5]),
    "sinh": (math.sinh, [-2.0, -0.3, 0.0, 0.5, 3.0]),
    "cosh": (math.cosh, [-2.0, -0.3, 0.0, 0.5, 3.0]),
    "asin": (math.asin, [-0.95, -0.4, 0.0, 0.3, 0.9]),
    "acos": (math.acos, [-0.95, -0.4, 0.0, 0.3, 0.9]),
    "atan": (math.atan, [-5.0, -0.5, 0.0, 0.7, 10.0]),
    "softplus": (lambda x: math.log1p(math.exp(x)), [-15.0, -3.0, 0.0, 1.5, 25.0]),
    "erf": (math.erf, [-2.0, -0.5, 0.0, 0.3, 1.8]),
    "exp2": (math.exp2, [-3.0, -0.2, 0.0, 1.5, 6.0]),
    "log2": (math.log2, [0.05, 0.7, 1.0, 3.5, 250.0]),
    "log10": (math.log10, [0.05, 0.7, 1.0, 3.5, 250.0]),
    "cbrt": (math.cbrt, [-8.0, -0.3, 0.5, 27.0]),
    "asinh": (math.asinh, [-3.0, -0.4, 0.0, 0.7, 20.0]),
    "acosh": (math.acosh, [1.2, 2.0, 10.0]),
    "atanh": (math.atanh, [-0.9, -0.3, 0.0, 0.4]),
    "floor": (lambda x: float(math.floor(x)), [-1.5, 0.3, 2.7]),
    "ceil": (lambda x: float(math.ceil(x)), [-1.5, 0.3, 2.7]),
    "trunc": (lambda x: float(math.trunc(x)), [-1.5, 0.3, 2.7]),
    # The vocabulary of the partials (tapegrad.rules), away from their kinks.
    "step": (lambda x: 1.0 if x > 0 else 0.0, [-1.0, 0.5]),
    "sign": (lambda x: math.copysign(1.0, x), [-1.0, 0.5]),
    "safe_log": (math.log, [0.5, 2.0]),
}

BINARY: dict[str, tuple[Binary, list[tuple[float, float]]]] = {
    "add": (operator.add, [(1.5, -2.0), (-0.3, 0.7), (0.0, 4.0)]),
    "sub": (operator.sub, [(1.5, -2.0), (-0.3, 0.7), (0.0, 4.0)]),
    "mul": (operator.mul, [(1.5, -2.0), (-0.3, 0.7), (0.0, 4.0)]),
    "div": (operator.truediv, [(1.5, -2.0), (-0.3, 0.7), (0.0, 4.0), (3.0, 0.25)]),
    "pow": (operator.pow, [(1.5, 2.0), (0.7, -1.3), (2.0, 0.5), (3.0, 3.0), (0.2, 2.5)]),
    "atan2": (math.atan2, [(1.0, 2.0), (-0.5, 1.5), (2.0, -1.0), (-1.0, -3.0), (0.3, 0.0)]),
    "minimum": (min, [(1.0, 2.0), (2.0, -1.0), (-0.5, -0.4)]),
    "maximum": (max, [(1.0, 2.0), (2.0, -1.0), (-0.5, -0.4)]),
    "hypot": (math.hypot, [(3.0, 4.0), (-1.0, 2.5), (0.0, 2.0), (0.01, -0.02)]),
    "floordiv": (operator.floordiv, [(7.5, 2.0), (-7.5, 2.0), (1.3, -0.4)]),
    "mod": (operator.mod, [(7.5, 2.0), (-7.5, 2.0), (1.3, -0.4)]),
    "fmod": (math.fmod, [(7.5, 2.0), (-7.5, 2.0), (1.3, -0.4)]),
    "copysign": (math.copysign, [(1.5, -2.0), (-0.3, 0.7), (2.0, 3.0)]),
    # round(x, ndigits) takes int(ndigits): points between integers, so the
    # central difference in ndigits sees no jump.
    "round": (lambda x, n: float(round(x, int(n))), [(2.3216, 1.5), (-1.26, 0.5)]),
    "min_dx": (lambda x, y: 1.0 if x < y else 0.0, [(1.0, 2.0), (3.0, -1.0)]),
    "max_dx": (lambda x, y: 1.0 if x > y else 0.0, [(1.0, 2.0), (3.0, -1.0)]),
    "edge_div": (operator.truediv, [(1.0, 2.0), (-3.0, 0.5)]),
    "div0": (operator.truediv, [(1.0, 2.0), (-3.0, 0.5)]),
}

# Functions of tapegrad.math and methods of Var are the public spellings; the
# vocabulary of the partials is reached through the rule itself.
VOCABULARY = {"step", "sign", "safe_log", "min_dx", "max_dx", "edge_div", "div0", "scaled_pow"}
BUILTIN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "trunc": math.trunc,
}

# Where the reference *is* the math-module function, values must agree bit for bit.
NOT_IN_MATH = {"relu", "sigmoid", "softplus", "neg", "step", "sign"}

UNARY_CASES = [(name, x) for name, (_, xs) in UNARY.items() for x in xs]
BINARY_CASES = [(name, x, y) for name, (_, pts) in BINARY.items() for x, y in pts]

# -- how to call each primitive on Vars -----------------------------------------------


def unary_callers(name: str) -> dict[str, Callable[[Any], Any]]:
    """Every public spelling of a unary primitive."""
    callers: dict[str, Callable[[Any], Any]] = {}
    if name == "neg":
        callers["operator"] = operator.neg
        return callers
    if name in VOCABULARY:
        callers["rule"] = lambda v: apply_rule(RULES[name], v)
        return callers
    callers["math"] = getattr(tm, name)
    if hasattr(Var, name):
        callers["method"] = lambda v: getattr(v, name)()
    if name in BUILTIN_FUNCTIONS:
        callers["builtin"] = BUILTIN_FUNCTIONS[name]
    return callers


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "pow": operator.pow,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
}


def binary_callers(name: str) -> dict[str, Callable[[Any, Any], Any]]:
    """Every public spelling of a binary primitive that accepts a number first."""
    callers: dict[str, Callable[[Any, Any], Any]] = {}
    if name in OPERATORS:
        callers["operator"] = OPERATORS[name]
    if name in tm.__all__:
        callers["math"] = getattr(tm, name)
    if name in VOCABULARY or name == "round":
        callers["rule"] = lambda x, y: apply_rule(RULES[name], _value(x), _value(y))
    return callers


def _value(x: Any) -> Any:
    """A Var stays; a number becomes a float, as the engine hands it to a rule."""
    return x if isinstance(x, Var) else float(x)


def method_name(name: str) -> str | None:
    """The Var method of a binary primitive (the first operand must be a Var)."""
    return name if name in {"pow", "atan2", "minimum", "maximum", "hypot"} else None


def test_every_primitive_has_a_reference() -> None:
    # A row without a reference here has one generated from the row in
    # tests/test_rows.py: the function of math, numpy or scipy.special of its name.
    by_hand = set(UNARY) | set(BINARY) | {"scaled_pow", "stop"}
    assert by_hand <= set(RULES)
    for name in set(RULES) - by_hand:
        assert library_reference(RULES[name]) is not None, name
    for name in UNARY:
        assert RULES[name].arity == 1, name
    for name in BINARY:
        assert RULES[name].arity == 2, name


# -- values ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "x"), UNARY_CASES)
def test_unary_value(name: str, x: float) -> None:
    ref, _ = UNARY[name]
    expected = ref(x)

    def check(value: float) -> bool:
        if name in NOT_IN_MATH:
            return bool(value == pytest.approx(expected, rel=1e-14, abs=1e-300))
        return value == expected

    if name in tm.__all__:
        on_float = getattr(tm, name)(x)
        assert type(on_float) is float
        assert check(on_float)
    for spelling, call in unary_callers(name).items():
        out = call(Var(x))
        assert isinstance(out, Var), spelling
        assert type(out.data) is float, spelling
        assert check(out.data), spelling


@pytest.mark.parametrize(("name", "x", "y"), BINARY_CASES)
def test_binary_value(name: str, x: float, y: float) -> None:
    ref, _ = BINARY[name]
    expected = ref(x, y)
    if name in tm.__all__:
        on_float = getattr(tm, name)(x, y)
        assert type(on_float) is float
        assert on_float == expected
    for spelling, call in binary_callers(name).items():
        for a, b in ((Var(x), Var(y)), (Var(x), y), (x, Var(y))):
            out = call(a, b)
            assert isinstance(out, Var), spelling
            assert out.data == expected, (spelling, a, b)


# -- the partials of the rule table, on floats ----------------------------------------


@pytest.mark.parametrize(("name", "x"), UNARY_CASES)
def test_unary_rule_partial(name: str, x: float) -> None:
    ref, _ = UNARY[name]
    rule = RULES[name]
    out = rule.forward(x)
    assert float(rule.partials[0](x, out)) == fd_tol(central(ref, x))


@pytest.mark.parametrize(("name", "x", "y"), BINARY_CASES)
def test_binary_rule_partials(name: str, x: float, y: float) -> None:
    ref, _ = BINARY[name]
    rule = RULES[name]
    out = rule.forward(x, y)
    assert float(rule.partials[0](x, y, out)) == fd_tol(central(lambda t: ref(t, y), x))
    assert float(rule.partials[1](x, y, out)) == fd_tol(central(lambda t: ref(x, t), y))


# -- the same derivatives through backward(), every spelling ----------------------------


@pytest.mark.parametrize(("name", "x"), UNARY_CASES)
def test_unary_backward(name: str, x: float) -> None:
    ref, _ = UNARY[name]
    expected = central(ref, x)
    for spelling, call in unary_callers(name).items():
        for kind in ("leaf", "intermediate"):
            v = Var(x)
            arg = v if kind == "leaf" else v * 1.0
            call(arg).backward()
            assert v.grad == fd_tol(expected), (spelling, kind)


def constants(value: float) -> list[Any]:
    """The number types a constant operand may have: float, int, numpy float."""
    out: list[Any] = [value, np.float64(value)]
    if value == int(value):
        out.append(int(value))
    return out


@pytest.mark.parametrize(("name", "x", "y"), BINARY_CASES)
def test_binary_backward_var_var(name: str, x: float, y: float) -> None:
    ref, _ = BINARY[name]
    dx = central(lambda t: ref(t, y), x)
    dy = central(lambda t: ref(x, t), y)
    spellings = dict(binary_callers(name))
    meth = method_name(name)
    if meth is not None:
        spellings["method"] = lambda a, b: getattr(a, meth)(b)
    for spelling, call in spellings.items():
        a, b = Var(x), Var(y)
        call(a, b).backward()
        assert a.grad == fd_tol(dx), spelling
        assert b.grad == fd_tol(dy), spelling
        # Intermediates as operands take the other fast-path branches.
        a, b = Var(x), Var(y)
        call(a * 1.0, b + 0.0).backward()
        assert a.grad == fd_tol(dx), spelling
        assert b.grad == fd_tol(dy), spelling


@pytest.mark.parametrize(("name", "x", "y"), BINARY_CASES)
def test_binary_backward_var_number(name: str, x: float, y: float) -> None:
    ref, _ = BINARY[name]
    dx = central(lambda t: ref(t, y), x)
    spellings = dict(binary_callers(name))
    meth = method_name(name)
    if meth is not None:
        spellings["method"] = lambda a, b: getattr(a, meth)(b)
    for spelling, call in spellings.items():
        for c in constants(y):
            for kind in ("leaf", "intermediate"):
                a = Var(x)
                out = call(a if kind == "leaf" else a * 1.0, c)
                assert out.data == ref(x, y), (spelling, type(c), kind)
                out.backward()
                assert a.grad == fd_tol(dx), (spelling, type(c), kind)


@pytest.mark.parametrize(("name", "x", "y"), BINARY_CASES)
def test_binary_backward_number_var(name: str, x: float, y: float) -> None:
    ref, _ = BINARY[name]
    dy = central(lambda t: ref(x, t), y)
    for spelling, call in binary_callers(name).items():
        for c in constants(x):
            for kind in ("leaf", "intermediate"):
                b = Var(y)
                out = call(c, b if kind == "leaf" else b * 1.0)
                assert isinstance(out, Var)
                assert out.data == ref(x, y), (spelling, type(c), kind)
                out.backward()
                assert b.grad == fd_tol(dy), (spelling, type(c), kind)


@pytest.mark.parametrize(("x", "n"), [(-1.5, 2), (-2.0, 3), (-0.5, -1), (-3.0, 0)])
def test_pow_negative_base_integer_exponent(x: float, n: int) -> None:
    # A negative base is fine with an integral exponent (int or float), as for floats.
    for exponent in (n, float(n), Var(float(n))):
        a = Var(x)
        out = a**exponent
        assert out.data == x**n
        out.backward()
        assert a.grad == fd_tol(central(lambda t: t**n, x))
        if isinstance(exponent, Var):
            assert math.isnan(exponent.grad)  # documented: d(x**y)/dy is NaN for x < 0


def test_rpow_and_pow_with_var_exponent() -> None:
    # 2 ** x: d/dx = 2**x ln 2, by hand.
    for base in (2, 2.0, np.float64(2.0)):
        x = Var(1.3)
        out = base**x
        assert isinstance(out, Var)
        assert out.data == 2.0**1.3
        out.backward()
        assert x.grad == pytest.approx(2.0**1.3 * math.log(2.0), rel=1e-15)
    # x ** y with both Vars: y x**(y-1) and x**y ln x.
    x, y = Var(1.7), Var(-0.6)
    (x**y).backward()
    assert x.grad == pytest.approx(-0.6 * 1.7**-1.6, rel=1e-15)
    assert y.grad == pytest.approx(1.7**-0.6 * math.log(1.7), rel=1e-15)


# -- the fast paths of Var's operators ------------------------------------------------

FAST_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
OPERAND_KINDS = ["leaf", "intermediate", "float", "int", "numpy", "bool"]


def operand(kind: str, value: float) -> tuple[Any, Var | None]:
    """An operand of the given kind and its leaf (None for a constant)."""
    if kind == "leaf":
        v = Var(value)
        return v, v
    if kind == "intermediate":
        v = Var(value)
        return v + 0.0, v
    if kind == "float":
        return float(value), None
    if kind == "int":
        return int(value), None
    if kind == "numpy":
        return np.float64(value), None
    return bool(value), None


CONSTANT_KINDS = {"float", "int", "numpy", "bool"}
FAST_PAIRS = [
    (left, right)
    for left in OPERAND_KINDS
    for right in OPERAND_KINDS
    if not (left in CONSTANT_KINDS and right in CONSTANT_KINDS)
]


@pytest.mark.parametrize("op", list(FAST_BINARY))
@pytest.mark.parametrize(("left", "right"), FAST_PAIRS)
def test_fast_path_binary(op: str, left: str, right: str) -> None:
    fn = FAST_BINARY[op]
    # Integral values so that int and bool operands hold the same number.
    x = 3.0 if left != "bool" else 1.0
    y = -2.0 if right != "bool" else 1.0
    a, la = operand(left, x)
    b, lb = operand(right, y)
    out = fn(a, b)
    assert isinstance(out, Var)
    assert out.data == fn(x, y)
    assert type(out.data) is float
    out.backward()
    if la is not None:
        assert la.grad == fd_tol(central(lambda t: fn(t, y), x))
        assert type(la.grad) is float
    if lb is not None:
        assert lb.grad == fd_tol(central(lambda t: fn(x, t), y))


@pytest.mark.parametrize("op", list(FAST_BINARY))
@pytest.mark.parametrize("kind", ["leaf", "intermediate"])
def test_fast_path_same_operand_twice(op: str, kind: str) -> None:
    fn = FAST_BINARY[op]
    x = 1.75
    a, leaf = operand(kind, x)
    assert leaf is not None
    out = fn(a, a)
    assert out.data == fn(x, x)
    out.backward()
    assert leaf.grad == fd_tol(central(lambda t: fn(t, t), x))


@pytest.mark.parametrize(
    ("spelling", "call", "ref"),
    [
        ("-v", operator.neg, lambda t: -t),
        ("+v", operator.pos, lambda t: t),
        ("relu", lambda v: v.relu(), lambda t: max(t, 0.0)),
        ("tanh", lambda v: v.tanh(), math.tanh),
        ("abs", abs, math.fabs),
    ],
)
@pytest.mark.parametrize("kind", ["leaf", "intermediate"])
@pytest.mark.parametrize("x", [-1.25, 0.5, 2.0])
def test_fast_path_unary(
    spelling: str, call: Callable[[Any], Any], ref: Unary, kind: str, x: float
) -> None:
    a, leaf = operand(kind, x)
    assert leaf is not None
    out = call(a)
    assert out.data == ref(x)
    out.backward()
    assert leaf.grad == fd_tol(central(ref, x)), spelling


def test_fast_path_chain_of_mixed_operations() -> None:
    # A longer expression through every fast path at once, against differences.
    def f(t: Any) -> Any:
        u = 2 * t + 1
        u = u - 0.5 * t
        u = 3.0 - u / 4
        u = (-u).tanh() * t + (t - 2).relu() + 1.5 / (t * t + 1)
        return u

    for x in (-1.3, 0.4, 2.7):
        v = Var(x)
        out = f(v)
        out.backward()

        def ref(t: float) -> float:
            return (
                math.tanh(-(3.0 - ((2 * t + 1) - 0.5 * t) / 4)) * t
                + max(t - 2, 0.0)
                + 1.5 / (t * t + 1)
            )

        assert out.data == pytest.approx(ref(x), rel=1e-15)
        assert v.grad == fd_tol(central(ref, x))


# -- kinks and edges (documented choices) -------------------------------------------


def test_relu_kink_is_zero() -> None:
    for x0 in (0.0, -0.0):
        for call in (lambda v: v.relu(), tm.relu):
            for kind in ("leaf", "intermediate"):
                a, leaf = operand(kind, x0)
                assert leaf is not None
                out = call(a)
                assert out.data == 0.0
                out.backward()
                assert leaf.grad == 0.0
    assert RULES["relu"].partials[0](0.0, 0.0) == 0.0


def test_abs_kink_is_zero() -> None:
    for x0 in (0.0, -0.0):
        for call in (abs, lambda v: v.abs(), tm.abs):
            a = Var(x0)
            out = call(a)
            assert out.data == 0.0
            out.backward()
            assert a.grad == 0.0
    assert RULES["abs"].partials[0](0.0, 0.0) == 0.0


@pytest.mark.parametrize("name", ["minimum", "maximum"])
def test_min_max_ties_split_evenly(name: str) -> None:
    fn = getattr(tm, name)
    a, b = Var(1.5), Var(1.5)
    out = fn(a, b)
    assert out.data == 1.5
    out.backward()
    assert (a.grad, b.grad) == (0.5, 0.5)
    # The same Var on both sides gets both halves.
    a = Var(1.5)
    getattr(a, name)(a).backward()
    assert a.grad == 1.0
    # A tie with a constant: the Var gets its half.
    a = Var(1.5)
    fn(a, 1.5).backward()
    assert a.grad == 0.5
    a = Var(1.5)
    fn(1.5, a).backward()
    assert a.grad == 0.5


def test_infinite_derivatives_at_domain_edges() -> None:
    cases: list[tuple[Callable[[Any], Any], float, float, float]] = [
        (tm.sqrt, 0.0, 0.0, math.inf),
        (lambda v: v.sqrt(), 0.0, 0.0, math.inf),
        (lambda v: v**0.5, 0.0, 0.0, math.inf),
        (tm.asin, 1.0, math.pi / 2, math.inf),
        (tm.asin, -1.0, -math.pi / 2, math.inf),
        (tm.acos, 1.0, 0.0, -math.inf),
        (tm.acos, -1.0, math.pi, -math.inf),
    ]
    for call, x, value, grad in cases:
        v = Var(x)
        out = call(v)
        assert out.data == value
        out.backward()
        assert v.grad == grad, (x, value)


def test_documented_pow_and_hypot_edges() -> None:
    # d(x**y)/dy is 0 at x == 0 (as JAX), for y > 0 where the value is defined.
    x, y = Var(0.0), Var(2.5)
    out = x**y
    assert out.data == 0.0
    out.backward()
    assert (x.grad, y.grad) == (0.0, 0.0)  # d/dx = 2.5 * 0**1.5 = 0
    # x**1 at 0 has derivative 1, x**0 has derivative 0.
    x = Var(0.0)
    (x**1).backward()
    assert x.grad == 1.0
    x = Var(0.0)
    (x**0).backward()
    assert x.grad == 0.0
    # hypot at the origin: partials (0, 0), consistent with abs'(0) = 0.
    a, b = Var(0.0), Var(0.0)
    out = tm.hypot(a, b)
    assert out.data == 0.0
    out.backward()
    assert (a.grad, b.grad) == (0.0, 0.0)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_atan2_partials_at_extreme_scales(scale: float) -> None:
    # d atan2(y, x)/dy = x / (x**2 + y**2), d/dx = -y / (x**2 + y**2): at y = 2s,
    # x = s they are 1/(5s) and -2/(5s), finite for every representable s.
    y, x = Var(2 * scale), Var(scale)
    out = tg.math.atan2(y, x)
    assert out.data == math.atan2(2 * scale, scale)
    out.backward()
    assert y.grad == pytest.approx(1 / (5 * scale), rel=1e-12, abs=0.0)
    assert x.grad == pytest.approx(-2 / (5 * scale), rel=1e-12, abs=0.0)


def test_stop_is_the_value_with_derivative_zero() -> None:
    # stop_gradient of a traced Var records "stop": its value is x, and by
    # definition it passes no derivative (hand-derived: d/dx (x * stop(x)) = stop(x)).
    rule = RULES["stop"]
    assert rule.forward(0.75) == 0.75
    assert rule.partials[0](0.75, 0.75) == 0.0
    x = Var(3.0)
    (x * apply_rule(rule, x)).backward()
    assert x.grad == 3.0
