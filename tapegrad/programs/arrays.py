"""Every primitive on arrays: the Array API form of each row of the rule table.

``ARRAY_FORMS[name](xp, *args)`` computes the rule elementwise on arrays of the
namespace ``xp`` (numpy, array-api-strict, torch through array-api-compat
...), calling only functions of the Array API standard, so a GPU array
library computes on the GPU. Each value is what the rule's float forward
gives for each element (the kinks as the rule has them, NaN included).

``ARRAY_DOMAINS[name](xp, *args)`` marks the elements where the float
forward *raises* (a domain error, a zero divisor, an overflow that ``math``
reports): there the array computation gives inf or NaN, and
:mod:`tapegrad.programs.vmap` hands those samples to ``f`` itself, which
raises what it would. A rule without an array form (a custom primitive,
``erf``: the standard has no erf) is computed element by element with its
float forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["ARRAY_FORMS", "ARRAY_DOMAINS"]

Form = Callable[..., Any]

_LOG_MAX = math.log(1.7976931348623157e308)  # math.exp overflows above this


def _relu(xp: Any, x: Any) -> Any:
    return xp.where((x > 0.0) | (x != x), x, xp.zeros_like(x))


def _step(xp: Any, x: Any) -> Any:
    return xp.where(x > 0.0, xp.ones_like(x), xp.zeros_like(x))


def _sign(xp: Any, x: Any) -> Any:
    ones = xp.ones_like(x)
    return xp.where(x > 0.0, ones, xp.where(x < 0.0, -ones, xp.zeros_like(x)))


def _is_integer(xp: Any, y: Any) -> Any:
    return xp.floor(y) == y


def _pow(xp: Any, x: Any, y: Any) -> Any:
    return xp.where(y == 2.0, x * x, xp.pow(x, y))


def _pow_domain(xp: Any, x: Any, y: Any) -> Any:
    finite = xp.isfinite(x) & xp.isfinite(y)
    bad = ((x == 0.0) & (y < 0.0)) | ((x < 0.0) & finite & ~_is_integer(xp, y))
    # math.pow raises OverflowError where the finite result overflows.
    return bad | (finite & ~xp.isfinite(_pow(xp, x, y)))


def _minimum(xp: Any, x: Any, y: Any) -> Any:
    return xp.where((x != x) | (y != y), x + y, xp.minimum(x, y))


def _maximum(xp: Any, x: Any, y: Any) -> Any:
    return xp.where((x != x) | (y != y), x + y, xp.maximum(x, y))


def _tie_slope(xp: Any, wins: Any, x: Any, y: Any) -> Any:
    """1 where ``wins``, 0.5 on a tie, else 0 (the slope of min or max)."""
    zeros = xp.zeros_like(x + y)
    return xp.where(wins, zeros + 1.0, xp.where(x == y, zeros + 0.5, zeros))


def _min_dx(xp: Any, x: Any, y: Any) -> Any:
    return _tie_slope(xp, x < y, x, y)


def _max_dx(xp: Any, x: Any, y: Any) -> Any:
    return _tie_slope(xp, x > y, x, y)


def _edge_div(xp: Any, n: Any, d: Any) -> Any:
    safe = xp.where(d != 0.0, d, xp.ones_like(d))
    signed = xp.copysign(xp.full_like(n, math.inf), n) * xp.copysign(xp.ones_like(d), d)
    edge = xp.where((n == 0.0) | (n != n), xp.full_like(signed, math.nan), signed)
    return xp.where(d != 0.0, n / safe, edge)


def _div0(xp: Any, n: Any, d: Any) -> Any:
    quotient = n / xp.where(d != 0.0, d, xp.ones_like(d))
    return xp.where(d != 0.0, quotient, xp.zeros_like(quotient))


def _safe_log(xp: Any, x: Any) -> Any:
    logs = xp.log(xp.where(x > 0.0, x, xp.ones_like(x)))
    below = xp.where(x == 0.0, xp.zeros_like(x), xp.full_like(x, math.nan))
    return xp.where(x > 0.0, logs, below)


def _scaled_pow(xp: Any, c: Any, x: Any, p: Any) -> Any:
    power = xp.pow(x, p)
    value = c * power
    value = xp.where(p == 1.0, c * x, value)
    value = xp.where(p == 0.0, c + xp.zeros_like(value), value)
    return xp.where(c == 0.0, xp.zeros_like(value), value)


def _sigmoid(xp: Any, x: Any) -> Any:
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(xp: Any, x: Any) -> Any:
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def _round(xp: Any, x: Any, ndigits: Any) -> Any:
    if not isinstance(ndigits, float) or ndigits != 0.0:
        raise NotImplementedError("round with ndigits on arrays")  # element by element
    return xp.round(x)  # half to even, as Python's round


def _cbrt(xp: Any, x: Any) -> Any:
    y = xp.sign(x) * xp.pow(xp.abs(x), xp.full_like(x, 1.0 / 3.0))
    safe = xp.where(y != 0.0, y, xp.ones_like(y))
    refined = y - (y * y * y - x) / (3.0 * safe * safe)  # one Newton step, as rules._cbrt
    return xp.where((y != 0.0) & xp.isfinite(x), refined, x)


def _fmod(xp: Any, x: Any, y: Any) -> Any:
    return x - y * xp.trunc(x / y)


def _overflow(limit: float) -> Form:
    """Where math's function overflows: |x| above ``limit``."""
    return lambda xp, x: xp.isfinite(x) & (xp.abs(x) > limit)


