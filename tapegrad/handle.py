"""What a Var is: a small handle into a tape, and how it behaves like a float.

A Var holds its value in the slot ``_value`` and, if an operation made it,
its tape and its index there (``_tape``, ``_index``). A Var the user created is a *leaf*:
it holds no tape, only the serial number and index of the chunk it was last
registered on (``_reg``), and its own gradient (``_grad``).

:class:`Handle` is what a Var is: its attributes (``data``, ``grad``,
``label``), conversions, comparisons, copying and pickling, ``backward()``.
What a Var can *do* is elsewhere: every operator and method that applies one
rule is in :mod:`tapegrad.operators`, and the public ``Var``
(:mod:`tapegrad.var`) is built on both, with the hottest arithmetic
operators' record inlined (generated from a short spec by
``tools/gen_fastpaths.py``). Every operation ends in ``self._record(rule,
args)``, the generic record (:func:`tapegrad.record.record`), unless a fast
path took it. This module imports neither of them: the arrows point from
``var`` to ``operators`` to ``handle``.

``.data`` and ``.grad`` are properties: while :func:`tapegrad.trace` records
anywhere in the process, reading either of any Var (a traced one, a leaf the
traced function closes over, an intermediate) is told to the tracing tapes
of this context (:func:`tapegrad.context.note_route`): the value reached
Python, and a recorded program would replay it as the constant it was.
tapegrad's own code reads the slots (``_value``, :func:`value_of`), which
count as no route. Outside a trace the properties cost one check of a
counter.

Choices (documented in docs/conventions.md):

* ``float(v)``, ``int(v)`` and everything built on them (``math.sin(v)``,
  ``np.asarray(v, dtype=float)``) raise ``TypeError`` for every Var: they would
  drop the derivative silently, as micrograd and JAX refuse too. ``v.data``
  is the value, :func:`tapegrad.stop_gradient` a constant on purpose,
  ``tapegrad.math`` keeps the derivative. ``f"{v:.3f}"`` formats the value.
* While :func:`tapegrad.trace` (or ``jit``) records, every way a value leaves
  the tape as Python data is noted as a *route* (``float``, ``int``,
  ``__index__``, ``complex``, ``format`` with a spec, ``str``/``repr``, the
  hash of a traced Var, ``__getstate__``): the program would replay the
  constant it was, so it is not reused (docs/programs.md lists every route).
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

import contextlib
import numbers
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from tapegrad import context, sweeps
from tapegrad.chunks import Keep
from tapegrad.context import active_trace, note_route
from tapegrad.rules import Rule
from tapegrad.tape import Tape

__all__ = [
    "Handle",
    "ConversionError",
    "is_real",
    "is_narrow_float",
    "value_of",
    "concrete",
    "compare",
]


def is_real(x: object) -> bool:
    """True for int, float, bool and numpy real scalars (not complex, not str, not a Var)."""
    cls = x.__class__
    if cls is float or cls is int or cls is bool:  # skips the ABC check below, the slow part
        return True
    return isinstance(x, numbers.Real) and not isinstance(x, Handle)


def is_narrow_float(x: Any) -> bool:
    """Whether ``x`` is a numpy floating scalar narrower or other than float64.

    f computes with such a constant in its own type (numpy keeps it), a
    program in float64: while tracing, it is a route (docs/programs.md).
    """
    import sys

    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.floating) and not isinstance(x, float)


def value_of(x: Any) -> Any:
    """The value of a Var (``data``: a float, or an outer Var) or of a real number.

    The engine reads values through here (or the slot ``_value``), never
    through ``.data``: reading ``.data`` while :func:`tapegrad.trace` records
    is noted as a route (the program would replay the value read, not the ops
    behind it).
    """
    return _data(x) if isinstance(x, Handle) else float(x)


def concrete(x: Any) -> float:
    """The float behind ``x``: a real number, or a Var's value at the innermost level."""
    while isinstance(x, Handle):
        x = _data(x)
    return float(x)


