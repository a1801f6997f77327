"""Function transforms: ``vjp`` (the core), ``grad``, ``value_and_grad``, ``jacobian``
(``jacrev``), ``jacfwd``, ``hessian``, ``jvp``, ``hvp``, and ``stop_gradient``.

Every transform traces ``f`` once on a fresh tape one level above the current
ones (:func:`_trace`), with its differentiated arguments replaced by Vars of
that tape, and then sweeps that tape: in reverse for ``vjp`` (and so
``grad``, ``value_and_grad``, ``jacobian``), forward with tangents for
``jvp`` and ``jacfwd``. ``hessian`` is ``jacobian(grad(f))`` and ``hvp`` is
forward-over-reverse, ``jvp(grad(f))``.

Because the partials on a level-``n`` tape are values of level ``n - 1``, the
sweeps themselves record on the outer tape, so transforms nest to any order;
a Var of an outer level that ``f`` closes over is a constant of the inner
tape, which rules out perturbation confusion.

Results mirror the input structure (see :mod:`tapegrad.pytree`). Inside an
outer transform the results are Vars of the outer tape, so that the outer
transform can differentiate them; at top level they are floats.

Conventions shared by every transform (docs/transforms.md has the details):

* ``f`` must be callable when the transform is made (``TypeError`` at once);
  the returned function keeps ``f``'s name, docstring and, for type checkers,
  its parameter types (``ParamSpec``).
* Keyword arguments of the returned function go to ``f`` undifferentiated.
* ``argnums`` is an int (anything ``operator.index`` accepts, not a bool) or
  a tuple or list of them; negative values count from the end, and a
  repeated position gets its gradient at each place it is named, as in JAX.
* Errors name the transform the user called.

>>> import tapegrad as tg
>>> tg.grad(lambda x: x**3)(2.0)
12.0
>>> tg.grad(tg.grad(lambda x: x**3))(2.0)
12.0
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, Protocol, SupportsIndex, TypeVar, overload

from tapegrad.context import pop_tape, push_tape
from tapegrad.handle import value_of
from tapegrad.pytree import (
    TreeDef,
    describe,
    flatten,
    map_vars,
    structure_difference,
    tree_map,
    unflatten,
)
from tapegrad.rules import RULES
from tapegrad.sweeps import sweep_floats, sweep_forward, sweep_objects
from tapegrad.tape import INPUT, Tape
from tapegrad.var import Node, TracedNode, Var, apply, node_at

__all__ = [
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "jacobian",
    "jacrev",
    "jacfwd",
    "hessian",
    "hvp",
    "stop_gradient",
]

P = ParamSpec("P")
R = TypeVar("R")

Argnums = SupportsIndex | Sequence[SupportsIndex]


# ---------------------------------------------------------------------------
# What type checkers see
# ---------------------------------------------------------------------------
# With the default argnums=0 and has_aux=False, grad(f), value_and_grad(f)
# and hessian(f) of an f of one float are typed to take a float and return
# floats, and of an f of one list of floats to take and return lists. A call
# those two cases do not cover (more arguments, keywords, a tuple, a dict, an
# array, another argnums, has_aux) is typed with f's parameters (ParamSpec)
# and an ``Any`` result. The precise cases are overloads of ``__call__`` that
# apply only when f's parameters are exactly one float or one list of floats
# (a ``self`` type), so an f taking a Sequence is typed list in, list out, and
# called with a tuple falls back to ``Any``, as it returns a tuple.


class GradFunction(Protocol[P]):
    """``grad(f)``: float in, float out; list in, list out; else f's parameters, ``Any`` out."""

    @overload
    def __call__(self: GradFunction[[float]], x: float, /) -> float: ...
    @overload
    def __call__(self: GradFunction[[list[float]]], x: list[float], /) -> list[float]: ...
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...


class ValueAndGradFunction(Protocol[P]):
    """``value_and_grad(f)``: ``(value, gradient)``, the gradient typed as for ``grad``."""

    @overload
    def __call__(self: ValueAndGradFunction[[float]], x: float, /) -> tuple[float, float]: ...
    @overload
    def __call__(
        self: ValueAndGradFunction[[list[float]]], x: list[float], /
    ) -> tuple[float, list[float]]: ...
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> tuple[Any, Any]: ...


