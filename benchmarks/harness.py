"""Measurements made inside one worker process: timings, per-primitive costs, memory.

Timing (:func:`time_case`) follows pyperf's method: warm-up calls first, then
a number of samples fixed by a time budget; a sample whose call is shorter
than ``MIN_SAMPLE`` seconds runs the call in an inner loop and stores the
mean. Forward and backward are timed separately within the same iteration, and
the whole step (forward, backward, dropping the graph) is timed around both.
The garbage collector is left as the library's user would have it (on, with
the default thresholds); its settings and the number of collections during
the timed samples are recorded next to the numbers.

Each worker returns plain JSON (:func:`time_case` and friends return dicts);
:mod:`benchmarks.run` turns timings into pyperf ``Run`` objects.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks import workloads as wl
from benchmarks.cases import Case, Unavailable, make_case

__all__ = [
    "MIN_SAMPLE",
    "gc_info",
    "gc_collections",
    "time_case",
    "time_pair",
    "PRIMITIVES",
    "time_primitives",
    "measure_memory",
    "rss_bytes",
]

MIN_SAMPLE = 2e-3  # seconds: shorter calls are looped within a sample
_perf = time.perf_counter


def gc_info() -> dict[str, Any]:
    """The garbage collector's settings, recorded with every timing."""
    return {"gc_enabled": gc.isenabled(), "gc_threshold": list(gc.get_threshold())}


def gc_collections() -> list[int]:
    """Collections so far, per generation."""
    return [s["collections"] for s in gc.get_stats()]


def _iteration(case: Case, loops: int) -> tuple[float, float, float]:
    """Run ``loops`` steps of ``case``; mean seconds of forward, backward, whole step."""
    fwd_fn = case.forward
    bwd_fn = case.backward
    f = b = 0.0
    t_start = _perf()
    for _ in range(loops):
        t0 = _perf()
        state = fwd_fn()
        t1 = _perf()
        f += t1 - t0
        if bwd_fn is not None:
            bwd_fn(state)
            b += _perf() - t1
        del state  # dropping the graph is part of a step
    total = _perf() - t_start
    return f / loops, b / loops, total / loops


def _warm_up(case: Case, warmups: int) -> tuple[list[float], int]:
    """Warm-up step times and the inner loop count that makes a sample >= MIN_SAMPLE."""
    t_warm = [_iteration(case, 1)[2] for _ in range(max(warmups, 1))]
    per_call = min(t_warm)
    loops = 1 if per_call >= MIN_SAMPLE else math.ceil(MIN_SAMPLE / max(per_call, 1e-9))
    return t_warm, loops


def time_case(
    case: Case, *, budget: float, min_samples: int, max_samples: int, warmups: int
) -> dict[str, Any]:
    """Time ``case``: per-call seconds for ``fwd``, ``bwd`` (if split) and ``total``.

    ``budget`` is the wall time to spend on samples (after the warm-ups);
    the sample count is clamped to ``[min_samples, max_samples]``.
    """
    t_warm, loops = _warm_up(case, warmups)
    n = int(budget / max(min(t_warm) * loops, 1e-9))
    n = max(min_samples, min(max_samples, n))

    fwd: list[float] = []
    bwd: list[float] = []
    total: list[float] = []
    coll0 = gc_collections()
    t_begin = _perf()
    for _ in range(n):
        f, b, t = _iteration(case, loops)
        fwd.append(f)
        bwd.append(b)
        total.append(t)
    wall = _perf() - t_begin
    coll1 = gc_collections()
    out: dict[str, Any] = {
        "loops": loops,
        "warmups": t_warm,
        "total": total,
        "wall_seconds": wall,
        "gc_collections": [b - a for a, b in zip(coll0, coll1)],
        **gc_info(),
    }
    if case.backward is not None:
        out["fwd"] = fwd
        out["bwd"] = bwd
    else:
        out["fwd"] = total  # nothing to split: the whole call is the forward
    return out


