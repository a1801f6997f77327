"""The types users lean on, checked by ``mypy --strict`` in a subprocess.

Three files go to one mypy run (about 3 s):

* the Python code of docs/tutorial.md, as a script: the tutorial must pass
  ``mypy --strict`` as written;
* ``API_SCRIPT``: the public API with ``assert_type`` on each result that has
  a precise type; it also runs under Python, whose ``isinstance`` asserts check
  that each static type is what the call returns;
* ``MISUSE``: lines mypy must reject, each marked ``# error``, so that a
  change that made the types vaguer (``Any``) fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mypy")


def doctest_code(markdown: str) -> str:
    """The ``>>>`` and ``...`` lines of a page's python blocks, as one script."""
    blocks = re.findall(r"```python\n(.*?)```", markdown, re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            if line.startswith((">>> ", "... ")) or line in (">>>", "..."):
                lines.append(line[4:])
        lines.append("")
    return "\n".join(lines)


API_SCRIPT = '''\
"""The public API's static types, asserted; run by mypy --strict and by Python."""

import os
import random
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from typing_extensions import assert_type

import tapegrad as tg
from tapegrad import Var, nn


def cube(x: float) -> float:
    return x * x * x


def product(x: list[float]) -> float:
    return x[0] * x[1]


def both(x: float, y: float) -> float:
    return x * y


g = assert_type(tg.grad(cube)(2.0), float)
assert isinstance(g, float) and g == 12.0
gl = assert_type(tg.grad(product)([2.0, 3.0]), list[float])
assert isinstance(gl, list) and gl == [3.0, 2.0]
assert_type(tg.grad(lambda x: x * x)(3.0), float)
assert_type(tg.grad(tg.grad(cube))(2.0), float)
v, dv = assert_type(tg.value_and_grad(cube)(2.0), tuple[float, float])
assert isinstance(v, float) and isinstance(dv, float)
vl, dvl = assert_type(tg.value_and_grad(product)([2.0, 3.0]), tuple[float, list[float]])
assert isinstance(vl, float) and isinstance(dvl, list)
h = assert_type(tg.hessian(cube)(2.0), float)
assert isinstance(h, float) and h == 12.0
hl = assert_type(tg.hessian(product)([2.0, 3.0]), list[list[float]])
assert hl == [[0.0, 1.0], [1.0, 0.0]]
out, tangent = assert_type(tg.jvp(cube, (2.0,), (1.0,)), tuple[float, float])
assert isinstance(out, float) and tangent == 12.0
out, back = assert_type(tg.vjp(cube, 2.0), tuple[float, Callable[[float], tuple[float]]])
assert back(1.0) == (12.0,)
outl, backl = tg.vjp(product, [2.0, 3.0])
assert_type(backl(1.0), tuple[list[float]])
assert backl(1.0) == ([3.0, 2.0],)
# calls the precise types do not cover keep f's parameters, with an Any result
gs = tg.grad(both, argnums=(0, 1))(2.0, 3.0)
assert gs == (3.0, 2.0)
assert_type(tg.jit(cube)(2.0), float)  # jit keeps f's signature

x = [1.0, -2.0, 0.5]
one = assert_type(nn.Layer(3, 1, rng=random.Random(0))(x), Var)
assert isinstance(one, Var)
assert_type(nn.Layer(3, 1, nonlin=True)(x), Var)
assert isinstance(nn.Layer(3, 2)(x), list)
assert_type(nn.Linear(3, 2)(x), list[Var])
assert_type(nn.Neuron(3, nonlin=False)(x), Var)
model = nn.MLP(3, (4, 4, 1), rng=random.Random(0))
y = assert_type(model(x), Var)
assert isinstance(y, Var)
listed = nn.MLP(3, [4, 4, 1])  # the last size of a list is not visible: Any
assert isinstance(listed(x), Var)
named = assert_type(model.named_parameters(), Iterator[tuple[str, Var]])
state = assert_type(model.state_dict(), dict[str, float])
model.load_state_dict(state)
opt = nn.Adam(model.named_parameters(), lr=0.01)
sgd = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
opt_state = assert_type(opt.state_dict(), dict[str, Any])
sgd.load_state_dict(sgd.state_dict())
path = os.path.join(tempfile.mkdtemp(), "ckpt.json")
nn.save({"model": state, "optimizer": opt_state}, path)
checkpoint = nn.load(path)
model.load_state_dict(checkpoint["model"])
opt.load_state_dict(checkpoint["optimizer"])
assert next(named)[0] == "layers.0.neurons.0.w.0"
'''

MISUSE = """\
import tapegrad as tg
from tapegrad import nn


def cube(x: float) -> float:
    return x * x * x


wrong: list[float] = tg.grad(cube)(2.0)  # error
tg.grad(cube)("two")  # error
tg.value_and_grad(cube)(2.0)[1].append(1.0)  # error
tg.hessian(cube)([1.0])  # error
nn.Neuron(2, nonlin="relu")  # error
nn.Layer(3, 1)([1.0, 2.0, 3.0]).append(0.0)  # error
nn.MLP(3, (4, 1))([1.0, 2.0, 3.0])[0]  # error
nn.Linear(3, 2)([1.0, 2.0, 3.0]).data  # error
nn.MLP(3, (4, 1)).state_dict()["w"].append(1.0)  # error
"""


def test_tutorial_and_public_api_pass_mypy_strict(tmp_path: Path) -> None:
    tutorial = tmp_path / "tutorial_code.py"
    tutorial.write_text(doctest_code((ROOT / "docs" / "tutorial.md").read_text()), "utf-8")
    api = tmp_path / "api_script.py"
    api.write_text(API_SCRIPT, "utf-8")
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE, "utf-8")
    options = ["--strict", "--config-file", str(ROOT / "pyproject.toml")]
    options += ["--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    run = subprocess.run(
        [sys.executable, "-m", "mypy", *options, str(tutorial), str(api), str(misuse)],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    clean = [line for line in errors if not line.startswith(str(misuse))]
    assert not clean, "\n".join(clean)
    flagged = {int(line.split(":")[1]) for line in errors if line.startswith(str(misuse))}
    expected = {i for i, line in enumerate(MISUSE.splitlines(), 1) if line.endswith("# error")}
    assert flagged == expected, run.stdout


def test_the_api_script_runs_with_the_types_it_asserts(tmp_path: Path) -> None:
    script = tmp_path / "api_script.py"
    script.write_text(API_SCRIPT, "utf-8")
    subprocess.run(
        [sys.executable, str(script)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
