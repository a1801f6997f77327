"""Tests of tapegrad.layered, the built-in layout that draws ``draw_dot`` without Graphviz.

References: the SVG is parsed as XML by the standard library (well-formed,
escaped); geometry is checked on the parsed boxes and paths (no two nodes
overlap, every edge runs from one node's far side to the next node's near
side, in the direction ``rankdir`` asks); crossings are counted against a
brute-force pair count; the packing step against SciPy's constrained
least-squares solver; and one documentation page is built by Sphinx with no
``dot`` on the ``PATH`` and must contain pictures.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tapegrad import Value, Var, layered
from tapegrad.nn import MLP
from tapegrad.viz import graph

ROOT = Path(__file__).resolve().parents[1]
NS = "{http://www.w3.org/2000/svg}"
Box = tuple[float, float, float, float]  # left, top, right, bottom


def micrograd_readme() -> Var:
    """micrograd's README example: 27 nodes, reuse, relu, powers, division."""
    a = Value(-4.0, label="a")
    b = Value(2.0, label="b")
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    return g


def mlp_output() -> Var:
    """The lecture's MLP(3, [4, 4, 1]) on one input: 113 nodes."""
    out = MLP(3, [4, 4, 1], rng=random.Random(0))([2.0, 3.0, -1.0])
    assert isinstance(out, Var)
    out.backward()
    return out


def boxes(root: ET.Element) -> list[Box]:
    """Bounding boxes of the nodes: records (rects but the background) and op ovals."""
    found = []
    for rect in root.iter(f"{NS}rect"):
        if rect.get("fill") == "white" and rect.get("x") is None:  # the background
            continue
        x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
        found.append((x, y, x + float(rect.get("width", 0)), y + float(rect.get("height", 0))))
    for oval in root.iter(f"{NS}ellipse"):
        cx, cy = float(oval.get("cx", 0)), float(oval.get("cy", 0))
        rx, ry = float(oval.get("rx", 0)), float(oval.get("ry", 0))
        found.append((cx - rx, cy - ry, cx + rx, cy + ry))
    return found


def edges(root: ET.Element) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """(start, end) of each edge path."""
    ends = []
    for path in root.iter(f"{NS}path"):
        if path.get("marker-end") is None:  # the arrowhead's own shape
            continue
        numbers = [float(n) for n in re.findall(r"-?[\d.]+", path.get("d", ""))]
        ends.append(((numbers[0], numbers[1]), (numbers[-2], numbers[-1])))
    return ends


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5


def on_side(point: tuple[float, float], box: Box, side: str) -> bool:
    """Whether ``point`` is on the middle of ``box``'s ``side`` (left, right, top, bottom)."""
    x, y = point
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    near = {
        "left": (box[0], cy),
        "right": (box[2], cy),
        "top": (cx, box[1]),
        "bottom": (cx, box[3]),
    }
    return abs(near[side][0] - x) < 0.2 and abs(near[side][1] - y) < 0.2


# where an edge leaves its source and enters its target, per rankdir
SIDES = {
    "LR": ("right", "left"),
    "RL": ("left", "right"),
    "TB": ("bottom", "top"),
    "BT": ("top", "bottom"),
}


@pytest.mark.parametrize("rankdir", layered.RANKDIRS)
@pytest.mark.parametrize("build", [micrograd_readme, mlp_output], ids=["readme", "mlp"])
def test_nodes_do_not_overlap_and_edges_run_between_them(build, rankdir: str) -> None:  # type: ignore[no-untyped-def]
    nodes = graph(build())
    root = ET.fromstring(layered.svg(nodes, rankdir))
    found = boxes(root)
    ops = sum(not n.is_leaf for n in nodes)
    assert len(found) == len(nodes) + ops  # a record per value, an oval per op
    for a, b in itertools.combinations(found, 2):
        assert not overlap(a, b), (a, b)
    width, height = (float(v) for v in root.get("viewBox", "").split()[2:])
    assert all(b[0] >= 0 and b[2] <= width and b[1] >= 0 and b[3] <= height for b in found)
    arrows = edges(root)
    assert len(arrows) == ops + sum(i is not None for n in nodes for i in n.inputs)
    leave, enter = SIDES[rankdir]
    for start, end in arrows:
        assert any(on_side(start, b, leave) for b in found), start
        assert any(on_side(end, b, enter) for b in found), end


def test_labels_are_escaped_and_split_into_lines() -> None:
    x = Value(1.0, label="say \"hi\" <b> & 'x'\nnext\x01line\ttab")
    y = x * 2.0
    y.label = "]]> &amp;"
    svg = layered.svg(graph(y))
    assert "<b>" not in svg and "\x01" not in svg
    root = ET.fromstring(svg)  # well-formed: every special character escaped
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "say \"hi\" <b> & 'x'" in texts
    assert "next\ufffdline    tab" in texts  # a control character XML cannot hold
    assert "]]> &amp;" in texts
    lines = [
        t
        for t in root.iter(f"{NS}text")
        if t.text in ("say \"hi\" <b> & 'x'", "next\ufffdline    tab")
    ]
    assert float(lines[1].get("y", 0)) > float(lines[0].get("y", 0))  # the second line below


def test_an_op_without_a_symbol_is_drawn_with_its_name_and_a_leaf_alone() -> None:
    root = ET.fromstring(layered.svg(graph(Value(3.0, label="x"))))
    assert [t.text for t in root.iter(f"{NS}text")] == ["x", "data 3.0000", "grad 0.0000"]
    assert edges(root) == []


