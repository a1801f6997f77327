"""The benchmark suite runs, and every library computes the same values and gradients.

No timing assertions (timings belong to ``docs/benchmarks.md``): these tests
run the benchmark code on tiny sizes and check that every installed library
agrees with tapegrad's eager value and gradient to 1e-9, so the report
compares equal computations; uninstalled ones are skipped. Against a
tapegrad without ``jit``/``vmap`` (``TAPEGRAD_PATH`` may name an old one),
their rows are checked with stand-ins (the eager function, a Python loop),
which tests the benchmark's wiring only.
"""

from __future__ import annotations

import doctest
import functools
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks import bench, libs, report, run, versions
from benchmarks import workloads as wl

TINY = {"mlp": 1, "rosen": 12, "chain": 40, "vmap": 5}


@pytest.fixture
def programs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Stand-ins for ``tapegrad.jit``/``vmap``/``trace`` where tapegrad lacks them."""
    import numpy as np

    import tapegrad as tg

    def vmap(f: Callable[..., Any], in_axes: Any = 0) -> Callable[..., Any]:
        def batched(*args: Any) -> tuple[Any, ...]:
            n = next(len(a) for a, ax in zip(args, in_axes) if ax == 0)
            outs = [
                f(*(a if ax is None else a[i] for a, ax in zip(args, in_axes))) for i in range(n)
            ]
            return tuple(np.array([np.asarray(o[k], dtype=float) for o in outs]) for k in range(2))

        return batched

    stand_ins = {"jit": lambda f: functools.wraps(f)(f), "vmap": vmap, "trace": lambda f, *a: [0]}
    for name, fn in stand_ins.items():
        if not hasattr(tg, name):
            monkeypatch.setattr(tg, name, fn, raising=False)
    yield


def _result(lib: str, key: str) -> tuple[list[float], list[float]]:
    if why := libs.LIBS[lib].missing():
        pytest.skip(why)
    case = libs.make_case(lib, key, TINY[key])
    case.step()  # the timed step runs, and does not change what result() gives
    return case.result()


@pytest.mark.usefixtures("programs")
@pytest.mark.parametrize(
    ("key", "lib"), [(k, lib) for k in TINY for lib in libs.LIBS if k in libs.LIBS[lib].workloads]
)
def test_every_library_agrees_with_tapegrad(key: str, lib: str) -> None:
    values, grads = _result(lib, key)
    ref_values, ref_grads = _result("tapegrad", key)
    assert len(values) == len(ref_values) == (TINY[key] if key == "vmap" else 1)
    assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(values, ref_values))
    if lib != "plain":  # plain Python computes the value only
        assert len(grads) == len(ref_grads) > 0
        assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(grads, ref_grads))


def test_rosenbrock_gradient_by_hand() -> None:
    """tapegrad's W2 gradient against the derivative written out (an independent reference)."""
    x = wl.rosen_point(TINY["rosen"])
    a, b = wl.COEF
    hand = [0.0] * len(x)
    for i in range(len(x) - 1):
        d = x[i + 1] - x[i] ** 2
        hand[i] += -4 * b * d * x[i] - 2 * (a - x[i])
        hand[i + 1] += 2 * b * d
    _, grads = _result("tapegrad", "rosen")
    assert all(math.isclose(g, h, rel_tol=1e-12, abs_tol=1e-12) for g, h in zip(grads, hand))


def test_docstrings_and_op_counts() -> None:
    for module in (wl, libs):
        assert doctest.testmod(module).failed == 0, module.__name__
    assert wl.n_ops("mlp", 100) == 65_077  # as the tape recorded it when W1 was defined
    assert wl.n_ops("mlp", 3) - wl.n_ops("mlp", 2) == 644  # per point
    assert len(wl.init_mlp()) == 337  # MLP(2, [16, 16, 1]), as micrograd's demo


def test_selection_and_caps() -> None:
    cells = bench.cells(["rosen"], ["plain", "sympy"], quick=False)
    assert cells == [("rosen", 1000, "plain"), ("rosen", 1000, "sympy")]
    assert "cap" in bench.skip_reason(("chain", 10**6, "micrograd"), slow=False)
    assert bench.skip_reason(("chain", 10**6, "tapegrad"), slow=False) == ""
    with pytest.raises(SystemExit, match="unknown"):
        bench.cells(["nope"], [], quick=True)


