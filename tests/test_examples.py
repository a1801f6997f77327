"""Every script in examples/ runs, and what it prints is checked against references.

References: the numbers printed in the micrograd write-ups (micrograd's
README, the lecture's L graph and its PyTorch comparison, the Go port's
training log and DisplayGraph), closed forms derived by hand, and a numpy
network with hand-written backpropagation (tests/nn_reference.py) trained
from the same initial weights.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from nn_reference import forward, mse, sse, train_sgd, weights_of

from tapegrad.nn import MLP

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(name: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def load(name: str) -> ModuleType:
    """The example as a module (for its constants), without running main()."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(listing: str) -> dict[str, tuple[float, float]]:
    """label -> (data, grad) from a tapegrad listing (labelled nodes only)."""
    out = {}
    header, *lines = listing.strip().splitlines()
    assert header.split() == ["node", "label", "op", "data", "grad"]
    label_at = header.index("label")
    op_at = header.index("op")
    for line in lines:
        label = line[label_at:op_at].strip()
        *_, data, grad = line.split()
        if label:
            out[label] = (float(data), float(grad))
    return out


def test_every_example_is_tested() -> None:
    tested = {
        "micrograd_readme.py",
        "expression_graph.py",
        "tanh_neuron.py",
        "double.py",
        "mlp_four_points.py",
        "toygrad_model.py",
        "scipy_rosenbrock.py",  # tested with the transforms
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} <= tested


def test_micrograd_readme() -> None:
    # micrograd's README: "prints 24.7041", "prints 138.8338", "prints 645.5773"
    assert run("micrograd_readme.py") == "24.7041\n138.8338\n645.5773\n"


def test_expression_graph() -> None:
    out = run("expression_graph.py")
    assert out.splitlines()[0] == "L = (a*b + c) * f = -8.0"
    # The lecture's gradients: dL/da = 6, dL/db = -4, dL/dc = dL/de = dL/dd = -2, dL/df = 4
    expected = {"a": 6.0, "b": -4.0, "c": -2.0, "e": -2.0, "f": 4.0, "d": -2.0, "L": 1.0}
    table = [line.split() for line in out.split("\n\n")[1].splitlines()[1:]]
    assert [r[0] for r in table] == list("abcefdL")
    for name, manual, nudged, auto in table:
        assert float(manual) == expected[name]
        assert float(auto) == expected[name]
        assert float(nudged) == pytest.approx(expected[name], abs=1e-5)  # L is bilinear
    listing = rows(out.split("\n\n")[2])
    assert listing == {
        "a": (2.0, 6.0),
        "b": (-3.0, -4.0),
        "e": (-6.0, -2.0),
        "c": (10.0, -2.0),
        "d": (4.0, -2.0),
        "f": (-2.0, 4.0),
        "L": (-8.0, 1.0),
    }
    assert '[label="{ L | data -8.0000 | grad 1.0000 }" shape=record]' in out
    # the lecture's "preview of a single optimization step" prints -7.286496
    assert out.splitlines()[-1] == "after a step of 0.01 along the gradient: L = -7.286496"


def _blocks(out: str) -> dict[str, tuple[float, dict[str, float]]]:
    """title -> (o, {name: grad}) from the neuron example's reports."""
    found = {}
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.endswith(":") and i + 7 < len(lines) and lines[i + 2] == "-" * 18:
            grads = {lines[j].split()[0]: float(lines[j].split()[1]) for j in range(i + 3, i + 7)}
            found[line] = (float(lines[i + 1]), grads)
    return found


def test_tanh_neuron_three_ways_and_pytorch() -> None:
    out = run("tanh_neuron.py")
    blocks = _blocks(out)
    # n = 0.8813735870195432 = atanh(1/sqrt(2)), so o = 1/sqrt(2), do/dn = 1 - o^2 = 1/2
    for title in ("by hand:", "backward() through tanh:", "backward() through exp:"):
        o, grads = blocks[title]
        assert o == pytest.approx(1 / math.sqrt(2), abs=1e-15)
        # dx1 = w1 / 2, dw1 = x1 / 2, dx2 = w2 / 2, dw2 = x2 / 2
        assert grads == pytest.approx({"x1": -1.5, "w1": 1.0, "x2": 0.5, "w2": 0.0}, abs=1e-14)
    # the lecture's PyTorch output, for the bias PyTorch really used (float32-rounded)
    (pytorch_title,) = [t for t in blocks if t.startswith("as PyTorch")]
    o, grads = blocks[pytorch_title]
    assert o == pytest.approx(0.7071066904050358, rel=1e-15)
    assert grads == pytest.approx(
        {"x1": -1.5000003851533106, "w1": 1.0000002567688737, "x2": 0.5000001283844369, "w2": 0.0},
        rel=1e-15,
    )
    listings = [part for part in out.split("\n\n") if part.startswith("node")]
    through_exp = rows(listings[1])
    assert "exp(" in listings[1] and "tanh(" in listings[0]
    assert through_exp["e"][0] == pytest.approx(math.exp(2 * 0.8813735870195432), abs=1e-4)
    assert rows(listings[0])["n"] == (0.8814, 0.5)


