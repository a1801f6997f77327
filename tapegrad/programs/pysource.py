"""A recorded program as straight-line Python: one statement and one local per op.

Each op becomes ``v7 = v3 * v5``: the float arithmetic of its rule, inlined
for the arithmetic operators and for the kinks that a rule writes as a
primitive (``relu``, ``step``, ``sign``), a call of the rule's own float
forward for everything else (``v9 = f4(v7)`` with ``f4 = math.tanh``). Every
value is the float the eager engine computes, bit for bit: the fast paths and
the rules compute with the same formulas. Each guard becomes a test that
raises :class:`GuardFailed` when the comparison goes the other way (or
cannot be made: a NaN).

The *array* dialect (for :func:`tapegrad.vmap`) writes the same program over
columns of a batch: ops on batched values call the rule's Array API form
(:mod:`tapegrad.programs.arrays`) or its operator, each guard narrows a mask
``holds`` of the samples it holds for, and each op whose float forward can
raise adds the samples where it would to a mask ``bad``. Ops on unbatched
values only (constants, ``in_axes=None`` inputs) stay float code.

Constants are folded where that changes no float: ``x * 1.0`` is ``x``,
``x * -1.0`` is ``-x``, ``x / 1.0`` and ``x - 0.0`` are ``x``, and a power's
slope with a constant exponent is its plain product. Constants without a
literal (inf, NaN) and functions are names in the program's namespace, so
the source holds no text of the user's (a label, a custom primitive's name).

Size. CPython raises ``RecursionError`` compiling one expression of ~10^4
terms, so there is one statement per op; a program of more than ``SEGMENT``
ops is cut into functions of ``SEGMENT`` ops that pass the values crossing a
cut through one list (list slots cost 1.4x locals on 10,000 statements, so
only crossing values use it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tapegrad.programs.arrays import array_form, domain_mask
from tapegrad.programs.recording import Const, Guard, Operand, Step
from tapegrad.record import checked_forward
from tapegrad.rules import RULES, Rule

__all__ = ["GuardFailed", "Source", "python_source", "SEGMENT", "literal"]

# Ops per generated function.
SEGMENT = 20_000


class GuardFailed(Exception):
    """A comparison recorded while tracing goes the other way at these inputs."""

    def __init__(self, index: int) -> None:
        super().__init__(f"guard {index} failed")
        self.index = index


@dataclass
class Source:
    """Generated source (one text per function), and the names it refers to."""

    parts: list[str]
    namespace: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The whole source."""
        return "".join(self.parts)

    def compile(self, xp: Any = None) -> Callable[..., Any]:
        """The function ``program``; for the array dialect, with constants of namespace ``xp``.

        Each function is compiled on its own: the syntax tree of a whole
        10^6-op program at once would take gigabytes.
        """
        namespace = {
            name: xp.asarray(value.value, dtype=xp.float64) if isinstance(value, _Scalar) else value
            for name, value in self.namespace.items()
        }
        for part in self.parts:
            exec(compile(part, "<tapegrad program>", "exec"), namespace)
        fn: Callable[..., Any] = namespace["program"]
        return fn


_ADD, _SUB, _MUL, _DIV = RULES["add"], RULES["sub"], RULES["mul"], RULES["div"]
_NEG, _POW, _SCALED_POW = RULES["neg"], RULES["pow"], RULES["scaled_pow"]

# Kinks on floats, inlined with the semantics of their rule's forward (NaN included).
_INLINE = {
    RULES["relu"]: "({0} if {0} > 0.0 or {0} != {0} else 0.0)",
    RULES["step"]: "(1.0 if {0} > 0.0 else 0.0)",
    RULES["sign"]: "(1.0 if {0} > 0.0 else -1.0 if {0} < 0.0 else 0.0)",
}

