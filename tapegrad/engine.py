"""The tape engine: ``Tape``, the ``Var`` handle, recording and the reverse sweep.

How it works
------------
A :class:`Tape` is a Wengert list stored as a struct of arrays. Entry ``k``
holds the primitive's rule, the indices of (up to) two inputs, the two local
partials ``d out / d input`` and the value. Index 0 is a placeholder meaning
"no input": a constant operand, or the second input of a unary primitive, is
recorded with index 0 and partial 0, so the reverse sweep needs no branches
per arity. A primitive with more than two inputs (see
:func:`tapegrad.primitive`) is recorded as a short chain of entries, each
taking the previous one (partial 1) and one more input.

A :class:`Var` is a small handle: its value in ``data`` and, for results of
operations, its tape and index. ``backward()`` is one loop over the tape in
reverse: ``adj[input] += partial * adj[k]``. Nothing recurses, nothing is
sorted, and a node used twice simply receives two contributions.

Levels and nesting
------------------
Tapes have levels. Level 0 is the *ambient* tape that plain micrograd-style
code records on; every function transform (``grad``, ``jvp`` ...) opens a tape
one level up. An operation records on the tape of its highest-level operand;
operands of lower levels are constants there, and their "value" is the outer
Var itself. Values and partials on a level-``n`` tape are therefore Vars of
level ``n - 1`` (or floats), so the reverse sweep of an inner tape records on
the outer tape: that is how ``grad(grad(f))`` works, with no perturbation
confusion. The stack of current tapes lives in a ``ContextVar``, so threads
and asyncio tasks record on their own tapes.

Memory
------
Intermediate Vars hold their tape; a tape holds no intermediate Var, and a
leaf (a Var the user created) holds no tape, only the serial number of the
tape it was last registered on. A tape therefore dies with its last Var.
The ambient tape is a chain of *chunks* of at most ``CHUNK_SIZE`` entries:
when a chunk is full it is sealed (its lists packed into typed arrays, ~41
bytes per op instead of ~100) and a new chunk starts; values that flow from
an old chunk into the new one are recorded there as *imports*. A loop that
keeps building graphs without calling ``backward()`` thus holds at most the
chunks that its live Vars reach, and memory stays flat without any reset call.
"""

from __future__ import annotations

import itertools
import math as _math
import numbers
import operator
import struct
import sys
import threading
import weakref
from array import array
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, TypeAlias

from tapegrad.rules import RULES, Rule

__all__ = ["Var", "Value", "Tape", "CHUNK_SIZE", "apply", "is_real"]

# A chunk of the ambient tape holds at most this many entries. 2**14 keeps a
# chunk's open lists small (~1.6 MB) while chunk crossings, which cost an
# import entry per value that crosses, stay rare (one per 16k ops in a chain).
CHUNK_SIZE = 1 << 14

# Entries that are not primitives. They have no inputs and no forward.
_NO_PARTIALS: tuple[Any, ...] = ()


def _no_forward(*args: float) -> float:
    raise TypeError("not a primitive")  # never called: marker entries only


NULL = Rule("null", "", _no_forward, _NO_PARTIALS)  # index 0 of every tape
LEAF = Rule("leaf", "", _no_forward, _NO_PARTIALS)  # a user's Var on a tape
IMPORT = Rule("import", "", _no_forward, _NO_PARTIALS)  # a Var of an older chunk
INPUT = Rule("input", "", _no_forward, _NO_PARTIALS)  # an argument of a transform
CONT = Rule("cont", "", _no_forward, _NO_PARTIALS)  # 3rd+ input of a primitive

# Sealed chunks store a rule as a 16-bit code instead of an 8-byte pointer.
_CODES: dict[Rule, int] = {}
_BY_CODE: list[Rule] = []
_CODES_LOCK = threading.Lock()


def _code(rule: Rule) -> int:
    """The small int that stands for ``rule`` on tapes (registered on first use)."""
    code = _CODES.get(rule)
    if code is None:
        with _CODES_LOCK:
            code = _CODES.setdefault(rule, len(_BY_CODE))
            if code == len(_BY_CODE):
                _BY_CODE.append(rule)
    return code


for _rule in (NULL, LEAF, IMPORT, INPUT, CONT, *RULES.values()):
    _code(_rule)

_LEAF_CODE = _code(LEAF)
_serials = itertools.count(1)


def _pack(typecode: str, items: Sequence[Any]) -> array[Any]:
    """A typed array from a list; struct packs ~30% faster than array(list)."""
    packed = array(typecode)
    packed.frombytes(struct.pack(f"{len(items)}{typecode}", *items))
    return packed


# The older chunks that a Var's backward pass reaches through imports. A
# chunk holds the chunks it imports from only weakly: holding them strongly
# chains every chunk of a long-running loop to the next, so nothing is ever
# freed. Instead each Var that depends on an imported value carries strong
# references to exactly the chunks its backward pass needs.
Keep: TypeAlias = "tuple[Tape, ...] | None"


def _merge_keeps(a: Keep, b: Keep) -> Keep:
    """The chunks kept by a result of two operands."""
    if a is None:
        return b
    if b is None or a is b:
        return a
    return tuple(set(a).union(b))


def _keep_of(x: Var, tape: Tape) -> Keep:
    """The chunks a result on ``tape`` must keep for the level-0 operand ``x``."""
    source = x._tape
    if source is None:  # a leaf
        return None
    if source is tape:
        return x._keep
    return _merge_keeps((source,), x._keep)  # imported from the older chunk


