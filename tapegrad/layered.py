"""micrograd's picture of a graph as SVG, laid out in pure Python: ``draw_dot`` without Graphviz.

:func:`svg` draws the nodes of :func:`tapegrad.viz.graph` as Graphviz would
draw :func:`tapegrad.viz.to_dot`'s text: a record ``label | data | grad`` per
value, a small oval per op, arrows from operands to op to result. It is what a
notebook shows when Graphviz's ``dot`` program is not installed, so the
lecture and the documentation keep their pictures with nothing but tapegrad.

The layout is the classic layered one (Sugiyama, Tagawa and Toda, 1981), the
same family as ``dot``'s, in four steps:

1. *Layers* by longest path from the leaves: an op one layer after its
   furthest operand, its result one after it; then each leaf moves up to just
   before its first user, so a weight used late does not draw an arrow across
   the whole picture.
2. *Dummy nodes* on every edge that spans several layers, so long edges take
   part in the ordering and are drawn around the nodes, not through them.
3. *Order within layers* by barycenter sweeps (each node moves to the mean
   position of its neighbours in the previous layer, down then up), keeping
   the order with the fewest crossings seen (counted exactly, as inversions).
4. *Positions*: each layer is placed as near as it can to its neighbours'
   positions without overlaps, which is an isotonic regression solved exactly
   by pool-adjacent-violators; sweeps down and up, then both sides.

Text is measured as monospace (0.6 em per character), the one font metric
that holds in any browser without measuring glyphs. A sweep costs time in
proportion to the nodes, dummies and edges, and long edges add dummies, so
the total grows faster than the node count: 3.7 ms for micrograd's README
example (27 nodes), 0.20 s at 977 nodes and 1.53 s at 3,541 (the demo's MLP
on 1 and 5 points; medians, pyperf, on a shared 2-core machine).

>>> from tapegrad import Value
>>> from tapegrad.viz import graph
>>> x = Value(2.0, label="x")
>>> picture = svg(graph(x * x))
>>> picture.startswith("<svg") and "data 4.0000" in picture
True
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tapegrad.viz import GraphNode

__all__ = ["svg", "RANKDIRS"]

RANKDIRS = ("LR", "RL", "TB", "BT")

FONT_SIZE = 12.0
CHAR_WIDTH = 0.6 * FONT_SIZE  # a monospace advance
LINE_HEIGHT = 1.3 * FONT_SIZE
FIELD_PAD = 6.0  # inside a record's field, each side
OP_HEIGHT = 28.0  # an op's oval, across
LAYER_GAP = 36.0  # between layers, along the edges
NODE_GAP = 14.0  # between neighbours in a layer
MARGIN = 8.0
ORDER_SWEEPS = 8  # barycenter sweeps (down + up each)
POSITION_SWEEPS = 6

# Characters XML forbids even escaped (C0 controls but tab and newline,
# surrogates, U+FFFE/U+FFFF): drawn as the replacement character.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _lines(text: str) -> list[str]:
    """A label as the lines drawn: newlines break lines, tabs become spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return [_NOT_XML.sub("\ufffd", line) for line in text.split("\n")]


@dataclass
class _Node:
    """A box of the drawing: a record, an op's oval or a dummy on a long edge."""

    kind: str  # "record", "op" or "dummy"
    fields: list[list[str]]  # lines of each field (an op: one field, its symbol)
    rank_size: float = 0.0  # extent along the edges (width for LR)
    cross_size: float = 0.0  # extent across them (height for LR)
    layer: int = 0
    cross: float = 0.0  # centre, across the layers
    preds: list[int] = field(default_factory=list)
    succs: list[int] = field(default_factory=list)


def _field_extent(lines: list[str]) -> tuple[float, float]:
    """Width and height of one record field."""
    chars = max(1, max(len(line) for line in lines))
    return chars * CHAR_WIDTH + 2 * FIELD_PAD, len(lines) * LINE_HEIGHT + FIELD_PAD


