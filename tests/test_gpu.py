"""The same Array API program on other namespaces: torch (CPU), and CuPy / torch on a GPU.

Each test skips, saying why, where its library (or a GPU) is missing: torch
and CuPy are not in the dev extra (PyTorch's wheel for a machine is a
choice of its own, and CuPy needs CUDA). The reference is ``vmap`` on numpy
for the same samples: a GPU's (or torch's) ``exp`` and ``log`` may round
differently, so the comparison is to a relative 1e-12, as test_vmap
compares numpy with ``math``. The exported array form runs on the same
namespace and must give ``vmap``'s results there bit for bit (the same
operations, in the same order, on the same library).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.programs.export import export_source


def rosenbrock(x: Any) -> Any:
    return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(len(x) - 1))


def log_or_sqrt(x: Any) -> Any:
    return tg.math.log(x) if x > 0 else tg.math.sqrt(-x)


def _torch(device: str) -> tuple[Any, Any]:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        pytest.skip("torch is not installed here (not in the dev extra: pick a build)")
    compat = pytest.importorskip("array_api_compat", reason="array-api-compat is not installed")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    return torch, compat.array_namespace(torch.zeros(1))


def _check(xp: Any, to_device: Any, to_numpy: Any) -> None:
    points = np.random.default_rng(5).uniform(-2.0, 2.0, size=(500, 6))
    vg = tg.value_and_grad(rosenbrock)
    want = tg.vmap(vg)(points)
    got = tg.vmap(vg)(to_device(points))
    for g, w in zip(got, want):
        np.testing.assert_allclose(to_numpy(g), w, rtol=1e-12)
    namespace: dict[str, Any] = {}
    exec(export_source(tg.trace(vg, points[0]), arrays=True), namespace)
    exported = namespace["program"](xp, to_device(points))
    for e, g in zip(exported, got):
        np.testing.assert_array_equal(to_numpy(e), to_numpy(g))
    xs = np.linspace(-3.0, 3.0, 301)
    branches = tg.vmap(tg.grad(log_or_sqrt))(to_device(xs))
    np.testing.assert_allclose(to_numpy(branches), tg.vmap(tg.grad(log_or_sqrt))(xs), rtol=1e-12)


def test_torch_on_the_cpu() -> None:
    torch, xp = _torch("cpu")
    _check(xp, lambda a: torch.asarray(a), lambda t: t.numpy())


def test_torch_on_a_cuda_gpu() -> None:
    torch, xp = _torch("cuda")
    _check(xp, lambda a: torch.asarray(a, device="cuda"), lambda t: t.cpu().numpy())


def test_cupy_on_a_gpu() -> None:
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        pytest.skip("CuPy is not installed here (it needs CUDA; not in the dev extra)")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("no CUDA GPU here")
    except Exception as e:  # the CUDA driver is missing
        pytest.skip(f"no usable CUDA GPU here ({type(e).__name__})")
    compat = pytest.importorskip("array_api_compat", reason="array-api-compat is not installed")
    xp = compat.array_namespace(cupy.asarray([1.0]))
    _check(xp, cupy.asarray, cupy.asnumpy)