class Tape:
    """A record of primitive operations, one entry per op, in execution order.

    Entry ``k`` is spread over six columns: ``rules[k]`` (a rule code),
    ``in1[k]``, ``in2[k]`` (input indices, 0 meaning "none"), ``p1[k]``,
    ``p2[k]`` (the local partials) and ``vals[k]`` (the value). While a tape
    is open the columns are Python lists (list.append ~15 ns, array.append
    ~70 ns; one tuple per entry appends faster but costs 2.5x more to pack);
    a level-0 chunk is packed into typed arrays when it is sealed.
    """

    __slots__ = (
        "level",
        "serial",
        "open",
        "limit",
        "thread",
        "rules",
        "in1",
        "in2",
        "p1",
        "p2",
        "vals",
        "grads",
        "leaves",
        "imports",
        "import_index",
        "labels",
        "__weakref__",
    )

    def __init__(self, level: int) -> None:
        self.level = level
        self.serial = next(_serials)
        self.open = True  # operations may be appended (see _ambient / seal)
        # Transform tapes (level >= 1) live as long as one call: never chunked.
        self.limit = CHUNK_SIZE if level == 0 else 1 << 62
        self.thread = threading.get_ident()
        # Entry 0 is the placeholder that constant operands point at.
        self.rules: Any = [0]
        self.in1: Any = [0]
        self.in2: Any = [0]
        self.p1: Any = [0.0]
        self.p2: Any = [0.0]
        self.vals: Any = [0.0]
        self.grads: Any = None  # d(output)/d(entry), summed over backward() calls
        self.leaves: list[tuple[int, Var]] = []  # (index, leaf) to receive grads
        # index -> (older chunk, held weakly: see Keep; index there)
        self.imports: dict[int, tuple[weakref.ref[Tape], int]] = {}
        self.import_index: dict[tuple[int, int], int] = {}  # (serial, index) -> index
        self.labels: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.vals)

    def __repr__(self) -> str:
        state = "open" if self.open else "sealed"
        return f"<Tape level={self.level} entries={len(self)} {state}>"

    def entry(self, k: int) -> tuple[Rule, int, int, Any, Any, Any]:
        """Entry ``k`` as (rule, input 1, input 2, partial 1, partial 2, value)."""
        return (
            _BY_CODE[self.rules[k]],
            self.in1[k],
            self.in2[k],
            self.p1[k],
            self.p2[k],
            self.vals[k],
        )

    def imported(self, k: int) -> tuple[Tape, int] | None:
        """For an import entry: the older chunk and the index there (None if gone)."""
        ref, index = self.imports[k]
        older = ref()
        return None if older is None else (older, index)

    def rule_at(self, k: int) -> Rule:
        """The rule of entry ``k``."""
        rule: Rule = _BY_CODE[self.rules[k]]
        return rule

    def value_at(self, k: int) -> Any:
        """The value recorded at entry ``k``."""
        return self.vals[k]

    def push(
        self, rule: Rule, i: int, j: int, pi: Any, pj: Any, out: Any, keep: Keep = None
    ) -> Var:
        """Append one entry and return the Var that refers to it.

        The hottest operators of Var inline this body (a call costs ~100 ns).
        """
        k = len(self.vals)
        self.rules.append(_code(rule))
        self.in1.append(i)
        self.in2.append(j)
        self.p1.append(pi)
        self.p2.append(pj)
        self.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = self
        v._index = k
        v._keep = keep
        if k >= self.limit:
            self.seal()
        return v

    def push_marker(self, rule: Rule, value: Any) -> int:
        """Append an entry without inputs (leaf, import, transform input)."""
        k = len(self.vals)
        self.rules.append(_code(rule))
        self.in1.append(0)
        self.in2.append(0)
        self.p1.append(0.0)
        self.p2.append(0.0)
        self.vals.append(value)
        return k

    def push_markers(self, rule: Rule, values: list[Any]) -> None:
        """Append entries without inputs, one per value, in one go."""
        n = len(values)
        self.rules.extend([_code(rule)] * n)
        self.in1.extend([0] * n)
        self.in2.extend([0] * n)
        self.p1.extend([0.0] * n)
        self.p2.extend([0.0] * n)
        self.vals.extend(values)

    def seal(self) -> None:
        """Stop recording here; pack a level-0 chunk into typed arrays."""
        self.open = False
        if self.level == 0 and isinstance(self.vals, list):
            # ~95 ns per entry, once per chunk: ~41 instead of ~100 bytes per op.
            self.rules = _pack("H", self.rules)
            self.in1 = _pack("i", self.in1)
            self.in2 = _pack("i", self.in2)
            self.p1 = _pack("d", self.p1)
            self.p2 = _pack("d", self.p2)
            self.vals = _pack("d", self.vals)

    def grad_at(self, k: int) -> Any:
        """Accumulated gradient of entry ``k`` (0.0 before any backward)."""
        grads = self.grads
        if grads is None or k >= len(grads):
            return 0.0
        g = grads[k]
        return 0.0 if g is None else g

    def set_grad_at(self, k: int, value: Any) -> None:
        """Set the accumulated gradient of entry ``k`` (``v.grad = 0.0``)."""
        self._ensure_grads()
        self.grads[k] = value

    def _ensure_grads(self) -> None:
        n = len(self)
        if self.grads is None:
            self.grads = array("d", bytes(8 * n)) if self.level == 0 else [0.0] * n
        elif len(self.grads) < n:
            self.grads.extend([0.0] * (n - len(self.grads)))

    def add_grads(self, adj: list[Any]) -> None:
        """Add one backward pass's adjoints to the stored gradients."""
        if self.grads is None:
            if self.level == 0:
                self.grads = _pack("d", adj)
            else:
                self.grads = [0.0 if g is None else g for g in adj]
            return
        self._ensure_grads()
        if self.level == 0:  # floats: one C-level pass instead of a Python loop
            self.grads = _pack("d", list(map(operator.add, self.grads, adj)))
            return
        grads = self.grads
        for k, g in enumerate(adj):
            if g is not None:
                grads[k] = grads[k] + g

    def index_of(self, var: Var) -> int:
        """Index of ``var`` on this tape, registering a leaf or importing as needed."""
        src = var._tape
        if src is self:
            return var._index
        if src is None:  # a leaf: register it (once per tape)
            reg = var._reg
            if reg is not None and reg[0] is self.serial:
                return reg[1]
            # push_marker(LEAF, ...) inlined: a leaf is registered once per
            # chunk, so a sum over 20,000 fresh leaves runs 3% fewer
            # instructions (callgrind) than with the call.
            k = len(self.vals)
            self.rules.append(_LEAF_CODE)
            self.in1.append(0)
            self.in2.append(0)
            self.p1.append(0.0)
            self.p2.append(0.0)
            self.vals.append(var.data)
            self.leaves.append((k, var))
            var._reg = (self.serial, k)  # one tuple: read and written atomically
            return k
        # A Var of an older chunk of the ambient tape.
        key = (src.serial, var._index)
        k = self.import_index.get(key, -1)
        if k < 0:
            k = self.push_marker(IMPORT, var.data)
            self.imports[k] = (weakref.ref(src), var._index)
            self.import_index[key] = k
        return k


