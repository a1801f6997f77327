"""The table of libraries (``LIBS``): how each one computes value and gradient of a workload.

:func:`make_case` returns a :class:`Case` for (library, workload, size):
``step()`` computes value and gradient once (what the benchmarks time; its
output is dropped, so freeing a graph is part of the step) and ``read``
turns a step's output into flat lists of values and gradients, for the
agreement check against tapegrad. Building the case belongs to a compiled
system's *time to first result* (trace, symbolic work, compile), which
:mod:`benchmarks.run` measures together with the first step. Each builder's
docstring says how its library is asked, and is quoted in the report.

>>> values, grads = make_case("tapegrad", "rosen", 10).result()
>>> round(values[0], 6), len(grads)
(1701.917008, 11)
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import workloads as wl

__all__ = ["LIBS", "Lib", "Case", "Unavailable", "make_case", "version", "CACHE_ENV"]

# A directory shared by one run's processes for sympy's generated code and
# JAX's compilation cache, so that pyperf's workers do not redo minutes of
# setup (the first result, measured once per run, starts with it empty).
CACHE_ENV = "TAPEGRAD_BENCH_CACHE"
Out = tuple[list[float], list[float]]


class Unavailable(Exception):
    """The library is not installed, or does not run this workload (the message says why)."""


@dataclass
class Case:
    """A workload prepared for one library."""

    step: Callable[[], Any]
    read: Callable[[Any], Out]
    entries: Callable[[], int] | None = None  # tapegrad jit: entries of the traced program
    notes: list[str] = field(default_factory=list)

    def result(self) -> Out:
        """Values and gradients of one step, flat."""
        return self.read(self.step())


@dataclass(frozen=True)
class Lib:
    """One row of the table of libraries."""

    key: str
    label: str
    module: str  # imported only in the processes that time it
    kind: str  # reference, eager, compiled (time to first result shown) or batched
    workloads: tuple[str, ...]
    build: Callable[[str, int], Case]
    max_ops: int | None = None  # ops per call (per sample in W4) above which --slow is needed
    needs: str = ""  # an attribute the module must have (tapegrad.jit, tapegrad.vmap)

    def missing(self) -> str:
        """Why this library cannot run here ('' if it can); imports tapegrad at most."""
        if self.module and importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed"
        if self.needs and not hasattr(importlib.import_module(self.module), self.needs):
            return f"{self.module}.{self.needs} is not available in this {self.module}"
        return ""


def floats(x: Any) -> list[float]:
    """Any nest of numbers, arrays, tensors or DMs as a flat list of floats."""
    import numpy as np

    return [float(v) for v in np.asarray(x, dtype=float).ravel()]


def _vg(out: Any) -> Out:
    return floats(out[0]), floats(out[1])


def _loop(outs: list[Any]) -> Out:
    return [float(v) for v, _ in outs], [g for _, gs in outs for g in floats(gs)]


def _functional(vg: Callable[..., Any], key: str, size: int, relu: Any, wrap: Any = None) -> Case:
    """``vg(f)`` is value_and_grad of ``f``; W4 loops over the samples."""
    wrap = wrap or (lambda x: x)
    if key == "vmap":
        rows, coef, g = [wrap(r) for r in wl.samples(size)], wrap(list(wl.COEF)), vg(wl.rosen, 1)
        return Case(lambda: [g(coef, r) for r in rows], _loop)
    f, x0 = wl.problem(key, size, relu)
    x, g = wrap(x0), vg(f)
    return Case(lambda: g(x), _vg)


def _plain(key: str, size: int) -> Case:
    """The function on floats, value only (W4: a loop over the samples)."""
    if key == "vmap":
        rows = wl.samples(size)
        return Case(lambda: [wl.rosen(wl.COEF, r) for r in rows], lambda o: (floats(o), []))
    f, x0 = wl.problem(key, size, wl.relu_float)
    return Case(lambda: f(x0), lambda o: (floats(o), []))


def _value_api(key: str, size: int, leaf: Any, relu: Any, lift: Any, zero: Any) -> Case:
    """micrograd's API (leaves, ``backward()``, ``.grad``): tapegrad's Value, micrograd, PyTorch.

    W1 is the demo's step: the parameters persist; ``zero_grad``, inputs
    lifted with ``lift`` (the demo wraps them in ``Value``), forward,
    backward. Elsewhere each step makes fresh leaves, as ``grad(f)(x)`` does.
    """

    def read(out: tuple[Any, list[Any]]) -> Out:
        return [float(out[0].data)], [0.0 if v.grad is None else float(v.grad) for v in out[1]]

    if key == "mlp":
        xs, ys = wl.moons(size)
        params = [leaf(p) for p in wl.init_mlp()]

        def step() -> Any:
            for p in params:
                p.grad = zero
            loss = wl.mlp_loss(params, [[lift(a), lift(b)] for a, b in xs], ys, relu)
            loss.backward()
            return loss, params

        return Case(step, read)
    f, x0 = wl.problem(key, size, relu)

    def fresh() -> Any:
        leaves = [leaf(v) for v in x0]
        out = f(leaves)
        out.backward()
        return out, leaves

    return Case(fresh, read)


def _tapegrad(key: str, size: int) -> Case:
    """W1: the demo step with micrograd's API; elsewhere ``value_and_grad(f)`` (W4: a loop)."""
    import tapegrad as tg

    if key == "mlp":
        return _value_api(key, size, tg.Value, tg.Value.relu, tg.Value, 0.0)
    return _functional(tg.value_and_grad, key, size, tg.math.relu)


