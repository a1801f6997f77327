"""The :class:`Program`: a traced function as a straight-line program with guards.

>>> import tapegrad as tg
>>> def f(x, y):
...     z = x * y + 2.0
...     return tg.math.tanh(z) if z > 0 else -z
>>> prog = tg.trace(f, 0.5, 3.0)
>>> print(prog)
%1 = input
%2 = input
%3 = mul %1 %2
%4 = add %3 2.0
guard %4 > 0 (True)
%5 = tanh %4
return %5
>>> len(prog), prog(1.0, 1.0) == f(1.0, 1.0)
(3, True)

A trace becomes a program by :func:`numbered`: its ops pruned to what the
outputs and guards need, an op with the rule and operands of an earlier one
merged into it (common subexpressions), and its values numbered ``%1 ...``
(inputs first) in execution order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from tapegrad.handle import Handle
from tapegrad.programs.arrays import may_raise
from tapegrad.programs.pyarrays import array_source
from tapegrad.programs.pyscalar import scalar_source
from tapegrad.programs.pysource import GuardFailed
from tapegrad.programs.recording import Const, Guard, Operand, Step, Traced, is_input
from tapegrad.pytree import TreeDef, flatten, structure_difference, unflatten
from tapegrad.viz import dot_string

__all__ = ["Program", "GuardError", "numbered"]


class GuardError(ValueError):
    """A program was called where a comparison recorded in it goes the other way."""


class Program:
    """What a function recorded at some arguments: its ops, guards, inputs and outputs.

    ``str(prog)`` lists it one op per line (``%7 = mul %3 %5``), ``len(prog)``
    counts its ops, :meth:`to_dot` draws it, :attr:`source` is the Python the
    program runs as, and ``prog(*args)`` runs it on new arguments of the same
    structure (raising :class:`GuardError` where a guard fails). Float leaves
    of the arguments are its inputs; every other leaf is fixed in it.

    >>> import tapegrad as tg
    >>> prog = tg.trace(lambda x, n: x ** n if x > 0 else 0.0, 2.0, 3)
    >>> print(prog)
    %1 = input
    guard %1 > 0 (True)
    %2 = pow %1 3.0
    return %2
    >>> prog(1.5, 3), len(prog)
    (3.375, 1)
    >>> try:
    ...     prog(-1.0, 3)
    ... except tg.GuardError as e:
    ...     print(str(e)[:53])
    program: guard %1 > 0 was True when traced and is not
    """

    def __init__(self, traced: Traced) -> None:
        self.steps, self.guards, self.outputs, self.captures_vars = numbered(traced)
        self.in_tree = traced.in_tree
        self.out_tree = traced.out_tree
        # Where the inputs sit among the flat arguments, and the fixed leaves.
        self.positions = [k for k, leaf in enumerate(traced.leaves) if is_input(leaf)]
        self.fixed = {k: leaf for k, leaf in enumerate(traced.leaves) if not is_input(leaf)}
        self.n_inputs = len(self.positions)
        # A program that compared a NaN, holds a Var f closed over, or a value
        # f read, is not replayed for new arguments (see tapegrad.programs.jit).
        self.compared_nan = traced.recorder.compared_nan
        # f read a traced Var's .data: the program holds that value as a constant.
        self.read_values = traced.recorder.read_values
        # f compared a Var it closes over: the branch holds for its value now only.
        self.compared_outside = traced.recorder.compared_outside
        # Routes by which a traced value reached Python (float, format, hash,
        # an op that raised ...), as (route, "file:line"): any makes it not reusable.
        self.routes = list(traced.recorder.routes)
        # An output that is not a pytree of numbers (an object, which may hold
        # Vars or change) cannot be handed out again: such a trace is not kept.
        self.opaque_outputs = _has_opaque(traced.out_tree)
        self._run: Callable[[Sequence[float]], list[Any]] | None = None
        self._arrays: dict[tuple[int, frozenset[int]], Callable[..., Any]] = {}
        # The outputs computed at replay (not constants): floats, checked by finite().
        computed = [k for k, o in enumerate(self.outputs) if not isinstance(o, Const)]
        self._no_computed = not computed
        every = len(computed) == len(self.outputs)
        self._computed = None if every or not computed else itemgetter(*computed)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"<Program: {self.n_inputs} inputs, {len(self)} ops, {len(self.guards)} guards>"

    @property
    def replayable(self) -> bool:
        """Whether the program stands for ``f`` at other arguments (see :func:`tapegrad.jit`)."""
        return not (
            self.compared_nan
            or self.captures_vars
            or self.compared_outside
            or self.read_values
            or self.opaque_outputs
            or bool(self.routes)
        )

    def __str__(self) -> str:
        lines = ["%" + f"{n} = input" for n in range(1, self.n_inputs + 1)]
        checks: dict[int, list[str]] = {}
        for g in self.guards:
            text = f"guard {_name(g.a)} {g.op} {_name(g.b)} ({g.outcome})"
            checks.setdefault(g.after, []).append(text)
        for position, step in enumerate(self.steps):
            lines += checks.get(position, [])
            args = " ".join(_name(a) for a in step.args)
            lines.append(f"%{step.out} = {_op_name(step.rule.name)} {args}")
        lines += checks.get(len(self.steps), [])
        lines.append("return " + ", ".join(_name(o) for o in self.outputs))
        return "\n".join(lines)

    @property
    def source(self) -> str:
        """The Python source the program runs as (``program(inputs) -> outputs``)."""
        return scalar_source(self.n_inputs, self.steps, self.guards, self.outputs).text

    def to_dot(self) -> str:
        """Graphviz DOT source of the program: inputs, ops, constants, outputs."""
        lines = ["digraph program {", "\tgraph [rankdir=LR]", "\tnode [shape=box]"]
        for n in range(1, self.n_inputs + 1):
            lines.append(f"\tv{n} [label={dot_string(f'%{n} input')} shape=ellipse]")
        constants = 0
        for step in self.steps:
            label = dot_string(f"%{step.out} {step.rule.name}")
            lines.append(f"\tv{step.out} [label={label}]")
            for a in step.args:
                if isinstance(a, Const):
                    constants += 1
                    text = dot_string(_name(a))
                    lines.append(f"\tc{constants} [label={text} shape=plaintext]")
                    lines.append(f"\tc{constants} -> v{step.out}")
                else:
                    lines.append(f"\tv{a} -> v{step.out}")
        for n, o in enumerate(self.outputs):
            lines.append(f"\tout{n} [label={dot_string(f'output {n}')} shape=ellipse]")
            if not isinstance(o, Const):
                lines.append(f"\tv{o} -> out{n}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def compile(self) -> Callable[[Sequence[float]], list[Any]]:
        """Generate and compile the program's Python (once); returns ``program(inputs)``."""
        if self._run is None:
            source = scalar_source(self.n_inputs, self.steps, self.guards, self.outputs)
            self._run = source.compile()
        return self._run

    def run(self, inputs: Sequence[float]) -> list[Any]:
        """The flat outputs at ``inputs`` (floats, in order); ``GuardFailed`` if a guard fails."""
        run = self._run if self._run is not None else self.compile()
        return run(inputs)

    def array_function(self, xp: Any, batched: frozenset[int]) -> Callable[..., Any]:
        """The program over columns of a batch (the array dialect; see pyarrays)."""
        key = (id(xp), batched)
        found = self._arrays.get(key)
        if found is None:
            source = array_source(
                self.n_inputs, self.steps, self.guards, self.outputs, batched=set(batched)
            )
            found = self._arrays[key] = source.compile(xp)
        return found

    def finite(self, flat: list[Any]) -> bool:
        """Whether the computed outputs of a replay are finite (one C-level sum).

        A sum of finite floats can overflow to inf: then the call is simply
        left to the eager path, which gives the same finite results.
        """
        if self._no_computed:
            return True
        values = flat if self._computed is None else self._computed(flat)
        total = sum(values) if isinstance(values, list | tuple) else values
        return bool(total - total == 0.0)

    def inputs_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[float] | None:
        """The program's inputs at these arguments, or None if they do not fit it.

        They fit when they have the structure traced and the same fixed
        (non-float) leaves.
        """
        leaves, tree = flatten((args, kwargs), "program: argument", static=True)
        if tree != self.in_tree:
            return None
        for k, leaf in self.fixed.items():
            if not _same(leaf, leaves[k]):
                return None
        try:
            return [float(leaves[k]) for k in self.positions]
        except (TypeError, ValueError):  # a Var, or a non-float where a float was traced
            return None

    def _misfit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Why arguments do not fit: their structure, or the first fixed leaf that differs."""
        leaves, tree = flatten((args, kwargs), "program: argument", static=True)
        if tree != self.in_tree:
            fixed = _static_difference(self.in_tree, tree)
            if fixed is not None:
                return fixed
            return structure_difference(self.in_tree, tree) or "their structure differs"
        for k, leaf in self.fixed.items():
            if not _same(leaf, leaves[k]):
                return f"fixed leaf {k} (not a float) was {leaf!r} when traced, is {leaves[k]!r}"
        return "an argument traced as a float is not one (a Var?)"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the program on new arguments of the structure it was traced with."""
        inputs = self.inputs_of(args, kwargs)
        if inputs is None:
            why = self._misfit(args, kwargs)
            raise ValueError(f"program: these arguments do not fit the traced ones: {why}")
        try:
            flat = self.run(inputs)
        except GuardFailed as failed:
            g = self.guards[failed.index]
            raise GuardError(
                f"program: guard {_name(g.a)} {g.op} {_name(g.b)} was {g.outcome} when traced "
                "and is not at these arguments: trace again (tapegrad.jit does)"
            ) from None
        return unflatten(self.out_tree, flat)

    def export(self, path: str | os.PathLike[str], arrays: bool = False, in_axes: Any = 0) -> Any:
        """Write the program as a module that does not import tapegrad (see programs.export)."""
        from tapegrad.programs.export import export

        return export(self, path, arrays=arrays, in_axes=in_axes)


