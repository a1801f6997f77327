"""The rule table: everything about every primitive, one row each.

This module is the reference card of tapegrad. Each row says, for one
primitive, how to compute its value on floats and its local partial
derivatives ``d out / d input_i``, and everything else any module needs to
know about it: no other module keeps a table keyed by a primitive's name.

Vocabulary (as in PyTorch's ``derivatives.yaml``):

* ``x``, ``y``: the primitive's inputs (``y`` only for binary primitives);
* ``out``: the primitive's output value;
* ``forward``: the value, computed on Python floats with the ``math`` module;
* ``partials``: one function per input, ``partial_i(x, [y,] out)``;
* ``names``: what users call it: its ``tapegrad.math`` function(s), its Var
  method(s), the numpy ufunc(s) that reach it on object arrays of Vars, its
  Python operator (:class:`Names`); :mod:`tapegrad.math` and
  :mod:`tapegrad.operators` bind exactly these;
* ``array_form``: ``array_form(xp, *arrays)``, the forward elementwise on
  arrays of an Array API namespace ``xp``, equal to ``forward`` on each
  element (bit for bit for exact functions, within a few ulps for
  transcendental ones); ``None``: :func:`tapegrad.vmap` calls ``forward``
  per element;
* ``domain``: where ``forward`` raises and what (:class:`Domain`): the array
  dialect of :mod:`tapegrad.programs` masks those samples and hands them to
  ``f`` itself; ``None``: it never raises;
* ``inputs``: where :mod:`tapegrad.testing` draws its inputs, how far they
  are from a kink or edge, and the points at its edges and branch thresholds
  (:class:`Inputs`);
* ``fast_path``: whether ``tools/gen_fastpaths.py`` writes an inlined eager
  fast path of Var for it;
* ``inline``: the forward as a Python expression of ``{0}`` (``{1}`` ...),
  which the float program of :func:`tapegrad.jit` writes in place of a call
  (kinks, NaN included); ``""`` for a call of ``forward``.

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
engine through the Var they are given (its ``_record`` method), and the array
forms reach an array library through the namespace ``xp`` they are given.

Adding a primitive is one row here (and one line in ``docs/rules.md``):
``tests/test_rows.py`` checks every row's forms against each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "RULES", "Names", "Domain", "Inputs", "UNKNOWN_DOMAIN", "call"]

# Partials receive floats or Vars; they are generic on purpose (see above).
Partial = Callable[..., Any]
# An array form or a domain mask: (xp, *arrays) -> array.
ArrayForm = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Names:
    """What users call a primitive by; :mod:`tapegrad.math` and Var bind exactly these.

    * ``math``: functions of :mod:`tapegrad.math` (``tm.sin(x)``);
    * ``methods``: methods of Var (``x.sin()``), one-line calls of the rule
      with ``self`` first; numpy's object loops call some by their ufunc name
      (``np.arcsin(a)`` calls ``a[i].arcsin()``), so those are methods too;
    * ``numpy``: the numpy ufuncs that reach the rule on object arrays of Vars
      (through a method or an operator), listed when one that does not is used;
    * ``operator``: the Python operator (``"+"``, ``"abs"``; ``"-"`` for ``neg``).
    """

    math: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    numpy: tuple[str, ...] = ()
    operator: str = ""


@dataclass(frozen=True, slots=True)
class Domain:
    """Where a forward raises: ``where(xp, *arrays)`` is True there; it raises one of ``errors``.

    ``where`` is exact: True for every input where the float forward raises,
    False everywhere else (NaN included), so a replay of a recorded program
    neither loses an error nor invents one.
    """

    errors: tuple[type[Exception], ...]
    where: ArrayForm | None  # None: anywhere, for reasons unknown (a custom primitive)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Where tests of the row draw inputs (:mod:`tapegrad.testing`, ``tests/test_rows.py``).

    * ``ranges``: one ``(low, high)`` per input, for random inputs;
    * ``distance(*args)``: how far ``args`` are from the nearest kink or domain
      edge, less a margin (positive inside; a bool is allowed); ``None``:
      smooth everywhere (see ``tapegrad.testing.OpSpec``);
    * ``edges``: domain edges and branch thresholds of the forward (``acosh``
      at 1, ``exp`` where it overflows), which tests approach within ulps;
    * ``ulps``: how far ``array_form`` may be from ``forward`` (0: bit for
      bit, the sign of a zero and NaN included);
    * ``constants``: per input, ``None`` or the values it takes in tests
      (``round``'s ``ndigits`` is an int in Python code, never a float);
    * ``call``: how a program calls it when that is not the rule itself
      (``round(x)``), on floats and Vars.
    """

    ranges: tuple[tuple[float, float], ...]
    distance: Callable[..., bool | float] | None = None
    edges: tuple[float, ...] = ()
    ulps: int = 0
    constants: tuple[tuple[float, ...] | None, ...] = ()
    call: Callable[..., Any] | None = None


