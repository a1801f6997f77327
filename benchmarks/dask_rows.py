"""W4 on Dask: time per sample of ``vmap(value_and_grad(rosenbrock))`` beside numpy.

One table: the 10-dimensional Rosenbrock function's value and gradient
(workload W4) over ``--samples`` samples, computed

* by ``tapegrad.vmap`` on one numpy array, in this process;
* by the same ``vmap`` on a Dask array (chunks of ``--chunk`` samples) on a
  ``distributed.LocalCluster`` of 1 and of 2 worker processes (one thread
  each, loopback only), the samples drawn on the workers.

Each row computes the sums of the values and of the gradients (so the
cluster does not ship gigabytes back to this process, and numpy does the
same work); the time is the best of ``--repeat`` runs after one warm-up run,
divided by the number of samples. Not part of the test suite.

    python benchmarks/dask_rows.py --samples 10000000
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import numpy as np

import tapegrad as tg


def rosenbrock(x: Any) -> Any:
    return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(len(x) - 1))


def best_of(repeat: int, run: Any) -> float:
    run()  # warm-up: traces, imports, worker start-up of tasks
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def rows(samples: int, chunk: int, repeat: int) -> list[tuple[str, float]]:
    """(how it was computed, best seconds) for numpy in this process and Dask on 1 and 2 workers."""
    import dask.array as da
    import distributed

    n, dim = samples, 10
    vg = tg.vmap(tg.value_and_grad(rosenbrock))
    points = np.random.default_rng(4).uniform(-2.0, 2.0, size=(n, dim))

    def numpy_run() -> None:
        values, grads = vg(points)
        float(values.sum()), float(grads.sum())

    out = [("numpy, this process", best_of(repeat, numpy_run))]
    for workers in (1, 2):
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        try:
            with distributed.Client(cluster) as client:
                lazy = da.random.default_rng(4).uniform(
                    -2.0, 2.0, size=(n, dim), chunks=(chunk, dim)
                )
                lazy = client.persist(lazy)  # drawn once, on the workers, before timing
                distributed.wait(lazy)

                def dask_run(lazy: Any = lazy, client: Any = client) -> None:
                    values, grads = vg(lazy)
                    client.compute([values.sum(), grads.sum()], sync=True)

                out.append((f"Dask, {workers} worker process(es)", best_of(repeat, dask_run)))
        finally:
            cluster.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10**7)
    parser.add_argument("--chunk", type=int, default=10**6)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    n = opts.samples
    timed = rows(n, opts.chunk, opts.repeat)
    print(f"W4 (10-d Rosenbrock value and gradient), {n:,} samples, chunks of {opts.chunk:,}; ")
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}\n")
    print("| computed by | total (s) | per sample (ns) |")
    print("|---|---|---|")
    for name, seconds in timed:
        print(f"| {name} | {seconds:.2f} | {seconds / n * 1e9:.0f} |")


if __name__ == "__main__":
    main()