def _tapegrad_jit(key: str, size: int) -> Case:
    """``jit(value_and_grad(f))``."""
    import tapegrad

    tg: Any = tapegrad  # Any: TAPEGRAD_PATH may name a tapegrad without jit and trace

    case = _functional(lambda f: tg.jit(tg.value_and_grad(f)), key, size, tg.math.relu)
    f, x0 = wl.problem(key, size, tg.math.relu)
    if hasattr(tg, "trace"):
        case.entries = lambda: len(tg.trace(tg.value_and_grad(f), x0))
    return case


def _tapegrad_vmap(key: str, size: int) -> Case:
    """``vmap(value_and_grad(f, argnums=1), in_axes=(None, 0))(COEF, X)``, X a numpy array."""
    import numpy as np

    import tapegrad

    tg: Any = tapegrad  # Any: TAPEGRAD_PATH may name a tapegrad without vmap
    g = tg.vmap(tg.value_and_grad(wl.rosen, argnums=1), in_axes=(None, 0))
    x = np.array(wl.samples(size))
    return Case(lambda: g(wl.COEF, x), _vg)


def _numpy_fused(key: str, size: int) -> Case:
    """W4 written by hand with numpy (``benchmarks/fused.py``): a few array expressions."""
    import numpy as np

    from benchmarks.fused import rosen_value_and_grad

    x = np.array(wl.samples(size))
    return Case(lambda: rosen_value_and_grad(wl.COEF, x), _vg)


def _micrograd(key: str, size: int) -> Case:
    """micrograd 0.1.0's ``Value``, as its demo uses it."""
    from micrograd.engine import Value

    case = _value_api(key, size, Value, Value.relu, Value, 0)
    # micrograd's backward() sorts the graph recursively, one frame per node
    # on the longest path: the limit is raised only while a step runs.
    limit, step = 2 * wl.n_ops(key, size) + 1000, case.step

    def deep() -> Any:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, limit))
        try:
            return step()
        finally:
            sys.setrecursionlimit(old)

    return Case(deep, case.read, notes=[f"recursion limit {limit} while a step runs"])


def _torch(key: str, size: int) -> Case:
    """Scalar float64 tensors, ``requires_grad`` leaves, ``backward()``; one thread."""
    import torch

    torch.set_num_threads(1)  # scalar ops: threads only add noise on 2 cores
    f64 = torch.float64
    leaf = lambda v: torch.tensor(v, dtype=f64, requires_grad=True)
    return _value_api(key, size, leaf, torch.relu, lambda v: torch.tensor(v, dtype=f64), None)


def _autograd(key: str, size: int) -> Case:
    """``autograd.value_and_grad(f)`` over a list of floats."""
    import autograd
    import autograd.numpy as anp

    return _functional(autograd.value_and_grad, key, size, lambda v: anp.maximum(v, 0.0))


def _jax(key: str, size: int) -> Case:
    """``jax.value_and_grad(f)`` over a list of float64 scalars, no jit (~0.5-1 ms per op)."""
    return _jax_any(key, size, False)


def _jax_jit(key: str, size: int) -> Case:
    """``jax.jit(jax.value_and_grad(f))``; W4: ``jit(vmap(value_and_grad(f, 1), (None, 0)))``.

    XLA compiles the unrolled loop: ~0.7 s per 1,000 ops, and W1's 65,000 ops
    took over 5 minutes and 18 GB before we stopped it (hence the cap).
    """
    return _jax_any(key, size, True)