class ConversionError(TypeError):
    """A Var was converted to a number (``float(v)``, ``math.sin(v)``): refused.

    A ``TypeError``, as for any value Python cannot convert; its own class so
    that ``jit`` can tell a function that converts its arguments from others.
    """

    __module__ = "tapegrad"  # shown as tapegrad.ConversionError, where users import it


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
    if isinstance(vx, Handle) or isinstance(vy, Handle):
        return outcome  # the comparison one level down recorded what there is to record
    for v in (x, y):
        if isinstance(v, Handle):
            tape = v._tape
            if tape is not None and tape.trace is not None:
                tape.trace.guard(op, x, y, outcome, tape)
                return outcome
    if isinstance(x, Handle) or isinstance(y, Handle):
        # A Var of no tracing tape (one that f closes over) decided a branch
        # while a trace records: the program would freeze its value then.
        trace = active_trace()
        if trace is not None:
            trace.compared_outside = True
            note_route("comparison of a Var f closes over")
    return outcome


class Handle:
    """A scalar that records every operation on it, so derivatives can be taken.

    A base of ``tapegrad.Var`` (see the module docstring): attributes,
    conversions, comparisons, copying and pickling.
    """

    __slots__ = ("_value", "_tape", "_index", "_keep", "_reg", "_grad", "_label")

    # The class of leaves (tapegrad.Var), for copies and pickles of any Var.
    _leaf_class: ClassVar[type[Handle]]

    # A float for the user's Vars. Inside nested transforms it is a Var of the
    # outer tape (the engine treats it generically); typed for the user's view.
    _value: Any
    _tape: Tape | None
    _index: int
    _keep: Keep  # older chunks this Var's backward pass reaches (see tapegrad.tape)
    _reg: tuple[int, int] | None
    _grad: Any
    _label: str

    if TYPE_CHECKING:  # the generic record of an op, defined by tapegrad.Var

        def _record(self, rule: Rule, args: tuple[Any, ...]) -> Any: ...

    def __init__(self, data: Any, label: str | None = None) -> None:
        if data.__class__ is float:
            self._value = data
        elif is_real(data):
            self._value = float(data)
        else:
            raise TypeError(
                f"Var() needs a real number (int, float, bool), not {type(data).__name__}: {data!r}"
            )
        self._tape = None
        self._reg = None
        self._grad = 0.0
        self._label = "" if label is None else str(label)

    # -- micrograd-style attributes --------------------------------------

    @property
    def data(self) -> float:
        """The value; settable (``p.data -= lr * p.grad``), except for a Var being traced.

        A float for the user's Vars (inside nested transforms, an outer Var).
        Read while a trace records, it is noted (see the module docstring).
        """
        if context.open_traces:  # 0 unless some thread is tracing: one check
            note_route(".data")
            tape = self._tape
            if tape is not None and tape.trace is not None:
                # The flag that tapegrad.programs reads for a traced Var's value.
                tape.trace.read_values = True
        return self._value  # type: ignore[no-any-return]

    @data.setter
    def data(self, value: float) -> None:
        tape = self._tape
        if tape is not None and tape.trace is not None:
            raise TypeError("the value of a traced Var cannot be set")
        self._value = value

    @property
    def grad(self) -> float:
        """d(output)/d(self), summed over ``backward()`` calls; settable.

        A float for the user's Vars (inside nested transforms, an outer Var).
        Read while a trace records, it is noted (see the module docstring).
        """
        if context.open_traces:
            note_route(".grad")
        return self._stored_grad()  # type: ignore[no-any-return]

    @grad.setter
    def grad(self, value: float) -> None:
        tape = self._tape
        if tape is None:
            self._grad = value
        else:
            tape.set_grad_at(self._index, value)

    def _stored_grad(self) -> Any:
        """The gradient, read without noting a route (tapegrad's own reads)."""
        tape = self._tape
        return self._grad if tape is None else tape.grad_at(self._index)

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

    # -- routes into Python: each noted while a trace records --------------
    # A recorded program replays ops and guards only; a value that leaves the
    # tape as Python data (a string, an int, a hash) would be replayed as the
    # constant it was, so a trace through one of these is not reusable
    # (tapegrad.context.note_route; docs/programs.md lists every route).

    def __repr__(self) -> str:
        note_route("str()/repr()")
        label = self.label
        extra = f", label={label!r}" if label else ""
        return f"Value(data={_data(self)}, grad={self._stored_grad()}{extra})"

    def __format__(self, spec: str) -> str:
        if not spec:
            return repr(self)  # f"{v}" is repr: noted there
        note_route("format with a spec")
        return format(_data(self), spec)

    # -- conversions: refused, they would drop the derivative -------------

    def __float__(self) -> float:
        note_route("float()")
        raise ConversionError(_CONVERSION_HINT.format(what="float()"))

    def __int__(self) -> int:
        note_route("int()")
        raise ConversionError(_CONVERSION_HINT.format(what="int()"))

    def __index__(self) -> int:
        # Indexing (table[v]), range(v), slicing: an int taken from the value.
        # A plain TypeError, as Python raises for a non-int index ("ab" * v
        # says so too); f on floats raises one as well (a float is no index).
        note_route("__index__ (indexing, range)")
        raise TypeError(
            "a Var cannot be used as an int (an index, a count, range()): compare it to "
            "branch, or take an int of its value (v.data) on purpose"
        )

    def __complex__(self) -> complex:
        note_route("complex()")
        raise ConversionError(_CONVERSION_HINT.format(what="complex()"))

    # -- comparisons (by value, recorded as guards while tracing) ----------

    def __bool__(self) -> bool:
        return compare("!=", self, 0.0)

    def __hash__(self) -> int:
        # By identity (API.md). A traced Var hashed while f runs is a set or
        # dict lookup: by identity it cannot find the equal float f may mean
        # (x in {1.0}), so the route is noted (a program cannot hold it).
        tape = self._tape
        if tape is not None and tape.level > 0 and _reaches_trace(self):
            note_route("hash (a set or dict lookup)")
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
        if not (isinstance(other, Handle) or is_real(other)):
            return cast(bool, NotImplemented)  # arrays compare elementwise; else TypeError
        return compare("<", self, other)

    def __le__(self, other: Any) -> bool:
        if not (isinstance(other, Handle) or is_real(other)):
            return cast(bool, NotImplemented)  # arrays compare elementwise; else TypeError
        return compare("<=", self, other)

    def __gt__(self, other: Any) -> bool:
        if not (isinstance(other, Handle) or is_real(other)):
            return cast(bool, NotImplemented)  # arrays compare elementwise; else TypeError
        return compare(">", self, other)

    def __ge__(self, other: Any) -> bool:
        if not (isinstance(other, Handle) or is_real(other)):
            return cast(bool, NotImplemented)  # arrays compare elementwise; else TypeError
        return compare(">=", self, other)

    # -- copies and pickles: a fresh leaf, never a shared gradient --------

    def _fresh_leaf(self) -> Handle:
        tape = self._tape
        if tape is not None and tape.level > 0:
            return self  # inside a transform: an immutable value
        leaf = self._leaf_class(_data(self))
        leaf._grad = self._stored_grad()
        leaf._label = self.label
        return leaf

    def __copy__(self) -> Handle:
        return self._fresh_leaf()

    def __deepcopy__(self, memo: dict[int, Any]) -> Handle:
        return self._fresh_leaf()

    def __getstate__(self) -> Any:
        # The slots' values, data included: a way out of the tape like .data.
        note_route("__getstate__ (copy or pickle state)")
        # Python 3.11's default for an object with slots, on every version.
        slots = {}
        for name in Handle.__slots__:
            with contextlib.suppress(AttributeError):  # a slot never set (a Node's _grad)
                slots[name] = Handle.__dict__[name].__get__(self)
        return (None, slots)

    def __reduce__(self) -> tuple[Any, ...]:
        tape = self._tape
        if tape is not None and tape.level > 0:
            raise TypeError("cannot pickle a Var of a transform; pickle its value (v.data)")
        return (_unpickle_leaf, (self._leaf_class, _data(self), self._stored_grad(), self.label))

    # -- the reverse sweep -------------------------------------------------

    def backward(self) -> None:
        """Add d self / d node to ``.grad`` of every node ``self`` depends on.

        Leaves and intermediates alike; contributions add up across calls
        until the user resets them (``p.grad = 0.0``), as in micrograd.
        """
        sweeps.backward(self)


def _reaches_trace(v: Any) -> bool:
    """Whether ``v`` is a Var of a tracing tape, or holds one as its value (nested transforms)."""
    while isinstance(v, Handle):
        tape = v._tape
        if tape is not None and tape.trace is not None:
            return True
        v = _data(v)
    return False


# The slot behind Var.data, read directly (``data`` is a property that notes routes).
_data: Callable[[Handle], Any] = Handle.__dict__["_value"].__get__


def _unpickle_leaf(cls: type[Handle], data: float, grad: Any, label: str) -> Handle:
    """A fresh leaf from a pickle (see ``Handle.__reduce__``)."""
    leaf = cls(data, label or None)
    leaf._grad = grad
    return leaf
