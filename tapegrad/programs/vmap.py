"""``vmap``: one traced program replayed over a batch of inputs, as arrays.

``vmap(f, in_axes)(*args)`` traces ``f`` once, on the first sample, and then
evaluates the program's ops on whole columns of the batch at a time with the
Array API functions of the inputs' namespace (:mod:`tapegrad.programs.arrays`):
numpy, array-api-strict, or torch and CuPy arrays through array-api-compat
(a GPU library computes on the GPU). Per sample that costs a few
nanoseconds per op, where a Python loop of ``f`` costs microseconds.

Guards are evaluated per sample. Samples whose comparisons go the other way
are never computed down the traced branch: ``f`` is traced again at the
first of them, that program is evaluated too, and each sample takes the
results of the program whose guards it satisfies (``where``). A sample that
no program covers (a NaN in a comparison), one where an op's float forward
would raise (``log`` of a negative number: the whole ``vmap`` raises what
``f`` raises), and one with a non-finite result is computed by ``f`` itself.

``f`` receives numpy arrays (and floats) for each sample while it is traced.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tapegrad.programs import dask_blocks
from tapegrad.programs.jit import Cache as _Cache
from tapegrad.programs.jit import signature
from tapegrad.programs.program import Program
from tapegrad.programs.recording import trace_call
from tapegrad.pytree import TreeDef, flatten

__all__ = ["vmap"]

Axes = int | None | Sequence[int | None]


def namespace(x: Any) -> Any:
    """The Array API namespace of an array: its own, or array-api-compat's."""
    get = getattr(x, "__array_namespace__", None)
    if get is not None:
        return get()
    try:
        import array_api_compat  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise TypeError(
            f"vmap: {type(x).__name__} arrays have no __array_namespace__; "
            "install array-api-compat to batch them"
        ) from None
    return array_api_compat.array_namespace(x)


def _is_array(x: Any) -> bool:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(x, np.ndarray):
        return True
    return hasattr(x, "__array_namespace__") or (
        hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (int, float))
    )


def vmap(
    f: Callable[..., Any], in_axes: Axes = 0, out_axes: int = 0, *, max_cache: int = 64
) -> Callable[..., Any]:
    """``f`` mapped over a batch axis of array arguments, by replaying one trace on arrays.

    ``in_axes`` gives the batch axis of each positional argument (``None``:
    the same for every sample), or one int for all; keyword arguments are not
    batched. Results are arrays stacked along ``out_axes``. Programs are kept
    for later calls with samples of the same structure (at most
    ``max_cache``, as :func:`tapegrad.jit`).

    >>> import numpy as np, tapegrad as tg
    >>> f = tg.vmap(tg.value_and_grad(lambda x, c: c * x[0] * x[1]), in_axes=(0, None))
    >>> values, grads = f(np.array([[1.0, 2.0], [3.0, 4.0]]), 10.0)
    >>> values
    array([ 20., 120.])
    >>> grads
    array([[20., 10.],
           [40., 30.]])
    """
    if not callable(f):
        raise TypeError(f"vmap: f must be callable, got {type(f).__name__} {f!r}")
    if not isinstance(out_axes, int) or isinstance(out_axes, bool):
        raise TypeError(f"vmap: out_axes must be an int, got {out_axes!r}")

    cache = _Cache(max_cache)

    @functools.wraps(f)
    def batched(*args: Any, **kwargs: Any) -> Any:
        axes = _axes(in_axes, len(args))
        if any(dask_blocks.is_dask(x) for x in args):  # lazily, block by block
            return dask_blocks.map_over_blocks(f, args, kwargs, axes, out_axes, max_cache)
        xp, size, moved = _batch(args, axes)
        np = sys.modules.get("numpy")
        quiet = np.errstate(all="ignore") if np is not None else contextlib.nullcontext()
        with quiet:  # samples of other branches may divide by 0 before they are masked
            return _Batch(f, args, kwargs, axes, moved, xp, size).run(out_axes, cache)

    return batched


def _axes(in_axes: Axes, nargs: int) -> list[int | None]:
    if in_axes is None or isinstance(in_axes, int):
        if isinstance(in_axes, bool):
            raise TypeError("vmap: in_axes must be an int, None, or a sequence of them")
        return [in_axes] * nargs
    axes = list(in_axes)
    if len(axes) != nargs:
        raise ValueError(f"vmap: in_axes has {len(axes)} entries for {nargs} positional arguments")
    for a in axes:
        if a is not None and (not isinstance(a, int) or isinstance(a, bool)):
            raise TypeError(f"vmap: in_axes entries must be ints or None, got {a!r}")
    return axes


