"""Tests of tapegrad.explain: backprop written out from the tape, in text, HTML and a page.

References, never tapegrad against itself: the lecture's worked examples with
their hand-derived gradients (L = (a*b + c)*f gives 6, -4, -2, 4; the tanh
neuron's chain rule written out with math.tanh), closed forms, and micrograd
(the reference implementation) on the same expression. The page is opened in
headless Chromium when it is installed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tapegrad as tg
from tapegrad import Value, Var, engine
from tapegrad.cli import main
from tapegrad.explain import CSP, Explanation, ProgramError, run_program


def lecture_L() -> dict[str, Var]:
    """Seed 004's expression L = (a*b + c)*f with the lecture's labels."""
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    f = Value(-2.0, label="f")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    L = d * f
    L.label = "L"
    return {"a": a, "b": b, "c": c, "f": f, "e": e, "d": d, "L": L}


def neuron() -> dict[str, Var]:
    """Seed 002's neuron: o = tanh(x1*w1 + x2*w2 + b) with the lecture's numbers."""
    v = {
        "x1": Value(2.0, label="x1"),
        "x2": Value(0.0, label="x2"),
        "w1": Value(-3.0, label="w1"),
        "w2": Value(1.0, label="w2"),
        "b": Value(6.8813735870195432, label="b"),
    }
    v["x1w1"] = v["x1"] * v["w1"]
    v["x1w1"].label = "x1w1"
    v["x2w2"] = v["x2"] * v["w2"]
    v["x2w2"].label = "x2w2"
    v["sum"] = v["x1w1"] + v["x2w2"]
    v["sum"].label = "x1w1 + x2w2"
    v["n"] = v["sum"] + v["b"]
    v["n"].label = "n"
    v["o"] = v["n"].tanh()
    v["o"].label = "o"
    return v


# ---------------------------------------------------------------------------
# The numbers
# ---------------------------------------------------------------------------


def test_lecture_L_gradients_are_the_hand_derived_ones() -> None:
    v = lecture_L()
    ex = tg.explain(v["L"])
    assert isinstance(ex, Explanation)
    a, b, c, f = 2.0, -3.0, 10.0, -2.0
    # by hand: L = (a*b + c) * f
    hand = {"a": b * f, "b": a * f, "c": f, "f": a * b + c}
    assert hand == {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0}  # seed 004's numbers
    assert ex.leaf_grads == hand
    assert ex.grads["e"] == f and ex.grads["d"] == f and ex.grads["L"] == 1.0
    text = str(ex)
    assert "a.grad += -3.0 * -2.0 = 6.0" in text
    assert "b.grad += 2.0 * -2.0 = -4.0" in text
    assert "e = a * b = 2.0 * -3.0 = -6.0" in text
    assert "L = d * f = 4.0 * -2.0 = -8.0" in text
    assert "# d(e)/d(a) * e.grad" in text
    assert text.splitlines()[-4:] == [
        "  a.grad = 6.0",
        "  b.grad = -4.0",
        "  c.grad = -2.0",
        "  f.grad = 4.0",
    ]


def test_backward_lines_follow_the_tape_backwards_one_per_edge() -> None:
    ex = tg.explain(lecture_L()["L"])
    edges = [(ex.names[s.source], ex.names[s.target]) for s in ex.backward[1:]]
    # entries e, d, L were recorded in that order: the sweep reads L, d, e
    assert edges == [("L", "d"), ("L", "f"), ("d", "e"), ("d", "c"), ("e", "a"), ("e", "b")]
    assert ex.backward[0].text == "L.grad = 1.0" and ex.backward[0].source is None
    for step in ex.backward[1:]:
        assert step.contribution == step.partial * step.adjoint


def test_the_tanh_neuron_against_the_chain_rule_by_hand() -> None:
    v = neuron()
    ex = tg.explain(v["o"])
    x1, x2, w1, w2, b = 2.0, 0.0, -3.0, 1.0, 6.8813735870195432
    o = math.tanh(x1 * w1 + x2 * w2 + b)
    dn = 1.0 - o**2  # d tanh(n) / dn
    hand = {"x1": w1 * dn, "w1": x1 * dn, "x2": w2 * dn, "w2": x2 * dn, "b": dn}
    assert ex.leaf_grads.keys() == hand.keys()
    for name, g in hand.items():
        assert ex.leaf_grads[name] == pytest.approx(g, rel=1e-12, abs=1e-15), name
    # the lecture's printed numbers (seed 002): x1 -1.5, w1 1.0, o 0.7071
    assert ex.leaf_grads["x1"] == pytest.approx(-1.5, abs=1e-6)
    assert ex.leaf_grads["w1"] == pytest.approx(1.0, abs=1e-6)
    assert ex.grads["n"] == pytest.approx(0.5, abs=1e-6)
    text = str(ex)
    assert "o = tanh(n) = tanh(0.8814) = 0.7071" in text
    assert "x1.grad += -3.0 * 0.5 = -1.5" in text
    assert "w2.grad += 0.0 * 0.5 = 0.0" in text


def test_a_node_used_twice_gets_two_lines_and_accumulates() -> None:
    a = Value(3.0, label="a")
    b = a + a
    b.label = "b"
    ex = tg.explain(b)
    into_a = [s for s in ex.backward if ex.names[s.target] == "a"]
    assert [s.text for s in into_a] == ["a.grad += 1.0 * 1.0 = 1.0"] * 2
    assert [s.total for s in into_a] == [1.0, 2.0]
    assert [s.contributions for s in into_a] == [1, 2]
    assert ex.leaf_grads == {"a": 2.0}  # d(a + a)/da
    assert "a.grad is now 2.0" in str(ex)


def test_explain_leaves_grad_alone() -> None:
    v = lecture_L()
    tg.explain(v["L"])
    assert all(x.grad == 0.0 for x in v.values())
    v["L"].backward()
    after_backward = {k: x.grad for k, x in v.items()}
    ex = tg.explain(v["L"])
    str(ex), ex._repr_html_()
    assert {k: x.grad for k, x in v.items()} == after_backward  # not added twice
    # ... and the explanation agrees with backward()'s own result
    assert ex.leaf_grads == {k: after_backward[k] for k in "abcf"}


def test_against_micrograd_on_a_larger_expression() -> None:
    micrograd = pytest.importorskip("micrograd.engine")
    inputs = {"x": -4.0, "y": 2.0, "z": 0.5}

    def program(x: Any, y: Any, z: Any) -> Any:
        c = x + y
        d = x * y + y**3
        c = c + c + 1
        c = c + 1 + c + (-x)
        d = d + d * 2 + (y + x).relu()
        e = c - d
        f = e**2
        g = f / 2.0
        return g + 10.0 / f + z * x * z

    ours = {k: Value(val, label=k) for k, val in inputs.items()}
    theirs = {k: micrograd.Value(val) for k, val in inputs.items()}
    program(**theirs).backward()
    ex = tg.explain(program(**ours))
    for k in inputs:
        assert ex.leaf_grads[k] == pytest.approx(theirs[k].grad, rel=1e-12), k


def test_constants_chains_and_leaves_on_their_own() -> None:
    a = Value(3.0, label="a")
    ex = tg.explain((a * 2.0 + 1.0) ** 2)
    assert ex.leaf_grads == {"a": 2 * (2 * 3.0 + 1.0) * 2}  # d/da (2a + 1)^2
    assert "%2 = a * const = 3.0 * const = 6.0" in str(ex)
    alone = tg.explain(a)
    assert alone.leaf_grads == {"a": 1.0} and str(alone).splitlines()[1] == "  a = 3.0   leaf"


def test_a_primitive_of_three_inputs_recorded_as_a_chain() -> None:
    fma = tg.primitive(
        lambda x, y, z: x * y + z,
        lambda x, y, z, out: y,
        lambda x, y, z, out: x,
        lambda x, y, z, out: 1.0,
        name="fma",
    )
    x, y, z = Value(2.0, label="x"), Value(5.0, label="y"), Value(7.0, label="z")
    out = fma(x, y, z) * 3.0
    ex = tg.explain(out)
    assert ex.leaf_grads == {"x": 5.0 * 3.0, "y": 2.0 * 3.0, "z": 3.0}
    assert "fma(x, y, z)" in str(ex)


def test_a_graph_across_chunks_of_the_tape() -> None:
    x = Value(1.0, label="x")
    y: Any = x
    n = engine.CHUNK_SIZE + 50  # crosses into a second chunk: an import entry
    for _ in range(n):
        y = y * 1.0001
    ex = tg.explain(y)
    assert len(ex.forward) == n + 1
    assert ex.leaf_grads["x"] == pytest.approx(1.0001**n, rel=1e-9)


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="explain\\(\\) needs a Var, not float"):
        tg.explain(2.0)  # type: ignore[arg-type]


def test_notebook_tables_escape_labels() -> None:
    a = Value(1.0, label="<b>a</b>")
    html = tg.explain(a * a)._repr_html_()
    assert html.count("<table>") == 3
    assert "&lt;b&gt;a&lt;/b&gt;" in html and "<b>a</b>" not in html


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------


def test_page_is_self_contained(tmp_path: Path) -> None:
    a = Value(2.0, label="</script><script>alert(1)</script>")
    page = tg.explain(a * a).to_html(tmp_path / "page.html")
    text = page.read_text()
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in text
    assert "default-src 'none'" in CSP
    assert not re.search(r"https?:|//[\w.]+/|\bsrc=|<link|@import|url\(", text)
    assert text.count("</script>") == 2  # the label cannot close a script
    assert "<svg" in text and "<script>" in text


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

PROGRAM = "a = 2.0; b = -3.0; c = 10.0; f = -2.0; e = a * b; d = e + c; L = d * f"


def test_cli_explains_the_lecture(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    page = tmp_path / "L.html"
    assert main(["explain", PROGRAM, "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "a.grad += -3.0 * -2.0 = 6.0" in out
    assert out.splitlines()[-5:] == [
        "  a.grad = 6.0",
        "  b.grad = -4.0",
        "  c.grad = -2.0",
        "  f.grad = 4.0",
        f"wrote {page}",
    ]
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_the_language() -> None:
    o = run_program(
        "x = 0.5; w = -2; o = tanh(x * w) + math.exp(x) - tg.math.log(-w) / x.sigmoid()"
    )
    expected = math.tanh(-1.0) + math.exp(0.5) - math.log(2.0) / (1 / (1 + math.exp(-0.5)))
    assert o.label == "o" and o.data == pytest.approx(expected, rel=1e-15)
    assert run_program("k = pi ** 2").data == math.pi**2  # a number assigned: a leaf
    assert run_program("a = 1.5\nb = +a ** a.pow(2)").label == "b"


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("x = __import__('os')", "__import__ is not a tapegrad.math function"),
        ("x = __import__('os').system('true')", "system is not allowed"),
        ("a = 1.0; b = a.data", "a.data reads an attribute"),
        ("a = 1.0; b = a.__class__()", "a.__class__ is not allowed"),
        ("a = 1.0; b = a.backward()", "a.backward is not allowed"),
        ("f = lambda: 1", "lambda: 1 is not allowed \\(Lambda\\)"),
        ("a = [1.0][0]", "is not allowed \\(Subscript\\)"),
        ("import os", "import os is not an assignment"),
        ("a = 1.0; a.label = 'x'", "assigns to something other than a plain name"),
        ("a = 'x'", "'x' is not a number"),
        ("a = True", "True is not a number"),
        ("a = b + 1.0", "b is not assigned before it is used"),
        ("a = 1.0; b = a if a else a", "is not allowed \\(IfExp\\)"),
        ("a = tanh(x=1.0)", "keyword or starred"),
        ("a = 1 / 0", "a = 1 / 0 fails: float division by zero"),
        ("a = log(-1.0)", "fails: "),
        ("a = 2.0; b = a; c = b", "only gives a second name"),
        ("a = (", "not Python syntax"),
        ("", "the program is empty"),
        ("a = " + "-" * 200_000 + "1.0", "at most 10000"),
    ],
)
def test_the_language_refuses(
    program: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ProgramError, match=message):
        run_program(program)
    assert main(["explain", program]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tapegrad explain: error: ")


def test_cli_in_a_process_never_runs_what_it_refuses(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    bad = f"x = __import__('pathlib').Path({str(marker)!r}).touch()"
    result = subprocess.run(
        [sys.executable, "-m", "tapegrad", "explain", bad], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2 and not marker.exists()
    assert "touch is not allowed: the Var methods are" in result.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "tapegrad", "--help"], capture_output=True, text=True, env=env
    ).stdout
    assert "explain" in help_text


# ---------------------------------------------------------------------------
# The page in a browser
# ---------------------------------------------------------------------------

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium; .ci/run installs it where "
    "apt works), so the page is not opened in a browser",
)

# Appended to a copy of the page: press the right arrow once per step (and a
# few more: the last step must stay the last), then record in the DOM what
# the page asked the network for (the Resource Timing entries) and its CSP.
_PRESS_RIGHT = """<script>
for (let i = 0; i < STEPS.length + 3; i++) {
  document.dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowRight", bubbles: true}));
}
const report = document.createElement("pre");
report.id = "test-report";
report.textContent = JSON.stringify({
  resources: performance.getEntriesByType("resource").map((e) => e.name),
  position: document.getElementById("position").textContent,
});
document.body.appendChild(report);
</script>
"""


def _chromium(*args: str, page: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where the sandbox cannot start
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,800",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@needs_chromium
def test_page_in_chromium_steps_to_the_tape_grads(tmp_path: Path) -> None:
    v = lecture_L()
    ex = tg.explain(v["L"])
    page = ex.to_html(tmp_path / "L.html")

    # A screenshot of the page as it opens is not blank.
    Image = pytest.importorskip("PIL.Image", reason="Pillow (a matplotlib dependency) reads PNGs")
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", page=page, tmp_path=tmp_path)
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20, "the screenshot is (nearly) one colour"
    white = max(colours)[0] / sum(count for count, _ in colours)
    assert white < 0.97, "the screenshot is almost empty"

    # Press the right arrow through every step: the leaf grads are the tape's.
    stepped = tmp_path / "stepped.html"
    stepped.write_text(page.read_text().replace("</body>", _PRESS_RIGHT + "</body>"))
    dom = _chromium("--dump-dom", "--virtual-time-budget=3000", page=stepped, tmp_path=tmp_path)
    html = dom.stdout
    steps = len(ex.forward) + len(ex.backward)
    assert f"{steps} / {steps}" in html
    shown = {}
    for node in ex.nodes:
        m = re.search(
            rf'<text id="grad-{node.id}"[^>]*data-value="([^"]+)"[^>]*>grad ([^<]+)<', html
        )
        assert m is not None, f"no grad shown for {ex.names[node.id]}"
        shown[ex.names[node.id]] = float(m.group(1))
        assert m.group(2) == f"{float(m.group(1)):.1f}"  # these grads are whole numbers
    assert {k: shown[k] for k in "abcf"} == {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0}
    assert shown == ex.grads
    assert all(x.grad == 0.0 for x in v.values())
    # Nothing was requested: no resource entries, and the CSP allowed none.
    report = re.search(r'<pre id="test-report">([^<]*)</pre>', html)
    assert report is not None
    assert '"resources":[]' in report.group(1).replace("&quot;", '"')
