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

from tapegrad.handle import concrete, is_real
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
        return self._record(RULES["round"], (self, float(ndigits or 0)))

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

    # -- methods, one per primitive (each also a function in tapegrad.math) --

    def relu(self) -> Var:
        """max(x, 0); relu'(0) = 0."""
        return self._record(RULES["relu"], (self,))

    def tanh(self) -> Var:
        """Hyperbolic tangent."""
        return self._record(RULES["tanh"], (self,))

    def exp(self) -> Var:
        """e ** x."""
        return self._record(RULES["exp"], (self,))

    def log(self) -> Var:
        """Natural logarithm; ValueError for x <= 0."""
        return self._record(RULES["log"], (self,))

    def sigmoid(self) -> Var:
        """1 / (1 + exp(-x))."""
        return self._record(RULES["sigmoid"], (self,))

    def sin(self) -> Var:
        """Sine."""
        return self._record(RULES["sin"], (self,))

    def cos(self) -> Var:
        """Cosine."""
        return self._record(RULES["cos"], (self,))

    def tan(self) -> Var:
        """Tangent."""
        return self._record(RULES["tan"], (self,))

    def sqrt(self) -> Var:
        """Square root; ValueError for x < 0."""
        return self._record(RULES["sqrt"], (self,))

    def abs(self) -> Var:
        """Absolute value; abs'(0) = 0."""
        return self._record(RULES["abs"], (self,))

    def log1p(self) -> Var:
        """log(1 + x), accurate for small x."""
        return self._record(RULES["log1p"], (self,))

    def expm1(self) -> Var:
        """exp(x) - 1, accurate for small x."""
        return self._record(RULES["expm1"], (self,))

    def sinh(self) -> Var:
        """Hyperbolic sine."""
        return self._record(RULES["sinh"], (self,))

    def cosh(self) -> Var:
        """Hyperbolic cosine."""
        return self._record(RULES["cosh"], (self,))

    def asin(self) -> Var:
        """Arc sine; ValueError outside [-1, 1]."""
        return self._record(RULES["asin"], (self,))

    def acos(self) -> Var:
        """Arc cosine; ValueError outside [-1, 1]."""
        return self._record(RULES["acos"], (self,))

    def atan(self) -> Var:
        """Arc tangent."""
        return self._record(RULES["atan"], (self,))

    def atan2(self, x: Any) -> Var:
        """atan2(self, x), the angle of the point (x, self), as math.atan2."""
        return self._record(RULES["atan2"], (self, x))

    def softplus(self) -> Var:
        """log(1 + exp(x)), computed without overflow."""
        return self._record(RULES["softplus"], (self,))

    def erf(self) -> Var:
        """Error function."""
        return self._record(RULES["erf"], (self,))

    def minimum(self, other: Any) -> Var:
        """min(self, other); ties split the gradient evenly."""
        return self._record(RULES["minimum"], (self, other))

    def maximum(self, other: Any) -> Var:
        """max(self, other); ties split the gradient evenly."""
        return self._record(RULES["maximum"], (self, other))

    def hypot(self, other: Any) -> Var:
        """sqrt(self**2 + other**2) without overflow."""
        return self._record(RULES["hypot"], (self, other))

    def pow(self, other: Any) -> Var:
        """self ** other."""
        return self._record(RULES["pow"], (self, other))

    # -- numpy's names, for ufuncs on object arrays of Vars (np.arcsin(a)) ---

    def arcsin(self) -> Var:
        """numpy's name of ``asin``."""
        return self._record(RULES["asin"], (self,))

    def arccos(self) -> Var:
        """numpy's name of ``acos``."""
        return self._record(RULES["acos"], (self,))

    def arctan(self) -> Var:
        """numpy's name of ``atan``."""
        return self._record(RULES["atan"], (self,))

    def arctan2(self, x: Any) -> Var:
        """numpy's name of ``atan2``."""
        return self._record(RULES["atan2"], (self, x))

    def arcsinh(self) -> Var:
        """numpy's name of ``asinh``."""
        return self._record(RULES["asinh"], (self,))

    def arccosh(self) -> Var:
        """numpy's name of ``acosh``."""
        return self._record(RULES["acosh"], (self,))

    def arctanh(self) -> Var:
        """numpy's name of ``atanh``."""
        return self._record(RULES["atanh"], (self,))

    def log2(self) -> Var:
        """Base-2 logarithm."""
        return self._record(RULES["log2"], (self,))

    def log10(self) -> Var:
        """Base-10 logarithm."""
        return self._record(RULES["log10"], (self,))

    def exp2(self) -> Var:
        """2 ** x."""
        return self._record(RULES["exp2"], (self,))

    def cbrt(self) -> Var:
        """Real cube root."""
        return self._record(RULES["cbrt"], (self,))

    def fabs(self) -> Var:
        """numpy's ``fabs``: ``abs``."""
        return self._record(RULES["abs"], (self,))

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
            return getattr(inputs[1], reflected)(first.reshape(())[()])
        args = []
        for x in inputs:
            if isinstance(x, Operators):
                x = np.asarray(x, dtype=object)  # a 0-d array holding the Var, no conversion
            elif isinstance(x, np.ndarray):
                x = x.astype(object) if x.dtype != object else x
            elif isinstance(x, np.generic):
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

# The numpy ufuncs that run on Vars (each through an operator or a method).
_NUMPY_UFUNCS = frozenset(
    [
        "add",
        "subtract",
        "multiply",
        "divide",
        "true_divide",
        "floor_divide",
        "remainder",
        "mod",
        "divmod",
        "power",
        "negative",
        "positive",
        "absolute",
        "fabs",
        "sqrt",
        "cbrt",
        "square",
        "reciprocal",
        "exp",
        "exp2",
        "expm1",
        "log",
        "log2",
        "log10",
        "log1p",
        "sin",
        "cos",
        "tan",
        "arcsin",
        "arccos",
        "arctan",
        "arctan2",
        "sinh",
        "cosh",
        "tanh",
        "arcsinh",
        "arccosh",
        "arctanh",
        "hypot",
        "minimum",
        "maximum",
        "fmod",
        "copysign",
        "floor",
        "ceil",
        "trunc",
        "rint",
        "sign",
        "conjugate",
        "less",
        "less_equal",
        "greater",
        "greater_equal",
        "equal",
        "not_equal",
    ]
)
