"""Tests of tapegrad.viz: the graph walk, the listing, DOT text and rendering.

References: the lecture's ``L = (a*b + c) * f`` graph with its hand-derived
gradients (a 6, b -4, c -2, f 4, e -2, d -2), micrograd's draw_dot format,
closed-form gradients of long chains, and Graphviz's own ``dot`` program,
which must accept the DOT text (when it is installed).
"""

from __future__ import annotations

import gc
import html
import math
import pickle
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import tapegrad as tg
from tapegrad import Value, Var, engine, viz
from tapegrad.viz import DotGraph, Listing, draw_dot, graph, listing, render, to_dot

HAS_DOT = shutil.which("dot") is not None
SVG_NS = "{http://www.w3.org/2000/svg}"
NO_DOT = (
    "Graphviz's dot program is not installed (apt-get install graphviz; .ci/run installs it "
    "where it can)"
)


def L_graph() -> Var:
    """The lecture's expression, built inside a function: only L survives."""
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    return L


L_LISTING = """\
node  label  op        data     grad
%1    a      leaf    2.0000   6.0000
%2    b      leaf   -3.0000  -4.0000
%3    e      a * b  -6.0000  -2.0000
%4    c      leaf   10.0000  -2.0000
%5    d      e + c   4.0000  -2.0000
%6    f      leaf   -2.0000   4.0000
%7    L      d * f  -8.0000   1.0000"""

L_DOT = """\
digraph {
\tgraph [rankdir=LR]
\tn1 [label="{ a | data 2.0000 | grad 6.0000 }" shape=record]
\tn2 [label="{ b | data -3.0000 | grad -4.0000 }" shape=record]
\tn3 [label="{ e | data -6.0000 | grad -2.0000 }" shape=record]
\tn3op [label="*"]
\tn3op -> n3
\tn1 -> n3op
\tn2 -> n3op
\tn4 [label="{ c | data 10.0000 | grad -2.0000 }" shape=record]
\tn5 [label="{ d | data 4.0000 | grad -2.0000 }" shape=record]
\tn5op [label="+"]
\tn5op -> n5
\tn3 -> n5op
\tn4 -> n5op
\tn6 [label="{ f | data -2.0000 | grad 4.0000 }" shape=record]
\tn7 [label="{ L | data -8.0000 | grad 1.0000 }" shape=record]
\tn7op [label="*"]
\tn7op -> n7
\tn5 -> n7op
\tn6 -> n7op
}
"""


def test_listing_of_the_lecture_graph_after_backward() -> None:
    L = L_graph()
    gc.collect()  # e and d are gone as Python objects; the tape remembers them
    L.backward()
    assert listing(L) == L_LISTING


def test_graph_nodes_of_the_lecture_graph() -> None:
    L = L_graph()
    nodes = graph(L)
    assert [(n.id, n.label, n.op, n.inputs) for n in nodes] == [
        (1, "a", "leaf", ()),
        (2, "b", "leaf", ()),
        (3, "e", "mul", (1, 2)),
        (4, "c", "leaf", ()),
        (5, "d", "add", (3, 4)),
        (6, "f", "leaf", ()),
        (7, "L", "mul", (5, 6)),
    ]
    assert [n.data for n in nodes] == [2.0, -3.0, -6.0, 10.0, 4.0, -2.0, -8.0]
    assert all(n.grad == 0.0 for n in nodes)  # before backward


def test_dot_text_is_micrograds_picture() -> None:
    L = L_graph()
    L.backward()
    assert to_dot(L) == L_DOT
    assert to_dot(L, rankdir="TB").startswith("digraph {\n\tgraph [rankdir=TB]\n")


@pytest.mark.parametrize("package", ["blocked", "as installed"])
def test_draw_dot_returns_one_type_whatever_is_installed(package: str, monkeypatch: Any) -> None:
    if package == "blocked":
        monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz -> ImportError
    L = L_graph()
    L.backward()
    g = draw_dot(L, format="png")
    assert type(g) is DotGraph
    assert g.source == L_DOT and str(g) == L_DOT
    assert (g.nodes, g.ops, g.format) == (7, 3, "png")
    assert repr(g) == "DotGraph(7 nodes, 3 ops)"
    assert tg.draw_dot is draw_dot