# ---------------------------------------------------------------------------
# The stack of current tapes, per thread and per asyncio task.
# ---------------------------------------------------------------------------

_STACK: ContextVar[tuple[Tape, ...]] = ContextVar("tapegrad_tapes")

# Before Python 3.14 a new thread starts with an empty context, so it can never
# see another thread's ambient chunk; where threads inherit the context, each
# thread must check that the chunk it found is its own.
_THREADS_SHARE_CONTEXT = bool(getattr(sys.flags, "thread_inherit_context", 0))


def _ambient() -> tuple[Tape, ...]:
    """The current stack, with an open level-0 chunk owned by this thread."""
    stack = _STACK.get(None)
    if stack is None:
        stack = (Tape(0),)
        _STACK.set(stack)
        return stack
    base = stack[0]
    if not base.open or (_THREADS_SHARE_CONTEXT and base.thread != threading.get_ident()):
        stack = (Tape(0), *stack[1:])
        _STACK.set(stack)
    return stack


def current_stack() -> tuple[Tape, ...]:
    """The stack of current tapes, level 0 first (for the transforms)."""
    return _ambient()


def push_tape() -> tuple[Tape, Any]:
    """Open a tape one level above the current ones; returns it and a reset token."""
    stack = _ambient()
    tape = Tape(len(stack))
    return tape, _STACK.set((*stack, tape))


def pop_tape(tape: Tape, token: Any) -> None:
    """Close a tape opened by :func:`push_tape`."""
    tape.open = False
    _STACK.reset(token)


def level_of(x: Any) -> int:
    """Level of a Var (leaves are level 0); -1 for anything else."""
    if isinstance(x, Var):
        tape = x._tape
        return 0 if tape is None else tape.level
    return -1


# ---------------------------------------------------------------------------
# Var
# ---------------------------------------------------------------------------


def is_real(x: object) -> bool:
    """True for int, float, bool and numpy real scalars (not complex, not str)."""
    return isinstance(x, numbers.Real) and not isinstance(x, Var)


def _check_real(x: object) -> float:
    if isinstance(x, numbers.Real) and not isinstance(x, Var):
        return float(x)
    raise TypeError(f"Var() needs a real number (int, float, bool), not {type(x).__name__}: {x!r}")


_tanh = _math.tanh
_float = float
_int = int