# A custom primitive (tapegrad.primitive) may raise anywhere, for any reason.
UNKNOWN_DOMAIN = Domain((Exception,), None)


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One primitive: its forward and partials, and everything else about it (see above).

    Rules compare and hash by identity (``eq=False``): a tape stores the rule
    object itself for every entry, and a field-wise hash would cost more.
    """

    name: str
    symbol: str
    forward: Callable[..., float]
    partials: tuple[Partial, ...]
    names: Names = Names()
    array_form: ArrayForm | None = None
    domain: Domain | None = UNKNOWN_DOMAIN
    inputs: Inputs | None = None
    fast_path: bool = False
    inline: str = ""

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


_LN2 = math.log(2.0)


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


def _logaddexp(x: float, y: float) -> float:
    """``log(exp(x) + exp(y))`` without overflow, as ``numpy.logaddexp``."""
    if x == y:  # equal infinities too: inf - inf would be NaN
        return x + _LN2
    d = x - y
    if d > 0.0:
        return x + math.log1p(math.exp(-d))
    if d <= 0.0:
        return y + math.log1p(math.exp(d))
    return d  # NaN


def _relu(x: float) -> float:
    return x if x > 0.0 or x != x else 0.0  # NaN stays NaN, as in PyTorch and JAX


def _minimum(x: float, y: float) -> float:
    """min that propagates NaN from either side (the builtin depends on the order)."""
    return x + y if x != x or y != y else min(x, y)


def _maximum(x: float, y: float) -> float:
    """max that propagates NaN from either side."""
    return x + y if x != x or y != y else max(x, y)


def _round(x: float, ndigits: float) -> float:
    """Python's ``round(x, ndigits)`` as a float (half to even).

    A NaN ``ndigits`` stands for none: Python's ``round(x)``, an int (so
    ``-0.4`` gives ``0.0``, not ``-0.0``), which raises for inf and NaN.
    """
    if ndigits != ndigits:
        return float(round(x))
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
_LN10 = math.log(10.0)

# ---------------------------------------------------------------------------
# Array forms: the forwards on arrays of an Array API namespace ``xp``.
# Each equals its row's forward on every element, kinks, zeros and NaN included.
# ---------------------------------------------------------------------------

_SMALLEST_NORMAL = 2.2250738585072014e-308


def _xp_relu(xp: Any, x: Any) -> Any:
    return xp.where((x > 0.0) | (x != x), x, xp.zeros_like(x))


def _xp_step(xp: Any, x: Any) -> Any:
    return xp.where(x > 0.0, xp.ones_like(x), xp.zeros_like(x))


def _xp_sign(xp: Any, x: Any) -> Any:
    ones = xp.ones_like(x)
    return xp.where(x > 0.0, ones, xp.where(x < 0.0, -ones, xp.zeros_like(x)))


def _xp_pow(xp: Any, x: Any, y: Any) -> Any:
    return xp.where(y == 2.0, x * x, xp.pow(x, y))


def _xp_minimum(xp: Any, x: Any, y: Any) -> Any:
    """As ``min(x, y)``: ``x`` unless ``y < x`` (so the first of two zeros); NaN from either."""
    return xp.where((x != x) | (y != y), x + y, xp.where(y < x, y, x))


def _xp_maximum(xp: Any, x: Any, y: Any) -> Any:
    """As ``max(x, y)``: ``x`` unless ``y > x``; NaN from either."""
    return xp.where((x != x) | (y != y), x + y, xp.where(y > x, y, x))


def _xp_tie_slope(xp: Any, wins: Any, x: Any, y: Any) -> Any:
    """1 where ``wins``, 0.5 on a tie, else 0 (the slope of min or max)."""
    zeros = xp.zeros_like(x + y)
    return xp.where(wins, zeros + 1.0, xp.where(x == y, zeros + 0.5, zeros))


def _xp_edge_div(xp: Any, n: Any, d: Any) -> Any:
    safe = xp.where(d != 0.0, d, xp.ones_like(d))
    signed = xp.copysign(xp.full_like(n, math.inf), n) * xp.copysign(xp.ones_like(d), d)
    edge = xp.where((n == 0.0) | (n != n), xp.full_like(signed, math.nan), signed)
    return xp.where(d != 0.0, n / safe, edge)


def _xp_div0(xp: Any, n: Any, d: Any) -> Any:
    quotient = n / xp.where(d != 0.0, d, xp.ones_like(d))
    return xp.where(d != 0.0, quotient, xp.zeros_like(quotient))


def _xp_safe_log(xp: Any, x: Any) -> Any:
    logs = xp.log(xp.where(x > 0.0, x, xp.ones_like(x)))
    below = xp.where(x == 0.0, xp.zeros_like(x), xp.full_like(x, math.nan))
    return xp.where(x > 0.0, logs, below)


def _xp_scaled_pow(xp: Any, c: Any, x: Any, p: Any) -> Any:
    """As :func:`_scaled_pow`, branch by branch (the logarithmic one included)."""
    power = xp.pow(x, p)
    value = c * power
    rescue = (power == 0.0) | ~xp.isfinite(value)  # under- or overflow: exp of a sum of logs
    odd = (x < 0.0) & (xp.remainder(p, xp.full_like(p, 2.0)) == 1.0)
    negative = (c < 0.0) != odd
    magnitude = xp.exp(xp.log(xp.abs(c)) + p * xp.log(xp.abs(x)))
    value = xp.where(rescue, xp.where(negative, -magnitude, magnitude), value)
    value = xp.where((x < 0.0) & xp.isfinite(x) & (xp.floor(p) != p) & xp.isfinite(p),
                     xp.full_like(value, math.nan), value)  # fmt: skip
    zero = xp.where(p > 0.0, c * 0.0, c * math.inf)
    value = xp.where(x == 0.0, zero, value)
    value = xp.where(p == 1.0, c * x, value)
    value = xp.where(p == 0.0, c + xp.zeros_like(value), value)
    return xp.where(c == 0.0, xp.zeros_like(value), value)


def _xp_sigmoid(xp: Any, x: Any) -> Any:
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _xp_softplus(xp: Any, x: Any) -> Any:
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def _xp_logaddexp(xp: Any, x: Any, y: Any) -> Any:
    d = x - y
    larger = xp.where(d > 0.0, x, y)
    out = larger + xp.log1p(xp.exp(-xp.abs(d)))
    return xp.where(x == y, x + _LN2, xp.where(d != d, d, out))


def _per_element(xp: Any, fn: Callable[..., Any], x: Any, *constants: float) -> Any:
    """``fn(element, *constants)`` for each element of ``x``, exactly as on floats."""
    flat = xp.reshape(x, (-1,))
    values = flat.tolist() if hasattr(flat, "tolist") else [float(v) for v in flat]
    return xp.reshape(
        xp.asarray([fn(float(v), *constants) for v in values], dtype=xp.float64), x.shape
    )


def _round_or_raises(x: float, ndigits: int) -> float:
    try:
        return float(round(x, ndigits))
    except OverflowError:  # round(1.7e308, -308): marked by the domain
        return math.nan


def _xp_round(xp: Any, x: Any, ndigits: Any) -> Any:
    """Half to even; with ``ndigits`` (a constant), Python's exact decimal rounding per element.

    ``xp.round`` of ``x * 10**n`` is not Python's ``round(x, n)`` (the product
    rounds first, and Python rounds the exact binary value), so ``ndigits != 0``
    takes the float forward element by element: exact, at Python's speed.
    """
    n = float(ndigits)
    if n != n:
        return xp.round(x) + 0.0  # round(x): through an int, so -0.0 becomes 0.0
    if n == 0.0:
        return xp.round(x)  # as round(x, 0): half to even, -0.0 stays -0.0
    return _per_element(xp, _round_or_raises, x, int(n))


def _round_domain(xp: Any, x: Any, ndigits: Any) -> Any:
    n = float(ndigits)
    if n != n:
        return ~xp.isfinite(x)  # round(x) of inf or NaN: no int
    if not math.isfinite(n):
        return xp.ones_like(x) == 1.0  # int(ndigits) raises for every sample
    if n >= 0.0:
        return xp.zeros_like(x) != 0.0
    rounded = _per_element(xp, _round_or_raises, x, int(n))
    return (rounded != rounded) & (x == x)  # NaN from a finite or infinite x: it overflowed


def _xp_cbrt(xp: Any, x: Any) -> Any:
    """pow, then one Newton step, with subnormal and huge ``|x|`` scaled by 2**+-54 first.

    ``pow(x, 1/3)`` of a subnormal is far off (its few significant bits), and
    the Newton step's ``y**3`` overflows near the largest float; scaling by a
    power of 2**3 is exact and scales the root by the cube root of it.
    """
    a = xp.abs(x)
    tiny = a < _SMALLEST_NORMAL
    huge = a > 2.0**1000
    s = xp.where(tiny, x * 2.0**54, xp.where(huge, x * 2.0**-54, x))
    y = xp.sign(s) * xp.pow(xp.abs(s), xp.full_like(s, 1.0 / 3.0))
    safe = xp.where(y != 0.0, y, xp.ones_like(y))
    y = y - (y * y * y - s) / (3.0 * safe * safe)
    y = xp.where(tiny, y * 2.0**-18, xp.where(huge, y * 2.0**18, y))
    return xp.where((x != 0.0) & xp.isfinite(x), y, x)


def _xp_fmod(xp: Any, x: Any, y: Any) -> Any:
    """C's fmod, exactly: the remainder of the magnitudes (exact), with the sign of ``x``."""
    return xp.copysign(xp.remainder(xp.abs(x), xp.abs(y)), x)