def test_quick_run_end_to_end(tmp_path: Path) -> None:
    """``run.py --quick``: probes, pyperf workers, pairs, memory, report and plots."""
    out, md = tmp_path / "r", tmp_path / "bench.md"
    argv = ["--quick", "--only", "rosen,chain", "--libs", "plain,tapegrad,micrograd"]
    assert run.main([*argv, "--out", str(out), "--md", str(md)]) == 0
    data: dict[str, Any] = json.loads(out.with_suffix(".json").read_text())
    ran = [r for r in data["cells"] if "skip" not in r]
    assert ran and not [r["error"] for r in ran if r["error"]]
    import pyperf

    names = {b.get_name() for b in pyperf.BenchmarkSuite.load(str(out.with_suffix(".pyperf.json")))}
    assert names == {bench.name(tuple(r["cell"])) for r in ran}
    cells = {tuple(r["cell"]): r for r in ran}
    for (key, size, _), rec in cells.items():  # the report's agreement column: all within 1e-9
        assert not report.agreement(rec, cells[(key, size, "tapegrad")]).startswith("**")
    text = md.read_text()
    assert f"\n| {run.TARGETS[1][0]} | " in text and "| **tapegrad eager** |" in text
    assert (tmp_path / "bench_scaling.png").exists()
    report.main([str(out), str(tmp_path / "again.md")])  # redrawn from the saved results alone
    assert (tmp_path / "again.md").read_text().replace("again_", "bench_") == text


def test_versions_pairs_two_checkouts_step_by_step(tmp_path: Path) -> None:
    # The same checkout on both sides: one positive ratio per round.
    root = Path(__file__).resolve().parent.parent
    ratios = versions.paired_ratios(str(root), str(root), "rosen[12]/tapegrad", rounds=4)
    assert len(ratios) == 4 and all(r > 0 for r in ratios)
    # A checkout without tapegrad is refused, not silently replaced by another one.
    with pytest.raises(RuntimeError, match="the worker imported"):
        versions.paired_ratios(str(tmp_path), str(root), "rosen[12]/tapegrad", rounds=2)


def test_fused_w4_matches_finite_differences_and_vmap_blocks_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hand-fused numpy W4 is right (plain floats, central differences), and the script runs."""
    import importlib

    import numpy as np

    from benchmarks import fused, vmap_blocks

    points = np.array(wl.samples(3))
    values, grads = fused.rosen_value_and_grad(wl.COEF, points)
    step = 1e-6
    for i, row in enumerate(points.tolist()):
        assert math.isclose(values[i], wl.rosen(wl.COEF, row), rel_tol=1e-12)
        for j in range(len(row)):
            up, down = list(row), list(row)
            up[j] += step
            down[j] -= step
            slope = (wl.rosen(wl.COEF, up) - wl.rosen(wl.COEF, down)) / (2 * step)
            assert math.isclose(grads[i, j], slope, rel_tol=1e-6, abs_tol=1e-5)
    vmap_module = importlib.import_module("tapegrad.programs.vmap")
    monkeypatch.setattr(vmap_module, "BLOCK", vmap_module.BLOCK)  # restored after --block
    # 200 samples in blocks of 16: vmap_blocks checks the blocks against fused to 1e-12.
    assert vmap_blocks.main(["--sizes", "50,200", "--rounds", "3", "--block", "16"]) == 0
    assert vmap_module.BLOCK == 16
    out = capsys.readouterr().out
    assert "W4[50]: vmap/fused" in out and "W4[200] peak memory" in out


def test_quick_run_vmap_against_fused_numpy_and_dask(tmp_path: Path) -> None:
    """``run.py --quick --only vmap``: the paired vmap / fused targets, peak memory, Dask rows."""
    out, md = tmp_path / "r", tmp_path / "bench.md"
    argv = ["--quick", "--only", "vmap", "--libs", "plain,tapegrad-vmap,numpy-fused"]
    if libs.LIBS["tapegrad-vmap"].missing():
        pytest.skip(libs.LIBS["tapegrad-vmap"].missing())
    assert run.main([*argv, "--out", str(out), "--md", str(md)]) == 0
    data: dict[str, Any] = json.loads(out.with_suffix(".json").read_text())
    fused = [p for p in data["pairs"] if p["reference"][2] == "numpy-fused"]
    assert [p["target"] for p in fused] == [text for text, _, _ in run.VMAP_FUSED]
    assert [p["subject"][1] for p in fused] == list(run.VMAP_QUICK)
    assert all(len(p["ratios"]) == 4 and all(r > 0 for r in p["ratios"]) for p in fused)
    mem = data["vmap_memory"]
    # the peak counts X and the results, which are alive at its end: at least their bytes
    assert mem["samples"] == run.VMAP_QUICK[-1] and mem["vmap_peak"] >= mem["io_bytes"] > 0
    text = md.read_text()
    assert run.VMAP_MEMORY in text and "numpy, fused by hand" in text
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        assert "Not measured" in text.split("## W4 on Dask")[1].split("##")[0]
        return
    names = [name for name, _ in data["dask"]["rows"]]
    assert names == ["numpy, this process", *(f"Dask, {w} worker process(es)" for w in (1, 2))]
    assert all(t > 0 for _, t in data["dask"]["rows"])
