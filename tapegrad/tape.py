"""Tape storage: a Wengert list as a struct of arrays, in chunks.

A :class:`Tape` records one entry per primitive op, in execution order.
Entry ``k`` is spread over six columns:

============  ================================================================
``rules[k]``  the :class:`~tapegrad.rules.Rule` (or a marker such as ``LEAF``)
``in1[k]``    index of the first input (0: none, a constant operand)
``in2[k]``    index of the second input (0: none)
``p1[k]``     the local partial ``d out / d input 1`` (0.0 when ``in1[k]`` is 0)
``p2[k]``     the local partial ``d out / d input 2``
``vals[k]``   the value
============  ================================================================

Index 0 is a placeholder: a constant operand, or the second input of a unary
primitive, is recorded as input 0 with partial 0, so the reverse sweep needs
no branches per arity. A primitive with three or more inputs is recorded as a
chain of entries, each taking the previous one (partial 1) and one more input
(the ``CONT`` marker).

Values and partials are floats on the level-0 tape. On a tape of level ``n``
(opened by a transform) they may be Vars of level ``n - 1``, which is how the
reverse sweep of an inner tape records on the outer one.

Chunks and memory
-----------------
The level-0 ("ambient") tape is a chain of chunks of at most ``CHUNK_SIZE``
entries. A full chunk is *sealed* and a new one opened; a value that flows
from an older chunk into the open one is recorded there as an ``IMPORT``
entry. A chunk holds the chunks it imports from only weakly, and each Var
holds the chunks its backward pass needs (``Keep``), so a chunk dies with the
last Var that reaches it, and a loop that builds graphs holds memory flat.

While a chunk is open its columns are Python lists (``list.append`` is the
cheapest append there is). A sealed chunk that stays alive is *packed* into
typed arrays (34 bytes per entry instead of ~100-180), but not at once:
most chunks die with the training step that made them, and packing those is
wasted work (~95 ns per entry: 6 ms of a 65,000-op training step). Sealed
chunks are packed, oldest first, only while more than ``UNPACKED_LIMIT``
entries of sealed chunks are alive unpacked: a training step's chunks die
before that, a long-lived graph keeps at most that many unpacked.
"""

from __future__ import annotations

import itertools
import operator
import struct
import threading
import weakref
from array import array
from collections import deque
from collections.abc import Sequence
from typing import Any, TypeAlias

from tapegrad.rules import Rule

__all__ = [
    "Tape",
    "Keep",
    "CHUNK_SIZE",
    "UNPACKED_LIMIT",
    "NULL",
    "LEAF",
    "IMPORT",
    "INPUT",
    "CONT",
    "LOCK",
    "merge_keeps",
    "keep_of",
]

# A chunk of the ambient tape holds at most this many entries. 2**14 keeps a
# chunk's open lists small (~3 MB) while chunk crossings, which cost an import
# entry per value that crosses, stay rare (one per 16k ops in a chain).
CHUNK_SIZE = 1 << 14

# At most this many entries of sealed chunks stay alive unpacked (~7 MB).
UNPACKED_LIMIT = 4 * CHUNK_SIZE


def _no_forward(*args: float) -> float:
    raise TypeError("a marker entry has no forward function")


NULL = Rule("null", "", _no_forward, ())  # index 0 of every tape
LEAF = Rule("leaf", "", _no_forward, ())  # a user's Var registered on a tape
IMPORT = Rule("import", "", _no_forward, ())  # a Var of an older chunk
INPUT = Rule("input", "", _no_forward, ())  # an argument of a transform
CONT = Rule("cont", "", _no_forward, ())  # the 3rd+ input of a primitive

_serials = itertools.count(1)

# The older chunks that a Var's backward pass reaches through imports, held
# strongly by that Var (None: none). See the module docstring.
Keep: TypeAlias = "tuple[Tape, ...] | None"


def merge_keeps(a: Keep, b: Keep) -> Keep:
    """The chunks kept by a result of two operands."""
    if a is None:
        return b
    if b is None or a is b:
        return a
    return tuple(set(a).union(b))


def keep_of(var: Any, tape: Tape) -> Keep:
    """The chunks a result on ``tape`` must keep for its level-0 operand ``var``."""
    source: Tape | None = var._tape
    if source is None or source is tape:  # a leaf, or a Var of this very chunk
        return var._keep if source is not None else None
    return merge_keeps((source,), var._keep)  # imported from an older chunk


