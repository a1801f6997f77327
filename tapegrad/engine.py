"""The tape engine, in one import: ``Var``, ``Tape``, recording and the sweeps.

The engine is split by responsibility; read it in this order (each module
imports only modules above it in the list, type-only imports aside):

1. :mod:`tapegrad.rules`: the rule table, every primitive's value and partials;
2. :mod:`tapegrad.chunks`: what a Var keeps alive, packing long-lived chunks;
3. :mod:`tapegrad.tape`: the tape, a struct of arrays in chunks;
4. :mod:`tapegrad.context`: the stack of current tapes, levels, and the one
   rule for which thread may append to which tape;
5. :mod:`tapegrad.sweeps`: the reverse and forward sweeps, and ``backward()``;
6. :mod:`tapegrad.handle`: what a Var is (a handle into a tape);
7. :mod:`tapegrad.record`: the generic record of one primitive on a tape;
8. :mod:`tapegrad.operators`: every operator and method that applies one rule;
9. :mod:`tapegrad.var`: ``Var`` itself, with the hottest operators' record
   inlined (a region generated from a short spec by ``tools/gen_fastpaths.py``).

This module re-exports what the rest of tapegrad (and its users' tests) use.
"""

from __future__ import annotations

from tapegrad.context import current_stack, pop_tape, push_tape
from tapegrad.handle import is_real
from tapegrad.sweeps import backward, sweep_floats, sweep_forward, sweep_objects
from tapegrad.tape import CHUNK_SIZE, CONT, IMPORT, INPUT, LEAF, NULL, Tape
from tapegrad.var import Node, Value, Var, apply, node_at

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
