"""One benchmark case per (workload, library): separate forward and backward steps.

A :class:`Case` wraps a workload of :mod:`benchmarks.workloads` for one
library. ``forward()`` evaluates the function (recording whatever the library
records) and returns a state; ``backward(state)`` computes the gradients from
it. ``result()`` computes value and gradient from scratch, for the agreement
checks of ``tests/test_benchmarks.py``.

Libraries (``LIBS``), each optional except ``plain`` and ``tapegrad``:

==============  ==============================================================
``plain``       the same function on Python floats, no derivatives
``plain-grad``  Rosenbrock only: value and a hand-written gradient on floats
``tapegrad``    ``tapegrad.Value`` leaves, ``loss.backward()`` (micrograd style)
``tapegrad-grad``  Rosenbrock only: ``tapegrad.vjp`` / ``tapegrad.grad``
``tapegrad-dot``   workload 1 only: neurons as ``tapegrad.math.dot(w, x, b)``,
                   as ``tapegrad.nn`` computes them (not used for the targets)
``micrograd``   micrograd 0.1.0 ``Value``, default settings (gc on)
``torch``       PyTorch scalar float64 tensors, ``requires_grad=True``
``autograd``    HIPS autograd ``make_vjp`` over a numpy float64 vector
``jax``         JAX (x64) ``jax.vjp``, eager: no jit
``jax-jit``     ``jax.jit(jax.value_and_grad(f))``, compile time reported apart
==============  ==============================================================

Every library runs the same workload code; only the scalar type, ``relu``
and the way gradients are asked for differ.

>>> case = make_case("rosenbrock", "tapegrad", 10)
>>> state = case.forward(); case.backward(state)
>>> value, grads = case.result()
>>> round(value, 6), len(grads)
(1701.917008, 11)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks import workloads as wl

__all__ = [
    "WORKLOADS",
    "LIBS",
    "Case",
    "Unavailable",
    "make_case",
    "lib_version",
    "n_ops",
]

WORKLOADS = ("mlp", "rosenbrock", "chain", "fan")
LIBS = (
    "plain",
    "plain-grad",
    "tapegrad",
    "tapegrad-grad",
    "tapegrad-dot",
    "micrograd",
    "torch",
    "autograd",
    "jax",
    "jax-jit",
)
# Which libraries import which module (for availability and versions).
MODULE_OF = {
    "tapegrad": "tapegrad",
    "tapegrad-grad": "tapegrad",
    "tapegrad-dot": "tapegrad",
    "micrograd": "micrograd",
    "torch": "torch",
    "autograd": "autograd",
    "jax": "jax",
    "jax-jit": "jax",
}
# The distribution to ask importlib.metadata for a version.
DIST_OF = {
    "jax": "jax",
    "torch": "torch",
    "autograd": "autograd",
    "micrograd": "micrograd",
    "tapegrad": "tapegrad",
}


class Unavailable(Exception):
    """This library is not installed, or cannot run this workload (the message says why)."""


@dataclass
class Case:
    """A workload prepared for one library.

    ``backward`` is None for cases that only evaluate (``plain``) or that
    cannot be split (``jax-jit``: one compiled value-and-gradient call).
    """

    workload: str
    lib: str
    size: int
    forward: Callable[[], Any]
    backward: Callable[[Any], Any] | None
    result: Callable[[], tuple[float, list[float] | None]]
    label: str = ""
    setup_seconds: float = 0.0  # e.g. JAX's trace-and-compile time
    notes: list[str] = field(default_factory=list)

    @property
    def has_backward(self) -> bool:
        """Whether forward and backward are timed apart."""
        return self.backward is not None


def lib_version(lib: str) -> str:
    """The installed version of the library behind ``lib`` ('' for plain Python)."""
    dist = DIST_OF.get(MODULE_OF.get(lib, ""), "")
    if not dist:
        return ""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def n_ops(workload: str, size: int) -> int:
    """Primitive ops a tape records for ``workload`` at ``size`` (counted, not estimated)."""
    if workload == "mlp":
        xs, ys = wl.moons(size)
        flat = wl.init_mlp()

        def run_mlp(w: Callable[[float], Any]) -> Any:
            ps = [w(p) for p in flat]
            inputs = [[w(a), w(b)] for a, b in xs]
            return wl.svm_loss(wl.mlp_unflatten(ps), ps, inputs, ys, wl.OpCounter.relu)

        return wl.count_ops(run_mlp)
    if workload == "rosenbrock":
        return wl.count_ops(lambda w: wl.rosenbrock([w(v) for v in wl.rosenbrock_point(size)]))
    if workload == "chain":
        return 2 * wl.chain_steps(size)
    if workload == "fan":
        return 2 * size
    raise ValueError(f"unknown workload {workload!r}")


# ---------------------------------------------------------------------------
# Inputs of each workload at a size: mlp (points), rosenbrock (terms), chain
# (ops), fan (products).
# ---------------------------------------------------------------------------


def _mlp_data(size: int) -> tuple[list[list[float]], list[float], list[float]]:
    xs, ys = wl.moons(size)
    return xs, ys, wl.init_mlp()


def make_case(workload: str, lib: str, size: int) -> Case:
    """The case for ``workload`` on ``lib`` at ``size``; raises :class:`Unavailable`."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose from {WORKLOADS}")
    builder = _BUILDERS.get(lib)
    if builder is None:
        raise ValueError(f"unknown library {lib!r}; choose from {LIBS}")
    case = builder(workload, size)
    case.label = case.label or lib
    return case