def _jax_any(key: str, size: int, jit: bool) -> Case:
    import jax

    jax.config.update("jax_enable_x64", True)  # float64, like every other row
    jax.config.update("jax_platforms", "cpu")
    if os.environ.get(CACHE_ENV):
        jax.config.update("jax_compilation_cache_dir", os.path.join(os.environ[CACHE_ENV], "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    import jax.numpy as jnp

    if key == "vmap":
        g = jax.jit(jax.vmap(jax.value_and_grad(wl.rosen, argnums=1), in_axes=(None, 0)))
        coef, x = jnp.asarray(wl.COEF), jnp.asarray(wl.samples(size))
        return Case(lambda: jax.block_until_ready(g(coef, x)), _vg)

    def vg(f: Any) -> Any:
        g = jax.jit(jax.value_and_grad(f)) if jit else jax.value_and_grad(f)
        return lambda x: jax.block_until_ready(g(x))

    wrap = lambda xs: [jnp.asarray(v, dtype=jnp.float64) for v in xs]
    return _functional(vg, key, size, lambda v: jnp.maximum(v, 0.0), wrap)


def _casadi(key: str, size: int) -> Case:
    """An SX graph built through Python operators, ``Function(x, [f, gradient(f, x)])``.

    Called on a DM; W4: ``Function.map`` over the batch, one call.
    """
    import casadi as ca
    import numpy as np

    f: Callable[[Any], Any]
    if key == "vmap":
        f, n, x0 = functools.partial(wl.rosen, wl.COEF), wl.VMAP_DIM, np.array(wl.samples(size)).T
    else:
        f, point = wl.problem(key, size, lambda v: ca.fmax(v, 0))
        n, x0 = len(point), ca.DM(point)
    x = ca.SX.sym("x", n)
    out = f([x[i] for i in range(n)])
    fn = ca.Function("f", [x], [out, ca.gradient(out, x)])
    fn = fn.map(size) if key == "vmap" else fn
    return Case(lambda: fn(x0), lambda o: (floats(o[0]), floats(np.asarray(o[1]).T)))


def _sympy(key: str, size: int) -> Case:
    """The symbolic gradient, ``lambdify(modules="math", cse=True)``; setup grows ~quadratically."""
    import sympy as sp

    f, x0 = wl.problem(key, size, None)
    cache = Path(os.environ.get(CACHE_ENV) or "/nonexistent") / f"sympy-{key}-{size}.py"
    ns: dict[str, Any] = dict(vars(math))
    if cache.exists():  # the code lambdify generated in this run's first process
        exec(cache.read_text(), ns)
        fn = ns["_lambdifygenerated"]
    else:
        s = sp.symbols(f"x0:{len(x0)}")
        e = f(list(s))
        fn = sp.lambdify([s], [e, [sp.diff(e, v) for v in s]], modules="math", cse=True)
        if cache.parent.is_dir():
            cache.write_text(inspect.getsource(fn))
    return Case(lambda: fn(x0), _vg)


ALL, W4 = ("mlp", "rosen", "chain"), ("vmap",)
LIBS: dict[str, Lib] = {
    lib.key: lib
    for lib in (
        Lib("plain", "plain Python", "", "reference", ALL + W4, _plain),
        Lib("tapegrad", "tapegrad eager", "tapegrad", "eager", ALL + W4, _tapegrad),
        Lib(
            "tapegrad-jit", "tapegrad jit", "tapegrad", "compiled", ALL, _tapegrad_jit, None, "jit"
        ),
        Lib(
            "tapegrad-vmap",
            "tapegrad vmap",
            "tapegrad",
            "batched",
            W4,
            _tapegrad_vmap,
            None,
            "vmap",
        ),
        Lib("numpy-fused", "numpy, fused by hand", "numpy", "batched", W4, _numpy_fused),
        Lib("micrograd", "micrograd", "micrograd", "eager", ALL, _micrograd, 200_000),
        Lib("torch", "PyTorch (scalar tensors)", "torch", "eager", ALL, _torch, 200_000),
        Lib("autograd", "HIPS autograd", "autograd", "eager", ALL, _autograd, 200_000),
        Lib("jax", "JAX eager", "jax", "eager", ALL, _jax, 10_000),
        Lib("jax-jit", "JAX jit", "jax", "compiled", ALL + W4, _jax_jit, 20_000),
        Lib("casadi", "CasADi SX Function", "casadi", "compiled", ALL + W4, _casadi),
        Lib("sympy", "sympy lambdify(cse=True)", "sympy", "compiled", ("rosen",), _sympy, 8_000),
    )
}


def version(module: str) -> str:
    """The installed version of ``module``'s distribution ('' for plain Python)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(module) if module else ""
    except PackageNotFoundError:
        return "?"


def make_case(lib: str, key: str, size: int) -> Case:
    """The case of workload ``key`` at ``size`` on ``lib``; raises :class:`Unavailable`."""
    entry = LIBS[lib]
    if key not in entry.workloads:
        raise Unavailable(f"{entry.label} does not run {key}")
    if why := entry.missing():
        raise Unavailable(why)
    return entry.build(key, size)
