"""W4 through ``vmap`` against the hand-fused numpy version, paired in one process, and its memory.

``vmap(value_and_grad(rosen, argnums=1), in_axes=(None, 0))(COEF, X)`` and
:func:`benchmarks.fused.rosen_value_and_grad` take turns on the same ``X``
(ABBA order: vmap then fused, then fused then vmap, ...), one ratio
``vmap / fused`` per round; the median and interquartile range of the ratios
are printed per batch size. Adjacent calls see nearly the same load, so the
ratio holds on a shared machine where either time alone drifts. Then, at the
largest size, the peak of memory allocated (tracemalloc, which sees numpy's
allocations) during one call, against the bytes of its inputs and outputs::

    python benchmarks/vmap_blocks.py                      # 10^4 and 10^6 samples
    python benchmarks/vmap_blocks.py --sizes 10000 --rounds 50 --block 4096

``--block`` sets ``tapegrad.programs.vmap.BLOCK`` (0: no blocks) for the run.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import benchmarks from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchmarks  # noqa: F401  (puts TAPEGRAD_PATH first on sys.path)
from benchmarks import workloads as wl
from benchmarks.fused import rosen_value_and_grad


def calls(size: int) -> tuple[Callable[[], Any], Callable[[], Any], Any]:
    """(the vmap call, the fused call, X) for ``size`` samples; checked to agree to 1e-12."""
    import numpy as np

    import tapegrad as tg

    g = tg.vmap(tg.value_and_grad(wl.rosen, argnums=1), in_axes=(None, 0))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, size=(size, wl.VMAP_DIM))
    (value, grad), (ref_value, ref_grad) = g(wl.COEF, x), rosen_value_and_grad(wl.COEF, x)
    for got, ref in ((value, ref_value), (grad, ref_grad)):
        scale = np.max(np.abs(ref), axis=-1, keepdims=True) if ref.ndim > 1 else np.abs(ref)
        if got.shape != ref.shape or np.any(np.abs(got - ref) > 1e-12 * np.maximum(scale, 1.0)):
            raise RuntimeError(f"vmap and the fused numpy version differ at {size} samples")
    return (lambda: g(wl.COEF, x)), (lambda: rosen_value_and_grad(wl.COEF, x)), x


def paired(size: int, rounds: int) -> tuple[list[float], float, float]:
    """``vmap / fused`` seconds per call, one ratio per round (ABBA); and the median seconds."""
    subject, reference, _ = calls(size)
    loops = max(1, 20_000 // size)  # about 10 ms per timing at 10^4 samples and below
    ratios, times = [], {"vmap": [], "fused": []}  # type: ignore[var-annotated]
    for n in range(rounds):
        order = [("vmap", subject), ("fused", reference)]
        seconds = {}
        for name, fn in order if n % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            for _ in range(loops):
                fn()
            seconds[name] = (time.perf_counter() - t0) / loops
            times[name].append(seconds[name])
        ratios.append(seconds["vmap"] / seconds["fused"])
    return ratios, statistics.median(times["vmap"]), statistics.median(times["fused"])


def peak_memory(size: int) -> tuple[int, int, int]:
    """Peak bytes allocated during one vmap call, one fused call, and inputs + outputs' bytes.

    The peaks count from before ``X`` was made, so they include it (and the results).
    """
    import numpy as np

    import tapegrad as tg

    g = tg.vmap(tg.value_and_grad(wl.rosen, argnums=1), in_axes=(None, 0))
    g(wl.COEF, np.random.default_rng(1).uniform(-1.5, 1.5, size=(16, wl.VMAP_DIM)))  # trace
    peaks = []
    for fn in (g, rosen_value_and_grad):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        x = np.random.default_rng(0).uniform(-1.5, 1.5, size=(size, wl.VMAP_DIM))
        values, grads = fn(wl.COEF, x)
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
        io = x.nbytes + values.nbytes + grads.nbytes
        del x, values, grads
    return peaks[0], peaks[1], io


def main(argv: list[str] | None = None) -> int:
    """Print the paired ratios per size and the peak memory at the largest size."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="batch sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=0, help="rounds per size (0: by size)")
    parser.add_argument("--block", type=int, default=None, help="samples per block (0: none)")
    args = parser.parse_args(argv)
    if args.block is not None:
        import importlib

        vmap_module = importlib.import_module("tapegrad.programs.vmap")  # not the function
        if not hasattr(vmap_module, "BLOCK"):
            raise SystemExit("--block: this tapegrad's vmap has no blocks")
        vmap_module.BLOCK = args.block  # type: ignore[attr-defined]
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    for size in sizes:
        rounds = args.rounds or (100 if size <= 10**5 else 10)
        ratios, t_vmap, t_fused = paired(size, rounds)
        low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        print(
            f"W4[{size}]: vmap/fused {statistics.median(ratios):.3f} (IQR {low:.3f}-{high:.3f}, "
            f"{rounds} rounds); vmap {1e9 * t_vmap / size:.1f} ns/sample, "
            f"fused {1e9 * t_fused / size:.1f} ns/sample",
            flush=True,
        )
    largest = max(sizes)
    vmap_peak, fused_peak, io = peak_memory(largest)
    print(
        f"W4[{largest}] peak memory: vmap {vmap_peak / 2**20:.1f} MiB = {vmap_peak / io:.2f}x "
        f"inputs + outputs ({io / 2**20:.1f} MiB); fused {fused_peak / io:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
