"""What the two code generators share: a recorded program as straight-line Python.

Each op becomes ``v7 = v3 * v5``: one statement and one local per op, the
float arithmetic of its rule inlined for the arithmetic operators and for the
kinks that a rule writes as a primitive (``relu``, ``step``, ``sign``), a call
of the rule's own float forward for everything else (``v9 = f4(v7)`` with
``f4 = math.tanh``). Every value is the float the eager engine computes, bit
for bit: the fast paths and the rules compute with the same formulas.

Two lowerings build on this module: :mod:`tapegrad.programs.pyscalar` (for
``jit`` and ``Program``: floats in, floats out, each guard a test that
raises :class:`GuardFailed`) and :mod:`tapegrad.programs.pyarrays` (for
``vmap``: the same program over columns of a batch). Each is a subclass of
:class:`Writer`, which writes the ops, and hands :func:`write_program` the
lines that differ (the function header, the masks the array dialect carries).

Constants are folded where that changes no float: ``x * 1.0`` is ``x``,
``x * -1.0`` is ``-x``, ``x / 1.0`` and ``x - 0.0`` are ``x``, and a power's
slope with a constant exponent is its plain product. Constants without a
literal (inf, NaN) and functions are names in the program's namespace, so
the source holds no text of the user's (a label, a custom primitive's name).

Size. CPython raises ``RecursionError`` compiling one expression of about
3,000 terms (2,993 terms of ``x + x + ...`` compile, one more does not:
CPython 3.11, measured in this change), so there is one statement per op; a
program of more than ``SEGMENT`` ops is cut into functions of ``SEGMENT`` ops
that pass the values crossing a cut through one list. List slots cost 1.3x
locals (10,000 statements ``v = v * c + 0.5``: 297 against 229 us, medians,
pyperf, paired), so only crossing values use them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tapegrad.programs.recording import Const, Guard, Operand, Step
from tapegrad.record import checked_forward
from tapegrad.rules import RULES, Rule

__all__ = [
    "GuardFailed",
    "Source",
    "SEGMENT",
    "literal",
    "Writer",
    "HOLDS",
    "write_program",
    "ADD",
    "DIV",
    "POW",
]

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
        """The function ``program`` (``xp``: the array namespace, for the array dialect).

        Each function is compiled on its own: the syntax tree of a whole
        10^6-op program at once would take gigabytes.
        """
        namespace = self.compiled_namespace(xp)
        for part in self.parts:
            exec(compile(part, "<tapegrad program>", "exec"), namespace)
        fn: Callable[..., Any] = namespace["program"]
        return fn

    def compiled_namespace(self, xp: Any) -> dict[str, Any]:
        """The globals the source runs with (a copy of :attr:`namespace`)."""
        return dict(self.namespace)


def literal(value: Any) -> str:
    """A float, int or bool as Python source, or '' when it has none (inf, nan, others)."""
    if value.__class__ is float:
        return repr(value) if math.isfinite(value) else ""
    return repr(value) if value.__class__ in (int, bool) else ""


ADD, SUB, MUL, DIV = RULES["add"], RULES["sub"], RULES["mul"], RULES["div"]
NEG, POW, SCALED_POW = RULES["neg"], RULES["pow"], RULES["scaled_pow"]

# A guard a <op> b that held (True) or did not (False), as the test that must
# hold at replay; each is False for a NaN operand, so a NaN fails the guard.
# The array dialect writes `and` as `&` (the tests are parenthesised there).
HOLDS = {
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


def _is_negative_zero(c: float) -> bool:
    return c == 0.0 and math.copysign(1.0, c) < 0.0


class Writer:
    """Names for values, constants and functions while the source is written.

    A dialect subclasses it: :meth:`guard` writes a guard, :meth:`call` an op
    that no fold or inline form covers, and the class attributes are the
    lines :func:`write_program` puts around the ops.
    """

    # The function's header, its return statement (the outputs go in {}),
    # the parameters of each part of a cut program, what the list of crossing
    # values holds after them, and the lines that load and store that extra.
    HEAD: ClassVar[str] = "def program(inputs):"
    TAIL: ClassVar[str] = "return [{}]"
    PARAMS: ClassVar[str] = "S"
    EXTRA_SLOTS: ClassVar[str] = ""
    LOAD_EXTRA: ClassVar[tuple[str, ...]] = ()
    STORE_EXTRA: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
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

    def root(self, value: int) -> int:
        """The value an alias stands for (``x * 1.0`` is ``x``)."""
        text = self.alias.get(value)
        while text is not None and text.startswith("v"):
            value = int(text[1:])
            text = self.alias.get(value)
        return value

    def step(self, step: Step) -> None:
        """Write one op (or record it as an alias of an operand)."""
        expr = self.expression(step, batched=False)
        if expr is not None:
            self.lines.append(f"v{step.out} = {expr}")

    def expression(self, step: Step, batched: bool) -> str | None:
        """The Python expression of one op, or None when it is an alias of an operand.

        ``batched``: the op computes on a column of a batch (array dialect).
        """
        rule, args = step.rule, step.args
        ops = [self.operand(a) for a in args]
        consts = [
            a.value if isinstance(a, Const) and isinstance(a.value, float) else None for a in args
        ]
        if rule is MUL:
            if step.out in self.negated:
                return None  # -x, written into its one use, an addition
            for k in (0, 1):
                if consts[k] == 1.0:
                    self.alias[step.out] = ops[1 - k]
                    return None
                if consts[k] == -1.0:
                    return f"-{ops[1 - k]}"
            return f"{ops[0]} * {ops[1]}"
        if rule is ADD:
            if consts[1] is not None and _is_negative_zero(consts[1]):
                self.alias[step.out] = ops[0]  # x + (-0.0) is x, also for x = -0.0
                return None
            for k in (1, 0):
                arg = args[k]
                folded = None if isinstance(arg, Const) else self.negated.get(arg)
                if folded is not None:
                    return f"{ops[1 - k]} - {self.operand(folded)}"
            return f"{ops[0]} + {ops[1]}"
        if rule is SUB:
            if consts[1] == 0.0 and not _is_negative_zero(consts[1] or 0.0):
                self.alias[step.out] = ops[0]  # x - 0.0 is x, also for x = -0.0
                return None
            return f"{ops[0]} - {ops[1]}"
        if rule is DIV:
            if consts[1] == 1.0:
                self.alias[step.out] = ops[0]
                return None
            return f"{ops[0]} / {ops[1]}"
        if rule is NEG:
            if step.out in self.negated:
                return None  # written into its one use, an addition
            return f"-{ops[0]}"
        if rule is POW and consts[1] == 2.0:
            return f"{ops[0]} * {ops[0]}"  # the rule's own square
        if rule is SCALED_POW and consts[0] is not None and consts[2] is not None:
            c, p = consts[0], consts[2]
            # On a column, 0.0 * x and c + 0.0 * x keep the column's shape.
            if c == 0.0:
                return "0.0 * " + ops[1] if batched else "0.0"
            if p == 0.0:
                return f"{ops[0]} + 0.0 * {ops[1]}" if batched else ops[0]
            if p == 1.0:
                return f"{ops[0]} * {ops[1]}"
        return self.call(step, ops, batched)

    def call(self, step: Step, ops: list[str], batched: bool) -> str:
        """An op on floats: inlined kink, or a call of the rule's float function."""
        if step.rule.inline:  # the row's own expression (kinks)
            return step.rule.inline.format(*ops)
        return f"{self.forward_name(step.rule)}({', '.join(ops)})"

    def guard(self, guard: Guard, number: int) -> None:
        """Write the test of guard ``number`` (the dialect's own)."""
        raise NotImplementedError

    def finish(self, lines: list[str], keep: set[str]) -> list[str]:
        """One function's body, once written; ``keep``: the names it returns or stores."""
        return lines

    def source(self, parts: list[str]) -> Source:
        """The written functions with this writer's namespace."""
        return Source(parts, self.namespace)


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


