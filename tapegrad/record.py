"""The generic record: one primitive applied to Vars and numbers, put on a tape.

:func:`record` is the one place that knows every rule of recording; the fast
paths of Var's operators (:mod:`tapegrad.var`) are specialisations of
it for the common operand kinds, and a test checks that they record exactly
the entry that :func:`record` would.

1. The op goes on the current tape of the highest level among the Var
   arguments. Vars of lower levels and numbers are *constants* there: index 0,
   partial 0, and their value (an outer Var, for a lower-level Var) enters the
   computation as is.
2. The value: the rule's float forward, or, if a value is an outer Var, the
   same rule applied one level down (which records there).
3. The partials of the live inputs, from the rule table.
4. Everything is computed before the tape is touched, so an error (a domain
   error, a partial that returns a string) leaves no trace.
5. On the level-0 tape, a leaf is registered and a Var of an older chunk is
   imported into the open chunk; the result keeps the chunks it reaches.
6. On a tracing tape (:mod:`tapegrad.programs`), the constants are recorded too.
"""

from __future__ import annotations

import numbers
from typing import Any

from tapegrad.chunks import Keep, keep_of, merge_keeps
from tapegrad.context import current_stack, get_ident, note_route
from tapegrad.handle import Handle, is_narrow_float, is_real, value_of
from tapegrad.rules import Rule, call
from tapegrad.tape import CONT, Tape

__all__ = ["record", "evaluate", "checked_forward"]


def evaluate(rule: Rule, values: tuple[Any, ...] | list[Any]) -> Any:
    """The value of ``rule`` at ``values``: floats, or Vars of an outer tape.

    A float result is checked to be a real number (a custom primitive may
    return anything); errors name the primitive and its arguments.
    """
    for v in values:
        if v.__class__ is not float:
            return call(rule, *values)  # an outer Var: recorded one level down
    try:
        out = rule.forward(*values)
    except (ValueError, ZeroDivisionError, OverflowError) as exc:
        # Raised while a trace records: whether f catches it or not, the
        # program cannot stand for other arguments (its ops would not raise).
        note_route(f"{type(exc).__name__} raised by {rule.name}")
        args = ", ".join(repr(v) for v in values)
        raise type(exc)(f"{rule.name}({args}): {exc}") from None
    return _checked(rule, "forward", out)


def checked_forward(rule: Rule) -> Any:
    """``rule.forward`` with its result checked and converted as :func:`evaluate` does.

    Replays of a custom primitive return a float where eager code does
    (a numpy float32 becomes a float), or raise the same ``TypeError``.
    """
    forward = rule.forward
    name = rule.name

    def checked(*values: float) -> Any:
        out = forward(*values)
        return out if out.__class__ is float else _replayed_result(name, out)

    return checked


def _replayed_result(name: str, out: Any) -> float:
    """A custom forward's non-float result in a replay: converted as :func:`_checked` does.

    Self-contained (``numbers`` and builtins only), so that
    :meth:`tapegrad.Program.export` can copy it into a module without tapegrad.
    """
    if isinstance(out, numbers.Real) and out.__class__.__module__.split(".")[0] != "tapegrad":
        return float(out)
    raise TypeError(
        f"primitive {name!r}: its forward returned {type(out).__name__} {out!r}, "
        "not a real number or a Var"
    )


def _checked(rule: Rule, what: str, x: Any) -> Any:
    """``x`` as a float or a Var; a TypeError naming the primitive for anything else."""
    if x.__class__ is float or isinstance(x, Handle):
        return x
    if is_real(x):
        return float(x)
    raise TypeError(
        f"primitive {rule.name!r}: its {what} returned {type(x).__name__} {x!r}, "
        "not a real number or a Var"
    )