def _batch(args: tuple[Any, ...], axes: list[int | None]) -> tuple[Any, int, list[Any]]:
    """The namespace, the batch size, and the args with their batch axis first."""
    xp = None
    sizes: dict[int, int] = {}
    moved: list[Any] = []
    for k, (x, axis) in enumerate(zip(args, axes)):
        if axis is None:
            moved.append(x)
            continue
        if not _is_array(x):
            raise TypeError(
                f"vmap: argument {k} is batched (in_axes {axis}) but is a {type(x).__name__}, "
                "not an array"
            )
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(
                f"vmap: argument {k} has {x.ndim} axes, in_axes {axis} is out of range"
            )
        ns = namespace(x)
        xp = ns if xp is None else xp
        axis %= x.ndim
        perm = (axis, *(d for d in range(x.ndim) if d != axis))
        moved.append(xp.permute_dims(xp.asarray(x, dtype=xp.float64), perm))
        sizes[k] = int(x.shape[axis])
    if not sizes:
        raise ValueError("vmap: no argument is batched (every in_axes is None)")
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"argument {k}: {n}" for k, n in sizes.items())
        raise ValueError(f"vmap: batched arguments have different lengths ({listed})")
    if 0 in sizes.values():
        raise ValueError(
            "vmap: the batch is empty (length 0 along in_axes): there is no sample to "
            "trace f with, so the shape of its results is unknown"
        )
    return xp, next(iter(sizes.values())), moved


