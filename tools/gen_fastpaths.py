"""Generate ``tapegrad/_fastpaths.py``: Var's operators with inlined records, from SPEC.

Every operation could go through the generic record
(:func:`tapegrad.record.record`); for the hottest primitives and operand kinds
the record is inlined into the operator instead, which takes about a fifth
off each op (docs/engine.md has the measurement). Pasted by hand, such copies
drift; so they are generated from the one table below, as PyTorch generates
its autograd code from ``derivatives.yaml``, and
``tests/test_fastpaths.py`` checks that (1) the checked-in module is what this
script generates and (2) every fast path records exactly the entry the
generic record would, bit for bit.

Usage::

    python tools/gen_fastpaths.py          # rewrite tapegrad/_fastpaths.py
    python tools/gen_fastpaths.py --check  # exit 1 if it is out of date

A row of SPEC is one primitive and one operand kind:

* ``operands``: ``"var var"`` (two Vars: intermediates of this thread's open
  tape, or a level-0 leaf with one), ``"var const"`` (a Var and a float or
  int), ``"const var"`` (the reflected operator), ``"var"`` (unary);
* ``when``: an extra condition on the operand values ``a`` (self), ``b``
  (other Var) or ``c`` (the constant, as a float), under which the formulas
  below equal the rule's; when it fails, the generic record takes over (and
  raises the rule's error, such as ZeroDivisionError, with its message);
* ``compute``: Python statements that set ``out`` (the value) and the partial
  of each Var operand, ``pa`` (for self) and ``pb`` (for other);
* ``raises``: an exception that ``compute`` may raise (overflow), on which the
  generic record takes over.

The ownership check (:func:`tapegrad.context.may_append`) appears once per
operand kind in the templates below, as ``tape.writer == get_ident()``.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "tapegrad" / "_fastpaths.py"


@dataclass(frozen=True)
class Row:
    """One fast path: a method, its rule, the operand kind, and the float formulas."""

    method: str
    rule: str
    operands: str
    compute: str
    when: str = ""
    raises: str = ""  # an exception of compute that hands over to the generic record


# fmt: off
SPEC: list[Row] = [
    # method          rule     operands      compute                                   when
    Row("__add__",     "add",  "var var",    "out = a + b; pa = 1.0; pb = 1.0"),
    Row("__add__",     "add",  "var const",  "out = a + c; pa = 1.0"),
    Row("__radd__",    "add",  "const var",  "out = c + a; pa = 1.0"),
    Row("__sub__",     "sub",  "var var",    "out = a - b; pa = 1.0; pb = -1.0"),
    Row("__sub__",     "sub",  "var const",  "out = a - c; pa = 1.0"),
    Row("__rsub__",    "sub",  "const var",  "out = c - a; pa = -1.0"),
    Row("__mul__",     "mul",  "var var",    "out = a * b; pa = b; pb = a"),
    Row("__mul__",     "mul",  "var const",  "out = a * c; pa = c"),
    Row("__rmul__",    "mul",  "const var",  "out = c * a; pa = c"),
    Row("__truediv__", "div",  "var var",    "out = a / b; pa = 1.0 / b; pb = -out / b",
        "b.__class__ is float and b != 0.0"),
    Row("__truediv__", "div",  "var const",  "out = a / c; pa = 1.0 / c",   "c != 0.0"),
    Row("__rtruediv__", "div", "const var",  "out = c / a; pa = -out / a",
        "a.__class__ is float and a != 0.0"),
    # x ** 2 for any float x (a square never raises), and x ** c for a float
    # x > 0, or x < 0 with an integral c: no edge cases there (zero bases and
    # domain errors are the rule's business); the slope is the rule's own
    # helper (scaled_pow), except for the common square.
    Row("__pow__",     "pow",  "var const",
        "if c == 2.0:\n    out = a * a\n    pa = 2.0 * a\n"
        "else:\n    out = power(a, c)\n    pa = scaled_pow(c, a, c - 1.0)",
        "a.__class__ is float and (c == 2.0 or a > 0.0 or (a < 0.0 and c.is_integer()))",
        "OverflowError"),
    Row("__neg__",     "neg",  "var",        "out = -a; pa = -1.0"),
    Row("relu",        "relu", "var",
        "out = a if a > 0.0 else 0.0; pa = 1.0 if a > 0.0 else 0.0", "a.__class__ is float and a == a"),
    Row("tanh",        "tanh", "var",        "out = tanh(a); pa = 1.0 - out * out",
        "a.__class__ is float"),
    Row("exp",         "exp",  "var",        "out = exp(a); pa = out",
        "a.__class__ is float and a < 700.0"),
]
# fmt: on

# The record of one entry, inlined; {i} {j} {pi} {pj} name the operands.
RECORD = """\
k = len(tape.in1)
tape.rules.append({rule})
tape.in1.append({i})
tape.in2.append({j})
tape.p1.append({pi})
tape.p2.append({pj})
tape.vals.append(out)
v = Node()
v.data = out
v._tape = tape
v._index = k
v._keep = keep
if k >= tape.limit:
    tape.seal()