def _xp_floor(xp: Any, x: Any) -> Any:
    return xp.floor(x) + 0.0  # the forward goes through an int: -0.0 becomes 0.0


def _xp_ceil(xp: Any, x: Any) -> Any:
    return xp.ceil(x) + 0.0


def _xp_trunc(xp: Any, x: Any) -> Any:
    return xp.trunc(x) + 0.0


# ---------------------------------------------------------------------------
# Domains: where each forward raises (exact masks; see Domain).
# ---------------------------------------------------------------------------


def _overflows(form: ArrayForm) -> Domain:
    """``math`` raises OverflowError where a finite input gives an infinite value."""
    return Domain((OverflowError,), lambda xp, x: xp.isfinite(x) & xp.isinf(form(xp, x)))


def _pow_domain(xp: Any, x: Any, y: Any) -> Any:
    finite = xp.isfinite(x) & xp.isfinite(y)
    zero_to_negative = (x == 0.0) & (y < 0.0)
    negative_to_fraction = (x < 0.0) & finite & (xp.floor(y) != y)
    overflow = finite & xp.isinf(xp.pow(x, y))
    return (y != 2.0) & (zero_to_negative | negative_to_fraction | overflow)


_ZERO_DIVISOR = Domain((ZeroDivisionError,), lambda xp, x, y: y == 0.0)
_NOT_FINITE = Domain((OverflowError, ValueError), lambda xp, x: ~xp.isfinite(x))
_POSITIVE = Domain((ValueError,), lambda xp, x: x <= 0.0)
_INFINITE = Domain((ValueError,), lambda xp, x: xp.isinf(x))
_UNIT = Domain((ValueError,), lambda xp, x: xp.abs(x) > 1.0)