class Var:
    """A scalar that records every operation on it, so derivatives can be taken.

    ``Value`` is the same class under micrograd's name.

    >>> from tapegrad import Value
    >>> a = Value(-4.0); b = Value(2.0)
    >>> c = a * b + b**3
    >>> c.backward()
    >>> a.grad, b.grad
    (2.0, 8.0)
    """

    __slots__ = ("data", "_tape", "_index", "_keep", "_reg", "_grad", "_label")

    # Let numpy defer to our reflected operators (np.float64(2) * v is a Var).
    __array_ufunc__ = None

    data: Any  # a float; a Var of the outer tape inside nested transforms
    _tape: Tape | None
    _index: int
    _keep: Keep  # older chunks this Var's backward pass reaches (see Keep)
    _reg: tuple[int, int] | None
    _grad: Any
    _label: str

    def __init__(self, data: Any, label: str | None = None) -> None:
        self.data = _check_real(data)
        self._tape = None
        self._reg = None
        self._grad = 0.0
        self._label = "" if label is None else str(label)

    # -- micrograd-style attributes --------------------------------------

    @property
    def grad(self) -> Any:
        """d(output)/d(self), summed over ``backward()`` calls; settable."""
        tape = self._tape
        if tape is None:
            return self._grad
        return tape.grad_at(self._index)

    @grad.setter
    def grad(self, value: Any) -> None:
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
        return f"Value(data={self.data}, grad={self.grad}{extra})"

    # -- conversions and comparisons (by value) ---------------------------

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(float(self.data))

    def __bool__(self) -> bool:
        return bool(float(self.data))

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (Var, numbers.Real)):
            return NotImplemented  # like float: v == None is False, v in [None] works
        return float(self.data) == _value_of(other)

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, (Var, numbers.Real)):
            return NotImplemented
        return float(self.data) != _value_of(other)

    def __lt__(self, other: object) -> bool:
        return float(self.data) < _value_of(other)

    def __le__(self, other: object) -> bool:
        return float(self.data) <= _value_of(other)

    def __gt__(self, other: object) -> bool:
        return float(self.data) > _value_of(other)

    def __ge__(self, other: object) -> bool:
        return float(self.data) >= _value_of(other)

    # -- arithmetic: fast paths for the hottest primitives -----------------
    #
    # Each fast path below is the float specialisation of its row of
    # rules.RULES (tests/test_rules.py checks them against finite
    # differences). It applies when the operands sit on one open tape, or are
    # leaves or numbers at level 0 (_locate1/_locate2), which is nearly every
    # op of a forward pass; everything else goes through apply(). Inlining the
    # record instead of calling apply() took the micrograd demo step from 70x
    # to ~13x the plain-float time (docs/benchmarks.md).

    def __add__(self, other: Any) -> Var:
        tape = self._tape
        cls = other.__class__
        if cls is Node and other._tape is tape and tape.open:
            i = self._index
            j = other._index
            keep = self._keep
            if other._keep is not keep:
                keep = _merge_keeps(keep, other._keep)
        elif tape is None and cls is Node and other._tape.open and other._tape.level == 0:
            # A leaf (a weight) with a Var of the open chunk: half the ops of an
            # MLP. Inlined from _locate2, which would cost a call per op.
            tape = other._tape
            reg = self._reg
            i = reg[1] if reg is not None and reg[0] is tape.serial else tape.index_of(self)
            j = other._index
            keep = other._keep
        elif cls is Node or cls is Var:
            found = _locate2(self, other)
            if found is None:
                return apply(_ADD, (self, other))
            tape, i, j, keep = found
        elif cls is _float or cls is _int:
            if tape is not None and tape.open:
                i = self._index
                keep = self._keep
            else:
                found1 = _locate1(self)
                if found1 is None:
                    return apply(_ADD, (self, other))
                tape, i, keep = found1
            a = self.data
            c = other
            out = a + c
            pi = 1.0
            j = 0
            pj = 0.0
            # The record, inlined (a helper call here costs ~100 ns per op).
            k = len(tape.vals)
            tape.rules.append(_ADD_CODE)
            tape.in1.append(i)
            tape.in2.append(j)
            tape.p1.append(pi)
            tape.p2.append(pj)
            tape.vals.append(out)
            v: Node = _new_node()
            v.data = out
            v._tape = tape
            v._index = k
            v._keep = keep
            if k >= tape.limit:
                tape.seal()
            return v
        else:
            if not _operand(other):
                return NotImplemented
            return apply(_ADD, (self, other))
        a = self.data
        b = other.data
        out = a + b
        pi = 1.0
        pj = 1.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_ADD_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __radd__(self, other: Any) -> Var:
        tape = self._tape
        cls = other.__class__
        if cls is not _float and cls is not _int:
            if not _operand(other):
                return NotImplemented
            return apply(_ADD, (other, self))
        if tape is not None and tape.open:
            i = self._index
            keep = self._keep
        else:
            found1 = _locate1(self)
            if found1 is None:
                return apply(_ADD, (other, self))
            tape, i, keep = found1
        a = self.data
        c = other
        out = c + a
        pi = 1.0
        j = 0
        pj = 0.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_ADD_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __sub__(self, other: Any) -> Var:
        tape = self._tape
        cls = other.__class__
        if cls is Node and other._tape is tape and tape.open:
            i = self._index
            j = other._index
            keep = self._keep
            if other._keep is not keep:
                keep = _merge_keeps(keep, other._keep)
        elif cls is Node or cls is Var:
            found = _locate2(self, other)
            if found is None:
                return apply(_SUB, (self, other))
            tape, i, j, keep = found
        elif cls is _float or cls is _int:
            if tape is not None and tape.open:
                i = self._index
                keep = self._keep
            else:
                found1 = _locate1(self)
                if found1 is None:
                    return apply(_SUB, (self, other))
                tape, i, keep = found1
            a = self.data
            c = other
            out = a - c
            pi = 1.0
            j = 0
            pj = 0.0
            # The record, inlined (a helper call here costs ~100 ns per op).
            k = len(tape.vals)
            tape.rules.append(_SUB_CODE)
            tape.in1.append(i)
            tape.in2.append(j)
            tape.p1.append(pi)
            tape.p2.append(pj)
            tape.vals.append(out)
            v: Node = _new_node()
            v.data = out
            v._tape = tape
            v._index = k
            v._keep = keep
            if k >= tape.limit:
                tape.seal()
            return v
        else:
            if not _operand(other):
                return NotImplemented
            return apply(_SUB, (self, other))
        a = self.data
        b = other.data
        out = a - b
        pi = 1.0
        pj = -1.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_SUB_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __rsub__(self, other: Any) -> Var:
        tape = self._tape
        cls = other.__class__
        if cls is not _float and cls is not _int:
            if not _operand(other):
                return NotImplemented
            return apply(_SUB, (other, self))
        if tape is not None and tape.open:
            i = self._index
            keep = self._keep
        else:
            found1 = _locate1(self)
            if found1 is None:
                return apply(_SUB, (other, self))
            tape, i, keep = found1
        a = self.data
        c = other
        out = c - a
        pi = -1.0
        j = 0
        pj = 0.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_SUB_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __mul__(self, other: Any) -> Var:
        tape = self._tape
        cls = other.__class__
        if cls is Node and other._tape is tape and tape.open:
            i = self._index
            j = other._index
            keep = self._keep
            if other._keep is not keep:
                keep = _merge_keeps(keep, other._keep)
        elif tape is None and cls is Node and other._tape.open and other._tape.level == 0:
            # A leaf (a weight) with a Var of the open chunk: half the ops of an
            # MLP. Inlined from _locate2, which would cost a call per op.
            tape = other._tape
            reg = self._reg
            i = reg[1] if reg is not None and reg[0] is tape.serial else tape.index_of(self)
            j = other._index
            keep = other._keep
        elif cls is Node or cls is Var:
            found = _locate2(self, other)
            if found is None:
                return apply(_MUL, (self, other))
            tape, i, j, keep = found
        elif cls is _float or cls is _int:
            if tape is not None and tape.open:
                i = self._index
                keep = self._keep
            else:
                found1 = _locate1(self)
                if found1 is None:
                    return apply(_MUL, (self, other))
                tape, i, keep = found1
            a = self.data
            c = other
            out = a * c
            pi = c
            j = 0
            pj = 0.0
            # The record, inlined (a helper call here costs ~100 ns per op).
            k = len(tape.vals)
            tape.rules.append(_MUL_CODE)
            tape.in1.append(i)
            tape.in2.append(j)
            tape.p1.append(pi)
            tape.p2.append(pj)
            tape.vals.append(out)
            v: Node = _new_node()
            v.data = out
            v._tape = tape
            v._index = k
            v._keep = keep
            if k >= tape.limit:
                tape.seal()
            return v
        else:
            if not _operand(other):
                return NotImplemented
            return apply(_MUL, (self, other))
        a = self.data
        b = other.data
        out = a * b
        pi = b
        pj = a
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_MUL_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __rmul__(self, other: Any) -> Var:
        tape = self._tape
        cls = other.__class__
        if cls is not _float and cls is not _int:
            if not _operand(other):
                return NotImplemented
            return apply(_MUL, (other, self))
        if tape is not None and tape.open:
            i = self._index
            keep = self._keep
        else:
            found1 = _locate1(self)
            if found1 is None:
                return apply(_MUL, (other, self))
            tape, i, keep = found1
        a = self.data
        c = other
        out = c * a
        pi = c
        j = 0
        pj = 0.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_MUL_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __truediv__(self, other: Any) -> Var:
        cls = other.__class__
        if not ((cls is _float or cls is _int) and other != 0):
            if not _operand(other):
                return NotImplemented
            return apply(_DIV, (self, other))  # Var divisors, and x / 0 raising there
        tape = self._tape
        if tape is not None and tape.open:
            i = self._index
            keep = self._keep
        else:
            found1 = _locate1(self)
            if found1 is None:
                return apply(_DIV, (self, other))
            tape, i, keep = found1
        out = self.data / other
        pi = 1.0 / other
        j = 0
        pj = 0.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_DIV_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __rtruediv__(self, other: Any) -> Var:
        if not _operand(other):
            return NotImplemented
        return apply(_DIV, (other, self))

    def __pow__(self, other: Any) -> Var:
        cls = other.__class__
        if cls is not _float and cls is not _int:
            if not _operand(other):
                return NotImplemented
            return apply(_POW, (self, other))
        tape = self._tape
        if tape is not None and tape.open:
            i = self._index
            keep = self._keep
        else:
            found1 = _locate1(self)
            if found1 is None:
                return apply(_POW, (self, other))
            tape, i, keep = found1
        a = self.data
        # x ** c for a float x > 0, or x < 0 with an int c: no edge cases there
        # (zero bases, errors and overflow are the rule's business, in apply).
        if a.__class__ is not _float or not (a > 0.0 or (a < 0.0 and cls is _int)):
            return apply(_POW, (self, other))
        try:
            if other == 2:  # the common square: a * a is what a ** 2 rounds to
                out = a * a
                pi = 2.0 * a
            else:
                out = a**other
                pi = other * a ** (other - 1)
        except OverflowError:
            return apply(_POW, (self, other))
        j = 0
        pj = 0.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_POW_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __rpow__(self, other: Any) -> Var:
        if not _operand(other):
            return NotImplemented
        return apply(_POW, (other, self))

    def __neg__(self) -> Var:
        """-x."""
        tape = self._tape
        if tape is not None and tape.open:
            i = self._index
            keep = self._keep
        else:
            found1 = _locate1(self)
            if found1 is None:
                return apply(_NEG, (self,))
            tape, i, keep = found1
        a = self.data
        out = -a
        pi = -1.0
        j = 0
        pj = 0.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_NEG_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def __pos__(self) -> Var:
        return self

    def __abs__(self) -> Var:
        return apply(RULES["abs"], (self,))

    # -- methods, one per primitive (each also in tapegrad.math) ----------

    def relu(self) -> Var:
        """max(x, 0); relu'(0) = 0."""
        tape = self._tape
        if tape is not None and tape.open:
            i = self._index
            keep = self._keep
        else:
            found1 = _locate1(self)
            if found1 is None:
                return apply(_RELU, (self,))
            tape, i, keep = found1
        a = self.data
        if a.__class__ is not _float:
            return apply(_RELU, (self,))
        out = a if a > 0.0 or a != a else 0.0  # NaN stays NaN
        pi = 1.0 if a > 0.0 else 0.0
        j = 0
        pj = 0.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_RELU_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def tanh(self) -> Var:
        """Hyperbolic tangent."""
        tape = self._tape
        if tape is not None and tape.open:
            i = self._index
            keep = self._keep
        else:
            found1 = _locate1(self)
            if found1 is None:
                return apply(_TANH, (self,))
            tape, i, keep = found1
        a = self.data
        if a.__class__ is not _float:
            return apply(_TANH, (self,))
        out = _tanh(a)
        pi = 1.0 - out * out
        j = 0
        pj = 0.0
        # The record, inlined (a helper call here costs ~100 ns per op).
        k = len(tape.vals)
        tape.rules.append(_TANH_CODE)
        tape.in1.append(i)
        tape.in2.append(j)
        tape.p1.append(pi)
        tape.p2.append(pj)
        tape.vals.append(out)
        v: Node = _new_node()
        v.data = out
        v._tape = tape
        v._index = k
        v._keep = keep
        if k >= tape.limit:
            tape.seal()
        return v

    def exp(self) -> Var:
        """e ** x."""
        return apply(_EXP, (self,))

    def log(self) -> Var:
        """Natural logarithm; ValueError for x <= 0."""
        return apply(RULES["log"], (self,))

    def sigmoid(self) -> Var:
        """1 / (1 + exp(-x))."""
        return apply(RULES["sigmoid"], (self,))

    def sin(self) -> Var:
        """Sine."""
        return apply(RULES["sin"], (self,))

    def cos(self) -> Var:
        """Cosine."""
        return apply(RULES["cos"], (self,))

    def tan(self) -> Var:
        """Tangent."""
        return apply(RULES["tan"], (self,))

    def sqrt(self) -> Var:
        """Square root; ValueError for x < 0."""
        return apply(RULES["sqrt"], (self,))

    def abs(self) -> Var:
        """Absolute value; abs'(0) = 0."""
        return apply(RULES["abs"], (self,))

    def log1p(self) -> Var:
        """log(1 + x), accurate for small x."""
        return apply(RULES["log1p"], (self,))

    def expm1(self) -> Var:
        """exp(x) - 1, accurate for small x."""
        return apply(RULES["expm1"], (self,))

    def sinh(self) -> Var:
        """Hyperbolic sine."""
        return apply(RULES["sinh"], (self,))

    def cosh(self) -> Var:
        """Hyperbolic cosine."""
        return apply(RULES["cosh"], (self,))

    def asin(self) -> Var:
        """Arc sine; ValueError outside [-1, 1]."""
        return apply(RULES["asin"], (self,))

    def acos(self) -> Var:
        """Arc cosine; ValueError outside [-1, 1]."""
        return apply(RULES["acos"], (self,))

    def atan(self) -> Var:
        """Arc tangent."""
        return apply(RULES["atan"], (self,))

    def atan2(self, x: Any) -> Var:
        """atan2(self, x), the angle of the point (x, self), as math.atan2."""
        return apply(RULES["atan2"], (self, x))

    def softplus(self) -> Var:
        """log(1 + exp(x)), computed without overflow."""
        return apply(RULES["softplus"], (self,))

    def erf(self) -> Var:
        """Error function."""
        return apply(RULES["erf"], (self,))

    def minimum(self, other: Any) -> Var:
        """min(self, other); ties split the gradient evenly."""
        return apply(RULES["minimum"], (self, other))

    def maximum(self, other: Any) -> Var:
        """max(self, other); ties split the gradient evenly."""
        return apply(RULES["maximum"], (self, other))

    def hypot(self, other: Any) -> Var:
        """sqrt(self**2 + other**2) without overflow."""
        return apply(RULES["hypot"], (self, other))

    def pow(self, other: Any) -> Var:
        """self ** other."""
        return apply(_POW, (self, other))

    # -- the reverse sweep -------------------------------------------------

    def backward(self) -> None:
        """Add d self / d node to ``.grad`` of every node ``self`` depends on.

        Leaves and intermediates alike; contributions add up across calls
        until the user resets them (``p.grad = 0.0``), as in micrograd.
        """
        backward(self)