return v"""

# The operand kinds: when a kind applies (the first line), the operand values
# a, b, c read; then, once the row's `when` holds, `locate` finds the entry
# indices (registering a leaf on the chunk: only then, so that an op handed
# over to the generic record leaves no trace) and the chunks to keep.
Kind = tuple[str, str]

# Nodes on this thread's open tape, any level.
NODE_NODE: Kind = (
    """\
if other._tape is tape and tape.writer == get_ident():
    a = self.data
    b = other.data
""",
    """\
i = self._index
j = other._index
keep = self._keep
if other._keep is not keep:
    keep = merge_keeps(keep, other._keep)
""",
)

# A level-0 leaf (a weight) with a Node of this thread's open chunk: half the
# ops of an MLP. The leaf is registered on the chunk once.
LEAF_NODE: Kind = (
    """\
elif tape is None and not other._tape.level and other._tape.writer == get_ident():
    tape = other._tape
    a = self.data
    b = other.data
""",
    """\
reg = self._reg
if reg is not None and reg[0] is tape.serial:
    i = reg[1]
else:
    i = tape.index_of(self)
j = other._index
keep = other._keep
""",
)

NODE_LEAF: Kind = (
    """\
if tape is not None and not tape.level and tape.writer == get_ident():
    a = self.data
    b = other.data
""",
    """\
i = self._index
reg = other._reg
if reg is not None and reg[0] is tape.serial:
    j = reg[1]
else:
    j = tape.index_of(other)
keep = self._keep
""",
)

# Two leaves (a weight times an input, p * p): on this thread's open chunk.
LEAF_LEAF: Kind = (
    """\
elif tape is None:
    a = self.data
    b = other.data
""",
    """\
tape = ambient()
reg = self._reg
if reg is not None and reg[0] is tape.serial:
    i = reg[1]
else:
    i = tape.index_of(self)
reg = other._reg
if reg is not None and reg[0] is tape.serial:
    j = reg[1]
else:
    j = tape.index_of(other)
keep = None
""",
)

# Level 0, anything else: a Var of an older chunk (or of another thread's
# chunk) with a leaf or a Var of any chunk. Each is imported into this
# thread's open chunk (a cross-chunk value used again and again took the
# generic record, ~4x an op, on every use).
MIXED: Kind = (
    """\
elif (tape is None or not tape.level) and not other._tape.level:
    a = self.data
    b = other.data
""",
    """\
tape = ambient()
i = tape.index_of(self)
j = tape.index_of(other)
keep = merge_keeps(keep_of(self, tape), keep_of(other, tape))
""",
)

MIXED_LEAF: Kind = (
    """\
elif not tape.level:
    a = self.data
    b = other.data
""",
    """\
tape = ambient()
i = tape.index_of(self)
j = tape.index_of(other)
keep = keep_of(self, tape)
""",
)

MIXED_CONST: Kind = (
    """\
elif tape is None or not tape.level:
    a = self.data
    c = other if cls is float else float(other)
""",
    """\
tape = ambient()
i = tape.index_of(self)
keep = keep_of(self, tape)
""",
)

MIXED_UNARY: Kind = (
    """\
elif tape is None or not tape.level:
    a = self.data
""",
    """\
tape = ambient()
i = tape.index_of(self)
keep = keep_of(self, tape)
""",
)

NODE_CONST: Kind = (
    """\
if tape is not None and tape.writer == get_ident():
    a = self.data
    c = other if cls is float else float(other)
""",
    """\
i = self._index
keep = self._keep
""",
)

NODE: Kind = (
    """\
tape = self._tape
if tape is not None and tape.writer == get_ident():
    a = self.data
""",
    """\
i = self._index
keep = self._keep
""",
)


def _kind(kind: Kind, row: Row, record: str, generic: str) -> str:
    """A kind's branch: its test and reads, then the row's guarded computation."""
    head, locate = kind
    return head + _indent(_compute(row, locate.rstrip("\n"), record, generic), 4)


HEADER = '''\
"""GENERATED by tools/gen_fastpaths.py from its SPEC. Do not edit: change SPEC, rerun it.

