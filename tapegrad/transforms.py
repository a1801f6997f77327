"""Function transforms: ``vjp`` (the core), ``grad``, ``value_and_grad``, ``jacobian``,
``hessian``, ``jvp`` and ``hvp``.

Every transform traces ``f`` once on a fresh tape one level above the current
ones (:func:`_trace`), with its arguments replaced by Vars of that tape, and
then sweeps that tape: in reverse for ``vjp`` (and so ``grad``,
``value_and_grad``, ``jacobian``), forward with tangents for ``jvp``.
``hessian`` is ``jacobian(grad(f))`` and ``hvp`` is forward-over-reverse,
``jvp(grad(f))``.

Because the partials on a level-``n`` tape are values of level ``n - 1``, the
sweeps themselves record on the outer tape, so transforms nest to any order;
a Var of an outer level that ``f`` closes over is a constant of the inner
tape, which rules out perturbation confusion.

Results mirror the input structure (see :mod:`tapegrad.pytree`). Inside an
outer transform the results are Vars of the outer tape, so that the outer
transform can differentiate them; at top level they are floats.

>>> import tapegrad as tg
>>> tg.grad(lambda x: x**3)(2.0)
12.0
>>> tg.grad(tg.grad(lambda x: x**3))(2.0)
12.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tapegrad.engine import (
    INPUT,
    Node,
    Tape,
    Var,
    pop_tape,
    push_tape,
    sweep_forward,
    sweep_objects,
)
from tapegrad.pytree import TreeDef, flatten, unflatten

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian", "hvp"]

Argnums = int | Sequence[int]


@dataclass
class _Trace:
    """What one call of ``f`` recorded: the tape, where the inputs and outputs are."""

    tape: Tape
    in_trees: list[TreeDef]  # one per differentiated argument
    in_index: list[list[int]]  # tape indices of each argument's scalars
    out: Any  # f's result with the tape's Vars replaced by their values
    out_tree: TreeDef
    out_index: list[int]  # tape index of each output scalar (0: not on the tape)
    aux: Any = None


def _normalize_argnums(argnums: Argnums, nargs: int, name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise ValueError(f"{name}: argnums must name at least one argument")
    for a in nums:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"{name}: argnums must be ints, got {a!r}")
        if not -nargs <= a < nargs:
            raise ValueError(
                f"{name}: argnums {a} is out of range for a call with {nargs} positional argument"
                + ("" if nargs == 1 else "s")
            )
    return tuple(a % nargs for a in nums)


def _wrap(tape: Tape, leaves: list[Any]) -> list[Var]:
    """Vars of ``tape`` standing for input scalars (entries without inputs)."""
    values = [x if isinstance(x, Var) else float(x) for x in leaves]
    first = len(tape)
    tape.push_markers(INPUT, values)
    wrapped: list[Var] = []
    for k, value in enumerate(values, first):
        v: Node = Node()
        v.data = value
        v._tape = tape
        v._index = k
        v._keep = None
        wrapped.append(v)
    return wrapped


def _unwrap(tape: Tape, x: Any) -> Any:
    """The value of an output scalar as seen outside ``tape``."""
    if isinstance(x, Var):
        if x._tape is tape:
            return x.data
        return x
    return float(x)


def _unwrap_aux(tape: Tape, aux: Any) -> Any:
    """``aux`` with this tape's Vars replaced by their values; anything else kept."""
    if isinstance(aux, Var):
        return aux.data if aux._tape is tape else aux
    if isinstance(aux, (list, tuple)):
        items = [_unwrap_aux(tape, x) for x in aux]
        if isinstance(aux, list):
            return items
        return type(aux)(*items) if hasattr(aux, "_fields") else tuple(items)  # namedtuples
    if isinstance(aux, dict):
        return {k: _unwrap_aux(tape, x) for k, x in aux.items()}
    return aux


def _trace(
    f: Callable[..., Any], args: tuple[Any, ...], argnums: tuple[int, ...], name: str, has_aux: bool
) -> _Trace:
    """Call ``f(*args)`` on a new tape with ``args[argnums]`` as its input Vars."""
    in_flat = [flatten(args[a], f"{name}: argument {a}") for a in argnums]
    tape, token = push_tape()
    try:
        new_args = list(args)
        in_index: list[list[int]] = []
        for a, (leaves, tree) in zip(argnums, in_flat):
            wrapped = _wrap(tape, leaves)
            in_index.append([v._index for v in wrapped])
            new_args[a] = unflatten(tree, wrapped)
        result = f(*new_args)
    finally:
        pop_tape(tape, token)
    aux = None
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"{name}: with has_aux=True, f must return a pair (output, aux)")
        result, aux = result
        aux = _unwrap_aux(tape, aux)
    out_leaves, out_tree = flatten(result, f"{name}: output of f")
    out_index = []
    for x in out_leaves:
        if isinstance(x, Var) and x._tape is not None and x._tape.level >= tape.level:
            if x._tape is not tape:
                raise ValueError(f"{name}: f returned a Var of another transform's tape")
            out_index.append(x._index)
        else:
            out_index.append(0)  # a constant: does not depend on the inputs
    out = unflatten(out_tree, [_unwrap(tape, x) for x in out_leaves])
    return _Trace(tape, [t for _, t in in_flat], in_index, out, out_tree, out_index, aux)


def _pullback(tr: _Trace, cotangents: list[Any]) -> list[Any]:
    """Reverse sweep: the cotangent of every differentiated argument, structured."""
    tape = tr.tape
    adj: list[Any] = [None] * len(tape)
    for k, ct in zip(tr.out_index, cotangents):
        if k:
            adj[k] = ct if adj[k] is None else adj[k] + ct
    start = max(tr.out_index, default=0)
    if start:
        sweep_objects(tape, adj, start)
    return [
        unflatten(tree, [0.0 if adj[k] is None else adj[k] for k in idx])
        for tree, idx in zip(tr.in_trees, tr.in_index)
    ]


