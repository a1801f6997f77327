"""What a Var is: a small handle into a tape, and how it behaves like a float.

A Var holds its value in ``data`` and, if an operation made it, its tape and
its index there (``_tape``, ``_index``). A Var the user created is a *leaf*:
it holds no tape, only the serial number and index of the chunk it was last
registered on (``_reg``), and its own gradient (``_grad``).

:class:`Handle` is everything about a Var except its arithmetic: attributes
(``data``, ``grad``, ``label``), conversions, comparisons, copying and
pickling, and the methods that apply a primitive. The arithmetic operators
are generated from a short spec (``tools/gen_fastpaths.py``) into
:mod:`tapegrad._fastpaths`, which defines the public ``Var`` on top of this
class. Every operation ends in ``self._record(rule, args)``, the generic
record (:func:`tapegrad.record.record`), unless a fast path took it.

Choices (documented in docs/conventions.md):

* ``float(v)``, ``int(v)`` and everything built on them (``math.sin(v)``,
  ``np.asarray(v, dtype=float)``) raise ``TypeError`` for every Var: they would
  drop the derivative silently, as micrograd and JAX refuse too. ``v.data``
  is the value, :func:`tapegrad.stop_gradient` a constant on purpose,
  ``tapegrad.math`` keeps the derivative. ``f"{v:.3f}"`` formats the value.
* Comparisons compare values and return ``bool``, so ``if`` works; while
  :func:`tapegrad.trace` records, each comparison is recorded with its outcome
  (a *guard* of the recorded program).
* ``hash(v)`` is by identity (as PyTorch tensors), so Vars live in sets and
  dicts by identity, while ``==`` compares values: ``Var(1.0) == 1.0`` but
  ``Var(1.0) not in {1.0}``. micrograd-style code keeps Values in sets.
* ``copy.copy``, ``copy.deepcopy`` and ``pickle`` of a level-0 Var give a fresh
  leaf with the same ``data``, ``grad`` and ``label`` (a copy never shares a
  gradient with its original). Inside a transform, a Var is an immutable
  value: copying returns it unchanged (so the derivative flows through the
  copy), and pickling raises ``TypeError``.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from tapegrad import sweeps
from tapegrad.rules import RULES, Rule
from tapegrad.tape import Keep, Tape

if TYPE_CHECKING:  # the operators' result type; defined on top of this module
    from tapegrad._fastpaths import Var

__all__ = ["Handle", "is_real", "value_of", "concrete", "compare"]


def is_real(x: object) -> bool:
    """True for int, float, bool and numpy real scalars (not complex, not str, not a Var)."""
    cls = x.__class__
    if cls is float or cls is int or cls is bool:  # the ABC check below costs ~0.3 us
        return True
    return isinstance(x, numbers.Real) and not isinstance(x, Handle)


def value_of(x: Any) -> Any:
    """The value of a Var (``data``: a float, or an outer Var) or of a real number.

    The engine reads values through here, never through ``.data``: reading
    ``.data`` of a Var that :func:`tapegrad.trace` records is noted (the
    program would replay the value read, not the ops behind it).
    """
    return _data(x) if isinstance(x, Handle) else float(x)


def concrete(x: Any) -> float:
    """The float behind ``x``: a real number, or a Var's value at the innermost level."""
    while isinstance(x, Handle):
        x = _data(x)
    return float(x)


_CONVERSION_HINT = (
    "{what} of a Var would drop its derivative: use v.data for its value, "
    "tapegrad.math (tapegrad.math.sin(v), ...) to keep the derivative, or "
    "tapegrad.stop_gradient(v) for a constant on purpose"
)

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def compare(op: str, x: Any, y: Any) -> bool:
    """``x <op> y`` on values, for Vars and real numbers; records a guard while tracing.

    A Var of a nested transform holds an outer Var as its value, so the
    comparison of values is itself a comparison of Vars one level down: it
    recurses until it reaches floats, recording on each tracing tape it meets.
    """
    vx = _data(x) if isinstance(x, Handle) else x
    vy = _data(y) if isinstance(y, Handle) else y
    outcome = bool(_COMPARE[op](vx, vy))
    for v in (x, y):
        if isinstance(v, Handle):
            tape = v._tape
            if tape is not None and tape.trace is not None:
                tape.trace.guard(op, x, y, outcome, tape)
                break
    return outcome


