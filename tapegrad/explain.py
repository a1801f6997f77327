"""Backprop explained by the tape: ``explain(v)``, the lecture's manual backprop, generated.

micrograd's lecture does backpropagation by hand, node by node
(``a.grad = b.data * e.grad``), and then finds the bug where a node used twice
must *accumulate* its gradient. The tape already is that list of steps:
entry ``k`` holds an op, its inputs and the local partials ``d out / d input``.
:func:`explain` reads them and writes both passes out with numbers:

* the forward pass, one line per value in execution order: the op, its
  inputs' values and its output;
* the backward pass, as the reverse sweep runs it: the output's grad is 1,
  then for every entry from the output down, one line per edge,
  ``adj[input] += d(out)/d(input) * adj[out]``; a node used twice gets two
  lines, and the second says what its grad adds up to;
* every leaf's grad.

The numbers of the backward pass are the tape's own: its recorded partials
times the adjoints, added in the order (and with the ``0 * inf = 0``
convention) of :func:`tapegrad.sweeps.sweep_floats`. Nothing is written into
``.grad``: explaining is not calling ``backward()``.

>>> from tapegrad import Value
>>> a = Value(2.0, label="a"); b = Value(-3.0, label="b")
>>> e = a * b; e.label = "e"
>>> print(explain(e))
forward pass, in tape order:
  a = 2.0    leaf
  b = -3.0   leaf
  e = a * b = 2.0 * -3.0 = -6.0
backward pass, from the output down: adj[input] += d(out)/d(input) * adj[out]
  e.grad = 1.0
  a.grad += -3.0 * 1.0 = -3.0   # d(e)/d(a) * e.grad
  b.grad += 2.0 * 1.0 = 2.0     # d(e)/d(b) * e.grad
leaf grads:
  a.grad = -3.0
  b.grad = 2.0
>>> a.grad  # untouched
0.0

:meth:`Explanation.to_html` writes a page that steps through both passes on
a picture of the graph (its layout is a simple layered one drawn here, so
the page needs neither Graphviz nor the network).
"""

from __future__ import annotations

import argparse
import ast
import html
import json
import operator
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tapegrad import math as tmath
from tapegrad.engine import CONT, IMPORT, INPUT, LEAF, NULL, Tape, Value, Var
from tapegrad.handle import concrete
from tapegrad.viz import GraphNode, expression, node_names, walk

__all__ = [
    "explain",
    "Explanation",
    "ForwardStep",
    "BackwardStep",
    "number",
    "ProgramError",
    "run_program",
    "add_arguments",
    "run",
]


def number(x: float, precision: int = 4) -> str:
    """``x`` rounded to ``precision`` decimals, trailing zeros dropped (``6.0``, ``0.7071``)."""
    text = f"{x:.{precision}f}"
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    return text


@dataclass(frozen=True)
class ForwardStep:
    """One value of the forward pass: node ``node`` (an id of :func:`tapegrad.viz.graph`)."""

    node: int
    name: str
    text: str
    """The line, e.g. ``e = a * b = 2.0 * -3.0 = -6.0``."""
    value: float


@dataclass(frozen=True)
class BackwardStep:
    """One edge of the reverse sweep: ``adj[target] += partial * adjoint``.

    ``source`` is the node whose adjoint flows back (``None`` for the step
    that seeds the output with 1); ``total`` is the target's adjoint after
    this step, ``contributions`` how many steps have added to it so far.
    """

    target: int
    source: int | None
    partial: float
    adjoint: float
    contribution: float
    total: float
    contributions: int
    text: str
    """The line, e.g. ``a.grad += -3.0 * -2.0 = 6.0``."""
    why: str
    """What the factors are, e.g. ``d(e)/d(a) * e.grad``."""


def _product(partial: Any, adjoint: Any) -> float:
    """``partial * adjoint`` as the sweep forms it: an exact 0 factor gives 0 (``0 * inf``)."""
    p, g = concrete(partial), concrete(adjoint)
    return 0.0 if p == 0.0 or g == 0.0 else p * g