# A guard a <op> b that held (True) or did not (False), as the test that must
# hold at replay; each is False for a NaN operand, so a NaN fails the guard.
# In the array dialect `and` is `&` (the tests are parenthesised there).
_HOLDS = {
    ("<", True): "{0} < {1}",
    ("<", False): "{0} >= {1}",
    ("<=", True): "{0} <= {1}",
    ("<=", False): "{0} > {1}",
    (">", True): "{0} > {1}",
    (">", False): "{0} <= {1}",
    (">=", True): "{0} >= {1}",
    (">=", False): "{0} < {1}",
    ("==", True): "{0} == {1}",
    ("==", False): "({0} != {1}) and ({0} == {0}) and ({1} == {1})",
    ("!=", True): "({0} != {1}) and ({0} == {0}) and ({1} == {1})",
    ("!=", False): "{0} == {1}",
}


def literal(value: Any) -> str:
    """A float, int or bool as Python source, or '' when it has none (inf, nan, others)."""
    if value.__class__ is float:
        return repr(value) if math.isfinite(value) else ""
    return repr(value) if value.__class__ in (int, bool) else ""


class _Scalar:
    """A constant operand of an array form: a 0-d array of the namespace, once compiled."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _is_negative_zero(c: float) -> bool:
    return c == 0.0 and math.copysign(1.0, c) < 0.0


class _Writer:
    """Names for values, constants and functions while the source is written.

    ``batched`` holds the values that are columns of a batch (array dialect);
    for the float dialect it is empty.
    """

    def __init__(self, batched: set[int] | None = None) -> None:
        self.arrays = batched is not None
        self.batched: set[int] = set() if batched is None else set(batched)
        self.namespace: dict[str, Any] = {"GuardFailed": GuardFailed}
        self.names: dict[tuple[str, int], str] = {}  # (kind, id(object)) -> name
        self.alias: dict[int, str] = {}  # value number -> the text it stands for
        # -x whose one use is an addition: y + (-x) is written y - x (the same
        # float: IEEE subtraction is the addition of the negation).
        self.negated: dict[int, Operand] = {}
        self.lines: list[str] = []

    def name(self, kind: str, obj: Any) -> str:
        """A namespace name for ``obj`` (a constant ``k``, a function ``f``)."""
        key = (kind, id(obj))
        found = self.names.get(key)
        if found is None:
            found = self.names[key] = f"{kind}{len(self.names)}"
            self.namespace[found] = obj
        return found

    def forward_name(self, rule: Rule) -> str:
        """The namespace name of the float function that computes ``rule`` (see _float_forward)."""
        key = ("f", id(rule.forward))
        found = self.names.get(key)
        if found is None:
            found = self.names[key] = f"f{len(self.names)}"
            self.namespace[found] = _float_forward(rule)
        return found

    def operand(self, o: Operand) -> str:
        if isinstance(o, Const):
            text = literal(o.value)
            if text:
                return text if not text.startswith("-") else f"({text})"
            return self.name("k", o.value)
        return self.alias.get(o, f"v{o}")

    def is_batched(self, args: Sequence[Operand]) -> bool:
        return any(not isinstance(a, Const) and _root(self, a) in self.batched for a in args)

    def step(self, step: Step) -> None:
        """Write one op (or record it as an alias of an operand)."""
        batched = self.is_batched(step.args)
        if batched:
            self.batched.add(step.out)
        expr = self.expression(step, batched)
        if expr is not None:
            self.lines.append(f"v{step.out} = {expr}")
            if batched:
                self.domain(step)

    def expression(self, step: Step, batched: bool) -> str | None:
        """The Python expression of one op, or None when it is an alias of an operand."""
        rule, args = step.rule, step.args
        ops = [self.operand(a) for a in args]
        consts = [
            a.value if isinstance(a, Const) and isinstance(a.value, float) else None for a in args
        ]
        if rule is _MUL:
            if step.out in self.negated:
                return None  # -x, written into its one use, an addition
            for k in (0, 1):
                if consts[k] == 1.0:
                    self.alias[step.out] = ops[1 - k]
                    return None
                if consts[k] == -1.0:
                    return f"-{ops[1 - k]}"
            return f"{ops[0]} * {ops[1]}"
        if rule is _ADD:
            if consts[1] is not None and _is_negative_zero(consts[1]):
                self.alias[step.out] = ops[0]  # x + (-0.0) is x, also for x = -0.0
                return None
            for k in (1, 0):
                arg = args[k]
                folded = None if isinstance(arg, Const) else self.negated.get(arg)
                if folded is not None:
                    return f"{ops[1 - k]} - {self.operand(folded)}"
            return f"{ops[0]} + {ops[1]}"
        if rule is _SUB:
            if consts[1] == 0.0 and not _is_negative_zero(consts[1] or 0.0):
                self.alias[step.out] = ops[0]  # x - 0.0 is x, also for x = -0.0
                return None
            return f"{ops[0]} - {ops[1]}"
        if rule is _DIV:
            if consts[1] == 1.0:
                self.alias[step.out] = ops[0]
                return None
            return f"{ops[0]} / {ops[1]}"
        if rule is _NEG:
            if step.out in self.negated:
                return None  # written into its one use, an addition
            return f"-{ops[0]}"
        if rule is _POW and consts[1] == 2.0:
            return f"{ops[0]} * {ops[0]}"  # the rule's own square
        if rule is _SCALED_POW and consts[0] is not None and consts[2] is not None:
            c, p = consts[0], consts[2]
            if c == 0.0:
                return "0.0 * " + ops[1] if batched else "0.0"
            if p == 0.0:
                return f"{ops[0]} + 0.0 * {ops[1]}" if batched else ops[0]
            if p == 1.0:
                return f"{ops[0]} * {ops[1]}"
        if not batched:
            template = _INLINE.get(rule)
            if template is not None:
                return template.format(*ops)
            return f"{self.forward_name(rule)}({', '.join(ops)})"
        return self.array_call(rule, args)

    def array_call(self, rule: Rule, args: Sequence[Operand]) -> str:
        """A batched op through the rule's Array API form (or element by element)."""
        texts = []
        for a in args:  # forms take arrays: constants as 0-d arrays of the namespace
            if isinstance(a, Const):
                texts.append(self.name("k", _Scalar(a.value)))
            else:
                texts.append(self.operand(a))
        form = array_form(rule)
        if form is None:
            return f"elementwise({self.name('f', rule.forward)}, {', '.join(texts)})"
        return f"{self.name('g', form)}(xp, {', '.join(texts)})"

    def domain(self, step: Step) -> None:
        """In the array dialect: mark the samples where the rule's float forward raises."""
        rule = step.rule
        check = domain_mask(rule)
        if check is None:
            return
        last = step.args[-1]
        if isinstance(last, Const) and (
            (rule is _DIV and last.value != 0.0) or (rule is _POW and last.value == 2.0)
        ):
            return  # a nonzero constant divisor, a square: they never raise
        texts = [
            self.name("k", _Scalar(a.value)) if isinstance(a, Const) else self.operand(a)
            for a in step.args
        ]
        self.lines.append(f"bad = bad | {self.name('d', check)}(xp, {', '.join(texts)})")

    def guard(self, guard: Guard, number: int) -> None:
        if self.arrays:
            guard = _in_floats(guard)
        holds = _HOLDS[(guard.op, guard.outcome)]
        a, b = self.operand(guard.a), self.operand(guard.b)
        narrow = self.arrays and _narrow_float(guard.a, guard.b)
        if narrow:  # see _narrow_float
            rounded, dtype = self.name("f", _round_to), self.name("k", narrow)
            sides = [
                self.operand(Const(float(o.value))) if isinstance(o, Const) else text
                for o, text in ((guard.a, a), (guard.b, b))
            ]
            a, b = (f"{rounded}(xp, {side}, {dtype})" for side in sides)
        if self.arrays and self.is_batched((guard.a, guard.b)):
            self.lines.append(f"holds = holds & ({holds.replace(' and ', ' & ').format(a, b)})")
        elif self.arrays:
            self.lines.append(f"holds = holds & ({holds.format(a, b)})")
        else:
            self.lines += [f"if not ({holds.format(a, b)}):", f"    raise GuardFailed({number})"]


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