def numbered(traced: Traced) -> tuple[list[Step], list[Guard], tuple[Operand, ...], bool]:
    """The traced ops pruned to what outputs and guards need, numbered ``%1 ...``.

    Returns (steps, guards, outputs, captures_vars).
    """
    tape, rec = traced.tape, traced.recorder
    captures = rec.captures_vars
    outputs_raw: list[int | Const] = []  # a tape index, or a constant returned as is
    for x in traced.out_leaves:
        if isinstance(x, Handle) and x._tape is tape:
            outputs_raw.append(x._index)
            continue
        captures = captures or isinstance(x, Handle)
        outputs_raw.append(Const(x))

    # Mark what the outputs and guards need, from the last op back.
    needed = {o for o in outputs_raw if o.__class__ is int}
    for _, _, a, b, _ in rec.guards:
        needed.update(o for o in (a, b) if o.__class__ is int)
    for index, rule, operands in reversed(rec.ops):
        # An op whose float forward may raise stays even if no output needs
        # it: f raises there, and so must a replay.
        if index in needed or may_raise(rule):
            needed.add(index)
            needed.update(o for o in operands if o.__class__ is int)

    numbers = {k: n for n, k in enumerate(traced.input_index, start=1)}

    def ref(o: Any) -> Operand:
        if o.__class__ is int:
            return numbers[o]
        return o if isinstance(o, Const) else Const(o)

    steps: list[Step] = []
    guards: list[Guard] = []
    pending = sorted(rec.guards, key=lambda g: g[0])
    g = 0
    # Common subexpressions: an op with the rule and operands of an earlier
    # one is that op (rules are pure; a reverse sweep often forms the same
    # product twice, as x * x does).
    seen: dict[tuple[Any, ...], int] = {}
    count = len(numbers)
    for position, (index, rule, operands) in enumerate(rec.ops):
        while g < len(pending) and pending[g][0] <= position:
            _, op, a, b, outcome = pending[g]
            guards.append(Guard(len(steps), op, ref(a), ref(b), outcome))
            g += 1
        if index not in needed:
            continue
        args = tuple(ref(o) for o in operands)
        key = (rule, *(_key(a) for a in args))
        earlier = seen.get(key)
        if earlier is not None:
            numbers[index] = earlier
            continue
        count += 1
        numbers[index] = seen[key] = count
        steps.append(Step(count, rule, args))
    for _, op, a, b, outcome in pending[g:]:
        guards.append(Guard(len(steps), op, ref(a), ref(b), outcome))
    return steps, guards, tuple(ref(o) for o in outputs_raw), captures


