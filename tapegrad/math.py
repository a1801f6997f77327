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
``minimum``, ``maximum``, ``sum`` and ``dot`` are additions. The predicates
``isfinite``, ``isinf`` and ``isnan`` return ``bool``; on a Var, while
:func:`tapegrad.trace` records, they are recorded as guards, like comparisons.
"""

# Every import is bound to a private name: the module's public names are
# exactly the functions and constants of __all__ (a drop-in for ``math``).
import math as _math
from collections.abc import Iterable as _Iterable
from typing import Any as _Any
from typing import Protocol as _Protocol
from typing import overload as _overload

from tapegrad.handle import Handle as _Handle
from tapegrad.handle import compare as _compare
from tapegrad.handle import is_real as _is_real
from tapegrad.record import evaluate as _evaluate
from tapegrad.rules import RULES as _RULES
from tapegrad.var import Var as _Var
from tapegrad.var import dot

__all__ = [
    "relu", "tanh", "exp", "log", "sigmoid", "sin", "cos", "tan", "sqrt", "abs",
    "log1p", "expm1", "sinh", "cosh", "asin", "acos", "atan", "atan2",
    "softplus", "erf", "minimum", "maximum", "hypot", "pow",
    "log2", "log10", "exp2", "cbrt", "asinh", "acosh", "atanh", "copysign",
    "fabs", "fmod", "floor", "ceil", "trunc", "isfinite", "isinf", "isnan",
    "sum", "prod", "dot",
    "pi", "e", "tau", "inf", "nan",
]  # fmt: skip

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


def _unary(name: str, rule_name: str | None = None) -> _Unary:
    rule = _RULES[rule_name or name]

    def fn(x: _Any) -> _Any:
        if isinstance(x, _Handle):
            return x._record(rule, (x,))
        _check(name, x)
        return _evaluate(rule, (float(x),))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name}(x) on a float or a Var; see tapegrad.rules.RULES[{rule.name!r}]."
    return fn


def _binary(name: str) -> _Binary:
    rule = _RULES[name]

    def fn(x: _Any, y: _Any) -> _Any:
        _check(name, x)
        _check(name, y)
        if isinstance(x, _Handle):
            return x._record(rule, (x, y))
        if isinstance(y, _Handle):
            return y._record(rule, (x, y))
        return _evaluate(rule, (float(x), float(y)))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name}(x, y) on floats or Vars; see tapegrad.rules.RULES[{name!r}]."
    return fn


relu: _Unary = _unary("relu")
tanh: _Unary = _unary("tanh")
exp: _Unary = _unary("exp")
log: _Unary = _unary("log")
sigmoid: _Unary = _unary("sigmoid")
sin: _Unary = _unary("sin")
cos: _Unary = _unary("cos")
tan: _Unary = _unary("tan")
sqrt: _Unary = _unary("sqrt")
abs: _Unary = _unary("abs")  # noqa: A001 - the public name is the primitive's name
fabs: _Unary = _unary("fabs", "abs")
log1p: _Unary = _unary("log1p")
expm1: _Unary = _unary("expm1")
sinh: _Unary = _unary("sinh")
cosh: _Unary = _unary("cosh")
asin: _Unary = _unary("asin")
acos: _Unary = _unary("acos")
atan: _Unary = _unary("atan")
softplus: _Unary = _unary("softplus")
erf: _Unary = _unary("erf")
log2: _Unary = _unary("log2")
log10: _Unary = _unary("log10")
exp2: _Unary = _unary("exp2")
cbrt: _Unary = _unary("cbrt")
asinh: _Unary = _unary("asinh")
acosh: _Unary = _unary("acosh")
atanh: _Unary = _unary("atanh")
floor: _Unary = _unary("floor")
ceil: _Unary = _unary("ceil")
trunc: _Unary = _unary("trunc")
atan2: _Binary = _binary("atan2")
minimum: _Binary = _binary("minimum")
maximum: _Binary = _binary("maximum")
hypot: _Binary = _binary("hypot")
pow: _Binary = _binary("pow")  # noqa: A001
copysign: _Binary = _binary("copysign")
fmod: _Binary = _binary("fmod")


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