# ---------------------------------------------------------------------------
# Inputs for tests: distances to kinks and edges (see Inputs).
# ---------------------------------------------------------------------------

EDGE = 1e-2  # distance kept from a domain edge (log at 0, asin at 1, a zero divisor ...)
KINK = 1e-3  # distance kept from a kink (relu and abs at 0, minimum and maximum at a tie)
# Functions that vary on a scale of 1 (sin, exp, tanh ...): their argument may
# move at most half this much between two neighbouring sample points.
SCALE = 2.0
LOG_MAX = math.log(1.7976931348623157e308)  # math.exp overflows just above


def smooth(*args: float) -> float:
    """Smooth everywhere, varying on a scale of 1 (sin, exp, tanh ...)."""
    return SCALE


def _tan_pole(x: float) -> float:
    # Distance to the nearest pole pi/2 + k pi, keeping 0.05 away from it.
    return min(math.pi / 2 - abs(x - math.pi * round(x / math.pi)) - 0.05, SCALE)


def _atan2_cut(y: float, x: float) -> float:
    # Away from the origin and from the branch cut along the negative x-axis.
    return (math.hypot(x, y) if x > 0.0 else min(math.hypot(x, y), abs(y))) - EDGE


def _apart(x: float, y: float) -> float:
    return abs(x - y) / 2 - KINK * max(1.0, abs(x), abs(y))


def off_integers(t: float, scale: float = 1.0) -> float:
    """Distance of ``t`` to the nearest integer, in units of ``scale``, less the kink margin."""
    return abs(t - round(t)) * scale - KINK * max(1.0, abs(t) * scale)


def _quotient_kinks(x: float, y: float) -> float:
    """Away from a zero divisor and from the jumps of x // y, x % y, fmod at integral x / y."""
    if abs(y) <= EDGE:
        return abs(y) - EDGE
    return min(abs(y) - EDGE, off_integers(x / y, abs(y)))


def _kink_at_zero(x: float) -> float:
    return abs(x) - KINK


def _above(edge: float) -> Callable[[float], float]:
    return lambda x: x - edge - EDGE


def _inside_unit(x: float) -> float:
    return 1.0 - abs(x) - EDGE


def _round_call(x: Any) -> Any:
    """``round(x)`` as a program writes it: a Var for a Var, a float (not an int) for a float."""
    return float(round(x)) if x.__class__ is float else round(x)


