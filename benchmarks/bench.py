"""The timings, on ``pyperf.Runner``: one pyperf benchmark per (workload, size, library).

A standard pyperf script: worker processes, loop calibration, warm-ups,
``--fast``/``--rigorous``, ``-o``/``--append`` JSON; it adds the selection
options below. Benchmark names are ``workload[size]/library``, e.g.
``rosen[1000]/tapegrad``, so two files compare with ``pyperf compare_to``::

    python benchmarks/bench.py --fast --libs tapegrad,tapegrad-jit -o after.json
    python -m pyperf compare_to before.json after.json --table

Each timed value runs ``loops`` steps (value and gradient) with the garbage
collector on, as users run it. The case is built and its first step (a
compiled system's trace and compile) runs before the clock starts.
:mod:`benchmarks.run` calls this script once per cell, beside what pyperf
lacks (first results, agreement, paired ratios, report).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

# Appended: the tapegrad imported is the installed one, or TAPEGRAD_PATH's
# (see benchmarks/__init__.py), not necessarily this checkout's.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks.libs import CACHE_ENV, LIBS, Case, make_case, version
from benchmarks.workloads import WORKLOADS, n_ops

__all__ = ["Cell", "name", "parse", "split", "cells", "skip_reason", "tapegrad_sources"]

Cell = tuple[str, int, str]  # (workload, size, library)


def name(cell: Cell) -> str:
    """The pyperf benchmark name of a cell."""
    return f"{cell[0]}[{cell[1]}]/{cell[2]}"


def parse(text: str) -> Cell:
    """The cell of a name: ``"rosen[1000]/tapegrad"`` is ``("rosen", 1000, "tapegrad")``."""
    key, rest = text.split("[")
    size, lib = rest.split("]/")
    return key, int(float(size)), lib


def split(text: str) -> list[str]:
    """The items of a comma-separated option."""
    return [x for x in text.split(",") if x]


def cells(only: list[str], libs: list[str], quick: bool) -> list[Cell]:
    """The cells of a selection, in the order of the two tables (empty lists: all)."""
    for sel, known in ((only, WORKLOADS), (libs, LIBS)):
        if unknown := set(sel) - set(known):
            raise SystemExit(f"unknown {sorted(unknown)}; choose from {list(known)}")
    return [
        (w.key, size, lib.key)
        for w in WORKLOADS.values()
        if not only or w.key in only
        for size in (w.quick if quick else w.sizes)
        for lib in LIBS.values()
        if (not libs or lib.key in libs) and w.key in lib.workloads
    ]


def skip_reason(cell: Cell, slow: bool) -> str:
    """Why a cell is not run here ('' when it runs), decided without importing the library."""
    key, size, lib = cell
    entry = LIBS[lib]
    if why := entry.missing():
        return why
    ops = n_ops(key, size) // (size if WORKLOADS[key].per_sample else 1)
    if entry.max_ops and ops > entry.max_ops and not slow:
        return f"{ops:,} ops per call > {entry.max_ops:,} (cap; --slow runs it)"
    return ""


def tapegrad_sources() -> str:
    """A digest of the sources of the tapegrad that would be imported (without importing it)."""
    spec = importlib.util.find_spec("tapegrad")
    if spec is None or spec.origin is None:
        return "-"
    digest = hashlib.sha256()
    for path in sorted(Path(spec.origin).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


_built: dict[Cell, Case] = {}


def _time_steps(loops: int, cell: Cell) -> float:
    """pyperf's time function: seconds for ``loops`` steps of the cell."""
    case = _built.get(cell)
    if case is None:  # outside the clock: build, and the first step (trace, compile)
        case = _built[cell] = make_case(cell[2], cell[0], cell[1])
        case.step()
    step = case.step
    t0 = time.perf_counter()
    for _ in range(loops):
        step()
    return time.perf_counter() - t0


def main() -> None:
    """Run the selected cells under pyperf (see the module docstring)."""
    import pyperf

    def forward(cmd: list[str], args: Any) -> None:
        for opt in ("only", "libs", "cell"):
            if getattr(args, opt):
                cmd += [f"--{opt}", getattr(args, opt)]
        cmd += ["--quick"] * args.quick + ["--slow"] * args.slow

    runner = pyperf.Runner(add_cmdline_args=forward)
    parser = runner.argparser
    parser.add_argument("--only", default="", help=f"workloads, comma-separated: {list(WORKLOADS)}")
    parser.add_argument("--libs", default="", help=f"libraries, comma-separated: {list(LIBS)}")
    parser.add_argument("--cell", default="", help="one cell by name, e.g. 'rosen[1000]/tapegrad'")
    parser.add_argument("--quick", action="store_true", help="the quick run's tiny sizes")
    parser.add_argument("--slow", action="store_true", help="lift the per-library size caps")
    args = runner.parse_args()
    if not args.worker:  # the workers see the same tapegrad and the run's cache
        args.inherit_environ = [*(args.inherit_environ or []), "TAPEGRAD_PATH", CACHE_ENV]
    chosen = cells(split(args.only), split(args.libs), args.quick)
    if args.cell:  # any size of either run; its caps are lifted
        chosen = [c for q in (False, True) for c in cells([], [], q) if name(c) == args.cell][:1]
    for cell in chosen:
        if reason := skip_reason(cell, args.slow or bool(args.cell)):
            if not args.worker:
                print(f"skipped {name(cell)}: {reason}")
            continue
        meta = {
            "lib_version": version(LIBS[cell[2]].module) or "-",
            "n_ops": n_ops(cell[0], cell[1]),
            "tapegrad_sources": tapegrad_sources(),
        }
        runner.bench_time_func(name(cell), _time_steps, cell, metadata=meta)


if __name__ == "__main__":
    main()
