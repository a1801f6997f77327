"""The rule table: every primitive's value and local partial derivatives.

This module is the reference card of tapegrad. Each row says, for one
primitive, how to compute its value on floats and its local partial
derivatives ``d out / d input_i``.

Vocabulary (as in PyTorch's ``derivatives.yaml``):

* ``x``, ``y``: the primitive's inputs (``y`` only for binary primitives);
* ``out``: the primitive's output value;
* ``forward``: the value, computed on Python floats with the ``math`` module;
* ``partials``: one function per input, ``partial_i(x, [y,] out)``.

The partials are written with operators and :mod:`tapegrad.math`, so they
work on floats (first-order derivatives) and equally on Vars of an outer tape,
which is what makes the backward pass itself differentiable and lets
transforms nest to any order. A partial never sees a constant input: the
engine skips the partial of an input that is not being differentiated.

Choices at kinks and edges, documented in ``docs/rules.md``:

* ``relu'(0) = 0`` and ``abs'(0) = 0`` (as PyTorch and JAX);
* ``minimum``/``maximum`` split the gradient evenly on ties (as JAX);
* ``hypot`` at ``(0, 0)`` has partials ``(0, 0)``, consistent with ``abs'(0)``;
* a derivative that is infinite at the edge of a domain (``sqrt`` at 0,
  ``asin``/``acos`` at +-1, ``x ** 0.5`` at 0) is ``inf`` rather than an error:
  the forward value is valid there, so the forward pass must not fail;
* ``d (x ** y) / dy`` is 0 at ``x == 0`` (as JAX) and NaN for ``x < 0``.

Errors mirror Python's ``math`` module: ``forward`` raises ``ValueError``
outside the domain, ``ZeroDivisionError`` for a zero divisor and
``OverflowError`` where ``math`` does; the engine adds the primitive's name to
the message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tapegrad import math as tm

# Partials receive floats or Vars; they are generic on purpose (see above).
Partial = Callable[..., Any]


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One primitive: its name, how it is drawn, its float forward, its partials.

    Rules compare and hash by identity (``eq=False``): the engine looks them up
    per recorded op when it packs a tape, and a field-wise hash is 10x slower.
    """

    name: str
    symbol: str
    forward: Callable[..., float]
    partials: tuple[Partial, ...]

    @property
    def arity(self) -> int:
        """Number of inputs."""
        return len(self.partials)


# ---------------------------------------------------------------------------
# Helpers for the forward functions (floats only) and for the partials.
# ---------------------------------------------------------------------------


def _float_pow(x: float, y: float) -> float:
    """``x ** y`` on floats with ``math``-style errors instead of complex results."""
    if x == 0.0 and y < 0.0:
        raise ZeroDivisionError("0.0 cannot be raised to a negative power")
    if x < 0.0 and math.isfinite(x) and math.isfinite(y) and not float(y).is_integer():
        raise ValueError(f"negative base {x!r} to the non-integer power {y!r}")
    return math.pow(x, y)  # as float ** for finite operands; inf and NaN as math does


