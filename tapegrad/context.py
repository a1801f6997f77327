"""The stack of current tapes: levels, and which thread may append where.

Tapes have levels. Level 0 is the *ambient* tape that plain micrograd-style
code records on; every function transform (``grad``, ``jvp`` ...) opens a tape
one level up for the duration of one call. An operation records on the tape
of its highest-level operand; operands of lower levels are constants there.

The stack lives in a ``ContextVar``, so every thread and every asyncio task
has its own. A context can be *copied* into another thread
(``contextvars.copy_context().run``, ``asyncio.to_thread``), and a Var can be
handed to another thread, so a tape reachable from a thread is not always its
own. The one rule, :func:`may_append`: a thread appends only to an open tape
it created. Everything else is either a constant of the thread's own tape
(imported into its own ambient chunk, for a level-0 Var) or an error (a Var
of a transform running in another thread).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from threading import Lock, get_ident
from typing import Any

from tapegrad.tape import Tape

__all__ = [
    "get_ident",
    "may_append",
    "ambient",
    "current_stack",
    "active_trace",
    "note_route",
    "open_traces",
    "push_tape",
    "pop_tape",
]

_STACK: ContextVar[tuple[Tape, ...]] = ContextVar("tapegrad_tapes")

# How many tracing tapes are open, in every thread and context: 0 lets a Var's
# ``.data`` and ``.grad`` skip :func:`note_route` with one check of a module
# global. Above 0 it only says "look": note_route reads this context's own
# stack. Per read of ``v.data`` outside a trace: 149 ns with this check, 226 ns
# with a ContextVar lookup instead, 123 ns for a property that checks nothing
# (the slot read before the property: 21 ns; pyperf, measured with this text).
open_traces = 0
_open_traces_lock = Lock()  # `+= 1` from two threads could lose a count


def may_append(tape: Tape) -> bool:
    """Whether the calling thread may append to ``tape``: open and its own.

    The fast paths of Var's operators test the same rule in one comparison,
    ``tape.writer == get_ident()`` (``writer`` is the owner while the tape is
    open, 0 otherwise; docs/engine.md gives its measured cost).
    """
    return not tape.closed and tape.thread == get_ident()


def current_stack() -> tuple[Tape, ...]:
    """This context's stack, level 0 first, with an open ambient chunk of this thread."""
    stack = _STACK.get(None)
    if stack is None:
        stack = (Tape(0, get_ident()),)
        _STACK.set(stack)
        return stack
    if not may_append(stack[0]):  # sealed, or inherited from another thread
        stack = (Tape(0, get_ident()), *stack[1:])
        _STACK.set(stack)
    return stack


def ambient() -> Tape:
    """The open level-0 chunk of this context and thread."""
    stack = _STACK.get(None)
    if stack is not None:
        base = stack[0]
        if base.writer == get_ident():  # open and this thread's own
            return base
    return current_stack()[0]


def active_trace() -> Any:
    """The recorder of the innermost tracing tape of this context, or None."""
    stack = _STACK.get(None)
    if stack is not None:
        for tape in reversed(stack):
            if tape.trace is not None:
                return tape.trace
    return None


def note_route(route: str) -> None:
    """Tell every tracing tape of this context that a traced value reached Python.

    ``route`` names how (``"float"``, ``"format"``, ``".data"`` ...). A recorded
    program replays ops only, so a value that left the tape as a Python value
    would be replayed as the constant it was: the recorder marks its program
    as not reusable (see :mod:`tapegrad.programs.recording`). Every tracing
    tape on the stack is told, since the value reached each traced function.
    """
    stack = _STACK.get(None)
    if stack is not None:
        for tape in stack:
            if tape.trace is not None:
                tape.trace.note_route(route)


def push_tape(trace: Any = None) -> tuple[Tape, Token[tuple[Tape, ...]]]:
    """Open a tape one level above the current ones; returns it and a reset token.

    ``trace`` makes it a tracing tape (see :mod:`tapegrad.programs`).
    """
    global open_traces
    stack = current_stack()
    tape = Tape(len(stack), get_ident(), trace)
    if trace is not None:
        with _open_traces_lock:
            open_traces += 1
    return tape, _STACK.set((*stack, tape))


def pop_tape(tape: Tape, token: Token[tuple[Tape, ...]]) -> None:
    """Close a tape opened by :func:`push_tape` and restore the stack."""
    global open_traces
    if tape.trace is not None and not tape.closed:
        with _open_traces_lock:
            open_traces -= 1
    tape.closed = True
    tape.writer = 0
    _STACK.reset(token)
