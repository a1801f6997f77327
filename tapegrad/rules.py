"""The rule table: every primitive's value and local partial derivatives.

This module is the reference card of tapegrad. Each row says, for one
primitive, how to compute its value on floats and its local partial
derivatives ``d out / d input_i``.

Vocabulary (as in PyTorch's ``derivatives.yaml``):

* ``x``, ``y``: the primitive's inputs (``y`` only for binary primitives);
* ``out``: the primitive's output value;
* ``forward``: the value, computed on Python floats with the ``math`` module;
* ``partials``: one function per input, ``partial_i(x, [y,] out)``.

The partials are written with operators and the functions defined at the end
of this module (``cos``, ``sqrt``, ``step`` ...), which apply a row of this very
table: on floats they compute a float, on Vars of an outer tape they record
on that tape. So the backward pass is itself differentiable and transforms
nest to any order. A partial never branches on the *value* of an input: a
value-dependent choice (the slope of ``relu``, the edge of ``sqrt``'s domain)
is a primitive of its own (``step``, ``edge_div``), so a recorded program
(:mod:`tapegrad.programs`) replays the choice for new inputs instead of
freezing the one made while tracing. A partial may branch on an input that is
a plain float (a constant, such as the exponent of ``x ** 2.0``), since that
cannot change. The engine skips the partial of an input that is a constant.

Choices at kinks and edges, documented in ``docs/rules.md``:

* ``relu'(0) = 0`` and ``abs'(0) = 0`` (as PyTorch and JAX);
* ``minimum``/``maximum`` split the gradient evenly on ties (as JAX);
* ``hypot`` at ``(0, 0)`` has partials ``(0, 0)``, consistent with ``abs'(0)``;
* a derivative that is infinite at the edge of a domain (``sqrt`` at 0,
  ``asin``/``acos`` at +-1, ``x ** 0.5`` at 0) is ``inf`` rather than an error:
  the forward value is valid there, so the forward pass must not fail;
* ``d (x ** y) / dx`` is 0 where the exponent is 0 (even where ``x ** -1``
  overflows), and ``d (x ** y) / dy`` is 0 at ``x == 0`` (as JAX), NaN for
  ``x < 0``;
* piecewise-constant primitives (``floor``, ``ceil``, ``trunc``, ``round``,
  ``//``) have derivative 0; ``d (x % y) / dy = -(x // y)``.

Errors mirror Python's ``math`` module: ``forward`` raises ``ValueError``
outside the domain, ``ZeroDivisionError`` for a zero divisor and
``OverflowError`` where ``math`` does; the engine adds the primitive's name to
the message.

This module imports nothing from tapegrad: the functions at the end reach the
engine through the Var they are given (its ``_record`` method).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "RULES", "call"]

# Partials receive floats or Vars; they are generic on purpose (see above).
Partial = Callable[..., Any]


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One primitive: its name, how it is drawn, its float forward, its partials.

    Rules compare and hash by identity (``eq=False``): a tape stores the rule
    object itself for every entry, and a field-wise hash is 10x slower.
    """

    name: str
    symbol: str
    forward: Callable[..., float]
    partials: tuple[Partial, ...]

    @property
    def arity(self) -> int:
        """Number of inputs."""
        return len(self.partials)


def call(rule: Rule, *args: Any) -> Any:
    """``rule`` at ``args``: its float forward, or recorded if an argument is a Var.

    Arguments are floats or Vars (the engine converts other numbers first). A
    Var records the op on its tape through its ``_record`` method.
    """
    for a in args:
        if a.__class__ is not float:
            return a._record(rule, args)
    return rule.forward(*args)


# ---------------------------------------------------------------------------
# Forward functions with edge handling (floats only).
# ---------------------------------------------------------------------------


def _float_pow(x: float, y: float) -> float:
    """``x ** y`` on floats with ``math``-style errors instead of complex results.

    ``x ** 2`` is ``x * x``: the fast path of ``Var.__pow__`` computes the
    square that way, and a recorded program replays it that way.
    """
    if y == 2.0:
        return x * x
    if x == 0.0 and y < 0.0:
        raise ZeroDivisionError("0.0 cannot be raised to a negative power")
    if x < 0.0 and math.isfinite(x) and math.isfinite(y) and not float(y).is_integer():
        raise ValueError(f"negative base {x!r} to the non-integer power {y!r}")
    return math.pow(x, y)  # as float ** for finite operands; inf and NaN as math does


def _exp2(x: float) -> float:
    """``2 ** x`` (``math.exp2`` from Python 3.11 on)."""
    return math.pow(2.0, x)