def _svg_tree(svg: str) -> ET.Element:
    """The SVG parsed as XML: it must be well-formed (escapes, no stray characters)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG_NS}text")]


def test_draw_dot_without_the_dot_program_draws_svg_itself(
    monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no dot anywhere
    assert shutil.which("dot") is None
    L = L_graph()
    L.backward()
    g = draw_dot(L)
    svg = g._repr_svg_()
    assert svg is not None and svg.startswith("<svg")
    assert g._repr_svg_() is svg  # drawn once
    assert g._repr_mimebundle_() == {"image/svg+xml": svg, "text/plain": "DotGraph(7 nodes, 3 ops)"}
    root = _svg_tree(svg)
    texts = _texts(root)
    # the lecture's hand-derived values and gradients, and the three ops
    for cell in ("a", "L", "data -8.0000", "grad 6.0000", "grad -4.0000", "grad 4.0000"):
        assert cell in texts
    assert sorted(t for t in texts if t in "*+") == ["*", "*", "+"]
    rects = root.findall(f".//{SVG_NS}rect")
    assert len(rects) == 1 + 7  # the white background and a record per value
    assert len(root.findall(f".//{SVG_NS}ellipse")) == 3  # an oval per op
    assert len(root.findall(f".//{SVG_NS}path")) == 1 + 9  # the arrowhead and 9 edges
    assert g.pipe() == svg.encode()  # svg needs no dot
    assert g.render(tmp_path / "L.svg").read_text() == svg
    assert render(L, tmp_path / "R.svg").read_text() == svg
    with pytest.raises(RuntimeError, match="Graphviz's 'dot' program is not installed"):
        g.render(tmp_path / "L.png")
    with pytest.raises(RuntimeError, match="not installed"):
        g.pipe("pdf")
    assert g.render(tmp_path / "L.dot").read_text() == L_DOT  # DOT text needs nothing
    assert g.render(tmp_path / "L.gv").read_text() == L_DOT


def test_a_dot_graph_of_text_alone_shows_its_text_without_dot(
    monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    g = DotGraph(L_DOT, nodes=7, ops=3)  # no graph to lay out
    assert g._repr_svg_() is None  # IPython's convention for "no picture"
    bundle = g._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    comment, rest = bundle["text/plain"].split("\n", 1)
    assert comment.startswith("// DotGraph(7 nodes, 3 ops): Graphviz's 'dot' program")
    assert "apt-get install graphviz" in comment and "DOT text only" in comment
    assert rest == L_DOT  # the text stays valid DOT: the comment is a DOT comment
    with pytest.raises(RuntimeError, match="not installed"):
        g.pipe()


def test_a_graph_too_large_to_lay_out_on_display_shows_text(
    monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(viz, "MAX_AUTO_LAYOUT_NODES", 6)
    L = L_graph()
    L.backward()
    g = draw_dot(L)
    assert g._repr_svg_() is None
    text = g._repr_mimebundle_()["text/plain"]
    assert "more than 6 nodes" in text and ".render('graph.svg')" in text
    assert text.endswith(L_DOT)
    assert g.render(tmp_path / "L.svg").read_text().startswith("<svg")  # any size on request


@pytest.mark.skipif(not HAS_DOT, reason=NO_DOT)
def test_draw_dot_with_the_dot_program_shows_svg(tmp_path: Path) -> None:
    L = L_graph()
    L.backward()
    g = draw_dot(L)
    svg = g._repr_svg_()
    assert svg is not None and "<svg" in svg
    text = html.unescape(svg)
    for cell in ("data -8.0000", "grad 6.0000", ">*<", ">L<"):
        assert cell in text
    assert g._repr_svg_() is svg  # drawn once
    bundle = g._repr_mimebundle_()
    assert bundle == {"image/svg+xml": svg, "text/plain": "DotGraph(7 nodes, 3 ops)"}
    assert g.pipe("png").startswith(b"\x89PNG")
    assert draw_dot(L, format="png").render(tmp_path / "L").name == "L.png"  # suffix added
    assert (tmp_path / "L.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("dot", ["absent", "present"])
def test_a_notebook_shows_draw_dot_as_a_picture_with_or_without_dot(
    dot: str, monkeypatch: Any, tmp_path: Path
) -> None:
    """What Jupyter does with the object: IPython's own display formatter."""
    formatters = pytest.importorskip("IPython.core.formatters")
    if dot == "present" and not HAS_DOT:
        pytest.skip(NO_DOT)
    if dot == "absent":
        monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "graphviz", None)  # no Python package either way
    L = L_graph()
    L.backward()
    data, _ = formatters.DisplayFormatter().format(draw_dot(L))
    # a picture either way: Graphviz's, or the built-in layout's
    assert "<svg" in data["image/svg+xml"]
    assert data["text/plain"] == "DotGraph(7 nodes, 3 ops)"


