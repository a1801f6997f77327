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

from typing import Any

from tapegrad.chunks import Keep, keep_of, merge_keeps
from tapegrad.context import current_stack, get_ident
from tapegrad.handle import Handle, is_real, value_of
from tapegrad.rules import Rule, call
from tapegrad.tape import CONT, Tape

__all__ = ["record", "evaluate"]


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
        args = ", ".join(repr(v) for v in values)
        raise type(exc)(f"{rule.name}({args}): {exc}") from None
    return _checked(rule, "forward", out)


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
    partials = [
        _checked(rule, "partial", p(*values, out)) if on else 0.0
        for p, on in zip(rule.partials, live)
    ]
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