Value = Var


class Node(Var):
    """A Var made by an operation rather than by the user; it behaves the same.

    Its ``__init__`` is ``object.__init__``, so ``Node()`` runs entirely in C:
    creating one is ~30% cheaper than ``object.__new__(Var)``, on every op.
    Leaves are plain ``Var`` instances, which also lets the fast paths tell
    the two apart with one class check.
    """

    __slots__ = ()
    __init__ = object.__init__


_new_node = Node

_ADD: Rule = RULES["add"]
_SUB: Rule = RULES["sub"]
_MUL: Rule = RULES["mul"]
_DIV: Rule = RULES["div"]
_POW: Rule = RULES["pow"]
_NEG: Rule = RULES["neg"]
_RELU: Rule = RULES["relu"]
_TANH: Rule = RULES["tanh"]
_EXP: Rule = RULES["exp"]
_ADD_CODE = _code(_ADD)
_SUB_CODE = _code(_SUB)
_MUL_CODE = _code(_MUL)
_DIV_CODE = _code(_DIV)
_POW_CODE = _code(_POW)
_NEG_CODE = _code(_NEG)
_RELU_CODE = _code(_RELU)
_TANH_CODE = _code(_TANH)


def _ambient_tape() -> Tape:
    """The open level-0 chunk of this context (the common case of _ambient)."""
    stack = _STACK.get(None)
    if stack is not None:
        base = stack[0]
        if base.open and (not _THREADS_SHARE_CONTEXT or base.thread == threading.get_ident()):
            return base
    return _ambient()[0]