def _float_forward(rule: Rule) -> Callable[..., Any]:
    """The float function a program calls for ``rule``.

    A built-in rule's forward returns a float. A custom primitive's may return
    a numpy float32 or an int: the eager engine converts it to a float (or
    raises TypeError naming the primitive), and so must a replay.
    """
    if RULES.get(rule.name) is rule:
        return rule.forward
    checked: Callable[..., Any] = checked_forward(rule)
    return checked


def python_source(
    n_inputs: int,
    steps: Sequence[Step],
    guards: Sequence[Guard],
    outputs: Sequence[Operand],
    segment: int | None = None,
    batched: set[int] | None = None,
) -> Source:
    """The program as ``program(inputs)`` returning the list of outputs.

    With ``batched`` (the input numbers that are columns of a batch), the
    array dialect: ``program(inputs, xp, holds, bad, elementwise)`` returns
    ``(outputs, holds, bad)``.
    """
    segment = SEGMENT if segment is None else segment
    writer = _Writer(batched)
    checks: dict[int, list[tuple[int, Guard]]] = {}
    for n, g in enumerate(guards):
        checks.setdefault(g.after, []).append((n, g))
    writer.negated = _negations_into_additions(steps, guards, outputs)
    body: list[list[str]] = []
    defined_in: dict[int, int] = {n: -1 for n in range(1, n_inputs + 1)}
    used_in: dict[int, set[int]] = {}

    def note_uses(operands: Sequence[Operand], seg: int) -> None:
        for o in operands:
            if not isinstance(o, Const):
                o = writer.negated.get(o, o)  # a folded -x uses x
                if not isinstance(o, Const):
                    used_in.setdefault(_root(writer, o), set()).add(seg)

    for position, step in enumerate(steps):
        seg = position // segment
        if seg == len(body):
            if body:
                body[-1] = writer.lines
            writer.lines = []
            body.append(writer.lines)
        for n, g in checks.get(position, []):
            note_uses((g.a, g.b), seg)
            writer.guard(g, n)
        note_uses(step.args, seg)
        before = len(writer.lines)
        writer.step(step)
        if len(writer.lines) > before:
            defined_in[step.out] = seg
    if not body:
        body.append(writer.lines)
    last = len(body) - 1
    for n, g in checks.get(len(steps), []):
        note_uses((g.a, g.b), last)
        writer.guard(g, n)
    results = [writer.operand(o) for o in outputs]
    arrays = writer.arrays
    head = "def program(inputs, xp, holds, bad, elementwise):" if arrays else "def program(inputs):"
    tail = "return [{}], holds, bad" if arrays else "return [{}]"

    if last == 0 and n_inputs <= segment:  # one function, every value a local
        lines = [head]
        if n_inputs:
            names = ", ".join(f"v{n}" for n in range(1, n_inputs + 1))
            lines.append(f"    ({names},) = inputs")
        if arrays:
            body[0] = _free_dead_columns(body[0], keep=set(results))
        lines += [f"    {line}" for line in body[0]]
        lines.append("    " + tail.format(", ".join(results)))
        return Source(["\n".join(lines) + "\n"], writer.namespace)

    # Several functions: values used outside the segment that defines them
    # (inputs, crossing values, outputs) live in the list S; so do the masks.
    note_uses([o for o in outputs if not isinstance(o, Const)], last + 1)
    slot: dict[int, int] = {n: n - 1 for n in range(1, n_inputs + 1)}
    for value, segments in used_in.items():
        if value not in slot and segments - {defined_in.get(value, -1)}:
            slot[value] = len(slot)
    # What each function loads from S and stores in it, in one pass over the
    # values (a pass per function made 10^6-op programs quadratic: 4 s of 17).
    loads_in: dict[int, list[int]] = {seg: [] for seg in range(len(body))}
    for value, segments in used_in.items():
        for seg in segments:
            if seg in loads_in and defined_in.get(value, -1) != seg:
                loads_in[seg].append(value)
    stores_in: dict[int, list[int]] = {seg: [] for seg in range(len(body))}
    for value in slot:
        seg = defined_in.get(value, -2)
        if seg in stores_in:
            stores_in[seg].append(value)
    params = "S, xp, elementwise" if arrays else "S"
    parts = []
    for seg, seg_body in enumerate(body):
        loads, stores = sorted(loads_in[seg]), sorted(stores_in[seg])
        lines = [f"def part{seg}({params}):"]
        if arrays:
            lines.append("    holds, bad = S[-2], S[-1]")
        lines += [f"    v{v} = S[{slot[v]}]" for v in loads]
        if arrays:
            seg_body = _free_dead_columns(seg_body, keep={f"v{v}" for v in stores})
        lines += [f"    {line}" for line in seg_body]
        lines += [f"    S[{slot[v]}] = v{v}" for v in stores]
        if arrays:
            lines.append("    S[-2], S[-1] = holds, bad")
        lines.append("    return None")
        parts.append("\n".join(lines) + "\n")
        body[seg] = []  # let the lines go as soon as they are joined
    lines = [head]
    extra = " + [holds, bad]" if arrays else ""
    lines.append(f"    S = list(inputs) + [None] * {len(slot) - n_inputs}{extra}")
    lines += [f"    part{seg}({params})" for seg in range(len(body))]
    finals = [_from_slots(writer, o, slot) for o in outputs]
    if arrays:
        lines.append("    holds, bad = S[-2], S[-1]")
    lines.append("    " + tail.format(", ".join(finals)))
    parts.append("\n".join(lines) + "\n")
    return Source(parts, writer.namespace)


