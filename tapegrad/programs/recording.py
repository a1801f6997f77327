"""Tracing: a function run on a tracing tape, and the :class:`Program` it leaves.

:func:`trace_call` opens a tape one level up (as a transform does) whose
``trace`` is a :class:`Recorder`. Every op on that tape goes through the
generic record (a tracing tape's ``writer`` is 0, so the fast paths step
aside), which hands the recorder each op with its constant operands; every
comparison of a Var of that tape hands it a *guard*: the comparison and its
outcome, as ADOL-C and CppAD record comparison outcomes to detect branch
switches. Transforms run inside ``f`` open tapes above the tracing one, and
their backward sweeps compute on the tracing tape's Vars: a traced
``value_and_grad(g)`` holds its reverse sweep as ordinary ops.

Kinks inside primitives (relu, abs, min, max) are not guards: the rule table
writes every value-dependent choice as a primitive (``step``, ``sign`` ...),
which the program computes as the rule does.

:class:`tapegrad.programs.program.Program` then prunes the trace to what its
outputs and guards need, and numbers its values.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tapegrad.context import pop_tape, push_tape
from tapegrad.handle import Handle, concrete, value_of
from tapegrad.pytree import TreeDef, flatten, unflatten
from tapegrad.rules import Rule
from tapegrad.tape import INPUT, Tape
from tapegrad.var import node_at

__all__ = ["Const", "Operand", "Step", "Guard", "Recorder", "Traced", "trace_call", "is_input"]


@dataclass(frozen=True)
class Const:
    """A constant operand of a program (a float, or a Var the function closed over)."""

    value: Any


Operand = int | Const  # an int n stands for the value %n


@dataclass(frozen=True)
class Step:
    """One op of a program: ``%out = rule(args)``."""

    out: int
    rule: Rule
    args: tuple[Operand, ...]


@dataclass(frozen=True)
class Guard:
    """A comparison made while tracing: ``a <op> b`` gave ``outcome``.

    It is checked once the first ``after`` steps have run.
    """

    after: int
    op: str
    a: Operand
    b: Operand
    outcome: bool


class Recorder:
    """What a tracing tape records beside its entries: ops with constants, and guards."""

    def __init__(self) -> None:
        self.ops: list[tuple[int, Rule, tuple[Any, ...]]] = []  # (tape index, rule, operands)
        self.guards: list[tuple[int, str, Any, Any, bool]] = []
        self.captures_vars = False  # a Var of another tape entered as a constant
        # f compared a Var of another tape (one it closes over): its value
        # then is frozen in the guards (no derivative is lost, but the
        # program holds for that value only).
        self.compared_outside = False
        self.compared_nan = False  # a comparison saw a NaN: its outcome says nothing
        self.read_values = False  # f read a traced Var's .data: a value, not ops
        # Routes by which a value reached Python outside the ops and guards,
        # as (route, "file:line" in f): the program is then not reusable.
        self.routes: list[tuple[str, str]] = []

    def note_route(self, route: str) -> None:
        """A value left the tape as Python data by ``route``; see ``context.note_route``."""
        self.routes.append((route, _caller_outside_tapegrad()))

    def record(self, index: int, rule: Rule, operands: list[Any]) -> None:
        """An op of the tracing tape: ints are indices there, anything else a constant."""
        if any(isinstance(o, Handle) for o in operands):
            self.captures_vars = True
        self.ops.append((index, rule, tuple(operands)))

    def guard(self, op: str, x: Any, y: Any, outcome: bool, tape: Tape) -> None:
        """A comparison of a Var of ``tape`` (the tracing tape) with ``y``."""
        refs: list[Any] = []  # a tape index, or a constant
        for v in (x, y):
            if isinstance(v, Handle):
                if v._tape is tape:
                    refs.append(v._index)
                    v = value_of(v)
                else:  # a Var of another tape: its value now is fixed in the guard
                    self.compared_outside = True
                    self.note_route("comparison of a Var f closes over")
                    refs.append(Const(concrete(v)))
                    continue
            else:
                # The number f compared with, as it was (an int exactly, a float32 as such).
                refs.append(Const(v))
            if v != v:
                self.compared_nan = True
        self.guards.append((len(self.ops), op, refs[0], refs[1], outcome))


def _caller_outside_tapegrad() -> str:
    """``file:line`` of the innermost frame that is neither tapegrad's nor numpy's code.

    numpy is skipped too: a value reaches Python through it (a repr in its
    error message, a conversion in ``np.asarray``) on behalf of ``f``.
    """
    skipped = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    np = sys.modules.get("numpy")
    np_file = getattr(np, "__file__", None)
    if isinstance(np_file, str):
        skipped.append(os.path.dirname(os.path.abspath(np_file)))
    frame: Any = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not any(filename.startswith(root + os.sep) for root in skipped):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def is_input(leaf: Any) -> bool:
    """Whether a leaf of a traced function's arguments is an input of the program.

    Floats (and numpy floats, and the elements of float arrays) are inputs;
    ints, bools and everything else are static: part of what a program is
    specialised to, like JAX's static arguments. A float that only selects a
    branch is still an input: its comparisons become guards.
    """
    cls = leaf.__class__
    if cls is float:
        return True
    np_floating = _numpy_floating()
    return np_floating is not None and isinstance(leaf, np_floating)


def _numpy_floating() -> Any:
    import sys

    np = sys.modules.get("numpy")
    return None if np is None else np.floating


@dataclass
class Traced:
    """One traced call: the tape, where its inputs and outputs are, and the result."""

    tape: Tape
    recorder: Recorder
    in_tree: TreeDef
    leaves: list[Any]  # the flat arguments (inputs and static leaves)
    input_index: list[int]  # tape index of each input, in leaf order
    out_tree: TreeDef
    out_leaves: list[Any]  # Vars of the tape, numbers, or captured Vars
    result: Any  # what f returned, its Vars replaced by their values


def trace_call(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    recorder: Recorder | None = None,
) -> Traced:
    """Call ``f(*args, **kwargs)`` on a tracing tape with its float leaves as inputs.

    ``recorder``, when given, is the one the tape records into: the caller
    can then read its ``routes`` even when ``f`` raises.
    """
    leaves, in_tree = flatten((args, kwargs), "trace: argument", static=True)
    if recorder is None:
        recorder = Recorder()
    tape, token = push_tape(recorder)
    try:
        positions = [k for k, leaf in enumerate(leaves) if is_input(leaf)]
        values = [float(leaves[k]) for k in positions]
        first = tape.push_markers(INPUT, values)
        wrapped = list(leaves)
        for n, k in enumerate(positions):
            wrapped[k] = node_at(tape, first + n, values[n])
        new_args, new_kwargs = unflatten(in_tree, wrapped)
        out = f(*new_args, **new_kwargs)
    finally:
        pop_tape(tape, token)
    out_leaves, out_tree = flatten(out, "trace: output of f", static=True)
    result = unflatten(out_tree, [_value_outside(tape, x) for x in out_leaves])
    index = list(range(first, first + len(positions)))
    return Traced(tape, recorder, in_tree, leaves, index, out_tree, out_leaves, result)


def _value_outside(tape: Tape, x: Any) -> Any:
    """An output leaf as the caller of ``f`` sees it: the tape's Vars become values."""
    if isinstance(x, Handle) and x._tape is tape:
        return value_of(x)
    return x
