"""Run the benchmark suite and write ``docs/benchmarks.md``.

Usage::

    python benchmarks/run.py            # the full suite, ~8-10 minutes on 2 cores
    python benchmarks/run.py --quick    # a smoke run on tiny sizes, ~1-2 minutes
    python benchmarks/run.py --only mlp,rosenbrock --libs plain,tapegrad,micrograd

Every measurement runs in a fresh worker process (``run.py --worker TASK``),
one per (workload, library, size) and per repetition, so that one library's
imports, caches and garbage never weigh on another's numbers. Repetitions are
interleaved (all cells once, then all cells again), which spreads the
machine's slow phases over every cell instead of a few. Peers that are not
importable are skipped; peers whose single call would take very long (JAX
without jit on 65,000 ops takes ~50 s per call, and XLA needs minutes to
compile it) are skipped above ``MAX_OPS`` unless ``--slow`` is given.

Outputs: ``docs/benchmarks.md`` and ``docs/benchmarks_scaling.png`` (the
report), ``benchmarks/results/latest.json`` (every sample and setting, the
report's input: ``python benchmarks/report.py`` redraws from it) and
``benchmarks/results/latest.pyperf.json``, a pyperf suite, so that two runs
can be compared with ``python -m pyperf compare_to old.pyperf.json
new.pyperf.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.cases import LIBS, WORKLOADS, Unavailable, lib_version, make_case, n_ops  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# Sizes: mlp (points), rosenbrock (terms), chain (ops), fan (products).
FULL_SIZES: dict[str, list[int]] = {
    "mlp": [100],
    "rosenbrock": [1000],
    "chain": [10**3, 10**4, 10**5, 10**6],
    "fan": [10**5],
}
QUICK_SIZES: dict[str, list[int]] = {
    "mlp": [2],
    "rosenbrock": [20],
    "chain": [100, 1000],
    "fan": [100],
}
# Libraries run per workload (the two reference variants only where they apply).
WORKLOAD_LIBS: dict[str, list[str]] = {
    "mlp": [
        "plain",
        "tapegrad",
        "tapegrad-dot",
        "micrograd",
        "torch",
        "autograd",
        "jax",
        "jax-jit",
    ],
    "rosenbrock": [
        "plain",
        "plain-grad",
        "tapegrad-grad",
        "tapegrad",
        "micrograd",
        "torch",
        "autograd",
        "jax",
        "jax-jit",
    ],
    "chain": ["plain", "tapegrad", "micrograd", "torch", "autograd", "jax", "jax-jit"],
    "fan": ["plain", "tapegrad", "micrograd", "torch", "autograd", "jax", "jax-jit"],
}
# Recorded ops per call above which a peer is skipped unless --slow: measured
# on the 2-core machine, JAX eager records ~0.5 ms per op under jax.vjp and
# XLA compiles a 13,000-op scalar graph in ~70 s (the 65,000 ops of
# workload 1 took over 5 minutes and 18 GB before we stopped it); micrograd
# and PyTorch take ~10-30 us per op, so 10^6 ops would cost minutes per cell.
MAX_OPS: dict[str, int] = {
    "jax": 20_000,
    "jax-jit": 20_000,
    "autograd": 200_000,
    "micrograd": 200_000,
    "torch": 200_000,
}
QUICK_MAX_OPS = 2_000  # --quick: keeps JAX's compile times out of a smoke run
# Slow or compile-heavy peers get one process per cell; the rest get --processes.
ONE_PROCESS = {"jax", "jax-jit", "autograd"}
# Paired measurements for the targets' ratios: (workload, subject, reference,
# subject size, reference size, mode). A shared machine's load drifts over
# seconds to minutes, so cells timed minutes apart are not comparable.
# "inproc": both sides alternate step by step in one process (harness.time_pair):
#   used where the two sides cannot disturb each other (plain floats make no
#   cyclic garbage; the chain pair is one library).
# "xproc": rounds of two worker processes back to back (order alternating),
#   each library alone in its process with its default gc: used for the peers,
#   because in one process micrograd's cyclic garbage would be collected on
#   whichever library's clock happened to trigger the collector.
PAIRS: list[tuple[str, str, str, int, int, str]] = [
    ("mlp", "tapegrad", "plain", 100, 100, "inproc"),
    ("mlp", "tapegrad-dot", "plain", 100, 100, "inproc"),
    ("mlp", "micrograd", "tapegrad", 100, 100, "xproc"),
    ("mlp", "torch", "tapegrad", 100, 100, "xproc"),
    ("rosenbrock", "tapegrad-grad", "plain", 1000, 1000, "inproc"),
    ("rosenbrock", "tapegrad", "plain", 1000, 1000, "inproc"),
    ("rosenbrock", "micrograd", "tapegrad-grad", 1000, 1000, "xproc"),
    ("rosenbrock", "torch", "tapegrad-grad", 1000, 1000, "xproc"),
    ("chain", "tapegrad", "tapegrad", 10**6, 10**4, "inproc"),
]
XPROC_ROUNDS = 3
QUICK_PAIR_SIZES = {"mlp": (2, 2), "rosenbrock": (20, 20), "chain": (1000, 100)}
MEMORY_OPS = 10**5
# tracemalloc slows micrograd's allocations and recursive backward() down a
# lot (10^5 ops took ~3 minutes); its bytes per node do not depend on size.
MEMORY_OPS_CAP = {"micrograd": 20_000, "jax": 10_000}
PRIM_LIBS = ["plain", "tapegrad", "micrograd", "torch", "autograd", "jax"]
MEMORY_LIBS = ["tapegrad", "micrograd", "torch", "autograd", "jax"]


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "budget": 0.05,
            "min_samples": 2,
            "max_samples": 5,
            "warmups": 1,
            "prim_number": 200,
            "prim_repeat": 2,
            "memory_ops": 1000,
            "timeout": 300,
        }
    return {
        "budget": 1.0,
        "min_samples": 3,
        "max_samples": 200,
        "warmups": 1,
        "prim_number": 2000,
        "prim_repeat": 7,
        "memory_ops": MEMORY_OPS,
        "timeout": 600,
    }


# ---------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    """Run one task in this (fresh) process and return its JSON result."""
    from benchmarks import harness

    kind = task["kind"]
    out: dict[str, Any] = {"task": task, "python": platform.python_version()}
    try:
        if kind == "time":
            out.update(_worker_time(task))
        elif kind == "pair":
            subject = make_case(task["workload"], task["lib"], task["size"])
            reference = make_case(task["workload"], task["reference"], task["ref_size"])
            out["pair"] = harness.time_pair(
                subject,
                reference,
                budget=2 * task["budget"],
                min_rounds=max(task["min_samples"], 5),
                max_rounds=task["max_samples"],
                warmups=task["warmups"],
                collect=task["collect"],
            )
        elif kind == "prims":
            out["prims"] = harness.time_primitives(
                task["lib"], number=task["number"], repeat=task["repeat"]
            )
        elif kind == "memory":
            out["memory"] = harness.measure_memory(task["lib"], task["n_ops"])
        else:
            raise ValueError(f"unknown task kind {kind!r}")
    except Unavailable as exc:
        out["unavailable"] = str(exc)
    out["max_rss"] = _max_rss()
    out["tapegrad_hash"] = _tapegrad_hash()
    return out


def _tapegrad_hash() -> str:
    """A digest of tapegrad's sources, to notice an engine edited during a run."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "tapegrad").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _worker_time(task: dict[str, Any]) -> dict[str, Any]:
    import pyperf

    from benchmarks import harness

    t0 = time.perf_counter()
    case = make_case(task["workload"], task["lib"], task["size"])
    setup = time.perf_counter() - t0
    timing = harness.time_case(
        case,
        budget=task["budget"],
        min_samples=task["min_samples"],
        max_samples=task["max_samples"],
        warmups=task["warmups"],
    )
    out: dict[str, Any] = {
        "label": case.label,
        "notes": case.notes,
        "setup_seconds": case.setup_seconds or setup,
        "timing": timing,
        "split": case.has_backward,
    }
    if task.get("check", True) and min(timing["total"]) < 10.0:
        value, grads = case.result()
        out["value"] = value
        out["grads_head"] = None if grads is None else grads[:8]
        out["grads_sum"] = None if grads is None else float(sum(grads))
        out["n_grads"] = None if grads is None else len(grads)
    # The same samples as pyperf runs (one run per process), for compare_to.
    benches = []
    metrics = ["fwd", "bwd", "total"] if case.has_backward else ["total"]
    for metric in metrics:
        values = [max(v, 1e-12) for v in timing[metric]]
        meta = {
            "name": f"{task['workload']}[{task['size']}]/{task['lib']}/{metric}",
            "loops": timing["loops"],
            "unit": "second",
            "gc_enabled": str(timing["gc_enabled"]),
            "gc_threshold": " ".join(str(t) for t in timing["gc_threshold"]),
            "gc_collections": " ".join(str(c) for c in timing["gc_collections"]),
            "lib_version": lib_version(task["lib"]) or "-",
        }
        warm = [(1, w) for w in timing["warmups"]]
        run = pyperf.Run(values, warmups=warm, metadata=meta, collect_metadata=True)
        benches.append(pyperf.Benchmark([run]))
    pyperf.BenchmarkSuite(benches).dump(task["pyperf_path"], replace=True)
    return out