def time_pair(
    subject: Case,
    reference: Case,
    *,
    budget: float,
    min_rounds: int,
    max_rounds: int,
    warmups: int,
    collect: bool,
) -> dict[str, Any]:
    """Paired timing: alternate steps of ``subject`` and ``reference`` in one process.

    A shared machine's load drifts over seconds and slows every sample taken
    meanwhile, so two cells timed minutes apart can be off by 1.5x; steps
    timed back to back see the same load, and the ratio of each round is
    free of that drift. Rounds alternate the order (ABBA) so neither side
    always runs first. With ``collect``, ``gc.collect()`` runs (untimed)
    before each step, so that neither library pays for collecting the other's
    garbage; it also takes the collection of a library's own previous graph
    off its clock, which favours libraries with reference cycles (micrograd).
    """
    warm_s, loops_s = _warm_up(subject, warmups)
    warm_r, loops_r = _warm_up(reference, warmups)
    per_round = min(warm_s) * loops_s + min(warm_r) * loops_r
    n = max(min_rounds, min(max_rounds, int(budget / max(per_round, 1e-9))))
    subj: list[float] = []
    ref: list[float] = []
    sides = ((subject, loops_s, subj), (reference, loops_r, ref))
    for r in range(n):
        for case, loops, out in sides if r % 2 == 0 else sides[::-1]:
            if collect:
                gc.collect()
            out.append(_iteration(case, loops)[2])
    return {
        "subject": subj,
        "reference": ref,
        "ratios": [a / b for a, b in zip(subj, ref)],
        "loops": [loops_s, loops_r],
        "collect": collect,
        **gc_info(),
    }


# ---------------------------------------------------------------------------
# Workload 5: per-primitive cost
# ---------------------------------------------------------------------------

# name -> (arity, a, b): operands inside every primitive's domain.
PRIMITIVES: dict[str, tuple[int, float, float]] = {
    "add": (2, 0.3, 0.7),
    "add const": (1, 0.3, 0.7),
    "sub": (2, 0.3, 0.7),
    "mul": (2, 0.3, 0.7),
    "mul const": (1, 0.3, 0.7),
    "div": (2, 0.3, 0.7),
    "div const": (1, 0.3, 0.7),
    "pow": (2, 0.3, 0.7),
    "pow const": (1, 0.3, 2.0),
    "neg": (1, 0.3, 0.0),
    "abs": (1, 0.3, 0.0),
    "relu": (1, 0.3, 0.0),
    "tanh": (1, 0.3, 0.0),
    "exp": (1, 0.3, 0.0),
    "log": (1, 0.3, 0.0),
    "sigmoid": (1, 0.3, 0.0),
    "sin": (1, 0.3, 0.0),
    "cos": (1, 0.3, 0.0),
    "tan": (1, 0.3, 0.0),
    "sqrt": (1, 0.3, 0.0),
    "log1p": (1, 0.3, 0.0),
    "expm1": (1, 0.3, 0.0),
    "sinh": (1, 0.3, 0.0),
    "cosh": (1, 0.3, 0.0),
    "asin": (1, 0.3, 0.0),
    "acos": (1, 0.3, 0.0),
    "atan": (1, 0.3, 0.0),
    "softplus": (1, 0.3, 0.0),
    "erf": (1, 0.3, 0.0),
    "atan2": (2, 0.3, 0.7),
    "minimum": (2, 0.3, 0.7),
    "maximum": (2, 0.3, 0.7),
    "hypot": (2, 0.3, 0.7),
}

_OPERATOR_STMT = {
    "add": "a + b",
    "add const": "a + 0.7",
    "sub": "a - b",
    "mul": "a * b",
    "mul const": "a * 0.7",
    "div": "a / b",
    "div const": "a / 0.7",
    "pow": "a ** b",
    "pow const": "a ** 2",
    "neg": "-a",
    "abs": "abs(a)",
}


