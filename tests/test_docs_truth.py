"""The documentation tells the truth, and keeps telling it.

Three rules over the prose users read: README.md, docs/ (pages and the
markdown cells of the notebooks), benchmarks/README.md and tapegrad's own
docstrings and comments (which the reference pages render):

1. **Nothing is "coming".** A page describes what the installed tapegrad
   does. ``coming``, ``upcoming``, ``forthcoming``, ``coming soon`` (any case)
   are flagged; ``coming from`` and ``coming-from`` (the migration page's
   title and file name) and words that merely contain the letters
   (``incoming``) are not.
2. **No issue numbers.** ``issue 9``, ``issues 9 and 10``, ``#9``: the
   tracker's numbering means nothing to a reader and goes stale. HTML
   character references (``&#39;``) and colours are not issue numbers.
3. **Every speed or memory figure comes from the benchmarks.** A ratio
   written with a decimal point (``1.7x``, ``2.4 times``) or a byte count per
   op (``69.5 B/op``, ``69.5 bytes per recorded op``) in any page but
   docs/benchmarks.md must appear in docs/benchmarks.md, which
   ``python benchmarks/run.py`` generates. Whole-number multiples (``2x``,
   ``~15x``) are left alone: they are mostly arithmetic (``d/dx x**2 = 2x``)
   or rounded quotes. A figure measured elsewhere for a reason (an ablation
   behind a design decision) goes in ALLOWED below, with the page and why.

docs/benchmarks.md itself is generated and is checked only for rule 1 and 2.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BENCHMARKS = DOCS / "benchmarks.md"

COMING = re.compile(r"\b(?:up|forth)?coming\b(?![\s-]+from\b)", re.IGNORECASE)
ISSUE = re.compile(
    r"\bissues?\s+#?\d+|(?<![\w&/#])(?<!:\s)(?<!:)#\d+\b(?![0-9a-fA-F])", re.IGNORECASE
)
RATIO = re.compile(r"(?<![\w.])(\d+\.\d+)\s?(?:x\b|times\b)")
BYTES = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s?(?:B/op\b|B per op\b|bytes per (?:recorded )?op\b)"
)

# (page relative to the repository, figure as written): why it is not from docs/benchmarks.md
_VMAP_BLOCKS = (
    "W4 peak memory against inputs + outputs, measured by benchmarks/vmap_blocks.py "
    "(the page says how)"
)
ALLOWED: dict[tuple[str, str], str] = {
    ("docs/scale.md", "1.04 times"): _VMAP_BLOCKS,
    ("docs/scale.md", "1.92 times"): _VMAP_BLOCKS,
    ("docs/scale.md", "2.71 times"): _VMAP_BLOCKS,
}

# The benchmarks' own reports: figures there are what benchmarks/ measured
# (the generated report, and the README's before/after comparisons of two
# versions, run by hand as it describes).
REPORTS = {"docs/benchmarks.md", "benchmarks/README.md"}


@dataclass(frozen=True)
class Text:
    """Prose to check: where it comes from (for messages) and what it says."""

    where: str  # repository-relative path, with the notebook cell when there is one
    text: str

    @property
    def page(self) -> str:
        return self.where.split(" cell ")[0]


def _notebook_markdown(path: Path) -> list[Text]:
    cells = json.loads(path.read_text())["cells"]
    rel = path.relative_to(ROOT).as_posix()
    return [
        Text(f"{rel} cell {i}", "".join(c["source"]))
        for i, c in enumerate(cells)
        if c["cell_type"] == "markdown"
    ]


def pages() -> list[Text]:
    """README.md, benchmarks/README.md, every docs page and the notebooks' prose."""
    paths = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    paths += sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
    out = [Text(p.relative_to(ROOT).as_posix(), p.read_text()) for p in paths]
    for nb in sorted(DOCS.rglob("*.ipynb")):
        if "_build" not in nb.parts and ".ipynb_checkpoints" not in nb.parts:
            out += _notebook_markdown(nb)
    return out


def sources() -> list[Text]:
    """tapegrad's modules, whose docstrings the reference pages render."""
    return [
        Text(p.relative_to(ROOT).as_posix(), p.read_text())
        for p in sorted((ROOT / "tapegrad").rglob("*.py"))
    ]


def _line(text: str, offset: int) -> tuple[int, str]:
    number = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return number, text[start : end if end >= 0 else len(text)].strip()


