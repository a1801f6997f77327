"""Command line: ``python -m tapegrad demo`` (see tapegrad.cli)."""

from tapegrad.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