class _Batch:
    """One call of a vmapped function: the programs traced for it, and their results."""

    def __init__(
        self,
        f: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        axes: list[int | None],
        moved: list[Any],
        xp: Any,
        size: int,
    ) -> None:
        self.f, self.args, self.kwargs, self.axes = f, args, kwargs, axes
        self.moved, self.xp, self.size = moved, xp, size
        self.columns = self._columns()

    def _columns(self) -> list[Any]:
        """Each flat leaf of one sample's arguments: a column of the batch, or the leaf."""
        xp = self.xp
        columns: list[Any] = []
        for x, axis in zip(self.moved, self.axes):
            if axis is None:
                leaves, _ = flatten(x, "vmap: argument", static=True)
                columns.extend(leaves)
            else:
                flat = xp.reshape(x, (self.size, -1))
                if int(flat.shape[1]) > 1:
                    # Sample-major to column-major, one copy: the ops then read
                    # contiguous columns instead of strided ones (W4, 10^4
                    # samples of 10: 1.15 ms a call against 1.19 ms, 3 alternating runs).
                    flat = xp.reshape(
                        xp.reshape(xp.permute_dims(flat, (1, 0)), (-1,)), (-1, self.size)
                    )
                    columns.extend(flat[j, :] for j in range(int(flat.shape[0])))
                else:
                    columns.append(flat[:, 0])
        leaves, _ = flatten(self.kwargs, "vmap: keyword argument", static=True)
        return columns + leaves

    def sample(self, i: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of sample ``i``, as ``f`` sees them (numpy arrays, floats)."""
        import numpy as np

        args = []
        for x, axis in zip(self.moved, self.axes):
            if axis is None:
                args.append(x)
            else:
                row = _to_floats(self.xp, x[i, ...])
                shape = tuple(int(d) for d in x.shape[1:])  # a 0-d sample is a float
                args.append(np.asarray(row, dtype=np.float64).reshape(shape) if shape else row[0])
        return tuple(args), self.kwargs

    def run(self, out_axes: int, cache: _Cache) -> Any:
        xp = self.xp
        covered = xp.zeros((self.size,), dtype=xp.bool)
        results: list[Any] | None = None
        out_tree: TreeDef | None = None
        eager: list[int] = []
        key, _ = signature(*self.sample(0))
        known = cache.get(key) if key is not None else []
        while True:
            todo = _first_false(xp, covered)
            if todo is None:
                break
            traced_here = not known
            if known:
                program = known.pop(0)
            else:
                program = Program(trace_call(self.f, *self.sample(todo)))
                if program.captures_vars or program.read_values:
                    raise TypeError(
                        "vmap: f computes with Vars it closes over or reads a traced value "
                        "(.data), which cannot be computed for a batch; pass Vars as "
                        "arguments and take constants with tapegrad.stop_gradient"
                    )
                if key is not None and program.replayable:
                    cache.add(key, program)
            if out_tree is None:
                out_tree = program.out_tree
            elif program.out_tree != out_tree:
                raise ValueError("vmap: f returns a different structure for different samples")
            outputs, holds, bad = _evaluate(program, xp, self.columns, self.size)
            fresh = holds & ~covered
            if not bool(xp.any(fresh)):
                if not traced_here:
                    continue  # a kept branch that no sample of this batch takes
                eager.append(todo)  # the traced sample fails its own guards: a NaN
                covered = _set(xp, covered, todo)
                continue
            results = outputs if results is None else _merge(xp, fresh, outputs, results)
            covered = covered | fresh
            eager += _indices(xp, fresh & bad)
        if out_tree is None:  # cannot happen: a batch has a sample, and it was traced
            raise ValueError("vmap: an empty batch")
        if results is not None:
            eager += _indices(xp, _nonfinite(xp, results, self.size))
        for i in sorted(set(eager)):  # f itself: it raises, or gives the reference values
            args, kwargs = self.sample(i)
            flat, _ = flatten(self.f(*args, **kwargs), "vmap: output of f", static=True)
            row = _to_columns(xp, flat, self.size)
            mask = xp.arange(self.size) == i
            results = row if results is None else _merge(xp, mask, row, results)
        if results is None:
            raise ValueError("vmap: an empty batch")
        return _unflatten_batched(xp, out_tree, results, self.size, out_axes)


def _evaluate(
    program: Program, xp: Any, columns: list[Any], size: int
) -> tuple[list[Any], Any, Any]:
    """The program on the whole batch: (outputs, where the guards hold, where an op raises)."""
    inputs = [columns[k] for k in program.positions]
    inputs = [float(x) if isinstance(x, (int, float)) else x for x in inputs]
    batched = {n for n, x in enumerate(inputs, start=1) if not isinstance(x, float)}
    run = program.array_function(xp, frozenset(batched))
    holds = xp.ones((size,), dtype=xp.bool)
    bad = xp.zeros((size,), dtype=xp.bool)

    def elementwise(fn: Callable[..., float], *arrays: Any) -> Any:
        return _elementwise(xp, fn, list(arrays), size)

    outputs, holds, bad = run(inputs, xp, holds, bad, elementwise)
    return _to_columns(xp, outputs, size), holds, bad


def _elementwise(xp: Any, fn: Callable[..., float], arrays: list[Any], size: int) -> Any:
    columns = [_to_floats(xp, xp.broadcast_to(a, (size,))) for a in arrays]
    out = []
    for row in zip(*columns):
        try:
            out.append(float(fn(*row)))
        except Exception:  # f raises there (or this sample takes another branch)
            out.append(float("nan"))  # non-finite: its sample, if it is one, goes to f
    return xp.asarray(out, dtype=xp.float64)


def _to_floats(xp: Any, a: Any) -> list[float]:
    tolist = getattr(a, "tolist", None)
    if tolist is not None:
        flat = xp.reshape(a, (-1,))
        values = flat.tolist()
        return [float(v) for v in values]
    return [float(v) for v in xp.reshape(a, (-1,))]


def _to_columns(xp: Any, outputs: list[Any], size: int) -> list[Any]:
    """Outputs as batch columns: a float becomes a full column; other objects stay."""
    return [
        xp.full((size,), o, dtype=xp.float64) if isinstance(o, (int, float)) else o for o in outputs
    ]


def _merge(xp: Any, mask: Any, new: list[Any], old: list[Any]) -> list[Any]:
    return [xp.where(mask, n, o) if hasattr(n, "shape") else o for n, o in zip(new, old)]


def _nonfinite(xp: Any, results: list[Any], size: int) -> Any:
    mask = xp.zeros((size,), dtype=xp.bool)
    for r in results:
        if hasattr(r, "shape"):
            mask = mask | ~xp.isfinite(r)
    return mask


def _first_false(xp: Any, mask: Any) -> int | None:
    if bool(xp.all(mask)):
        return None
    return int(xp.argmax(xp.astype(~mask, xp.int8)))


def _indices(xp: Any, mask: Any) -> list[int]:
    if not bool(xp.any(mask)):
        return []
    return [i for i, m in enumerate(_to_floats(xp, xp.astype(mask, xp.float64))) if m]


def _set(xp: Any, mask: Any, i: int) -> Any:
    return mask | (xp.arange(int(mask.shape[0])) == i)


def _unflatten_batched(xp: Any, tree: TreeDef, leaves: list[Any], size: int, out_axes: int) -> Any:
    """The output structure with each scalar a column, each array a stacked array."""
    it = iter(leaves)

    def move(a: Any) -> Any:
        if not -a.ndim <= out_axes < a.ndim:
            raise ValueError(
                f"vmap: out_axes {out_axes} is out of range for a result of {a.ndim} axes "
                "(the batch axis included)"
            )
        if out_axes == 0 or (a.ndim == 1 and out_axes == -1):
            return a
        axis = out_axes % a.ndim
        perm = [*range(1, axis + 1), 0, *range(axis + 1, a.ndim)]
        return xp.permute_dims(a, tuple(perm))

    def build(t: TreeDef) -> Any:
        if t.kind == "scalar":
            return move(next(it))
        if t.kind == "static":
            return t.keys[0]
        if t.kind == "array":
            cols = [next(it) for _ in range(t.size)]
            # Stacked as rows and returned transposed (a view): stacking as
            # columns writes strided: 1.31 ms a W4 call against 1.08 ms (3 alternating runs).
            stacked = (
                xp.permute_dims(xp.stack(cols, axis=0), (1, 0))
                if cols
                else xp.zeros((size, 0), dtype=xp.float64)
            )
            return move(xp.reshape(stacked, (size, *t.keys)))
        items = [build(c) for c in t.children]
        if t.kind == "list":
            return items
        if t.kind == "tuple":
            return tuple(items) if t.node_type is None else t.node_type(*items)
        fields = dict(zip(t.keys, items))
        return fields if t.node_type is None else t.node_type(**fields)

    return build(tree)
