"""The tape engine, in one import: ``Var``, ``Tape``, recording and the sweeps.

The engine is split by responsibility; read it in this order:

1. :mod:`tapegrad.rules`: the rule table, every primitive's value and partials;
2. :mod:`tapegrad.tape`: the tape, a struct of arrays in chunks;
3. :mod:`tapegrad.context`: the stack of current tapes, levels, and the one
   rule for which thread may append to which tape;
4. :mod:`tapegrad.handle`: what a Var is (a handle into a tape);
5. :mod:`tapegrad.record`: the generic record of one primitive on a tape;
6. :mod:`tapegrad.sweeps`: the reverse and forward sweeps, and ``backward()``;
7. :mod:`tapegrad._fastpaths`: Var's operators with the record inlined,
   generated from a short spec by ``tools/gen_fastpaths.py``.

This module re-exports what the rest of tapegrad (and its users' tests) use.
"""

from __future__ import annotations

from tapegrad._fastpaths import Node, Value, Var, apply, node_at
from tapegrad.context import current_stack, pop_tape, push_tape
from tapegrad.handle import is_real
from tapegrad.sweeps import backward, sweep_floats, sweep_forward, sweep_objects
from tapegrad.tape import CHUNK_SIZE, CONT, IMPORT, INPUT, LEAF, NULL, Tape

__all__ = [
    "Var",
    "Value",
    "Node",
    "Tape",
    "CHUNK_SIZE",
    "NULL",
    "LEAF",
    "IMPORT",
    "INPUT",
    "CONT",
    "apply",
    "node_at",
    "backward",
    "current_stack",
    "push_tape",
    "pop_tape",
    "sweep_floats",
    "sweep_objects",
    "sweep_forward",
    "is_real",
]
