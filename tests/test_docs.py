"""The documentation's examples run as doctests, so they cannot rot.

Every ``>>>`` example in ``docs/*.md`` and in the docstrings of tapegrad's
modules is executed and its printed output compared, and so is every README
example that shows what it prints.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import pkgutil
import re
from pathlib import Path

import pytest

import tapegrad
from tapegrad.rules import RULES

DOCS = Path(__file__).resolve().parents[1] / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
MODULES = sorted(m.name for m in pkgutil.walk_packages(tapegrad.__path__, "tapegrad."))


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_doc_page_examples(page: str) -> None:
    result = doctest.testfile(str(DOCS / page), module_relative=False, optionflags=FLAGS)
    assert result.failed == 0, f"{result.failed} example(s) of docs/{page} failed (see output)"


@pytest.mark.parametrize("name", MODULES)
def test_module_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    result = doctest.testmod(module, optionflags=FLAGS)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"


def test_rule_card_lists_every_primitive() -> None:
    card = (DOCS / "rules.md").read_text()
    missing = [name for name in RULES if f"| `{name}` |" not in card]
    assert not missing, f"docs/rules.md lacks rows for {missing}"


def _readme_examples() -> list[tuple[str, str]]:
    """(code, printed output) for each README python block followed by 'prints'."""
    text = (DOCS.parent / "README.md").read_text()
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