def _leaf_index(tape: Tape, leaf: Var) -> int:
    """Index of a leaf on a level-0 tape, registering it on first use."""
    reg = leaf._reg
    if reg is not None and reg[0] is tape.serial:  # the very int object stored below
        return reg[1]
    return tape.index_of(leaf)


def _locate1(x: Var) -> tuple[Tape, int, Keep] | None:
    """Tape, index and kept chunks for a level-0 op on ``x`` and a number.

    None means: use apply() (``x`` is a Var of a transform).
    """
    t = x._tape
    if t is None:
        tape = _ambient_tape()
        return tape, _leaf_index(tape, x), None
    if t.level == 0:  # a Var of a sealed chunk: import it into the open one
        tape = _ambient_tape()
        return tape, tape.index_of(x), _keep_of(x, tape)
    return None  # a Var of a finished transform: apply() reports it


def _locate2(x: Var, y: Var) -> tuple[Tape, int, int, Keep] | None:
    """Tape, indices and kept chunks for a level-0 op on leaves and level-0 Vars.

    Returns None (use apply()) for operands of transforms (levels >= 1).
    Half the ops of an MLP have a leaf operand (a weight), so the leaf check
    is inlined here. Vars of sealed chunks are imported into the open chunk
    here too: through apply() that costs 7-10x an ordinary op.
    """
    tx = x._tape
    ty = y._tape
    if tx is None:
        if ty is None:
            tape = _ambient_tape()
        elif ty.open and ty.level == 0:
            tape = ty
        elif ty.level == 0:
            tape = _ambient_tape()
            return tape, _leaf_index(tape, x), tape.index_of(y), _keep_of(y, tape)
        else:
            return None
        reg = x._reg
        i = reg[1] if reg is not None and reg[0] is tape.serial else tape.index_of(x)
        if ty is tape:
            return tape, i, y._index, y._keep
        return tape, i, _leaf_index(tape, y), None
    if ty is None and tx.open and tx.level == 0:
        return tx, x._index, _leaf_index(tx, y), x._keep
    if tx.level == 0 and (ty is None or ty.level == 0):
        tape = _ambient_tape()
        keep = _merge_keeps(_keep_of(x, tape), _keep_of(y, tape) if ty is not None else None)
        return tape, tape.index_of(x), tape.index_of(y), keep
    return None


