"""Chunks and memory: what a Var keeps alive, and packing chunks that live long.

The level-0 ("ambient") tape is a chain of chunks of at most
``tapegrad.tape.CHUNK_SIZE`` entries. A full chunk is *sealed* and a new one
opened; a value that flows from an older chunk into the open one is recorded
there as an ``IMPORT`` entry. A chunk holds the chunks it imports from only
weakly (strong links would chain every chunk of a long-running loop to the
next, and nothing would ever be freed); instead each Var holds the chunks its
backward pass needs (its ``Keep``), so a chunk dies with the last Var that
reaches it, and a loop that builds graphs holds memory flat.

While a chunk is open its columns are Python lists (``list.append`` is the
cheapest append there is). A sealed chunk that stays alive is *packed* into
typed arrays (34 bytes per entry, the sum of the six item sizes, instead of
an 8-byte pointer per column and the Python float and int objects the
pointers reach), but not at once: most chunks die with the
training step that made them, and packing those is wasted work (about a
fifth of the time it took to record the chunk: 3.1 ms against 15.3 ms for
16,381 entries, pyperf, measured with this text). Sealed
chunks are packed, oldest first, only while more than ``UNPACKED_LIMIT``
entries of sealed chunks are alive unpacked: a training step's chunks die
before that, and a long-lived graph keeps at most that many unpacked.
"""

from __future__ import annotations

import struct
import threading
import weakref
from array import array
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from tapegrad.tape import Tape

__all__ = ["Keep", "merge_keeps", "keep_of", "LOCK", "UNPACKED_LIMIT", "pack", "packed", "retire"]

# At most this many entries of sealed chunks stay alive unpacked: 4 chunks,
# some 4-10 MB more than packed, by the sizes per entry above.
UNPACKED_LIMIT = 4 * (1 << 14)

# Guards what threads may touch at once: the packing queue, and the stored
# gradients of a chunk (two threads may run backward() through one chunk).
# Taken once per chunk sealed and once per chunk swept, never per op.
LOCK = threading.RLock()

# The older chunks that a Var's backward pass reaches through imports, held
# strongly by that Var (None: none).
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


def packed(typecode: str, items: Sequence[Any]) -> array[Any]:
    """A typed array from a list.

    ``struct.pack`` and ``frombytes`` take about half the time of
    ``array(typecode, items)``: 106 against 226 us for 16,384 floats (medians,
    pyperf, paired).
    """
    result = array(typecode)
    result.frombytes(struct.pack(f"{len(items)}{typecode}", *items))
    return result


def pack(tape: Tape) -> None:
    """Pack a sealed chunk's columns into typed arrays; call with ``LOCK`` held."""
    if tape.rule_table is not None or not tape.closed:
        return
    # Rule codes are local to the chunk, so no registry of every rule ever
    # made is needed: the chunk holds exactly the rules it uses.
    table = list(dict.fromkeys(tape.rules))
    codes = {rule: code for code, rule in enumerate(table)}
    tape.rules = packed("H", list(map(codes.__getitem__, tape.rules)))
    tape.rule_table = table
    tape.in1 = packed("i", tape.in1)
    tape.in2 = packed("i", tape.in2)
    tape.p1 = packed("d", tape.p1)
    tape.p2 = packed("d", tape.p2)
    tape.vals = packed("d", tape.vals)
    if isinstance(tape.grads, list):
        tape.grads = packed("d", tape.grads)


# Sealed chunks not packed yet, oldest first.
_unpacked: deque[weakref.ref[Tape]] = deque()


def retire(chunk: Tape) -> None:
    """A level-0 chunk was sealed: pack the oldest survivors beyond ``UNPACKED_LIMIT``.

    Called at every seal (once per chunk): the queue is short.
    """
    with LOCK:
        _unpacked.append(weakref.ref(chunk))
        live = [ref for ref in list(_unpacked) if ref() is not None]
        total = sum(len(c) for c in (ref() for ref in live) if c is not None)
        for ref in live:
            if total <= UNPACKED_LIMIT:
                break
            old = ref()
            if old is not None:
                total -= len(old)
                pack(old)
        _unpacked.clear()
        _unpacked.extend(r for r in live if (c := r()) is not None and c.rule_table is None)
