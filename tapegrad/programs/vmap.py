"""``vmap``: one traced program replayed over a batch of inputs, as arrays.

``vmap(f, in_axes)(*args)`` traces ``f`` once, on the first sample, and then
evaluates the program's ops on whole columns of the batch at a time with the
Array API functions of the inputs' namespace (:mod:`tapegrad.programs.arrays`):
numpy, array-api-strict, or torch and CuPy arrays through array-api-compat
(a GPU library computes on the GPU). Per sample that costs a few
nanoseconds per op, where a Python loop of ``f`` costs microseconds. A numpy
batch of at least ``2 * BLOCK`` samples is computed block by block, so that a block's
columns stay in the CPU's caches (``_evaluate_blocks``); other namespaces
compute the whole batch at once.

Guards are evaluated per sample. Samples whose comparisons go the other way
are never computed down the traced branch: ``f`` is traced again at the
first of them, that program is evaluated too, and each sample takes the
results of the program whose guards it satisfies (``where``). A sample that
no program covers (a NaN in a comparison), one where an op's float forward
would raise (``log`` of a negative number: the whole ``vmap`` raises what
``f`` raises), and one with a non-finite result is computed by ``f`` itself.

When replaying a program would not give ``f``'s answer, ``f`` runs on each
sample (a loop), and the results are stacked the same way:

* the arguments hold Vars (``grad`` of a function that calls a vmapped one,
  ``vmap(vmap(f))``, ``jit(vmap(f))``: the outer transform passes Vars), or
  ``f`` computes with a Var it closes over: the loop's results are arrays of
  Vars, which carry the derivatives;
* a value left the tape as Python data while ``f`` was traced (a route:
  ``float``, ``format``, ``.data`` ...; see :mod:`tapegrad.context`), with a
  warning naming the route and the line;
* ``f`` takes a new branch at nearly every sample (``max(0.0, s)`` with
  Python's ``max``): tracing stops, with a warning naming the fix.

``in_axes`` is an int, None, or a pytree prefix of the positional arguments
(tuples, lists and dicts of them), as in JAX; keyword arguments are mapped
along their axis 0. ``f`` receives numpy arrays (and floats) for each sample.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import numbers
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from tapegrad.handle import ConversionError, Handle
from tapegrad.programs import dask_blocks
from tapegrad.programs.cache import Cache, signature
from tapegrad.programs.program import Program
from tapegrad.programs.recording import Traced, trace_call
from tapegrad.pytree import SCALAR, TreeDef, flatten, is_scalar

__all__ = ["vmap"]

# An int, None, or a tuple, list or dict of axes (a pytree prefix of the arguments).
Axes = Any

# Tracing stops when, after this many programs traced in one call, they have
# cost more time (trace, compile, batch evaluation) than a loop of f would
# have taken for the samples they cover: f then branches per sample (Python's
# max per unit), and a loop is the faster way to f's answers.
BRANCHES_CHECKED_AFTER = 8

# Samples per block when a numpy batch is computed block by block (_evaluate_blocks);
# 0: the whole batch at once. A batch of at least two blocks is cut into blocks.
# W4 (benchmarks/vmap_blocks.py, vmap / hand-fused numpy, medians of 40 paired
# ABBA rounds): at 10^6 samples 1.36 unblocked, 0.52 in blocks of 2^11, 0.47 of
# 2^12, 0.47 of 2^13, 0.53 of 2^14 (2.9x faster in blocks of 2^13); at 10^4
# samples 0.61 whole, 0.70 cut into blocks of 2^13 (hence two blocks at least).
BLOCK = 2**13

# The most bytes of output columns a vmapped function holds between calls
# (_State.keep), a cap on the memory it keeps: 16 MiB is 10^5 samples of 20 outputs.
KEEP_BYTES = 16 * 2**20

_ROUTE_WARNING = (
    "vmap({name}): while {name} was traced, a traced value reached Python by {route} "
    "at {where}, so its program cannot stand for other samples: {name} runs on each "
    "sample (a loop). tapegrad.stop_gradient(x) is the recorded way to use a value as "
    "a constant, tapegrad.math the recorded math."
)
_SOMEWHERE = "a line of f not recorded"
_BRANCH_WARNING = (
    "vmap({name}): {name} takes a new branch at nearly every sample ({traced} programs "
    "for {covered} samples cost more than a loop would), so tracing it stops: {name} runs "
    "on each remaining sample (a loop), and on every sample of later calls of this "
    "structure. A comparison per unit (Python's max(0.0, s)) is the usual cause: "
    "tapegrad.math.relu(s) or tapegrad.math.maximum(a, b) compute it without a branch."
)


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


def _is_int(x: Any) -> bool:
    """An int axis: a Python or numpy integer, not a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)  # numpy's bool_ is no int