# The Go program's output, from the Go port's write-up.
GO_LOG = """\
Iter:  0, Loss: 10.24, w: 1.68
Iter:  1, Loss: 0.4096, w: 1.936
Iter:  2, Loss: 0.01638, w: 1.987
Iter:  3, Loss: 0.0006554, w: 1.997
Iter:  4, Loss: 2.621e-05, w: 1.999
Iter:  5, Loss: 1.049e-06, w: 2
"""


def test_double_matches_the_go_port() -> None:
    out = run("double.py")
    log = "".join(line + "\n" for line in out.splitlines() if line.startswith("Iter:"))
    assert log == GO_LOG
    first, last = (part for part in out.split("\n\n") if part.startswith("node"))
    # The Go post's DisplayGraph after the first iteration (w already updated to 1.68)
    assert rows(first) == {
        "w": (1.68, -12.8),
        "x": (2.0, -2.56),
        "ypred": (0.8, -6.4),
        "y": (4.0, 6.4),
        "ypred - y": (-3.2, -6.4),
        "loss": (10.24, 1.0),
    }
    # x.grad and y.grad add up over the six steps: with w_k - 2 = -1.6 * 0.2**k,
    # dx = sum 4 (w_k - 2) w_k and dy = sum -4 (w_k - 2)
    w = [2 - 1.6 * 0.2**k for k in range(6)]
    dx = sum(4 * (wk - 2) * wk for wk in w)
    dy = sum(-4 * (wk - 2) for wk in w)
    final = rows(last)
    assert final["x"][1] == pytest.approx(dx, abs=5e-5)
    assert final["y"][1] == pytest.approx(dy, abs=5e-5)
    assert final["w"][0] == pytest.approx(2 - 1.6 * 0.2**6, abs=5e-5)


def _reference_losses(model: MLP, X: Any, y: Any, **kw: Any) -> tuple[list[float], Any]:
    net = weights_of(model)
    history = train_sgd(net, np.array(X), np.array(y, dtype=float).reshape(-1, 1), **kw)
    return history, net


def test_mlp_four_points_matches_numpy_backprop() -> None:
    ex = load("mlp_four_points.py")
    out = run("mlp_four_points.py").splitlines()
    assert out[0] == "MLP(3, [4, 4, 1], activation='tanh', out_activation='tanh')"
    assert out[1] == "parameters: 41"
    losses = [float(line.split()[1]) for line in out[2 : 2 + ex.STEPS]]
    assert [int(line.split()[0]) for line in out[2 : 2 + ex.STEPS]] == list(range(ex.STEPS))

    initial = MLP(3, [4, 4, 1], out_activation="tanh", rng=random.Random(ex.SEED))
    expected, net = _reference_losses(
        initial, ex.xs, ex.ys, loss=sse, steps=ex.STEPS, lr=lambda k: ex.LEARNING_RATE
    )
    assert losses == pytest.approx(expected, rel=1e-12)
    assert losses[-1] < losses[0] / 10
    preds = ast.literal_eval(out[-2].removeprefix("predictions:").strip())
    assert preds == pytest.approx(list(forward(net, np.array(ex.xs))[0][:, 0]), abs=1e-4)
    assert [math.copysign(1, p) for p in preds] == ex.ys


def test_toygrad_model_matches_numpy_backprop() -> None:
    ex = load("toygrad_model.py")
    out = run("toygrad_model.py").splitlines()
    assert out[0] == "parameters: 65"  # (2+1)*8 + (8+1)*4 + (4+1)*1
    printed = {int(line.split()[1]): float(line.split()[3]) for line in out if line[:5] == "epoch"}

    model = ex.Model(2, 1, random.Random(ex.SEED))
    layers = [model.layer1, model.layer2, model.output]
    for layer, act in zip(layers, ["relu", "relu", "linear"]):
        layer.activation = act  # the relu between the Linear layers, for the reference
    expected, net = _reference_losses(
        layers,
        ex.X,
        ex.Y,
        loss=mse,
        steps=ex.EPOCHS,
        lr=lambda k: ex.LEARNING_RATE,
        momentum=ex.MOMENTUM,
    )
    assert sorted(printed) == [*range(0, ex.EPOCHS, 25), ex.EPOCHS - 1]
    for epoch, loss in printed.items():
        assert loss == pytest.approx(expected[epoch], abs=6e-7)
    assert printed[ex.EPOCHS - 1] < printed[0] / 50
    table = [line.split() for line in out[out.index("x1     x2     target   model") + 1 :]]
    fitted = forward(net, np.array([[float(r[0]), float(r[1])] for r in table]))[0][:, 0]
    for row, value in zip(table, fitted):
        assert float(row[2]) == pytest.approx(ex.target(float(row[0]), float(row[1])), abs=1e-4)
        assert float(row[3]) == pytest.approx(value, abs=1e-4)
