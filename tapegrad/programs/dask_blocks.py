"""``vmap`` on Dask arrays: one blockwise map of the numpy program over the input's chunks.

``vmap(f)(x)`` with ``x`` a Dask array returns at once, computing nothing: the
result is a pytree of Dask arrays whose blocks are ``vmap(f)`` on numpy,
applied to each block of the batch (one ``dask.array.blockwise`` layer; each
result array is a cheap selection from it). Chunks along the batch axis are
the input's; a sample's other axes are joined into one chunk, since ``f``
needs the whole sample. Inside each block the numpy path does what it always
does: samples that take another branch are split off and computed by the
program of their own branch.

The results' structure (how many arrays, of which shapes) must be known
before anything is computed. ``f`` is traced at a *probe* sample: one of a
few constant samples (1.0, 0.5, 2.0, ...) at which ``f`` does not raise; a
function's structure cannot depend on the sample (``vmap`` raises if it
does). Only when ``f`` raises at every probe is the first sample of the
batch computed to trace it there.

The block function is a small picklable object holding ``f``: on a
``distributed`` cluster each worker process unpickles it (``f`` by value
through cloudpickle when it is not importable there) and traces its own
programs, once per process. tapegrad imports dask only when it is given a
Dask array (:func:`is_dask` reads ``sys.modules``).
"""

from __future__ import annotations

import dataclasses
import importlib
import operator
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["is_dask", "map_over_blocks"]

# Probe samples, in order: f's results' structure is taken at the first that f accepts.
PROBES = (1.0, 0.5, 2.0, 0.25, 3.0, -0.5, -1.0, 0.0)


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a Dask array (without importing dask: it is imported if ``x`` is one)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(x, module.Array)


# Per worker process: the vmapped function of each block program, by token.
_PROGRAMS: OrderedDict[str, threading.local] = OrderedDict()
_PROGRAMS_LOCK = threading.Lock()
_KEPT = 32


class BlockProgram:
    """``vmap(f)`` on one block of the batch, flattened to a tuple of numpy arrays.

    Picklable: it pickles ``f`` and the arguments that are the same for every
    block, not the programs traced from them; each process (and each thread
    of it, as dask runs blocks in threads) traces its own.
    """

    def __init__(
        self,
        f: Callable[..., Any],
        axes: list[int | None],
        fixed: dict[int, Any],
        kwargs: dict[str, Any],
        max_cache: int,
        vmap: Callable[..., Callable[..., Any]],
    ) -> None:
        self.f, self.axes, self.fixed, self.kwargs = f, axes, fixed, kwargs
        self.max_cache = max_cache
        # tapegrad.vmap itself, handed in (it pickles by reference): this
        # module is imported by vmap's module and does not import it back.
        self.vmap = vmap
        self.token = uuid.uuid4().hex

    def __dask_tokenize__(self) -> str:
        return self.token

    def vmapped(self) -> Callable[..., Any]:
        """This thread's ``vmap(f)`` (traced once per process and thread)."""
        with _PROGRAMS_LOCK:
            local = _PROGRAMS.get(self.token)
            if local is None:
                local = _PROGRAMS[self.token] = threading.local()
                while len(_PROGRAMS) > _KEPT:
                    _PROGRAMS.popitem(last=False)
            else:
                _PROGRAMS.move_to_end(self.token)
        fn: Callable[..., Any] | None = getattr(local, "fn", None)
        if fn is None:
            fn = local.fn = self.vmap(self.f, in_axes=self.axes, max_cache=self.max_cache)
        return fn

    def results(self, *blocks: Any) -> Any:
        """``vmap(f)`` on these blocks (batch axis first), as ``f``'s structure."""
        blocks_left = iter(blocks)
        args = [
            self.fixed[k] if axis is None else next(blocks_left) for k, axis in enumerate(self.axes)
        ]
        return self.vmapped()(*args, **self.kwargs)

    def __call__(self, *blocks: Any) -> tuple[Any, ...]:
        arrays, _ = _leaves(self.results(*blocks))
        return tuple(arrays)


