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

The level-0 tape is a chain of chunks of at most ``CHUNK_SIZE`` entries;
:mod:`tapegrad.chunks` says how chunks link up and when they are packed.
"""

from __future__ import annotations

import itertools
import operator
import weakref
from typing import Any

from tapegrad.chunks import LOCK, pack, packed, retire
from tapegrad.rules import Rule

__all__ = [
    "Tape",
    "CHUNK_SIZE",
    "NULL",
    "LEAF",
    "IMPORT",
    "INPUT",
    "CONT",
]

# A chunk of the ambient tape holds at most this many entries. 2**14 keeps a
# chunk's open lists small (1.7-3 MB: 100-180 bytes per entry, see
# tapegrad.chunks) while chunk crossings, which cost an import entry per value
# that crosses, stay rare (one per 16,384 ops in a chain).
CHUNK_SIZE = 1 << 14


def _no_forward(*args: float) -> float:
    raise TypeError("a marker entry has no forward function")


NULL = Rule("null", "", _no_forward, ())  # index 0 of every tape
LEAF = Rule("leaf", "", _no_forward, ())  # a user's Var registered on a tape
IMPORT = Rule("import", "", _no_forward, ())  # a Var of an older chunk
INPUT = Rule("input", "", _no_forward, ())  # an argument of a transform
CONT = Rule("cont", "", _no_forward, ())  # the 3rd+ input of a primitive

_serials = itertools.count(1)


class Tape:
    """A record of primitive operations, one entry per op, in execution order.

    ``writer`` is the thread that may append to this tape through the fast
    paths of Var's operators: its owner while the tape is open, 0 once it is
    closed, and 0 throughout for a tracing tape, whose every entry goes
    through :func:`tapegrad.record.record` so that constants and comparisons
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
            k = self.push(LEAF, 0, 0, 0.0, 0.0, var._value)
            self.leaves.append((k, var))
            var._reg = (self.serial, k)  # one tuple: read and written atomically
            return k
        # A Var of an older chunk of the ambient tape.
        key = (src.serial, var._index)
        k = self.import_index.get(key, -1)
        if k < 0:
            k = self.push(IMPORT, 0, 0, 0.0, 0.0, var._value)
            self.imports[k] = (weakref.ref(src), var._index)
            self.import_index[key] = k
        return k

    def seal(self) -> None:
        """Stop recording on this tape (a level-0 chunk may be packed later: tapegrad.chunks)."""
        self.closed = True
        self.writer = 0
        if self.level == 0:
            retire(self)

    def pack(self) -> None:
        """Pack the columns into typed arrays (see tapegrad.chunks.pack)."""
        with LOCK:
            pack(self)

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
            self.grads = summed if self.rule_table is None else packed("d", summed)
            return
        if len(grads) < len(adj):
            grads.extend([0.0] * (len(adj) - len(grads)))
        for k, g in enumerate(adj):
            if g is not None:
                grads[k] = grads[k] + g