``Var`` is :class:`tapegrad.handle.Handle` (what a Var is) plus the arithmetic
operators below. Each operator first tries the fast paths of its row(s) in
SPEC: operands of the kinds listed there, on a tape this thread may append
to, with the record inlined. Anything else goes through the generic record,
``self._record(rule, args)`` (:func:`apply`). tests/test_fastpaths.py checks
that both record the same entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import exp, tanh
from math import pow as power
from typing import TYPE_CHECKING, Any

from tapegrad.chunks import Keep, keep_of, merge_keeps
from tapegrad.context import ambient, get_ident
from tapegrad.handle import Handle, is_real, value_of
from tapegrad.record import record
from tapegrad.rules import RULES, Rule
from tapegrad.tape import Tape

__all__ = ["Var", "Value", "Node", "TracedNode", "apply", "node_at", "dot"]

{rules}
scaled_pow = _SCALED_POW.forward  # the slope of x ** c on floats (see tapegrad.rules)


class Var(Handle):
    """A scalar that records every operation on it, so derivatives can be taken.

    ``Value`` is the same class under micrograd's name.

    >>> from tapegrad import Value
    >>> a = Value(-4.0); b = Value(2.0)
    >>> c = a * b + b**3
    >>> c.backward()
    >>> a.grad, b.grad
    (2.0, 8.0)
    """

    __slots__ = ()

    def _record(self, rule: Rule, args: tuple[Any, ...]) -> Var:
        return apply(rule, args)

    def __pos__(self) -> Var:
        return self
'''

FOOTER = '''
class Node(Var):
    """A Var made by an operation rather than by the user; it behaves the same.

    Its ``__init__`` is ``object.__init__``, so ``Node()`` runs entirely in C
    (cheaper than ``object.__new__(Var)``, on every op); and the fast paths
    tell leaves (``Var``) from intermediates (``Node``) by one class check.
    It calls itself ``Var`` in messages: users never meet the name Node.
    """

    __slots__ = ()
    if TYPE_CHECKING:

        def __init__(self) -> None: ...

    else:
        __init__ = object.__init__


class TracedNode(Node):
    """A Var of a tape that :func:`tapegrad.trace` records.

    Reading its value (``.data``) is noted on the trace: a recorded program
    replays ops, so a value read in Python and used as a number would be
    replayed as the constant it was (``tapegrad.jit`` then keeps no program;
    :func:`tapegrad.stop_gradient` is the recorded way to take a value).
    """

    __slots__ = ()

    @property
    def data(self) -> float:
        """The value, read at trace time (noted: see the class docstring)."""
        tape = self._tape
        if tape is not None and tape.trace is not None:
            tape.trace.read_values = True
        return value_of(self)  # type: ignore[no-any-return]

    @data.setter
    def data(self, value: float) -> None:
        raise TypeError("the value of a traced Var cannot be set")


Node.__name__ = Node.__qualname__ = "Var"
TracedNode.__name__ = TracedNode.__qualname__ = "Var"
Var._leaf_class = Var
Value = Var
_set_data = Handle.__dict__["data"].__set__


def apply(rule: Rule, args: tuple[Any, ...]) -> Var:
    """Record ``rule`` applied to ``args`` (Vars or real numbers) and return its Var.

    The generic path of every operation (:func:`tapegrad.record.record`).
    """
    tape, k, out, keep = record(rule, args)
    return node_at(tape, k, out, keep)


def node_at(tape: Tape, index: int, value: Any, keep: Keep = None) -> Var:
    """The Var of entry ``index`` of ``tape``, whose value is ``value``."""
    v = Node() if tape.trace is None else TracedNode()
    _set_data(v, value)
    v._tape = tape
    v._index = index
    v._keep = keep
    return v


def _operand(x: object) -> bool:
    """Whether ``x`` may take part in an operation with a Var."""
    return isinstance(x, Handle) or is_real(x)