def findings(texts: list[Text], pattern: re.Pattern[str]) -> list[str]:
    found = []
    for t in texts:
        for m in pattern.finditer(t.text):
            number, line = _line(t.text, m.start())
            found.append(f"{t.where}:{number}: {m.group(0)!r} in: {line}")
    return found


def test_nothing_is_coming() -> None:
    found = findings(pages() + sources(), COMING)
    assert not found, (
        "Docs describe the tapegrad that is installed. Say what works today, or leave the "
        "feature out; do not promise ('coming', 'upcoming', 'forthcoming'):\n" + "\n".join(found)
    )


def test_no_issue_numbers() -> None:
    found = findings(pages() + sources(), ISSUE)
    assert not found, (
        "Issue numbers mean nothing to a reader and go stale: say what the feature or the "
        "target is instead of which issue asked for it:\n" + "\n".join(found)
    )


def _benchmark_numbers() -> set[str]:
    """Every number written in docs/benchmarks.md, as written (``69.5``, ``1.7``)."""
    return set(re.findall(r"\d+(?:\.\d+)?", BENCHMARKS.read_text()))


def test_speed_and_memory_figures_are_quoted_from_the_benchmarks() -> None:
    measured = _benchmark_numbers()
    ratios = set(re.findall(r"(\d+\.\d+)x", BENCHMARKS.read_text()))
    found = []
    for t in pages():
        if t.page in REPORTS:
            continue
        for pattern, known in ((RATIO, ratios), (BYTES, measured)):
            for m in pattern.finditer(t.text):
                figure = m.group(0)
                if m.group(1) in known or (t.page, figure) in ALLOWED:
                    continue
                number, line = _line(t.text, m.start())
                found.append(f"{t.where}:{number}: {figure!r} in: {line}")
    assert not found, (
        "A speed or memory figure must be one docs/benchmarks.md reports (run "
        "`python benchmarks/run.py` to measure it, then quote the figure as the page writes it). "
        "A figure measured another way for a reason goes in ALLOWED in "
        "tests/test_docs_truth.py with the page and the reason:\n" + "\n".join(found)
    )


def test_allowed_figures_are_still_on_their_pages() -> None:
    """An allow-list entry whose figure is gone must go too, or it hides the next one."""
    texts = {t.page: t.text for t in pages()}
    stale = [f"{page}: {figure}" for page, figure in ALLOWED if figure not in texts.get(page, "")]
    assert not stale, "remove these from ALLOWED in tests/test_docs_truth.py: " + ", ".join(stale)


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("`tg.stop_gradient` is coming", True),
        ("Coming soon: vmap", True),
        ("an upcoming release", True),
        ("forthcoming", True),
        ("# Coming from micrograd, JAX or PyTorch", False),
        ("coming  from PyTorch", False),
        ("[the page](coming-from.md)", False),
        ("one incoming edge", False),
        ("becoming", False),
    ],
)
def test_the_coming_rule(text: str, flagged: bool) -> None:
    assert bool(COMING.search(text)) is flagged


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("coming with issue 9", True),
        ("the targets of issues 9 and 10", True),
        ("fixed in #16", True),
        ("Issue #3", True),
        ("it&#39;s", False),
        ("colour #92c5de", False),
        ("colour #123abc", False),
        ("color: #222;", False),
        ("stroke:#555", False),
        ("https://example.org/page#12", False),
        ("listing ids %7 and %12", False),
        ("# 1. What a derivative says", False),
    ],
)
def test_the_issue_rule(text: str, flagged: bool) -> None:
    assert bool(ISSUE.search(text)) is flagged


@pytest.mark.parametrize(
    ("text", "figure"),
    [
        ("costs 15.1x plain floats", "15.1"),
        ("at 2.4 times plain", "2.4"),
        ("0.084x of one plain call", "0.084"),
        ("69.5 B/op", "69.5"),
        ("about 40 bytes per recorded op", "40"),
        ("d/dx x**2 = 2x", None),
        ("~15x", None),
        ("version 1.7x86", None),
    ],
)
def test_the_figure_rules(text: str, figure: str | None) -> None:
    m = RATIO.search(text) or BYTES.search(text)
    assert (m.group(1) if m else None) == figure


def test_the_benchmarks_page_has_the_figures_the_docs_quote() -> None:
    """The reference the figure rule compares with: the generated page, with its numbers."""
    text = BENCHMARKS.read_text()
    assert text.startswith("# Benchmarks\n\nGenerated by `python benchmarks/run.py`")
    assert {"69.5", "16.7", "1.9"} <= _benchmark_numbers()  # quoted by README.md
