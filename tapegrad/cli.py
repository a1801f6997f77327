"""The ``tapegrad`` command line (``python -m tapegrad`` or the ``tapegrad`` script).

Subcommands:

* ``demo``: micrograd's demo, an MLP trained on the two moons
  (see :mod:`tapegrad.demo`; ``tapegrad demo --help`` lists its options).
* ``explain``: one expression's backprop, step by step with numbers
  (see :mod:`tapegrad.explain`; ``--html PATH`` writes a page that steps
  through it).

``tapegrad --version`` prints the version; ``tapegrad --help`` lists the
subcommands, one line each. A subcommand is one entry of ``_COMMANDS``: a
name, a help line, a function that adds its options to its parser, and a
function that runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import tapegrad
from tapegrad import demo

# `from ... import`: the package's attribute `explain` is the function, not this module
from tapegrad.explain import add_arguments as explain_arguments
from tapegrad.explain import run as run_explain

__all__ = ["main"]

_COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "demo": (
        "train micrograd's demo MLP on the two-moons data set",
        demo.add_arguments,
        demo.run,
    ),
    "explain": (
        "explain an expression's backprop step by step, with numbers",
        explain_arguments,
        run_explain,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tapegrad",
        description="tapegrad: reverse-mode automatic differentiation on a tape.",
        epilog="'tapegrad COMMAND --help' lists a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"tapegrad {tapegrad.__version__}")
    # metavar: without it argparse prints the choices as "{demo}" above the list
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    for name, (help_text, configure, _) in _COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tapegrad`` and the ``tapegrad`` script; the exit status."""
    args = build_parser().parse_args(argv)
    _, _, handler = _COMMANDS[args.command]
    try:
        return handler(args)
    except BrokenPipeError:
        # `tapegrad demo | head` closed the pipe: stop quietly, as other
        # command-line tools do, instead of printing a traceback; stdout goes
        # to devnull so that Python's own flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