def dot(xs: Sequence[Any], ys: Sequence[Any], start: Any = 0.0) -> Any:
    """``start + xs[0] * ys[0] + xs[1] * ys[1] + ...``, recorded in one call.

    It records exactly the entries of the loop ``acc = acc + x * y`` (a mul
    and an add per term, so pictures, listings and gradients are the same),
    without an operator call and a Var per term. The operand kinds of a neuron
    take the fast loop: ``xs`` leaves (weights) or intermediates of this
    thread's open chunk, ``ys`` such intermediates or floats, ``start`` a leaf,
    an intermediate or a number. Anything else (a transform's Vars, numpy
    scalars) hands over to that loop, from the sum so far.

    >>> a, b = Var(2.0), Var(3.0)
    >>> out = dot([a, b], [10.0, a], start=1.0)   # 1 + 10 a + b a
    >>> out.data
    27.0
    >>> out.backward(); a.grad, b.grad
    (13.0, 2.0)
    """
    if len(xs) != len(ys):
        raise ValueError(f"dot: sequences of different lengths ({len(xs)} and {len(ys)})")
    if not xs:
        return start
    tape = ambient()
    serial = tape.serial
    cls = start.__class__
    keep: Any = None
    pending: Any = None  # a leaf start: registered at the first add, as the loop's `+` does
    if cls is Var:
        pending = start
        i_acc = -1
        p_acc = 1.0
        value = start.data
    elif cls is Node and start._tape is tape:
        i_acc = start._index
        p_acc = 1.0
        value = start.data
        keep = start._keep
    elif cls is float or cls is int:
        i_acc = 0  # a constant: the first add has no edge to it
        p_acc = 0.0
        value = float(start)
    else:
        return _dot_loop(xs, ys, start)
    rules, in1, in2 = tape.rules.append, tape.in1.append, tape.in2.append
    p1, p2, vals = tape.p1.append, tape.p2.append, tape.vals.append
    limit = tape.limit
    for n in range(len(xs)):
        x = xs[n]
        y = ys[n]
        cls_x = x.__class__
        cls_y = y.__class__
        x_node = cls_x is Node and x._tape is tape
        y_node = cls_y is Node and y._tape is tape
        if not (cls_x is Var or x_node) or not (y_node or cls_y is float or cls_y is int):
            # hand over to the operator loop from the sum so far
            acc = start if n == 0 else node_at(tape, i_acc, value, keep)
            return _dot_loop(xs[n:], ys[n:], acc)
        if x_node:
            ix = x._index
            keep_term = x._keep
        else:
            reg = x._reg
            ix = reg[1] if reg is not None and reg[0] is serial else tape.index_of(x)
            keep_term = None
        vx = x.data
        if y_node:
            iy = y._index
            vy = y.data
            py = vx
            if y._keep is not None:
                keep_term = merge_keeps(keep_term, y._keep)
        else:
            iy = 0
            vy = y if cls_y is float else float(y)
            py = 0.0
        product = vx * vy
        k = k_mul = len(tape.in1)
        rules(_MUL)  # the entry of x * y (a number's index is 0)
        in1(ix)
        in2(iy)
        p1(vy)
        p2(py)
        vals(product)
        if k >= limit:  # the loop seals here: the rest starts on a new chunk
            tape.seal()
            term = node_at(tape, k, product, keep_term)
            acc = start if n == 0 else node_at(tape, i_acc, value, keep)
            return _dot_loop(xs[n + 1 :], ys[n + 1 :], acc + term)
        if pending is not None:
            reg = pending._reg
            i_acc = reg[1] if reg is not None and reg[0] is serial else tape.index_of(pending)
            pending = None
        keep = merge_keeps(keep, keep_term) if keep_term is not None else keep
        value = value + product
        k = len(tape.in1)
        rules(_ADD)  # the entry of acc + (x * y)
        in1(i_acc)
        in2(k_mul)
        p1(p_acc)
        p2(1.0)
        vals(value)
        i_acc = k
        p_acc = 1.0
        if k >= limit:
            tape.seal()
            return _dot_loop(xs[n + 1 :], ys[n + 1 :], node_at(tape, k, value, keep))
    return node_at(tape, i_acc, value, keep)


def _dot_loop(xs: Sequence[Any], ys: Sequence[Any], start: Any) -> Any:
    """``dot`` by operators: the general path (levels, outer Vars, numpy scalars)."""
    total = start
    for x, y in zip(xs, ys):
        total = total + x * y
    return total
