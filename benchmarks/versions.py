"""Two tapegrad checkouts timed in lockstep: the paired ratio of one cell's step, after / before.

On a shared machine the load drifts over seconds to minutes, so two pyperf runs minutes apart
can differ more than the change under test. Here each checkout runs in its own worker process
(its own imports, its own garbage), and the two take turns: one step (or ``--loops`` steps) of
one, then of the other, the order alternating every round (ABBA). Adjacent steps see nearly the
same load, so the ratio of each round is paired; the median over rounds is the answer::

    python benchmarks/versions.py /tmp/tg-before . --cell 'rosen[1000]/tapegrad' --rounds 200

prints the median of ``after / before`` and its interquartile range.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The worker: builds the cell's case once, then times `loops` steps per line read on stdin.
WORKER = """\
import sys, time
import benchmarks  # puts TAPEGRAD_PATH first on sys.path
import tapegrad
from benchmarks.libs import make_case
key, size, lib, loops = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
case = make_case(lib, key, size)
case.step()
print(tapegrad.__file__, flush=True)
for _ in sys.stdin:
    t0 = time.perf_counter()
    for _ in range(loops):
        case.step()
    print((time.perf_counter() - t0) / loops, flush=True)
"""


def _worker(checkout: str, cell: str, loops: int) -> subprocess.Popen[str]:
    key, rest = cell.split("[")
    size, lib = rest.split("]/")
    env = {**os.environ, "TAPEGRAD_PATH": str(Path(checkout).resolve())}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, key, str(int(float(size))), lib, str(loops)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def _step(worker: subprocess.Popen[str]) -> float:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write("\n")
    worker.stdin.flush()
    return float(worker.stdout.readline())


def paired_ratios(before: str, after: str, cell: str, rounds: int, loops: int = 1) -> list[float]:
    """``after / before`` seconds per step of ``cell``, one ratio per round, ABBA order."""
    workers = [_worker(before, cell, loops), _worker(after, cell, loops)]
    try:
        for worker, checkout in zip(workers, (before, after)):
            assert worker.stdout is not None
            imported = worker.stdout.readline().strip()
            if not imported.startswith(str(Path(checkout).resolve())):
                raise RuntimeError(f"{checkout}: the worker imported {imported or 'nothing'}")
        ratios = []
        for n in range(rounds):
            order = workers if n % 2 == 0 else workers[::-1]
            seconds = {id(w): _step(w) for w in order}
            ratios.append(seconds[id(workers[1])] / seconds[id(workers[0])])
        return ratios
    finally:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait(60)


def main(argv: list[str] | None = None) -> int:
    """Print the median ratio after / before and its interquartile range."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("before", help="the checkout measured first (its root directory)")
    parser.add_argument("after", help="the checkout compared with it")
    parser.add_argument("--cell", default="rosen[1000]/tapegrad", help="workload[size]/library")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--loops", type=int, default=1, help="steps per timing")
    args = parser.parse_args(argv)
    ratios = paired_ratios(args.before, args.after, args.cell, args.rounds, args.loops)
    low, _, high = statistics.quantiles(ratios, n=4)
    median = statistics.median(ratios)
    spread = f"IQR {low:.4f}-{high:.4f}, {len(ratios)} rounds"
    print(f"{args.cell}: after/before {median:.4f} ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