# ---------------------------------------------------------------------------
# plain Python floats
# ---------------------------------------------------------------------------


def _plain(workload: str, size: int) -> Case:
    fwd: Callable[[], Any]
    if workload == "mlp":
        xs, ys, flat = _mlp_data(size)
        layers = wl.mlp_unflatten(flat)

        def fwd() -> Any:
            return wl.svm_loss(layers, flat, xs, ys, wl.relu_float)

    elif workload == "rosenbrock":
        x = wl.rosenbrock_point(size)

        def fwd() -> Any:
            return wl.rosenbrock(x)

    elif workload == "chain":
        steps = wl.chain_steps(size)

        def fwd() -> Any:
            return wl.chain(0.5, steps)

    else:
        x0, ws = wl.fan_inputs(size)

        def fwd() -> Any:
            return wl.fan(x0, ws)

    return Case(workload, "plain", size, fwd, None, lambda: (float(fwd()), None), "plain Python")


def _plain_grad(workload: str, size: int) -> Case:
    if workload != "rosenbrock":
        raise Unavailable("a hand-written gradient exists for Rosenbrock only")
    x = wl.rosenbrock_point(size)

    def fwd() -> Any:
        return wl.rosenbrock_grad_float(x)

    return Case(
        workload,
        "plain-grad",
        size,
        fwd,
        None,
        lambda: wl.rosenbrock_grad_float(x),
        "plain, hand-written grad",
    )


# ---------------------------------------------------------------------------
# Libraries with micrograd's API: Value(x), v.relu(), loss.backward(), p.grad
# ---------------------------------------------------------------------------


def _value_api(
    workload: str,
    size: int,
    lib: str,
    value_cls: Any,
    zero: Any,
    neuron: Callable[[Sequence[Any], Sequence[Any], Any], Any] = wl.neuron_sum,
) -> Case:
    """Cases for tapegrad and micrograd, which share micrograd's API."""
    relu = value_cls.relu
    if workload == "mlp":
        xs, ys, flat = _mlp_data(size)

        def build() -> tuple[list[Any], Any]:
            params = [value_cls(p) for p in flat]
            return params, wl.mlp_unflatten(params)

        params, layers = build()

        def mlp_loss(params: list[Any], layers: Any) -> Any:
            inputs = [[value_cls(a), value_cls(b)] for a, b in xs]  # as in micrograd's demo
            return wl.svm_loss(layers, params, inputs, ys, relu, neuron)

        def mlp_backward(loss: Any, params: list[Any] = params) -> None:
            for p in params:  # model.zero_grad(), as in the demo step
                p.grad = zero
            loss.backward()

        def mlp_result() -> tuple[float, list[float]]:
            params, layers = build()
            loss = mlp_loss(params, layers)
            mlp_backward(loss, params)
            return float(loss.data), [float(p.grad) for p in params]

        return Case(workload, lib, size, lambda: mlp_loss(params, layers), mlp_backward, mlp_result)

    if workload == "rosenbrock":
        x = wl.rosenbrock_point(size)

        def rosen_fwd() -> tuple[Any, list[Any]]:
            xs = [value_cls(v) for v in x]  # fresh leaves, like grad(f)(x) makes
            return wl.rosenbrock(xs), xs

        def rosen_bwd(state: tuple[Any, list[Any]]) -> None:
            state[0].backward()

        def rosen_result() -> tuple[float, list[float]]:
            out, xs = rosen_fwd()
            rosen_bwd((out, xs))
            return float(out.data), [float(v.grad) for v in xs]

        label = f"{lib} (Value + backward)" if lib == "tapegrad" else lib
        return Case(workload, lib, size, rosen_fwd, rosen_bwd, rosen_result, label)

    if workload == "chain":
        steps = wl.chain_steps(size)
        leaf = value_cls(0.5)

        def chain_result() -> tuple[float, list[float]]:
            x = value_cls(0.5)
            y = wl.chain(x, steps)
            y.backward()
            return float(y.data), [float(x.grad)]

        return Case(
            workload, lib, size, lambda: wl.chain(leaf, steps), _call_backward, chain_result
        )

    x0, wfloats = wl.fan_inputs(size)
    xleaf = value_cls(x0)
    wleaves = [value_cls(w) for w in wfloats]

    def fan_result() -> tuple[float, list[float]]:
        x = value_cls(x0)
        ws = [value_cls(w) for w in wfloats]
        s = wl.fan(x, ws)
        s.backward()
        return float(s.data), [float(x.grad)] + [float(w.grad) for w in ws]

    return Case(workload, lib, size, lambda: wl.fan(xleaf, wleaves), _call_backward, fan_result)