def vmap(
    f: Callable[..., Any], in_axes: Axes = 0, out_axes: int = 0, *, max_cache: int = 64
) -> Callable[..., Any]:
    """``f`` mapped over a batch axis of array arguments, by replaying one trace on arrays.

    ``in_axes`` gives the batch axis of each positional argument (``None``:
    the same for every sample): one int or None for all of them, or a tuple
    (or list) with an entry per positional argument, each entry an int, None,
    or a tuple, list or dict matching that argument's structure (a pytree
    prefix, as in JAX). Keyword arguments are batched along their axis 0.
    Results are arrays stacked along ``out_axes``. Programs are kept for later
    calls with samples of the same structure (at most ``max_cache``, as
    :func:`tapegrad.jit`). Results never share memory with the arguments.
    The vmapped function holds its last call's output columns (numpy arrays,
    at most 16 MiB) until its next call, which keeps the allocator from
    giving that memory back to the system between calls.

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
    if not _is_int(out_axes):
        raise TypeError(f"vmap: out_axes must be an int, got {out_axes!r}")
    axes = _checked_in_axes(in_axes)
    out_axis = int(out_axes)
    cache = Cache(max_cache)
    state = _State(getattr(f, "__name__", "f"))

    @functools.wraps(f)
    def batched(*args: Any, **kwargs: Any) -> Any:
        if any(dask_blocks.is_dask(x) for x in (*args, *kwargs.values())):
            # lazily, block by block
            flat = _dask_axes(axes, args, kwargs)
            return dask_blocks.map_over_blocks(f, args, kwargs, flat, out_axis, max_cache, vmap)
        bound = _Binder().bind(axes, args, kwargs)
        np = sys.modules.get("numpy")
        quiet = np.errstate(all="ignore") if np is not None else contextlib.nullcontext()
        with quiet:  # samples of other branches may divide by 0 before they are masked
            return _Batch(f, bound, state).run(out_axis, cache)

    batched.cache = cache  # type: ignore[attr-defined]
    # jit(vmap(f)) is vmap(f): its programs are already replayed (see tapegrad.jit).
    batched.replays_programs = True  # type: ignore[attr-defined]
    return batched


def _dask_axes(axes: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[int | None]:
    """One batch axis (or None) per positional argument, as the Dask path takes them.

    The Dask path maps whole positional arguments; keyword arguments (batched
    along axis 0 elsewhere) and in_axes nested inside an argument are refused
    by name rather than mapped differently.
    """
    if kwargs:
        raise TypeError(
            "vmap on Dask arrays: pass the arguments positionally; keyword arguments "
            f"({', '.join(sorted(kwargs))}) are not mapped over Dask blocks"
        )
    if axes is None or isinstance(axes, int):
        return [axes] * len(args)
    flat = isinstance(axes, tuple) and all(a is None or isinstance(a, int) for a in axes)
    if flat and len(axes) == len(args):
        return list(axes)
    raise ValueError(
        f"vmap on Dask arrays: in_axes must be an int, None, or one int or None per "
        f"positional argument ({len(args)} here), got {axes!r}"
    )


class _State:
    """What a vmapped function remembers between calls besides its programs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.warned: set[str] = set()
        self.branchy: set[Any] = set()  # signatures at which tracing stopped
        self.canonicals: dict[TreeDef, TreeDef] = {}  # output structures, as _canonical gives
        self.kept: list[Any] = []  # the last call's output columns (see keep)

    def keep(self, xp: Any, columns: list[Any], size: int) -> None:
        """Hold a call's output columns until the next call (numpy, at most ``KEEP_BYTES``).

        When a call returns, every array it made is freed at once, and glibc's
        malloc gives the top of its heap back to the system when more than its
        trim threshold is free there: the next call then faults each page of
        its temporaries in again. The columns are among the last arrays a
        call makes, so holding them keeps the heap below them from being
        trimmed: W4 (10^4 samples) took 613 page faults a call, and 4 with
        them held; 0.67x the time a call (median of after/before, IQR
        0.56-0.75, benchmarks/versions.py, 300 paired rounds of 3 calls,
        against the same code without keep). With an allocator that does not
        trim so, it may gain nothing, and costs only the memory held.
        """
        # A GPU array library manages its own memory; 8 bytes is the widest item
        # of a column (float64, int64), so the size is an upper bound.
        small = 8 * size * len(columns) <= KEEP_BYTES
        self.kept = columns if small and xp is sys.modules.get("numpy") else []

    def canonical(self, tree: TreeDef) -> TreeDef:
        """``_canonical(tree)`` of an output structure, checked; once per structure."""
        try:
            found = self.canonicals.get(tree)
        except TypeError:  # a static leaf that is unhashable
            _check_outputs(tree)
            return _canonical(tree)
        if found is None:
            _check_outputs(tree)
            if len(self.canonicals) > 64:
                self.canonicals.clear()
            found = self.canonicals[tree] = _canonical(tree)
        return found

    def warn(self, template: str, **fields: Any) -> None:
        """Warn once per kind of warning (the first route, the branching)."""
        kind = template[:40]
        if kind not in self.warned:
            self.warned.add(kind)
            message = template.format(name=self.name, **fields)
            warnings.warn(message, RuntimeWarning, stacklevel=5)


