"""Pictures and listings of the graph behind a Var: ``draw_dot``, ``to_dot``, ``listing``.

micrograd draws a graph by walking Python objects (``_prev`` sets) from the
output. tapegrad keeps no such objects: the graph *is* the tape. So these
functions walk the tape from the output's index backward through the input
indices ``in1``/``in2`` of each entry, following imports into older chunks of
the ambient tape. That works even when every intermediate Var is long gone
(``draw_dot(model(x))`` keeps nothing but the output), and it never recurses.

* :func:`listing` gives text, one op per line in execution order, with label,
  expression, value and gradient (like the Go port's ``DisplayGraph``). It is
  a ``str`` (a :class:`Listing`) that a notebook shows as a table.
* :func:`to_dot` gives Graphviz DOT source, with no dependency.
* :func:`draw_dot` is micrograd's function. It returns a :class:`DotGraph`
  whatever is installed, which a notebook shows as an SVG picture: drawn by
  Graphviz's ``dot`` program when ``dot`` is on the ``PATH``, else by
  tapegrad's own layered layout (:mod:`tapegrad.layered`, pure Python).
  ``.source`` is the DOT text, ``.render(path)`` writes a file. No Python
  package is needed: the ``graphviz`` package would only call the same
  ``dot`` program.
* :func:`render` writes a picture file (``.svg`` with nothing installed; other
  formats with Graphviz's ``dot`` program).

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

import html
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tapegrad import layered
from tapegrad.engine import CONT, IMPORT, INPUT, LEAF, NULL, Tape, Var
from tapegrad.handle import concrete

__all__ = [
    "GraphNode",
    "Walk",
    "walk",
    "graph",
    "node_names",
    "expression",
    "Listing",
    "listing",
    "to_dot",
    "DotGraph",
    "draw_dot",
    "render",
    "dot_string",
    "MAX_AUTO_LAYOUT_NODES",
]

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
    return walk(v).nodes


@dataclass(frozen=True)
class Walk:
    """What :func:`walk` finds: the nodes, and the tape entries they come from.

    ``chunks`` lists each tape (chunk) the graph reaches, newest first, with
    the indices of its entries that ``v`` depends on, in execution order;
    ``ids`` maps ``(tape serial, entry index)`` to the node id drawn for it
    (a leaf registered on several chunks, and an import, map to one node).
    Empty for a leaf on its own. :mod:`tapegrad.explain` reads it to sweep
    the same entries that the picture shows.
    """

    nodes: list[GraphNode]
    chunks: list[tuple[Tape, list[int]]]
    ids: dict[tuple[int, int], int]


def walk(v: Var) -> Walk:
    """The graph behind ``v`` as :func:`graph` gives it, with its tape entries."""
    if not isinstance(v, Var):
        raise TypeError(f"graph() needs a Var, not {type(v).__name__}: {v!r}")
    tape = v._tape
    if tape is None:  # a leaf on its own
        return Walk([GraphNode(1, v.label, _float(v.data), _float(v.grad), "leaf", "", ())], [], {})

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
    return Walk(nodes, marked, ids)


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


def node_names(nodes: Sequence[GraphNode]) -> dict[int, str]:
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


def expression(node: GraphNode, names: dict[int, str]) -> str:
    """How ``node``'s op is written with its operands' ``names`` (``a * b``, ``tanh(n)``).

    >>> from tapegrad import Value
    >>> x = Value(3.0, label="x")
    >>> nodes = graph(x * 2.0)
    >>> expression(nodes[1], node_names(nodes))
    'x * const'
    """
    if node.is_leaf:
        return node.op
    args = ["const" if i is None else names[i] for i in node.inputs]
    if node.symbol in _INFIX and len(args) == 2:
        return f"{args[0]} {node.symbol} {args[1]}"
    if node.op == "neg":
        return f"-{args[0]}"
    return f"{node.symbol}({', '.join(args)})"


class Listing(str):
    """The text of :func:`listing`, which a notebook shows as a table.

    A ``str`` subclass, so ``print``, comparison and string methods work as on
    the text itself; ``rows`` holds the cells, header first, and Jupyter
    renders them with ``_repr_html_``.
    """

    rows: tuple[tuple[str, ...], ...]

    def __new__(cls, text: str, rows: Sequence[Sequence[str]]) -> Listing:
        self = super().__new__(cls, text)
        self.rows = tuple(tuple(row) for row in rows)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # str's own reduction would rebuild a plain str: keep the rows
        return (Listing, (str(self), self.rows))

    def _repr_html_(self) -> str:
        """An HTML table: the label and op columns left, numbers right."""
        head, *body = self.rows
        align = ("left", "left", "left", "right", "right")
        cell = '<{tag} style="text-align: {align}; font-family: monospace">{text}</{tag}>'

        def row(cells: Sequence[str], tag: str) -> str:
            return (
                "<tr>"
                + "".join(
                    cell.format(tag=tag, align=a, text=html.escape(c)) for c, a in zip(cells, align)
                )
                + "</tr>"
            )

        lines = ["<table>", "<thead>", row(head, "th"), "</thead>", "<tbody>"]
        lines += [row(r, "td") for r in body]
        lines += ["</tbody>", "</table>"]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's text display: the table as text, not a quoted string."""
        p.text(str(self))