# fmt: off
ARRAY_FORMS: dict[str, Form] = {
    "add":      lambda xp, x, y: x + y,
    "sub":      lambda xp, x, y: x - y,
    "mul":      lambda xp, x, y: x * y,
    "div":      lambda xp, x, y: x / y,
    "pow":      _pow,
    "neg":      lambda xp, x: -x,
    "floordiv": lambda xp, x, y: xp.floor_divide(x, y),
    "mod":      lambda xp, x, y: xp.remainder(x, y),
    "abs":      lambda xp, x: xp.abs(x),
    "relu":     _relu,
    "tanh":     lambda xp, x: xp.tanh(x),
    "exp":      lambda xp, x: xp.exp(x),
    "exp2":     lambda xp, x: xp.pow(xp.full_like(x, 2.0), x),
    "expm1":    lambda xp, x: xp.expm1(x),
    "log":      lambda xp, x: xp.log(x),
    "log2":     lambda xp, x: xp.log2(x),
    "log10":    lambda xp, x: xp.log10(x),
    "log1p":    lambda xp, x: xp.log1p(x),
    "sigmoid":  _sigmoid,
    "softplus": _softplus,
    "sqrt":     lambda xp, x: xp.sqrt(x),
    "cbrt":     _cbrt,
    "sin":      lambda xp, x: xp.sin(x),
    "cos":      lambda xp, x: xp.cos(x),
    "tan":      lambda xp, x: xp.tan(x),
    "asin":     lambda xp, x: xp.asin(x),
    "acos":     lambda xp, x: xp.acos(x),
    "atan":     lambda xp, x: xp.atan(x),
    "sinh":     lambda xp, x: xp.sinh(x),
    "cosh":     lambda xp, x: xp.cosh(x),
    "asinh":    lambda xp, x: xp.asinh(x),
    "acosh":    lambda xp, x: xp.acosh(x),
    "atanh":    lambda xp, x: xp.atanh(x),
    "floor":    lambda xp, x: xp.floor(x),
    "ceil":     lambda xp, x: xp.ceil(x),
    "trunc":    lambda xp, x: xp.trunc(x),
    "round":    _round,
    "atan2":    lambda xp, y, x: xp.atan2(y, x),
    "hypot":    lambda xp, x, y: xp.hypot(x, y),
    "minimum":  _minimum,
    "maximum":  _maximum,
    "copysign": lambda xp, x, y: xp.copysign(x, y),
    "fmod":     _fmod,
    "stop":     lambda xp, x: x,
    "step":     _step,
    "sign":     _sign,
    "min_dx":   _min_dx,
    "max_dx":   _max_dx,
    "edge_div": _edge_div,
    "div0":     _div0,
    "safe_log": _safe_log,
    "scaled_pow": _scaled_pow,
}

# Where the float forward raises (a mask of the samples), for the rules that can.
ARRAY_DOMAINS: dict[str, Form] = {
    "div":      lambda xp, x, y: y == 0.0,
    "floordiv": lambda xp, x, y: y == 0.0,
    "mod":      lambda xp, x, y: y == 0.0,
    "fmod":     lambda xp, x, y: (y == 0.0) | xp.isinf(x),
    "pow":      _pow_domain,
    "exp":      _overflow(_LOG_MAX),
    "exp2":     _overflow(1023.0),
    "expm1":    _overflow(_LOG_MAX),
    "sinh":     _overflow(_LOG_MAX + math.log(2.0)),
    "cosh":     _overflow(_LOG_MAX + math.log(2.0)),
    "log":      lambda xp, x: x <= 0.0,
    "log2":     lambda xp, x: x <= 0.0,
    "log10":    lambda xp, x: x <= 0.0,
    "log1p":    lambda xp, x: x <= -1.0,
    "sqrt":     lambda xp, x: x < 0.0,
    "asin":     lambda xp, x: xp.abs(x) > 1.0,
    "acos":     lambda xp, x: xp.abs(x) > 1.0,
    "acosh":    lambda xp, x: x < 1.0,
    "atanh":    lambda xp, x: xp.abs(x) >= 1.0,
    "tan":      lambda xp, x: xp.isinf(x),
    "sin":      lambda xp, x: xp.isinf(x),
    "cos":      lambda xp, x: xp.isinf(x),
    "floor":    lambda xp, x: ~xp.isfinite(x),
    "ceil":     lambda xp, x: ~xp.isfinite(x),
    "trunc":    lambda xp, x: ~xp.isfinite(x),
    "round":    lambda xp, x, n: ~xp.isfinite(x),
}
# fmt: on