class HessianFunction(Protocol[P]):
    """``hessian(f)``: a float for a float, a list of lists for a list."""

    @overload
    def __call__(self: HessianFunction[[float]], x: float, /) -> float: ...
    @overload
    def __call__(self: HessianFunction[[list[float]]], x: list[float], /) -> list[list[float]]: ...
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...


# ---------------------------------------------------------------------------
# Checking what the user passed
# ---------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _check_callable(f: object, name: str) -> None:
    """Raise at transform time, not at the first call, as JAX does."""
    if not callable(f):
        raise TypeError(f"{name}: f must be callable, got {type(f).__name__} {f!r}")


@dataclass(frozen=True)
class _Argnums:
    """``argnums`` as checked when the transform is made."""

    nums: tuple[int, ...]  # as given: may be negative or repeated
    single: bool  # an int was given: return one result, not a tuple


def _parse_argnums(argnums: object, name: str) -> _Argnums:
    if isinstance(argnums, (tuple, list)):
        if not argnums:
            raise ValueError(f"{name}: argnums must name at least one argument, got {argnums!r}")
        return _Argnums(tuple(_position(a, name) for a in argnums), single=False)
    return _Argnums((_position(argnums, name),), single=True)


def _position(a: object, name: str) -> int:
    # operator.index accepts int, numpy ints and anything with __index__; a
    # bool also has __index__, but argnums=True is surely a mistake.
    if not isinstance(a, bool):
        try:
            return operator.index(a)  # type: ignore[arg-type]
        except TypeError:
            pass
    raise TypeError(
        f"{name}: argnums must be an int or a tuple of ints (positions of f's positional "
        f"arguments), got {type(a).__name__} {a!r}"
    )


def _resolve(argnums: _Argnums, nargs: int, name: str) -> tuple[int, ...]:
    """The positions named by ``argnums`` in a call with ``nargs`` positional arguments."""
    for a in argnums.nums:
        if not -nargs <= a < nargs:
            raise ValueError(
                f"{name}: argnums {a} is out of range for a call with "
                f"{_plural(nargs, 'positional argument')}"
            )
    return tuple(a % nargs for a in argnums.nums)


def _wraps(f: Callable[P, Any], impl: Callable[..., R]) -> Callable[P, R]:
    """``impl`` with ``f``'s name and docstring, typed as taking ``f``'s parameters."""
    return functools.wraps(f)(impl)


# ---------------------------------------------------------------------------
# Tracing and sweeping
# ---------------------------------------------------------------------------


@dataclass
class _Trace:
    """What one call of ``f`` recorded: the tape, where the inputs and outputs are."""

    tape: Tape
    positions: tuple[int, ...]  # the distinct differentiated argument positions
    in_trees: list[TreeDef]  # one per position
    in_index: list[list[int]]  # tape indices of each position's scalars
    out: Any  # f's result with the tape's Vars replaced by their values
    out_tree: TreeDef
    out_index: list[int]  # tape index of each output scalar (0: not on the tape)
    aux: Any = None


def _wrap(tape: Tape, leaves: list[Any]) -> list[Var]:
    """Vars of ``tape`` standing for input scalars (entries without inputs)."""
    # A float, or (inside an outer transform) an outer Var: Any on purpose.
    values: list[Any] = [x if isinstance(x, Var) else float(x) for x in leaves]
    if any(v.__class__ is not float for v in values):
        tape.objects = True  # Vars among the values: sweep them as objects
    first = tape.push_markers(INPUT, values)
    return [node_at(tape, k, value) for k, value in enumerate(values, first)]


def _unwrap(tape: Tape, x: Any) -> Any:
    """The value of an output scalar as seen outside ``tape``."""
    if isinstance(x, Var):
        if x._tape is tape:
            return x._value
        return x
    return float(x)


