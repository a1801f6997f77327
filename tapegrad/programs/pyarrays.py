"""The array lowering: a recorded program over columns of a batch, for :func:`tapegrad.vmap`.

The same program as :mod:`tapegrad.programs.pyscalar` writes, over columns:
ops on batched values call the rule's Array API form
(:mod:`tapegrad.programs.arrays`) or its operator, each guard narrows a mask
``holds`` of the samples it holds for (``holds = holds & (v4 > 0)``), and
each op whose float forward can raise adds the samples where it would to a
mask ``bad``. Ops on unbatched values only (constants, ``in_axes=None``
inputs) stay float code. ``program(inputs, xp, holds, bad, elementwise)``
returns ``(outputs, holds, bad)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from tapegrad.programs.arrays import array_form, domain_mask
from tapegrad.programs.pysource import DIV, HOLDS, POW, Source, Writer, write_program
from tapegrad.programs.recording import Const, Guard, Operand, Step

__all__ = ["array_source", "ArraySource"]


class _Scalar:
    """A constant operand of an array form: a 0-d array of the namespace, once compiled."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ArraySource(Source):
    """Generated source of the array dialect: its constants become 0-d arrays of ``xp``."""

    def compiled_namespace(self, xp: Any) -> dict[str, Any]:
        return {
            name: xp.asarray(value.value, dtype=xp.float64) if isinstance(value, _Scalar) else value
            for name, value in self.namespace.items()
        }


class _ArrayWriter(Writer):
    """Writes ops on columns (``batched``: the values that are columns of a batch)."""

    HEAD = "def program(inputs, xp, holds, bad, elementwise):"
    TAIL = "return [{}], holds, bad"
    PARAMS = "S, xp, elementwise"
    EXTRA_SLOTS = " + [holds, bad]"
    LOAD_EXTRA = ("holds, bad = S[-2], S[-1]",)
    STORE_EXTRA = ("S[-2], S[-1] = holds, bad",)

    def __init__(self, batched: set[int]) -> None:
        super().__init__()
        self.batched = set(batched)

    def is_batched(self, args: Sequence[Operand]) -> bool:
        return any(not isinstance(a, Const) and self.root(a) in self.batched for a in args)

    def step(self, step: Step) -> None:
        batched = self.is_batched(step.args)
        if batched:
            self.batched.add(step.out)
        expr = self.expression(step, batched)
        if expr is not None:
            self.lines.append(f"v{step.out} = {expr}")
            if batched:
                self.domain(step)

    def call(self, step: Step, ops: list[str], batched: bool) -> str:
        """A batched op through the rule's Array API form (or element by element)."""
        if not batched:
            return super().call(step, ops, batched)
        texts = []
        for a in step.args:  # forms take arrays: constants as 0-d arrays of the namespace
            if isinstance(a, Const):
                texts.append(self.name("k", _Scalar(a.value)))
            else:
                texts.append(self.operand(a))
        form = array_form(step.rule)
        if form is None:
            return f"elementwise({self.name('f', step.rule.forward)}, {', '.join(texts)})"
        return f"{self.name('g', form)}(xp, {', '.join(texts)})"

    def domain(self, step: Step) -> None:
        """Mark the samples where the rule's float forward raises."""
        rule = step.rule
        check = domain_mask(rule)
        if check is None:
            return
        last = step.args[-1]
        if isinstance(last, Const) and (
            (rule is DIV and last.value != 0.0) or (rule is POW and last.value == 2.0)
        ):
            return  # a nonzero constant divisor, a square: they never raise
        texts = [
            self.name("k", _Scalar(a.value)) if isinstance(a, Const) else self.operand(a)
            for a in step.args
        ]
        self.lines.append(f"bad = bad | {self.name('d', check)}(xp, {', '.join(texts)})")

    def guard(self, guard: Guard, number: int) -> None:
        """Narrow ``holds`` to the samples where the guard holds."""
        guard = _in_floats(guard)
        holds = HOLDS[(guard.op, guard.outcome)]
        a, b = self.operand(guard.a), self.operand(guard.b)
        narrow = _narrow_float(guard.a, guard.b)
        if narrow:  # see _narrow_float
            rounded, dtype = self.name("f", _round_to), self.name("k", narrow)
            sides = [
                self.operand(Const(float(o.value))) if isinstance(o, Const) else text
                for o, text in ((guard.a, a), (guard.b, b))
            ]
            a, b = (f"{rounded}(xp, {side}, {dtype})" for side in sides)
        if self.is_batched((guard.a, guard.b)):
            holds = holds.replace(" and ", " & ")
        self.lines.append(f"holds = holds & ({holds.format(a, b)})")

    def finish(self, lines: list[str], keep: set[str]) -> list[str]:
        return _free_dead_columns(lines, keep)

    def source(self, parts: list[str]) -> Source:
        return ArraySource(parts, self.namespace)


