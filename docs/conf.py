"""Sphinx configuration of tapegrad's documentation site.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (warnings
are errors). Pages are MyST Markdown; myst-nb executes the notebooks
(``notebooks/*.ipynb`` and MyST pages with a ``kernelspec``) on every build, so
their pictures and listings are real output; the ``>>>`` examples of the
other pages run as doctests in the test suite. The API reference
(``reference/``) is generated from the docstrings by autodoc.
"""

from __future__ import annotations

import tapegrad

project = "tapegrad"
author = "the tapegrad developers"
copyright = "the tapegrad developers"  # noqa: A001 (Sphinx's name)
release = version = tapegrad.__version__

extensions = [
    "myst_nb",  # MyST Markdown pages and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", ".ipynb_checkpoints"]

# MyST: ```{directive} fences, $math$, and heading anchors for links such as
# (page.md#a-heading).
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# Notebooks are stored without outputs and executed on every build; an error
# in a cell fails the build (-W), as a failing doctest fails the tests.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 300
nb_merge_streams = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"undoc-members": False}

html_theme = "furo"
html_title = f"tapegrad {release}"
html_static_path: list[str] = []
pygments_style = "friendly"
pygments_dark_style = "monokai"