def dot(xs: Sequence[Any], ys: Sequence[Any], start: Any = 0.0) -> Any:
    """``start + xs[0] * ys[0] + xs[1] * ys[1] + ...``, recorded in one call.

    It records exactly the entries that the loop ``acc = acc + x * y`` would
    (a mul and an add per term, so pictures, listings and gradients are the
    same), but without a Python operator call and a Var per term. Operands
    this fast path does not handle (a transform's Vars, numpy scalars) hand
    over to that loop, from the sum so far.

    >>> a, b = Var(2.0), Var(3.0)
    >>> out = dot([a, b], [10.0, a], start=1.0)   # 1 + 10 a + b a
    >>> out.data
    27.0
    >>> out.backward(); a.grad, b.grad
    (13.0, 2.0)
    """
    if len(xs) != len(ys):
        raise ValueError(f"dot: sequences of different lengths ({len(xs)} and {len(ys)})")
    tape = _ambient_tape()
    serial = tape.serial
    i_acc, value, keep = _dot_operand(tape, start)
    if i_acc < 0:
        return _dot_loop(xs, ys, start)
    rules, in1, in2 = tape.rules.append, tape.in1.append, tape.in2.append
    p1, p2, vals = tape.p1.append, tape.p2.append, tape.vals.append
    k = len(tape.vals)
    for n, (x, y) in enumerate(zip(xs, ys)):
        # The operand kinds of a neuron, inlined: a leaf weight, a Var of this
        # chunk, a number. Anything else goes through _dot_operand.
        cls = x.__class__
        if cls is Var and x._tape is None:
            reg = x._reg
            ix = reg[1] if reg is not None and reg[0] is serial else tape.index_of(x)
            vx = x.data
        elif cls is Node and x._tape is tape:
            ix = x._index
            vx = x.data
            if x._keep is not None:
                keep = _merge_keeps(keep, x._keep)
        else:
            ix, vx, kx = _dot_operand(tape, x)
            if kx is not None:
                keep = _merge_keeps(keep, kx)
        cls = y.__class__
        if cls is Node and y._tape is tape:
            iy = y._index
            vy = y.data
            if y._keep is not None:
                keep = _merge_keeps(keep, y._keep)
        elif cls is _float:
            iy = 0
            vy = y
        else:
            iy, vy, ky = _dot_operand(tape, y)
            if ky is not None:
                keep = _merge_keeps(keep, ky)
        if ix < 0 or iy < 0:  # hand over to the operator loop from the sum so far
            acc = start if n == 0 else _dot_result(tape, i_acc, value, keep)
            return _dot_loop(xs[n:], ys[n:], acc)
        k = len(tape.vals)
        product = vx * vy
        rules(_MUL_CODE)  # the entry of x * y (a number's index is 0)
        in1(ix)
        in2(iy)
        p1(vy)
        p2(vx)
        vals(product)
        value = value + product
        rules(_ADD_CODE)  # the entry of acc + (x * y)
        in1(i_acc)
        in2(k)
        p1(1.0)
        p2(1.0)
        vals(value)
        i_acc = k + 1
    if not xs:
        return start
    v = _dot_result(tape, i_acc, value, keep)
    if i_acc >= tape.limit:  # a chunk may overrun its limit by one dot's entries
        tape.seal()
    return v


def _dot_result(tape: Tape, index: int, value: float, keep: Keep) -> Var:
    v: Node = _new_node()
    v.data = value
    v._tape = tape
    v._index = index
    v._keep = keep
    return v


def _dot_operand(tape: Tape, x: Any) -> tuple[int, float, Keep]:
    """Index on ``tape`` (0 for a number, -1: not here), value and kept chunks."""
    cls = x.__class__
    if cls is _float or cls is _int:
        return 0, x, None
    if cls is Node:
        t = x._tape
        if t is tape:
            return x._index, x.data, x._keep
        if t is not None and t.level == 0:  # an older chunk: import
            return tape.index_of(x), x.data, _keep_of(x, tape)
        return -1, 0.0, None
    if cls is Var and x._tape is None:  # a leaf
        reg = x._reg
        k = reg[1] if reg is not None and reg[0] is tape.serial else tape.index_of(x)
        return k, x.data, None
    return -1, 0.0, None


def _dot_loop(xs: Sequence[Any], ys: Sequence[Any], start: Any) -> Any:
    """``dot`` by operators: the general path (levels, outer Vars, numpy scalars)."""
    total = start
    for x, y in zip(xs, ys):
        total = total + x * y
    return total


def _operand(x: object) -> bool:
    """Whether ``x`` may take part in an operation with a Var."""
    return isinstance(x, (Var, numbers.Real))


def _value_of(x: object) -> float:
    if isinstance(x, Var):
        return float(x.data)
    if isinstance(x, numbers.Real):
        return float(x)
    raise TypeError(f"cannot compare a Var with {type(x).__name__}")


# ---------------------------------------------------------------------------
# The generic recording path
# ---------------------------------------------------------------------------


def _evaluate(rule: Rule, values: Sequence[Any]) -> Any:
    """The value of ``rule`` at ``values``: floats, or Vars of an outer tape."""
    for v in values:
        if isinstance(v, Var):
            return apply(rule, values)
    try:
        return _float(rule.forward(*values))
    except (ValueError, ZeroDivisionError, OverflowError) as exc:
        args = ", ".join(repr(v) for v in values)
        raise type(exc)(f"{rule.name}({args}): {exc}") from None