def test_listing_is_a_str_that_notebooks_show_as_a_table() -> None:
    L = L_graph()
    L.backward()
    text = listing(L)
    assert isinstance(text, str) and type(text) is Listing
    assert text == L_LISTING and str(text) == L_LISTING
    assert text.rows[0] == ("node", "label", "op", "data", "grad")
    assert text.rows[3] == ("%3", "e", "a * b", "-6.0000", "-2.0000")
    table = text._repr_html_()
    assert table.startswith("<table>") and table.count("<tr>") == 8
    assert '<th style="text-align: right; font-family: monospace">grad</th>' in table
    assert '<td style="text-align: left; font-family: monospace">e + c</td>' in table
    copy = pickle.loads(pickle.dumps(text))
    assert type(copy) is Listing and copy == text and copy.rows == text.rows


def test_listing_escapes_html_in_labels() -> None:
    x = Value(1.0, label="<b>&x</b>")
    table = listing(x * 2.0)._repr_html_()
    assert "&lt;b&gt;&amp;x&lt;/b&gt;" in table and "<b>" not in table


def test_listing_in_ipython_shows_the_table_as_text() -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    L = L_graph()
    L.backward()
    data, _ = formatters.DisplayFormatter().format(listing(L))
    assert data["text/plain"] == L_LISTING  # not the quoted, escaped str repr
    assert data["text/html"].startswith("<table>")


@pytest.mark.skipif(not HAS_DOT, reason=NO_DOT)
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_render_with_dot(tmp_path: Path, suffix: str) -> None:
    L = L_graph()
    L.backward()
    out = render(L, tmp_path / f"L{suffix}")
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG")
    else:
        text = html.unescape(data.decode())
        for cell in ("data -8.0000", "grad 6.0000", ">*<", ">L<"):
            assert cell in text


@pytest.mark.skipif(not HAS_DOT, reason=NO_DOT)
def test_dot_accepts_labels_with_record_characters(tmp_path: Path) -> None:
    x = Value(1.0, label='a|b {c} <d> "e" \\f')
    y = x * 2.0
    y.label = "y\nz"
    out = render(y, tmp_path / "odd.svg")
    assert 'a|b {c} <d> "e"' in html.unescape(out.read_text())


def test_record_characters_are_escaped_in_dot_text() -> None:
    x = Value(1.0, label='a|b{c}"')
    text = to_dot(x)
    assert r'label="{ a\|b\{c\}\" | data 1.0000 | grad 0.0000 }"' in text


def test_render_without_dot_explains(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"Graphviz's 'dot' program.*svg pictures need nothing"):
        render(L_graph(), tmp_path / "L.png")
    with pytest.raises(ValueError, match="suffix"):
        render(L_graph(), tmp_path / "L")


def test_a_node_used_twice_has_two_edges_and_gradient_two() -> None:
    # the lecture's bug fix: b = a + a must give a.grad == 2
    a = Value(3.0, label="a")
    b = a + a
    b.label = "b"
    b.backward()
    nodes = graph(b)
    assert [(n.op, n.inputs) for n in nodes] == [("leaf", ()), ("add", (1, 1))]
    assert nodes[0].grad == 2.0
    assert to_dot(b).count("n1 -> n2op") == 2