def _trace(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    positions: tuple[int, ...],
    name: str,
    has_aux: bool,
) -> _Trace:
    """Call ``f(*args, **kwargs)`` on a new tape with ``args[positions]`` as its input Vars.

    Each distinct position is wrapped once, so a position named twice in
    ``argnums`` is one input whose gradient is reported twice.
    """
    positions = tuple(dict.fromkeys(positions))
    in_flat = [flatten(args[p], f"{name}: argument {p}") for p in positions]
    tape, token = push_tape()
    try:
        new_args = list(args)
        in_index: list[list[int]] = []
        for p, (leaves, tree) in zip(positions, in_flat):
            wrapped = _wrap(tape, leaves)
            in_index.append([v._index for v in wrapped])
            new_args[p] = unflatten(tree, wrapped)
        result = f(*new_args, **kwargs)
    finally:
        pop_tape(tape, token)
    aux = None
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(
                f"{name}: with has_aux=True, f must return a pair (output, aux), "
                f"got {type(result).__name__}"
                + (f" of length {len(result)}" if isinstance(result, tuple) else "")
            )
        result, aux = result

        def outside(v: Var) -> Any:
            return v._value if v._tape is tape else v

        aux = map_vars(outside, aux)
    try:
        out_leaves, out_tree = flatten(result, f"{name}: output of f")
    except TypeError as error:
        if has_aux or not isinstance(result, tuple):
            raise
        raise TypeError(f"{error}; if f returns (output, aux), pass has_aux=True") from error
    out_index = []
    for x in out_leaves:
        if isinstance(x, Var) and x._tape is not None and x._tape.level >= tape.level:
            if x._tape is not tape:
                raise ValueError(f"{name}: f returned a Var of another transform's tape")
            out_index.append(x._index)
        else:
            out_index.append(0)  # a constant: does not depend on the inputs
    out = unflatten(out_tree, [_unwrap(tape, x) for x in out_leaves])
    return _Trace(tape, positions, [t for _, t in in_flat], in_index, out, out_tree, out_index, aux)


def _pullback(tr: _Trace, cotangents: Sequence[Any]) -> list[list[Any]]:
    """Reverse sweep: the flat cotangents of each differentiated position.

    A cotangent of None means "this output is not seeded" (a Jacobian row
    seeds one output): unlike a seed of 0.0 it sends nothing back, so an
    infinite partial of another output cannot turn the row into NaN.
    """
    tape = tr.tape
    seeds = [(k, ct) for k, ct in zip(tr.out_index, cotangents) if k and ct is not None]
    start = max((k for k, _ in seeds), default=0)
    if not tape.objects and all(ct.__class__ is float for _, ct in seeds):
        # Every value and partial of the tape is a float (the common case at
        # top level): the float sweep. The sweep alone takes 0.71 of the time
        # of sweep_objects (1.62 against 2.26 ms on a 20,000-entry float tape,
        # medians, pyperf, paired); a whole grad call gains less.
        floats = [0.0] * len(tape)
        for k, ct in seeds:
            floats[k] += ct
        if start:
            sweep_floats(tape, floats, start)
        return [[floats[k] for k in idx] for idx in tr.in_index]
    adj: list[Any] = [None] * len(tape)
    for k, ct in seeds:
        adj[k] = ct if adj[k] is None else adj[k] + ct
    if start:
        sweep_objects(tape, adj, start)
    return [[0.0 if adj[k] is None else adj[k] for k in idx] for idx in tr.in_index]


def _push_forward(tr: _Trace, seeds: Mapping[int, Any]) -> list[Any]:
    """Forward sweep from tangents at tape indices ``seeds``: the tangent of each output."""
    tape = tr.tape
    tan: list[Any] = [None] * len(tape)
    for k, t in seeds.items():
        tan[k] = t
    if seeds:  # entries before the first seeded input carry no tangent
        sweep_forward(tape, tan, min(seeds))
    return [0.0 if k == 0 or tan[k] is None else tan[k] for k in tr.out_index]


def _arrange(tr: _Trace, flat: list[list[Any]], positions: tuple[int, ...], single: bool) -> Any:
    """Per-position flat results as structured results for ``positions`` (may repeat).

    Each requested position gets its own freshly built structure, so two
    gradients of one argument are never the same list object.
    """
    slot = {p: s for s, p in enumerate(tr.positions)}
    results = [unflatten(tr.in_trees[slot[p]], flat[slot[p]]) for p in positions]
    return results[0] if single else tuple(results)


def _scalar_output(tr: _Trace, name: str, hint: str) -> None:
    """Raise unless ``f``'s output is one scalar (or a numpy array of shape ``()``)."""
    tree = tr.out_tree
    if tree.kind == "scalar" or (tree.kind == "array" and tree.keys == ()):
        return
    got = describe(tree)
    if tree.kind != "array":
        got += f" of {_plural(tree.size, 'value')}"
    if tree.kind == "tuple" and tree.node_type is None:
        hint = f"if f returns (output, aux), pass has_aux=True; {hint}"
    raise TypeError(f"{name}: f must return a scalar (a float or Var), got {got}; {hint}")


_GRAD_HINT = "use jacobian for non-scalar outputs"