def _pack(typecode: str, items: Sequence[Any]) -> array[Any]:
    """A typed array from a list; struct packs ~30% faster than array(list)."""
    packed = array(typecode)
    packed.frombytes(struct.pack(f"{len(items)}{typecode}", *items))
    return packed


# Sealed chunks not packed yet, oldest first (see pack_survivors).
_unpacked: deque[weakref.ref[Tape]] = deque()

# Guards what threads may touch at once: the packing queue, and the stored
# gradients of a chunk (two threads may run backward() through one chunk).
# Taken once per chunk sealed and once per chunk swept, never per op.
LOCK = threading.RLock()


class Tape:
    """A record of primitive operations, one entry per op, in execution order.

    ``writer`` is the thread that may append to this tape through the fast
    paths of Var's operators: its owner while the tape is open, 0 once it is
    closed, and 0 throughout for a tracing tape, whose every entry goes
    through :func:`tapegrad.record.apply` so that constants and comparisons
    are captured. ``thread`` is the owner, for the generic path's check.
    """

    __slots__ = (
        "level",
        "serial",
        "thread",
        "writer",
        "closed",
        "limit",
        "rules",
        "in1",
        "in2",
        "p1",
        "p2",
        "vals",
        "rule_table",
        "grads",
        "leaves",
        "imports",
        "import_index",
        "labels",
        "trace",
        "objects",
        "__weakref__",
    )

    def __init__(self, level: int, thread: int, trace: Any = None) -> None:
        self.level = level
        self.serial = next(_serials)
        self.thread = thread
        self.closed = False
        self.writer = 0 if trace is not None else thread
        # Transform tapes live as long as one call: never chunked.
        self.limit = CHUNK_SIZE if level == 0 else 1 << 62
        # Entry 0 is the placeholder that constant operands point at.
        self.rules: Any = [NULL]
        self.in1: Any = [0]
        self.in2: Any = [0]
        self.p1: Any = [0.0]
        self.p2: Any = [0.0]
        self.vals: Any = [0.0]
        self.rule_table: list[Rule] | None = None  # rule codes of a packed chunk
        self.grads: Any = None  # d(output)/d(entry), summed over backward() calls
        self.leaves: list[tuple[int, Any]] = []  # (index, leaf Var) to receive grads
        # index -> (older chunk, held weakly: see Keep; index there)
        self.imports: dict[int, tuple[weakref.ref[Tape], int]] = {}
        self.import_index: dict[tuple[int, int], int] = {}  # (serial, index) -> index
        self.labels: dict[int, str] = {}
        # What a tracing tape records beside its entries (tapegrad.programs).
        self.trace = trace
        # Whether a value or partial may be a Var (of an outer tape): set by
        # the generic record and by transforms wrapping Var inputs. The fast
        # paths never need to: on float operands they compute floats.
        self.objects = False

    def __len__(self) -> int:
        return len(self.in1)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Tape level={self.level} entries={len(self)} {state}>"

    # -- reading -----------------------------------------------------------

    def rule_at(self, k: int) -> Rule:
        """The rule of entry ``k``."""
        table = self.rule_table
        rule: Rule = self.rules[k] if table is None else table[self.rules[k]]
        return rule

    def entry(self, k: int) -> tuple[Rule, int, int, Any, Any, Any]:
        """Entry ``k`` as (rule, input 1, input 2, partial 1, partial 2, value)."""
        return (self.rule_at(k), self.in1[k], self.in2[k], self.p1[k], self.p2[k], self.vals[k])

    def imported(self, k: int) -> tuple[Tape, int] | None:
        """For an import entry: the older chunk and the index there (None if gone)."""
        ref, index = self.imports[k]
        older = ref()
        return None if older is None else (older, index)

    # -- recording (the generic path; Var's fast paths inline push) ---------

    def push(self, rule: Rule, i: int, j: int, pi: Any, pj: Any, out: Any) -> int:
        """Append one entry; return its index. The caller seals a full chunk (``limit``)."""
        k = len(self.in1)
        self.rules.append(rule)
        self.in1.append(i)
        self.in2.append(j)
        self.p1.append(pi)
        self.p2.append(pj)
        self.vals.append(out)
        return k

    def push_markers(self, rule: Rule, values: list[Any]) -> int:
        """Append entries without inputs, one per value; return the first index."""
        n = len(values)
        first = len(self.in1)
        self.rules.extend([rule] * n)
        self.in1.extend([0] * n)
        self.in2.extend([0] * n)
        self.p1.extend([0.0] * n)
        self.p2.extend([0.0] * n)
        self.vals.extend(values)
        return first

    def index_of(self, var: Any) -> int:
        """Index of a level-0 ``var`` on this chunk, registering a leaf or importing."""
        src: Tape | None = var._tape
        if src is self:
            index: int = var._index
            return index
        if src is None:  # a leaf: register it (once per chunk)
            reg = var._reg
            if reg is not None and reg[0] is self.serial:
                index = reg[1]
                return index
            k = self.push(LEAF, 0, 0, 0.0, 0.0, var.data)
            self.leaves.append((k, var))
            var._reg = (self.serial, k)  # one tuple: read and written atomically
            return k
        # A Var of an older chunk of the ambient tape.
        key = (src.serial, var._index)
        k = self.import_index.get(key, -1)
        if k < 0:
            k = self.push(IMPORT, 0, 0, 0.0, 0.0, var.data)
            self.imports[k] = (weakref.ref(src), var._index)
            self.import_index[key] = k
        return k

    def seal(self) -> None:
        """Stop recording on this tape; a level-0 chunk is queued for packing."""
        self.closed = True
        self.writer = 0
        if self.level == 0:
            with LOCK:
                _unpacked.append(weakref.ref(self))
                pack_survivors()

    def pack(self) -> None:
        """Pack the columns into typed arrays (34 bytes per entry); call with ``LOCK`` held."""
        if self.rule_table is not None or not self.closed:
            return
        # Rule codes are local to the chunk, so no registry of every rule ever
        # made is needed: the chunk holds exactly the rules it uses.
        table = list(dict.fromkeys(self.rules))
        codes = {rule: code for code, rule in enumerate(table)}
        self.rules = _pack("H", list(map(codes.__getitem__, self.rules)))
        self.rule_table = table
        self.in1 = _pack("i", self.in1)
        self.in2 = _pack("i", self.in2)
        self.p1 = _pack("d", self.p1)
        self.p2 = _pack("d", self.p2)
        self.vals = _pack("d", self.vals)
        if isinstance(self.grads, list):
            self.grads = _pack("d", self.grads)

    # -- gradients (summed over backward() calls) ---------------------------

    def grad_at(self, k: int) -> Any:
        """Accumulated gradient of entry ``k`` (0.0 before any backward)."""
        grads = self.grads
        if grads is None or k >= len(grads):
            return 0.0
        g = grads[k]
        return 0.0 if g is None else g

    def set_grad_at(self, k: int, value: Any) -> None:
        """Set the accumulated gradient of entry ``k`` (``v.grad = 0.0``)."""
        with LOCK:
            n = len(self)
            if self.grads is None:
                self.grads = [0.0] * n
            elif len(self.grads) < n:
                self.grads.extend([0.0] * (n - len(self.grads)))
            self.grads[k] = value

    def add_grads(self, adj: list[Any]) -> None:
        """Add one backward pass's adjoints (None: no contribution) to the stored ones.

        Call with ``LOCK`` held.
        """
        grads = self.grads
        if grads is None:  # the common case: keep the adjoints as they are
            self.grads = adj if self.level == 0 else [0.0 if g is None else g for g in adj]
            return
        if self.level == 0:  # floats: one C-level pass instead of a Python loop
            summed = list(map(operator.add, grads, adj))  # as long as the shorter
            summed.extend(grads[len(adj) :] if len(grads) > len(adj) else adj[len(grads) :])
            self.grads = summed if self.rule_table is None else _pack("d", summed)
            return
        if len(grads) < len(adj):
            grads.extend([0.0] * (len(adj) - len(grads)))
        for k, g in enumerate(adj):
            if g is not None:
                grads[k] = grads[k] + g


def pack_survivors() -> None:
    """Pack the oldest sealed chunks while more than ``UNPACKED_LIMIT`` entries live unpacked.

    Called with ``LOCK`` held at every seal (once per chunk): the queue is short.
    """
    live = [ref for ref in list(_unpacked) if ref() is not None]
    total = sum(len(chunk) for chunk in (ref() for ref in live) if chunk is not None)
    for ref in live:
        if total <= UNPACKED_LIMIT:
            break
        chunk = ref()
        if chunk is not None:
            total -= len(chunk)
            chunk.pack()
    _unpacked.clear()
    _unpacked.extend(ref for ref in live if (c := ref()) is not None and c.rule_table is None)
