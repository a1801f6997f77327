"""Turn a results file of :mod:`benchmarks.run` into ``docs/benchmarks.md`` and a plot.

Usage: ``python benchmarks/report.py [benchmarks/results/latest.json] [docs/benchmarks.md]``
redraws the report from saved results without timing anything.

Every time in the tables is the median over all samples of all worker
processes of a cell; the spread column is pyperf's relative standard
deviation. Ratios are of medians: "x plain" divides by the plain-float
function on the same workload, "÷ tapegrad" divides a peer's time by
tapegrad's (how many times slower the peer is).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["Cell", "aggregate", "targets", "write_report", "plot_scaling"]

LABELS = {
    "plain": "plain Python",
    "plain-grad": "plain, hand-written grad",
    "tapegrad": "tapegrad",
    "tapegrad-grad": "tapegrad (grad)",
    "tapegrad-dot": "tapegrad (math.dot neurons)",
    "micrograd": "micrograd",
    "torch": "PyTorch (scalar tensors)",
    "autograd": "HIPS autograd",
    "jax": "JAX (eager)",
    "jax-jit": "JAX (jit)",
}
WORKLOAD_TITLES = {
    "mlp": "Workload 1: the micrograd demo step (MLP(2, [16, 16, 1]), relu, 100 points, SVM loss)",
    "rosenbrock": "Workload 2: gradient of the 1,000-term Rosenbrock function (a Python loop)",
    "chain": "Workload 3: a chain of ops (y <- y * C + x), 10^3 to 10^6 ops deep",
    "fan": "Workload 4: fan-out/fan-in, sum(x * w_i) over 10^5 leaves w_i",
}


class Cell:
    """All samples of one (workload, size, library), merged over processes."""

    def __init__(self, workload: str, size: int, lib: str, n_ops: int) -> None:
        self.workload = workload
        self.size = size
        self.lib = lib
        self.n_ops = n_ops
        self.samples: dict[str, list[float]] = defaultdict(list)  # all processes
        self.per_process: dict[str, list[list[float]]] = defaultdict(list)
        self.split = False
        self.processes = 0
        self.notes: list[str] = []
        self.setup: list[float] = []
        self.gc: list[str] = []
        self.value: float | None = None
        self.grads_head: list[float] | None = None
        self.grads_sum: float | None = None
        self.label = LABELS.get(lib, lib)

    def median(self, metric: str) -> float | None:
        """Seconds per call of ``metric`` (fwd, bwd, total): median of the process medians.

        Processes weigh equally, however many samples each took: on a shared
        machine one process may run under twice the load of another.
        """
        runs = [r for r in self.per_process.get(metric, []) if r]
        return statistics.median(statistics.median(r) for r in runs) if runs else None

    def ratio_samples(self, num: str, den: str) -> list[float]:
        """Per-iteration ratios ``num / den`` (e.g. bwd / fwd of the same step)."""
        return [a / b for a, b in zip(self.samples.get(num, []), self.samples.get(den, [])) if b]

    def best(self, metric: str) -> float | None:
        """Fastest sample of ``metric``."""
        values = self.samples.get(metric)
        return min(values) if values else None

    def spread(self, metric: str) -> float | None:
        """Relative standard deviation of ``metric`` over all samples."""
        values = self.samples.get(metric)
        if not values or len(values) < 2:
            return None
        return statistics.stdev(values) / statistics.mean(values)


class Pair:
    """Paired measurements of one subject against one reference.

    ``inproc``: rounds of harness.time_pair (both sides alternating in one
    process); ``xproc``: rounds of two worker processes run back to back,
    one ratio of their median steps per round.
    """

    def __init__(self, task: dict[str, Any], mode: str) -> None:
        self.workload: str = task["workload"]
        self.lib: str = task["lib"]
        self.reference: str = task["reference"]
        self.size: int = task["size"]
        self.ref_size: int = task["ref_size"]
        # Per-op ratio when the sizes differ (the chain scaling target).
        self.scale = task["ref_ops"] / task["n_ops"] if self.size != self.ref_size else 1.0
        self.ratios: list[float] = []
        self.processes = 0
        self.mode = mode

    def quantiles(self) -> tuple[float, float, float]:
        """Lower quartile, median and upper quartile of the (scaled) ratios."""
        r = sorted(x * self.scale for x in self.ratios)
        if len(r) < 4:
            return r[0], statistics.median(r), r[-1]
        q1, q2, q3 = statistics.quantiles(r, n=4)
        return q1, q2, q3

    def text(self) -> str:
        """``median (IQR q1-q3)``, or ``(range lo-hi)`` for fewer than 4 ratios."""
        q1, q2, q3 = self.quantiles()
        what = "IQR" if len(self.ratios) >= 4 else "range"
        return f"{_fmt_ratio(q2)} ({what} {_fmt_ratio(q1)}–{_fmt_ratio(q3)})"


PairKey = tuple[str, str, str, int, int]


def pairs_of(data: dict[str, Any]) -> dict[PairKey, Pair]:
    """Paired results keyed by (workload, subject, reference, size, reference size)."""
    out: dict[PairKey, Pair] = {}
    rounds: dict[str, dict[int, dict[str, tuple[dict[str, Any], float]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for res in data["results"]:
        task = res["task"]
        if task["kind"] == "pair" and "pair" in res:
            key = (task["workload"], task["lib"], task["reference"], task["size"], task["ref_size"])
            pair = out.get(key) or out.setdefault(key, Pair(task, "inproc"))
            pair.ratios.extend(res["pair"]["ratios"])
            pair.processes += 1
        elif task["kind"] == "time" and task.get("pair") and "timing" in res:
            meta = task["pair"]
            median = statistics.median(res["timing"]["total"])
            rounds[meta["id"]][meta["round"]][meta["role"]] = (task, median)
    for by_round in rounds.values():
        for sides in by_round.values():
            if "subject" not in sides or "reference" not in sides:
                continue
            (s_task, s_med), (r_task, r_med) = sides["subject"], sides["reference"]
            key = (s_task["workload"], s_task["lib"], r_task["lib"], s_task["size"], r_task["size"])
            info = {
                **s_task,
                "reference": r_task["lib"],
                "ref_size": r_task["size"],
                "ref_ops": r_task["n_ops"],
            }
            pair = out.get(key) or out.setdefault(key, Pair(info, "xproc"))
            pair.ratios.append(s_med / r_med)
            pair.processes += 2
    return out


def aggregate(data: dict[str, Any]) -> dict[tuple[str, int, str], Cell]:
    """Timing results keyed by (workload, size, lib)."""
    cells: dict[tuple[str, int, str], Cell] = {}
    for res in data["results"]:
        task = res["task"]
        if task["kind"] != "time" or "timing" not in res:
            continue
        key = (task["workload"], task["size"], task["lib"])
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell(*key, task["n_ops"])
        t = res["timing"]
        cell.split = res["split"]
        cell.processes += 1
        for metric in ("fwd", "bwd", "total"):
            if metric in t and (metric != "bwd" or res["split"]):
                cell.samples[metric].extend(t[metric])
                cell.per_process[metric].append(list(t[metric]))
        cell.setup.append(res.get("setup_seconds", 0.0))
        cell.gc.append(
            f"gc {'on' if t['gc_enabled'] else 'off'}, {sum(t['gc_collections'])} collections"
        )
        for note in res.get("notes", []):
            if note not in cell.notes:
                cell.notes.append(note)
        if res.get("label") and res["label"] != task["lib"]:
            cell.label = res["label"]
        if "value" in res:
            cell.value = res["value"]
            cell.grads_head = res["grads_head"]
            cell.grads_sum = res["grads_sum"]
    return cells


def _row(*cells: str) -> str:
    """One markdown table row."""
    return "| " + " | ".join(cells) + " |"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _fmt_ratio(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "—"
    return f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _agreement(cell: Cell, ref: Cell | None) -> str:
    """Largest relative difference of value and gradients against tapegrad."""
    if ref is None or cell is ref or cell.value is None or ref.value is None:
        return ""
    pairs = [(cell.value, ref.value)]
    if cell.grads_head is not None and ref.grads_head is not None:
        pairs += list(zip(cell.grads_head, ref.grads_head))
        pairs.append((cell.grads_sum or 0.0, ref.grads_sum or 0.0))
    worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in pairs)
    return f"{worst:.0e}"


def _ref(cells: dict[tuple[str, int, str], Cell], workload: str, size: int) -> Cell | None:
    if workload == "rosenbrock":
        return cells.get((workload, size, "tapegrad-grad")) or cells.get(
            (workload, size, "tapegrad")
        )
    return cells.get((workload, size, "tapegrad"))


def _workload_table(
    cells: dict[tuple[str, int, str], Cell],
    pairs: dict[PairKey, Pair],
    workload: str,
    size: int,
) -> list[str]:
    plain = cells.get((workload, size, "plain"))
    ref = _ref(cells, workload, size)
    p_total = plain.median("total") if plain else None
    r_total = ref.median("total") if ref else None
    lines = [
        _row(
            "library",
            "forward",
            "backward",
            "step (fwd+bwd)",
            "best step",
            "x plain",
            "÷ tapegrad",
            "Δ vs tapegrad",
            "notes",
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    order = [
        "plain",
        "plain-grad",
        "tapegrad-grad",
        "tapegrad",
        "tapegrad-dot",
        "micrograd",
        "torch",
        "autograd",
        "jax",
        "jax-jit",
    ]
    for lib in order:
        cell = cells.get((workload, size, lib))
        if cell is None:
            continue
        total = cell.median("total")
        fwd = cell.median("fwd") if cell.split else None
        bwd = cell.median("bwd") if cell.split else None
        notes = list(cell.notes)
        if lib == "plain":
            notes.insert(0, "function value only")
        elif not cell.split:
            notes.insert(0, "one call, not split")
        notes.append(
            f"{cell.processes} proc., {len(cell.samples['total'])} samples, "
            f"±{(cell.spread('total') or 0) * 100:.0f}%; {cell.gc[0]}"
        )
        x_plain = _fmt_ratio(_ratio(total, p_total))
        paired = pairs.get((workload, lib, "plain", size, size))
        if paired:
            x_plain = f"**{_fmt_ratio(paired.quantiles()[1])}** ‡"
        vs_ref = ""
        if cell is not ref and not lib.startswith("plain") and ref is not None:
            vs_ref = _fmt_ratio(_ratio(total, r_total))
            paired = pairs.get((workload, lib, ref.lib, size, size))
            if paired:
                vs_ref = f"**{_fmt_ratio(paired.quantiles()[1])}** ‡"
        bold = "**" if cell is ref else ""
        lines.append(
            _row(
                f"{bold}{cell.label}{bold}",
                _fmt_time(fwd),
                _fmt_time(bwd),
                f"{bold}{_fmt_time(total)}{bold}",
                _fmt_time(cell.best("total")),
                x_plain,
                vs_ref,
                _agreement(cell, ref),
                "; ".join(notes),
            )
        )
    lines += [
        "",
        "Times: median of the per-process medians. Ratios marked ‡ come from paired rounds "
        "(both sides alternating in one process, see below); the others divide medians of "
        "cells timed at different moments.",
    ]
    return lines


def targets(
    data: dict[str, Any],
    cells: dict[tuple[str, int, str], Cell],
    pairs: dict[PairKey, Pair],
) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of issue 5.

    Ratios come from paired rounds (median of the per-round ratios, with the
    interquartile range); backward/forward from the per-step ratios of
    tapegrad's own cell. A target is met when the median meets it.
    """
    out: list[tuple[str, str, bool | None]] = []

    def from_pair(name: str, key: PairKey, limit: float, most: bool) -> None:
        pair = pairs.get(key)
        if pair is None or not pair.ratios:
            out.append((name, "not measured", None))
            return
        med = pair.quantiles()[1]
        out.append((name, pair.text(), med <= limit if most else med >= limit))

    def bwd_fwd(name: str, cell: Cell | None) -> None:
        r = cell.ratio_samples("bwd", "fwd") if cell and cell.split else []
        if not r:
            out.append((name, "not measured", None))
            return
        q = statistics.quantiles(r, n=4) if len(r) >= 4 else [min(r), statistics.median(r), max(r)]
        text = f"{q[1]:.2f} (IQR {q[0]:.2f}–{q[2]:.2f})"
        out.append((name, text, q[1] <= 1.0))

    mlp = max((s for (w, s, _) in cells if w == "mlp"), default=None)
    mlp_pair = max((k[3] for k in pairs if k[0] == "mlp"), default=mlp)
    if mlp_pair is not None:
        m = mlp_pair
        from_pair(
            "W1: tapegrad step ≤ 10x plain floats", ("mlp", "tapegrad", "plain", m, m), 10, True
        )
        from_pair(
            "W1: micrograd ≥ 30x slower than tapegrad",
            ("mlp", "micrograd", "tapegrad", m, m),
            30,
            False,
        )
        from_pair(
            "W1: PyTorch ≥ 20x slower than tapegrad", ("mlp", "torch", "tapegrad", m, m), 20, False
        )
    if mlp is not None:
        bwd_fwd(
            "W1: tapegrad backward ≤ forward (bwd/fwd per step)",
            cells.get(("mlp", mlp, "tapegrad")),
        )
    ros = max((k[3] for k in pairs if k[0] == "rosenbrock"), default=None)
    if ros is not None:
        r = ros
        from_pair(
            "W2: tapegrad grad ≤ 15x plain floats",
            ("rosenbrock", "tapegrad-grad", "plain", r, r),
            15,
            True,
        )
        from_pair(
            "W2: micrograd ≥ 20x slower than tapegrad (grad)",
            ("rosenbrock", "micrograd", "tapegrad-grad", r, r),
            20,
            False,
        )
    ros_cell = max((s for (w, s, _) in cells if w == "rosenbrock"), default=None)
    if ros_cell is not None:
        bwd_fwd(
            "W2: tapegrad (grad) backward ≤ forward (bwd/fwd per step)",
            cells.get(("rosenbrock", ros_cell, "tapegrad-grad")),
        )
    chain = next((k for k in pairs if k[0] == "chain" and k[1] == k[2] == "tapegrad"), None)
    name = "W3: per-op time at 10^6 ops ≤ 1.5x at 10^4"
    if chain is not None:
        name = f"W3: per-op time at {chain[3]:,} ops ≤ 1.5x at {chain[4]:,}"
        from_pair(name, chain, 1.5, True)
    else:
        out.append((name, "not measured", None))
    mem = _memory(data).get("tapegrad")
    if mem:
        out.append(
            (
                f"W6: ≤ 48 bytes per recorded op ({mem['n_ops']:,} ops, tracemalloc)",
                f"{mem['bytes_per_op']:.1f} B",
                mem["bytes_per_op"] <= 48,
            )
        )
    else:
        out.append(("W6: ≤ 48 bytes per recorded op", "not measured", None))
    return out


