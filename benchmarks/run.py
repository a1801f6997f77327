"""Run the suite: first results and agreement, pyperf timings, paired ratios, the report.

Usage::

    python benchmarks/run.py --quick  # tiny sizes, <= 2 min: benchmarks/results/quick.*
    python benchmarks/run.py          # full run: benchmarks/results/latest.*, docs/benchmarks.md
    python benchmarks/run.py --fast   # or --rigorous: fewer or more pyperf processes per cell
    python benchmarks/run.py --only rosen --libs plain,tapegrad,tapegrad-jit --out /tmp/r

Every cell (workload, size, library) runs in fresh processes, in table order.
A *probe* builds the case and times its first result (trace and compile
included), a few more calls, and computes value and gradient for the
agreement check. Then ``bench.py`` times it under pyperf with as many worker
processes as fit the cell's budget (``MODES``; at least 3), or none when
even 3 would not fit (the report then shows the probe's median, marked †).
Then the targets' paired ratios (``TARGETS``) and bytes per op.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # appended: see bench.py

from benchmarks import bench, report
from benchmarks import workloads as wl
from benchmarks.libs import CACHE_ENV, LIBS, make_case, version

ROOT = Path(__file__).resolve().parent.parent
# Per mode: pyperf processes and values per cell, the seconds a cell should
# take, the seconds of a probe's extra calls and of each side of a pair.
MODES: dict[str, dict[str, float]] = {
    "quick": {"processes": 1, "values": 1, "budget": 0, "probe": 0.02, "pair": 0.2},
    "fast": {"processes": 10, "values": 2, "budget": 5, "probe": 0.3, "pair": 1.5},
    "normal": {"processes": 20, "values": 3, "budget": 12, "probe": 0.5, "pair": 3},
    "rigorous": {"processes": 40, "values": 3, "budget": 40, "probe": 1, "pair": 8},
}
QUICK_MAX_OPS = 2_000  # --quick caps every capped library lower: no XLA compile of minutes
TIMEOUT = 900  # s per process; sympy's setup at 1,000 terms takes ~3.5 min, XLA's minutes
MEMORY = {"tapegrad": 10**5, "micrograd": 2 * 10**4}  # ops; tracemalloc slows micrograd a lot
# The speed targets measured in pairs: (target, subject, reference); the
# text's "≤ Nx" or "≥ Nx" is the criterion on the median of subject /
# reference, per op (per sample) where the sizes differ. Pairs with micrograd
# run each side alone in fresh processes, back to back, order alternating: in
# one process its cyclic garbage would be collected on whichever library's
# clock triggered the collector. The others alternate steps in one process
# (ABBA), which cancels the machine's drifting load.
TARGETS = [
    ("W1 eager step ≤ 12x plain", "mlp[100]/tapegrad", "mlp[100]/plain"),
    ("W2 eager value and grad ≤ 18x plain", "rosen[1000]/tapegrad", "rosen[1000]/plain"),
    ("W1 micrograd ≥ 40x slower than eager", "mlp[100]/micrograd", "mlp[100]/tapegrad"),
    ("W2 micrograd ≥ 40x slower than eager", "rosen[1000]/micrograd", "rosen[1000]/tapegrad"),
    (
        "W3 eager per op at 10^6 ops ≤ 1.2x at 10^4",
        "chain[1e6]/tapegrad",
        "chain[1e4]/tapegrad",
    ),
    ("W1 jit ≤ 3x plain", "mlp[100]/tapegrad-jit", "mlp[100]/plain"),
    ("W2 jit ≤ 3x plain", "rosen[1000]/tapegrad-jit", "rosen[1000]/plain"),
    ("W4 vmap per sample ≤ 0.1x one plain call", "vmap[1e4]/tapegrad-vmap", "vmap[1e4]/plain"),
    ("W4 loop of grad ≥ 50x slower than vmap", "vmap[1e3]/tapegrad", "vmap[1e4]/tapegrad-vmap"),
]
# vmap against W4 written by hand with numpy (benchmarks/vmap_blocks.py), paired
# in one process at sizes beyond the W4 cells: (target, samples, rounds); and
# the peak memory of one vmap call at the largest size, against its inputs and
# outputs' bytes. --quick: VMAP_QUICK samples, 4 rounds.
VMAP_FUSED = [
    ("W4 vmap per sample ≤ 1.3x hand-fused numpy at 10^4 samples", 10**4, 100),
    ("W4 vmap per sample ≤ 1.3x hand-fused numpy at 10^6 samples", 10**6, 10),
]
VMAP_MEMORY = "W4 vmap peak memory at 10^6 samples ≤ 3x inputs + outputs"
VMAP_QUICK = (100, 1000)
# W4 on Dask (benchmarks/dask_rows.py): samples, samples per chunk, best of repeats.
DASK = {"samples": 10**7, "chunk": 10**6, "repeat": 3}
DASK_QUICK = {"samples": 10**4, "chunk": 2_500, "repeat": 1}


def _median_step(case: Any, seconds: float, at_least: int = 3) -> tuple[float, int]:
    """Median seconds of a step, and the steps taken, over ``seconds``."""
    times: list[float] = []
    while len(times) < at_least or (sum(times) < seconds and len(times) < 10**5):
        t0 = time.perf_counter()
        case.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def _cached() -> list[str]:
    cache = os.environ.get(CACHE_ENV)
    return sorted(map(str, Path(cache).rglob("*"))) if cache else []


def _sub(xs: list[float]) -> list[float]:
    """At most ~2,000 evenly strided values, for the agreement check."""
    return xs[:: max(1, math.ceil(len(xs) / 2000))]


def probe(cell: bench.Cell, seconds: float) -> dict[str, Any]:
    """First result (build + first step), median call, value and gradient of a cell."""
    key, size, lib = cell
    cached, t0 = _cached(), time.perf_counter()
    if LIBS[lib].module:
        importlib.import_module(LIBS[lib].module)
    t1 = time.perf_counter()
    case = make_case(lib, key, size)
    case.step()
    out: dict[str, Any] = {"import_s": t1 - t0, "first_s": time.perf_counter() - t1}
    out["call_s"], out["calls"] = _median_step(case, seconds)
    values, grads = case.result()
    out |= {"values": _sub(values), "grads": _sub(grads), "n_grads": len(grads)}
    out |= {"notes": case.notes, "entries": case.entries() if case.entries else None}
    t = time.perf_counter()
    if _cached() != cached:  # it filled the run's cache: what a pyperf worker's setup costs
        make_case(lib, key, size).step()
    out["setup_s"] = time.perf_counter() - t if _cached() != cached else out["first_s"]
    return out


def pair(subject: bench.Cell, reference: bench.Cell, seconds: float) -> list[float]:
    """Ratios subject / reference of steps alternating in this process, ABBA order."""
    sides = []
    for key, size, lib in (subject, reference):
        case = make_case(lib, key, size)
        case.step()
        loops = math.ceil(2e-3 / max(_median_step(case, 0.0, 1)[0], 1e-9))  # >= 2 ms a sample
        sides.append((case, loops))
    ratios: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(ratios) < 5 or time.perf_counter() < t_end:
        t = {}
        for case, loops in sides if len(ratios) % 2 == 0 else sides[::-1]:
            t0 = time.perf_counter()
            for _ in range(loops):
                case.step()
            t[id(case)] = (time.perf_counter() - t0) / loops
        ratios.append(t[id(sides[0][0])] / t[id(sides[1][0])])
    return ratios


def memory(lib: str, n: int) -> dict[str, Any]:
    """Bytes per recorded op of a chain of ``n`` ops, graph alive and after release."""
    import tracemalloc

    value = importlib.import_module("tapegrad" if lib == "tapegrad" else "micrograd.engine").Value
    x = value(0.5)
    wl.chain(x, 10)  # warm-up: first chunk, caches
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    y = wl.chain(x, n // 2)
    gc.collect()
    alive = tracemalloc.get_traced_memory()[0] - base
    del y
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {"n_ops": n, "bytes_per_op": alive / n, "after_release": after / n}


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One job, in a fresh process; the parent reads the JSON line it prints."""
    out: dict[str, Any] = {"tapegrad_sources": bench.tapegrad_sources()}
    cell = bench.parse(job.get("cell", "plain[1]/plain"))
    if job["job"] == "probe":
        out |= probe(cell, job["seconds"])
    elif job["job"] == "steps":
        case = make_case(cell[2], cell[0], cell[1])
        case.step()
        out["step_s"] = _median_step(case, job["seconds"])[0]
    elif job["job"] == "pair":
        out["ratios"] = pair(cell, bench.parse(job["reference"]), job["seconds"])
    elif job["job"] == "memory":
        out |= memory(job["lib"], job["n"])
    elif job["job"] == "vmap_fused":
        from benchmarks import vmap_blocks

        out["ratios"] = vmap_blocks.paired(job["size"], job["rounds"])[0]
    elif job["job"] == "vmap_memory":
        from benchmarks import vmap_blocks

        keys = ("vmap_peak", "fused_peak", "io_bytes")
        out |= {"samples": job["size"], **dict(zip(keys, vmap_blocks.peak_memory(job["size"])))}
    elif job["job"] == "dask":
        from benchmarks import dask_rows

        out["rows"] = dask_rows.rows(job["samples"], job["chunk"], job["repeat"])
        out["samples"], out["chunk"] = job["samples"], job["chunk"]
    return out