def listing(v: Var, precision: int = 4) -> Listing:
    """The tape behind ``v`` as text: one op per line, in execution order.

    Columns: node id, label, the op written with its operands (their labels
    when unique, else their ids; ``const`` for a constant), value and
    gradient with ``precision`` decimals. The result is a ``str``; in a
    notebook it shows as a table.

    >>> from tapegrad import Value
    >>> x = Value(3.0, label="x")
    >>> y = x * x + 1.0; y.label = "y"
    >>> y.backward()
    >>> print(listing(y, precision=1))
    node  label  op          data  grad
    %1    x      leaf         3.0   6.0
    %2           x * x        9.0   1.0
    %3    y      %2 + const  10.0   1.0
    """
    nodes = graph(v)
    names = node_names(nodes)
    rows = [("node", "label", "op", "data", "grad")]
    for n in nodes:
        rows.append(
            (
                f"%{n.id}",
                n.label,
                expression(n, names),
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
    return Listing("\n".join(lines), rows)


# ---------------------------------------------------------------------------
# Graphviz
# ---------------------------------------------------------------------------


def dot_string(text: str) -> str:
    """``text`` as a DOT double-quoted string (quotes, backslashes, newlines escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _record_field(text: str) -> str:
    """Escape the characters that structure a record label."""
    for ch in "\\{}|<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _body(nodes: Sequence[GraphNode], precision: int) -> list[str]:
    """DOT statements: micrograd's record node per value, an op node per op."""
    lines: list[str] = []
    for n in nodes:
        record = (
            f"{{ {_record_field(n.label)} | data {n.data:.{precision}f} "
            f"| grad {n.grad:.{precision}f} }}"
        )
        # The record label keeps its backslash escapes: only quotes are escaped.
        lines.append(f'n{n.id} [label="{record.replace(chr(34), chr(92) + chr(34))}" shape=record]')
        if not n.is_leaf:
            lines.append(f"n{n.id}op [label={dot_string(n.symbol)}]")
            lines.append(f"n{n.id}op -> n{n.id}")
            for i in n.inputs:
                if i is not None:
                    lines.append(f"n{i} -> n{n.id}op")
    return lines


_RANKDIRS = ("LR", "RL", "TB", "BT")


def _dot_source(nodes: Sequence[GraphNode], rankdir: str, precision: int) -> str:
    if rankdir not in _RANKDIRS:
        raise ValueError(f"rankdir must be one of LR, RL, TB, BT, not {rankdir!r}")
    body = "".join(f"\t{line}\n" for line in _body(nodes, precision))
    return f"digraph {{\n\tgraph [rankdir={rankdir}]\n{body}}}\n"


def to_dot(v: Var, rankdir: str = "LR", precision: int = 4) -> str:
    """Graphviz DOT source of micrograd's picture of the graph behind ``v``.

    Each value is a record ``{ label | data ... | grad ... }``; each op is an
    oval with its symbol, between its operands and its result. ``rankdir``
    ``"LR"`` draws left to right, as micrograd.

    >>> from tapegrad import Value
    >>> print(to_dot(Value(1.5, label="x")).replace("\\t", "  "))
    digraph {
      graph [rankdir=LR]
      n1 [label="{ x | data 1.5000 | grad 0.0000 }" shape=record]
    }
    <BLANKLINE>
    """
    if rankdir not in _RANKDIRS:  # before walking the tape
        raise ValueError(f"rankdir must be one of LR, RL, TB, BT, not {rankdir!r}")
    return _dot_source(graph(v), rankdir, precision)


_NO_DOT = (
    "Graphviz's 'dot' program is not installed "
    "(apt-get install graphviz, brew install graphviz or conda install graphviz)"
)

#: Above this many nodes a notebook without ``dot`` shows the DOT text instead
#: of laying the graph out itself: the built-in layout takes 0.20 s at 977
#: nodes and 1.53 s at 3,541 (the demo's MLP on 1 and 5 points; medians,
#: pyperf), growing faster than linearly, and a display should not stall a
#: notebook.
#: ``render(path)`` to an ``.svg`` file draws any size.
MAX_AUTO_LAYOUT_NODES = 4000

# File suffixes written as DOT text, without running dot.
_DOT_SUFFIXES = ("dot", "gv")


def _run_dot(source: str, fmt: str) -> bytes:
    """``source`` drawn by Graphviz's ``dot`` in format ``fmt``."""
    import subprocess  # here, not at the top: `import tapegrad` stays light

    exe = shutil.which("dot")  # looked up on each call: PATH may change in a session
    if exe is None:
        raise RuntimeError(f"{_NO_DOT}; the DOT text and .svg pictures need nothing")
    result = subprocess.run(
        [exe, f"-T{fmt}"], input=source.encode(), capture_output=True, check=False
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"dot -T{fmt} failed: {message}")
    return result.stdout


class DotGraph:
    """micrograd's picture of a graph, as :func:`draw_dot` returns it.

    One type whatever is installed. In a notebook it shows as an SVG picture
    (drawn once, on first display): by Graphviz's ``dot`` program when it is
    on the ``PATH``, else by tapegrad's own layered layout
    (:func:`tapegrad.layered.svg`), so pictures need nothing but tapegrad.
    ``source`` is the DOT text, ``str(g)`` too; ``render(path)`` writes a
    picture file.

    >>> from tapegrad import Value
    >>> x = Value(2.0, label="x")
    >>> g = draw_dot(x * x)
    >>> g
    DotGraph(2 nodes, 1 op)
    >>> g.source.splitlines()[2].strip()
    'n1 [label="{ x | data 2.0000 | grad 0.0000 }" shape=record]'
    """

    source: str
    """The DOT text, as :func:`to_dot` gives it."""
    format: str
    """The format :meth:`render` gives a path without a suffix; :meth:`pipe`'s default."""
    nodes: int
    """How many values (leaves and op results) the picture shows."""
    ops: int
    """How many of them are results of ops."""

    def __init__(
        self,
        source: str,
        format: str = "svg",  # noqa: A002
        nodes: int = 0,
        ops: int = 0,
        *,
        graph_nodes: Sequence[GraphNode] | None = None,
        rankdir: str = "LR",
    ) -> None:
        self.source = source
        self.format = format
        self.nodes = nodes
        self.ops = ops
        # what the built-in layout draws without dot (None: DOT text only)
        self._graph = None if graph_nodes is None else tuple(graph_nodes)
        self._rankdir = rankdir
        self._svg: str | None = None

    def _builtin_svg(self) -> str | None:
        """The picture by tapegrad's own layout, or None for a DotGraph built from text."""
        if self._graph is None:
            return None
        return layered.svg(self._graph, self._rankdir)

    def __repr__(self) -> str:
        ops = "op" if self.ops == 1 else "ops"
        nodes = "node" if self.nodes == 1 else "nodes"
        return f"DotGraph({self.nodes} {nodes}, {self.ops} {ops})"

    def __str__(self) -> str:
        return self.source

    def pipe(self, format: str | None = None) -> bytes:  # noqa: A002 (graphviz's name)
        """The picture as bytes in ``format`` (default: the one given to :func:`draw_dot`).

        ``"svg"`` works without Graphviz (the built-in layout draws it); other
        formats raise ``RuntimeError`` when Graphviz's ``dot`` program is not
        installed.
        """
        fmt = format or self.format
        if fmt == "svg" and shutil.which("dot") is None:
            builtin = self._builtin_svg()
            if builtin is not None:
                return builtin.encode()
        return _run_dot(self.source, fmt)

    def render(self, path: str | Path) -> Path:
        """Write the picture to ``path`` and return the path.

        The format comes from the suffix (``.svg``, ``.png``, ``.pdf`` ...);
        without a suffix, ``.`` + ``format`` is appended. ``.dot`` and ``.gv``
        write the DOT text and ``.svg`` a picture (by ``dot`` when installed,
        else by the built-in layout), all needing nothing; every other format
        needs Graphviz's ``dot`` program (``RuntimeError`` when it is missing).

        >>> import pathlib, tempfile
        >>> from tapegrad import Value
        >>> g = draw_dot(Value(1.0, label="x"))
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = g.render(pathlib.Path(folder) / "x.dot")
        ...     path.name, path.read_text() == g.source
        ('x.dot', True)
        """
        out = Path(path)
        if not out.suffix:
            out = out.with_name(f"{out.name}.{self.format}")
        fmt = out.suffix.lstrip(".").lower()
        if fmt in _DOT_SUFFIXES:
            out.write_text(self.source)
        else:
            out.write_bytes(self.pipe(fmt))
        return out

    def _repr_svg_(self) -> str | None:
        """SVG drawn by ``dot``, else by the built-in layout; ``None`` when neither can.

        The built-in layout draws graphs up to :data:`MAX_AUTO_LAYOUT_NODES`
        nodes here (larger ones: ``render("graph.svg")``).
        """
        if self._svg is None:
            if shutil.which("dot") is not None:
                self._svg = _run_dot(self.source, "svg").decode()
            elif self.nodes <= MAX_AUTO_LAYOUT_NODES:
                self._svg = self._builtin_svg()
        return self._svg

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """What a notebook shows: the SVG picture, or the DOT text when there is none.

        There is a picture unless ``dot`` is missing and the graph is too large
        for the built-in layout (or the DotGraph was built from DOT text
        alone); then the text carries a DOT comment that says why, so the
        cell explains itself and its text still pastes into any DOT viewer.
        """
        svg = self._repr_svg_()
        if svg is not None:
            return {"image/svg+xml": svg, "text/plain": repr(self)}
        if self._graph is None:
            why = f"{_NO_DOT} and this DotGraph holds DOT text only"
        else:
            why = (
                f"{_NO_DOT} and the graph has more than {MAX_AUTO_LAYOUT_NODES} nodes for the "
                f"built-in layout (.render('graph.svg') draws it)"
            )
        return {"text/plain": f"// {self!r}: {why}, so here is its DOT text\n{self.source}"}


def draw_dot(v: Var, format: str = "svg", rankdir: str = "LR") -> DotGraph:  # noqa: A002 (micrograd)
    """micrograd's ``draw_dot``: the picture of the graph behind ``v``.

    Returns a :class:`DotGraph`, whatever is installed: a notebook shows it as
    an SVG picture, drawn by Graphviz's ``dot`` program when it is installed
    and by tapegrad's own layered layout otherwise; ``.source`` is the DOT
    text of :func:`to_dot` and ``.render(path)`` writes a file (``format`` is
    the default suffix).

    >>> from tapegrad import Value
    >>> a = Value(2.0, label="a"); b = Value(-3.0, label="b")
    >>> c = a * b; c.label = "c"
    >>> c.backward()
    >>> dot = draw_dot(c)
    >>> dot
    DotGraph(3 nodes, 1 op)
    >>> print(dot.source.replace("\\t", "  "))
    digraph {
      graph [rankdir=LR]
      n1 [label="{ a | data 2.0000 | grad -3.0000 }" shape=record]
      n2 [label="{ b | data -3.0000 | grad 2.0000 }" shape=record]
      n3 [label="{ c | data -6.0000 | grad 1.0000 }" shape=record]
      n3op [label="*"]
      n3op -> n3
      n1 -> n3op
      n2 -> n3op
    }
    <BLANKLINE>
    """
    if rankdir not in _RANKDIRS:  # before walking the tape
        raise ValueError(f"rankdir must be one of LR, RL, TB, BT, not {rankdir!r}")
    nodes = graph(v)
    ops = sum(not n.is_leaf for n in nodes)
    return DotGraph(
        _dot_source(nodes, rankdir, 4),
        format=format,
        nodes=len(nodes),
        ops=ops,
        graph_nodes=nodes,
        rankdir=rankdir,
    )


def render(v: Var, path: str | Path, rankdir: str = "LR") -> Path:
    """Draw the graph behind ``v`` into ``path``.

    The format comes from the file's suffix (``.svg``, ``.png``, ``.pdf`` ...;
    ``.dot`` writes the DOT text). ``.svg`` is drawn by Graphviz's ``dot``
    program when it is installed and by the built-in layout otherwise; other
    picture formats raise ``RuntimeError`` when ``dot`` is not installed. The
    same as ``draw_dot(v, rankdir=rankdir).render(path)``, except that a
    suffix is required.
    """
    out = Path(path)
    if not out.suffix:
        raise ValueError(f"render() needs a file name with a suffix such as .svg, got {path!r}")
    return draw_dot(v, rankdir=rankdir).render(out)