def _free_dead_columns(lines: list[str], keep: set[str]) -> list[str]:
    """``lines`` with each local deleted after its last use (the array dialect).

    A batch's columns are large: kept alive to the end, the values of a
    program of n ops hold n columns, beyond the CPU's caches, and every op
    writes to cold memory. Deleted as soon as they are dead, their memory is
    reused while still in cache: the 10-d Rosenbrock value_and_grad program
    (135 ops) on 10^4 samples ran in 429 us instead of 985 us (2.3x, the
    same process, alternating calls). ``keep``: the names returned or stored.
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


def _negations_into_additions(
    steps: Sequence[Step], guards: Sequence[Guard], outputs: Sequence[Operand]
) -> dict[int, Operand]:
    """The values ``-x`` used once, by an addition: they are written into it."""
    uses: dict[int, int] = {}
    adds: set[int] = set()
    for step in steps:
        for a in step.args:
            if not isinstance(a, Const):
                uses[a] = uses.get(a, 0) + 1
                if step.rule is _ADD:
                    adds.add(a)
    for o in (*outputs, *(g.a for g in guards), *(g.b for g in guards)):
        if not isinstance(o, Const):
            uses[o] = uses.get(o, 0) + 2  # never folded
    negated: dict[int, Operand] = {}
    for step in steps:
        if uses.get(step.out) != 1 or step.out not in adds:
            continue
        if step.rule is _NEG:
            negated[step.out] = step.args[0]
        elif step.rule is _MUL:  # x * -1.0, as a reverse sweep forms it
            for k in (0, 1):
                c = step.args[k]
                if isinstance(c, Const) and isinstance(c.value, float) and c.value == -1.0:
                    negated[step.out] = step.args[1 - k]
                    break
    for step in steps:  # -x + -y is written -x - y: only the second negation folds
        first, second = step.args[0], step.args[-1]
        if step.rule is _ADD and first in negated and second in negated:
            del negated[first]
    return negated


def _root(writer: _Writer, value: int) -> int:
    """The value an alias stands for (``x * 1.0`` is ``x``)."""
    text = writer.alias.get(value)
    while text is not None and text.startswith("v"):
        value = int(text[1:])
        text = writer.alias.get(value)
    return value


def _from_slots(writer: _Writer, o: Operand, slot: dict[int, int]) -> str:
    if isinstance(o, Const):
        return writer.operand(o)
    text = writer.alias.get(o, "")
    if text and not text.startswith("v"):  # an alias of a constant
        return text
    return f"S[{slot[_root(writer, o)]}]"