def _checked_in_axes(in_axes: Axes) -> Axes:
    """``in_axes`` checked when vmap is created: ints and None in tuples, lists and dicts."""
    if isinstance(in_axes, dict):
        raise TypeError(
            "vmap: in_axes is a dict, but in_axes gives the axes of the positional arguments: "
            "an int, None, or a tuple with an entry per argument; for a dict argument, put "
            "the dict in that entry (in_axes=({'w': None, 'x': 0},))"
        )
    if isinstance(in_axes, list):  # as JAX: a list of entries is read as the tuple
        in_axes = tuple(in_axes)
    return _checked_axes(in_axes, "in_axes")


def _checked_axes(spec: Any, where: str) -> Any:
    if spec is None:
        return None
    if _is_int(spec):
        return int(spec)
    if isinstance(spec, (list, tuple)):
        items = [_checked_axes(s, f"{where}[{k}]") for k, s in enumerate(spec)]
        return items if isinstance(spec, list) else tuple(items)
    if isinstance(spec, dict):
        return {k: _checked_axes(v, f"{where}[{k!r}]") for k, v in spec.items()}
    raise TypeError(
        f"vmap: {where} must be an int, None, or a tuple, list or dict of them, "
        f"got {type(spec).__name__} {spec!r}"
    )


class _Batched:
    """A batched array in the arguments: the array with its batch axis first."""

    __slots__ = ("array", "xp", "shape", "objects")

    def __init__(self, array: Any, xp: Any, shape: tuple[int, ...], objects: bool) -> None:
        self.array, self.xp, self.shape, self.objects = array, xp, shape, objects

    def sample(self, i: int) -> Any:
        """Sample ``i`` as ``f`` sees it: a float64 numpy array or a float (Vars as they are)."""
        if self.objects:
            return self.array[i]
        import numpy as np

        if self.xp is np:  # a copy: f may write to its sample
            return np.array(self.array[i]) if self.shape else float(self.array[i])
        row = _to_floats(self.xp, self.array[i, ...])
        return np.asarray(row, dtype=np.float64).reshape(self.shape) if self.shape else row[0]

    def columns(self, size: int) -> list[Any]:
        """The sample's scalars, each a column of the batch, in the order flatten gives them."""
        xp = self.xp
        flat = xp.reshape(self.array, (size, -1))
        width = int(flat.shape[1])
        # Strided views of the batch, not a column-major copy of it: W4 0.96x
        # the time a call (median of after/before, IQR 0.85-1.13,
        # benchmarks/versions.py, 300 paired rounds of 3 calls); 12.8 against
        # 16.9 ms at 10^4 samples of 100 (pyperf, paired, when the copy was
        # kept). Results that are input columns are copied instead (_unaliased),
        # so none shares memory with the caller's array.
        return [flat[:, j] for j in range(width)]