'''


def _indent(text: str, spaces: int) -> str:
    return textwrap.indent(text, " " * spaces)


def _compute(row: Row, locate: str, record: str, generic: str) -> str:
    """The guarded location, computation and record of one row, as a block.

    A partial that is a literal (``pa = 1.0``) goes straight into the record
    (a local fewer per op).
    """
    lines = []
    for statement in row.compute.split("; "):
        name, _, value = statement.partition(" = ")
        if name in ("pa", "pb") and re.fullmatch(r"-?\d+\.\d+", value):
            record = record.replace(f"append({name})", f"append({value})")
        else:
            lines.append(statement)
    compute = "\n".join(lines)
    if row.raises:
        compute = f"try:\n{_indent(compute, 4)}\nexcept {row.raises}:\n    return {generic}"
    # Compute first: a computation that hands over (overflow) must leave no trace.
    block = f"{compute}\n{locate}\n{record}"
    if row.when:
        return f"if {row.when}:\n{_indent(block, 4)}"
    return block


def _const_name(rule: str) -> str:
    return "_" + rule.upper()


def _method(method: str, rows: list[Row]) -> str:
    """One operator method from its rows (at most one per operand kind)."""
    kinds = {row.operands: row for row in rows}
    rule = _const_name(rows[0].rule)
    lines: list[str] = []
    if "var" in kinds:  # unary
        row = kinds["var"]
        record = RECORD.format(rule=rule, i="i", j="0", pi="pa", pj="0.0")
        generic = f"self._record({rule}, (self,))"
        lines.append(_kind(NODE, row, record, generic).rstrip("\n"))
        lines.append(_kind(MIXED_UNARY, row, record, generic).rstrip("\n"))
        lines.append(f"return {generic}")
        doc = f"{row.rule}(self), with a fast path for intermediates; see RULES[{row.rule!r}]."
        return _def(method, "self", doc, "\n".join(lines))

    const_row = kinds.get("var const") or kinds.get("const var")
    reflected = const_row is not None and const_row.operands == "const var"
    generic = f"self._record({rule}, {'(other, self)' if reflected else '(self, other)'})"
    lines.append("tape = self._tape")
    lines.append("cls = other.__class__")
    if "var var" in kinds:
        row = kinds["var var"]
        both = RECORD.format(rule=rule, i="i", j="j", pi="pa", pj="pb")
        lines.append("if cls is Node:")
        lines.append(_indent(_kind(NODE_NODE, row, both, generic), 4).rstrip("\n"))
        lines.append(_indent(_kind(LEAF_NODE, row, both, generic), 4).rstrip("\n"))
        lines.append(_indent(_kind(MIXED, row, both, generic), 4).rstrip("\n"))
        lines.append("elif cls is Var:")
        lines.append(_indent(_kind(NODE_LEAF, row, both, generic), 4).rstrip("\n"))
        lines.append(_indent(_kind(LEAF_LEAF, row, both, generic), 4).rstrip("\n"))
        lines.append(_indent(_kind(MIXED_LEAF, row, both, generic), 4).rstrip("\n"))
    if const_row is not None:
        record = RECORD.format(
            rule=rule,
            i="0" if reflected else "i",
            j="i" if reflected else "0",
            pi="0.0" if reflected else "pa",
            pj="pa" if reflected else "0.0",
        )
        keyword = "elif" if "var var" in kinds else "if"
        lines.append(f"{keyword} cls is float or cls is int:")
        lines.append(_indent(_kind(NODE_CONST, const_row, record, generic), 4).rstrip("\n"))
        lines.append(_indent(_kind(MIXED_CONST, const_row, record, generic), 4).rstrip("\n"))
        lines.append("elif not _operand(other):")
    else:
        lines.append("if not _operand(other):")
    lines.append("    return NotImplemented")
    lines.append(f"return {generic}")
    doc = f"{rows[0].rule}, with fast paths for {' and '.join(kinds)}; see RULES[{rows[0].rule!r}]."
    return _def(method, "self, other: Any", doc, "\n".join(lines))


def _def(method: str, params: str, doc: str, body: str) -> str:
    """A method definition with a one-line docstring."""
    quotes = '"' * 3
    return f"def {method}({params}) -> Var:\n    {quotes}{doc}{quotes}\n{_indent(body, 4)}\n"


def generate() -> str:
    """The text of tapegrad/_fastpaths.py."""
    methods: dict[str, list[Row]] = {}
    for row in SPEC:
        methods.setdefault(row.method, []).append(row)
    rule_names = sorted({row.rule for row in SPEC} | {"scaled_pow", "add", "mul"})
    rules = "\n".join(f'{_const_name(name)} = RULES["{name}"]' for name in rule_names)
    parts = [HEADER.format(rules=rules)]
    for method, rows in methods.items():
        parts.append(_indent(_method(method, rows), 4))
    parts.append(FOOTER)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) tapegrad/_fastpaths.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python tools/gen_fastpaths.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