def _cbrt(x: float) -> float:
    """The real cube root (``math.cbrt`` from Python 3.11 on): pow, one Newton step."""
    if x == 0.0 or not math.isfinite(x):
        return x
    y = math.copysign(math.pow(abs(x), 1.0 / 3.0), x)
    return y - (y * y * y - x) / (3.0 * y * y)


# Python 3.10 has neither; 3.11's are correctly rounded where ours may be 1 ulp off.
_EXP2: Callable[[float], float] = getattr(math, "exp2", _exp2)
_CBRT: Callable[[float], float] = getattr(math, "cbrt", _cbrt)


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


def _round(x: float, ndigits: float) -> float:
    """Python's ``round(x, ndigits)`` as a float (half to even)."""
    return float(round(x, int(ndigits)))


def _step(x: float) -> float:
    """relu's slope: 1 for x > 0, else 0 (NaN included)."""
    return 1.0 if x > 0.0 else 0.0


def _sign(x: float) -> float:
    """abs's slope: the sign of x, with sign(0) = 0 (and sign(NaN) = 0)."""
    return 1.0 if x > 0.0 else -1.0 if x < 0.0 else 0.0


def _edge_div(num: float, den: float) -> float:
    """``num / den``, but IEEE ``inf``/``nan`` for a zero ``den`` instead of an error.

    At the edge of a domain a derivative is infinite, and that is a value.
    """
    if den != 0.0:
        return num / den
    if num == 0.0 or num != num:
        return math.nan
    return math.copysign(math.inf, num) * math.copysign(1.0, den)


def _div0(num: float, den: float) -> float:
    """``num / den``, 0 for a zero ``den`` (the slope of hypot at the origin)."""
    return num / den if den != 0.0 else 0.0


def _safe_log(x: float) -> float:
    """``log(x)`` for x > 0; 0 at 0 (where it multiplies ``0 ** y = 0``); NaN below."""
    if x > 0.0:
        return math.log(x)
    return 0.0 if x == 0.0 else math.nan


def _scaled_pow(c: float, x: float, p: float) -> float:
    """``c * x ** p``, the slope of a power, with ``0 * anything = 0``.

    Every derivative of ``x ** y`` in ``x`` is of this form
    (``d/dx c x**p = (c p) x**(p-1)``); a zero factor ``c`` makes it 0 even
    where ``x ** p`` overflows (``x ** -1`` at a subnormal ``x``), so the third
    derivative of ``x ** 2.0`` is 0 everywhere.
    """
    if c == 0.0:
        return 0.0
    if p == 0.0:
        return c
    if p == 1.0:
        return c * x
    if x == 0.0:
        return c * 0.0 if p > 0.0 else c * math.inf
    try:
        power = math.pow(x, p)
    except OverflowError:
        power = math.inf
    except ValueError:  # a negative base to a fractional power: no real slope
        return math.nan
    value = c * power
    if power != 0.0 and math.isfinite(value):
        return value
    # x ** p overflowed or underflowed, or the product did: c * x ** p may
    # still be finite (c tiny, or huge): in logarithms, exp(log|c| + p log|x|).
    negative = (c < 0.0) != (x < 0.0 and p % 2.0 == 1.0)
    try:
        magnitude = math.exp(math.log(abs(c)) + p * math.log(abs(x)))
    except OverflowError:
        magnitude = math.inf
    return -magnitude if negative else magnitude


def _min_dx(x: float, y: float) -> float:
    """d min(x, y) / dx: 1, 0.5 on a tie, else 0."""
    return 1.0 if x < y else 0.5 if x == y else 0.0


def _max_dx(x: float, y: float) -> float:
    """d max(x, y) / dx: 1, 0.5 on a tie, else 0."""
    return 1.0 if x > y else 0.5 if x == y else 0.0


# ---------------------------------------------------------------------------
# Partials that need a few lines (generic: floats or Vars).
# ---------------------------------------------------------------------------


def _zero(*args: Any) -> float:
    """The slope of a piecewise-constant primitive."""
    return 0.0


def _pow_dx(x: Any, y: Any, out: Any) -> Any:
    """``d (x ** y) / dx = y * x ** (y - 1)``, via ``scaled_pow`` for the edges.

    A constant exponent (a float) gives the common cases their plain form:
    the fast path of ``x ** 2`` records ``2.0 * x``, and so does this.
    """
    if y.__class__ is float:
        if y == 0.0:
            return 0.0
        if y == 1.0:
            return 1.0
        if y == 2.0:
            return 2.0 * x
    return scaled_pow(y, x, y - 1.0)