def _value_and_grad_fn(
    f: Callable[..., Any], argnums: _Argnums, has_aux: bool, name: str, hint: str
) -> Callable[..., tuple[Any, Any]]:
    """The function behind ``value_and_grad``, ``grad``, ``hessian`` and ``hvp``."""

    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        positions = _resolve(argnums, len(args), name)
        tr = _trace(f, args, kwargs, positions, name, has_aux)
        _scalar_output(tr, name, hint)
        grads = _arrange(tr, _pullback(tr, [1.0]), positions, argnums.single)
        return ((tr.out, tr.aux), grads) if has_aux else (tr.out, grads)

    return value_and_grad_f


def _grad_fn(
    f: Callable[..., Any], argnums: _Argnums, has_aux: bool, name: str, hint: str
) -> Callable[..., Any]:
    value_and_grad_f = _value_and_grad_fn(f, argnums, has_aux, name, hint)

    def grad_f(*args: Any, **kwargs: Any) -> Any:
        value, g = value_and_grad_f(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_f


def _jacrev_fn(
    f: Callable[..., Any], argnums: _Argnums, has_aux: bool, name: str
) -> Callable[..., Any]:
    """The function behind ``jacobian``, ``jacrev`` and ``hessian``: a sweep per output."""

    def jacrev_f(*args: Any, **kwargs: Any) -> Any:
        positions = _resolve(argnums, len(args), name)
        tr = _trace(f, args, kwargs, positions, name, has_aux)
        m = tr.out_tree.size
        rows = []
        for i in range(m):
            seeds: list[Any] = [None] * m
            seeds[i] = 1.0
            rows.append(_arrange(tr, _pullback(tr, seeds), positions, argnums.single))
        jac = unflatten(tr.out_tree, rows)
        return (jac, tr.aux) if has_aux else jac

    return jacrev_f


def _jacfwd_fn(
    f: Callable[..., Any], argnums: _Argnums, has_aux: bool, name: str
) -> Callable[..., Any]:
    """The function behind ``jacfwd``: one forward sweep per input scalar."""

    def jacfwd_f(*args: Any, **kwargs: Any) -> Any:
        positions = _resolve(argnums, len(args), name)
        tr = _trace(f, args, kwargs, positions, name, has_aux)
        # columns[s][j][i] = d out_i / d (scalar j of distinct position s)
        columns = [[_push_forward(tr, {k: 1.0}) for k in idx] for idx in tr.in_index]
        rows = [
            _arrange(tr, [[col[i] for col in cols] for cols in columns], positions, argnums.single)
            for i in range(tr.out_tree.size)
        ]
        jac = unflatten(tr.out_tree, rows)
        return (jac, tr.aux) if has_aux else jac

    return jacfwd_f


def _jvp(
    f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any], name: str
) -> tuple[Any, Any]:
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(
            f"{name}: primals and tangents must be tuples of arguments, got "
            f"{type(primals).__name__} and {type(tangents).__name__}"
        )
    if len(primals) != len(tangents):
        raise ValueError(
            f"{name}: {_plural(len(primals), 'primal')} but {_plural(len(tangents), 'tangent')}"
            "; give one tangent per primal"
        )
    flat_tangents = [flatten(t, f"{name}: tangent {a}") for a, t in enumerate(tangents)]
    primals = tuple(primals)
    tr = _trace(f, primals, {}, tuple(range(len(primals))), name, False)
    seeds: dict[int, Any] = {}
    for a, ((leaves, tangent_tree), tree, idx) in enumerate(
        zip(flat_tangents, tr.in_trees, tr.in_index)
    ):
        difference = structure_difference(tree, tangent_tree)
        if difference is not None:
            raise ValueError(
                f"{name}: tangent {a} must have the structure of primal {a}: {difference}"
            )
        for k, t in zip(idx, leaves):
            seeds[k] = t if isinstance(t, Var) else float(t)
    return tr.out, unflatten(tr.out_tree, _push_forward(tr, seeds))


# ---------------------------------------------------------------------------
# The transforms
# ---------------------------------------------------------------------------