def _size(node: _Node, horizontal: bool) -> tuple[float, float]:
    """(width, height) of a node; records lay fields side by side when ``horizontal``."""
    if node.kind == "dummy":
        return 0.0, 0.0
    if node.kind == "op":
        chars = len(node.fields[0][0])
        return max(OP_HEIGHT + 8, chars * CHAR_WIDTH + 22), OP_HEIGHT
    extents = [_field_extent(f) for f in node.fields]
    if horizontal:
        return sum(w for w, _ in extents), max(h for _, h in extents)
    return max(w for w, _ in extents), sum(h for _, h in extents)


def _build(nodes: Sequence[GraphNode]) -> tuple[list[_Node], list[tuple[int, int]]]:
    """The drawing's nodes and edges: a record per value, an op node per op."""
    drawn: list[_Node] = []
    edges: list[tuple[int, int]] = []
    record_of: dict[int, int] = {}
    for n in nodes:
        fields = [_lines(n.label), [f"data {n.data:.4f}"], [f"grad {n.grad:.4f}"]]
        if not n.is_leaf:
            op = len(drawn)
            drawn.append(_Node("op", [_lines(n.symbol or n.op)]))
            for i in n.inputs:
                if i is not None:
                    edges.append((record_of[i], op))
            record_of[n.id] = len(drawn)
            drawn.append(_Node("record", fields))
            edges.append((op, record_of[n.id]))
        else:
            record_of[n.id] = len(drawn)
            drawn.append(_Node("record", fields))
    return drawn, edges


def _assign_layers(drawn: list[_Node], edges: list[tuple[int, int]]) -> None:
    """Longest path from the sources, then each source just before its first user."""
    preds: list[list[int]] = [[] for _ in drawn]
    succs: list[list[int]] = [[] for _ in drawn]
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    for k, node in enumerate(drawn):  # drawn is in topological order
        node.layer = max((drawn[u].layer + 1 for u in preds[k]), default=0)
    for k, node in enumerate(drawn):
        if not preds[k] and succs[k]:
            node.layer = min(drawn[v].layer for v in succs[k]) - 1


def _add_dummies(drawn: list[_Node], edges: list[tuple[int, int]]) -> list[list[int]]:
    """Split long edges with dummy nodes; link neighbours; return the chains per edge."""
    chains: list[list[int]] = []
    for u, v in edges:
        chain = [u]
        for layer in range(drawn[u].layer + 1, drawn[v].layer):
            drawn.append(_Node("dummy", [], layer=layer))
            chain.append(len(drawn) - 1)
        chain.append(v)
        for a, b in itertools.pairwise(chain):
            drawn[a].succs.append(b)
            drawn[b].preds.append(a)
        chains.append(chain)
    return chains


def _crossings(layers: list[list[int]], drawn: list[_Node], index: list[int]) -> int:
    """Edge crossings between consecutive layers: inversions, counted with a Fenwick tree."""
    total = 0
    for upper, lower in itertools.pairwise(layers):
        pairs = sorted((index[u], index[v]) for u in upper for v in drawn[u].succs)
        tree = [0] * (len(lower) + 1)
        for seen, (_, pos) in enumerate(pairs):
            # the earlier edges (seen of them) that end strictly after pos cross this one
            i, below = pos + 1, 0
            while i > 0:
                below += tree[i]
                i -= i & -i
            total += seen - below
            i = pos + 1
            while i <= len(lower):
                tree[i] += 1
                i += i & -i
    return total


def _order(drawn: list[_Node]) -> list[list[int]]:
    """Nodes per layer, ordered by barycenter sweeps to few crossings."""
    depth = max(node.layer for node in drawn) + 1
    layers: list[list[int]] = [[] for _ in range(depth)]
    for k, node in enumerate(drawn):
        layers[node.layer].append(k)
    index = [0] * len(drawn)

    def renumber(layer: list[int]) -> None:
        for i, k in enumerate(layer):
            index[k] = i

    for layer in layers:
        renumber(layer)

    def sweep(rows: range, neighbours: Callable[[_Node], list[int]]) -> None:
        for r in rows:
            layer = layers[r]
            keys: dict[int, float] = {}
            for k in layer:
                near = neighbours(drawn[k])
                keys[k] = sum(index[m] for m in near) / len(near) if near else float(index[k])
            layer.sort(key=keys.__getitem__)  # stable: ties keep their order
            renumber(layer)

    best = [list(layer) for layer in layers]
    fewest = _crossings(layers, drawn, index)
    for _ in range(ORDER_SWEEPS):
        if fewest == 0:
            break
        sweep(range(1, depth), lambda n: n.preds)
        sweep(range(depth - 2, -1, -1), lambda n: n.succs)
        count = _crossings(layers, drawn, index)
        if count < fewest:
            fewest, best = count, [list(layer) for layer in layers]
    return best