def _hash_warning(data: dict[str, Any]) -> list[str]:
    hashes = {r.get("tapegrad_hash") for r in data["results"] if r.get("tapegrad_hash")}
    if len(hashes) <= 1:
        return []
    return [
        f"**Warning: tapegrad's sources changed during this run ({len(hashes)} versions seen); "
        "cells may have measured different engines.**",
        "",
    ]


def _pairs_section(pairs: dict[PairKey, Pair]) -> list[str]:
    if not pairs:
        return []
    lines = [
        "## Paired ratios",
        "",
        "A shared machine's load drifts over seconds to minutes and slows every sample taken "
        "meanwhile: two cells timed minutes apart can differ by 1.5x for that reason alone. "
        "The targets' ratios are therefore measured in pairs. *In one process*: subject and "
        "reference alternate step by step (ABBA order), one ratio per round; used where the "
        "two sides cannot disturb each other. *Alternating processes*: each round runs the "
        "subject's and the reference's worker processes back to back (order alternating), "
        "each library alone with its default garbage collector, and gives the ratio of their "
        "median steps; used for the peers, because in one shared process micrograd's cyclic "
        "garbage would be collected on whichever library's clock triggered the collector.",
        "",
        _row("workload", "subject", "reference", "ratio (median, spread)", "rounds", "how"),
        "|---|---|---|---:|---:|---|",
    ]
    for p in pairs.values():
        subj = f"{LABELS.get(p.lib, p.lib)} ({p.size:,})"
        ref = f"{LABELS.get(p.reference, p.reference)} ({p.ref_size:,})"
        what = p.text() + (" per op" if p.scale != 1.0 else "")
        how = "one process" if p.mode == "inproc" else "alternating processes"
        lines.append(
            _row(p.workload, subj, ref, what, f"{len(p.ratios)} in {p.processes} proc.", how)
        )
    lines.append("")
    return lines