def map_over_blocks(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    axes: list[int | None],
    out_axes: int,
    max_cache: int,
    vmap: Callable[..., Callable[..., Any]],
) -> Any:
    """``vmap(f, axes, out_axes)(*args, **kwargs)`` as lazy Dask arrays (see the module).

    ``vmap`` is :func:`tapegrad.vmap`, which each block runs on numpy arrays.
    """
    # Typed as Any on purpose: dask is optional, so mypy may not see it at all.
    dask: Any = importlib.import_module("dask")
    da: Any = importlib.import_module("dask.array")
    np: Any = importlib.import_module("numpy")

    batched: list[Any] = []  # the batched arguments, batch axis first, as Dask arrays
    fixed: dict[int, Any] = {}
    chunks: tuple[int, ...] | None = None
    size: int | None = None
    for k, (x, axis) in enumerate(zip(args, axes)):
        if axis is None:
            if is_dask(x):
                raise TypeError(
                    f"vmap: argument {k} is a Dask array with in_axes None; an argument "
                    "that is the same for every sample must be a number or a numpy array"
                )
            fixed[k] = x
            continue
        ndim = len(getattr(x, "shape", ()))
        if not hasattr(x, "shape") or not -ndim <= axis < ndim:
            raise ValueError(f"vmap: argument {k} has {ndim} axes, in_axes {axis} is out of range")
        if is_dask(x):
            x = da.moveaxis(x, axis, 0).astype(np.float64)
            if any(c != c for c in x.chunks[0]):
                raise ValueError(
                    f"vmap: argument {k} has chunks of unknown size; call its "
                    "compute_chunk_sizes() first"
                )
            if x.ndim > 1:  # f needs whole samples: one chunk across a sample's axes
                x = x.rechunk({d: -1 for d in range(1, x.ndim)})
            if chunks is None:
                chunks = x.chunks[0]
        else:
            x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
        if size is not None and int(x.shape[0]) != size:
            raise ValueError(
                f"vmap: batched arguments have different lengths ({size} and {int(x.shape[0])})"
            )
        size = int(x.shape[0])
        batched.append(x)
    if chunks is None or size is None:
        raise TypeError("vmap: no batched argument is a Dask array")
    if size == 0:
        raise ValueError(
            "vmap: the batch is empty (length 0 along in_axes): there is no sample to "
            "trace f with, so the shape of its results is unknown"
        )
    # Every batched argument in the first Dask argument's chunks along the batch.
    batched = [
        x.rechunk({0: chunks}) if is_dask(x) else da.from_array(x, chunks=(chunks, *x.shape[1:]))
        for x in batched
    ]
    block_axes = [None if axis is None else 0 for axis in axes]
    program = BlockProgram(f, block_axes, fixed, kwargs, max_cache, vmap)
    structure = _probe(program, batched, dask, np)
    arrays, rebuild = _leaves(structure)

    token = program.token
    letters = iter("cdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    indexed: list[Any] = []
    for x in batched:
        indexed += [x, "b" + "".join(next(letters) for _ in range(x.ndim - 1))]
    blocks = da.blockwise(
        program,
        "b",
        *indexed,
        concatenate=True,
        name=f"vmap-{token}",
        meta=np.empty((0,), dtype=object),
    )
    results = []
    for k, a in enumerate(arrays):
        new = "CDEFGHIJKLMNOPQRSTUVWXYZ"[: a.ndim - 1]  # a result's axes after the batch
        leaf = da.blockwise(
            operator.itemgetter(k),
            "b" + new,
            blocks,
            "b",
            new_axes=dict(zip(new, a.shape[1:])),
            name=f"vmap-{token}-{k}",
            meta=np.empty((0,) * a.ndim, dtype=np.float64),
        )
        results.append(_move(da, leaf, out_axes))
    return rebuild(results)


def _probe(program: BlockProgram, batched: list[Any], dask: Any, np: Any) -> Any:
    """``f``'s results at one probe sample (no block computed), or at the batch's first."""
    for value in PROBES:
        sample = [np.full((1, *x.shape[1:]), value) for x in batched]
        try:
            return program.results(*sample)
        except Exception:  # f raises there: try the next probe
            continue
    first = dask.compute(*[x[:1] for x in batched])  # f raised at every probe
    return program.results(*first)


def _leaves(tree: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """The arrays of a vmap result (numpy or Dask), and how to rebuild the structure."""
    found: list[Any] = []

    def walk(t: Any) -> Callable[[list[Any]], Any]:
        if hasattr(t, "shape") and hasattr(t, "dtype"):
            k = len(found)
            found.append(t)
            return lambda out: out[k]
        if isinstance(t, tuple) and hasattr(type(t), "_fields"):
            parts = [walk(c) for c in t]
            cls = type(t)
            return lambda out: cls(*(p(out) for p in parts))
        if isinstance(t, (list, tuple)):
            parts = [walk(c) for c in t]
            kind = type(t)
            return lambda out: kind(p(out) for p in parts)
        if isinstance(t, dict):
            items = [(key, walk(c)) for key, c in t.items()]
            return lambda out: {key: p(out) for key, p in items}
        if dataclasses.is_dataclass(t) and not isinstance(t, type):
            fields = [(f.name, walk(getattr(t, f.name))) for f in dataclasses.fields(t)]
            dc = type(t)
            return lambda out: dc(**{name: p(out) for name, p in fields})
        return lambda out: t  # a fixed result (a string, an int): the same for every block

    rebuild = walk(tree)
    return found, rebuild


def _move(da: Any, a: Any, out_axes: int) -> Any:
    """The batch axis (first) moved to ``out_axes``, as vmap's numpy path places it."""
    if not -a.ndim <= out_axes < a.ndim:
        raise ValueError(
            f"vmap: out_axes {out_axes} is out of range for a result of {a.ndim} axes "
            "(the batch axis included)"
        )
    return a if out_axes in (0, -a.ndim) else da.moveaxis(a, 0, out_axes)