def apply(rule: Rule, args: Sequence[Any]) -> Var:
    """Record ``rule`` applied to ``args`` (Vars or real numbers) and return its Var.

    The op goes on the current tape of the highest level among the Var
    arguments; lower-level Vars and numbers are constants there.
    """
    level = -1
    for a in args:
        if isinstance(a, Var):
            t = a._tape
            lv = 0 if t is None else t.level
            if lv > level:
                level = lv
        elif not isinstance(a, numbers.Real):
            raise TypeError(f"{rule.name}: unsupported operand type {type(a).__name__}: {a!r}")
    if level < 0:
        raise TypeError(f"{rule.name}: apply() needs at least one Var")
    stack = _ambient()
    if level >= len(stack) or not stack[level].open:
        raise ValueError(
            f"{rule.name}: a Var from a finished transform was used outside it; "
            "return values from the transformed function instead of storing its Vars"
        )
    tape = stack[level]

    values: list[Any] = []
    on_tape: list[bool] = []
    for a in args:
        if isinstance(a, Var):
            t = a._tape
            if t is tape or (t is None and level == 0) or (t is not None and t.level == level):
                if t is not None and t is not tape and level > 0:
                    raise ValueError(
                        f"{rule.name}: a Var from a finished transform was used outside it"
                    )
                values.append(a.data)
                on_tape.append(True)
                continue
            values.append(a)  # an outer Var: a constant of this tape
        else:
            values.append(_float(a))
        on_tape.append(False)

    # Compute everything before touching the tape, so an error leaves no trace.
    out = _evaluate(rule, values)
    partials = [p(*values, out) if live else 0.0 for p, live in zip(rule.partials, on_tape)]
    index = [tape.index_of(a) if live else 0 for a, live in zip(args, on_tape)]

    keep: Keep = None
    if level == 0:
        for a, live in zip(args, on_tape):
            if live:
                keep = _merge_keeps(keep, _keep_of(a, tape))
    if len(index) == 1:
        return tape.push(rule, index[0], 0, partials[0], 0.0, out, keep)
    v = tape.push(rule, index[0], index[1], partials[0], partials[1], out, keep)
    for k in range(2, len(index)):  # a chain of entries for 3+ inputs
        v = tape.push(CONT, v._index, index[k], 1.0, partials[k], out, keep)
    return v


# ---------------------------------------------------------------------------
# The reverse sweep
# ---------------------------------------------------------------------------


def sweep_floats(tape: Tape, adj: list[float], start: int) -> None:
    """``adj[input] += partial * adj[k]`` for k = start .. 1, on floats."""
    in1, in2, p1, p2 = tape.in1, tape.in2, tape.p1, tape.p2
    for k in range(start, 0, -1):
        g = adj[k]
        if g:  # most adjoints of a big graph are zero for a given output
            i = in1[k]
            if i:
                adj[i] += p1[k] * g
            j = in2[k]
            if j:
                adj[j] += p2[k] * g


def sweep_objects(tape: Tape, adj: list[Any], start: int) -> None:
    """The reverse sweep for partials that may be Vars of an outer tape.

    ``None`` marks "no adjoint yet": an adjoint that is an outer Var with value
    0 must still be propagated, because its own derivative need not be 0.
    """
    in1, in2, p1, p2 = tape.in1, tape.in2, tape.p1, tape.p2
    for k in range(start, 0, -1):
        g = adj[k]
        if g is None:
            continue
        i = in1[k]
        if i:
            c = p1[k] * g
            a = adj[i]
            adj[i] = c if a is None else a + c
        j = in2[k]
        if j:
            c = p2[k] * g
            a = adj[j]
            adj[j] = c if a is None else a + c


def sweep_forward(tape: Tape, tan: list[Any], start: int) -> None:
    """Forward-mode sweep: ``tan[k] = p1 * tan[in1] + p2 * tan[in2]`` from ``start``."""
    in1, in2, p1, p2 = tape.in1, tape.in2, tape.p1, tape.p2
    for k in range(start, len(tan)):
        t = None
        i = in1[k]
        if i:
            ti = tan[i]
            if ti is not None:
                t = p1[k] * ti
        j = in2[k]
        if j:
            tj = tan[j]
            if tj is not None:
                c = p2[k] * tj
                t = c if t is None else t + c
        if t is not None:
            tan[k] = t


def backward(out: Var) -> None:
    """Reverse sweep from ``out``; adds into ``.grad`` of everything it depends on."""
    tape = out._tape
    if tape is None:  # a leaf: d out / d out = 1
        out._grad = out._grad + 1.0
        return
    if tape.level == 0 and tape.open:
        # The next graph starts on a fresh chunk, so its backward() sweeps only
        # its own entries, not this one's (a training step's backward would
        # otherwise walk every earlier step left in the chunk: a 1,000-op
        # chain's backward took 0.71 ms instead of 0.12 ms). Not packed: such
        # a chunk usually dies with the next step's loss.
        tape.open = False
    # Chunks of the ambient tape refer to older chunks only, so processing
    # tapes from the newest serial down visits each once, after all its seeds.
    pending: dict[int, tuple[Tape, dict[int, Any]]] = {tape.serial: (tape, {out._index: 1.0})}
    while pending:
        tape, seeds = pending.pop(max(pending))
        n = len(tape)
        floats = tape.level == 0
        adj: list[Any] = [0.0] * n if floats else [None] * n
        for k, g in seeds.items():
            adj[k] = g if adj[k] is None else adj[k] + g
        if floats:
            sweep_floats(tape, adj, max(seeds))
        else:
            sweep_objects(tape, adj, max(seeds))
        for k, leaf in tape.leaves:
            g = adj[k]
            if g is not None and g != 0.0:
                leaf._grad = leaf._grad + g
        for k, (ref, idx) in tape.imports.items():
            g = adj[k]
            older = ref()
            # A chunk can be gone only if no live Var reaches it: its adjoint is 0.
            if older is not None and g is not None and g != 0.0:
                older_seeds = pending.setdefault(older.serial, (older, {}))[1]
                older_seeds[idx] = older_seeds.get(idx, 0.0) + g
        tape.add_grads(adj)
