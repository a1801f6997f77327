"""Math functions that take a float or a Var: a drop-in for the float part of ``math``.

On a float (or int) each function returns a float, the same value as the
``math`` module; on a Var it returns a Var recorded on the tape, so
``import tapegrad.math as math`` differentiates code written for ``math``. The
rules behind them, values and derivatives, are in :mod:`tapegrad.rules`.

>>> import tapegrad as tg
>>> tg.math.sin(0.0)
0.0
>>> x = tg.Var(0.0)
>>> y = tg.math.sin(x); y.backward(); x.grad
1.0

What differs from ``math``: ``floor``, ``ceil`` and ``trunc`` return floats
(``math`` returns ints), since on a Var they return a Var; ``abs`` is here too
(the builtin works on Vars as well); ``relu``, ``sigmoid``, ``softplus``,
``minimum``, ``maximum``, ``logaddexp``, ``erfc`` (``math.erfc`` on floats),
``sum`` and ``dot`` are additions. Each function is bound from a row of the
rule table (its ``names.math``): a new row with a name there is a new
function here. The predicates
``isfinite``, ``isinf`` and ``isnan`` return ``bool``; on a Var, while
:func:`tapegrad.trace` records, they are recorded as guards, like comparisons.
"""

# Every import is bound to a private name: the module's public names are
# exactly the functions and constants of __all__ (a drop-in for ``math``).
import math as _math
from collections.abc import Iterable as _Iterable
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from typing import Protocol as _Protocol
from typing import overload as _overload

from tapegrad.handle import Handle as _Handle
from tapegrad.handle import compare as _compare
from tapegrad.handle import is_real as _is_real
from tapegrad.record import evaluate as _evaluate
from tapegrad.rules import RULES as _RULES
from tapegrad.rules import Rule as _Rule
from tapegrad.var import Var as _Var
from tapegrad.var import dot

pi = _math.pi
e = _math.e
tau = _math.tau
inf = _math.inf
nan = _math.nan


class _Unary(_Protocol):
    """A primitive of one argument: float in, float out; Var in, Var out."""

    @_overload
    def __call__(self, x: _Var) -> _Var: ...
    @_overload
    def __call__(self, x: float) -> float: ...
    def __call__(self, x: _Any) -> _Any: ...


class _Binary(_Protocol):
    """A primitive of two arguments: a Var if either is a Var, else a float."""

    @_overload
    def __call__(self, x: _Var, y: _Var | float) -> _Var: ...
    @_overload
    def __call__(self, x: float, y: _Var) -> _Var: ...
    @_overload
    def __call__(self, x: float, y: float) -> float: ...
    def __call__(self, x: _Any, y: _Any) -> _Any: ...


def _check(name: str, x: object) -> None:
    if not (isinstance(x, _Handle) or _is_real(x)):
        raise TypeError(f"{name}() needs a real number or a Var, not {type(x).__name__}: {x!r}")


def _unary(name: str, rule: _Rule) -> _Unary:
    def fn(x: _Any) -> _Any:
        if isinstance(x, _Handle):
            return x._record(rule, (x,))
        _check(name, x)
        return _evaluate(rule, (float(x),))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name}(x) on a float or a Var; see tapegrad.rules.RULES[{rule.name!r}]."
    return fn


def _binary(name: str, rule: _Rule) -> _Binary:
    def fn(x: _Any, y: _Any) -> _Any:
        _check(name, x)
        _check(name, y)
        if isinstance(x, _Handle):
            return x._record(rule, (x, y))
        if isinstance(y, _Handle):
            return y._record(rule, (x, y))
        return _evaluate(rule, (float(x), float(y)))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name}(x, y) on floats or Vars; see tapegrad.rules.RULES[{rule.name!r}]."
    return fn


if _TYPE_CHECKING:  # the bindings below, for type checkers (tests/test_rows.py: exactly the rows')
    relu: _Unary
    tanh: _Unary
    exp: _Unary
    log: _Unary
    sigmoid: _Unary
    sin: _Unary
    cos: _Unary
    tan: _Unary
    sqrt: _Unary
    abs: _Unary  # noqa: A001 - the public name is the primitive's name
    fabs: _Unary
    log1p: _Unary
    expm1: _Unary
    sinh: _Unary
    cosh: _Unary
    asin: _Unary
    acos: _Unary
    atan: _Unary
    softplus: _Unary
    erf: _Unary
    erfc: _Unary
    log2: _Unary
    log10: _Unary
    exp2: _Unary
    cbrt: _Unary
    asinh: _Unary
    acosh: _Unary
    atanh: _Unary
    floor: _Unary
    ceil: _Unary
    trunc: _Unary
    atan2: _Binary
    minimum: _Binary
    maximum: _Binary
    hypot: _Binary
    logaddexp: _Binary
    pow: _Binary  # noqa: A001
    copysign: _Binary
    fmod: _Binary

# One function per name in a row's ``names.math`` (tapegrad.rules), in table order.
_BOUND: list[str] = []
for _rule in _RULES.values():
    for _name in _rule.names.math:
        globals()[_name] = (_unary if _rule.arity == 1 else _binary)(_name, _rule)
        _BOUND.append(_name)
del _rule, _name

__all__ = [
    *_BOUND, "isfinite", "isinf", "isnan", "sum", "prod", "dot",
    "pi", "e", "tau", "inf", "nan",
]  # fmt: skip


def isnan(x: _Any) -> bool:
    """``math.isnan`` for a float or a Var (a comparison of the value with itself)."""
    if isinstance(x, _Handle):
        return _compare("!=", x, x)
    _check("isnan", x)
    return _math.isnan(x)


def isinf(x: _Any) -> bool:
    """``math.isinf`` for a float or a Var."""
    if isinstance(x, _Handle):
        return _compare("==", x, inf) or _compare("==", x, -inf)
    _check("isinf", x)
    return _math.isinf(x)


def isfinite(x: _Any) -> bool:
    """``math.isfinite`` for a float or a Var."""
    if isinstance(x, _Handle):
        return _compare("<", x, inf) and _compare(">", x, -inf)
    _check("isfinite", x)
    return _math.isfinite(x)


def sum(xs: _Iterable[_Any], start: _Any = 0.0) -> _Any:  # noqa: A001
    """``start + xs[0] + xs[1] + ...`` in that order, as the builtin ``sum``.

    A float for floats, a Var if a term is a Var. (``math.fsum`` rounds once
    at the end instead; here each ``+`` is an op on the tape.)

    >>> sum([1.0, 2.0, 3.0])
    6.0
    """
    total = start
    for x in xs:
        total = total + x
    return float(total) if not isinstance(total, _Handle) else total


def prod(xs: _Iterable[_Any], start: _Any = 1.0) -> _Any:
    """``start * xs[0] * xs[1] * ...`` in that order, as ``math.prod``.

    >>> prod([2.0, 3.0, 4.0])
    24.0
    """
    total = start
    for x in xs:
        total = total * x
    return float(total) if not isinstance(total, _Handle) else total
