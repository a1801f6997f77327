"""Pytrees: flattening nested arguments and results to a list of scalars and back.

A pytree is a scalar (float, int, bool, numpy real or bool scalar, or Var), or
a list, tuple, namedtuple, dict or dataclass of pytrees, or a numpy array of
scalars. ``flatten`` returns the scalars in a fixed order and a ``TreeDef``
that ``unflatten`` uses to rebuild the same structure around new scalars.
numpy is imported only when a numpy array is actually met, so the core stays
dependency-free.

Order of the scalars: lists, tuples and namedtuples in position order, dicts
by sorted key (insertion order when the keys cannot be sorted), dataclasses
in field declaration order, arrays in C order.

Rebuilding keeps the type: a namedtuple ``P`` comes back as ``P(*children)``
and a dataclass ``D`` as ``D(**fields)``, through their constructors as JAX's
``register_dataclass`` does (so a frozen dataclass works, and
``__post_init__`` runs on the new values). A dataclass with an
``init=False`` field cannot be rebuilt that way and is rejected when it is
flattened. Other subclasses of list, tuple and dict are read as their base
class and come back as it. With ``static=True`` (what ``jit`` and ``trace``
use), dicts come back as they were given: in insertion order, and an
``OrderedDict``, ``defaultdict`` (its ``default_factory`` kept) or
``Counter`` as such; another dict subclass is then a static leaf.

>>> leaves, tree = flatten({"w": [1.0, 2.0], "b": 3.0})
>>> leaves
[3.0, 1.0, 2.0]
>>> unflatten(tree, [10.0, 20.0, 30.0])
{'b': 10.0, 'w': [20.0, 30.0]}
>>> from collections import namedtuple
>>> Point = namedtuple("Point", "x y")
>>> unflatten(flatten(Point(1.0, 2.0))[1], [5.0, 6.0])
Point(x=5.0, y=6.0)
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any

from tapegrad.engine import Node, Var, is_real

__all__ = [
    "TreeDef",
    "flatten",
    "unflatten",
    "is_scalar",
    "tree_map",
    "map_vars",
    "describe",
    "structure_difference",
]


@dataclass(frozen=True)
class TreeDef:
    """The structure of a pytree.

    ``kind`` says how the children are addressed: ``"scalar"`` (none),
    ``"list"`` and ``"tuple"`` (by position), ``"dict"`` (by key, ``keys``)
    or ``"array"`` (a numpy array of scalars; ``keys`` holds its shape); or
    ``"static"``, an object that is not a scalar, kept whole in ``keys``
    (only from ``flatten(..., static=True)``).
    ``node_type`` is the class to rebuild when it is not the plain one: a
    namedtuple class (kind ``"tuple"``) or a dataclass (kind ``"dict"``, with
    the field names as ``keys``). Code that only walks the structure can
    ignore ``node_type``.
    """

    kind: str
    children: tuple[TreeDef, ...] = ()
    keys: tuple[Any, ...] = ()  # dict keys (sorted), dataclass fields, or the array's shape
    size: int = 1  # number of scalars below this node
    node_type: type | None = None  # a namedtuple class or a dataclass; None otherwise
    # A dict flattened with static=True whose class or key order is not that
    # of a plain sorted dict: (class, keys in insertion order, default_factory
    # of a defaultdict). jit and trace hand f its dicts as given, and key
    # programs by it (f may iterate in insertion order, or rely on a default).
    dict_form: tuple[Any, ...] | None = None
    # Derived once (a structure is hashed on every call of a jit-compiled
    # function, and a dataclass hash walks every child, in Python):
    # the hash (None: a static leaf is unhashable), and whether every child
    # is a scalar (unflatten then takes them in one slice).
    _hash: int | None = field(init=False, repr=False, compare=False, default=None)
    _scalars: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        try:
            fields = (
                self.kind,
                self.children,
                self.keys,
                self.size,
                self.node_type,
                self.dict_form,
            )
            object.__setattr__(self, "_hash", hash(fields))
        except TypeError:
            pass
        scalars = self.kind != "scalar" and all(c.kind == "scalar" for c in self.children)
        object.__setattr__(self, "_scalars", scalars)

    def __hash__(self) -> int:
        if self._hash is None:
            raise TypeError(f"unhashable pytree structure (a static leaf): {self!r}")
        return self._hash


SCALAR = TreeDef("scalar")
_FLOAT = {float}


@functools.lru_cache(maxsize=256)
def _float_list(n: int) -> TreeDef:
    """The structure of a list of n scalars, made (and hashed) once per length."""
    return TreeDef("list", (SCALAR,) * n, (), n)


def _is_numpy_bool(x: object) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.bool_)


def is_scalar(x: object) -> bool:
    """True for a Var, a real number, or a numpy bool scalar (read as 0.0 or 1.0)."""
    return isinstance(x, Var) or is_real(x) or _is_numpy_bool(x)


def _is_array(x: object) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def _numeric_array(a: Any) -> bool:
    """An array of real numbers (or an object array of Vars and numbers)."""
    kind = a.dtype.kind
    return kind in "fiub" or (kind == "O" and all(is_scalar(x) for x in a.flat))


def _is_namedtuple(x: object) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_dataclass_instance(x: object) -> bool:
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def _sort_keys(d: dict[Any, Any]) -> tuple[Any, ...]:
    try:
        return tuple(sorted(d))
    except TypeError:  # keys of mixed types: keep insertion order
        return tuple(d)


def _dataclass_fields(obj: Any, what: str) -> tuple[str, ...]:
    """The field names of dataclass instance ``obj``, in declaration order.

    Raises ``TypeError`` naming ``what`` for a field with ``init=False``: such
    a field cannot be passed to the constructor that rebuilds the object.
    """
    fields = dataclasses.fields(obj)
    not_init = [f.name for f in fields if not f.init]
    if not_init:
        name = type(obj).__name__
        raise TypeError(
            f"{what}: dataclass {name} has field {not_init[0]!r} with init=False; tapegrad "
            f"rebuilds a dataclass by calling {name}(**fields), so every field must be a "
            "parameter of __init__ (make it a property, or pass it in)"
        )
    return tuple(f.name for f in fields)


def flatten(
    tree: Any, what: str = "argument", static: bool = False, kinds: set[type] | None = None
) -> tuple[list[Any], TreeDef]:
    """Scalars of ``tree`` in order, and its structure.

    Raises ``TypeError`` naming ``what`` for anything that is not a pytree of
    real numbers (a str, a complex number, None ...); with ``static=True``
    such an object is kept in the structure instead (kind ``"static"``, the
    object in ``keys``, no scalars), as :func:`tapegrad.jit` keeps its
    non-numeric arguments and results. ``kinds``, when given, receives the
    type of every scalar (jit tells all-float arguments apart this way, in
    the same pass).
    """
    leaves: list[Any] = []
    found: set[type] = set() if kinds is None else kinds
    return leaves, _flatten(tree, leaves, what, static, found)


def _flatten(tree: Any, leaves: list[Any], what: str, static: bool, kinds: set[type]) -> TreeDef:
    cls = tree.__class__
    if cls is float or cls is Var or cls is Node:  # exact types first: the ABC check
        leaves.append(tree)  # behind is_scalar is the slow part
        kinds.add(cls)
        return SCALAR
    if cls is list:
        types = set(map(type, tree))  # one C-level pass
        if types == _FLOAT:  # a list of floats
            leaves.extend(tree)
            kinds.add(float)
            return _float_list(len(tree))
    if is_scalar(tree):
        leaves.append(tree)
        kinds.add(cls)
        return SCALAR
    if isinstance(tree, (list, tuple)):
        children = tuple(_flatten(t, leaves, what, static, kinds) for t in tree)
        size = sum(c.size for c in children)
        if isinstance(tree, list):
            return TreeDef("list", children, (), size)
        if _is_namedtuple(tree):
            return TreeDef("tuple", children, tuple(cls._fields), size, cls)
        return TreeDef("tuple", children, (), size)
    if isinstance(tree, dict):
        form = None
        if static and cls is not dict:
            if cls not in _REBUILT_DICTS:  # a subclass we cannot rebuild: kept whole
                return TreeDef("static", (), (tree,), 0)
            form = (cls, tuple(tree), getattr(tree, "default_factory", None))
        keys = _sort_keys(tree)
        if static and form is None and tuple(tree) != keys:
            form = (dict, tuple(tree), None)
        children = tuple(_flatten(tree[k], leaves, what, static, kinds) for k in keys)
        return TreeDef("dict", children, keys, sum(c.size for c in children), None, form)
    if _is_array(tree) and (not static or _numeric_array(tree)):
        if tree.dtype.kind not in "fiubO":
            raise TypeError(f"{what}: numpy arrays of dtype {tree.dtype} are not supported")
        for x in tree.flat:
            if not is_scalar(x):
                raise TypeError(f"{what}: array element {x!r} is not a real number")
            leaves.append(x)
            kinds.add(x.__class__)
        return TreeDef("array", (), tuple(tree.shape), int(tree.size))
    if _is_dataclass_instance(tree):
        names = _dataclass_fields(tree, what)
        children = tuple(_flatten(getattr(tree, n), leaves, what, static, kinds) for n in names)
        return TreeDef("dict", children, names, sum(c.size for c in children), cls)
    if static:
        return TreeDef("static", (), (tree,), 0)
    raise TypeError(
        f"{what}: {type(tree).__name__} {tree!r} is not a real number, Var, list, tuple, "
        "namedtuple, dict, dataclass or numpy array; tapegrad differentiates real scalars"
    )


def unflatten(tree: TreeDef, leaves: Sequence[Any]) -> Any:
    """Rebuild the structure ``tree`` around ``leaves`` (as many as ``tree.size``)."""
    return _unflatten(tree, iter(leaves))


def _unflatten(tree: TreeDef, it: Iterator[Any]) -> Any:
    kind = tree.kind
    if kind == "scalar":
        return next(it)
    if kind == "static":
        return tree.keys[0]
    if tree._scalars and kind == "list":
        return list(islice(it, len(tree.children)))
    if kind == "list":
        return [_unflatten(c, it) for c in tree.children]
    if kind == "tuple":
        items = [_unflatten(c, it) for c in tree.children]
        return tuple(items) if tree.node_type is None else tree.node_type(*items)
    if kind == "dict":
        fields = {k: _unflatten(c, it) for k, c in zip(tree.keys, tree.children)}
        if tree.dict_form is not None:
            return _rebuilt_dict(tree.dict_form, fields)
        return fields if tree.node_type is None else tree.node_type(**fields)
    return _to_array([next(it) for _ in range(tree.size)], tree.keys)


# Dict classes that flatten(..., static=True) rebuilds as such, in insertion order.
_REBUILT_DICTS = (collections.OrderedDict, collections.defaultdict, collections.Counter)


def _rebuilt_dict(form: tuple[Any, ...], fields: dict[Any, Any]) -> dict[Any, Any]:
    """A dict of class and key order ``form`` (see ``TreeDef.dict_form``) holding ``fields``."""
    cls, order, factory = form
    pairs = [(k, fields[k]) for k in order]
    if cls is collections.defaultdict:
        return collections.defaultdict(factory, pairs)
    rebuilt: dict[Any, Any] = cls(dict(pairs))  # Counter(pairs) would count the pairs
    return rebuilt


def _to_array(items: list[Any], shape: tuple[int, ...]) -> Any:
    """An array of ``shape`` whose entries are ``items``, laid out as JAX lays out Jacobians.

    Scalars give an array of ``shape`` (float64, or object when some are
    Vars). When every item is a pytree of the same structure (a row of a
    Jacobian: the derivative of one output scalar with respect to the
    inputs), numpy arrays are leaves as in JAX: the result has that
    structure, with each scalar replaced by an array of ``shape`` and each
    array of shape ``inner`` by an array of shape ``shape + inner``.
    """
    import numpy as np

    first: Any = items[0] if items else 0.0
    if _is_array(first):
        inner = first.shape
        dtype = np.float64 if all(x.dtype != object for x in items) else object
        return np.array(items, dtype=dtype).reshape(shape + inner)
    if is_scalar(first):
        if not any(isinstance(x, Var) for x in items):
            return np.array(items, dtype=np.float64).reshape(shape)
        out = np.empty(len(items), dtype=object)
        for k, x in enumerate(items):
            out[k] = x
        return out.reshape(shape)

    # A pytree per entry: stack each of its positions separately.
    def column(pick: Callable[[Any], Any]) -> Any:
        return _to_array([pick(x) for x in items], shape)

    if isinstance(first, list):
        return [column(itemgetter(k)) for k in range(len(first))]
    if isinstance(first, tuple):
        stacked = [column(itemgetter(k)) for k in range(len(first))]
        return type(first)(*stacked) if _is_namedtuple(first) else tuple(stacked)
    if isinstance(first, dict):
        return {k: column(itemgetter(k)) for k in first}
    # A dataclass (the rows were built by unflatten, so it has only init fields).
    names = [f.name for f in dataclasses.fields(first)]
    return type(first)(**{n: column(attrgetter(n)) for n in names})


def tree_map(fn: Callable[[Any], Any], tree: Any, what: str = "argument") -> Any:
    """Apply ``fn`` to every scalar of ``tree``, keeping the structure."""
    leaves, treedef = flatten(tree, what)
    return unflatten(treedef, [fn(x) for x in leaves])


def map_vars(fn: Callable[[Var], Any], obj: Any) -> Any:
    """``obj`` with every Var in it replaced by ``fn(var)``; anything else kept as it is.

    A lenient walk for values that need not be pytrees (a transform's
    ``aux``): it looks into lists, tuples, namedtuples, dicts, dataclasses
    whose fields are all ``__init__`` parameters, and numpy object arrays (an
    array left with no Var becomes float64), and keeps any other object,
    strings included, untouched.

    >>> from tapegrad import Var
    >>> map_vars(lambda v: v.data, {"loss": Var(2.0), "note": "ok", "n": 3})
    {'loss': 2.0, 'note': 'ok', 'n': 3}
    """
    if isinstance(obj, Var):
        return fn(obj)
    if isinstance(obj, list):
        return [map_vars(fn, x) for x in obj]
    if isinstance(obj, tuple):
        items = [map_vars(fn, x) for x in obj]
        return type(obj)(*items) if _is_namedtuple(obj) else tuple(items)
    if isinstance(obj, dict):
        return {k: map_vars(fn, x) for k, x in obj.items()}
    if _is_dataclass_instance(obj):
        fields = dataclasses.fields(obj)
        if all(f.init for f in fields):
            return type(obj)(**{f.name: map_vars(fn, getattr(obj, f.name)) for f in fields})
        return obj  # cannot be rebuilt through its constructor: kept as it is
    if _is_array(obj) and obj.dtype == object:
        items = [map_vars(fn, x) for x in obj.flat]
        if all(is_scalar(x) for x in items):
            return _to_array(items, obj.shape)
        out = obj.copy()  # some entries are not scalars: keep an object array
        for k, x in enumerate(items):
            out.flat[k] = x
        return out
    return obj


# ---------------------------------------------------------------------------
# Describing structures in error messages
# ---------------------------------------------------------------------------


def describe(tree: TreeDef) -> str:
    """The kind of node ``tree`` is, with its article, for error messages.

    >>> describe(flatten([1.0, 2.0])[1])
    'a list'
    >>> import numpy as np
    >>> describe(flatten(np.zeros(3))[1])
    'an array of shape (3,)'
    """
    if tree.kind == "array":
        return f"an array of shape {tree.keys}"
    if tree.node_type is not None:
        what = "namedtuple" if tree.kind == "tuple" else "dataclass"
        return f"a {what} {tree.node_type.__name__}"
    return f"a {tree.kind}"


def _describe_node(tree: TreeDef) -> str:
    """``describe`` plus what must match for two nodes of that kind to agree."""
    text = describe(tree)
    if tree.kind in ("list", "tuple"):
        return f"{text} of length {len(tree.children)}"
    if tree.kind == "dict" and tree.node_type is None:
        return f"{text} with keys {list(tree.keys)}"
    return text


def _child_path(tree: TreeDef, k: int) -> str:
    if tree.kind == "dict":
        key = tree.keys[k]
        return f".{key}" if tree.node_type is not None else f"[{key!r}]"
    return f"[{k}]"


def structure_difference(expected: TreeDef, got: TreeDef) -> str | None:
    """Where and how ``got`` differs from ``expected``; None when they agree.

    Only the structure counts (the scalars' types do not): list against
    tuple, a namedtuple's or dataclass's class, lengths, dict keys, array
    shapes.

    >>> a = flatten([1.0, (2.0, 3.0)])[1]
    >>> structure_difference(a, flatten([5, (6, 7)])[1]) is None
    True
    >>> structure_difference(a, flatten([5, [6, 7]])[1])
    'at [1], a list of length 2 where a tuple of length 2 is expected'
    """
    path = ""
    while True:
        same_node = (
            expected.kind == got.kind
            and expected.node_type is got.node_type
            and expected.keys == got.keys
            and len(expected.children) == len(got.children)
        )
        if not same_node:
            where = f"at {path}, " if path else ""
            return f"{where}{_describe_node(got)} where {_describe_node(expected)} is expected"
        for k, (e, g) in enumerate(zip(expected.children, got.children)):
            if e != g:  # TreeDef equality is structural: descend into the first difference
                path += _child_path(expected, k)
                expected, got = e, g
                break
        else:
            return None