def _key(operand: Operand) -> Any:
    """An operand as a key: a value number, or a constant with its sign (0.0 is not -0.0)."""
    if isinstance(operand, Const):
        v = operand.value
        if isinstance(v, float):
            return ("c", v, math.copysign(1.0, v))
        return ("o", id(v))
    return operand


# Output objects that are values: handing the same one out again is safe.
_PLAIN = (str, bytes, int, float, complex, bool, type(None))


def _has_opaque(tree: TreeDef) -> bool:
    """Whether a structure holds a static leaf that is not a plain immutable value."""
    if tree.kind == "static":
        return not isinstance(tree.keys[0], _PLAIN)
    return any(_has_opaque(child) for child in tree.children)


def _static_difference(traced: TreeDef, given: TreeDef) -> str | None:
    """The first fixed (non-numeric) argument whose value differs, if that is the difference."""
    if traced.kind == "static" and given.kind == "static":
        old, new = traced.keys[0], given.keys[0]
        return None if _same(old, new) else f"a fixed argument was {old!r} when traced, is {new!r}"
    if traced.kind != given.kind or len(traced.children) != len(given.children):
        return None
    for a, b in zip(traced.children, given.children):
        found = _static_difference(a, b)
        if found is not None:
            return found
    return None


def _op_name(name: str) -> str:
    """An op's name as one word of the listing: a custom primitive's name quoted if need be."""
    if name.isprintable() and not any(c.isspace() for c in name):
        return name
    return repr(name)


def _name(o: Operand) -> str:
    if isinstance(o, Const):
        v = o.value
        return repr(v) if v.__class__ in (float, int, bool) else f"<{type(v).__name__}>"
    return f"%{o}"


def _same(a: Any, b: Any) -> bool:
    """Whether two fixed leaves are the same: equal and of the same type (1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays: ambiguous truth value
        return a is b
