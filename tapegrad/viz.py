"""Pictures and listings of the graph behind a Var: ``draw_dot``, ``to_dot``, ``listing``.

micrograd draws a graph by walking Python objects (``_prev`` sets) from the
output. tapegrad keeps no such objects: the graph *is* the tape. So these
functions walk the tape from the output's index backward through the input
indices ``in1``/``in2`` of each entry, following imports into older chunks of
the ambient tape. That works even when every intermediate Var is long gone
(``draw_dot(model(x))`` keeps nothing but the output), and it never recurses.

* :func:`listing` gives text, one op per line in execution order, with label,
  expression, value and gradient (like the Go port's ``DisplayGraph``).
* :func:`to_dot` gives Graphviz DOT source, with no dependency.
* :func:`draw_dot` is micrograd's function: a ``graphviz.Digraph`` when the
  ``graphviz`` package is installed (it displays in Jupyter), the DOT text
  otherwise.
* :func:`render` writes a picture file with Graphviz's ``dot`` program.

>>> from tapegrad import Value
>>> a = Value(2.0, label="a"); b = Value(-3.0, label="b")
>>> e = a * b; e.label = "e"
>>> e.backward()
>>> print(listing(e))
node  label  op        data     grad
%1    a      leaf    2.0000  -3.0000
%2    b      leaf   -3.0000   2.0000
%3    e      a * b  -6.0000   1.0000

What is drawn
-------------
Leaves show the label, current ``.data`` and ``.grad`` of the Var the user
holds; an op's entry shows its label (``v.label = ...``), value and gradient
as recorded. Constants (the ``2`` in ``2 * x``) are not stored on the tape:
they are folded into the op's local derivative, so the picture shows the op
with one incoming edge and the listing writes ``const``. A leaf that appears
on several chunks of the tape, or a value imported from an older chunk, is one
node. A primitive with more than two inputs (recorded as a chain of entries)
is one node.
"""

from __future__ import annotations

import importlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tapegrad.engine import CONT, IMPORT, INPUT, LEAF, NULL, Tape, Var
from tapegrad.handle import concrete

__all__ = ["GraphNode", "graph", "listing", "to_dot", "draw_dot", "render"]

_INFIX = {"+", "-", "*", "/", "**"}
_PLAIN = re.compile(r"[\w.\[\]']+")  # labels written as they are in expressions


@dataclass(frozen=True)
class GraphNode:
    """One node of the graph behind a Var, as :func:`graph` returns it.

    ``id`` counts from 1 in execution order (inputs before the ops that use
    them); ``inputs`` holds the ids of an op's operands, ``None`` for a
    constant; ``op`` is the rule's name (``"leaf"`` and ``"input"`` for
    leaves and transform arguments) and ``symbol`` how it is drawn.
    """

    id: int
    label: str
    data: float
    grad: float
    op: str
    symbol: str
    inputs: tuple[int | None, ...]

    @property
    def is_leaf(self) -> bool:
        """True for a Var the user created (or an argument of a transform)."""
        return self.op in ("leaf", "input")


def _float(x: Any) -> float:
    """A value or gradient as a float (inside transforms they may be Vars)."""
    return concrete(x)