def _statements(flavour: str) -> dict[str, str]:
    """The statement timed for each primitive, per library flavour.

    ``a`` and ``b`` are the operands, ``m`` the library's function namespace.
    A primitive a library lacks is left out (reported as n/a).
    """
    stmts = dict(_OPERATOR_STMT)
    unary = [p for p, (arity, _, _) in PRIMITIVES.items() if arity == 1 and p not in stmts]
    binary = [p for p, (arity, _, _) in PRIMITIVES.items() if arity == 2 and p not in stmts]
    if flavour == "plain":
        stmts["relu"] = "r(a)"
        for p in unary:
            if p not in ("relu", "sigmoid", "softplus"):
                stmts[p] = f"m.{p}(a)"
        stmts["atan2"] = "m.atan2(a, b)"
        stmts["hypot"] = "m.hypot(a, b)"
        stmts["minimum"] = "min(a, b)"
        stmts["maximum"] = "max(a, b)"
    elif flavour == "tapegrad-float":  # tapegrad.math on floats: nothing recorded
        stmts = {p: f"m.{p}(a)" for p in unary}
        stmts.update({p: f"m.{p}(a, b)" for p in binary})
    elif flavour == "tapegrad":  # Var methods, recorded
        stmts.update({p: f"a.{p}()" for p in unary})
        stmts.update({p: f"a.{p}(b)" for p in binary})
    elif flavour == "micrograd":
        stmts = {k: v for k, v in stmts.items() if k not in ("pow", "abs")}
        stmts["relu"] = "a.relu()"
    elif flavour == "torch":
        for p in unary:
            stmts[p] = "m.relu(a)" if p == "relu" else f"m.{p}(a)"
        stmts["softplus"] = "F.softplus(a)"
        stmts.update({p: f"m.{p}(a, b)" for p in binary})
    elif flavour in ("jax", "autograd", "autograd-float"):
        if flavour == "autograd-float":  # operators on unboxed floats are plain Python
            stmts = {}
        for p in unary:
            stmts[p] = f"m.{p}(a)"
        stmts["relu"] = "m.maximum(a, 0.0)"
        stmts["sigmoid"] = "S.expit(a)"
        stmts["erf"] = "S.erf(a)"
        stmts["softplus"] = "m.logaddexp(a, 0.0)"
        stmts["atan2"] = "m.arctan2(a, b)"
        for p in ("asin", "acos", "atan"):
            stmts[p] = f"m.arc{p[1:]}(a)"
        stmts.update({p: f"m.{p}(a, b)" for p in ("minimum", "maximum", "hypot")})
    return stmts


