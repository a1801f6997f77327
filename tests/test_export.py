"""``Program.export``: a standalone module that computes what the program computes.

The reference is the program itself (``prog(*args)``, whose floats are those
of the eager engine: test_programs checks that) and, for the array form,
``tapegrad.vmap`` on numpy: the module holds the same generated code and
copies of the same functions, so results must agree bit for bit
(``float.hex``). The modules are run in a fresh interpreter where importing
tapegrad fails, so a module that reached for tapegrad cannot pass.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from program_checks import canonical, leaves, set_segment

import tapegrad as tg
from tapegrad.programs.export import export_source, undefined_names
from tapegrad.testing import BUILTIN_OPS, Program, programs


def rosenbrock(x: Any) -> Any:
    return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(len(x) - 1))


def branchy(x: Any, y: Any) -> Any:
    z = x * y + 2.0
    if z > 0:
        return tg.math.tanh(z) + x**3.5
    return -z * tg.math.exp(y)


def many(x: Any, y: Any) -> Any:
    """A function using most primitives (away from their edges for x, y in [0.2, 0.9])."""
    m = tg.math
    a = m.sigmoid(x) * m.softplus(y) + m.log(x) * m.sqrt(y) - m.atan2(y, x)
    b = m.hypot(x, y) + m.sin(x) * m.cos(y) + m.tan(x * 0.5) + m.asin(x * 0.5) + m.acos(y * 0.5)
    c = m.atan(x) + m.sinh(y) * m.cosh(x) + m.asinh(y) + m.acosh(1.0 + x) + m.atanh(y * 0.5)
    d = m.exp2(x) + m.expm1(y) + m.log2(x) + m.log10(y) + m.log1p(x) + m.cbrt(x - y)
    e = m.relu(x - y) + abs(x - y) + m.minimum(x, y) * m.maximum(x, y) + m.erf(x) + x**y
    return a * b + c / d + e + m.copysign(x, -y) + m.fmod(x * 7.0, y) + (x * 7.0) % y


def _custom_forward(x: float) -> float:
    return math.log1p(math.exp(x)) * _SCALE


_SCALE = 2.0
scaled_softplus = tg.primitive(_custom_forward, lambda x, out: _SCALE * tg.math.sigmoid(x))


def with_custom(x: Any) -> Any:
    return scaled_softplus(x) * x


def structured(params: dict[str, Any], xs: list[Any], n: int, *, shift: float) -> Any:
    w, b = params["w"], params["b"]
    total = sum(w[i] * xs[i] for i in range(n)) + b + shift
    return {"total": total, "parts": [total * 2.0, n], "grid": np.array([[total, b], [w[0], 1.0]])}


def _load(text: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "exported"}
    exec(compile(text, "<exported>", "exec"), namespace)
    return namespace


# -- a fresh interpreter, where importing tapegrad fails -----------------------------------

_RUNNER = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, sys

    class NoTapegrad(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tapegrad" or name.startswith("tapegrad."):
                raise ImportError("tapegrad is blocked in this interpreter")
            return None

    sys.meta_path.insert(0, NoTapegrad())
    try:
        import tapegrad
    except ImportError:
        pass
    else:
        raise SystemExit("tapegrad imported")
    import numpy as np

    def load(path):
        spec = importlib.util.spec_from_file_location("exported", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def hexed(x):
        if isinstance(x, dict):
            return {k: hexed(v) for k, v in sorted(x.items())}
        if isinstance(x, (list, tuple)):
            return [hexed(v) for v in x]
        if isinstance(x, np.ndarray):
            return {"shape": list(x.shape), "values": [float(v).hex() for v in x.reshape(-1)]}
        if isinstance(x, float):
            return x.hex()
        return x

    out = []
    for path, arrays, args in json.load(sys.stdin):
        module = load(path)
        args = [np.array(a) if isinstance(a, list) else a for a in args]
        try:
            result = module.program(np, *args) if arrays else module.program(*args)
            out.append(["ok", hexed(result)])
        except ValueError as e:
            out.append(["ValueError", str(e)])
    print(json.dumps(out))
    """
)


