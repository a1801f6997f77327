"""Programs by *signature*: what a replay is specialised to, and the LRU that keeps them.

:func:`signature` splits a call's arguments into the key a program is
specialised to (the structure of the arguments and every leaf that is not a
float) and the program's inputs (the float leaves); :class:`Cache` holds
programs by that key, each key a list of branches, at most a given number
of programs in all, least recently used out first. ``jit`` and ``vmap`` both
keep their programs this way.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from tapegrad.handle import Handle
from tapegrad.programs.program import Program
from tapegrad.programs.recording import is_input
from tapegrad.pytree import flatten

__all__ = ["signature", "no_signature_reason", "Cache"]


def signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Hashable | None, list[Any]]:
    """(What a program is specialised to, the program's inputs) at these arguments.

    The signature is the structure of the arguments and every leaf that is not
    a float (its type and value); None when a leaf is unhashable, a Var
    (whose derivative a replay would drop) or a numpy float narrower than
    float64 (which f computes with in its own precision, a program in
    float64). The inputs are the float leaves. :func:`no_signature_reason`
    says which.
    """
    kinds: set[type] = set()
    leaves, tree = flatten((args, kwargs), "jit: argument", static=True, kinds=kinds)
    if kinds <= {float}:  # the common case
        if tree._hash is None:  # an unhashable static leaf (a namespace, a set)
            return None, []
        return (tree,), leaves
    if any(issubclass(kind, Handle) or _narrow_float(kind) for kind in kinds):
        return None, []
    if tree._hash is None:
        return None, []
    fixed = tuple(
        ("float",) if is_input(leaf) else (type(leaf), _hashable(leaf)) for leaf in leaves
    )
    key = (tree, fixed)
    try:
        hash(key)
    except TypeError:  # e.g. an unhashable object among the arguments
        return None, []
    return key, [float(leaf) for leaf in leaves if is_input(leaf)]


def no_signature_reason(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Why :func:`signature` gave None, as a warning's words; None for Vars (no warning)."""
    kinds: set[type] = set()
    flatten((args, kwargs), "jit: argument", static=True, kinds=kinds)
    if any(issubclass(kind, Handle) for kind in kinds):
        return None  # grad(jit(f)): documented, f runs on the Vars
    narrow = sorted(kind.__name__ for kind in kinds if _narrow_float(kind))
    if narrow:
        return (
            f"its arguments hold {', '.join(narrow)} numbers, which {{name}} computes with in "
            "their own precision while a program computes in float64"
        )
    return (
        "an argument that is not a number (a namespace, a set, an array of strings) is "
        "not hashable, so no program can be keyed by it; pass a hashable value (a tuple, "
        "a frozen dataclass) or close over it"
    )


def _narrow_float(kind: type) -> bool:
    """A numpy floating type other than float64 (float32, float16, longdouble)."""
    if issubclass(kind, float):
        return False
    np = sys.modules.get("numpy")
    return np is not None and issubclass(kind, np.floating)


def _hashable(leaf: Any) -> Any:
    return leaf.item() if hasattr(leaf, "item") and hasattr(leaf, "dtype") else leaf


class Cache:
    """Programs by signature, each signature a list of branches; LRU over all programs."""

    def __init__(self, max_programs: int) -> None:
        self.max_programs = max_programs
        self.branches: OrderedDict[Hashable, list[Program]] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> list[Program]:
        with self.lock:
            found = self.branches.get(key)
            if found is None:
                return []
            self.branches.move_to_end(key)
            return list(found)

    def add(self, key: Hashable, program: Program) -> None:
        with self.lock:
            self.branches.setdefault(key, []).insert(0, program)
            self.branches.move_to_end(key)
            self.size += 1
            while self.size > self.max_programs:
                oldest = next(iter(self.branches))
                dropped = self.branches[oldest].pop()
                self.size -= 1
                if not self.branches[oldest]:
                    del self.branches[oldest]
                del dropped
