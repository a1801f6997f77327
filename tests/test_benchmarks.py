"""The benchmark suite runs, and every library computes the same thing.

No timing assertions here (timings belong to ``docs/benchmarks.md``): these
tests run the benchmark code on tiny sizes and check that tapegrad and every
installed peer agree on values and gradients to 1e-9, so that the comparison
in the report is between equal computations. Peers that are not installed are
skipped.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import harness, report, run  # noqa: E402
from benchmarks import workloads as wl  # noqa: E402
from benchmarks.cases import MODULE_OF, Unavailable, make_case, n_ops  # noqa: E402

TINY = {"mlp": 3, "rosenbrock": 12, "chain": 40, "fan": 9}
PEERS = ["tapegrad-grad", "micrograd", "torch", "autograd", "jax", "jax-jit"]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _needs(lib: str) -> None:
    module = MODULE_OF.get(lib)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _result(workload: str, lib: str) -> tuple[float, list[float] | None]:
    try:
        case = make_case(workload, lib, TINY[workload])
    except Unavailable as exc:
        pytest.skip(str(exc))
    return case.result()


@pytest.mark.parametrize("workload", list(TINY))
def test_tapegrad_matches_plain_value(workload: str) -> None:
    value, grads = _result(workload, "tapegrad")
    plain, _ = _result(workload, "plain")
    assert _close(value, plain)
    assert grads is not None and all(math.isfinite(g) for g in grads)


@pytest.mark.parametrize("lib", PEERS)
@pytest.mark.parametrize("workload", list(TINY))
def test_peers_agree_with_tapegrad(workload: str, lib: str) -> None:
    _needs(lib)
    ref_value, ref_grads = _result(workload, "tapegrad")
    value, grads = _result(workload, lib)
    assert _close(value, ref_value), (value, ref_value)
    assert grads is not None and ref_grads is not None
    assert len(grads) == len(ref_grads)
    worst = max(abs(a - b) for a, b in zip(grads, ref_grads))
    assert all(_close(a, b) for a, b in zip(grads, ref_grads)), worst


def test_dot_neurons_agree_with_micrograd() -> None:
    # tapegrad-dot records the MLP through tapegrad.math.dot: check it against
    # an independent implementation, not against tapegrad's operator path.
    _needs("micrograd")
    value, grads = _result("mlp", "tapegrad-dot")
    ref_value, ref_grads = _result("mlp", "micrograd")
    assert _close(value, ref_value)
    assert grads is not None and ref_grads is not None and len(grads) == len(ref_grads)
    assert all(_close(a, b) for a, b in zip(grads, ref_grads))


def test_rosenbrock_gradient_matches_the_hand_written_one() -> None:
    value, grads = _result("rosenbrock", "tapegrad")
    hand_value, hand = _result("rosenbrock", "plain-grad")
    assert _close(value, hand_value)
    assert hand is not None and grads is not None
    assert all(_close(a, b) for a, b in zip(grads, hand))


def test_forward_backward_split_gives_the_gradient() -> None:
    """The timed forward/backward pair computes what result() reports."""
    import tapegrad

    case = make_case("mlp", "tapegrad", 2)
    loss = case.forward()
    case.backward(loss)
    case.backward(case.forward())  # zero_grad inside: a second step gives the same grads
    value, grads = case.result()
    assert isinstance(loss, tapegrad.Value) and _close(loss.data, value)
    assert grads is not None and len(grads) == 337


def test_docstring_examples() -> None:
    import doctest

    from benchmarks import cases

    for module in (wl, cases):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_op_counts() -> None:
    assert n_ops("chain", 1000) == 1000
    assert n_ops("fan", 100) == 200
    assert n_ops("rosenbrock", 1000) == 8000  # 8 ops per term
    # 644 ops per point (forward of the MLP, margin, relu, sum), 677 for the L2 term.
    assert n_ops("mlp", 2) - n_ops("mlp", 1) == 644
    assert n_ops("mlp", 100) == 65_077
    assert len(wl.init_mlp()) == 337  # MLP(2, [16, 16, 1]), as micrograd's demo


def test_time_case_reports_split_samples() -> None:
    case = make_case("chain", "tapegrad", 100)
    t = harness.time_case(case, budget=0.01, min_samples=2, max_samples=3, warmups=1)
    assert {"fwd", "bwd", "total", "loops", "gc_enabled", "gc_collections"} <= set(t)
    assert 2 <= len(t["total"]) <= 3 and len(t["fwd"]) == len(t["bwd"]) == len(t["total"])
    assert all(f > 0 and b > 0 for f, b in zip(t["fwd"], t["bwd"]))


def test_primitives_and_memory_run() -> None:
    prims = harness.time_primitives("tapegrad", number=5, repeat=1)
    recorded = prims["tapegrad (recorded)"]
    assert set(recorded) == set(harness.PRIMITIVES)
    assert all(len(v) == 1 and v[0] > 0 for v in recorded.values())
    plain = harness.time_primitives("plain", number=5, repeat=1)["plain"]
    assert "sin" in plain and "mul" in plain
    mem = harness.measure_memory("tapegrad", 300)
    assert mem["n_ops"] == 300 and mem["bytes_per_op"] > 0


def test_runner_quick_end_to_end(tmp_path: Path) -> None:
    """``run.py --quick`` on two libraries: worker processes, results, report, plot."""
    results = tmp_path / "r.json"
    md = tmp_path / "bench.md"
    argv = [
        "--quick",
        "--only",
        "rosenbrock,chain,memory",
        "--libs",
        "plain,tapegrad,tapegrad-grad",
    ]
    assert run.main([*argv, "--results", str(results), "--md", str(md)]) == 0
    data: dict[str, Any] = json.loads(results.read_text())
    assert not [r for r in data["results"] if "error" in r]
    text = md.read_text()
    assert "W2: tapegrad grad ≤ 15x plain floats" in text
    assert "| **tapegrad (grad)** |" in text
    assert results.with_suffix(".pyperf.json").exists()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "bench_scaling.png").exists()
    # The report can be redrawn from the saved results alone.
    again = tmp_path / "again" / "bench.md"
    report.main([str(results), str(again)])
    assert again.read_text().split("\n", 3)[3] == text.split("\n", 3)[3]