def _scalar_output(tr: _Trace, name: str) -> None:
    if tr.out_tree.kind != "scalar":
        raise TypeError(
            f"{name}: f must return a scalar (a float or Var), got a {tr.out_tree.kind}"
            f" of {tr.out_tree.size} values; use jacobian for non-scalar outputs"
        )


def _pick(grads: list[Any], argnums: Argnums) -> Any:
    return grads[0] if isinstance(argnums, int) else tuple(grads)


def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """``(f(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` returns one cotangent per primal.

    The cotangent has the structure of ``f``'s output. With ``has_aux``, the
    result is ``(out, vjp_fn, aux)``.

    >>> out, back = vjp(lambda x, y: x * y, 2.0, 3.0)
    >>> out, back(1.0)
    (6.0, (3.0, 2.0))
    """
    if not primals:
        raise TypeError("vjp: needs at least one primal argument")
    tr = _trace(f, primals, tuple(range(len(primals))), "vjp", has_aux)

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        leaves, tree = flatten(cotangent, "vjp: cotangent")
        if tree.size != tr.out_tree.size:
            raise ValueError(
                f"vjp: the cotangent has {tree.size} values, the output of f has {tr.out_tree.size}"
            )
        return tuple(_pullback(tr, leaves))

    return (tr.out, vjp_fn, tr.aux) if has_aux else (tr.out, vjp_fn)


def value_and_grad(
    f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """A function returning ``(f(*args), gradient)``; ``((value, aux), gradient)`` with aux.

    >>> value_and_grad(lambda x: x * x)(3.0)
    (9.0, 6.0)
    """

    def value_and_grad_f(*args: Any) -> Any:
        nums = _normalize_argnums(argnums, len(args), "value_and_grad")
        tr = _trace(f, args, nums, "grad", has_aux)
        _scalar_output(tr, "grad")
        grads = _pick(_pullback(tr, [1.0]), argnums)
        return ((tr.out, tr.aux), grads) if has_aux else (tr.out, grads)

    return value_and_grad_f


def grad(f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of scalar ``f`` w.r.t. ``args[argnums]``, shaped like that argument.

    A tuple of gradients for tuple ``argnums``; ``(gradient, aux)`` with ``has_aux``.

    >>> grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 5.0)
    (5.0, 2.0)
    """
    vg = value_and_grad(f, argnums, has_aux)

    def grad_f(*args: Any) -> Any:
        value, g = vg(*args)
        return (g, value[1]) if has_aux else g

    return grad_f


def jacobian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """``J[i][j] = d out_i / d in_j``: the output structure outside, the input's inside.

    Computed in reverse mode, one sweep per output scalar. numpy arrays nest
    as in JAX: an output of shape ``(m,)`` and an input of shape ``(n,)`` give an
    array of shape ``(m, n)``.

    >>> jacobian(lambda x: [x[0] * x[1], x[0] + x[1]])([2.0, 3.0])
    [[3.0, 2.0], [1.0, 1.0]]
    """

    def jacobian_f(*args: Any) -> Any:
        nums = _normalize_argnums(argnums, len(args), "jacobian")
        tr = _trace(f, args, nums, "jacobian", False)
        rows = []
        for i in range(tr.out_tree.size):
            seed = [1.0 if k == i else 0.0 for k in range(tr.out_tree.size)]
            rows.append(_pick(_pullback(tr, seed), argnums))
        return unflatten(tr.out_tree, rows)

    return jacobian_f


def hessian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """``H[i][j] = d2 f / d in_i d in_j`` of scalar ``f``: ``jacobian(grad(f))``.

    >>> hessian(lambda x: x[0] ** 2 * x[1])([1.0, 2.0])
    [[4.0, 2.0], [2.0, 0.0]]
    """
    return jacobian(grad(f, argnums), argnums)


def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """Forward mode: ``(f(*primals), J @ tangents)``, one forward sweep with tangents.

    >>> jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    (6.0, 3.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples of arguments")
    if len(primals) != len(tangents):
        raise ValueError(
            f"jvp: {len(primals)} primals but {len(tangents)} tangents; give one tangent per primal"
        )
    primals = tuple(primals)
    tr = _trace(f, primals, tuple(range(len(primals))), "jvp", False)
    tan: list[Any] = [None] * len(tr.tape)
    for a, (tangent, tree, idx) in enumerate(zip(tangents, tr.in_trees, tr.in_index)):
        leaves, ttree = flatten(tangent, f"jvp: tangent {a}")
        if ttree.size != tree.size:
            raise ValueError(
                f"jvp: tangent {a} has {ttree.size} values, primal {a} has {tree.size}"
            )
        for k, t in zip(idx, leaves):
            tan[k] = t if isinstance(t, Var) else float(t)
    sweep_forward(tr.tape, tan, 1)
    out_tan = [0.0 if k == 0 or tan[k] is None else tan[k] for k in tr.out_index]
    return tr.out, unflatten(tr.out_tree, out_tan)


def hvp(f: Callable[..., Any], x: Any, v: Any) -> Any:
    """Hessian of scalar ``f`` at ``x`` times ``v``, shaped like ``x`` (forward-over-reverse).

    >>> hvp(lambda x: x[0] ** 2 * x[1], [1.0, 2.0], [1.0, 0.0])
    [4.0, 2.0]
    """
    return jvp(grad(f), (x,), (v,))[1]
