"""Math functions that take a float or a Var.

On a float (or int) each function returns a float, the same value as the
``math`` module; on a Var it returns a Var recorded on the tape. The rules
behind them, values and derivatives, are in :mod:`tapegrad.rules`.

>>> import tapegrad as tg
>>> tg.math.sin(0.0)
0.0
>>> x = tg.Var(0.0)
>>> y = tg.math.sin(x); y.backward(); x.grad
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, overload

from tapegrad.engine import Var, _evaluate, apply, dot, is_real
from tapegrad.rules import RULES

__all__ = [
    "relu", "tanh", "exp", "log", "sigmoid", "sin", "cos", "tan", "sqrt", "abs",
    "dot",
    "log1p", "expm1", "sinh", "cosh", "asin", "acos", "atan", "atan2",
    "softplus", "erf", "minimum", "maximum", "hypot", "pow",
]  # fmt: skip


class Unary(Protocol):
    """A primitive of one argument: float in, float out; Var in, Var out."""

    @overload
    def __call__(self, x: Var) -> Var: ...
    @overload
    def __call__(self, x: float) -> float: ...
    def __call__(self, x: Any) -> Any: ...


class Binary(Protocol):
    """A primitive of two arguments: a Var if either is a Var, else a float."""

    @overload
    def __call__(self, x: Var, y: Var | float) -> Var: ...
    @overload
    def __call__(self, x: float, y: Var) -> Var: ...
    @overload
    def __call__(self, x: float, y: float) -> float: ...
    def __call__(self, x: Any, y: Any) -> Any: ...


def _check(name: str, x: object) -> None:
    if not (isinstance(x, Var) or is_real(x)):
        raise TypeError(f"{name}() needs a real number or a Var, not {type(x).__name__}: {x!r}")


def _unary(name: str) -> Unary:
    rule = RULES[name]

    def fn(x: Any) -> Any:
        if isinstance(x, Var):
            return apply(rule, (x,))
        _check(name, x)
        return _evaluate(rule, (float(x),))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name}(x) on a float or a Var; see tapegrad.rules.RULES[{name!r}]."
    return fn


def _binary(name: str) -> Binary:
    rule = RULES[name]

    def fn(x: Any, y: Any) -> Any:
        _check(name, x)
        _check(name, y)
        if isinstance(x, Var) or isinstance(y, Var):
            return apply(rule, (x, y))
        return _evaluate(rule, (float(x), float(y)))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name}(x, y) on floats or Vars; see tapegrad.rules.RULES[{name!r}]."
    return fn


relu: Unary = _unary("relu")
tanh: Unary = _unary("tanh")
exp: Unary = _unary("exp")
log: Unary = _unary("log")
sigmoid: Unary = _unary("sigmoid")
sin: Unary = _unary("sin")
cos: Unary = _unary("cos")
tan: Unary = _unary("tan")
sqrt: Unary = _unary("sqrt")
abs: Unary = _unary("abs")  # noqa: A001 - the public name is the primitive's name
log1p: Unary = _unary("log1p")
expm1: Unary = _unary("expm1")
sinh: Unary = _unary("sinh")
cosh: Unary = _unary("cosh")
asin: Unary = _unary("asin")
acos: Unary = _unary("acos")
atan: Unary = _unary("atan")
softplus: Unary = _unary("softplus")
erf: Unary = _unary("erf")
atan2: Binary = _binary("atan2")
minimum: Binary = _binary("minimum")
maximum: Binary = _binary("maximum")
hypot: Binary = _binary("hypot")
pow: Binary = _binary("pow")  # noqa: A001

neg: Callable[[Any], Any] = _unary("neg")