def _atan2_partial(num: Any, x: Any, y: Any) -> Any:
    """``num / (x**2 + y**2)`` as ``(num / h) / h`` with ``h = hypot(x, y)``.

    Squaring under- or overflows at extreme scales (1e-200, 1e200) where the
    partials themselves are finite; hypot does not. NaN at (0, 0).
    """
    h = hypot(x, y)
    return edge_div(edge_div(num, h), h)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)

# ---------------------------------------------------------------------------
# The table. One row per primitive:
#   name         symbol   forward (floats)      d out/dx                       d out/dy
# ---------------------------------------------------------------------------
# fmt: off
RULES: dict[str, Rule] = {r.name: r for r in [
    # Arithmetic, as Python's float operators.
    Rule("add",     "+",     lambda x, y: x + y,   (lambda x, y, out: 1.0,         lambda x, y, out: 1.0)),
    Rule("sub",     "-",     lambda x, y: x - y,   (lambda x, y, out: 1.0,         lambda x, y, out: -1.0)),
    Rule("mul",     "*",     lambda x, y: x * y,   (lambda x, y, out: y,           lambda x, y, out: x)),
    Rule("div",     "/",     lambda x, y: x / y,   (lambda x, y, out: 1.0 / y,     lambda x, y, out: -out / y)),
    Rule("pow",     "**",    _float_pow,           (_pow_dx,                       lambda x, y, out: out * safe_log(x))),
    Rule("neg",     "neg",   lambda x: -x,         (lambda x, out: -1.0,)),
    Rule("floordiv", "//",   lambda x, y: x // y,  (_zero,                         _zero)),
    Rule("mod",     "%",     lambda x, y: x % y,   (lambda x, y, out: 1.0,         lambda x, y, out: -(x // y))),
    # Functions of math (and the activations).
    Rule("abs",     "abs",   abs,                  (lambda x, out: sign(x),)),
    Rule("relu",    "relu",  _relu,                (lambda x, out: step(x),)),
    Rule("tanh",    "tanh",  math.tanh,            (lambda x, out: 1.0 - out * out,)),
    Rule("exp",     "exp",   math.exp,             (lambda x, out: out,)),
    Rule("exp2",    "exp2",  _EXP2,            (lambda x, out: out * _LN2,)),
    Rule("expm1",   "expm1", math.expm1,           (lambda x, out: out + 1.0,)),
    Rule("log",     "log",   math.log,             (lambda x, out: 1.0 / x,)),
    Rule("log2",    "log2",  math.log2,            (lambda x, out: 1.0 / (x * _LN2),)),
    Rule("log10",   "log10", math.log10,           (lambda x, out: 1.0 / (x * _LN10),)),
    Rule("log1p",   "log1p", math.log1p,           (lambda x, out: 1.0 / (1.0 + x),)),
    Rule("sigmoid", "sigmoid", _sigmoid,           (lambda x, out: out * (1.0 - out),)),
    Rule("softplus", "softplus", _softplus,        (lambda x, out: sigmoid(x),)),
    Rule("sqrt",    "sqrt",  math.sqrt,            (lambda x, out: edge_div(0.5, out),)),
    Rule("cbrt",    "cbrt",  _CBRT,            (lambda x, out: edge_div(1.0, 3.0 * out * out),)),
    Rule("sin",     "sin",   math.sin,             (lambda x, out: cos(x),)),
    Rule("cos",     "cos",   math.cos,             (lambda x, out: -sin(x),)),
    Rule("tan",     "tan",   math.tan,             (lambda x, out: 1.0 + out * out,)),
    Rule("asin",    "asin",  math.asin,            (lambda x, out: edge_div(1.0, sqrt((1.0 - x) * (1.0 + x))),)),
    Rule("acos",    "acos",  math.acos,            (lambda x, out: edge_div(-1.0, sqrt((1.0 - x) * (1.0 + x))),)),
    Rule("atan",    "atan",  math.atan,            (lambda x, out: 1.0 / (1.0 + x * x),)),
    Rule("sinh",    "sinh",  math.sinh,            (lambda x, out: cosh(x),)),
    Rule("cosh",    "cosh",  math.cosh,            (lambda x, out: sinh(x),)),
    Rule("asinh",   "asinh", math.asinh,           (lambda x, out: 1.0 / hypot(x, 1.0),)),
    Rule("acosh",   "acosh", math.acosh,           (lambda x, out: edge_div(1.0, sqrt(x - 1.0) * sqrt(x + 1.0)),)),
    Rule("atanh",   "atanh", math.atanh,           (lambda x, out: 1.0 / ((1.0 - x) * (1.0 + x)),)),
    Rule("erf",     "erf",   math.erf,             (lambda x, out: _TWO_OVER_SQRT_PI * exp(-x * x),)),
    Rule("floor",   "floor", lambda x: float(math.floor(x)), (_zero,)),
    Rule("ceil",    "ceil",  lambda x: float(math.ceil(x)),  (_zero,)),
    Rule("trunc",   "trunc", lambda x: float(math.trunc(x)), (_zero,)),
    Rule("round",   "round", _round,               (_zero,                         _zero)),
    # atan2(y, x) is called with y first, like math.atan2: here "x" is the first input.
    Rule("atan2",   "atan2", math.atan2,           (lambda x, y, out: _atan2_partial(y, x, y),
                                                    lambda x, y, out: _atan2_partial(-x, x, y))),
    Rule("hypot",   "hypot", math.hypot,           (lambda x, y, out: div0(x, out),  lambda x, y, out: div0(y, out))),
    Rule("minimum", "min",   _minimum,             (lambda x, y, out: min_dx(x, y),  lambda x, y, out: min_dx(y, x))),
    Rule("maximum", "max",   _maximum,             (lambda x, y, out: max_dx(x, y),  lambda x, y, out: max_dx(y, x))),
    Rule("copysign", "copysign", math.copysign,    (lambda x, y, out: sign(x) * copysign(1.0, y), _zero)),
    # fmod(x, y) = x - n y with n the integer quotient truncated: (x - out) / y, rounded.
    Rule("fmod",    "fmod",  math.fmod,            (lambda x, y, out: 1.0,         lambda x, y, out: -round_((x - out) / y, 0.0))),
    # stop_gradient of a traced Var: its value, as a constant of every tape above.
    Rule("stop",    "stop",  lambda x: x,          (_zero,)),
    # The vocabulary of the partials above: value-dependent choices as primitives.
    Rule("step",    "step",  _step,                (_zero,)),
    Rule("sign",    "sign",  _sign,                (_zero,)),
    Rule("min_dx",  "min'",  _min_dx,              (_zero,                         _zero)),
    Rule("max_dx",  "max'",  _max_dx,              (_zero,                         _zero)),
    Rule("edge_div", "/",    _edge_div,            (lambda x, y, out: edge_div(1.0, y), lambda x, y, out: -edge_div(out, y))),
    Rule("div0",    "/",     _div0,                (lambda x, y, out: div0(1.0, y),  lambda x, y, out: -div0(out, y))),
    Rule("safe_log", "log",  _safe_log,            (lambda x, out: edge_div(1.0, x),)),
    # scaled_pow(c, x, p) = c * x ** p: three inputs c, x, p.
    Rule("scaled_pow", "c*x**p", _scaled_pow,      (lambda c, x, p, out: scaled_pow(1.0, x, p),
                                                    lambda c, x, p, out: scaled_pow(c * p, x, p - 1.0),
                                                    lambda c, x, p, out: out * safe_log(x))),
]}
# fmt: on


def _apply_rule(name: str) -> Callable[..., Any]:
    """The function that applies ``RULES[name]`` to floats or Vars (see :func:`call`)."""
    rule = RULES[name]

    def fn(*args: Any) -> Any:
        return call(rule, *args)

    fn.__name__ = fn.__qualname__ = name
    return fn


# The vocabulary the partials above are written in (bound at call time, so the
# table may use them before this point).
cos: Partial = _apply_rule("cos")
sin: Partial = _apply_rule("sin")
cosh: Partial = _apply_rule("cosh")
sinh: Partial = _apply_rule("sinh")
exp: Partial = _apply_rule("exp")
sqrt: Partial = _apply_rule("sqrt")
sigmoid: Partial = _apply_rule("sigmoid")
hypot: Partial = _apply_rule("hypot")
copysign: Partial = _apply_rule("copysign")
round_: Partial = _apply_rule("round")
step: Partial = _apply_rule("step")
sign: Partial = _apply_rule("sign")
min_dx: Partial = _apply_rule("min_dx")
max_dx: Partial = _apply_rule("max_dx")
edge_div: Partial = _apply_rule("edge_div")
div0: Partial = _apply_rule("div0")
safe_log: Partial = _apply_rule("safe_log")
scaled_pow: Partial = _apply_rule("scaled_pow")
