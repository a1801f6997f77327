"""The documentation: its examples run, and the API reference covers the contract.

pytest itself runs every ``>>>`` example of ``docs/**/*.md`` and of tapegrad's
docstrings (``--doctest-glob``/``--doctest-modules`` in pyproject.toml, with no
option flags, so ``python -m doctest docs/page.md`` agrees; checked below).
This module adds what doctest cannot see:

* every public name of the API contract (``shared/API.md``, read here) is on a
  page of ``docs/reference/`` with a docstring and an example, except the
  names in ``PENDING``, which must still be missing from tapegrad;
* the notebooks' code cells run and display through IPython's formatter, as
  in Jupyter (the docs build executes them with a kernel too);
* the README's examples print what the README says.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import inspect
import io
import itertools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import tapegrad
from tapegrad.rules import RULES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
NOTEBOOKS = sorted((DOCS / "notebooks").glob("*.ipynb"))


def _find_api_md() -> Path | None:
    """The API contract: ``shared/API.md`` beside the repository (or above it)."""
    for base in (ROOT, *ROOT.parents):
        candidate = base / "shared" / "API.md"
        if candidate.is_file():
            return candidate
    return None


API_MD = _find_api_md()

# Names of the contract that tapegrad does not have yet. Each is checked to be
# still missing: when one lands, the test fails until it is taken out of here
# and given its one line on a reference page (`.. autofunction:: <name>`).
PENDING: set[str] = set()

# Words in API.md's code that are not tapegrad names: Python's builtins and
# exceptions, other libraries, and the placeholders and parameter names of the
# signatures. A new word in API.md must be classified here, in PENDING, or be
# a documented tapegrad name.
NOT_API = {
    *("bool", "float", "str", "len", "hash", "round", "divmod", "if", "pickle", "asarray"),
    *("TypeError", "ValueError", "ZeroDivisionError", "AssertionError"),
    *("f", "x", "v", "i", "args", "argnums", "has_aux", "order", "primals", "tangents"),
    *("vjp_fn", "activation", "prog"),
    *("int", "dict", "min", "max", "format", "eval", "True", "KeyError"),
    *("in_axes", "program"),
}

# Where a bare word of API.md is looked up, in this order: the package, then
# tapegrad.math (whose names API.md lists bare), the nn module, the members
# of Var, of nn.Module, of what draw_dot returns, of Program and Explanation.
_NAMESPACES = (
    "tapegrad",
    "tapegrad.math",
    "tapegrad.nn",
    "tapegrad.Var",
    "tapegrad.nn.Module",
    "tapegrad.viz.DotGraph",
    "tapegrad.Program",
    "tapegrad.Explanation",
)
_IDENT = r"[A-Za-z_]\w*"


def api_words(text: str) -> set[str]:
    """The names used in API.md's code: inline spans and ``tg.`` names in blocks.

    A span that is a list of words gives each word (``relu tanh exp``); a call
    gives the called name (``grad(f, argnums=0)(*args)`` gives ``grad``,
    ``.render(path)`` gives ``render``); ``tg.math.sigmoid`` gives
    ``math.sigmoid``. Operators, expressions and shell lines give nothing.
    """
    blocks = re.findall(r"```\w*\n(.*?)```", text, re.S)
    prose = re.sub(r"```\w*\n.*?```", "", text, flags=re.S)
    words: set[str] = set()
    for span in (" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose)):
        call = re.match(rf"(?:\w+\.)*\.?({_IDENT})\(", span)
        qualified = re.fullmatch(rf"(?:tg|tapegrad)\.({_IDENT}(?:\.{_IDENT})*)", span)
        attribute = re.fullmatch(rf"\.({_IDENT})", span)
        if re.fullmatch(rf"{_IDENT}( {_IDENT})*", span):
            words.update(span.split())
        elif m := call or qualified or attribute:
            words.add(m.group(1))
    for block in blocks:
        words.update(re.findall(rf"\b(?:tg|tapegrad)\.((?:{_IDENT}\.)*{_IDENT})", block))
        words.update(re.findall(rf"\w\.({_IDENT})\(", block))
    return words


@dataclass(frozen=True)
class Attribute:
    """An attribute a class declares by annotation only (its value is per instance)."""

    owner: type
    name: str

    @property
    def doc(self) -> str:
        """The string literal under the annotation, as autodoc reads it."""
        for cls in self.owner.__mro__:
            try:
                tree = ast.parse(inspect.getsource(cls).lstrip())  # a method-level class too
            except (OSError, TypeError):
                continue
            body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
            for stmt, after in itertools.pairwise(body):
                target = stmt.target if isinstance(stmt, ast.AnnAssign) else None
                named = isinstance(target, ast.Name) and target.id == self.name
                if named and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                    return inspect.cleandoc(str(after.value.value))
        return ""


def _resolve(dotted: str) -> Any:
    """The object named ``dotted`` (importing modules on the way), or None."""
    parts = dotted.split(".")
    obj: Any = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if isinstance(obj, ModuleType):
            public = getattr(obj, "__all__", None)
            if public is not None and part not in public:
                try:  # a submodule (tapegrad.testing is not imported by tapegrad)
                    obj = importlib.import_module(".".join(parts[: i + 1]))
                    continue
                except ImportError:
                    return None
        elif part.startswith("_"):
            return None
        try:
            obj = getattr(obj, part)
        except AttributeError:
            declared = isinstance(obj, type) and any(
                part in vars(cls).get("__annotations__", {}) for cls in obj.__mro__
            )
            if not declared or i != len(parts) - 1:
                return None
            obj = Attribute(obj, part)
    return obj


def _doc(obj: Any) -> str:
    return obj.doc if isinstance(obj, Attribute) else inspect.getdoc(obj) or ""


def qualify(word: str) -> str | None:
    """The full name a word of API.md stands for, or None when nothing has it."""
    if word.startswith(("math.", "nn.", "testing.")):
        return f"tapegrad.{word}" if _resolve(f"tapegrad.{word}") is not None else None
    for space in _NAMESPACES:
        if _resolve(f"{space}.{word}") is not None:
            return f"{space}.{word}"
    return None


@dataclass
class Documented:
    page: Path
    directive: str  # autofunction, autoclass, py:attribute ...


def reference_index() -> dict[str, Documented]:
    """Full name -> where docs/reference/ documents it.

    Reads the ``.. auto*::`` and ``.. py:*::`` lines and their ``:members:``
    options; a class or module documented with ``:members:`` and no list
    counts for all its public members.
    """
    found: dict[str, Documented] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        target: str | None = None
        for line in page.read_text().splitlines():
            if m := re.match(r"\.\. ((?:auto|py:)\w+):: (\S+)", line):
                target = m.group(2)
                found[target] = Documented(page, m.group(1))
            elif target and (m := re.match(r"\s+:members:(.*)", line)):
                listed = [name.strip() for name in m.group(1).split(",") if name.strip()]
                if not listed:
                    listed = [n for n in dir(_resolve(target)) if not n.startswith("_")]
                for name in listed:
                    found[f"{target}.{name}"] = Documented(page, m.group(0))
            elif not line.startswith(" "):
                target = None
    return found


def _example_in(source: Path | str, name: str) -> bool:
    """A doctest line of a page or docstring that uses ``name`` (``at(tm.sin, 0.5)``)."""
    text = source.read_text() if isinstance(source, Path) else source
    last = name.rsplit(".", 1)[-1]
    return any(
        re.search(rf"\b{re.escape(last)}\b", line)
        for line in text.splitlines()
        if line.lstrip().startswith((">>> ", "... "))
    )


# CI lays shared/ beside its clone, so there a missing API.md is a failure, not a skip.
needs_api_md = pytest.mark.skipif(
    API_MD is None and not os.environ.get("CI"), reason="shared/API.md is not beside the repo"
)


def _contract() -> dict[str, str | None]:
    """Each word of API.md that is not NOT_API -> its full tapegrad name (or None)."""
    assert API_MD is not None
    return {w: qualify(w) for w in sorted(api_words(API_MD.read_text())) if w not in NOT_API}


@needs_api_md
def test_every_name_of_the_contract_is_in_the_reference_with_an_example() -> None:
    index = reference_index()
    problems = []
    for word, name in _contract().items():
        pending = {p for p in PENDING if p == f"tapegrad.{word}" or p.endswith(f".{word}")}
        if name is None:
            if not pending:
                problems.append(f"{word!r}: not in tapegrad; add it to PENDING or NOT_API")
            continue
        if name in PENDING:
            continue  # reported by the test below
        where = index.get(name)
        if where is None:
            problems.append(f"{name}: not on a docs/reference/ page")
            continue
        obj = _resolve(name)
        hand_written = where.directive.startswith("py:")
        if not hand_written and not _doc(obj):
            problems.append(f"{name}: no docstring")
        # an example: in its docstring, in its class's docstring, or on its page
        owner = _resolve(name.rsplit(".", 1)[0])
        in_owner = isinstance(owner, type) and _example_in(_doc(owner), name)
        if ">>>" not in _doc(obj) and not in_owner and not _example_in(where.page, name):
            problems.append(f"{name}: no example in its docstring or on {where.page.name}")
    assert not problems, "\n".join(problems)


@needs_api_md
def test_pending_names_are_still_missing() -> None:
    """PENDING is not a place to hide names: each must be absent from tapegrad."""
    landed = sorted(name for name in PENDING if _resolve(name) is not None)
    assert not landed, (
        f"{landed} exist now: take them out of PENDING in tests/test_docs.py and add one "
        "'.. autofunction:: <name>' line each to a page of docs/reference/"
    )


@needs_api_md
def test_pending_and_not_api_words_are_in_the_contract() -> None:
    assert API_MD is not None
    words = api_words(API_MD.read_text())
    stale = {p for p in PENDING if p.removeprefix("tapegrad.").rsplit(".", 1)[-1] not in words}
    assert not stale, f"PENDING names that API.md does not use: {sorted(stale)}"
    assert words >= NOT_API, f"NOT_API words that API.md does not use: {NOT_API - words}"


def test_the_api_word_reader() -> None:
    text = (
        "- Methods: `relu tanh`, `pow`.\n"
        "| `grad(f, argnums=0)(*args)` | `(value, grad)` |\n"
        "`.render(path)`, `.label`, `tg.math.sin`, `x ** y`, `python -m tapegrad --version`\n"
        "```python\nc = tg.Var(2.0)\nc.backward()\n```\n"
    )
    assert api_words(text) == {"relu", "tanh", "pow", "grad", "render", "label"} | {
        "math.sin",
        "Var",
        "backward",
    }
    assert qualify("sin") == "tapegrad.math.sin"
    assert qualify("backward") == "tapegrad.Var.backward"
    assert qualify("render") == "tapegrad.viz.DotGraph.render"
    assert qualify("no_such_name") is None


def test_reference_index_reads_directives_and_members() -> None:
    index = reference_index()
    assert index["tapegrad.grad"].page.name == "transforms.md"
    assert index["tapegrad.Var.backward"].page.name == "value.md"
    assert index["tapegrad.nn.Module.zero_grad"].page.name == "nn.md"
    assert index["tapegrad.math.sin"].directive == "autofunction"


# ---------------------------------------------------------------------------
# Doctests: pytest and `python -m doctest` agree
# ---------------------------------------------------------------------------


def test_pytest_collects_docs_and_docstrings_with_no_option_flags() -> None:
    config = (ROOT / "pyproject.toml").read_text()
    section = config.split("[tool.pytest.ini_options]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^testpaths = \[.*"docs".*\]$', section, re.M)
    assert re.search(r'^testpaths = \[.*"tapegrad".*\]$', section, re.M)
    assert "--doctest-modules" in section and "--doctest-glob=*.md" in section
    # pytest's default is ELLIPSIS: without this line pytest would pass examples
    # that `python -m doctest docs/page.md` fails
    assert re.search(r"^doctest_optionflags = \[\]$", section, re.M)


def test_python_dash_m_doctest_passes_every_page() -> None:
    pages = sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if "_build" not in p.parts)
    proc = subprocess.run(
        [sys.executable, "-m", "doctest", *pages],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_every_docs_page_with_examples_has_them_collected() -> None:
    """A page whose examples doctest cannot find (say, indented under a list) is a bug."""
    parser = doctest.DocTestParser()
    for page in DOCS.rglob("*.md"):
        if "_build" in page.parts:
            continue
        text = page.read_text()
        prompts = sum(line.lstrip().startswith(">>> ") for line in text.splitlines())
        examples = len(parser.get_examples(text))
        assert examples == prompts, f"{page.name}: {prompts} '>>>' lines, {examples} examples"


def test_rule_card_lists_every_primitive() -> None:
    card = (DOCS / "rules.md").read_text()
    missing = [name for name in RULES if f"| `{name}` |" not in card]
    assert not missing, f"docs/rules.md lacks rows for {missing}"


# ---------------------------------------------------------------------------
# Notebooks
# ---------------------------------------------------------------------------


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(cell["source"]) for cell in nb["cells"] if cell["cell_type"] == "code"]


def _myst_code_cells(path: Path) -> list[str]:
    return re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", path.read_text(), re.S | re.M)


MYST_NOTEBOOKS = sorted(p for p in DOCS.glob("*.md") if _myst_code_cells(p))


def test_notebooks_are_stored_without_outputs() -> None:
    """The docs build executes them; stored outputs would only go stale in git."""
    assert NOTEBOOKS, "docs/notebooks/ has no notebook"
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        for cell in nb["cells"]:
            assert "id" in cell, f"{path.name}: a cell without id"
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


@pytest.mark.parametrize(
    "path",
    [*NOTEBOOKS, *MYST_NOTEBOOKS],
    ids=lambda p: str(p.relative_to(DOCS)),
)
def test_notebook_cells_run_and_display(path: Path, monkeypatch: Any) -> None:
    """Each cell runs as in Jupyter: its last expression goes to IPython's formatter."""
    formatters = pytest.importorskip("IPython.core.formatters")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(path.parent)  # as a kernel started by the docs build
    formatter = formatters.DisplayFormatter()
    shown: list[dict[str, Any]] = []

    def display(*objs: Any) -> None:
        for obj in objs:
            shown.append(formatter.format(obj)[0])

    namespace: dict[str, Any] = {"__name__": "__main__", "display": display}
    cells = _code_cells(path) if path.suffix == ".ipynb" else _myst_code_cells(path)
    assert cells
    for number, source in enumerate(cells, start=1):
        tree = ast.parse(source, f"{path.name} cell {number}")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(tree, f"{path.name} cell {number}", "exec"), namespace)
            if last is not None:
                value = eval(
                    compile(ast.Expression(last.value), f"cell {number}", "eval"), namespace
                )
                if value is not None:
                    display(value)
    for data in shown:
        assert "text/plain" in data
    if "draw_dot(" in "".join(cells):
        # a picture with or without Graphviz (the built-in layout draws it), never DOT text
        pictures = [d for d in shown if "<svg" in d.get("image/svg+xml", "")]
        dot_texts = [d for d in shown if d["text/plain"].startswith("// DotGraph")]
        assert pictures and not dot_texts, "draw_dot showed DOT text instead of a picture"


# ---------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------


def _readme_examples() -> list[tuple[str, str]]:
    """(code, printed output) for each README python block followed by 'prints'."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", text, re.S)
    return [(code, out) for code, out in blocks]


@pytest.mark.parametrize("index", range(len(_readme_examples())))
def test_readme_examples_print_what_the_readme_says(index: int) -> None:
    code, expected = _readme_examples()[index]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, f"README example {index}", "exec"), {})
    assert buffer.getvalue() == expected


def test_readme_has_examples() -> None:
    assert len(_readme_examples()) >= 2


def test_tapegrad_version_is_the_package_version() -> None:
    found = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found is not None and tapegrad.__version__ == found.group(1)