def _sigmoid(x: float) -> float:
    """Logistic function, stable for large ``|x|`` (``math.exp`` would overflow)."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _softplus(x: float) -> float:
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _relu(x: float) -> float:
    return x if x > 0.0 or x != x else 0.0  # NaN stays NaN, as in PyTorch and JAX


def _minimum(x: float, y: float) -> float:
    """min that propagates NaN from either side (the builtin depends on the order)."""
    return x + y if x != x or y != y else min(x, y)


def _maximum(x: float, y: float) -> float:
    """max that propagates NaN from either side."""
    return x + y if x != x or y != y else max(x, y)


def _sign(x: Any) -> float:
    """Sign of a value as a float constant, with sign(0) = 0."""
    v = float(x)
    return 1.0 if v > 0.0 else -1.0 if v < 0.0 else 0.0


def _edge_div(num: Any, den: Any) -> Any:
    """``num / den`` that gives IEEE ``inf``/``nan`` for a zero ``den``.

    Python raises on ``x / 0.0``; at the edge of a domain a derivative is
    infinite, and that is a value, not an error.
    """
    d = float(den)
    if d != 0.0:
        return num / den
    n = float(num)
    if n == 0.0 or math.isnan(n):
        return math.nan
    return math.copysign(math.inf, n) * math.copysign(1.0, d)


def _pow_dx(x: Any, y: Any, out: Any) -> Any:
    """``d (x ** y) / dx = y * x ** (y - 1)``, with the limits at ``x == 0``."""
    if float(x) == 0.0:
        yv = float(y)
        if yv == 0.0:
            return 0.0
        if yv < 1.0:
            return math.inf
        if yv == 1.0:
            return 1.0 + 0.0 * y  # keeps y's type for nested transforms
    try:
        return y * x ** (y - 1.0)
    except OverflowError:  # the value is finite but its slope is not: +-inf
        slope = float(y) * (1.0 if float(x) > 0.0 or float(y - 1.0) % 2 == 0 else -1.0)
        return math.copysign(math.inf, slope)


def _pow_dy(x: Any, y: Any, out: Any) -> Any:
    """``d (x ** y) / dy = out * log(x)``; 0 at ``x == 0``, NaN for ``x < 0``."""
    xv = float(x)
    if xv > 0.0:
        return out * tm.log(x)
    return 0.0 if xv == 0.0 else math.nan


def _atan2_partial(num: Any, x: Any, y: Any) -> Any:
    """``num / (x**2 + y**2)`` as ``(num / h) / h`` with ``h = hypot(x, y)``.

    Squaring under- or overflows at extreme scales (1e-200, 1e200) where the
    partials themselves are finite; hypot does not. NaN at (0, 0).
    """
    h = tm.hypot(x, y)
    return _edge_div(_edge_div(num, h), h)


def _min_dx(x: Any, y: Any, out: Any) -> float:
    xv, yv = float(x), float(y)
    return 1.0 if xv < yv else 0.5 if xv == yv else 0.0


def _max_dx(x: Any, y: Any, out: Any) -> float:
    xv, yv = float(x), float(y)
    return 1.0 if xv > yv else 0.5 if xv == yv else 0.0


def _swap(partial: Callable[[Any, Any, Any], Any]) -> Partial:
    """The partial w.r.t. ``y`` of a symmetric binary primitive."""
    return lambda x, y, out: partial(y, x, out)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

# ---------------------------------------------------------------------------
# The table. One row per primitive:
#   name         symbol   forward (floats)      d out/dx                       d out/dy
# ---------------------------------------------------------------------------
# fmt: off
RULES: dict[str, Rule] = {r.name: r for r in [
    Rule("add",     "+",     lambda x, y: x + y,   (lambda x, y, out: 1.0,         lambda x, y, out: 1.0)),
    Rule("sub",     "-",     lambda x, y: x - y,   (lambda x, y, out: 1.0,         lambda x, y, out: -1.0)),
    Rule("mul",     "*",     lambda x, y: x * y,   (lambda x, y, out: y,           lambda x, y, out: x)),
    Rule("div",     "/",     lambda x, y: x / y,   (lambda x, y, out: 1.0 / y,     lambda x, y, out: -out / y)),
    Rule("pow",     "**",    _float_pow,           (_pow_dx,                       _pow_dy)),
    Rule("neg",     "neg",   lambda x: -x,         (lambda x, out: -1.0,)),
    Rule("abs",     "abs",   abs,                  (lambda x, out: _sign(x),)),
    Rule("relu",    "relu",  _relu,                (lambda x, out: 1.0 if float(x) > 0.0 else 0.0,)),
    Rule("tanh",    "tanh",  math.tanh,            (lambda x, out: 1.0 - out * out,)),
    Rule("exp",     "exp",   math.exp,             (lambda x, out: out,)),
    Rule("log",     "log",   math.log,             (lambda x, out: 1.0 / x,)),
    Rule("sigmoid", "sigmoid", _sigmoid,           (lambda x, out: out * (1.0 - out),)),
    Rule("sin",     "sin",   math.sin,             (lambda x, out: tm.cos(x),)),
    Rule("cos",     "cos",   math.cos,             (lambda x, out: -tm.sin(x),)),
    Rule("tan",     "tan",   math.tan,             (lambda x, out: 1.0 + out * out,)),
    Rule("sqrt",    "sqrt",  math.sqrt,            (lambda x, out: _edge_div(0.5, out),)),
    Rule("log1p",   "log1p", math.log1p,           (lambda x, out: 1.0 / (1.0 + x),)),
    Rule("expm1",   "expm1", math.expm1,           (lambda x, out: out + 1.0,)),
    Rule("sinh",    "sinh",  math.sinh,            (lambda x, out: tm.cosh(x),)),
    Rule("cosh",    "cosh",  math.cosh,            (lambda x, out: tm.sinh(x),)),
    Rule("asin",    "asin",  math.asin,            (lambda x, out: _edge_div(1.0, tm.sqrt(1.0 - x * x)),)),
    Rule("acos",    "acos",  math.acos,            (lambda x, out: _edge_div(-1.0, tm.sqrt(1.0 - x * x)),)),
    Rule("atan",    "atan",  math.atan,            (lambda x, out: 1.0 / (1.0 + x * x),)),
    Rule("softplus", "softplus", _softplus,        (lambda x, out: tm.sigmoid(x),)),
    Rule("erf",     "erf",   math.erf,             (lambda x, out: _TWO_OVER_SQRT_PI * tm.exp(-x * x),)),
    # atan2(y, x) is called with y first, like math.atan2: here "x" is the first input.
    Rule("atan2",   "atan2", math.atan2,           (lambda x, y, out: _atan2_partial(y, x, y),
                                                    lambda x, y, out: _atan2_partial(-x, x, y))),
    Rule("minimum", "min",   _minimum,             (_min_dx,                       _swap(_min_dx))),
    Rule("maximum", "max",   _maximum,             (_max_dx,                       _swap(_max_dx))),
    Rule("hypot",   "hypot", math.hypot,           (lambda x, y, out: x / out if float(out) else 0.0,
                                                    lambda x, y, out: y / out if float(out) else 0.0)),
]}
# fmt: on
