"""True first and second derivatives of every rule, for the extreme-input audit.

The reference of tests/test_silent.py (the audit at fixed extreme points) and
tests/test_properties.py (at extreme points drawn by
``tapegrad.testing.extreme_inputs_for``): each rule's gradient and Hessian
derived by hand as closed forms, evaluated in 50-digit ``decimal``
arithmetic with an unbounded exponent, then rounded to floats (so a true
value beyond 1.8e308 is inf, and one below 5e-324 is 0). The trigonometric
functions use Python's ``math.sin``/``math.cos``/``math.tan`` values
(bounded, always finite).

:func:`wrong_derivatives` compares tapegrad with it at one point, in reverse
mode (``grad``, ``hessian``) and forward mode (``jacfwd``, ``jacfwd(grad)``):
where the true derivative is a finite float, tapegrad's must be finite and
agree to 1e-6 (or 1e-15 absolutely: rounding of cancelling terms), unless an
input or the value is subnormal (fewer than 53 bits: only finiteness is
checked there).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable, Sequence
from decimal import Decimal

import tapegrad as tg
from tapegrad.rules import RULES
from tapegrad.rules import call as apply_rule

_CTX = decimal.Context(
    prec=50,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Overflow],  # 1/0 is a signed infinity
)
D = Decimal
ONE, TWO, ZERO = D(1), D(2), D(0)
with decimal.localcontext(_CTX):
    LN2 = TWO.ln()
    LN10 = D(10).ln()
PI = D("3.14159265358979323846264338327950288419716939937510582097494")
with decimal.localcontext(_CTX):
    TWO_OVER_SQRT_PI = TWO / PI.sqrt()

Grad = list[Decimal]
Hess = list[list[Decimal]]


def _sgn(x: Decimal) -> Decimal:
    return ONE if x > 0 else -ONE if x < 0 else ZERO


def _pow(x: Decimal, p: Decimal) -> Decimal:
    """x ** p for x > 0."""
    return ONE if p == 0 else (p * x.ln()).exp()


def _expm1(x: Decimal) -> Decimal:
    """exp(x) - 1 without cancellation (a series for small |x|)."""
    if abs(x) > D("1e-3"):
        return x.exp() - 1
    term, total = x, x
    for k in range(2, 12):
        term = term * x / k
        total += term
    return total


def _sinh(x: Decimal) -> Decimal:
    return (_expm1(x) - _expm1(-x)) / 2


def _cosh(x: Decimal) -> Decimal:
    return (x.exp() + (-x).exp()) / 2


def _cbrt(x: Decimal) -> Decimal:
    return _sgn(x) * _pow(abs(x), ONE / 3)


def _sigmoid_parts(x: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """sigmoid and its two derivatives, from e = exp(-|x|) (no overflow, no cancellation)."""
    e = (-abs(x)).exp()
    s = ONE / (1 + e) if x >= 0 else e / (1 + e)
    d1 = e / (1 + e) ** 2
    one_minus_2s = _sgn(x) * _expm1(-abs(x)) / (1 + e)  # 1 - 2 s
    return s, d1, d1 * one_minus_2s


def _tanh_parts(x: Decimal) -> tuple[Decimal, Decimal]:
    m = _expm1(-2 * abs(x))  # e2 - 1, e2 = exp(-2|x|)
    t = -_sgn(x) * m / (2 + m)
    d1 = 4 * (m + 1) / (2 + m) ** 2
    return d1, -2 * t * d1


def _float_cos(x: Decimal) -> Decimal:
    # Python's own math.cos and math.sin are the reference for the
    # trigonometric functions (|values| <= 1: always finite).
    return D(math.cos(float(x)))


def _float_sin(x: Decimal) -> Decimal:
    return D(math.sin(float(x)))


def _float_tan(x: Decimal) -> Decimal:
    return D(math.tan(float(x)))


UNARY_REFERENCE: dict[str, Callable[[Decimal], tuple[Decimal, Decimal]]] = {
    "neg": lambda x: (-ONE, ZERO),
    "abs": lambda x: (_sgn(x), ZERO),
    "relu": lambda x: (ONE if x > 0 else ZERO, ZERO),
    "tanh": _tanh_parts,
    "exp": lambda x: (x.exp(), x.exp()),
    "exp2": lambda x: (_pow(TWO, x) * LN2, _pow(TWO, x) * LN2 * LN2),
    "expm1": lambda x: (x.exp(), x.exp()),
    "log": lambda x: (1 / x, -1 / (x * x)),
    "safe_log": lambda x: (1 / x, -1 / (x * x)),
    "log2": lambda x: (1 / (x * LN2), -1 / (x * x * LN2)),
    "log10": lambda x: (1 / (x * LN10), -1 / (x * x * LN10)),
    "log1p": lambda x: (1 / (1 + x), -1 / (1 + x) ** 2),
    "sigmoid": lambda x: _sigmoid_parts(x)[1:],
    "softplus": lambda x: _sigmoid_parts(x)[:2],
    "sqrt": lambda x: (1 / (2 * x.sqrt()), -1 / (4 * x * x.sqrt())),
    "cbrt": lambda x: (1 / (3 * _cbrt(x) ** 2), -2 / (9 * _cbrt(x) ** 5)),
    "sin": lambda x: (_float_cos(x), -_float_sin(x)),
    "cos": lambda x: (-_float_sin(x), -_float_cos(x)),
    "tan": lambda x: (1 + _float_tan(x) ** 2, 2 * _float_tan(x) * (1 + _float_tan(x) ** 2)),
    "asin": lambda x: (1 / (1 - x * x).sqrt(), x / (1 - x * x) ** D("1.5")),
    "acos": lambda x: (-1 / (1 - x * x).sqrt(), -x / (1 - x * x) ** D("1.5")),
    "atan": lambda x: (1 / (1 + x * x), -2 * x / (1 + x * x) ** 2),
    "sinh": lambda x: (_cosh(x), _sinh(x)),
    "cosh": lambda x: (_sinh(x), _cosh(x)),
    "asinh": lambda x: (1 / (1 + x * x).sqrt(), -x / (1 + x * x) ** D("1.5")),
    "acosh": lambda x: (1 / (x * x - 1).sqrt(), -x / (x * x - 1) ** D("1.5")),
    "atanh": lambda x: (1 / (1 - x * x), 2 * x / (1 - x * x) ** 2),
    "erf": lambda x: (
        TWO_OVER_SQRT_PI * (-x * x).exp(),
        -2 * x * TWO_OVER_SQRT_PI * (-x * x).exp(),
    ),
    # Piecewise constant (and the slopes of kinks): derivative 0.
    **{name: (lambda x: (ZERO, ZERO)) for name in ("floor", "ceil", "trunc", "step", "sign")},
}


def _zeros(n: int) -> Hess:
    return [[ZERO] * n for _ in range(n)]


def _div_reference(x: Decimal, y: Decimal) -> tuple[Grad, Hess]:
    return [1 / y, -x / (y * y)], [[ZERO, -1 / (y * y)], [-1 / (y * y), 2 * x / y**3]]


def _atan2_reference(x: Decimal, y: Decimal) -> tuple[Grad, Hess]:
    # atan2(x, y) is the angle of the point (y, x): d/dx = y / r^2, d/dy = -x / r^2.
    r2 = x * x + y * y
    r4 = r2 * r2
    mixed = (x * x - y * y) / r4
    return [y / r2, -x / r2], [[-2 * x * y / r4, mixed], [mixed, 2 * x * y / r4]]


def _hypot_reference(x: Decimal, y: Decimal) -> tuple[Grad, Hess]:
    h = (x * x + y * y).sqrt()
    h3 = h**3
    return [x / h, y / h], [[y * y / h3, -x * y / h3], [-x * y / h3, x * x / h3]]


def _pow_reference(x: Decimal, y: Decimal) -> tuple[Grad, Hess]:
    """x ** y for x > 0."""
    lx = x.ln()
    xy, xy1 = _pow(x, y), _pow(x, y - 1)
    mixed = xy1 * (1 + y * lx)
    return [y * xy1, xy * lx], [[y * (y - 1) * _pow(x, y - 2), mixed], [mixed, xy * lx * lx]]


def _scaled_pow_reference(c: Decimal, x: Decimal, p: Decimal) -> tuple[Grad, Hess]:
    """c * x ** p for x > 0: inputs c, x, p."""
    lx = x.ln()
    xp, xp1 = _pow(x, p), _pow(x, p - 1)
    cx = p * xp1
    cp = xp * lx
    xx = c * p * (p - 1) * _pow(x, p - 2)
    xp_ = c * xp1 * (1 + p * lx)
    pp = c * xp * lx * lx
    return [xp, c * p * xp1, c * xp * lx], [[ZERO, cx, cp], [cx, xx, xp_], [cp, xp_, pp]]


def _quotient(rounding: str) -> Callable[[Decimal, Decimal], tuple[Grad, Hess]]:
    """x % y (floor) and fmod (truncate): d/dx = 1, d/dy = -(the integer quotient)."""
    return lambda x, y: ([ONE, -(x / y).to_integral_value(rounding=rounding)], _zeros(2))


NARY_REFERENCE: dict[str, Callable[..., tuple[Grad, Hess]]] = {
    "add": lambda x, y: ([ONE, ONE], _zeros(2)),
    "sub": lambda x, y: ([ONE, -ONE], _zeros(2)),
    "mul": lambda x, y: ([y, x], [[ZERO, ONE], [ONE, ZERO]]),
    "div": _div_reference,
    "edge_div": _div_reference,
    "div0": _div_reference,
    "pow": _pow_reference,
    "scaled_pow": _scaled_pow_reference,
    "mod": _quotient(decimal.ROUND_FLOOR),
    "fmod": _quotient(decimal.ROUND_DOWN),
    "atan2": _atan2_reference,
    "hypot": _hypot_reference,
    "minimum": lambda x, y: ([ONE if x < y else ZERO, ONE if y < x else ZERO], _zeros(2)),
    "maximum": lambda x, y: ([ONE if x > y else ZERO, ONE if y > x else ZERO], _zeros(2)),
    "copysign": lambda x, y: ([_sgn(x) * D(math.copysign(1.0, float(y))), ZERO], _zeros(2)),
    **{
        name: (lambda x, y: ([ZERO, ZERO], _zeros(2)))
        for name in ("floordiv", "round", "min_dx", "max_dx")
    },
}


def has_reference(name: str) -> bool:
    """Whether rule ``name`` has a hand-derived reference here."""
    return name in UNARY_REFERENCE or name in NARY_REFERENCE


def reference_derivatives(
    name: str, args: Sequence[float]
) -> tuple[list[float], list[list[float]]]:
    """The gradient and Hessian of rule ``name`` at ``args``, rounded to floats."""
    with decimal.localcontext(_CTX):
        ds = [D(a) for a in args]
        if name in UNARY_REFERENCE:
            d1, d2 = UNARY_REFERENCE[name](ds[0])
            g, h = [d1], [[d2]]
        else:
            g, h = NARY_REFERENCE[name](*ds)
        return [_to_float(v) for v in g], [[_to_float(v) for v in row] for row in h]


def _to_float(d: Decimal) -> float:
    return float(d)  # correctly rounded: inf beyond the float range, 0 below


def defined(name: str, args: Sequence[float]) -> bool:
    """Whether the audit judges rule ``name`` at ``args``.

    The value must be a finite float, the point no kink, tie or pole (where a
    derivative is a convention of docs/rules.md, not a limit), powers have a
    positive base (a negative one has no real derivative in the exponent),
    and the reference must be computable (50 digits with an exponent of up to
    1e18 hold every float's derivatives but not, say, ``x ** 1e300`` at
    ``x = 1e308`` where a zero factor makes the value finite).
    """
    if name in ("minimum", "maximum", "min_dx", "max_dx") and args[0] == args[1]:
        return False  # a tie: 0.5 each by convention
    if name in ("atan2", "hypot") and args[0] == args[1] == 0.0:
        return False  # the origin: a convention
    if name in ("div", "edge_div", "div0", "mod", "fmod", "floordiv") and args[1] == 0.0:
        return False  # a zero divisor
    if name == "copysign" and args[0] == 0.0:
        return False  # the kink of |x|
    if (name == "pow" and args[0] <= 0.0) or (name == "scaled_pow" and args[1] <= 0.0):
        return False
    try:
        value = RULES[name].forward(*args)
    except (ValueError, ZeroDivisionError, OverflowError):
        return False
    if not math.isfinite(value):
        return False
    try:
        reference_derivatives(name, args)
    except decimal.DecimalException:
        return False
    return True


_SMALLEST_NORMAL = 2.2250738585072014e-308


def _subnormal(v: float) -> bool:
    return v != 0.0 and abs(v) < _SMALLEST_NORMAL


def wrong_derivatives(name: str, args: Sequence[float]) -> list[str]:
    """The derivatives of rule ``name`` at ``args`` (a point where it is ``defined``) that are not
    as true, one line each."""
    rule = RULES[name]
    n = rule.arity
    f = lambda v: apply_rule(rule, *v)
    g_true, h_true = reference_derivatives(name, args)
    xs = list(args)
    got = {
        "grad": tg.grad(f)(xs),
        "jacfwd": tg.jacfwd(f)(xs),
        "hessian": tg.hessian(f)(xs),
        "jacfwd(grad)": tg.jacfwd(tg.grad(f))(xs),
    }
    few_bits = any(_subnormal(v) for v in (*args, rule.forward(*args)))
    checks = [
        (f"d{i}", mode, got[mode][i], g_true[i]) for i in range(n) for mode in ("grad", "jacfwd")
    ] + [
        (f"d{i}{j}", mode, got[mode][i][j], h_true[i][j])
        for i in range(n)
        for j in range(n)
        for mode in ("hessian", "jacfwd(grad)")
    ]
    problems = []
    for which, mode, value, true in checks:
        if not math.isfinite(true):
            continue  # the true derivative overflows: inf, or NaN from inf - inf
        if not math.isfinite(value) or (
            not few_bits and abs(value - true) > 1e-6 * abs(true) + 1e-15
        ):
            problems.append(f"{name}{tuple(args)} {which} by {mode}: {value!r}, true {true!r}")
    return problems


# The rules that give inf or NaN where the true derivative is finite (engine
# bugs, found by this audit). Each reason is a repro: the point, the
# derivative, what tapegrad gives and what is true.
# (A zero partial or adjoint times inf was one such bug for atan, erf, fmod,
# div, edge_div and div0; every sweep now treats 0 * inf as 0.)
KNOWN_WRONG: dict[str, str] = {
    "atan2": "engine bug: inf - inf: d2 atan2(x, y)/dxdy at (1e-300, 1e-300) is nan, true "
    "(x^2 - y^2)/r^4 = 0; and an intermediate that overflows: d2/dx2 at "
    "(-5e-324, -7.311533606412718e-169) by hessian is -inf, true -2xy/r^4 = -2.528e181 "
    "(d2/dy2 there is right: 2.528e181)",
    "hypot": "engine bug: inf - inf: d2 hypot(x, y)/dy2 at (0.0, 5e-324) is nan, true x^2/h^3 = 0",
    "pow": "engine bug: d2(x ** y)/dydx at (5e-324, 1.0) by hessian is +inf, true "
    "x^(y-1) (1 + y log x) = -743.44 (the x-derivative of the y-partial out * safe_log(x) "
    "is out * (1/x), and 1/x overflows; d2/dxdy gives -743.44: the Hessian is not symmetric); "
    "d2/dx2 at (0.5, 1e300) is "
    "nan, true 0 (c = y (y - 1) overflows while x ** (y - 2) underflows: inf * 0)",
    "scaled_pow": "engine bug: the same two as pow, e.g. d2(c x^p)/dpdx at "
    "(1.5, 5e-324, 1.0) is inf, true c x^(p-1) (1 + p log x) = -1115.16; and the factor "
    "c p of the x-partial underflows: d2/dx2 at (1e-300, 1e-300, 1e-300) is 0.0, true "
    "c p (p - 1) x^(p-2) = -1.0",
}