def graph(v: Var) -> list[GraphNode]:
    """The nodes ``v`` depends on, ``v`` included, inputs before their users.

    >>> from tapegrad import Value
    >>> x = Value(3.0, label="x")
    >>> [(n.id, n.op, n.inputs) for n in graph((x * x).tanh())]
    [(1, 'leaf', ()), (2, 'mul', (1, 1)), (3, 'tanh', (2,))]
    """
    if not isinstance(v, Var):
        raise TypeError(f"graph() needs a Var, not {type(v).__name__}: {v!r}")
    tape = v._tape
    if tape is None:  # a leaf on its own
        return [GraphNode(1, v.label, _float(v.data), _float(v.grad), "leaf", "", ())]

    # Pass 1, newest chunk first: mark the entries v depends on (a reverse
    # sweep with booleans instead of adjoints) and queue imported entries.
    pending: dict[int, tuple[Tape, set[int]]] = {tape.serial: (tape, {v._index})}
    marked: list[tuple[Tape, list[int]]] = []
    while pending:
        tape, seeds = pending.pop(max(pending))
        needed = bytearray(len(tape))
        for k in seeds:
            needed[k] = 1
        in1, in2 = tape.in1, tape.in2
        keep: list[int] = []
        for k in range(max(seeds), 0, -1):
            if not needed[k]:
                continue
            keep.append(k)
            if tape.rule_at(k) is IMPORT:
                found = tape.imported(k)
                if found is not None:  # the Var drawn keeps every chunk it reaches
                    older, idx = found
                    pending.setdefault(older.serial, (older, set()))[1].add(idx)
                continue
            i = in1[k]
            if i:
                needed[i] = 1
            j = in2[k]
            if j:
                needed[j] = 1
        keep.reverse()
        marked.append((tape, keep))

    # Pass 2, oldest chunk first: one node per entry, aliasing leaves seen on
    # several chunks and imports to the node they refer to.
    nodes: list[GraphNode] = []
    ids: dict[tuple[int, int], int] = {}  # (tape serial, index) -> node id
    leaf_ids: dict[int, int] = {}  # id(leaf Var) -> node id
    for tape, keep in reversed(marked):
        leaves = dict(tape.leaves)
        absorbed = {tape.in1[k] for k in keep if tape.rule_at(k) is CONT}
        for k in keep:
            rule = tape.rule_at(k)
            key = (tape.serial, k)
            if rule is IMPORT:
                found = tape.imported(k)
                if found is not None:
                    ids[key] = ids[(found[0].serial, found[1])]
                continue
            if rule is LEAF:
                leaf = leaves[k]
                known = leaf_ids.get(id(leaf))
                if known is not None:
                    ids[key] = known
                    continue
                node = GraphNode(
                    len(nodes) + 1, leaf.label, _float(leaf.data), _float(leaf.grad), "leaf", "", ()
                )
                leaf_ids[id(leaf)] = node.id
            elif k in absorbed or rule is NULL:
                continue  # part of a chain of entries drawn as one node
            else:
                name, symbol, inputs = _op_of(tape, k, ids)
                node = GraphNode(
                    len(nodes) + 1,
                    tape.labels.get(k, ""),
                    _float(tape.vals[k]),
                    _float(tape.grad_at(k)),
                    name,
                    symbol,
                    inputs,
                )
            ids[key] = node.id
            nodes.append(node)
    return nodes


def _op_of(
    tape: Tape, k: int, ids: dict[tuple[int, int], int]
) -> tuple[str, str, tuple[int | None, ...]]:
    """Name, symbol and operand ids of the op at entry ``k``."""
    rule = tape.rule_at(k)
    if rule is INPUT:
        return "input", "", ()
    serial = tape.serial
    in1, in2 = tape.in1, tape.in2
    if rule is CONT:  # a 3+ input primitive: walk the chain down to its head
        extra: list[int] = []
        head = k
        while tape.rule_at(head) is CONT:
            extra.append(in2[head])
            head = in1[head]
        rule = tape.rule_at(head)
        raw = [in1[head], in2[head], *reversed(extra)]
    elif rule.arity == 1:
        raw = [in1[k]]
    else:
        raw = [in1[k], in2[k]]
    inputs = tuple(ids[(serial, i)] if i else None for i in raw)
    return rule.name, rule.symbol, inputs


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------


def _names(nodes: Sequence[GraphNode]) -> dict[int, str]:
    """How an operand is written: its label when unique in the graph, else ``%id``."""
    count: dict[str, int] = {}
    for n in nodes:
        if n.label:
            count[n.label] = count.get(n.label, 0) + 1
    names = {}
    for n in nodes:
        if n.label and count[n.label] == 1:
            # a label such as "a + b" is bracketed, so "(a + b) ** const" reads right
            names[n.id] = n.label if _PLAIN.fullmatch(n.label) else f"({n.label})"
        else:
            names[n.id] = f"%{n.id}"
    return names


def _expression(node: GraphNode, names: dict[int, str]) -> str:
    if node.is_leaf:
        return node.op
    args = ["const" if i is None else names[i] for i in node.inputs]
    if node.symbol in _INFIX and len(args) == 2:
        return f"{args[0]} {node.symbol} {args[1]}"
    if node.op == "neg":
        return f"-{args[0]}"
    return f"{node.symbol}({', '.join(args)})"