def _pack(desired: list[float], gaps: list[float], weights: list[float]) -> list[float]:
    """Positions nearest ``desired`` (weighted least squares) with ``p[i+1] - p[i] >= gaps[i]``.

    Subtracting the cumulative gaps turns it into isotonic regression, which
    pool-adjacent-violators solves exactly in linear time.
    """
    offsets = [0.0]
    for g in gaps:
        offsets.append(offsets[-1] + g)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for d, o, w in zip(desired, offsets, weights):
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, weight, count = blocks.pop()
            prev = blocks[-1]
            total = prev[1] + weight
            prev[0] = (prev[0] * prev[1] + mean * weight) / total
            prev[1] = total
            prev[2] += count
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * int(count))
    return [q + o for q, o in zip(out, offsets)]


def _place(drawn: list[_Node], layers: list[list[int]]) -> None:
    """Cross-axis centres: each layer as near its neighbours as it can be without overlap."""

    def gaps(layer: list[int]) -> list[float]:
        return [
            (drawn[a].cross_size + drawn[b].cross_size) / 2 + NODE_GAP
            for a, b in itertools.pairwise(layer)
        ]

    for layer in layers:  # packed from 0, then centred
        pos = _pack([0.0] * len(layer), gaps(layer), [1.0] * len(layer))
        shift = (pos[0] + pos[-1]) / 2
        for k, p in zip(layer, pos):
            drawn[k].cross = p - shift

    def sweep(rows: Sequence[int], neighbours: Callable[[_Node], list[int]]) -> None:
        for r in rows:
            layer = layers[r]
            desired, weights = [], []
            for k in layer:
                near = neighbours(drawn[k])
                node = drawn[k]
                desired.append(
                    sum(drawn[m].cross for m in near) / len(near) if near else node.cross
                )
                # dummies pull harder: long edges straight matter more than a box
                weights.append((4.0 if node.kind == "dummy" else 1.0) if near else 0.1)
            for k, p in zip(layer, _pack(desired, gaps(layer), weights)):
                drawn[k].cross = p

    depth = len(layers)
    for _ in range(POSITION_SWEEPS):
        sweep(range(1, depth), lambda n: n.preds)
        sweep(range(depth - 2, -1, -1), lambda n: n.succs)
    sweep(range(depth), lambda n: n.preds + n.succs)


def _text(x: float, y: float, line: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}">{html.escape(line, quote=True)}</text>'