def _run_fresh(tmp_path: Path, jobs: list[tuple[str, bool, list[Any]]]) -> list[Any]:
    """Run exported modules in a new interpreter that cannot import tapegrad."""
    stub = tmp_path / "tapegrad"  # a stub package first on the path, in case
    stub.mkdir(exist_ok=True)
    (stub / "__init__.py").write_text("raise ImportError('not here')\n")
    runner = tmp_path / "runner.py"
    runner.write_text(_RUNNER)
    done = subprocess.run(
        [sys.executable, "-s", str(runner)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    result: list[Any] = json.loads(done.stdout)
    return result


def _hexed(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _hexed(v) for k, v in sorted(x.items())}
    if isinstance(x, (list, tuple)):
        return [_hexed(v) for v in x]
    if isinstance(x, np.ndarray):
        return {"shape": list(x.shape), "values": [float(v).hex() for v in x.reshape(-1)]}
    if isinstance(x, float):
        return x.hex()
    return x


def test_exported_modules_run_without_tapegrad_and_agree_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(19)
    vg = tg.value_and_grad(rosenbrock)
    rosen = tg.trace(vg, np.linspace(-1.0, 1.0, 10))
    branch_grad = tg.grad(branchy, argnums=(0, 1))
    branch = tg.trace(branch_grad, 0.5, 3.0)
    hess = tg.hessian(many, argnums=(0, 1))
    many_prog = tg.trace(hess, 0.4, 0.7)
    custom = tg.trace(tg.value_and_grad(with_custom), 0.3)
    for name, prog in [("rosen", rosen), ("branch", branch), ("many", many_prog)]:
        prog.export(tmp_path / f"{name}.py")
        prog.export(tmp_path / f"{name}_arrays.py", arrays=True)
    custom.export(tmp_path / "custom.py")
    points = rng.uniform(-2.0, 2.0, size=(64, 10))
    xs, ys = rng.uniform(0.2, 0.9, size=64), rng.uniform(0.2, 0.9, size=64)
    jobs: list[tuple[str, bool, list[Any]]] = []
    expected: list[Any] = []
    for p in points[:5]:
        jobs.append((str(tmp_path / "rosen.py"), False, [p.tolist()]))
        expected.append(["ok", _hexed(rosen(p))])
    for x, y in zip(xs[:5], ys[:5]):
        for name, prog in [("branch", branch), ("many", many_prog)]:
            jobs.append((str(tmp_path / f"{name}.py"), False, [float(x), float(y)]))
            expected.append(["ok", _hexed(prog(float(x), float(y)))])
        jobs.append((str(tmp_path / "custom.py"), False, [float(x)]))
        expected.append(["ok", _hexed(custom(float(x)))])
    # The array forms against vmap on numpy.
    jobs.append((str(tmp_path / "rosen_arrays.py"), True, [points.tolist()]))
    expected.append(["ok", _hexed(tg.vmap(vg)(points))])
    jobs.append((str(tmp_path / "branch_arrays.py"), True, [xs.tolist(), ys.tolist()]))
    expected.append(["ok", _hexed(tg.vmap(branch_grad)(xs, ys))])
    jobs.append((str(tmp_path / "many_arrays.py"), True, [xs.tolist(), ys.tolist()]))
    expected.append(["ok", _hexed(tg.vmap(hess)(xs, ys))])
    got = _run_fresh(tmp_path, jobs)
    assert got == expected
    # A failed guard: ValueError naming the comparison and the values compared.
    failing = [
        (str(tmp_path / "branch.py"), False, [-1.0, 3.0]),
        (str(tmp_path / "branch_arrays.py"), True, [[1.0, -1.0], [1.0, 3.0]]),
    ]
    (float_error, array_error) = _run_fresh(tmp_path, failing)
    assert float_error == [
        "ValueError",
        "program: guard %4 > 0 was True when traced and is not at these arguments "
        "(%4 = -1.0): the traced function takes another branch there",
    ]
    assert array_error == [
        "ValueError",
        "program: guard %4 > 0 was True when traced and is not for sample 1 "
        "(%4 = -1.0): the traced function takes another branch there",
    ]
    with pytest.raises(tg.GuardError):  # the program agrees that the guard fails
        branch(-1.0, 3.0)


def test_structured_arguments_keywords_and_results(tmp_path: Path) -> None:
    params = {"w": [0.5, -1.5], "b": 0.25}
    prog = tg.trace(structured, params, [2.0, 3.0], 2, shift=1.0)
    module = _load(export_source(prog))
    new = ({"w": [1.5, 2.5], "b": -0.5}, [0.125, 4.0], 2)
    assert canonical(module["program"](*new, shift=3.0)) == canonical(prog(*new, shift=3.0))
    with pytest.raises(ValueError, match=r"args\[2\] was 2 when traced, is 3"):
        module["program"](*new[:2], 3, shift=3.0)
    with pytest.raises(TypeError, match=r"args\[1\] has 3 entries, the traced one had 2"):
        module["program"](new[0], [1.0, 2.0, 3.0], 2, shift=1.0)


def test_array_form_with_unbatched_arguments_and_other_axes() -> None:
    vg = tg.value_and_grad(lambda c, x: c[0] * x[0] * x[1] + c[1], argnums=1)
    c = np.array([2.0, 0.5])
    batch = np.random.default_rng(3).normal(size=(2, 7))  # samples along axis 1
    prog = tg.trace(vg, c, batch[:, 0])
    module = _load(export_source(prog, arrays=True, in_axes=(None, 1)))
    got = module["program"](np, c, batch)
    want = tg.vmap(vg, in_axes=(None, 1))(c, batch)
    assert canonical(got) == canonical(want)
    with pytest.raises(ValueError, match=r"argument 0 is batched .* give it in_axes None"):
        export_source(tg.trace(lambda p, x: p[0] * x, [1.0], 2.0), arrays=True)


def test_the_array_form_on_a_strict_array_api_namespace() -> None:
    array_api_strict = pytest.importorskip("array_api_strict")
    vg = tg.value_and_grad(rosenbrock)
    points = np.random.default_rng(8).uniform(-2.0, 2.0, size=(50, 4))
    module = _load(export_source(tg.trace(vg, points[0]), arrays=True))
    batch = array_api_strict.asarray(points)
    got = module["program"](array_api_strict, batch)
    want = tg.vmap(vg)(batch)
    for g, w in zip(got, want):
        assert isinstance(g, type(batch))
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy: log of a negative
def test_a_domain_error_in_the_array_form_names_the_sample() -> None:
    prog = tg.trace(lambda x: tg.math.log(x) * 2.0, 1.0)
    module = _load(export_source(prog, arrays=True))
    with pytest.raises(ValueError, match="at sample 2 an op is outside its domain"):
        module["program"](np, np.array([1.0, 2.0, -1.0]))
    float_module = _load(export_source(prog))
    with pytest.raises(ValueError, match="math domain error"):  # as the program raises
        float_module["program"](-1.0)


def test_what_cannot_be_exported_is_refused() -> None:
    v = tg.Var(2.0)
    with pytest.raises(ValueError, match="closes over"):
        export_source(tg.trace(lambda x: x * v, 1.0))
    namespace: dict[str, Any] = {"tg": tg}
    exec("typed = tg.primitive(lambda x: x * 3.0, lambda x, out: 3.0)", namespace)
    prog = tg.trace(lambda x: namespace["typed"](x) + 1.0, 1.0)
    with pytest.raises(ValueError, match=r"source of .* cannot be found"):
        export_source(prog)
    with pytest.raises(TypeError, match="expected a tapegrad Program"):
        export_source(rosenbrock)  # type: ignore[arg-type]
    returns_object = tg.trace(lambda x: (x * 2.0, object()), 1.0)
    with pytest.raises(ValueError, match="returns a object"):
        export_source(returns_object)


def test_programs_cut_into_several_functions_export_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def chain(x: Any, y: Any) -> Any:  # guards in several segments
        for k in range(12):
            x = tg.math.sin(x) * y + 0.5
            if x > -10.0 - k:
                y = y * 1.01 + tg.math.exp(-x * x)
        return x, y

    set_segment(monkeypatch, 7)
    vg = tg.jacobian(chain, argnums=(0, 1))
    prog = tg.trace(vg, 0.3, 0.8)
    text = export_source(prog)
    assert "def part3(S):" in text and undefined_names(text) == set()
    assert canonical(_load(text)["program"](0.4, 0.7)) == canonical(prog(0.4, 0.7))
    arrays = export_source(prog, arrays=True)
    assert "def part3(S, xp, elementwise):" in arrays and undefined_names(arrays) == set()
    xs, ys = np.linspace(0.1, 0.5, 9), np.linspace(0.6, 0.9, 9)
    assert canonical(_load(arrays)["program"](np, xs, ys)) == canonical(tg.vmap(vg)(xs, ys))
    with pytest.raises(ValueError, match=r"guard %\d+ > -1\d\.0 was True when traced and is not"):
        _load(text)["program"](-1e308, 1e308)


def test_undefined_names_finds_a_missing_definition() -> None:
    assert undefined_names("import math\ndef f(x):\n    return math.sin(x) + g(x)\n") == {"g"}
    assert undefined_names("def f(x):\n    y = x\n    return abs(y)\n") == set()


TRANSFORMS = {
    "f": lambda f, n: f,
    "value_and_grad": lambda f, n: tg.value_and_grad(f, argnums=tuple(range(n))),
    "hessian": lambda f, n: tg.hessian(f, argnums=tuple(range(n))),
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs(max_ops=25, ops=list(BUILTIN_OPS)))
def test_random_programs_export_bit_for_bit(transform: str, prog: Program) -> None:
    f = TRANSFORMS[transform](prog, prog.n_inputs)
    traced = tg.trace(f, *prog.inputs)
    for arrays in (False, True):
        text = export_source(traced, arrays=arrays)
        assert undefined_names(text) == set()
        assert "tapegrad" not in "".join(
            line for line in text.splitlines() if line.startswith(("import", "from"))
        )
        module = _load(text)
        if not arrays:
            assert canonical(module["program"](*prog.inputs)) == canonical(traced(*prog.inputs))
            continue
        # The array form against vmap, at the point and nearby, where vmap
        # computes every sample itself (finite, inside every domain).
        batch = [np.array([x, x * (1.0 + 1e-9), x + 1e-7]) for x in prog.inputs]
        want = tg.vmap(f)(*batch)
        assume(all(bool(np.all(np.isfinite(leaf))) for leaf in leaves(want)))
        try:
            got = module["program"](np, *batch)
        except ValueError:  # a guard or domain edge between the samples
            assume(False)
        assert canonical(got) == canonical(want)