def _per_op(
    stmt: str, setup: Callable[[], dict[str, Any]], number: int, repeat: int
) -> list[float]:
    """Seconds per execution of ``stmt``, one value per repeat (fresh operands each)."""
    values = []
    for _ in range(repeat):
        ns = setup()
        timer = timeit.Timer(stmt, setup="gc.enable()", globals={**ns, "gc": gc})
        timer.timeit(max(number // 10, 1))  # warm-up: JAX compiles a kernel per primitive
        values.append(timer.timeit(number) / number)
    return values


def time_primitives(lib: str, *, number: int, repeat: int) -> dict[str, Any]:
    """Per-op seconds of every primitive on ``lib``, recorded and not recorded.

    Returns ``{variant: {primitive: [seconds per op, one per repeat]}}``.
    Recorded tapegrad ops take operands that are results of earlier ops (on
    the open tape), as inside a real forward pass; each repeat starts from
    fresh operands.
    """
    variants: dict[str, tuple[str, Callable[[float, float], dict[str, Any]]]] = {}
    if lib == "plain":
        import math as m

        variants["plain"] = ("plain", lambda a, b: {"a": a, "b": b, "m": m, "r": wl.relu_float})
    elif lib == "tapegrad":
        import tapegrad
        from tapegrad import math as tm

        variants["tapegrad.math on floats"] = (
            "tapegrad-float",
            lambda a, b: {"a": a, "b": b, "m": tm},
        )

        def recorded(a: float, b: float) -> dict[str, Any]:
            return {"a": tapegrad.Var(a) * 1.0, "b": tapegrad.Var(b) * 1.0}

        variants["tapegrad (recorded)"] = ("tapegrad", recorded)
    elif lib == "micrograd":
        try:
            from micrograd.engine import Value
        except ImportError as exc:
            raise Unavailable(str(exc)) from None
        variants["micrograd (recorded)"] = (
            "micrograd",
            lambda a, b: {"a": Value(a) * 1.0, "b": Value(b) * 1.0},
        )
    elif lib == "torch":
        try:
            import torch
            import torch.nn.functional as F
        except ImportError as exc:
            raise Unavailable(str(exc)) from None
        torch.set_num_threads(1)
        f64 = torch.float64

        def plain_t(a: float, b: float) -> dict[str, Any]:
            return {
                "a": torch.tensor(a, dtype=f64),
                "b": torch.tensor(b, dtype=f64),
                "m": torch,
                "F": F,
            }

        def grad_t(a: float, b: float) -> dict[str, Any]:
            ta = torch.tensor(a, dtype=f64, requires_grad=True) * 1.0
            tb = torch.tensor(b, dtype=f64, requires_grad=True) * 1.0
            return {"a": ta, "b": tb, "m": torch, "F": F}

        variants["torch (not recorded)"] = ("torch", plain_t)
        variants["torch (recorded)"] = ("torch", grad_t)
    elif lib == "jax":
        from benchmarks.cases import _import_jax

        _import_jax()
        import jax.numpy as jnp
        import jax.scipy.special as jss

        def jax_ns(a: float, b: float) -> dict[str, Any]:
            return {
                "a": jnp.asarray(a, dtype=jnp.float64),
                "b": jnp.asarray(b, dtype=jnp.float64),
                "m": jnp,
                "S": jss,
            }

        variants["jax eager (not recorded)"] = ("jax", jax_ns)
    elif lib == "autograd":
        try:
            import autograd.numpy as anp
            import autograd.scipy.special as ass
            from autograd.tracer import new_box, trace_stack
        except ImportError as exc:
            raise Unavailable(str(exc)) from None

        def ag_plain(a: float, b: float) -> dict[str, Any]:
            return {"a": a, "b": b, "m": anp, "S": ass}

        trace = trace_stack.new_trace().__enter__()  # one open trace, as inside grad()

        def ag_boxed(a: float, b: float) -> dict[str, Any]:
            from autograd.core import VJPNode

            na, nb = VJPNode.new_root(), VJPNode.new_root()
            return {"a": new_box(a, trace, na), "b": new_box(b, trace, nb), "m": anp, "S": ass}

        variants["autograd (not recorded)"] = ("autograd-float", ag_plain)
        variants["autograd (recorded)"] = ("autograd", ag_boxed)
    else:
        raise Unavailable(f"no per-primitive timings for {lib}")

    out: dict[str, Any] = {}
    for variant, (flavour, setup) in variants.items():
        stmts = _statements(flavour)
        res: dict[str, list[float]] = {}
        for prim, (_, a, b) in PRIMITIVES.items():
            stmt = stmts.get(prim)
            if stmt is None:
                continue
            try:
                res[prim] = _per_op(stmt, functools.partial(setup, a, b), number, repeat)
            except Exception as exc:  # a primitive the library spells differently
                res[prim] = []
                print(f"{variant} {prim}: {type(exc).__name__}: {exc}", file=sys.stderr)
        out[variant] = res
    return out


# ---------------------------------------------------------------------------
# Workload 6: memory per recorded op
# ---------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def measure_memory(lib: str, n_ops: int) -> dict[str, Any]:
    """Bytes per recorded op of a chain ``n_ops`` deep, graph alive (tracemalloc and RSS).

    tracemalloc sees only memory allocated through Python's allocators: for
    torch and JAX, whose graphs live in C++, it undercounts, so the RSS delta
    is reported as well (page-granular, and it includes allocator slack).
    """
    case = make_case("chain", lib, n_ops)
    state = case.forward()  # warm-up: caches, interned constants, first chunk
    if case.backward is not None:
        case.backward(state)
    del state
    gc.collect()
    rss0 = rss_bytes()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    state = case.forward()
    gc.collect()
    after_fwd, peak_fwd = tracemalloc.get_traced_memory()
    rss1 = rss_bytes()
    out: dict[str, Any] = {
        "n_ops": n_ops,
        "bytes_per_op": (after_fwd - base) / n_ops,
        "peak_bytes_per_op": (peak_fwd - base) / n_ops,
        "rss_bytes_per_op": (rss1 - rss0) / n_ops,
    }
    if case.backward is not None:
        case.backward(state)
        gc.collect()
        after_bwd, _ = tracemalloc.get_traced_memory()
        out["bytes_per_op_after_backward"] = (after_bwd - base) / n_ops
    del state
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out["bytes_per_op_after_release"] = (end - base) / n_ops
    out["notes"] = case.notes
    return out