@overload
def vjp(
    f: Callable[[float], float], x: float, /, *, has_aux: Literal[False] = False
) -> tuple[float, Callable[[float], tuple[float]]]: ...
@overload
def vjp(
    f: Callable[[list[float]], float], x: list[float], /, *, has_aux: Literal[False] = False
) -> tuple[float, Callable[[float], tuple[list[float]]]]: ...
@overload
def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any: ...
def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """``(f(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` returns one cotangent per primal.

    The cotangent must have the structure of ``f``'s output (a ``ValueError``
    names the first difference). With ``has_aux``, the result is
    ``(out, vjp_fn, aux)``. Keyword arguments are ``vjp``'s own; bind those of
    ``f`` with ``functools.partial``.

    >>> out, back = vjp(lambda x, y: x * y, 2.0, 3.0)
    >>> out, back(1.0)
    (6.0, (3.0, 2.0))
    """
    _check_callable(f, "vjp")
    if not primals:
        raise TypeError("vjp: needs at least one primal argument")
    positions = tuple(range(len(primals)))
    tr = _trace(f, primals, {}, positions, "vjp", has_aux)

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        leaves, tree = flatten(cotangent, "vjp: cotangent")
        difference = structure_difference(tr.out_tree, tree)
        if difference is not None:
            raise ValueError(
                f"vjp: the cotangent must have the structure of f's output: {difference}"
            )
        seeds = [x if isinstance(x, Var) else float(x) for x in leaves]
        result: tuple[Any, ...] = _arrange(tr, _pullback(tr, seeds), positions, single=False)
        return result

    return (tr.out, vjp_fn, tr.aux) if has_aux else (tr.out, vjp_fn)