def listing(v: Var, precision: int = 4) -> str:
    """The tape behind ``v`` as text: one op per line, in execution order.

    Columns: node id, label, the op written with its operands (their labels
    when unique, else their ids; ``const`` for a constant), value and
    gradient with ``precision`` decimals.
    """
    nodes = graph(v)
    names = _names(nodes)
    rows = [("node", "label", "op", "data", "grad")]
    for n in nodes:
        rows.append(
            (
                f"%{n.id}",
                n.label,
                _expression(n, names),
                f"{n.data:.{precision}f}",
                f"{n.grad:.{precision}f}",
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    lines = []
    for row in rows:
        left = "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths[:3]))
        right = "  ".join(cell.rjust(w) for cell, w in zip(row[3:], widths[3:]))
        lines.append(f"{left}  {right}".rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Graphviz
# ---------------------------------------------------------------------------


def _quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _record_field(text: str) -> str:
    """Escape the characters that structure a record label."""
    for ch in "\\{}|<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _body(v: Var, precision: int) -> list[str]:
    """DOT statements: micrograd's record node per value, an op node per op."""
    lines: list[str] = []
    for n in graph(v):
        record = (
            f"{{ {_record_field(n.label)} | data {n.data:.{precision}f} "
            f"| grad {n.grad:.{precision}f} }}"
        )
        # The record label keeps its backslash escapes: only quotes are escaped.
        lines.append(f'n{n.id} [label="{record.replace(chr(34), chr(92) + chr(34))}" shape=record]')
        if not n.is_leaf:
            lines.append(f"n{n.id}op [label={_quote(n.symbol)}]")
            lines.append(f"n{n.id}op -> n{n.id}")
            for i in n.inputs:
                if i is not None:
                    lines.append(f"n{i} -> n{n.id}op")
    return lines


def to_dot(v: Var, rankdir: str = "LR", precision: int = 4) -> str:
    """Graphviz DOT source of micrograd's picture of the graph behind ``v``.

    Each value is a record ``{ label | data ... | grad ... }``; each op is an
    oval with its symbol, between its operands and its result. ``rankdir``
    ``"LR"`` draws left to right, as micrograd.
    """
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"rankdir must be one of LR, RL, TB, BT, not {rankdir!r}")
    body = "".join(f"\t{line}\n" for line in _body(v, precision))
    return f"digraph {{\n\tgraph [rankdir={rankdir}]\n{body}}}\n"


def draw_dot(v: Var, format: str = "svg", rankdir: str = "LR") -> Any:  # noqa: A002 (micrograd)
    """micrograd's ``draw_dot``: the picture of the graph behind ``v``.

    Returns a ``graphviz.Digraph`` (rendered inline by Jupyter, saved with
    ``.render()``) when the ``graphviz`` package is installed, else the DOT
    text of :func:`to_dot`, which any Graphviz tool can draw.
    """
    source = to_dot(v, rankdir=rankdir)  # validates v and rankdir first
    try:
        graphviz = importlib.import_module("graphviz")
    except ImportError:
        return source
    return graphviz.Digraph(
        format=format,
        graph_attr={"rankdir": rankdir},
        body=[f"\t{line}\n" for line in _body(v, 4)],
    )


def render(v: Var, path: str | Path, rankdir: str = "LR") -> Path:
    """Draw the graph behind ``v`` into ``path`` with Graphviz's ``dot`` program.

    The format comes from the file's suffix (``.svg``, ``.png``, ``.pdf`` ...).
    Raises ``RuntimeError`` when ``dot`` is not installed.
    """
    out = Path(path)
    fmt = out.suffix.lstrip(".").lower()
    if not fmt:
        raise ValueError(f"render() needs a file name with a suffix such as .svg, got {path!r}")
    import subprocess  # here, not at the top: `import tapegrad` stays light

    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(
            "render() needs Graphviz's 'dot' program, which is not installed "
            "(e.g. apt-get install graphviz, brew install graphviz); "
            "to_dot(v) gives the DOT text without it"
        )
    result = subprocess.run(
        [exe, f"-T{fmt}", "-o", str(out)],
        input=to_dot(v, rankdir=rankdir).encode(),
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"dot failed on {out}: {message}")
    return out
