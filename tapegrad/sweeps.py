"""The sweeps over a tape: reverse (adjoints), forward (tangents), and ``backward()``.

The reverse sweep is the whole of reverse-mode AD on a tape: seed the output's
adjoint with 1, then for every entry ``k`` from the output down,
``adj[input] += partial * adj[k]``. Entries come in execution order, so the
order of the sweep is already right: nothing recurses, nothing is sorted, and
a node used twice receives two contributions.

One convention holds in every sweep: a product with an exact ``0.0`` (a
float: a zero adjoint, or a zero partial such as relu's slope below 0) is
0, whatever the other factor, so ``0 * inf`` contributes 0, not NaN. The
derivative of ``sqrt(x) * 0.0`` at 0 is 0 (the slope of the zero function),
in reverse mode and in forward mode alike. A partial or adjoint that is an
outer Var is always multiplied, whatever its value: its own derivative need
not be 0.
"""

from __future__ import annotations

from typing import Any

from tapegrad.chunks import LOCK
from tapegrad.context import get_ident
from tapegrad.tape import Tape

__all__ = ["sweep_floats", "sweep_objects", "sweep_forward", "backward"]


def sweep_floats(tape: Tape, adj: list[float], start: int) -> None:
    """``adj[input] += partial * adj[k]`` for k = start .. 1, all floats (0.0: none)."""
    in1, in2, p1, p2 = tape.in1, tape.in2, tape.p1, tape.p2
    for k in range(start, 0, -1):
        g = adj[k]
        if g:  # most adjoints of a big graph are zero for a given output
            i = in1[k]
            if i:
                p = p1[k]
                if p:  # 0 * inf is 0 here (see the module docstring)
                    adj[i] += p * g
            j = in2[k]
            if j:
                p = p2[k]
                if p:
                    adj[j] += p * g


def sweep_objects(tape: Tape, adj: list[Any], start: int) -> None:
    """The reverse sweep where partials or adjoints may be Vars of an outer tape.

    ``None`` marks "no adjoint yet"; a float 0.0 is skipped like None. A
    product with a float 1.0 (the seed, the partials of ``+``) is not formed:
    on an outer tape it would be an op that changes nothing.
    """
    in1, in2, p1, p2 = tape.in1, tape.in2, tape.p1, tape.p2
    for k in range(start, 0, -1):
        g = adj[k]
        if g is None:
            continue
        unit = g.__class__ is float
        if unit:
            if not g:
                continue
            unit = g == 1.0
        i = in1[k]
        if i:
            p = p1[k]
            if p.__class__ is not float:
                c = p if unit else p * g
            elif p:  # a zero partial contributes nothing: 0 * inf is 0 here
                c = g if p == 1.0 else p if unit else p * g
            else:
                c = None
            if c is not None:
                a = adj[i]
                adj[i] = c if a is None else a + c
        j = in2[k]
        if j:
            p = p2[k]
            if p.__class__ is not float:
                c = p if unit else p * g
            elif p:
                c = g if p == 1.0 else p if unit else p * g
            else:
                c = None
            if c is not None:
                a = adj[j]
                adj[j] = c if a is None else a + c


def sweep_forward(tape: Tape, tan: list[Any], start: int) -> None:
    """Forward-mode sweep: ``tan[k] = p1 * tan[in1] + p2 * tan[in2]`` from ``start``.

    ``None`` marks a zero tangent; a float 0.0 tangent or partial is skipped.
    """
    in1, in2, p1, p2 = tape.in1, tape.in2, tape.p1, tape.p2
    for k in range(start, len(tan)):
        t = None
        for i, p in ((in1[k], p1[k]), (in2[k], p2[k])):
            if not i:
                continue
            ti = tan[i]
            if ti is None or (ti.__class__ is float and not ti):
                continue
            if p.__class__ is float and not p:
                continue  # a zero partial: 0 * inf is 0 here
            c = p * ti
            t = c if t is None else t + c
        if t is not None:
            tan[k] = t


def backward(out: Any) -> None:
    """Reverse sweep from ``out``; adds into ``.grad`` of everything it depends on."""
    tape: Tape | None = out._tape
    if tape is None:  # a leaf: d out / d out = 1
        with LOCK:
            out._grad = out._grad + 1.0
        return
    if tape.level == 0 and tape.writer == get_ident():
        # The next graph starts on a fresh chunk, so its backward() sweeps only
        # its own entries, not this one's (a training step's backward would
        # otherwise walk every earlier step left in the chunk, a sweep that
        # grows with the steps run so far).
        tape.seal()
    # Chunks of the ambient tape import from older chunks, so the newest serial
    # goes first; a chunk that receives seeds after its sweep (threads can
    # import from each other's chunks) is simply swept again with the new
    # seeds: adjoints add up linearly.
    pending: dict[int, tuple[Tape, dict[int, Any]]] = {tape.serial: (tape, {out._index: 1.0})}
    while pending:
        tape, seeds = pending.pop(max(pending))
        floats = tape.level == 0
        adj: list[Any] = [0.0] * len(tape) if floats else [None] * len(tape)
        for k, g in seeds.items():
            adj[k] = g if adj[k] is None else adj[k] + g
        if floats:
            sweep_floats(tape, adj, max(seeds))
        else:
            sweep_objects(tape, adj, max(seeds))
        with LOCK:  # leaves and stored gradients may be shared with other threads
            for k, leaf in tape.leaves:
                g = adj[k]
                if g is not None and (g.__class__ is not float or g):
                    leaf._grad = leaf._grad + g
            tape.add_grads(adj)
        for k, (ref, idx) in tape.imports.items():
            g = adj[k]
            older = ref()
            # A chunk can be gone only if no live Var reaches it: its adjoint is 0.
            if older is not None and g:
                older_seeds = pending.setdefault(older.serial, (older, {}))[1]
                older_seeds[idx] = older_seeds.get(idx, 0.0) + g