def test_constants_and_reversed_subtraction() -> None:
    x = Value(2.0, label="x")
    y = 3.0 - x
    y.label = "y"
    z = (y * 2.0).tanh() / 4.0
    z.label = "z"
    z.backward()
    text = listing(z)
    assert "const - x" in text
    assert "y * const" in text
    assert "tanh(%3)" in text
    assert "%4 / const" in text
    # d z / d x = -2 (1 - tanh(2)^2) / 4
    assert x.grad == pytest.approx(-0.5 * (1 - math.tanh(2.0) ** 2), rel=1e-14)
    assert f"{x.grad:.4f}" in text.splitlines()[1]


def test_a_leaf_alone_and_unary_minus() -> None:
    x = Value(1.5, label="x")
    assert listing(x).splitlines()[1].split() == ["%1", "x", "leaf", "1.5000", "0.0000"]
    assert "-x" in listing(-x)
    with pytest.raises(TypeError, match="needs a Var"):
        graph(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rankdir"):
        to_dot(x, rankdir="XY")


def test_long_chain_across_tape_chunks() -> None:
    """A chain longer than a tape chunk: imports are followed, leaves are one node each."""
    n = engine.CHUNK_SIZE * 2 + 100
    x = Value(0.5, label="x")
    w = Value(0.9999, label="w")
    y = x
    for _ in range(n):
        y = y * w
    y.backward()
    nodes = graph(y)
    assert len(nodes) == n + 2
    assert [node.label for node in nodes[:2]] == ["x", "w"]
    assert sum(node.op == "leaf" for node in nodes) == 2
    assert all(all(i is not None and i < node.id for i in node.inputs) for node in nodes[2:])
    # d y / d w = n x w^(n-1), d y / d x = w^n
    assert nodes[1].grad == pytest.approx(n * 0.5 * 0.9999 ** (n - 1), rel=1e-9)
    assert nodes[0].grad == pytest.approx(0.9999**n, rel=1e-9)
    assert nodes[-1].data == pytest.approx(0.5 * 0.9999**n, rel=1e-9)


def test_only_what_the_output_depends_on() -> None:
    a = Value(1.0, label="a")
    b = Value(2.0, label="b")
    unrelated = a * 100.0  # recorded on the same tape, not an input of c
    c = b * 3.0
    assert unrelated.data == 100.0
    assert [n.label for n in graph(c)] == ["b", ""]


def test_primitive_with_three_inputs_is_one_node() -> None:
    fma = tg.primitive(
        lambda a, b, c: a * b + c,
        lambda a, b, c, out: b,
        lambda a, b, c, out: a,
        lambda a, b, c, out: 1.0,
        name="fma",
    )
    a, b, c = Value(2.0, label="a"), Value(3.0, label="b"), Value(4.0, label="c")
    r = fma(a, b, c)
    r.backward()
    nodes = graph(r)
    assert [(n.op, n.inputs) for n in nodes] == [
        ("leaf", ()),
        ("leaf", ()),
        ("leaf", ()),
        ("fma", (1, 2, 3)),
    ]
    assert nodes[-1].data == 10.0
    assert [n.grad for n in nodes[:3]] == [3.0, 2.0, 1.0]


def test_listing_inside_a_transform() -> None:
    seen: list[str] = []

    def f(x: Any) -> Any:
        y = tg.math.sin(x) * x
        y.label = "y"
        seen.append(listing(y))
        return y

    assert tg.grad(f)(1.0) == pytest.approx(math.sin(1.0) + math.cos(1.0))
    rows = [line.split() for line in seen[0].splitlines()[1:]]
    assert rows[0][:2] == ["%1", "input"]
    assert rows[-1][1:3] == ["y", "%2"]
    assert float(rows[-1][-2]) == pytest.approx(math.sin(1.0), abs=5e-5)


def test_duplicate_labels_fall_back_to_ids() -> None:
    p = Value(1.0, label="w")
    q = Value(2.0, label="w")
    r = p * q
    assert listing(r).splitlines()[-1].split()[1:4] == ["%1", "*", "%2"]