def array_source(
    n_inputs: int,
    steps: Sequence[Step],
    guards: Sequence[Guard],
    outputs: Sequence[Operand],
    batched: set[int],
    segment: int | None = None,
) -> Source:
    """The program over columns: ``batched`` are the input numbers that are columns of a batch.

    ``program(inputs, xp, holds, bad, elementwise)`` returns ``(outputs, holds, bad)``.
    """
    return write_program(_ArrayWriter(batched), n_inputs, steps, guards, outputs, segment)


def _narrow_float(a: Operand, b: Operand) -> str:
    """The dtype name of a numpy float narrower than a float that a guard compares with, or ''.

    Tracing compared a float with a numpy ``float32`` (or ``float16``) in that
    type, as numpy compares a Python float with it; a batch of float64 would
    compare in float64 and pass samples whose branch differs. So the array
    dialect rounds both sides to that type first, as the trace did.
    """
    for o in (a, b):
        dtype = getattr(o.value, "dtype", None) if isinstance(o, Const) else None
        if dtype is not None and dtype.kind == "f" and dtype.itemsize < 8:
            return str(dtype.name)
    return ""


def _round_to(xp: Any, values: Any, dtype_name: str) -> Any:
    """``values`` (a column or a float) rounded to the namespace's dtype of that name."""
    return xp.astype(xp.asarray(values, dtype=xp.float64), getattr(xp, dtype_name))


def _in_floats(guard: Guard) -> Guard:
    """An order guard against an int no float equals, as the same test against a float.

    Python compares a float with an int exactly; arrays would round the int
    (2**53 + 3 to 2**53 + 4) or fail on it (beyond 64 bits). For a float x,
    x > n and x >= n are x > (the float below n); x < n and x <= n are
    x < (the float above n).
    """
    for k, c in enumerate((guard.a, guard.b)):
        if not (isinstance(c, Const) and c.value.__class__ is int and guard.op in _ORDER):
            continue
        n = c.value
        try:
            f = float(n)
        except OverflowError:  # beyond the floats: every finite float is on one side
            f = math.inf if n > 0 else -math.inf  # (copysign would convert n, and overflow)
        if f == n:
            return guard
        below = f if f < n else math.nextafter(f, -math.inf)
        above = f if f > n else math.nextafter(f, math.inf)
        x_above_n = guard.op in (">", ">=") if k == 1 else guard.op in ("<", "<=")
        threshold = Const(below if x_above_n else above)
        if k == 1:  # x op n
            return Guard(guard.after, ">" if x_above_n else "<", guard.a, threshold, guard.outcome)
        return Guard(guard.after, "<" if x_above_n else ">", threshold, guard.b, guard.outcome)
    return guard


_ORDER = ("<", "<=", ">", ">=")


def _free_dead_columns(lines: list[str], keep: set[str]) -> list[str]:
    """``lines`` with each local deleted after its last use (the array dialect).

    A batch's columns are large: kept alive to the end, the values of a
    program of n ops hold n columns, beyond the CPU's caches, and every op
    writes to cold memory. Deleted as soon as they are dead, their memory is
    reused while still in cache: the 10-d Rosenbrock value_and_grad program
    (152 ops) on 10^4 samples ran in 533 us instead of 1063 us (2.0x; medians,
    pyperf, paired). ``keep``: the names returned or stored.
    """
    last_use: dict[str, int] = {}
    for k, line in enumerate(lines):
        for name in _LOCAL.findall(line):
            last_use[name] = k
    dead_after: dict[int, list[str]] = {}
    for name, k in last_use.items():
        if name not in keep:
            dead_after.setdefault(k, []).append(name)
    out: list[str] = []
    for k, line in enumerate(lines):
        out.append(line)
        if k in dead_after:
            out.append(f"del {', '.join(sorted(dead_after[k]))}")
    return out


# A local of a generated program (constants and functions are k7, f3, d2).
_LOCAL = re.compile(r"\bv\d+\b")