def _edges(tape: Tape, k: int) -> list[tuple[int, Any]]:
    """(input entry, partial) of the node recorded at entry ``k``, in operand order.

    A primitive of three or more inputs is a chain of CONT entries, each
    taking the previous one with partial 1 (see tapegrad.tape): the partial
    of an operand is then its own times the partials down the chain.
    """
    in1, in2, p1, p2 = tape.in1, tape.in2, tape.p1, tape.p2
    rule = tape.rule_at(k)
    if rule is not CONT:
        pairs = [(in1[k], p1[k])] if rule.arity == 1 else [(in1[k], p1[k]), (in2[k], p2[k])]
        return [(i, p) for i, p in pairs if i]
    extra: list[tuple[int, Any]] = []
    factor: Any = 1.0
    while tape.rule_at(k) is CONT:
        extra.append((in2[k], p2[k] * factor))
        factor = p1[k] * factor
        k = in1[k]
    head = [(in1[k], p1[k] * factor), (in2[k], p2[k] * factor)]
    return [(i, p) for i, p in [*head, *reversed(extra)] if i]


class Explanation:
    """The forward and backward passes behind a Var, as :func:`explain` returns them.

    ``str()`` is the text for a terminal, a notebook shows ``_repr_html_``'s
    tables, and :meth:`to_html` writes a page that steps through the graph.

    >>> from tapegrad import Value
    >>> a = Value(3.0, label="a")
    >>> b = a + a; b.label = "b"
    >>> ex = explain(b)
    >>> [step.text for step in ex.backward]
    ['b.grad = 1.0', 'a.grad += 1.0 * 1.0 = 1.0', 'a.grad += 1.0 * 1.0 = 1.0']
    >>> ex.leaf_grads
    {'a': 2.0}
    """

    nodes: list[GraphNode]
    """The graph's nodes, as :func:`tapegrad.viz.graph` gives them."""
    names: dict[int, str]
    """How each node is written: its label when unique, else ``%id``."""
    forward: list[ForwardStep]
    """The forward pass, one step per node, in execution order."""
    backward: list[BackwardStep]
    """The backward pass: the seed, then one step per edge, in the sweep's order."""
    grads: dict[str, float]
    """Every node's gradient (its adjoint at the end of the sweep), by name."""

    def __init__(
        self,
        nodes: list[GraphNode],
        forward: list[ForwardStep],
        backward: list[BackwardStep],
        grads: dict[int, float],
    ) -> None:
        self.nodes = nodes
        self.names = node_names(nodes)
        self.forward = forward
        self.backward = backward
        self.grads = {self.names[n.id]: grads.get(n.id, 0.0) for n in nodes}

    @property
    def leaf_grads(self) -> dict[str, float]:
        """Each leaf's gradient, by name, in execution order."""
        return {self.names[n.id]: self.grads[self.names[n.id]] for n in self.nodes if n.is_leaf}

    def __repr__(self) -> str:
        return f"Explanation({len(self.nodes)} values, {len(self.backward) - 1} backward steps)"

    def __str__(self) -> str:
        def block(rows: Sequence[tuple[str, str]]) -> list[str]:
            width = max((len(text) for text, note in rows if note), default=0)
            return [f"  {text.ljust(width)}   {note}".rstrip() for text, note in rows]

        leaf_note = {n.id: n.op for n in self.nodes if n.is_leaf}
        lines = ["forward pass, in tape order:"]
        lines += block([(s.text, leaf_note.get(s.node, "")) for s in self.forward])
        lines.append(
            "backward pass, from the output down: adj[input] += d(out)/d(input) * adj[out]"
        )
        lines += block([(s.text, f"# {s.why}" if s.why else "") for s in self.backward])
        lines.append("leaf grads:")
        lines += [f"  {name}.grad = {number(g)}" for name, g in self.leaf_grads.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Two tables for a notebook: the forward pass, then the backward pass."""

        def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
            cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
            body = "".join(
                "<tr>"
                + "".join(
                    f'<td style="text-align: left; font-family: monospace">{html.escape(c)}</td>'
                    for c in row
                )
                + "</tr>"
                for row in rows
            )
            return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"

        forward = table(
            ("step", "forward pass"), [(str(i + 1), s.text) for i, s in enumerate(self.forward)]
        )
        backward = table(
            ("step", "backward pass", "why"),
            [(str(i + 1), s.text, s.why) for i, s in enumerate(self.backward)],
        )
        leaves = table(("leaf", "grad"), [(n, number(g)) for n, g in self.leaf_grads.items()])
        return f"{forward}\n{backward}\n{leaves}"

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained page that steps through both passes; return its path.

        The page draws the graph (inline SVG) and steps through the forward
        pass (values appear) and the backward pass (grads fill in), the
        current node highlighted: arrow keys, Home/End, or the buttons. It
        loads nothing (inline script and style, and a Content-Security-Policy
        that forbids any request), so it works offline and from an e-mail.

        >>> import pathlib, tempfile
        >>> from tapegrad import Value
        >>> x = Value(0.5, label="x")
        >>> y = x.tanh(); y.label = "y"
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     page = explain(y).to_html(pathlib.Path(folder) / "tanh.html")
        ...     "<svg" in page.read_text(), "https:" in page.read_text()
        (True, False)
        """
        out = Path(path)
        out.write_text(_page(self), encoding="utf-8")
        return out


def explain(v: Var) -> Explanation:
    """The forward and backward passes behind ``v``, step by step with numbers.

    The backward pass is the tape's reverse sweep written out: the recorded
    local partials times the adjoints, one line per edge, accumulation into
    a node used twice shown as two lines. ``.grad`` of nothing changes.

    >>> from tapegrad import Value
    >>> a = Value(2.0, label="a"); b = Value(-3.0, label="b")
    >>> c = Value(10.0, label="c"); f = Value(-2.0, label="f")
    >>> e = a * b; e.label = "e"
    >>> d = e + c; d.label = "d"
    >>> L = d * f; L.label = "L"
    >>> ex = explain(L)
    >>> print("\\n".join(step.text for step in ex.backward))
    L.grad = 1.0
    d.grad += -2.0 * 1.0 = -2.0
    f.grad += 4.0 * 1.0 = 4.0
    e.grad += 1.0 * -2.0 = -2.0
    c.grad += 1.0 * -2.0 = -2.0
    a.grad += -3.0 * -2.0 = 6.0
    b.grad += 2.0 * -2.0 = -4.0
    >>> ex.leaf_grads
    {'a': 6.0, 'b': -4.0, 'c': -2.0, 'f': 4.0}
    """
    if not isinstance(v, Var):
        raise TypeError(f"explain() needs a Var, not {type(v).__name__}: {v!r}")
    found = walk(v)
    nodes = found.nodes
    names = node_names(nodes)
    tapes = {tape.serial: tape for tape, _ in found.chunks}
    # The first entry of each node (dicts keep insertion order: the oldest chunk's first).
    home: dict[int, tuple[Tape, int]] = {}
    for (serial, k), node_id in found.ids.items():
        home.setdefault(node_id, (tapes[serial], k))

    # Forward: values as recorded on the tape (a leaf's .data may have changed since).
    values: dict[int, float] = {}
    forward: list[ForwardStep] = []
    for n in nodes:
        if n.id in home:
            tape, k = home[n.id]
            values[n.id] = concrete(tape.vals[k])
        else:  # a leaf on its own: no tape
            values[n.id] = n.data
        value = number(values[n.id])
        if n.is_leaf:
            text = f"{names[n.id]} = {value}"
        else:
            numbers = expression(n, {i: number(values[i]) for i in n.inputs if i is not None})
            text = f"{names[n.id]} = {expression(n, names)} = {numbers} = {value}"
        forward.append(ForwardStep(n.id, names[n.id], text, values[n.id]))

    out = nodes[-1].id
    totals: dict[int, float] = {out: 1.0}
    counts: dict[int, int] = {out: 1}
    backward = [BackwardStep(out, None, 1.0, 1.0, 1.0, 1.0, 1, f"{names[out]}.grad = 1.0", "")]
    # The reverse sweep over the same entries as backward(): chunks newest first,
    # an import passing its adjoint on to the entry it refers to.
    seeds: dict[int, dict[int, float]] = {}
    if found.chunks:
        seeds[v._tape.serial] = {v._index: 1.0}  # type: ignore[union-attr]
    for tape, keep in found.chunks:
        adj = seeds.setdefault(tape.serial, {})
        absorbed = {tape.in1[k] for k in keep if tape.rule_at(k) is CONT}
        for k in reversed(keep):
            rule = tape.rule_at(k)
            g = adj.get(k, 0.0)
            if rule is IMPORT:
                older = tape.imported(k)
                if older is not None:
                    into = seeds.setdefault(older[0].serial, {})
                    into[older[1]] = into.get(older[1], 0.0) + g
                continue
            if rule in (LEAF, INPUT, NULL) or k in absorbed:
                continue
            source = found.ids[(tape.serial, k)]
            for i, partial in _edges(tape, k):
                target = found.ids[(tape.serial, i)]
                contribution = _product(partial, g)
                adj[i] = adj.get(i, 0.0) + contribution
                totals[target] = totals.get(target, 0.0) + contribution
                counts[target] = counts.get(target, 0) + 1
                p = concrete(partial)
                text = f"{names[target]}.grad += {number(p)} * {number(g)} = {number(contribution)}"
                why = f"{_d(names[source], names[target])} * {names[source]}.grad"
                if counts[target] > 1:
                    why += f"; {names[target]}.grad is now {number(totals[target])}"
                backward.append(
                    BackwardStep(
                        target,
                        source,
                        p,
                        g,
                        contribution,
                        totals[target],
                        counts[target],
                        text,
                        why,
                    )
                )
    return Explanation(nodes, forward, backward, totals)


def _d(out: str, wrt: str) -> str:
    """``d(out)/d(wrt)``, without doubling the brackets of a bracketed name."""

    def wrap(name: str) -> str:
        return name if name.startswith("(") else f"({name})"

    return f"d{wrap(out)}/d{wrap(wrt)}"


# ---------------------------------------------------------------------------
# The page: a layered picture of the graph, and a script that steps through it
# ---------------------------------------------------------------------------

_BOX_H = 30
_CELL_W = 100  # the data and grad cells
_COL_GAP = 70  # room for the op circle between columns
_ROW_GAP = 26
_CHAR_W = 7.5  # 12px monospace


def _layout(
    nodes: Sequence[GraphNode], names: dict[int, str]
) -> tuple[dict[int, tuple[float, float]], float, float, float]:
    """Top-left corner of each node's box, the label cell's width, and the picture's size.

    Layers: an op is one column right of its deepest input, a leaf one
    column left of its first user. Within a column, nodes are ordered by the
    mean row of their inputs (a barycentre heuristic: few crossings on the
    small graphs shown here).
    """
    column: dict[int, int] = {}
    for n in nodes:
        column[n.id] = 1 + max((column[i] for i in n.inputs if i is not None), default=-1)
    # A leaf sits just left of its first user (as Graphviz ranks it), not in column 0.
    for n in reversed(nodes):
        users = [column[u.id] for u in nodes if n.id in u.inputs]
        if n.is_leaf and users:
            column[n.id] = min(users) - 1
    label_w = 12 + _CHAR_W * max(len(names[n.id]) for n in nodes)
    box_w = label_w + 2 * _CELL_W
    row: dict[int, float] = {}
    columns: dict[int, list[GraphNode]] = {}
    for n in nodes:
        columns.setdefault(column[n.id], []).append(n)
    for c in sorted(columns):
        members = columns[c]

        def centre(n: GraphNode) -> float:
            rows = [row[i] for i in n.inputs if i is not None]
            return sum(rows) / len(rows) if rows else float(n.id)

        members.sort(key=centre)
        for r, n in enumerate(members):
            row[n.id] = float(r)
    pad = 20.0
    where = {
        n.id: (
            pad + _COL_GAP + column[n.id] * (box_w + _COL_GAP),
            pad + row[n.id] * (_BOX_H + _ROW_GAP),
        )
        for n in nodes
    }
    width = max(x for x, _ in where.values()) + box_w + pad
    height = max(y for _, y in where.values()) + _BOX_H + pad
    return where, label_w, width, height


def _svg(nodes: Sequence[GraphNode], names: dict[int, str]) -> str:
    """The graph as inline SVG: micrograd's record per value, a circle per op."""
    where, label_w, width, height = _layout(nodes, names)
    box_w = label_w + 2 * _CELL_W
    edges: list[str] = []
    shapes: list[str] = []
    for n in nodes:
        x, y = where[n.id]
        mid = y + _BOX_H / 2
        if not n.is_leaf:
            cx = x - _COL_GAP / 2
            radius = max(14.0, 5 + 3.6 * len(n.symbol))  # "tanh" fits, like "*"
            for i in n.inputs:
                if i is not None:
                    ix, iy = where[i]
                    edges.append(
                        f'<path class="edge" data-from="{i}" data-to="{n.id}" '
                        f'd="M{ix + box_w:.1f},{iy + _BOX_H / 2:.1f} '
                        f'L{cx - radius:.1f},{mid:.1f}"/>'
                    )
            edges.append(
                f'<path class="edge" d="M{cx + radius:.1f},{mid:.1f} L{x:.1f},{mid:.1f}"/>'
            )
            shapes.append(
                f'<g class="op" id="op-{n.id}">'
                f'<circle cx="{cx:.1f}" cy="{mid:.1f}" r="{radius:.1f}"/>'
                f'<text x="{cx:.1f}" y="{mid + 4:.1f}" text-anchor="middle">'
                f"{html.escape(n.symbol)}</text></g>"
            )
        leaf = ' data-leaf="1"' if n.is_leaf else ""
        shapes.append(
            f'<g class="node" id="node-{n.id}"{leaf} data-name="{html.escape(names[n.id])}">'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w:.1f}" height="{_BOX_H}"/>'
            f'<line x1="{x + label_w:.1f}" y1="{y:.1f}" '
            f'x2="{x + label_w:.1f}" y2="{y + _BOX_H:.1f}"/>'
            f'<line x1="{x + label_w + _CELL_W:.1f}" y1="{y:.1f}" '
            f'x2="{x + label_w + _CELL_W:.1f}" y2="{y + _BOX_H:.1f}"/>'
            f'<text x="{x + 6:.1f}" y="{mid + 4:.1f}">{html.escape(names[n.id])}</text>'
            f'<text id="data-{n.id}" x="{x + label_w + 6:.1f}" y="{mid + 4:.1f}">data</text>'
            f'<text id="grad-{n.id}" x="{x + label_w + _CELL_W + 6:.1f}" y="{mid + 4:.1f}">'
            "grad</text></g>"
        )
    return (
        f'<svg id="graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" style="max-width: 100%; height: auto">'
        + "".join(edges)
        + "".join(shapes)
        + "</svg>"
    )


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; }
svg { font: 12px monospace; }
.node rect { fill: #f4f4f4; stroke: #555; }
.node line { stroke: #555; }
.node.current rect { fill: #ffe08a; stroke: #c77d00; stroke-width: 2.5; }
.node.source rect { fill: #cfe6ff; stroke: #1f6fbf; stroke-width: 2; }
.node.done [id^=grad-] { fill: #0a7a2f; font-weight: bold; }
.op circle { fill: #fff; stroke: #555; }
.edge { stroke: #888; fill: none; stroke-width: 1.2; }
.edge.active { stroke: #c77d00; stroke-width: 3; }
#step { font: 15px monospace; margin: 0.8em 0; min-height: 2.6em; white-space: pre; }
button { font-size: 15px; margin-right: 0.3em; }
"""

_SCRIPT = """
"use strict";
const STEPS = JSON.parse(document.getElementById("steps").textContent);
let at = 0;  // how many steps are done: 0 (none) .. STEPS.length
function show() {
  for (const g of document.querySelectorAll(".node")) {
    g.classList.remove("current", "source", "done");
    document.getElementById("data-" + g.id.slice(5)).textContent = "data";
    const grad = document.getElementById("grad-" + g.id.slice(5));
    grad.textContent = "grad";
    grad.removeAttribute("data-value");
  }
  for (const e of document.querySelectorAll(".edge")) e.classList.remove("active");
  for (let s = 0; s < at; s++) {
    const step = STEPS[s];
    if (step.pass === "forward") {
      document.getElementById("data-" + step.node).textContent = "data " + step.shown;
    } else {
      const grad = document.getElementById("grad-" + step.node);
      grad.textContent = "grad " + step.shown;
      grad.setAttribute("data-value", String(step.value));
    }
  }
  if (at === STEPS.length) {
    for (const g of document.querySelectorAll(".node[data-leaf]")) g.classList.add("done");
  }
  const text = document.getElementById("step");
  if (at === 0) {
    text.textContent = "Press \\u2192 (or Next) to run the forward pass, then the backward pass.";
  } else {
    const step = STEPS[at - 1];
    document.getElementById("node-" + step.node).classList.add("current");
    if (step.source !== null) {
      document.getElementById("node-" + step.source).classList.add("source");
      for (const e of document.querySelectorAll(
          '.edge[data-from="' + step.node + '"][data-to="' + step.source + '"]')) {
        e.classList.add("active");
      }
    }
    text.textContent = step.pass + " pass, step " + at + " of " + STEPS.length + "\\n" + step.text;
  }
  document.getElementById("position").textContent = at + " / " + STEPS.length;
}
function go(to) { at = Math.max(0, Math.min(STEPS.length, to)); show(); }
document.getElementById("first").addEventListener("click", () => go(0));
document.getElementById("back").addEventListener("click", () => go(at - 1));
document.getElementById("next").addEventListener("click", () => go(at + 1));
document.getElementById("last").addEventListener("click", () => go(STEPS.length));
document.addEventListener("keydown", (event) => {
  const moves = {ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: STEPS.length};
  if (event.key in moves) { event.preventDefault(); go(moves[event.key]); }
});
show();
"""

# The page may load nothing: no network, no other file (inline script and style only).
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


def _page(ex: Explanation) -> str:
    """The HTML of :meth:`Explanation.to_html`."""
    steps: list[dict[str, Any]] = []
    for f in ex.forward:
        steps.append(
            {"pass": "forward", "node": f.node, "source": None, "text": f.text}
            | {"shown": number(f.value), "value": f.value}
        )
    for b in ex.backward:
        text = f"{b.text}    # {b.why}" if b.why else b.text
        steps.append(
            {"pass": "backward", "node": b.target, "source": b.source, "text": text}
            | {"shown": number(b.total), "value": b.total}
        )
    # json.dumps writes inf/nan as bare words, which JSON.parse rejects: write them as strings.
    for step in steps:
        if step["value"] != step["value"] or abs(step["value"]) == float("inf"):
            step["value"] = str(step["value"])
    data = json.dumps(steps).replace("<", "\\u003c")  # no "</script>" inside the script
    title = html.escape(f"backprop of {ex.names[ex.nodes[-1].id]}, step by step")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{title}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<div>
<button id="first">first</button><button id="back">&larr; back</button>
<button id="next">next &rarr;</button><button id="last">last</button>
<span id="position"></span>
</div>
<div id="step"></div>
{_svg(ex.nodes, ex.names)}
<pre id="text">{html.escape(str(ex))}</pre>
<script id="steps" type="application/json">{data}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


# ---------------------------------------------------------------------------
# The command line: `tapegrad explain "a = 2.0; b = -3.0; L = a * b"`
# ---------------------------------------------------------------------------

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
# The functions of tapegrad.math that take and give numbers (not isnan's bools,
# nor sum/prod/dot, which take sequences the language cannot write).
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(tmath, name)
    for name in tmath.__all__
    if callable(getattr(tmath, name))
    and name not in ("isfinite", "isinf", "isnan", "sum", "prod", "dot")
}
# Methods of Var the language may call: those that are also tapegrad.math functions.
_METHODS = frozenset(name for name in _FUNCTIONS if callable(getattr(Var, name, None)))
_CONSTANTS = {"pi": tmath.pi, "e": tmath.e, "tau": tmath.tau}
_MAX_SOURCE = 10_000  # characters: a program is one expression's worth of assignments

LANGUAGE = (
    "assignments 'name = expression' separated by ';' or newlines, where an expression has "
    "numbers, names assigned before, + - * / **, unary minus, parentheses, "
    "tapegrad.math functions (tanh(x) or math.tanh(x)) and Var methods (x.tanh())"
)


class ProgramError(ValueError):
    """A program for ``tapegrad explain`` uses something outside its small language."""


def run_program(source: str) -> Var:
    """Run a program of the ``explain`` command's assignment language; its last value.

    Each assignment's name becomes the label of its value; a number assigned
    to a name is a leaf ``Value``. The program is parsed with :mod:`ast` and
    walked node by node against a whitelist (never ``eval``): anything
    else raises :class:`ProgramError` naming it, and so does an assignment
    whose arithmetic fails (``1 / 0``, ``log(-1.0)``), saying which.

    >>> L = run_program("a = 2.0; b = -3.0; c = 10.0; f = -2.0; L = (a * b + c) * f")
    >>> L.label, L.data
    ('L', -8.0)
    >>> run_program("x = __import__('os')")
    Traceback (most recent call last):
    ...
    tapegrad.explain.ProgramError: line 1, column 5: __import__ is not a tapegrad.math function
    """
    if not isinstance(source, str):
        raise TypeError(f"a program is a str, not {type(source).__name__}")
    if len(source) > _MAX_SOURCE:
        raise ProgramError(f"the program has {len(source)} characters; at most {_MAX_SOURCE}")
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        raise ProgramError(
            f"line {exc.lineno}, column {exc.offset}: not Python syntax ({exc.msg}); "
            f"a program is {LANGUAGE}"
        ) from None
    except (RecursionError, MemoryError):
        raise ProgramError("the program is nested too deeply") from None
    env: dict[str, Var] = {}
    result: Var | None = None
    for stmt in tree.body:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else None
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            raise _refuse(stmt, source, "is not an assignment 'name = expression'")
        if not isinstance(target, ast.Name):
            raise _refuse(stmt, source, "assigns to something other than a plain name")
        try:
            value = _evaluate(stmt.value, env, source)
        except RecursionError:
            raise ProgramError("the program is nested too deeply") from None
        except ProgramError:
            raise
        except (ArithmeticError, ValueError, TypeError) as exc:
            # 1 / 0, log(-1.0), overflow, tanh(1.0, 2.0): say which assignment
            raise _refuse(stmt, source, f"fails: {exc}") from exc
        if isinstance(value, Var):
            if any(value is known for known in env.values()):
                raise _refuse(stmt, source, "only gives a second name to a value; compute one")
            value.label = target.id
        else:
            value = Value(value, label=target.id)
        env[target.id] = value
        result = value
    if result is None:
        raise ProgramError(f"the program is empty; a program is {LANGUAGE}")
    return result


def _refuse(node: ast.AST, source: str, why: str) -> ProgramError:
    """A ProgramError that quotes ``node`` and says where it is."""
    text = ast.get_source_segment(source, node) or type(node).__name__
    where = f"line {getattr(node, 'lineno', '?')}, column {getattr(node, 'col_offset', -1) + 1}"
    return ProgramError(f"{where}: {text} {why}")


def _callee(func: ast.expr, env: dict[str, Var], source: str) -> Callable[..., Any]:
    """The function a call names: ``tanh``, ``math.tanh`` or ``x.tanh`` (a bound method)."""
    if isinstance(func, ast.Name):
        if func.id not in _FUNCTIONS:
            raise _refuse(func, source, "is not a tapegrad.math function")
        return _FUNCTIONS[func.id]
    if not isinstance(func, ast.Attribute):
        raise _refuse(func, source, "is not a function the language knows")
    owner = func.value
    module = isinstance(owner, ast.Name) and owner.id == "math"
    module |= (
        isinstance(owner, ast.Attribute)
        and owner.attr == "math"
        and isinstance(owner.value, ast.Name)
        and owner.value.id in ("tg", "tapegrad")
    )
    if module:
        if func.attr not in _FUNCTIONS:
            raise _refuse(func, source, "is not a tapegrad.math function")
        return _FUNCTIONS[func.attr]
    if func.attr not in _METHODS:
        raise _refuse(
            func, source, f"is not allowed: the Var methods are {', '.join(sorted(_METHODS))}"
        )
    receiver = _evaluate(owner, env, source)
    if not isinstance(receiver, Var):
        raise _refuse(func, source, "calls a method of a number; write the function: tanh(2.0)")
    method: Callable[..., Any] = getattr(receiver, func.attr)
    return method


def _evaluate(node: ast.expr, env: dict[str, Var], source: str) -> Any:
    """The value of an expression of the language: a float or a Var."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _refuse(node, source, "is not a number")
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise _refuse(node, source, "is not assigned before it is used")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate(node.left, env, source)
        return _BINARY[type(node.op)](left, _evaluate(node.right, env, source))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _evaluate(node.operand, env, source)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.Call):
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise _refuse(node, source, "passes keyword or starred arguments; pass plain ones")
        function = _callee(node.func, env, source)
        return function(*(_evaluate(a, env, source) for a in node.args))
    if isinstance(node, ast.Attribute):
        raise _refuse(node, source, "reads an attribute; only calls of Var methods are allowed")
    raise _refuse(node, source, f"is not allowed ({type(node).__name__}); a program is {LANGUAGE}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``explain`` subcommand's arguments."""
    parser.epilog = (
        'example: tapegrad explain "a = 2.0; b = -3.0; c = 10.0; f = -2.0; L = (a * b + c) * f" '
        "--html L.html. Exit status 2: the program was refused (the message says why)."
    )
    parser.add_argument(
        "program", help=f"the expression to explain: {LANGUAGE}; the last assignment is the output"
    )
    parser.add_argument(
        "--html",
        metavar="PATH",
        type=Path,
        help="also write a self-contained page that steps through the graph (opens offline)",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Explain the parsed ``args.program``; the exit status (2: the program is refused)."""
    out = sys.stdout if out is None else out
    try:
        output = run_program(args.program)
    except (ProgramError, ArithmeticError, ValueError, TypeError) as exc:
        # ArithmeticError and ValueError: 1 / 0, log(-1.0), overflow; TypeError: tanh(1, 2)
        print(f"tapegrad explain: error: {exc}", file=sys.stderr)
        return 2
    explanation = explain(output)
    print(explanation, file=out)
    if args.html is not None:
        try:
            page = explanation.to_html(args.html)
        except OSError as exc:
            print(f"tapegrad explain: could not write {args.html}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {page}", file=out)
    return 0
