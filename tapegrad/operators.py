"""The vocabulary of a Var: every operator and method that applies one rule.

:class:`Operators` is a base of :class:`tapegrad.var.Var`: the
operators that have no fast path (``// % divmod round floor ceil trunc
abs``, ``c ** x``), one method per primitive (``x.sin()``; each is also a
function of :mod:`tapegrad.math`), numpy's names of the same primitives, and
``__array_ufunc__``, by which numpy's ufuncs run on Vars (object arrays,
elementwise; docs/numpy.md). Each method is one line: the rule and its
operands go to ``self._record``, the generic record (:mod:`tapegrad.record`),
which a Var defines. Nothing here is part of the algorithm; it is the
reference of what a Var can do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from tapegrad.context import note_route
from tapegrad.handle import concrete, is_narrow_float, is_real
from tapegrad.rules import RULES, Rule

if TYPE_CHECKING:  # the operators' result type; defined on top of this module
    from tapegrad.var import Var

__all__ = ["Operators", "is_real"]


def _operand(x: object) -> bool:
    """Whether ``x`` may take part in an operation with a Var."""
    return isinstance(x, Operators) or is_real(x)


class Operators:
    """Every operator and method of a Var that applies one rule (see the module docstring)."""

    __slots__ = ()

    def _record(self, rule: Rule, args: tuple[Any, ...]) -> Var:
        """Record ``rule`` applied to ``args`` (the generic path); see tapegrad.record."""
        raise NotImplementedError  # defined by tapegrad.Var

    # -- operators without a fast path -------------------------------------

    def __rpow__(self, other: Any) -> Var:
        return self._binary(_POW, other, self)

    def __floordiv__(self, other: Any) -> Var:
        return self._binary(_FLOORDIV, self, other)

    def __rfloordiv__(self, other: Any) -> Var:
        return self._binary(_FLOORDIV, other, self)

    def __mod__(self, other: Any) -> Var:
        return self._binary(_MOD, self, other)

    def __rmod__(self, other: Any) -> Var:
        return self._binary(_MOD, other, self)

    def __divmod__(self, other: Any) -> tuple[Var, Var]:
        if not _operand(other):
            return cast("tuple[Var, Var]", NotImplemented)
        return (self._binary(_FLOORDIV, self, other), self._binary(_MOD, self, other))

    def __rdivmod__(self, other: Any) -> tuple[Var, Var]:
        if not _operand(other):
            return cast("tuple[Var, Var]", NotImplemented)
        return (self._binary(_FLOORDIV, other, self), self._binary(_MOD, other, self))

    def __round__(self, ndigits: int | None = None) -> Var:
        if ndigits is not None and not isinstance(ndigits, int):
            raise TypeError(f"round(): ndigits must be an int, not {type(ndigits).__name__}")
        if ndigits is None:
            round(concrete(self))  # NaN and inf raise here, as Python's round(x) does
        # ndigits None is NaN for the rule: round(x) through an int (see rules._round).
        return self._record(
            RULES["round"], (self, float("nan") if ndigits is None else float(ndigits))
        )

    def __floor__(self) -> Var:
        return self._record(RULES["floor"], (self,))

    def __ceil__(self) -> Var:
        return self._record(RULES["ceil"], (self,))

    def __trunc__(self) -> Var:
        return self._record(RULES["trunc"], (self,))

    def __abs__(self) -> Var:
        return self._record(RULES["abs"], (self,))

    def _binary(self, rule: Rule, x: Any, y: Any) -> Var:
        other = y if x is self else x
        if not _operand(other):
            return cast("Var", NotImplemented)  # Python then tries the other side, or raises
        return self._record(rule, (x, y))

    # -- methods, one per name in a row's names.methods (tapegrad.rules) ---
    # Bound after the class by _bind_methods; declared here for type checkers
    # (tests/test_rows.py checks these are exactly the rows' method names).

    if TYPE_CHECKING:

        def relu(self) -> Var: ...
        def tanh(self) -> Var: ...
        def exp(self) -> Var: ...
        def log(self) -> Var: ...
        def sigmoid(self) -> Var: ...
        def sin(self) -> Var: ...
        def cos(self) -> Var: ...
        def tan(self) -> Var: ...
        def sqrt(self) -> Var: ...
        def abs(self) -> Var: ...
        def fabs(self) -> Var: ...
        def log1p(self) -> Var: ...
        def expm1(self) -> Var: ...
        def sinh(self) -> Var: ...
        def cosh(self) -> Var: ...
        def asin(self) -> Var: ...
        def arcsin(self) -> Var: ...
        def acos(self) -> Var: ...
        def arccos(self) -> Var: ...
        def atan(self) -> Var: ...
        def arctan(self) -> Var: ...
        def arcsinh(self) -> Var: ...
        def arccosh(self) -> Var: ...
        def arctanh(self) -> Var: ...
        def softplus(self) -> Var: ...
        def erf(self) -> Var: ...
        def erfc(self) -> Var: ...
        def log2(self) -> Var: ...
        def log10(self) -> Var: ...
        def exp2(self) -> Var: ...
        def cbrt(self) -> Var: ...
        def atan2(self, x: Any) -> Var: ...
        def arctan2(self, x: Any) -> Var: ...
        def minimum(self, other: Any) -> Var: ...
        def maximum(self, other: Any) -> Var: ...
        def hypot(self, other: Any) -> Var: ...
        def logaddexp(self, other: Any) -> Var: ...
        def pow(self, other: Any) -> Var: ...
        def fmod(self, other: Any) -> Var: ...

    def rint(self) -> Var:
        """Round half to even (numpy's ``rint``); derivative 0."""
        return self._record(RULES["round"], (self, 0.0))

    def conjugate(self) -> Var:
        """The complex conjugate of a real number: itself (``np.std``, ``np.var`` use it)."""
        return cast("Var", self)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """numpy ufuncs on Vars: elementwise, on object arrays, through Var's operators.

        ``np.sin(v)`` is ``v.sin()``, ``v * array`` and ``array * v`` give object
        arrays of Vars. Ufuncs with no Var counterpart raise ``TypeError``
        naming the ones that work (docs/numpy.md). numpy is loaded: it calls us.
        """
        import numpy as np

        if kwargs.get("out") is not None:
            raise TypeError(f"numpy.{ufunc.__name__} on Vars cannot write into out=")
        reflected = _REFLECTED_COMPARISONS.get(ufunc.__name__)
        first = inputs[0]
        if (
            reflected
            and method == "__call__"
            and isinstance(first, (np.generic, np.ndarray))
            and first.ndim == 0
            and first.dtype != object
            and isinstance(inputs[1], Operators)
        ):
            # np.float32(0.1) < v (numpy passes a 0-d array): compare as
            # v > np.float32(0.1) does, in float32 as numpy compares a float
            # with it; the object loop below would make it a float first, and
            # the two spellings would disagree.
            scalar = first.reshape(())[()]
            if first.dtype == bool:  # numpy.bool_ is no numbers.Real; Python's bool is
                scalar = scalar.item()
            return getattr(inputs[1], reflected)(scalar)
        args = []
        for x in inputs:
            if isinstance(x, Operators):
                x = np.asarray(x, dtype=object)  # a 0-d array holding the Var, no conversion
            elif isinstance(x, np.ndarray):
                x = x.astype(object) if x.dtype != object else x
            elif isinstance(x, np.generic):
                if is_narrow_float(x):
                    # np.float32(c) * v: f on floats computes in float32, a
                    # program in float64; .item() below would hide it (route).
                    note_route(f"a {type(x).__name__} operand")
                x = x.item()  # a Python number: np.float64 would call us again
            args.append(x)
        try:
            result = getattr(ufunc, method)(*args, **kwargs)
        except TypeError:
            if ufunc.__name__ in _NUMPY_UFUNCS:
                raise
            raise TypeError(
                f"numpy.{ufunc.__name__} is not supported on tapegrad Vars; these are: "
                f"{', '.join(sorted(_NUMPY_UFUNCS))} (see docs/numpy.md)"
            ) from None
        # Scalars in, a scalar out: a Var, or a Python bool for a comparison.
        return result.item() if isinstance(result, np.generic) else result


# A comparison ufunc with a numpy scalar first: the Var's method that compares the other way.
_REFLECTED_COMPARISONS = {
    "less": "__gt__",
    "less_equal": "__ge__",
    "greater": "__lt__",
    "greater_equal": "__le__",
    "equal": "__eq__",
    "not_equal": "__ne__",
}

_POW = RULES["pow"]
_FLOORDIV = RULES["floordiv"]
_MOD = RULES["mod"]


def _method(name: str, rule: Rule) -> Any:
    """``self.name(*others)``: ``rule`` applied to ``(self, *others)``."""

    def method(self: Operators, *others: Any) -> Var:
        if len(others) != rule.arity - 1:
            raise TypeError(f"{name}() takes {rule.arity - 1} argument(s), got {len(others)}")
        return self._record(rule, (self, *others))

    method.__name__ = name
    method.__qualname__ = f"Operators.{name}"
    method.__doc__ = (
        f"{rule.name} of this Var (and the arguments); see tapegrad.rules.RULES[{rule.name!r}]."
    )
    return method


for _rule in RULES.values():
    for _name in _rule.names.methods:
        setattr(Operators, _name, _method(_name, _rule))

# The numpy ufuncs that run on Vars: the rows' (each through an operator or a
# method), and those computed from them (numpy's object loops call an
# operator or a method: np.square(a) is a * a, np.sign(a) compares).
_NUMPY_UFUNCS = frozenset(
    [name for rule in RULES.values() for name in rule.names.numpy]
    + ["divmod", "positive", "square", "reciprocal", "sign", "conjugate"]
    + ["less", "less_equal", "greater", "greater_equal", "equal", "not_equal"]
)