def svg(nodes: Sequence[GraphNode], rankdir: str = "LR") -> str:
    """SVG text of micrograd's picture of ``nodes`` (from :func:`tapegrad.viz.graph`).

    ``rankdir`` as in Graphviz: ``"LR"`` draws operands left of their results,
    ``"TB"`` above them; records lay their fields side by side in ``LR`` and
    ``RL`` and stacked in ``TB`` and ``BT``, as ``dot`` does.
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of LR, RL, TB, BT, not {rankdir!r}")
    horizontal = rankdir in ("LR", "RL")
    drawn, edges = _build(nodes)
    _assign_layers(drawn, edges)
    chains = _add_dummies(drawn, edges)
    for node in drawn:
        width, height = _size(node, horizontal)
        node.rank_size, node.cross_size = (width, height) if horizontal else (height, width)
    layers = _order(drawn)
    _place(drawn, layers)

    # Along the edges: each layer a column as wide as its widest node.
    starts, extent = [], 0.0
    for layer in layers:
        starts.append(extent)
        extent += max(drawn[k].rank_size for k in layer) + LAYER_GAP
    extent -= LAYER_GAP
    column = [max(drawn[k].rank_size for k in layer) for layer in layers]
    low = min(n.cross - n.cross_size / 2 for n in drawn)
    high = max(n.cross + n.cross_size / 2 for n in drawn)
    width, height = (extent, high - low) if horizontal else (high - low, extent)
    width, height = width + 2 * MARGIN, height + 2 * MARGIN

    def point(rank: float, cross: float) -> tuple[float, float]:
        """Layout coordinates (along, across) to SVG x, y."""
        across = cross - low + MARGIN
        along = rank + MARGIN
        if rankdir == "LR":
            return along, across
        if rankdir == "RL":
            return width - along, across
        if rankdir == "TB":
            return across, along
        return across, height - along

    def centre_rank(k: int) -> float:
        at = drawn[k].layer
        return starts[at] + column[at] / 2

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}pt" height="{height:.0f}pt" '
        f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="monospace" '
        f'font-size="{FONT_SIZE:g}" text-anchor="middle" dominant-baseline="central">',
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='8' "
        "markerHeight='8' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z'/></marker>"
        "</defs>",
        f'<rect width="{width:.1f}" height="{height:.1f}" fill="white"/>',
        '<g fill="none" stroke="black" stroke-width="1">',
    ]
    for chain in chains:
        # (along, across) points: out of the source's far side, across each
        # dummy's column in a straight line, into the target's near side
        first, last = drawn[chain[0]], drawn[chain[-1]]
        pts = [(centre_rank(chain[0]) + first.rank_size / 2, first.cross)]
        for k in chain[1:-1]:
            at = drawn[k].layer
            pts.append((starts[at], drawn[k].cross))
            pts.append((starts[at] + column[at], drawn[k].cross))
        pts.append((centre_rank(chain[-1]) - last.rank_size / 2, last.cross))
        x0, y0 = point(*pts[0])
        path = [f"M{x0:.1f},{y0:.1f}"]
        for (r1, c1), (r2, c2) in itertools.pairwise(pts):
            mid = (r1 + r2) / 2  # tangents along the edges at both ends, as dot's splines
            (ax, ay), (bx, by), (ex, ey) = point(mid, c1), point(mid, c2), point(r2, c2)
            path.append(f"C{ax:.1f},{ay:.1f} {bx:.1f},{by:.1f} {ex:.1f},{ey:.1f}")
        out.append(f'<path d="{" ".join(path)}" marker-end="url(#arrow)"/>')
    out.append("</g>")

    out.append('<g stroke="black" stroke-width="1">')
    for k, node in enumerate(drawn):
        if node.kind == "dummy":
            continue
        cx, cy = point(centre_rank(k), node.cross)
        w, h = (
            (node.rank_size, node.cross_size) if horizontal else (node.cross_size, node.rank_size)
        )
        if node.kind == "op":
            out.append(
                f'<ellipse cx="{cx:.1f}" cy="{cy:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}" '
                f'fill="#f2f2f2"/>'
            )
            out.append(f'<g stroke="none">{_text(cx, cy, node.fields[0][0])}</g>')
            continue
        left, top = cx - w / 2, cy - h / 2
        out.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" fill="white"/>'
        )
        texts = []
        offset = 0.0
        for i, lines in enumerate(node.fields):
            fw, fh = _field_extent(lines)
            if horizontal:
                fx, fy, fh = left + offset + fw / 2, cy, h
                offset += fw
                if i:
                    out.append(
                        f'<line x1="{left + offset - fw:.1f}" y1="{top:.1f}" '
                        f'x2="{left + offset - fw:.1f}" y2="{top + h:.1f}"/>'
                    )
            else:
                fx, fy = cx, top + offset + fh / 2
                offset += fh
                if i:
                    out.append(
                        f'<line x1="{left:.1f}" y1="{top + offset - fh:.1f}" '
                        f'x2="{left + w:.1f}" y2="{top + offset - fh:.1f}"/>'
                    )
            first_line = fy - (len(lines) - 1) * LINE_HEIGHT / 2
            texts += [_text(fx, first_line + j * LINE_HEIGHT, line) for j, line in enumerate(lines)]
        out.append(f'<g stroke="none">{"".join(texts)}</g>')
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