class Handle:
    """A scalar that records every operation on it, so derivatives can be taken.

    The base of ``tapegrad.Var`` (see the module docstring): attributes,
    conversions, comparisons, copying, and one method per primitive.
    """

    __slots__ = ("data", "_tape", "_index", "_keep", "_reg", "_grad", "_label")

    # The class of leaves (tapegrad.Var), for copies and pickles of any Var.
    _leaf_class: ClassVar[type[Handle]]

    # A float for the user's Vars. Inside nested transforms it is a Var of the
    # outer tape (the engine treats it generically); typed for the user's view.
    data: float
    _tape: Tape | None
    _index: int
    _keep: Keep  # older chunks this Var's backward pass reaches (see tapegrad.tape)
    _reg: tuple[int, int] | None
    _grad: Any
    _label: str

    def __init__(self, data: Any, label: str | None = None) -> None:
        if data.__class__ is float:
            self.data = data
        elif is_real(data):
            self.data = float(data)
        else:
            raise TypeError(
                f"Var() needs a real number (int, float, bool), not {type(data).__name__}: {data!r}"
            )
        self._tape = None
        self._reg = None
        self._grad = 0.0
        self._label = "" if label is None else str(label)

    def _record(self, rule: Rule, args: tuple[Any, ...]) -> Var:
        """Record ``rule`` applied to ``args`` (the generic path); see tapegrad.record."""
        raise NotImplementedError  # defined by tapegrad.Var

    # -- micrograd-style attributes --------------------------------------

    @property
    def grad(self) -> float:
        """d(output)/d(self), summed over ``backward()`` calls; settable.

        A float for the user's Vars (inside nested transforms, an outer Var).
        """
        tape = self._tape
        grad: float = self._grad if tape is None else tape.grad_at(self._index)
        return grad

    @grad.setter
    def grad(self, value: float) -> None:
        tape = self._tape
        if tape is None:
            self._grad = value
        else:
            tape.set_grad_at(self._index, value)

    @property
    def label(self) -> str:
        """A name for listings and pictures (``''`` when unset); settable."""
        tape = self._tape
        if tape is None:
            return self._label
        return tape.labels.get(self._index, "")

    @label.setter
    def label(self, value: str) -> None:
        tape = self._tape
        if tape is None:
            self._label = str(value)
        else:
            tape.labels[self._index] = str(value)

    @property
    def is_leaf(self) -> bool:
        """True for a Var created by the user rather than by an operation."""
        return self._tape is None

    def __repr__(self) -> str:
        label = self.label
        extra = f", label={label!r}" if label else ""
        return f"Value(data={_data(self)}, grad={self.grad}{extra})"

    def __format__(self, spec: str) -> str:
        return format(_data(self), spec) if spec else repr(self)

    # -- conversions: refused, they would drop the derivative -------------

    def __float__(self) -> float:
        raise TypeError(_CONVERSION_HINT.format(what="float()"))

    def __int__(self) -> int:
        raise TypeError(_CONVERSION_HINT.format(what="int()"))

    def __complex__(self) -> complex:
        raise TypeError(_CONVERSION_HINT.format(what="complex()"))

    # -- comparisons (by value, recorded as guards while tracing) ----------

    def __bool__(self) -> bool:
        return compare("!=", self, 0.0)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        if not (isinstance(other, Handle) or is_real(other)):
            return NotImplemented  # like float: v == None is False, v in [None] works
        return compare("==", self, other)

    def __ne__(self, other: object) -> bool:
        if not (isinstance(other, Handle) or is_real(other)):
            return NotImplemented
        return compare("!=", self, other)

    def __lt__(self, other: Any) -> bool:
        if not _operand(other):
            return cast(bool, NotImplemented)  # arrays compare elementwise; else TypeError
        return compare("<", self, other)

    def __le__(self, other: Any) -> bool:
        if not _operand(other):
            return cast(bool, NotImplemented)  # arrays compare elementwise; else TypeError
        return compare("<=", self, other)

    def __gt__(self, other: Any) -> bool:
        if not _operand(other):
            return cast(bool, NotImplemented)  # arrays compare elementwise; else TypeError
        return compare(">", self, other)

    def __ge__(self, other: Any) -> bool:
        if not _operand(other):
            return cast(bool, NotImplemented)  # arrays compare elementwise; else TypeError
        return compare(">=", self, other)

    # -- copies and pickles: a fresh leaf, never a shared gradient --------

    def _fresh_leaf(self) -> Handle:
        tape = self._tape
        if tape is not None and tape.level > 0:
            return self  # inside a transform: an immutable value
        leaf = self._leaf_class(self.data)
        leaf._grad = self.grad
        leaf._label = self.label
        return leaf

    def __copy__(self) -> Handle:
        return self._fresh_leaf()

    def __deepcopy__(self, memo: dict[int, Any]) -> Handle:
        return self._fresh_leaf()

    def __reduce__(self) -> tuple[Any, ...]:
        tape = self._tape
        if tape is not None and tape.level > 0:
            raise TypeError("cannot pickle a Var of a transform; pickle its value (v.data)")
        return (_unpickle_leaf, (self._leaf_class, self.data, self.grad, self.label))

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
        args = []
        for x in inputs:
            if isinstance(x, Handle):
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

    # -- the reverse sweep -------------------------------------------------

    def backward(self) -> None:
        """Add d self / d node to ``.grad`` of every node ``self`` depends on.

        Leaves and intermediates alike; contributions add up across calls
        until the user resets them (``p.grad = 0.0``), as in micrograd.
        """
        sweeps.backward(self)


# The slot behind Var.data, read directly (a traced Var's ``data`` is a property).
_data: Callable[[Handle], Any] = Handle.__dict__["data"].__get__
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


def _operand(x: object) -> bool:
    """Whether ``x`` may take part in an operation with a Var."""
    return isinstance(x, Handle) or is_real(x)


def _unpickle_leaf(cls: type[Handle], data: float, grad: Any, label: str) -> Handle:
    """A fresh leaf from a pickle (see ``Handle.__reduce__``)."""
    leaf = cls(data, label or None)
    leaf._grad = grad
    return leaf