_R = ((-3.0, 3.0),)
_R2 = _R * 2
_WIDE = ((-10.0, 10.0),)
_POS = ((0.05, 20.0),)
_EXACT = 0  # ulps
_ULPS = 4  # transcendental: as numpy's and math's libm may differ


def _api(name: str, numpy: str | None = "", methods: tuple[str, ...] | None = None) -> Names:
    """A function of tapegrad.math and a Var method both called ``name``; numpy's ufunc name.

    ``numpy=""``: numpy's ufunc has the same name; ``None``: numpy has none for
    Vars. ``methods``: the Var methods, if not just ``name`` (plus numpy's).
    """
    ufunc = () if numpy is None else (numpy or name,)
    own = (name,) if methods is None else methods
    return Names((name,), tuple(dict.fromkeys(own + ufunc)), ufunc)


def _op(operator: str, *numpy: str) -> Names:
    """An operator only (``+``), with numpy's ufuncs that reach it."""
    return Names((), (), numpy, operator)


# ---------------------------------------------------------------------------
# The table. One row per primitive, each on three lines:
#   name  symbol  forward (floats)  partials: d out/dx, d out/dy ...
#         names users call it by    array form      domain (where forward raises)
#         inputs for tests (ranges, distance to kinks and edges, edges, ulps)   fast path?
# ---------------------------------------------------------------------------
# fmt: off
RULES: dict[str, Rule] = {r.name: r for r in [
    # Arithmetic, as Python's float operators.
    Rule("add",     "+",     lambda x, y: x + y,   (lambda x, y, out: 1.0,         lambda x, y, out: 1.0),
         _op("+", "add"), lambda xp, x, y: x + y, None,
         Inputs(_R2), True),
    Rule("sub",     "-",     lambda x, y: x - y,   (lambda x, y, out: 1.0,         lambda x, y, out: -1.0),
         _op("-", "subtract"), lambda xp, x, y: x - y, None,
         Inputs(_R2), True),
    Rule("mul",     "*",     lambda x, y: x * y,   (lambda x, y, out: y,           lambda x, y, out: x),
         _op("*", "multiply"), lambda xp, x, y: x * y, None,
         Inputs(_R2), True),
    Rule("div",     "/",     lambda x, y: x / y,   (lambda x, y, out: 1.0 / y,     lambda x, y, out: -out / y),
         _op("/", "divide", "true_divide"), lambda xp, x, y: x / y, _ZERO_DIVISOR,
         Inputs(_R2, lambda x, y: abs(y) - EDGE, (0.0,)), True),
    Rule("pow",     "**",    _float_pow,           (_pow_dx,                       lambda x, y, out: out * safe_log(x)),
         Names(("pow",), ("pow",), ("power",), "**"), _xp_pow,
         Domain((ZeroDivisionError, ValueError, OverflowError), _pow_domain),
         Inputs(_POS + _R, lambda x, y: x - EDGE, (0.0, 1.0, 2.0, 0.5), _ULPS), True),
    Rule("neg",     "neg",   lambda x: -x,         (lambda x, out: -1.0,),
         _op("-", "negative"), lambda xp, x: -x, None,
         Inputs(_R), True),
    Rule("floordiv", "//",   lambda x, y: x // y,  (_zero,                         _zero),
         _op("//", "floor_divide"), lambda xp, x, y: xp.floor_divide(x, y), _ZERO_DIVISOR,
         Inputs(_R2, _quotient_kinks, (0.0, 1.0))),
    Rule("mod",     "%",     lambda x, y: x % y,   (lambda x, y, out: 1.0,         lambda x, y, out: -(x // y)),
         _op("%", "remainder", "mod"), lambda xp, x, y: xp.remainder(x, y), _ZERO_DIVISOR,
         Inputs(_R2, _quotient_kinks, (0.0, 1.0))),
    # Functions of math (and the activations).
    Rule("abs",     "abs",   abs,                  (lambda x, out: sign(x),),
         Names(("abs", "fabs"), ("abs", "fabs"), ("absolute", "fabs"), "abs"), lambda xp, x: xp.abs(x), None,
         Inputs(_R, _kink_at_zero, (0.0,))),
    Rule("relu",    "relu",  _relu,                (lambda x, out: step(x),),
         _api("relu", None), _xp_relu, None,
         Inputs(_R, _kink_at_zero, (0.0,)), True,
         inline="({0} if {0} > 0.0 or {0} != {0} else 0.0)"),
    Rule("tanh",    "tanh",  math.tanh,            (lambda x, out: 1.0 - out * out,),
         _api("tanh"), lambda xp, x: xp.tanh(x), None,
         Inputs(_R, smooth, (0.0, 20.0), _ULPS), True),
    Rule("exp",     "exp",   math.exp,             (lambda x, out: out,),
         _api("exp"), lambda xp, x: xp.exp(x), _overflows(lambda xp, x: xp.exp(x)),
         Inputs(_WIDE, smooth, (LOG_MAX, -745.13), _ULPS), True),
    Rule("exp2",    "exp2",  _EXP2,                (lambda x, out: out * _LN2,),
         _api("exp2"), lambda xp, x: xp.pow(xp.full_like(x, 2.0), x), _overflows(lambda xp, x: xp.pow(xp.full_like(x, 2.0), x)),
         Inputs(_WIDE, smooth, (1024.0, -1074.0), _ULPS)),
    Rule("expm1",   "expm1", math.expm1,           (lambda x, out: out + 1.0,),
         _api("expm1"), lambda xp, x: xp.expm1(x), _overflows(lambda xp, x: xp.expm1(x)),
         Inputs(_WIDE, smooth, (LOG_MAX, 0.0), _ULPS)),
    Rule("log",     "log",   math.log,             (lambda x, out: 1.0 / x,),
         _api("log"), lambda xp, x: xp.log(x), _POSITIVE,
         Inputs(_POS, _above(0.0), (0.0, 1.0), _ULPS)),
    Rule("log2",    "log2",  math.log2,            (lambda x, out: 1.0 / (x * _LN2),),
         _api("log2"), lambda xp, x: xp.log2(x), _POSITIVE,
         Inputs(_POS, _above(0.0), (0.0, 1.0), _ULPS)),
    Rule("log10",   "log10", math.log10,           (lambda x, out: 1.0 / (x * _LN10),),
         _api("log10"), lambda xp, x: xp.log10(x), _POSITIVE,
         Inputs(_POS, _above(0.0), (0.0, 1.0), _ULPS)),
    Rule("log1p",   "log1p", math.log1p,           (lambda x, out: 1.0 / (1.0 + x),),
         _api("log1p"), lambda xp, x: xp.log1p(x), Domain((ValueError,), lambda xp, x: x <= -1.0),
         Inputs(((-0.95, 20.0),), _above(-1.0), (-1.0, 0.0), _ULPS)),
    Rule("sigmoid", "sigmoid", _sigmoid,           (lambda x, out: out * (1.0 - out),),
         _api("sigmoid", None), _xp_sigmoid, None,
         Inputs(_WIDE, smooth, (0.0, 40.0, -745.13), _ULPS)),
    Rule("softplus", "softplus", _softplus,        (lambda x, out: sigmoid(x),),
         _api("softplus", None), _xp_softplus, None,
         Inputs(_WIDE, smooth, (0.0, 40.0), _ULPS)),
    Rule("logaddexp", "logaddexp", _logaddexp,     (lambda x, y, out: sigmoid(x - y), lambda x, y, out: sigmoid(y - x)),
         _api("logaddexp", None), _xp_logaddexp, None,
         Inputs(_WIDE * 2, smooth, (0.0, 40.0), _ULPS)),
    Rule("sqrt",    "sqrt",  math.sqrt,            (lambda x, out: edge_div(0.5, out),),
         _api("sqrt"), lambda xp, x: xp.sqrt(x), Domain((ValueError,), lambda xp, x: x < 0.0),
         Inputs(_POS, _above(0.0), (0.0,))),
    Rule("cbrt",    "cbrt",  _CBRT,                (lambda x, out: edge_div(1.0, 3.0 * out * out),),
         _api("cbrt"), _xp_cbrt, None,
         Inputs(((-8.0, 8.0),), lambda x: abs(x) - EDGE, (0.0, _SMALLEST_NORMAL, 2.0**1000), _ULPS)),
    Rule("sin",     "sin",   math.sin,             (lambda x, out: cos(x),),
         _api("sin"), lambda xp, x: xp.sin(x), _INFINITE,
         Inputs(_WIDE, smooth, (math.pi,), _ULPS)),
    Rule("cos",     "cos",   math.cos,             (lambda x, out: -sin(x),),
         _api("cos"), lambda xp, x: xp.cos(x), _INFINITE,
         Inputs(_WIDE, smooth, (math.pi / 2,), _ULPS)),
    Rule("tan",     "tan",   math.tan,             (lambda x, out: 1.0 + out * out,),
         _api("tan"), lambda xp, x: xp.tan(x), _INFINITE,
         Inputs(((-1.5, 1.5),), _tan_pole, (-math.pi / 2, math.pi / 2), _ULPS)),
    Rule("asin",    "asin",  math.asin,            (lambda x, out: edge_div(1.0, sqrt((1.0 - x) * (1.0 + x))),),
         _api("asin", "arcsin"), lambda xp, x: xp.asin(x), _UNIT,
         Inputs(((-0.98, 0.98),), _inside_unit, (-1.0, 1.0), _ULPS)),
    Rule("acos",    "acos",  math.acos,            (lambda x, out: edge_div(-1.0, sqrt((1.0 - x) * (1.0 + x))),),
         _api("acos", "arccos"), lambda xp, x: xp.acos(x), _UNIT,
         Inputs(((-0.98, 0.98),), _inside_unit, (-1.0, 1.0), _ULPS)),
    Rule("atan",    "atan",  math.atan,            (lambda x, out: 1.0 / (1.0 + x * x),),
         _api("atan", "arctan"), lambda xp, x: xp.atan(x), None,
         Inputs(_WIDE, smooth, (0.0,), _ULPS)),
    Rule("sinh",    "sinh",  math.sinh,            (lambda x, out: cosh(x),),
         _api("sinh"), lambda xp, x: xp.sinh(x), _overflows(lambda xp, x: xp.sinh(x)),
         Inputs(_WIDE, smooth, (710.4758600739439, -710.4758600739439), _ULPS)),
    Rule("cosh",    "cosh",  math.cosh,            (lambda x, out: sinh(x),),
         _api("cosh"), lambda xp, x: xp.cosh(x), _overflows(lambda xp, x: xp.cosh(x)),
         Inputs(_WIDE, smooth, (710.4758600739439, -710.4758600739439), _ULPS)),
    Rule("asinh",   "asinh", math.asinh,           (lambda x, out: 1.0 / hypot(x, 1.0),),
         _api("asinh", "arcsinh", ()), lambda xp, x: xp.asinh(x), None,
         Inputs(_WIDE, smooth, (0.0,), _ULPS)),
    Rule("acosh",   "acosh", math.acosh,           (lambda x, out: edge_div(1.0, sqrt(x - 1.0) * sqrt(x + 1.0)),),
         _api("acosh", "arccosh", ()), lambda xp, x: xp.acosh(x), Domain((ValueError,), lambda xp, x: x < 1.0),
         Inputs(((1.05, 20.0),), _above(1.0), (1.0,), _ULPS)),
    Rule("atanh",   "atanh", math.atanh,           (lambda x, out: 1.0 / ((1.0 - x) * (1.0 + x)),),
         _api("atanh", "arctanh", ()), lambda xp, x: xp.atanh(x), Domain((ValueError,), lambda xp, x: xp.abs(x) >= 1.0),
         Inputs(((-0.95, 0.95),), _inside_unit, (-1.0, 1.0), _ULPS)),
    # No array form: the Array API has no erf (vmap calls math.erf per element).
    Rule("erf",     "erf",   math.erf,             (lambda x, out: _TWO_OVER_SQRT_PI * exp(-x * x),),
         _api("erf", None), None, None,
         Inputs(_R, smooth, (0.0,))),
    Rule("erfc",    "erfc",  math.erfc,            (lambda x, out: -_TWO_OVER_SQRT_PI * exp(-x * x),),
         _api("erfc", None), None, None,
         Inputs(_R, smooth, (0.0, 26.55))),
    Rule("floor",   "floor", lambda x: float(math.floor(x)), (_zero,),
         Names(("floor",), (), ("floor",)), _xp_floor, _NOT_FINITE,
         Inputs(_R, off_integers, (0.0, -1.0))),
    Rule("ceil",    "ceil",  lambda x: float(math.ceil(x)),  (_zero,),
         Names(("ceil",), (), ("ceil",)), _xp_ceil, _NOT_FINITE,
         Inputs(_R, off_integers, (0.0, 1.0))),
    Rule("trunc",   "trunc", lambda x: float(math.trunc(x)), (_zero,),
         Names(("trunc",), (), ("trunc",)), _xp_trunc, _NOT_FINITE,
         Inputs(_R, off_integers, (0.0, 1.0))),
    # round(x, ndigits); round(x) records ndigits NaN (Python's round(x): an int, so never -0.0).
    Rule("round",   "round", _round,               (_zero,                         _zero),
         Names((), (), ("rint",), "round"), _xp_round,
         Domain((OverflowError, ValueError), _round_domain),
         Inputs((*_R, (0.0, 0.0)), lambda x: off_integers(x + 0.5), (0.5, -0.5, 2.5), _EXACT,
                (None, (math.nan, 0.0, 2.0, -1.0, -308.0)), _round_call)),
    # atan2(y, x) is called with y first, like math.atan2: here "x" is the first input.
    Rule("atan2",   "atan2", math.atan2,           (lambda x, y, out: _atan2_partial(y, x, y),
                                                    lambda x, y, out: _atan2_partial(-x, x, y)),
         _api("atan2", "arctan2"), lambda xp, y, x: xp.atan2(y, x), None,
         Inputs(_R2, _atan2_cut, (0.0,), _ULPS)),
    Rule("hypot",   "hypot", math.hypot,           (lambda x, y, out: div0(x, out),  lambda x, y, out: div0(y, out)),
         _api("hypot"), lambda xp, x, y: xp.hypot(x, y), None,
         Inputs(_R2, lambda x, y: math.hypot(x, y) - EDGE, (0.0,), _ULPS)),
    Rule("minimum", "min",   _minimum,             (lambda x, y, out: min_dx(x, y),  lambda x, y, out: min_dx(y, x)),
         _api("minimum"), _xp_minimum, None,
         Inputs(_R2, _apart, (0.0,))),
    Rule("maximum", "max",   _maximum,             (lambda x, y, out: max_dx(x, y),  lambda x, y, out: max_dx(y, x)),
         _api("maximum"), _xp_maximum, None,
         Inputs(_R2, _apart, (0.0,))),
    # No numpy name: numpy's copysign has no loop for objects.
    Rule("copysign", "copysign", math.copysign,    (lambda x, y, out: sign(x) * copysign(1.0, y), _zero),
         Names(("copysign",)), lambda xp, x, y: xp.copysign(x, y), None,
         Inputs(_R2, lambda x, y: min(abs(x), abs(y)) - KINK, (0.0,))),
    # fmod(x, y) = x - n y with n the integer quotient truncated: (x - out) / y, rounded
    # (edge_div: at y = 0 the forward raises, except for a NaN x, where the slope is NaN).
    # numpy's fmod on objects calls the method fmod.
    Rule("fmod",    "fmod",  math.fmod,            (lambda x, y, out: 1.0,         lambda x, y, out: -round_(edge_div(x - out, y), 0.0)),
         Names(("fmod",), ("fmod",), ("fmod",)), _xp_fmod,
         Domain((ValueError,), lambda xp, x, y: ((y == 0.0) | xp.isinf(x)) & (x == x) & (y == y)),
         Inputs(_R2, _quotient_kinks, (0.0, 1.0))),
    # stop_gradient of a traced Var: its value, as a constant of every tape above.
    Rule("stop",    "stop",  lambda x: x,          (_zero,),
         Names(), lambda xp, x: x, None,
         Inputs(_R)),
    # The vocabulary of the partials above: value-dependent choices as primitives.
    Rule("step",    "step",  _step,                (_zero,),
         Names(), _xp_step, None,
         Inputs(_R, _kink_at_zero, (0.0,)),
         inline="(1.0 if {0} > 0.0 else 0.0)"),
    Rule("sign",    "sign",  _sign,                (_zero,),
         Names(), _xp_sign, None,
         Inputs(_R, _kink_at_zero, (0.0,)),
         inline="(1.0 if {0} > 0.0 else -1.0 if {0} < 0.0 else 0.0)"),
    Rule("min_dx",  "min'",  _min_dx,              (_zero,                         _zero),
         Names(), lambda xp, x, y: _xp_tie_slope(xp, x < y, x, y), None,
         Inputs(_R2, _apart, (0.0,))),
    Rule("max_dx",  "max'",  _max_dx,              (_zero,                         _zero),
         Names(), lambda xp, x, y: _xp_tie_slope(xp, x > y, x, y), None,
         Inputs(_R2, _apart, (0.0,))),
    Rule("edge_div", "/",    _edge_div,            (lambda x, y, out: edge_div(1.0, y), lambda x, y, out: -edge_div(out, y)),
         Names(), _xp_edge_div, None,
         Inputs(_R2, lambda x, y: abs(y) - EDGE, (0.0,))),
    Rule("div0",    "/",     _div0,                (lambda x, y, out: div0(1.0, y),  lambda x, y, out: -div0(out, y)),
         Names(), _xp_div0, None,
         Inputs(_R2, lambda x, y: abs(y) - EDGE, (0.0,))),
    Rule("safe_log", "log",  _safe_log,            (lambda x, out: edge_div(1.0, x),),
         Names(), _xp_safe_log, None,
         Inputs(_POS, _above(0.0), (0.0,), _ULPS)),
    # scaled_pow(c, x, p) = c * x ** p: three inputs c, x, p.
    Rule("scaled_pow", "c*x**p", _scaled_pow,      (lambda c, x, p, out: scaled_pow(1.0, x, p),
                                                    lambda c, x, p, out: scaled_pow(c * p, x, p - 1.0),
                                                    lambda c, x, p, out: out * safe_log(x)),
         Names(), _xp_scaled_pow, None,
         Inputs(_R + _POS + _R, lambda c, x, p: x - EDGE, (0.0, 1.0, 2.0), _ULPS)),
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
