"""Where tapegrad's time goes in workloads 1 and 2: cProfile plus a path census.

Usage::

    python benchmarks/profile_tapegrad.py            # both workloads
    python benchmarks/profile_tapegrad.py mlp --top 25

For each workload this prints

* a *path census*: how many ops took an inlined fast path of ``Var`` and how
  many went through the generic ``apply()``, and how often leaves were
  registered through ``Tape.index_of`` (counted by wrapping those functions
  for one untimed step);
* the wall time of forward and backward without the profiler;
* cProfile's top functions by own time over a few steps. cProfile adds a
  fixed cost per Python call, so it inflates call-heavy paths (``apply()``,
  the rules' lambdas) relative to the inlined fast paths: read it together
  with the census and the wall times.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.cases import Case, make_case, n_ops  # noqa: E402

WORKLOADS = {
    "mlp": [("tapegrad", 100)],
    "rosenbrock": [("tapegrad-grad", 1000), ("tapegrad", 1000)],
}


def census(case: Case) -> Counter[str]:
    """Calls of the engine's generic entry points during one forward + backward."""
    import tapegrad.engine as eng

    counts: Counter[str] = Counter()
    saved: dict[tuple[Any, str], Any] = {}

    def wrap(owner: Any, name: str) -> None:
        fn = getattr(owner, name)
        saved[(owner, name)] = fn

        def counted(*args: Any, **kwargs: Any) -> Any:
            key = name
            if name == "apply":
                key = f"apply({args[0].name})"
            elif name == "index_of":
                var = args[1]
                key = "index_of(leaf)" if var._tape is None else "index_of(other)"
            counts[key] += 1
            return fn(*args, **kwargs)

        setattr(owner, name, counted)

    for name in ("apply", "_locate1", "_locate2", "_ambient", "backward"):
        if hasattr(eng, name):
            wrap(eng, name)
    for name in ("index_of", "push", "seal", "add_grads"):
        if hasattr(eng.Tape, name):
            wrap(eng.Tape, name)
    try:
        state = case.forward()
        if case.backward is not None:
            case.backward(state)
        del state
    finally:
        for (owner, name), fn in saved.items():
            setattr(owner, name, fn)
    return counts


def wall(case: Case, steps: int) -> tuple[float, float]:
    """Best forward and backward seconds over ``steps`` steps, no profiler."""
    best_f = best_b = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        state = case.forward()
        t1 = time.perf_counter()
        if case.backward is not None:
            case.backward(state)
        t2 = time.perf_counter()
        del state
        best_f, best_b = min(best_f, t1 - t0), min(best_b, t2 - t1)
    return best_f, best_b


def profile(fn: Callable[[], Any], steps: int, top: int, sort: str) -> str:
    """cProfile's top functions over ``steps`` calls of ``fn``."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        fn()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    text = out.getvalue()
    return text[text.find("   ncalls") :]


def main(argv: list[str] | None = None) -> int:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description="Profile tapegrad on workloads 1 and 2.")
    parser.add_argument("workloads", nargs="*", help=f"subset of {list(WORKLOADS)} (default: all)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    args = parser.parse_args(argv)
    for w in args.workloads or list(WORKLOADS):
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r}; choose from {list(WORKLOADS)}")
        for lib, size in WORKLOADS[w]:
            case = make_case(w, lib, size)
            wall(case, 2)  # warm up
            print(f"=== {w} [{size}] {case.label}: {n_ops(w, size):,} ops per step ===")
            counts = census(case)
            for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
                print(f"  {n:9,d}  {key}")
            f, b = wall(case, args.steps)
            print(
                f"  wall (best of {args.steps}): "
                f"forward {f * 1e3:.2f} ms, backward {b * 1e3:.2f} ms"
            )

            def step(case: Case = case) -> None:
                state = case.forward()
                if case.backward is not None:
                    case.backward(state)

            print(profile(step, args.steps, args.top, args.sort))
    return 0


if __name__ == "__main__":
    sys.exit(main())