def spawn(cmd: list[str], timeout: float, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """Run ``cmd``: its last JSON line (or ``{}``) and an error message ('' if none)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {}, f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return {}, f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), ""


def machine() -> dict[str, Any]:
    """Where the numbers come from: CPU, Python, versions, commit, load, gc settings."""
    with open("/proc/cpuinfo") as f:  # Linux: where the suite runs
        cpu = next((ln.split(":")[1].strip() for ln in f if ln.startswith("model name")), "?")

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout

    spec = importlib.util.find_spec("tapegrad")
    modules = ["pyperf", "numpy", *dict.fromkeys(lib.module for lib in LIBS.values() if lib.module)]
    dirty = (
        " + uncommitted changes in tapegrad/" if git("status", "--porcelain", "tapegrad") else ""
    )
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "platform": platform.platform(),
        "versions": {m: version(m) for m in modules if importlib.util.find_spec(m)},
        "commit": git("rev-parse", "--short", "HEAD").strip() + dirty,
        "tapegrad_path": str(Path(spec.origin).parent) if spec and spec.origin else "-",
        "load": list(os.getloadavg()),
        "gc": f"on, thresholds {gc.get_threshold()}",
    }


class Run:
    """One run of the suite: its settings, the child processes, the results."""

    def __init__(self, args: argparse.Namespace, cache: str) -> None:
        self.args, self.mode = args, next((m for m in MODES if getattr(args, m, 0)), "normal")
        self.st, self.hashes = MODES[self.mode], {bench.tapegrad_sources()}
        self.env = {**os.environ, CACHE_ENV: cache}
        self.data: dict[str, Any] = {"mode": self.mode, "machine": machine(), "cells": []}
        self.data |= {"pairs": [], "started": time.strftime("%Y-%m-%d %H:%M %Z")}

    def child(self, job: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """``job`` in a fresh process (see :func:`child`)."""
        res, err = spawn([sys.executable, __file__, "--child", json.dumps(job)], TIMEOUT, self.env)
        self.hashes.add(res.get("tapegrad_sources") or next(iter(self.hashes)))
        return res, err

    def cell(self, cell: bench.Cell, pyperf_json: Path) -> None:
        """Probe a cell, then time it with pyperf in as many processes as fit its budget."""
        rec: dict[str, Any] = {"cell": cell, "ops": wl.n_ops(cell[0], cell[1])}
        self.data["cells"].append(rec)
        per_call = rec["ops"] // (cell[1] if wl.WORKLOADS[cell[0]].per_sample else 1)
        if self.args.quick and LIBS[cell[2]].max_ops and per_call > QUICK_MAX_OPS:
            rec["skip"] = f"{per_call:,} ops per call > {QUICK_MAX_OPS:,} (--quick cap)"
        if why := rec.get("skip") or bench.skip_reason(cell, self.args.slow):
            rec["skip"] = why
            return
        t0, name = time.time(), bench.name(cell)
        print(f"{name}: probe", end=" ", flush=True)
        job = {"job": "probe", "cell": name, "seconds": self.st["probe"]}
        rec["probe"], rec["error"] = self.child(job)
        if not rec["error"]:  # pyperf processes: as many as fit the budget, at least 3, or none
            p, st = rec["probe"], self.st
            each = 0.3 + p["import_s"] + p["setup_s"] + (1 + st["values"]) * max(p["call_s"], 0.1)
            procs = int(min(st["processes"], max(3, st["budget"] // each)))
            rec["processes"] = 1 if self.args.quick else procs if each <= 2 * st["budget"] else 0
            print(f"{p['first_s']:.2f} s; pyperf: {rec['processes']} processes", end=" ")
        if rec.get("processes"):
            cmd = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--cell", name, "-q"]
            cmd += ["-p", str(rec["processes"]), "-n", str(int(self.st["values"]))]
            cmd += ["-l", "1", "-w", "1"] if self.args.quick else []
            cmd += ["--append", str(pyperf_json), "--timeout", str(TIMEOUT)]
            rec["error"] = spawn(cmd, TIMEOUT * (rec["processes"] + 2), self.env)[1]
        print(f"{time.time() - t0:.1f} s {rec['error']}", flush=True)

    def target(self, text: str, subj_name: str, ref_name: str) -> None:
        """Measure one target's ratio in pairs."""
        subj, ref = bench.parse(subj_name), bench.parse(ref_name)
        if self.args.quick:  # the quick sizes, ordered as the full ones
            q, (a, b) = wl.WORKLOADS[subj[0]].quick, (subj[1], ref[1])
            subj, ref = (subj[0], q[-(a >= b)], subj[2]), (ref[0], q[-(b >= a)], ref[2])
        p: dict[str, Any] = {
            "target": text,
            "subject": subj,
            "reference": ref,
            "ratios": [],
        }
        p["limit"] = float(re.findall(r"[≤≥] ([\d.]+)x", text)[0])
        p |= {"at_most": "≤" in text, "scale": wl.n_ops(*ref[:2]) / wl.n_ops(*subj[:2])}
        p["how"] = how = "xproc" if "micrograd" in subj + ref else "inproc"
        self.data["pairs"].append(p)
        recs = {tuple(r["cell"]): r for r in self.data["cells"]}
        if bad := [c for c in (subj, ref) if not recs.get(c, {}).get("probe") or recs[c]["error"]]:
            why = recs.get(bad[0], {}).get("skip") or recs.get(bad[0], {}).get("error")
            p["error"] = f"not measured: {bench.name(bad[0])}: {why or 'not selected'}"
            return
        print(f"pair: {text}", flush=True)
        err = ""
        for r in range(1 if self.args.quick else 3 if how == "xproc" else 2):
            if how == "inproc":
                job = {"job": "pair", "cell": bench.name(subj), "reference": bench.name(ref)}
                res, err = self.child({**job, "seconds": 2 * self.st["pair"]})
                p["ratios"] += res.get("ratios", [])
                continue
            t = {}
            for side in (subj, ref) if r % 2 == 0 else (ref, subj):
                res, err = self.child(
                    {"job": "steps", "cell": bench.name(side), "seconds": self.st["pair"]}
                )
                t[side] = res.get("step_s", math.nan)
            p["ratios"].append(t[subj] / t[ref])
        p["error"] = err

    def vmap_fused(self) -> None:
        """vmap against hand-fused numpy, paired (``VMAP_FUSED``), its peak memory, and Dask."""
        quick = self.args.quick
        for (text, size, rounds), small in zip(VMAP_FUSED, VMAP_QUICK):
            size, rounds = (small, 4) if quick else (size, rounds)
            p: dict[str, Any] = {"target": text, "subject": ("vmap", size, "tapegrad-vmap")}
            p |= {"reference": ("vmap", size, "numpy-fused"), "scale": 1.0, "how": "inproc"}
            p |= {"limit": float(re.findall(r"[≤≥] ([\d.]+)x", text)[0]), "at_most": True}
            print(f"pair: {text}", flush=True)
            job = {"job": "vmap_fused", "size": size, "rounds": rounds}
            res, p["error"] = self.child(job)
            p["ratios"] = res.get("ratios", [])
            self.data["pairs"].append(p)
        size = VMAP_QUICK[-1] if quick else VMAP_FUSED[-1][1]
        res, err = self.child({"job": "vmap_memory", "size": size})
        self.data["vmap_memory"] = {"target": VMAP_MEMORY, "limit": 3.0, **(res or {"error": err})}
        print("dask: W4 on numpy and on 1 and 2 Dask workers", flush=True)
        res, err = self.child({"job": "dask", **(DASK_QUICK if quick else DASK)})
        self.data["dask"] = res if "rows" in res else {"error": err or "no result"}


def main(argv: list[str] | None = None) -> int:
    """The command line; see the module docstring."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    for m in ("quick", "fast", "rigorous"):
        mode.add_argument(f"--{m}", action="store_true", help=f"settings: {MODES[m]}")
    ap.add_argument("--only", default="", help=f"workloads: {','.join(wl.WORKLOADS)}")
    ap.add_argument("--libs", default="", help=f"libraries: {','.join(LIBS)}")
    ap.add_argument("--slow", action="store_true", help="lift the per-library size caps")
    ap.add_argument(
        "--out", type=Path, help="results prefix (default benchmarks/results/latest or quick)"
    )
    ap.add_argument(
        "--md",
        type=Path,
        help="report (default docs/benchmarks.md; beside --out or --quick results)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    out = args.out or ROOT / "benchmarks" / "results" / ("quick" if args.quick else "latest")
    md = args.md or (
        out.with_suffix(".md") if args.quick or args.out else ROOT / "docs" / "benchmarks.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.parent == ROOT / "benchmarks" / "results":
        (out.parent / ".gitignore").write_text("*\n")
    pyperf_json = out.with_suffix(".pyperf.json")
    pyperf_json.unlink(missing_ok=True)
    t_start = time.time()
    with tempfile.TemporaryDirectory() as cache:
        run = Run(args, cache)
        for cell in bench.cells(bench.split(args.only), bench.split(args.libs), args.quick):
            run.cell(cell, pyperf_json)
        for target in TARGETS:
            run.target(*target)
        selected = bench.split(args.libs) or LIBS
        if ("vmap" in (bench.split(args.only) or wl.WORKLOADS)) and all(
            lib in selected and not LIBS[lib].missing() for lib in ("tapegrad-vmap", "numpy-fused")
        ):
            run.vmap_fused()
        run.data["memory"] = {}
        for lib, n in MEMORY.items():
            if lib in (bench.split(args.libs) or LIBS) and not LIBS[lib].missing():
                res, err = run.child({"job": "memory", "lib": lib, "n": 1000 if args.quick else n})
                run.data["memory"][lib] = res or {"error": err}
    run.hashes.add(bench.tapegrad_sources())
    run.data |= {"tapegrad_sources": sorted(run.hashes), "duration_s": time.time() - t_start}
    out.with_suffix(".json").write_text(json.dumps(run.data, indent=1))
    report.write(run.data, pyperf_json, md)
    print(f"results: {out}.json, {pyperf_json}; report: {md}; {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