def _memory(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["task"]["lib"]: r["memory"]
        for r in data["results"]
        if r["task"]["kind"] == "memory" and "memory" in r
    }


def _prims(data: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for r in data["results"]:
        if r["task"]["kind"] == "prims" and "prims" in r:
            out.update(r["prims"])
    return out


def plot_scaling(cells: dict[tuple[str, int, str], Cell], path: Path) -> bool:
    """Time per op against graph size, one line per library (False without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    libs = sorted(
        {lib for (w, _, lib) in cells if w == "chain"}, key=lambda lib: list(LABELS).index(lib)
    )
    for lib in libs:
        pts = sorted((s, c) for (w, s, lb), c in cells.items() if w == "chain" and lb == lib)
        xs = [c.n_ops for _, c in pts]
        ys = [(c.median("total") or math.nan) / c.n_ops * 1e9 for _, c in pts]
        style = {"linewidth": 2.5} if lib == "tapegrad" else {}
        ax.plot(xs, ys, marker="o", label=f"{LABELS.get(lib, lib)} (fwd+bwd)", **style)
        if lib == "tapegrad":
            for metric, ls in (("fwd", "--"), ("bwd", ":")):
                ym = [(c.median(metric) or math.nan) / c.n_ops * 1e9 for _, c in pts]
                ax.plot(xs, ym, ls, color=ax.lines[-1].get_color(), label=f"tapegrad {metric}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("graph size (recorded ops)")
    ax.set_ylabel("time per op (ns), median")
    ax.set_title("Chain workload: time per op against graph size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(data: dict[str, Any], md_path: Path) -> None:
    """Write the markdown report and its plot next to it."""
    md_path.parent.mkdir(parents=True, exist_ok=True)
    cells = aggregate(data)
    m = data["machine"]
    st = data["settings"]
    lines: list[str] = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run.py`"
        + (" --quick (a smoke run: the numbers mean nothing)" if data.get("quick") else "")
        + f" on {data['started']}, in {data['duration_seconds'] / 60:.1f} minutes. "
        "Do not edit by hand; `benchmarks/README.md` explains the method.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores "
        "(shared and noisy: compare ratios, not absolute times)",
        f"- {m['python']} on {m['platform']}",
        f"- tapegrad at {m['tapegrad_commit']}",
        "- versions: "
        + ", ".join(
            f"{k} {v}"
            for k, v in m["versions"].items()
            if k in ("tapegrad", "micrograd", "torch", "autograd", "jax")
        ),
        f"- load average at start: {', '.join(f'{x:.2f}' for x in m['load_avg_start'] or [])}",
        "- method: one fresh process per cell and repetition "
        f"({st['processes']} per cell, 1 for JAX and autograd), "
        f"{st['warmups']} warm-up call, then samples for ~{st['budget']} s "
        f"(at least {st['min_samples']}); "
        "garbage collector on with default thresholds (each library as its users run it); "
        "times are medians of the per-process medians; ratios for the targets come from paired "
        "rounds",
        "",
        *_hash_warning(data),
        "## Targets (issue 5)",
        "",
        "Ratios from paired measurements (see *Paired ratios* below): the median, with the "
        "interquartile range (or the range, for fewer than 4 rounds); a target is met when the "
        "median meets it.",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    pairs = pairs_of(data)
    for name, measured, met in targets(data, cells, pairs):
        lines.append(
            f"| {name} | {measured} | {'—' if met is None else 'yes' if met else '**no**'} |"
        )
    lines.append("")
    for w in ("mlp", "rosenbrock", "fan"):
        sizes = sorted({s for (ww, s, _) in cells if ww == w})
        for size in sizes:
            n = next(c.n_ops for (ww, s, _), c in cells.items() if ww == w and s == size)
            lines += [
                f"## {WORKLOAD_TITLES[w]}",
                "",
                f"Size {size:,}: {n:,} recorded ops per call.",
                "",
            ]
            lines += _workload_table(cells, pairs, w, size)
            lines.append("")
    lines += _chain_section(cells, md_path)
    lines += _pairs_section(pairs)
    lines += _prims_section(data)
    lines += _memory_section(data)
    not_run = list(data.get("skipped", []))
    for r in data["results"]:
        if "unavailable" in r and r["task"]["kind"] == "time":
            t = r["task"]
            if not any(
                (s["workload"], s["size"], s["lib"]) == (t["workload"], t["size"], t["lib"])
                for s in not_run
            ):
                not_run.append({**t, "why": r["unavailable"]})
    if not_run:
        lines += ["## Not run", "", "| workload | size | library | why |", "|---|---:|---|---|"]
        for s in not_run:
            lines.append(
                _row(s["workload"], f"{s['size']:,}", LABELS.get(s["lib"], s["lib"]), s["why"])
            )
        lines.append("")
    errors = [r for r in data["results"] if "error" in r]
    if errors:
        lines += ["## Errors", ""]
        for r in errors:
            t = r["task"]
            lines.append(
                f"- {t['kind']} {t.get('workload', '')} {t.get('lib', '')} {t.get('size', '')}: "
                f"`{r['error']}`"
            )
        lines.append("")
    md_path.write_text("\n".join(lines))


def _chain_section(cells: dict[tuple[str, int, str], Cell], md_path: Path) -> list[str]:
    sizes = sorted({s for (w, s, _) in cells if w == "chain"})
    if not sizes:
        return []
    libs = [lib for lib in LABELS if any((w, lib) == ("chain", lb) for (w, _, lb) in cells)]
    lines = [
        f"## {WORKLOAD_TITLES['chain']}",
        "",
        "Time per op of the whole step (forward, backward, dropping the graph); "
        "tapegrad's forward and "
        "backward per op, and each peer's ratio to tapegrad, in parentheses.",
        "",
        "| ops | " + " | ".join(LABELS[lib] for lib in libs) + " | tapegrad fwd / bwd per op |",
        "|---:|" + "---:|" * (len(libs) + 1),
    ]
    for size in sizes:
        ref = cells.get(("chain", size, "tapegrad"))
        ref_t = ref.median("total") if ref else None
        row = [f"{size:,}"]
        for lib in libs:
            c = cells.get(("chain", size, lib))
            if c is None:
                row.append("—")
                continue
            t = c.median("total")
            per = None if t is None else t / c.n_ops
            r = "" if lib == "tapegrad" else f" ({_fmt_ratio(_ratio(t, ref_t))})"
            row.append(f"{per * 1e9:.0f} ns{r}" if per is not None else "—")
        if ref:
            f, b = ref.median("fwd"), ref.median("bwd")
            row.append(f"{(f or 0) / ref.n_ops * 1e9:.0f} / {(b or 0) / ref.n_ops * 1e9:.0f} ns")
        else:
            row.append("—")
        lines.append("| " + " | ".join(row) + " |")
    png = md_path.with_name(md_path.stem + "_scaling.png")
    if plot_scaling(cells, png):
        lines += ["", f"![time per op against graph size]({png.name})"]
    jit = [c for (w, _, lb), c in cells.items() if w == "chain" and lb == "jax-jit"]
    if jit:
        lines += [
            "",
            "JAX (jit) compile time, not in the table: "
            + ", ".join(
                f"{c.n_ops:,} ops: {max(c.setup):.1f} s" for c in sorted(jit, key=lambda c: c.n_ops)
            ),
        ]
    lines.append("")
    return lines


def _prims_section(data: dict[str, Any]) -> list[str]:
    prims = _prims(data)
    if not prims:
        return []
    from benchmarks.harness import PRIMITIVES

    variants = list(prims)
    lines = [
        "## Workload 5: cost per primitive op (ns, best of repeats)",
        "",
        "Each op repeated in a `timeit` loop with the garbage collector on. Recorded ops take "
        "operands that are themselves results on the open tape (graph), as inside a forward pass. "
        "`tapegrad.math on floats` is the dispatch cost when nothing is recorded. "
        "`const` rows take a Python float as the second operand. "
        "Empty: the library has no such primitive.",
        "",
        "| op | " + " | ".join(variants) + " |",
        "|---|" + "---:|" * len(variants),
    ]
    for prim in PRIMITIVES:
        row = [prim]
        for v in variants:
            vals = prims[v].get(prim)
            row.append(f"{min(vals) * 1e9:.0f}" if vals else "")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines


def _memory_section(data: dict[str, Any]) -> list[str]:
    mem = _memory(data)
    if not mem:
        return []
    lines = [
        "## Workload 6: memory per recorded op (chain, graph alive)",
        "",
        "tracemalloc counts what Python's allocators hand out; PyTorch and JAX keep their graphs "
        "in C++, which tracemalloc does not see, so their RSS growth is shown as well.",
        "",
        _row(
            "library",
            "ops",
            "bytes/op (tracemalloc)",
            "peak bytes/op",
            "after backward",
            "after release",
            "RSS growth/op",
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lib, r in mem.items():
        after_bwd = r.get("bytes_per_op_after_backward")
        lines.append(
            _row(
                LABELS.get(lib, lib),
                f"{r['n_ops']:,}",
                f"{r['bytes_per_op']:.1f}",
                f"{r['peak_bytes_per_op']:.1f}",
                "—" if after_bwd is None else f"{after_bwd:.1f}",
                f"{r['bytes_per_op_after_release']:.1f}",
                f"{r['rss_bytes_per_op']:.0f}",
            )
        )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Redraw the report from a results file."""
    args = sys.argv[1:] if argv is None else argv
    src = Path(args[0]) if args else ROOT / "benchmarks" / "results" / "latest.json"
    dst = Path(args[1]) if len(args) > 1 else ROOT / "docs" / "benchmarks.md"
    write_report(json.loads(src.read_text()), dst)
    print(f"report: {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