def _max_rss() -> int:
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except ImportError:  # not on Unix
        return 0


# ---------------------------------------------------------------------------
# Parent side: the plan, the worker processes, the results
# ---------------------------------------------------------------------------


def _available(lib: str) -> tuple[bool, str]:
    """Whether ``lib`` imports here, checked without importing it into this process."""
    from benchmarks.cases import MODULE_OF

    module = MODULE_OF.get(lib)
    if module is None:
        return True, ""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return False, f"{module} is not installed"
    return True, ""


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The tasks to run, in order.

    The schedule is built of *units*, each a list of tasks run back to back
    (one cell, or one round of a cross-process pair), and units are
    interleaved by repetition: every unit's first repetition, then every
    unit's second, and so on.
    """
    st = _settings(args.quick)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    workloads = args.only.split(",") if args.only else [*WORKLOADS, "prims", "memory"]
    libs = args.libs.split(",") if args.libs else list(LIBS)
    processes = 1 if args.quick else args.processes
    units: list[tuple[int, list[dict[str, Any]]]] = []  # (repetition, tasks)
    skipped: list[dict[str, Any]] = []
    runnable: dict[tuple[str, int, str], dict[str, Any]] = {}
    for w in workloads:
        if w in WORKLOADS:
            for size in sizes[w]:
                ops = n_ops(w, size)
                for lib in WORKLOAD_LIBS[w]:
                    if lib not in libs:
                        continue
                    ok, why = _available(lib)
                    cap = MAX_OPS.get(lib)
                    if args.quick and lib in ("jax", "jax-jit"):
                        cap = QUICK_MAX_OPS
                    if ok and cap is not None and ops > cap and not args.slow:
                        ok, why = False, f"skipped: {ops:,} ops per call > {cap:,} (use --slow)"
                    base = {"workload": w, "lib": lib, "size": size, "n_ops": ops}
                    if not ok:
                        skipped.append({**base, "why": why})
                        continue
                    runnable[(w, size, lib)] = {"kind": "time", **base, **st}
        elif w == "prims":
            for lib in PRIM_LIBS:
                if lib in libs and _available(lib)[0]:
                    number = st["prim_number"]
                    if lib in ("jax", "autograd"):  # 5-50 us per op
                        number = max(number // 10, 20)
                    task = {"kind": "prims", "lib": lib, "number": number}
                    units.append((0, [{**task, "repeat": st["prim_repeat"]}]))
        elif w == "memory":
            for lib in MEMORY_LIBS:
                if lib in libs and _available(lib)[0]:
                    mem_ops = st["memory_ops"]
                    if lib in MEMORY_OPS_CAP and not args.slow:
                        mem_ops = min(mem_ops, MEMORY_OPS_CAP[lib])
                    units.append((0, [{"kind": "memory", "lib": lib, "n_ops": mem_ops}]))
        else:
            raise SystemExit(
                f"unknown workload {w!r}; choose from {[*WORKLOADS, 'prims', 'memory']}"
            )
    in_xproc: set[tuple[str, int, str]] = set()
    for w, subj, ref, s_size, r_size, mode in PAIRS:
        if args.quick:
            s_size, r_size = QUICK_PAIR_SIZES[w]
        if w not in workloads or subj not in libs or ref not in libs:
            continue
        if mode == "inproc":
            if not (_available(subj)[0] and _available(ref)[0]):
                continue
            task = {
                "kind": "pair",
                "workload": w,
                "lib": subj,
                "reference": ref,
                "size": s_size,
                "ref_size": r_size,
                "n_ops": n_ops(w, s_size),
                "ref_ops": n_ops(w, r_size),
                "collect": False,
                **st,
            }
            units += [(rep, [task]) for rep in range(processes)]
            continue
        subj_task = runnable.get((w, s_size, subj))
        ref_task = runnable.get((w, r_size, ref))
        if subj_task is None or ref_task is None:
            continue
        in_xproc.add((w, s_size, subj))
        pair_id = f"{w}/{subj}/{ref}/{s_size}"
        for r in range(1 if args.quick else XPROC_ROUNDS):
            check = r == 0  # value and gradient once per pair is enough
            meta = {"id": pair_id, "round": r}
            s_t = {**subj_task, "pair": {**meta, "role": "subject"}, "check": check}
            r_t = {**ref_task, "pair": {**meta, "role": "reference"}, "check": check}
            units.append((r, [s_t, r_t] if r % 2 == 0 else [r_t, s_t]))
    for key, task in runnable.items():
        if key in in_xproc:  # the pair's rounds time this cell already
            continue
        reps = 1 if task["lib"] in ONE_PROCESS else processes
        units += [(rep, [task]) for rep in range(reps)]
    tasks = []
    for rep in range(max((r for r, _ in units), default=-1) + 1):
        for r, unit in units:
            if r == rep:
                tasks += [{**t, "rep": rep} for t in unit]
    args.skipped = skipped
    return tasks


def _run_worker(task: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(task)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {"task": task, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"task": task, "error": f"exit {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def machine_info() -> dict[str, Any]:
    """Where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {lib: lib_version(lib) for lib in LIBS if _available(lib)[0] and lib_version(lib)}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "tapegrad"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
        "tapegrad_commit": commit + (" + uncommitted changes in tapegrad/" if dirty else ""),
        "load_avg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> int:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and budgets: a smoke run")
    parser.add_argument("--slow", action="store_true", help="also run peers above MAX_OPS")
    parser.add_argument(
        "--processes", type=int, default=2, help="worker processes per cell (default 2)"
    )
    parser.add_argument(
        "--only", help=f"comma-separated subset of {[*WORKLOADS, 'prims', 'memory']}"
    )
    parser.add_argument("--libs", help=f"comma-separated subset of {list(LIBS)}")
    parser.add_argument(
        "--results", type=Path, default=None, help="results JSON (default benchmarks/results/)"
    )
    parser.add_argument(
        "--md", type=Path, default=ROOT / "docs" / "benchmarks.md", help="report path"
    )
    parser.add_argument("--no-report", action="store_true", help="write results only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0

    import pyperf

    t_start = time.time()
    st = _settings(args.quick)
    tasks = plan(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ".gitignore").write_text("*\n")
    name = "quick" if args.quick else "latest"
    results_path = args.results or RESULTS / f"{name}.json"
    suite: Any = None
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, task in enumerate(tasks, 1):
            keys = ("kind", "workload", "lib", "size", "reference", "ref_size")
            label = "/".join(str(task.get(k)) for k in keys if task.get(k))
            print(f"[{n}/{len(tasks)}] {label} (rep {task['rep'] + 1})", end=" ", flush=True)
            task["pyperf_path"] = os.path.join(tmp, f"{n}.json")
            t0 = time.time()
            res = _run_worker(task, st["timeout"])
            status = res.get("error") or res.get("unavailable") or "ok"
            print(f"{time.time() - t0:.1f} s {status}", flush=True)
            results.append(res)
            if os.path.exists(task["pyperf_path"]):
                part = pyperf.BenchmarkSuite.load(task["pyperf_path"])
                if suite is None:
                    suite = part
                else:
                    suite.add_runs(part)
    data = {
        "quick": args.quick,
        "settings": {**st, "processes": 1 if args.quick else args.processes, "slow": args.slow},
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t_start)),
        "duration_seconds": time.time() - t_start,
        "results": results,
        "skipped": args.skipped,
    }
    results_path.write_text(json.dumps(data, indent=1))
    if suite is not None:
        suite.dump(str(results_path.with_suffix(".pyperf.json")), replace=True)
    print(f"results: {results_path}")
    if not args.no_report:
        from benchmarks import report

        md = args.md
        if args.quick and md == ROOT / "docs" / "benchmarks.md":
            md = RESULTS / "quick.md"  # a smoke run never overwrites the real report
        report.write_report(data, md)
        print(f"report: {md}")
    print(f"took {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
