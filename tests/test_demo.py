"""Tests of the demo (``python -m tapegrad demo``) at reduced size, and its command line.

Reference: micrograd itself. Its demo loop (loss, L2 term, learning-rate
decay, update), copied from micrograd's ``demo.ipynb``, is run on the same
points from the same initial weights, and must give the same loss history.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from micrograd.engine import Value as MgValue
from micrograd.nn import MLP as MgMLP

import tapegrad.demo as demo
from tapegrad import cli
from tapegrad.cli import main
from tapegrad.datasets import make_moons
from tapegrad.nn import MLP

ROOT = Path(__file__).resolve().parents[1]


def micrograd_demo(seed: int, points: int, steps: int) -> list[float]:
    """micrograd's demo loop, from the same data and initial weights as demo.train."""
    rng = random.Random(seed)  # demo.train draws the data, then the weights
    X, y = make_moons(points, noise=0.1, rng=rng, signed=True)
    ours = MLP(2, [16, 16, 1], activation="relu", rng=rng)
    model = MgMLP(2, [16, 16, 1])
    for p, q in zip(model.parameters(), ours.parameters(), strict=True):
        p.data = q.data
    history = []
    for k in range(steps):
        # --- micrograd demo.ipynb, loss() and the training loop ---
        inputs = [list(map(MgValue, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = 1e-4
        reg_loss = alpha * sum(p * p for p in model.parameters())
        total_loss = data_loss + reg_loss
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / steps
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        history.append(total_loss.data)
    return history


@pytest.mark.parametrize(("seed", "points", "steps"), [(1337, 20, 4), (5, 12, 6)])
def test_training_matches_micrograd(seed: int, points: int, steps: int) -> None:
    result = demo.train(steps=steps, seed=seed, points=points)
    expected = micrograd_demo(seed, points, steps)
    assert result.losses == pytest.approx(expected, rel=1e-11)
    assert len(result.accuracies) == steps
    assert all(0.0 <= a <= 1.0 for a in result.accuracies)
    assert result.losses[-1] < result.losses[0]


def test_the_full_demo_reaches_100_percent() -> None:
    """micrograd's configuration: 100 points, 100 steps, default seed."""
    result = demo.train()
    assert len(result.X) == 100 and len(result.losses) == 100
    assert result.final_accuracy == 1.0
    assert result.final_loss < 0.05


def test_the_last_line_evaluates_the_model_after_the_last_update(capsys: Any) -> None:
    result = demo.train(steps=3, seed=2, points=10)
    # losses[k] is what step k + 1 differentiated; final_loss is one more forward pass
    assert (result.final_loss, result.final_accuracy) == demo.evaluate(
        result.model, result.X, result.y
    )
    assert result.final_loss != result.losses[-1]  # the update in between changed the model
    assert main(["demo", "--steps", "3", "--seed", "2", "--points", "10"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert f"loss {result.final_loss:.4f}," in last


def test_deterministic_given_the_seed() -> None:
    a = demo.train(steps=2, seed=11, points=10)
    b = demo.train(steps=2, seed=11, points=10)
    c = demo.train(steps=2, seed=12, points=10)
    assert (a.X, a.losses) == (b.X, b.losses)
    assert a.X != c.X


def test_cli_prints_progress_lines_and_final_accuracy(capsys: Any) -> None:
    assert main(["demo", "--steps", "20", "--points", "12", "--progress", "plain"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("two moons: 12 points, seed 1337; MLP(2, [16, 16, 1])")
    assert "337 parameters" in lines[0]
    steps = [line for line in lines if line.startswith("step ")]
    # not a terminal: one line at step 1, every 2nd step (20 // 10), no carriage returns
    assert [line.split()[1] for line in steps] == ["1/20"] + [f"{k}/20" for k in range(2, 21, 2)]
    assert "\r" not in out
    assert lines[-1].startswith("trained model, after the last update: loss ")
    assert "training accuracy" in lines[-1] and "/12 points); 20 steps in " in lines[-1]


def test_plain_bar_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    args = demo_args(steps=3, points=8, progress="plain")
    assert demo.run(args, out=out) == 0
    text = out.getvalue()
    assert text.count("\r[") == 3
    assert "\r[##############################] 3/3" in text


def demo_args(**kw: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args([])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_progress_none_and_tqdm(capsys: Any) -> None:
    assert main(["demo", "--steps", "2", "--points", "6", "--progress", "none"]) == 0
    out = capsys.readouterr().out
    assert "step " not in out and "trained model" in out
    status = main(["demo", "--steps", "2", "--points", "6", "--progress", "tqdm"])
    captured = capsys.readouterr()
    if demo._has("tqdm"):
        assert status == 0 and "training" in captured.err
    else:
        assert status == 1 and "needs tqdm" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps: must be between 1 and"),
        (["--steps", "many"], "--steps: not an integer"),
        (["--steps", "1000001"], "--steps: must be between 1 and"),
        (["--points", "1"], "--points: must be between 2 and"),
        (["--seed", "-1"], "--seed: must be between 0 and"),
        (["--noise", "2"], "--noise: must be between 0 and 1"),
        (["--plot", "boundary.txt"], "--plot: must end in .png"),
        (["--plot", "/no/such/dir/x.png"], "does not exist"),
        (["--progress", "fancy"], "--progress: invalid choice"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_flags_out_of_range_are_argparse_errors(argv: list[str], message: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "moons.png"
    argv = ["demo", "--steps", "3", "--points", "10", "--progress", "none", "--plot", str(path)]
    assert main(argv) == 0
    assert path.read_bytes().startswith(b"\x89PNG")
    assert f"wrote {path}" in capsys.readouterr().out


def test_plot_without_matplotlib_says_so(monkeypatch: Any, tmp_path: Path, capsys: Any) -> None:
    real = demo._has
    monkeypatch.setattr(demo, "_has", lambda name: False if name == "matplotlib" else real(name))
    status = main(["demo", "--steps", "2", "--plot", str(tmp_path / "x.png")])
    assert status == 1
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "pip install matplotlib" in err
    assert not (tmp_path / "x.png").exists()


def test_version(capsys: Any) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    found = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found is not None
    version = found.group(1)
    assert capsys.readouterr().out == f"tapegrad {version}\n"


def test_help_lists_each_subcommand_on_one_line(capsys: Any) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    listed = [line.split(None, 1) for line in out.splitlines() if line.startswith("    ")]
    assert [name for name, _ in listed] == list(cli._COMMANDS)
    for name, text in listed:
        assert text == cli._COMMANDS[name][0]
    assert "--version" in out


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tapegrad", "demo", "--steps", "2", "--points", "6"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "trained model, after the last update: loss" in proc.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "tapegrad"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and "COMMAND" in missing.stderr
    version = subprocess.run(
        [sys.executable, "-m", "tapegrad", "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and version.stdout.startswith("tapegrad ")


def test_a_closed_pipe_stops_the_demo_quietly() -> None:
    """``tapegrad demo | head -3``: no BrokenPipeError traceback.

    The next line after the first comes at step 200 (a tenth of the run), long
    after the pipe is closed here, so the demo does meet the closed pipe.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapegrad", "demo", "--steps", "2000", "--points", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"two moons:")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err, err


def test_step_times_are_medians_after_the_first_step(monkeypatch: Any) -> None:
    """The jit figure ignores the trace step and any one slow replay."""
    result = demo.train(steps=2, seed=3, points=6)
    # replays of 5, 4, 90 (a stall) and 6 ms: the median is 5.5 ms, the mean 26 ms
    result.step_seconds = [3.0, 0.005, 0.004, 0.090, 0.006]
    eager = iter([0.5, 0.02, 0.03, 0.90, 0.01, 0.03])  # an untimed warm-up, then 5 samples
    ticks: list[float] = []
    now = 0.0

    def clock() -> float:  # start and end of each eager step
        nonlocal now
        if len(ticks) % 2:
            now += next(eager)
        ticks.append(now)
        return now

    monkeypatch.setattr(demo.time, "perf_counter", clock)
    times = demo.step_times(result, eager_samples=5)
    assert times.trace == 3.0
    assert times.jit == pytest.approx(statistics.median([0.005, 0.004, 0.090, 0.006]))
    assert times.eager == pytest.approx(statistics.median([0.02, 0.03, 0.90, 0.01, 0.03]))
    assert times.ratio == pytest.approx(0.03 / 0.0055)


def test_step_times_rejects_empty_runs_and_sample_counts() -> None:
    result = demo.train(steps=1, seed=3, points=6)
    with pytest.raises(ValueError, match="eager_samples must be at least 1"):
        demo.step_times(result, eager_samples=0)
    result.step_seconds = []
    with pytest.raises(ValueError, match="at least one step"):
        demo.step_times(result)


def test_jit_prints_both_medians_and_their_ratio(capsys: Any) -> None:
    assert main(["demo", "--jit", "--steps", "4", "--points", "8", "--progress", "none"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    found = re.fullmatch(
        r"jit: first step [\d.]+ s \(trace and compile\); median step after it: "
        r"jit ([\d.]+) ms, eager ([\d.]+) ms \(\d+ steps\): ([\d.]+)x faster",
        last,
    )
    assert found is not None, last
    jit_ms, eager_ms, ratio = map(float, found.groups())
    # the printed ratio is the ratio of the printed figures, up to their rounding
    assert ratio == pytest.approx(eager_ms / jit_ms, rel=0.1, abs=0.1)


def test_jit_with_one_step_says_nothing_was_replayed(capsys: Any) -> None:
    assert main(["demo", "--jit", "--steps", "1", "--points", "6", "--progress", "none"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("jit: the one step traced and compiled the program in ")
    assert "ms per step (run more steps to time replays)" in last