class _Bound:
    """The arguments of one call with every batched array replaced by a ``_Batched``."""

    def __init__(self, tree: Any, xp: Any, size: int, has_vars: bool, fixed: list[bool]) -> None:
        self.tree, self.xp, self.size, self.has_vars = tree, xp, size, has_vars
        self.fixed = fixed  # per positional argument: in_axes None (nothing batched in it)

    def sample(self, i: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of sample ``i``, as ``f`` sees them."""
        args, kwargs = self.tree
        args = tuple(
            a if fixed else _map_batched(a, lambda b: b.sample(i))
            for a, fixed in zip(args, self.fixed)
        )
        if kwargs:
            kwargs = {k: _map_batched(v, lambda b: b.sample(i)) for k, v in kwargs.items()}
        return args, kwargs

    def columns(self) -> list[Any]:
        """Each flat leaf of one sample's arguments: a column of the batch, or the leaf."""
        columns: list[Any] = []
        _collect_columns(self.tree, self.size, columns)
        return columns


def _collect_columns(tree: Any, size: int, columns: list[Any]) -> None:
    """Append the columns of ``tree`` in the order ``flatten`` gives a sample's leaves.

    A function, not a recursive closure: such a closure is a reference cycle,
    which kept each batch's columns alive until the garbage collector ran and
    made building them slower.
    """
    if isinstance(tree, _Batched):
        columns.extend(tree.columns(size))
    elif tree.__class__ is float:
        columns.append(tree)
    elif isinstance(tree, (list, tuple)):
        for child in tree:
            _collect_columns(child, size, columns)
    elif isinstance(tree, dict):  # in the key order flatten gives (its TreeDef's keys)
        order = flatten(dict.fromkeys(tree), static=True)[1].keys if tree else ()
        for key in order:
            _collect_columns(tree[key], size, columns)
    elif dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        for field in dataclasses.fields(tree):
            _collect_columns(getattr(tree, field.name), size, columns)
    else:  # a scalar, an unbatched array, or a static object (no leaves)
        columns.extend(flatten(tree, "vmap: argument", static=True)[0])


def _rebuild(tree: Any, items: list[Any]) -> Any:
    """A list, tuple, namedtuple or dict (its class and key order kept) with new children."""
    if isinstance(tree, dict):
        new = copy.copy(tree)
        for k, v in zip(list(tree), items):
            new[k] = v
        return new
    if isinstance(tree, tuple):
        return type(tree)(*items) if hasattr(type(tree), "_fields") else tuple(items)
    if type(tree) is list:
        return items
    new = copy.copy(tree)
    new[:] = items
    return new


def _children(tree: Any) -> list[Any] | None:
    """The children of a container argument, or None for a leaf."""
    if isinstance(tree, (list, tuple)):
        return list(tree)
    if isinstance(tree, dict):
        return list(tree.values())
    return None


def _map_batched(tree: Any, fn: Callable[[_Batched], Any]) -> Any:
    """``tree`` with ``fn(b)`` for each ``_Batched`` b in it."""
    if isinstance(tree, _Batched):
        return fn(tree)
    children = _children(tree)
    if children is not None:
        return _rebuild(tree, [_map_batched(c, fn) for c in children])
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        names = [f.name for f in dataclasses.fields(tree) if f.init]
        return dataclasses.replace(tree, **{n: _map_batched(getattr(tree, n), fn) for n in names})
    return tree


def _holds_vars(tree: Any) -> bool:
    """Whether an argument holds a Var (itself, in a container, or in an object array)."""
    if isinstance(tree, Handle):
        return True
    children = _children(tree)
    if children is not None:
        return any(_holds_vars(c) for c in children)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(tree, np.ndarray):
        return tree.dtype == object and any(isinstance(x, Handle) for x in tree.flat)
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return any(_holds_vars(getattr(tree, f.name)) for f in dataclasses.fields(tree))
    return False


class _Binder:
    """Binds ``in_axes`` to the arguments of one call: which arrays are batched, along what."""

    def __init__(self) -> None:
        self.xp: Any = None
        self.sizes: dict[str, int] = {}
        self.has_vars = False

    def bind(self, axes: Axes, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Bound:
        if axes is None or isinstance(axes, int):
            per_arg = [axes] * len(args)
        else:
            per_arg = list(axes)
            if len(per_arg) != len(args):
                raise ValueError(
                    f"vmap: in_axes has {len(per_arg)} entries for {len(args)} positional arguments"
                )
        new_args = tuple(
            self.walk(a, axis, f"argument {k}") for k, (a, axis) in enumerate(zip(args, per_arg))
        )
        # As in JAX, keyword arguments are mapped along their axis 0.
        new_kwargs = {k: self.walk(v, 0, f"keyword argument {k!r}") for k, v in kwargs.items()}
        if not self.sizes:
            raise ValueError("vmap: no argument is batched (every in_axes is None)")
        if len(set(self.sizes.values())) > 1:
            listed = ", ".join(f"{k}: {n}" for k, n in self.sizes.items())
            raise ValueError(f"vmap: batched arguments have different lengths ({listed})")
        size = next(iter(self.sizes.values()))
        if size == 0:
            raise ValueError(
                "vmap: the batch is empty (length 0 along in_axes): there is no sample to "
                "trace f with, so the shape of its results is unknown"
            )
        xp = self.xp
        if self.has_vars:
            import numpy

            xp = numpy  # a loop of f: its results are numpy arrays (of Vars)
        fixed = [axis is None for axis in per_arg]
        return _Bound((new_args, new_kwargs), xp, size, self.has_vars, fixed)

    def walk(self, tree: Any, axis: Axes, path: str) -> Any:
        """``tree`` with the arrays ``axis`` (a prefix of its structure) batches bound."""
        if axis is None:
            self.has_vars = self.has_vars or _holds_vars(tree)
            return tree
        if isinstance(axis, int):
            return self.batch(tree, axis, path)
        if isinstance(axis, (list, tuple)):
            if not isinstance(tree, (list, tuple)) or len(tree) != len(axis):
                raise ValueError(
                    f"vmap: in_axes for {path} is a {type(axis).__name__} of {len(axis)} "
                    f"entries, but {path} is {_described(tree)}"
                )
            items = [self.walk(t, a, f"{path}[{k}]") for k, (t, a) in enumerate(zip(tree, axis))]
            return _rebuild(tree, items)
        if not isinstance(tree, dict) or set(tree) != set(axis):
            raise ValueError(
                f"vmap: in_axes for {path} is a dict with keys {sorted(axis, key=repr)}, "
                f"but {path} is {_described(tree)}"
            )
        return _rebuild(tree, [self.walk(v, axis[k], f"{path}[{k!r}]") for k, v in tree.items()])

    def batch(self, tree: Any, axis: int, path: str) -> Any:
        """Every array in ``tree`` batched along ``axis``."""
        if _is_array(tree):
            return self.array(tree, axis, path)
        children = _children(tree)
        if children is not None:
            return _rebuild(
                tree, [self.batch(c, axis, f"{path}[{k!r}]") for k, c in zip(_keys(tree), children)]
            )
        if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
            names = [f.name for f in dataclasses.fields(tree) if f.init]
            fields = {n: self.batch(getattr(tree, n), axis, f"{path}.{n}") for n in names}
            return dataclasses.replace(tree, **fields)
        if is_scalar(tree) or isinstance(tree, complex):
            raise TypeError(
                f"vmap: {path} is batched (in_axes {axis}) but is a {type(tree).__name__}, "
                "not an array (the leaves of a list are batched each; np.asarray makes "
                "a list of numbers one array)"
            )
        return tree  # None, a str, an object: nothing to batch

    def array(self, x: Any, axis: int, path: str) -> _Batched:
        dtype = x.dtype
        kind = getattr(dtype, "kind", "")
        if kind == "c" or "complex" in str(dtype):
            raise TypeError(
                f"vmap: {path} is a complex array ({dtype}); tapegrad computes with real "
                "numbers: pass its real and imaginary parts (x.real, x.imag) as two arrays"
            )
        if kind and kind not in "fiubO":
            raise TypeError(
                f"vmap: {path} is batched (in_axes {axis}) but is an array of {dtype}, not of "
                "numbers: pass it with in_axes None (the same for every sample)"
            )
        ndim = len(x.shape)
        if not -ndim <= axis < ndim:
            raise ValueError(f"vmap: {path} has {ndim} axes, in_axes {axis} is out of range")
        axis %= ndim
        perm = (axis, *(d for d in range(ndim) if d != axis))
        shape = tuple(int(x.shape[d]) for d in perm[1:])
        self.sizes[path] = int(x.shape[axis])
        if getattr(dtype, "kind", "") == "O" and _holds_vars(x):
            import numpy

            self.has_vars = True
            return _Batched(numpy.transpose(x, perm), numpy, shape, True)
        xp = namespace(x)
        self.xp = xp if self.xp is None else self.xp
        moved = xp.permute_dims(xp.asarray(x, dtype=xp.float64), perm)
        return _Batched(moved, xp, shape, False)


def _keys(tree: Any) -> list[Any]:
    return list(tree) if isinstance(tree, dict) else list(range(len(tree)))


def _described(tree: Any) -> str:
    if isinstance(tree, (list, tuple)):
        return f"a {type(tree).__name__} of {len(tree)}"
    if isinstance(tree, dict):
        return f"a dict with keys {sorted(tree, key=repr)}"
    return f"a {type(tree).__name__}"


def _canonical(tree: TreeDef) -> TreeDef:
    """A structure with 0-d arrays read as scalars (a float and a 0-d array are one output)."""
    if tree.kind == "array" and not tree.keys:
        return SCALAR
    if not tree.children:
        return tree
    children = tuple(_canonical(c) for c in tree.children)
    return TreeDef(tree.kind, children, tree.keys, tree.size, tree.node_type)


def _check_outputs(tree: TreeDef) -> None:
    """Outputs are numbers in lists, tuples, dicts (None allowed): anything else is refused."""
    if tree.kind == "static":
        found = tree.keys[0]
        if found is not None:
            raise TypeError(
                f"vmap: f returns a {type(found).__name__} ({found!r:.60}), which cannot be "
                "stacked over a batch: its outputs must be numbers, arrays, and lists, tuples "
                "and dicts of them"
            )
    for child in tree.children:
        _check_outputs(child)


class _Batch:
    """One call of a vmapped function: the programs traced for it, and their results."""

    def __init__(self, f: Callable[..., Any], bound: _Bound, state: _State) -> None:
        self.f, self.bound, self.state = f, bound, state
        self.xp, self.size = bound.xp, bound.size
        self.out_tree: TreeDef | None = None

    def structure(self, tree: TreeDef) -> None:
        """Check an output structure: allowed, and the same for every sample."""
        if tree == self.out_tree:  # the common case, before the canonical form is built
            return
        tree = self.state.canonical(tree)
        if self.out_tree is None:
            self.out_tree = tree
        elif tree != self.out_tree:
            raise ValueError("vmap: f returns a different structure for different samples")

    def run(self, out_axes: int, cache: Cache) -> Any:
        if self.bound.has_vars:
            results = self.assemble(None, self.rows(range(self.size)))
        else:
            try:
                results = self.replay(cache)
            except _Loop:  # f computes with a Var it closes over
                self.xp = sys.modules["numpy"]
                self.out_tree = None
                results = self.assemble(None, self.rows(range(self.size)))
        if self.out_tree is None:  # cannot happen: a batch has a sample
            raise ValueError("vmap: an empty batch")
        return _unflatten_batched(self.xp, self.out_tree, results, self.size, out_axes)

    def replay(self, cache: Cache) -> list[Any]:
        """The programs of ``f`` over the batch, and ``f`` itself where they do not hold."""
        xp, size = self.xp, self.size
        key, _ = signature(*self.bound.sample(0))
        try:
            hash(key)
        except TypeError:  # an unhashable fixed argument (a config object): no cache
            key = None
        if key is not None and key in self.state.branchy:
            return self.assemble(None, self.rows(range(size)))
        columns = self.bound.columns()
        covered = xp.zeros((size,), dtype=xp.bool)
        results: list[Any] | None = None
        eager: list[int] = []
        rows: dict[int, list[Any]] = {}
        known = cache.get(key) if key is not None else []
        traced = 0
        spent = 0.0  # seconds tracing and evaluating the programs traced in this call
        gained = 0  # the samples they covered
        per_sample: float | None = None  # seconds of one call of f
        while True:
            todo = _first_false(xp, covered)
            if todo is None:
                break
            traced_here = not known
            start = time.perf_counter()
            if known:
                program = known.pop(0)
            else:
                if traced >= BRANCHES_CHECKED_AFTER:
                    if per_sample is None:
                        rows.update(self.rows([todo]))  # f's answer there, and its cost
                        per_sample = time.perf_counter() - start
                    if spent > gained * per_sample:
                        self.state.warn(_BRANCH_WARNING, traced=traced, covered=gained)
                        if key is not None:
                            self.state.branchy.add(key)
                        eager += _indices(xp, ~covered)
                        break
                    start = time.perf_counter()
                try:
                    trace = trace_call(self.f, *self.bound.sample(todo))
                except ConversionError:  # float(x), math.sin(x): f cannot be traced
                    self.state.warn(_ROUTE_WARNING, route="float() (or math)", where=_SOMEWHERE)
                    eager += _indices(xp, ~covered)
                    break
                program = Program(trace)
                traced += 1
                if program.captures_vars:
                    raise _Loop
                route = _route(trace, program)
                if route is not None:
                    self.state.warn(_ROUTE_WARNING, route=route[0], where=route[1])
                    self.structure(trace.out_tree)
                    eager += _indices(xp, ~covered)
                    break
                if key is not None and program.replayable:
                    cache.add(key, program)
            self.structure(program.out_tree)
            outputs, holds, bad = _evaluate(program, xp, columns, size)
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
            if traced_here:
                spent += time.perf_counter() - start
                if traced >= BRANCHES_CHECKED_AFTER - 1:
                    gained = int(xp.sum(xp.astype(covered, xp.int64)))
        if results is not None:
            eager += _indices(xp, _nonfinite(xp, results, size))
        if eager:
            rows.update(self.rows(sorted(set(eager) - set(rows))))
        outputs = _unaliased(xp, self.assemble(results, rows), columns)
        self.state.keep(xp, outputs, size)
        return outputs

    def rows(self, indices: Any) -> dict[int, list[Any]]:
        """``f`` itself at these samples: it raises, or gives the reference values."""
        rows: dict[int, list[Any]] = {}
        for i in indices:
            args, kwargs = self.bound.sample(i)
            flat, tree = flatten(self.f(*args, **kwargs), "vmap: output of f", static=True)
            self.structure(tree)
            rows[i] = flat
        return rows

    def assemble(self, results: list[Any] | None, rows: dict[int, list[Any]]) -> list[Any]:
        """The programs' columns with the samples ``f`` computed put in."""
        xp, size = self.xp, self.size
        if not rows:
            if results is None:
                raise ValueError("vmap: an empty batch")
            return results
        n_outputs = len(next(iter(rows.values())))
        if results is None:  # every sample is f's
            return [_column(xp, [rows[i][j] for i in range(size)]) for j in range(n_outputs)]
        mask = xp.zeros((size,), dtype=xp.bool)
        for i in rows:
            mask = _set(xp, mask, i)
        filler = next(iter(rows.values()))
        merged = []
        for j in range(n_outputs):
            column = _column(xp, [rows.get(i, filler)[j] for i in range(size)])
            merged.append(_where(xp, mask, column, results[j]))
        return merged


class _Loop(Exception):
    """The trace holds a Var ``f`` closes over: the batch is a loop of ``f`` (with Vars)."""


def _unaliased(xp: Any, results: list[Any], columns: list[Any]) -> list[Any]:
    """The results with a copy of each that is an input column (a view of the caller's array).

    A program returns an input unchanged as its output (``lambda x: x``, or
    ``x * 1.0``): without the copy, writing to the result would write to the
    caller's array.
    """
    inputs = set(map(id, columns))  # all alive: no id is reused among them and the results
    if inputs.isdisjoint(map(id, results)):
        return results
    return [xp.asarray(r, copy=True) if id(r) in inputs else r for r in results]


def _route(trace: Traced, program: Program) -> tuple[str, str] | None:
    """The first route by which a traced value reached Python, with its file:line, or None."""
    routes = getattr(trace.recorder, "routes", None)
    if routes:
        route, where = routes[0]
        return str(route), str(where)
    if getattr(program, "read_values", False):  # noted as a route once routes cover .data
        return ".data of a traced Var", _SOMEWHERE
    return None


def _column(xp: Any, values: list[Any]) -> Any:
    """One output over the batch from its per-sample values: bools stay bool, Vars objects."""
    if any(isinstance(v, Handle) for v in values):
        import numpy as np

        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            out[i] = v
        return out
    if all(_is_bool(v) for v in values):
        return xp.asarray([bool(v) for v in values], dtype=xp.bool)
    if all(isinstance(v, int) and not _is_bool(v) for v in values):
        return xp.asarray(values, dtype=xp.int64)
    return xp.asarray([float(v) for v in values], dtype=xp.float64)


def _is_bool(v: Any) -> bool:
    if v.__class__ is bool:
        return True
    np = sys.modules.get("numpy")
    return np is not None and isinstance(v, np.bool_)


def _where(xp: Any, mask: Any, new: Any, old: Any) -> Any:
    """``where`` of two columns, in float64 when their dtypes differ (bool and float)."""
    if not hasattr(new, "dtype") or not hasattr(old, "dtype"):
        return xp.where(mask, new, old)
    if new.dtype == object or old.dtype == object:
        import numpy as np

        return np.where(mask, new, old)
    if new.dtype != old.dtype:
        new, old = xp.astype(new, xp.float64), xp.astype(old, xp.float64)
    return xp.where(mask, new, old)


def _evaluate(
    program: Program, xp: Any, columns: list[Any], size: int
) -> tuple[list[Any], Any, Any]:
    """The program on the whole batch: (outputs, where the guards hold, where an op raises)."""
    inputs = [columns[k] for k in program.positions]
    inputs = [float(x) if isinstance(x, (int, float)) else x for x in inputs]
    batched = {n for n, x in enumerate(inputs, start=1) if not isinstance(x, float)}
    run = program.array_function(xp, frozenset(batched))
    if BLOCK > 0 and size >= 2 * BLOCK and xp is sys.modules.get("numpy"):
        return _evaluate_blocks(run, xp, inputs, batched, size)
    return _evaluate_block(run, xp, inputs, size)


def _evaluate_block(
    run: Callable[..., Any], xp: Any, inputs: list[Any], size: int
) -> tuple[list[Any], Any, Any]:
    """The compiled program ``run`` on ``size`` samples at once."""
    holds = xp.ones((size,), dtype=xp.bool)
    bad = xp.zeros((size,), dtype=xp.bool)

    def elementwise(fn: Callable[..., float], *arrays: Any) -> Any:
        return _elementwise(xp, fn, list(arrays), size)

    outputs, holds, bad = run(inputs, xp, holds, bad, elementwise)
    return _to_columns(xp, outputs, size), holds, bad


def _output_columns(np: Any, dtypes: list[Any], size: int) -> list[Any]:
    """Empty columns of ``size`` for outputs of these dtypes; the float64 ones rows of one table.

    An array result whose columns are consecutive rows of the table is then
    returned as a view of them (``_rows_of_one_table``), not stacked into a
    copy.
    """
    floats = sum(1 for dtype in dtypes if dtype == np.float64)
    rows = iter(np.empty((floats, size), dtype=np.float64))
    return [
        next(rows) if dtype == np.float64 else np.empty((size,), dtype=dtype) for dtype in dtypes
    ]


def _evaluate_blocks(
    run: Callable[..., Any], np: Any, inputs: list[Any], batched: set[int], size: int
) -> tuple[list[Any], Any, Any]:
    """The compiled program ``run`` over numpy blocks of ``BLOCK`` samples, one after another.

    Each op's columns are then a block long, so a block's values stay in the
    CPU's caches from op to op, where whole-batch columns of 10^6 samples go
    to main memory and back at every op. Each block's outputs and masks are
    written into arrays of the whole batch, made once; every op is
    elementwise over the samples, so the results are the unblocked ones, bit
    for bit (tests/test_vmap.py checks it).
    """
    outputs: list[Any] = []
    holds = np.empty((size,), dtype=np.bool_)
    bad = np.empty((size,), dtype=np.bool_)
    for start in range(0, size, BLOCK):
        stop = min(start + BLOCK, size)
        block = [x[start:stop] if n in batched else x for n, x in enumerate(inputs, start=1)]
        got, holds[start:stop], bad[start:stop] = _evaluate_block(run, np, block, stop - start)
        if not outputs:  # the dtypes of the outputs are known after the first block
            outputs = _output_columns(np, [column.dtype for column in got], size)
        for column, values in zip(outputs, got):
            column[start:stop] = values
    return outputs, holds, bad


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
    """Outputs as batch columns: a number becomes a full column (a bool a bool one)."""
    columns = []
    for o in outputs:
        if hasattr(o, "shape") and (o.shape or not _is_bool(o)):  # a column (not a bool_)
            columns.append(o)
            continue
        if _is_bool(o):
            columns.append(xp.full((size,), bool(o), dtype=xp.bool))
        elif isinstance(o, int):
            columns.append(xp.full((size,), o, dtype=xp.int64))
        elif isinstance(o, float):
            columns.append(xp.full((size,), o, dtype=xp.float64))
        else:
            columns.append(o)
    return columns


def _merge(xp: Any, mask: Any, new: list[Any], old: list[Any]) -> list[Any]:
    return [_where(xp, mask, n, o) if hasattr(n, "shape") else o for n, o in zip(new, old)]


def _nonfinite(xp: Any, results: list[Any], size: int) -> Any:
    mask = xp.zeros((size,), dtype=xp.bool)
    for r in results:
        # A dtype test, not xp.isdtype: 60 ns against 847 ns a call (numpy 2.4,
        # pyperf, paired).
        if hasattr(r, "shape") and r.dtype == xp.float64:
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
    return _Builder(xp, iter(leaves), size, out_axes).build(tree)


class _Builder:
    """Builds the batched outputs (methods, not recursive closures: a closure that calls
    itself is a reference cycle, which kept the columns alive until the garbage collector
    ran)."""

    def __init__(self, xp: Any, leaves: Any, size: int, out_axes: int) -> None:
        self.xp, self.leaves, self.size, self.out_axes = xp, leaves, size, out_axes

    def move(self, a: Any) -> Any:
        out_axes = self.out_axes
        if not -a.ndim <= out_axes < a.ndim:
            raise ValueError(
                f"vmap: out_axes {out_axes} is out of range for a result of {a.ndim} axes "
                "(the batch axis included)"
            )
        if out_axes == 0 or (a.ndim == 1 and out_axes == -1):
            return a
        axis = out_axes % a.ndim
        perm = [*range(1, axis + 1), 0, *range(axis + 1, a.ndim)]
        return self.xp.permute_dims(a, tuple(perm))

    def build(self, t: TreeDef) -> Any:
        xp, it, size = self.xp, self.leaves, self.size
        if t.kind == "scalar":
            return self.move(next(it))
        if t.kind == "static":
            return t.keys[0]
        if t.kind == "array":
            cols = [next(it) for _ in range(t.size)]
            # Stacked as rows and returned transposed (a view): stacking as
            # columns writes strided: 1.11 ms a W4 call against 1.02 ms (medians,
            # pyperf, paired).
            if not cols:
                stacked = xp.zeros((size, 0), dtype=xp.float64)
            else:
                table = _rows_of_one_table(cols)
                if table is None:
                    table = xp.stack(cols, axis=0)
                stacked = xp.permute_dims(table, (1, 0))
            return self.move(xp.reshape(stacked, (size, *t.keys)))
        items = [self.build(c) for c in t.children]
        if t.kind == "list":
            return items
        if t.kind == "tuple":
            return tuple(items) if t.node_type is None else t.node_type(*items)
        fields = dict(zip(t.keys, items))
        return fields if t.node_type is None else t.node_type(**fields)


def _rows_of_one_table(columns: list[Any]) -> Any:
    """The rows of one 2-D numpy array that ``columns`` are, in order, as one view; or None.

    Blocked outputs are rows of one table (``_output_columns``): an array
    result made of consecutive rows is that slice, with no stacked copy. W4
    at 10^6 samples: vmap / hand-fused numpy 0.36 (IQR 0.35-0.36, 20 paired
    rounds) against 0.47 (IQR 0.46-0.47, 40 rounds) with the copy, and peak
    memory 1.04x inputs + outputs against 1.48x (benchmarks/vmap_blocks.py).
    """
    table = getattr(columns[0], "base", None)
    np = sys.modules.get("numpy")
    if table is None or np is None or type(table) is not np.ndarray or table.ndim != 2:
        return None
    if not table.flags.c_contiguous:
        return None
    start, step = table.__array_interface__["data"][0], table.strides[0]
    first = (columns[0].__array_interface__["data"][0] - start) // step
    for k, column in enumerate(columns):
        if column.base is not table or column.shape != (table.shape[1],):
            return None
        if column.strides != (table.strides[1],):
            return None
        if column.__array_interface__["data"][0] != start + (first + k) * step:
            return None
    return table[first : first + len(columns)]