def _traced_partials(rule: Rule, values: list[Any], out: Any, live: list[bool]) -> list[Any]:
    """The partials of an op on a tracing tape, NaN where one raises.

    A program replays forward ops only; f itself, run on floats, evaluates no
    partial. So a partial that raises at the traced point (``0.5 / out`` at 0)
    must not make the trace raise where f does not: it is NaN on this tape,
    which only a backward pass over the tracing tape itself would read (and
    reading ``.grad`` is a route that keeps no program).
    """
    partials: list[Any] = []
    for p, on in zip(rule.partials, live):
        if not on:
            partials.append(0.0)
            continue
        try:
            partials.append(_checked(rule, "partial", p(*values, out)))
        except (ArithmeticError, ValueError):
            partials.append(float("nan"))
    return partials


def _note_narrow_constants(args: tuple[Any, ...], live: list[bool]) -> None:
    """Note a numpy float32 (or float16) constant operand of a traced op.

    f computes with it in float32 on floats (numpy keeps the narrow type),
    while a program computes in float64: they would not agree, so such a
    trace is not reusable and jit runs f (docs/programs.md, float32).
    """
    for a, on in zip(args, live):
        if on or a.__class__ in (float, int, bool) or isinstance(a, Handle):
            continue
        if is_narrow_float(a):
            note_route(f"a {type(a).__name__} operand")
            return


def record(rule: Rule, args: tuple[Any, ...]) -> tuple[Tape, int, Any, Keep]:
    """Record ``rule`` applied to ``args``; returns (tape, index, value, kept chunks)."""
    level = -1
    for a in args:
        if isinstance(a, Handle):
            t = a._tape
            lv = 0 if t is None else t.level
            if lv > level:
                level = lv
        elif not is_real(a):
            raise TypeError(f"{rule.name}: unsupported operand type Var and {type(a).__name__}")
    if level < 0:
        raise TypeError(f"{rule.name}: record() needs at least one Var")
    stack = current_stack()
    if level >= len(stack) or stack[level].closed:
        raise ValueError(
            f"{rule.name}: a Var from a finished transform was used outside it; "
            "return values from the transformed function instead of storing its Vars"
        )
    tape = stack[level]
    if tape.thread != get_ident():
        raise ValueError(
            f"{rule.name}: a Var of a transform running in another thread was used here; "
            "each thread differentiates its own functions"
        )

    values: list[Any] = []
    live: list[bool] = []
    for a in args:
        if isinstance(a, Handle):
            t = a._tape
            if t is tape or (level == 0 and (t is None or t.level == 0)):
                values.append(value_of(a))
                live.append(True)
                continue
            if t is not None and t.level == level:
                raise ValueError(
                    f"{rule.name}: a Var from a finished transform was used outside it"
                )
            values.append(a)  # an outer Var: a constant of this tape
        else:
            values.append(float(a))
        live.append(False)

    out = evaluate(rule, values)
    if tape.trace is None:
        partials = [
            _checked(rule, "partial", p(*values, out)) if on else 0.0
            for p, on in zip(rule.partials, live)
        ]
    else:
        partials = _traced_partials(rule, values, out, live)
        _note_narrow_constants(args, live)
    index = [tape.index_of(a) if on else 0 for a, on in zip(args, live)]
    if out.__class__ is not float or any(p.__class__ is not float for p in partials):
        tape.objects = True
    keep: Keep = None
    if level == 0:
        for a, on in zip(args, live):
            if on:
                keep = merge_keeps(keep, keep_of(a, tape))
    if len(index) == 1:
        k = tape.push(rule, index[0], 0, partials[0], 0.0, out)
    else:
        k = tape.push(rule, index[0], index[1], partials[0], partials[1], out)
        for extra in range(2, len(index)):  # a chain of entries for 3+ inputs
            k = tape.push(CONT, k, index[extra], 1.0, partials[extra], out)
    if tape.trace is not None:
        tape.trace.record(k, rule, [i if on else v for i, v, on in zip(index, values, live)])
    if k >= tape.limit:
        tape.seal()
    return tape, k, out, keep