def test_rankdir_is_checked() -> None:
    with pytest.raises(ValueError, match="rankdir must be one of LR, RL, TB, BT, not 'XY'"):
        layered.svg(graph(Value(1.0)), "XY")


def brute_force_crossings(layers: list[list[int]], succs: dict[int, list[int]]) -> int:
    count = 0
    for upper, lower in itertools.pairwise(layers):
        pos = {k: i for i, k in enumerate(upper)} | {k: i for i, k in enumerate(lower)}
        pairs = [(pos[u], pos[v]) for u in upper for v in succs.get(u, [])]
        for (a, b), (c, d) in itertools.combinations(pairs, 2):
            count += (a - c) * (b - d) < 0
    return count


@pytest.mark.parametrize("seed", range(20))
def test_crossings_are_counted_exactly(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.randint(1, 7) for _ in range(rng.randint(2, 5))]
    layers, k = [], 0
    for size in sizes:
        layers.append(list(range(k, k + size)))
        k += size
    drawn = [layered._Node("dummy", []) for _ in range(k)]
    succs: dict[int, list[int]] = {}
    for upper, lower in itertools.pairwise(layers):
        for u in upper:
            for v in lower:
                if rng.random() < 0.4:
                    drawn[u].succs.append(v)
                    succs.setdefault(u, []).append(v)
    for layer in layers:
        rng.shuffle(layer)
    index = [0] * k
    for layer in layers:
        for i, node in enumerate(layer):
            index[node] = i
    assert layered._crossings(layers, drawn, index) == brute_force_crossings(layers, succs)


def test_a_tree_is_drawn_without_crossings() -> None:
    """A sum tree whose leaves were combined in a scrambled order: an order exists with none."""
    rng = random.Random(5)
    leaves = [Value(float(i), label=f"x{i}") for i in range(16)]
    rng.shuffle(leaves)
    level: list[Var] = leaves
    while len(level) > 1:
        level = [level[i] + level[i + 1] for i in range(0, len(level), 2)]
        rng.shuffle(level)
    drawn, edge_list = layered._build(graph(level[0]))
    layered._assign_layers(drawn, edge_list)
    layered._add_dummies(drawn, edge_list)
    order = layered._order(drawn)
    index = [0] * len(drawn)
    for layer in order:
        for i, node in enumerate(layer):
            index[node] = i
    assert layered._crossings(order, drawn, index) == 0


@pytest.mark.parametrize(
    ("desired", "gaps", "expected"),
    [
        ([0.0, 0.0, 0.0], [10.0, 10.0], [-10.0, 0.0, 10.0]),  # pushed apart evenly
        ([0.0, 50.0], [10.0], [0.0, 50.0]),  # far enough already: untouched
        ([5.0, 0.0], [2.0], [1.5, 3.5]),  # out of order: meet in the middle
    ],
)
def test_pack_by_hand(desired: list[float], gaps: list[float], expected: list[float]) -> None:
    assert layered._pack(desired, gaps, [1.0] * len(desired)) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(10))
def test_pack_is_the_constrained_least_squares_optimum(seed: int) -> None:
    optimize = pytest.importorskip("scipy.optimize")
    np = pytest.importorskip("numpy")
    rng = random.Random(seed)
    n = rng.randint(2, 8)
    desired = [rng.uniform(-20, 20) for _ in range(n)]
    gaps = [rng.uniform(1, 10) for _ in range(n - 1)]
    weights = [rng.choice([0.1, 1.0, 4.0]) for _ in range(n)]
    got = layered._pack(desired, gaps, weights)
    assert all(b - a >= g - 1e-9 for a, b, g in zip(got, got[1:], gaps))

    # The same problem in independent variables: p = p0 + cumulative (gap + slack),
    # slack >= 0, solved by SciPy's bounded linear least squares.
    lower_triangle = np.tril(np.ones((n, n - 1)), -1)
    design = np.hstack([np.ones((n, 1)), lower_triangle]) * np.sqrt(weights)[:, None]
    target = (np.array(desired) - lower_triangle @ np.array(gaps)) * np.sqrt(weights)
    bounds = ([-np.inf] + [0.0] * (n - 1), [np.inf] * n)
    solution = optimize.lsq_linear(design, target, bounds=bounds, tol=1e-12).x
    reference = solution[0] + lower_triangle @ (np.array(gaps) + solution[1:])
    assert got == pytest.approx(list(reference), abs=1e-6)


def test_a_docs_page_built_without_dot_shows_svg_pictures(tmp_path: Path) -> None:
    """The docs site's path: Sphinx executes docs/tape.md (its draw_dot cells) with no dot."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "docs" / "conf.py", source / "conf.py")
    page = (ROOT / "docs" / "tape.md").read_text()
    assert page.count("draw_dot(") >= 2
    (source / "index.md").write_text(page)
    # Only the interpreter's own directory on the PATH: no dot, wherever it is installed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir), "PYTHONPATH": str(ROOT)}
    probe = subprocess.run(
        [sys.executable, "-c", "import shutil; print(shutil.which('dot'))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "None"
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(source), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    html_page = (out / "index.html").read_text()
    images = [out / src for src in re.findall(r'<img[^>]+src="([^"]+\.svg)"', html_page)]
    inline = html_page.count("<svg")
    pictures = [p.read_text() for p in images if p.exists()]
    assert len(pictures) + inline >= 2, "the page shows no SVG picture"
    drawn = "".join(pictures) + html_page
    assert "data -6.0000" in drawn  # the first picture's e = a * b, drawn without dot
    assert "// DotGraph" not in html_page  # no DOT text in place of a picture