@overload
def value_and_grad(
    f: Callable[P, Any], argnums: Literal[0] = 0, has_aux: Literal[False] = False
) -> ValueAndGradFunction[P]: ...
@overload
def value_and_grad(
    f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[P, tuple[Any, Any]]: ...
def value_and_grad(
    f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[P, tuple[Any, Any]] | ValueAndGradFunction[P]:
    """A function returning ``(f(*args), gradient)``; ``((value, aux), gradient)`` with aux.

    >>> value_and_grad(lambda x: x * x)(3.0)
    (9.0, 6.0)
    """
    _check_callable(f, "value_and_grad")
    parsed = _parse_argnums(argnums, "value_and_grad")
    return _wraps(f, _value_and_grad_fn(f, parsed, has_aux, "value_and_grad", _GRAD_HINT))


@overload
def grad(
    f: Callable[P, Any], argnums: Literal[0] = 0, has_aux: Literal[False] = False
) -> GradFunction[P]: ...
@overload
def grad(f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[P, Any]: ...
def grad(
    f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[P, Any] | GradFunction[P]:
    """The gradient of scalar ``f`` w.r.t. ``args[argnums]``, shaped like that argument.

    A tuple of gradients for tuple ``argnums``; ``(gradient, aux)`` with ``has_aux``.

    >>> grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 5.0)
    (5.0, 2.0)
    >>> grad(lambda x, y=1.0: x * y)(2.0, y=3.0)  # keyword arguments pass through
    3.0
    """
    _check_callable(f, "grad")
    parsed = _parse_argnums(argnums, "grad")
    return _wraps(f, _grad_fn(f, parsed, has_aux, "grad", _GRAD_HINT))


def jacobian(f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[P, Any]:
    """``J[i][j] = d out_i / d in_j``: the output structure outside, the input's inside.

    Computed in reverse mode, one sweep per output scalar (``jacrev`` is the
    same function; ``jacfwd`` builds it in forward mode). numpy arrays nest as
    in JAX: an output of shape ``(m,)`` and an input of shape ``(n,)`` give an
    array of shape ``(m, n)``. ``(J, aux)`` with ``has_aux``.

    >>> jacobian(lambda x: [x[0] * x[1], x[0] + x[1]])([2.0, 3.0])
    [[3.0, 2.0], [1.0, 1.0]]
    """
    _check_callable(f, "jacobian")
    parsed = _parse_argnums(argnums, "jacobian")
    return _wraps(f, _jacrev_fn(f, parsed, has_aux, "jacobian"))


def jacrev(f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[P, Any]:
    """The Jacobian in reverse mode, one sweep per output scalar: ``jacobian`` under JAX's name.

    Cheaper than ``jacfwd`` when ``f`` has fewer outputs than inputs.

    >>> jacrev(lambda x: [x[0] * x[1]])([2.0, 3.0])
    [[3.0, 2.0]]
    """
    _check_callable(f, "jacrev")
    parsed = _parse_argnums(argnums, "jacrev")
    return _wraps(f, _jacrev_fn(f, parsed, has_aux, "jacrev"))


def jacfwd(f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[P, Any]:
    """The Jacobian in forward mode, one ``jvp`` sweep per input scalar.

    Same layout and results as ``jacobian``; cheaper when ``f`` has more
    outputs than inputs.

    >>> jacfwd(lambda x: [x * x, 3.0 * x])(2.0)
    [4.0, 3.0]
    """
    _check_callable(f, "jacfwd")
    parsed = _parse_argnums(argnums, "jacfwd")
    return _wraps(f, _jacfwd_fn(f, parsed, has_aux, "jacfwd"))


@overload
def hessian(
    f: Callable[P, Any], argnums: Literal[0] = 0, has_aux: Literal[False] = False
) -> HessianFunction[P]: ...
@overload
def hessian(
    f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[P, Any]: ...
def hessian(
    f: Callable[P, Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[P, Any] | HessianFunction[P]:
    """``H[i][j] = d2 f / d in_i d in_j`` of scalar ``f``: ``jacobian(grad(f))``.

    ``(H, aux)`` with ``has_aux``.

    >>> hessian(lambda x: x[0] ** 2 * x[1])([1.0, 2.0])
    [[4.0, 2.0], [2.0, 0.0]]
    """
    _check_callable(f, "hessian")
    parsed = _parse_argnums(argnums, "hessian")
    hint = "use jacobian(jacobian(f)) for non-scalar outputs"
    gradient = _grad_fn(f, parsed, has_aux, "hessian", hint)
    return _wraps(f, _jacrev_fn(gradient, parsed, has_aux, "hessian"))


@overload
def jvp(
    f: Callable[..., float], primals: Sequence[Any], tangents: Sequence[Any]
) -> tuple[float, float]: ...
@overload
def jvp(
    f: Callable[..., list[float]], primals: Sequence[Any], tangents: Sequence[Any]
) -> tuple[list[float], list[float]]: ...
@overload
def jvp(
    f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]
) -> tuple[Any, Any]: ...
def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: ``(f(*primals), J @ tangents)``, one forward sweep with tangents.

    Each tangent must have the structure of its primal (a ``ValueError``
    names the first difference).

    >>> jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    (6.0, 3.0)
    """
    _check_callable(f, "jvp")
    return _jvp(f, primals, tangents, "jvp")


def hvp(f: Callable[..., Any], x: Any, v: Any) -> Any:
    """Hessian of scalar ``f`` at ``x`` times ``v``, shaped like ``x`` (forward-over-reverse).

    >>> hvp(lambda x: x[0] ** 2 * x[1], [1.0, 2.0], [1.0, 0.0])
    [4.0, 2.0]
    """
    _check_callable(f, "hvp")
    difference = structure_difference(flatten(x, "hvp: x")[1], flatten(v, "hvp: v")[1])
    if difference is not None:
        raise ValueError(f"hvp: v must have the structure of x: {difference}")
    hint = "use jvp(jacobian(f), (x,), (v,)) for non-scalar outputs"
    gradient = _grad_fn(f, _Argnums((0,), single=True), False, "hvp", hint)
    return _jvp(gradient, (x,), (v,), "hvp")[1]


def _constant(x: Any) -> Any:
    if isinstance(x, Var):
        # A Var that trace() records becomes a recorded op (stop), so that a
        # program replays its value for new inputs instead of freezing it.
        return apply(_STOP, (x,)) if x.__class__ is TracedNode else value_of(x)
    return float(x)


@overload
def stop_gradient(x: float) -> float: ...
@overload
def stop_gradient(x: Any) -> Any: ...
def stop_gradient(x: Any) -> Any:
    """The value of ``x`` as a constant of the innermost transform, through any pytree.

    A Var becomes its ``data``: a float for a Var of level 0 or of a single
    transform, the outer Var inside nested transforms (so outer transforms
    still see it). Other scalars become floats, and containers keep their
    structure (arrays of Vars become arrays of values). Inside
    :func:`tapegrad.trace` (and so ``jit`` and ``vmap``) a traced Var becomes
    a recorded ``stop`` op instead, whose value a program recomputes.

    >>> import tapegrad as tg
    >>> tg.grad(lambda x: x * stop_gradient(x))(3.0)  # d/dx (x * c) = c
    3.0
    """
    cls = x.__class__
    if cls is Node or cls is Var:  # the common case, without a pytree walk
        return value_of(x)
    if cls is float:
        return x
    return tree_map(_constant, x, "stop_gradient")


_STOP = RULES["stop"]