def _call_backward(out: Any) -> None:
    out.backward()


def _tapegrad(workload: str, size: int) -> Case:
    import tapegrad

    return _value_api(workload, size, "tapegrad", tapegrad.Value, 0.0)


def _tapegrad_dot(workload: str, size: int) -> Case:
    import tapegrad

    if workload != "mlp":
        raise Unavailable("tapegrad-dot runs workload 1 (the MLP) only")
    dot = tapegrad.math.dot

    def neuron(w: Sequence[Any], x: Sequence[Any], b: Any) -> Any:
        return dot(w, x, b)

    case = _value_api(workload, size, "tapegrad-dot", tapegrad.Value, 0.0, neuron)
    case.label = "tapegrad (nn-style neurons: math.dot)"
    return case


def _tapegrad_grad(workload: str, size: int) -> Case:
    """Rosenbrock through the function transforms (``vjp``, else ``grad``)."""
    if workload != "rosenbrock":
        raise Unavailable("the transform variant is run on Rosenbrock only")
    import tapegrad

    x = wl.rosenbrock_point(size)
    f = wl.rosenbrock
    vjp = getattr(tapegrad, "vjp", None)
    grad = getattr(tapegrad, "grad", None)
    value_and_grad = getattr(tapegrad, "value_and_grad", None)

    def result() -> tuple[float, list[float]]:
        if value_and_grad is not None:
            value, g = value_and_grad(f)(x)
            return float(value), [float(v) for v in g]
        return _tapegrad("rosenbrock", size).result()

    if vjp is not None:

        def fwd() -> Any:
            return vjp(f, x)  # (value, vjp_fn): the trace

        def bwd(state: Any) -> Any:
            return state[1](1.0)  # the pullback

        return Case(workload, "tapegrad-grad", size, fwd, bwd, result, "tapegrad (grad)")
    if grad is not None:
        return Case(
            workload, "tapegrad-grad", size, lambda: grad(f)(x), None, result, "tapegrad (grad)"
        )
    # tapegrad.grad not written yet: Vars by hand and backward(), clearly labelled.
    case = _tapegrad(workload, size)
    case.lib = "tapegrad-grad"
    case.label = "tapegrad (no grad yet: Value + backward)"
    return case


def _micrograd(workload: str, size: int) -> Case:
    try:
        from micrograd.engine import Value
    except ImportError as exc:
        raise Unavailable(f"micrograd is not installed ({exc})") from None
    # micrograd's backward() sorts the graph recursively: one frame per node
    # along the longest path. CPython 3.11 runs Python-to-Python recursion
    # without the C stack, so a high limit is safe; we raise it rather than
    # report micrograd as unable to run a 1,000-term Rosenbrock.
    # The limit is raised only while micrograd's backward() runs, and restored.
    depth = n_ops(workload, size) if workload in ("rosenbrock", "chain", "fan") else 10_000
    limit = 2 * depth + 1000
    case = _value_api(workload, size, "micrograd", Value, 0)
    if case.backward is not None:
        case.backward = _with_recursion_limit(case.backward, limit)
    case.result = _with_recursion_limit(case.result, limit)
    case.notes.append(f"recursion limit raised to {limit} for backward()")
    return case