def write_program(
    writer: Writer,
    n_inputs: int,
    steps: Sequence[Step],
    guards: Sequence[Guard],
    outputs: Sequence[Operand],
    segment: int | None = None,
) -> Source:
    """The program as the function ``writer.HEAD`` declares, cut every ``segment`` ops.

    ``segment`` defaults to :data:`SEGMENT`, read at each call.
    """
    segment = SEGMENT if segment is None else segment
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
                    used_in.setdefault(writer.root(o), set()).add(seg)

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

    if last == 0 and n_inputs <= segment:  # one function, every value a local
        lines = [writer.HEAD]
        if n_inputs:
            names = ", ".join(f"v{n}" for n in range(1, n_inputs + 1))
            lines.append(f"    ({names},) = inputs")
        lines += [f"    {line}" for line in writer.finish(body[0], keep=set(results))]
        lines.append("    " + writer.TAIL.format(", ".join(results)))
        return writer.source(["\n".join(lines) + "\n"])

    # Several functions: values used outside the segment that defines them
    # (inputs, crossing values, outputs) live in the list S; so does what the
    # dialect carries along (EXTRA_SLOTS).
    note_uses([o for o in outputs if not isinstance(o, Const)], last + 1)
    slot: dict[int, int] = {n: n - 1 for n in range(1, n_inputs + 1)}
    for value, segments in used_in.items():
        if value not in slot and segments - {defined_in.get(value, -1)}:
            slot[value] = len(slot)
    # What each function loads from S and stores in it, in one pass over the
    # values (a pass per function made 10^6-op programs quadratic).
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
    parts = []
    for seg, seg_body in enumerate(body):
        loads, stores = sorted(loads_in[seg]), sorted(stores_in[seg])
        lines = [f"def part{seg}({writer.PARAMS}):"]
        lines += [f"    {line}" for line in writer.LOAD_EXTRA]
        lines += [f"    v{v} = S[{slot[v]}]" for v in loads]
        seg_body = writer.finish(seg_body, keep={f"v{v}" for v in stores})
        lines += [f"    {line}" for line in seg_body]
        lines += [f"    S[{slot[v]}] = v{v}" for v in stores]
        lines += [f"    {line}" for line in writer.STORE_EXTRA]
        lines.append("    return None")
        parts.append("\n".join(lines) + "\n")
        body[seg] = []  # let the lines go as soon as they are joined
    lines = [writer.HEAD]
    lines.append(f"    S = list(inputs) + [None] * {len(slot) - n_inputs}{writer.EXTRA_SLOTS}")
    lines += [f"    part{seg}({writer.PARAMS})" for seg in range(len(body))]
    finals = [_from_slots(writer, o, slot) for o in outputs]
    lines += [f"    {line}" for line in writer.LOAD_EXTRA]
    lines.append("    " + writer.TAIL.format(", ".join(finals)))
    parts.append("\n".join(lines) + "\n")
    return writer.source(parts)


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
                if step.rule is ADD:
                    adds.add(a)
    for o in (*outputs, *(g.a for g in guards), *(g.b for g in guards)):
        if not isinstance(o, Const):
            uses[o] = uses.get(o, 0) + 2  # never folded
    negated: dict[int, Operand] = {}
    for step in steps:
        if uses.get(step.out) != 1 or step.out not in adds:
            continue
        if step.rule is NEG:
            negated[step.out] = step.args[0]
        elif step.rule is MUL:  # x * -1.0, as a reverse sweep forms it
            for k in (0, 1):
                c = step.args[k]
                if isinstance(c, Const) and isinstance(c.value, float) and c.value == -1.0:
                    negated[step.out] = step.args[1 - k]
                    break
    for step in steps:  # -x + -y is written -x - y: only the second negation folds
        first, second = step.args[0], step.args[-1]
        if step.rule is ADD and first in negated and second in negated:
            del negated[first]
    return negated


def _from_slots(writer: Writer, o: Operand, slot: dict[int, int]) -> str:
    if isinstance(o, Const):
        return writer.operand(o)
    text = writer.alias.get(o, "")
    if text and not text.startswith("v"):  # an alias of a constant
        return text
    return f"S[{slot[writer.root(o)]}]"