def _with_recursion_limit(fn: Callable[..., Any], limit: int) -> Callable[..., Any]:
    """``fn`` run with ``sys.getrecursionlimit()`` at least ``limit``, restored after."""

    def wrapped(*args: Any) -> Any:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, limit))
        try:
            return fn(*args)
        finally:
            sys.setrecursionlimit(old)

    return wrapped


# ---------------------------------------------------------------------------
# PyTorch: scalar float64 tensors
# ---------------------------------------------------------------------------


def _torch(workload: str, size: int) -> Case:
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"torch is not installed ({exc})") from None
    torch.set_num_threads(1)  # scalar ops: threads only add noise on 2 cores
    f64 = torch.float64

    def leaf(v: float) -> Any:
        return torch.tensor(v, dtype=f64, requires_grad=True)

    def const(v: float) -> Any:
        return torch.tensor(v, dtype=f64)

    def grads(ts: Sequence[Any]) -> list[float]:
        return [0.0 if t.grad is None else float(t.grad.item()) for t in ts]

    if workload == "mlp":
        xs, ys, flat = _mlp_data(size)

        def build() -> tuple[list[Any], Any]:
            params = [leaf(p) for p in flat]
            return params, wl.mlp_unflatten(params)

        params, layers = build()

        def mlp_loss(params: list[Any], layers: Any) -> Any:
            inputs = [[const(a), const(b)] for a, b in xs]
            return wl.svm_loss(layers, params, inputs, ys, torch.relu)

        def mlp_backward(loss: Any, params: list[Any] = params) -> None:
            for p in params:  # optimizer.zero_grad(set_to_none=True)
                p.grad = None
            loss.backward()

        def mlp_result() -> tuple[float, list[float]]:
            params, layers = build()
            loss = mlp_loss(params, layers)
            mlp_backward(loss, params)
            return float(loss.item()), grads(params)

        return Case(
            workload, "torch", size, lambda: mlp_loss(params, layers), mlp_backward, mlp_result
        )

    if workload == "rosenbrock":
        x = wl.rosenbrock_point(size)

        def rosen_fwd() -> tuple[Any, list[Any]]:
            ts = [leaf(v) for v in x]
            return wl.rosenbrock(ts), ts

        def rosen_bwd(state: tuple[Any, list[Any]]) -> None:
            state[0].backward()

        def rosen_result() -> tuple[float, list[float]]:
            out, ts = rosen_fwd()
            out.backward()
            return float(out.item()), grads(ts)

        return Case(workload, "torch", size, rosen_fwd, rosen_bwd, rosen_result)

    if workload == "chain":
        steps = wl.chain_steps(size)
        x = leaf(0.5)

        def chain_result() -> tuple[float, list[float]]:
            x = leaf(0.5)
            y = wl.chain(x, steps)
            y.backward()
            return float(y.item()), grads([x])

        return Case(
            workload, "torch", size, lambda: wl.chain(x, steps), _call_backward, chain_result
        )

    x0, wfloats = wl.fan_inputs(size)
    xt = leaf(x0)
    wts = [leaf(w) for w in wfloats]

    def fan_result() -> tuple[float, list[float]]:
        x = leaf(x0)
        ws = [leaf(w) for w in wfloats]
        s = wl.fan(x, ws)
        s.backward()
        return float(s.item()), grads([x, *ws])

    return Case(workload, "torch", size, lambda: wl.fan(xt, wts), _call_backward, fan_result)


# ---------------------------------------------------------------------------
# Functional libraries: f(params) -> scalar, differentiated with a vjp
# ---------------------------------------------------------------------------


def _functional_fn(
    workload: str, size: int, relu: Callable[[Any], Any]
) -> tuple[Callable[[Any], Any], list[float]]:
    """``f(list of scalars) -> scalar`` and the point, for autograd and JAX."""
    if workload == "mlp":
        xs, ys, flat = _mlp_data(size)

        def mlp(ps: Sequence[Any]) -> Any:
            return wl.svm_loss(wl.mlp_unflatten(ps), ps, xs, ys, relu)

        return mlp, flat
    if workload == "rosenbrock":
        return wl.rosenbrock, wl.rosenbrock_point(size)
    if workload == "chain":
        steps = wl.chain_steps(size)
        return (lambda ps: wl.chain(ps[0], steps)), [0.5]
    x0, ws = wl.fan_inputs(size)
    return (lambda ps: wl.fan(ps[0], ps[1:])), [x0, *ws]


def _autograd(workload: str, size: int) -> Case:
    try:
        import autograd
        import autograd.numpy as anp
        import numpy as np
    except ImportError as exc:
        raise Unavailable(f"autograd is not installed ({exc})") from None
    if workload == "fan":
        # One array of 10^5 + 1 inputs, unpacked into scalars: each x[i] is a
        # primitive whose vjp allocates a full-size zero array (10^10 writes).
        raise Unavailable("unpacking 10^5 scalars from one autograd array is quadratic")
    f, point = _functional_fn(workload, size, lambda v: anp.maximum(v, 0.0))
    n = len(point)

    def g(arr: Any) -> Any:
        return f([arr[i] for i in range(n)])  # unpacked once; f uses scalars

    x = np.array(point, dtype=np.float64)
    make_vjp = autograd.make_vjp

    def fwd() -> Any:
        return make_vjp(g)(x)  # (vjp_fn, value)

    def bwd(state: Any) -> Any:
        return state[0](1.0)

    def result() -> tuple[float, list[float]]:
        vjp_fn, value = make_vjp(g)(x)
        return float(value), [float(v) for v in vjp_fn(1.0)]

    case = Case(workload, "autograd", size, fwd, bwd, result)
    case.notes.append("inputs: one float64 array, unpacked into scalars inside f")
    return case


def _import_jax() -> Any:
    try:
        import jax
    except ImportError as exc:
        raise Unavailable(f"jax is not installed ({exc})") from None
    jax.config.update("jax_enable_x64", True)  # float64, like every other column
    jax.config.update("jax_platforms", "cpu")
    return jax


def _jax(workload: str, size: int) -> Case:
    jax = _import_jax()
    import jax.numpy as jnp

    f, point = _functional_fn(workload, size, lambda v: jnp.maximum(v, 0.0))
    x = [jnp.asarray(v, dtype=jnp.float64) for v in point]  # a list: a pytree of scalars
    one = jnp.asarray(1.0, dtype=jnp.float64)

    def fwd() -> Any:
        out, vjp_fn = jax.vjp(f, x)
        out.block_until_ready()
        return out, vjp_fn

    def bwd(state: Any) -> Any:
        return jax.block_until_ready(state[1](one))

    def result() -> tuple[float, list[float]]:
        out, vjp_fn = jax.vjp(f, x)
        (g,) = vjp_fn(one)
        return float(out), [float(v) for v in g]

    return Case(workload, "jax", size, fwd, bwd, result, "jax (eager)")


def _jax_jit(workload: str, size: int) -> Case:
    jax = _import_jax()
    import jax.numpy as jnp

    f, point = _functional_fn(workload, size, lambda v: jnp.maximum(v, 0.0))
    x = [jnp.asarray(v, dtype=jnp.float64) for v in point]
    vg = jax.jit(jax.value_and_grad(f))
    t0 = time.perf_counter()
    jax.block_until_ready(vg(x))  # trace + compile, reported as setup time
    setup = time.perf_counter() - t0

    def fwd() -> Any:
        return jax.block_until_ready(vg(x))

    def result() -> tuple[float, list[float]]:
        value, g = vg(x)
        return float(value), [float(v) for v in g]

    case = Case(workload, "jax-jit", size, fwd, None, result, "jax (jit)", setup_seconds=setup)
    case.notes.append(f"first call (trace + XLA compile): {setup:.2f} s, not in the timings")
    return case


_BUILDERS: dict[str, Callable[[str, int], Case]] = {
    "plain": _plain,
    "plain-grad": _plain_grad,
    "tapegrad": _tapegrad,
    "tapegrad-grad": _tapegrad_grad,
    "tapegrad-dot": _tapegrad_dot,
    "micrograd": _micrograd,
    "torch": _torch,
    "autograd": _autograd,
    "jax": _jax,
    "jax-jit": _jax_jit,
}
