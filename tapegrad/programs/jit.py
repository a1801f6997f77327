"""``jit``: a function replayed as generated straight-line Python, guarded.

On the first call for a given *signature* (the structure of the arguments,
and every leaf that is not a float: ints, bools, strings, arrays' shapes),
``jit(f)`` traces ``f`` (:mod:`tapegrad.programs.recording`), turns the trace
into Python source with one statement per op (:mod:`tapegrad.programs.pysource`),
compiles it, and returns what the traced call computed. Later calls with
that signature run the compiled program and check its guards. A failed guard
means ``f`` takes another branch at these arguments: ``f`` is traced again,
and that branch is kept too (each signature keeps a list of branches, and
the cache as a whole holds at most ``max_cache`` programs, least recently
used out first). The answer is never computed down the wrong branch.

When replay is not the right tool, ``f`` itself is called (eagerly), so the
result is always ``f``'s:

* a program that raises (a domain error, a division by zero) or returns a
  non-finite value: ``f`` is called, and raises (or returns) what it would;
* arguments that are Vars (``grad(jit(f))``, or ``jit(f)(v)``): replaying
  floats would drop their derivatives, so ``f`` runs on the Vars;
* a trace that compared a NaN (its guards say nothing), that holds a Var
  ``f`` closed over (a model's parameter, which may change), in which ``f``
  read a traced value (``x.data``, which the program would replay as the
  number it was), or that returns an object other than numbers in lists,
  tuples and dicts (which may hold traced Vars): not kept, with a warning for
  all but the first, since then every call runs ``f``.
  ``tapegrad.stop_gradient(x)`` is the recorded way to use a value as a
  constant;
* ``f`` converts a traced value to a float (``float(x)``, Python's ``math``):
  it cannot be traced, so with a warning every call at that signature runs
  ``f``.

The call that traces returns what the trace computed, unless that is not
finite: then, as at replay, ``f``'s own answer (or error) is returned.

Replay is only valid for a function whose ops depend on nothing but its
arguments: Python side effects, randomness, and loop counts taken from
globals are frozen at trace time (docs/programs.md).
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, TypeVar

from tapegrad.handle import ConversionError, Handle
from tapegrad.programs.program import Program
from tapegrad.programs.pysource import GuardFailed
from tapegrad.programs.recording import is_input, trace_call
from tapegrad.pytree import flatten, unflatten

__all__ = ["jit", "trace", "signature", "Cache"]

P = ParamSpec("P")
R = TypeVar("R")


def trace(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Program:
    """The :class:`Program` that ``f`` records at ``args``.

    Float leaves of the arguments are the program's inputs (each comparison
    of a value computed from them is a guard); other leaves are fixed.
    Transforms inside ``f`` are recorded with their sweeps, so a traced
    ``value_and_grad(g)`` computes the gradient as ordinary ops.

    >>> import tapegrad as tg
    >>> prog = tg.trace(tg.grad(lambda x: x * x * x), 2.0)
    >>> print(prog)  # the reverse sweep's ops: x * x three times, formed once
    %1 = input
    %2 = mul %1 %1
    %3 = add %2 %2
    %4 = add %3 %2
    return %4
    >>> prog(3.0)  # 3 x**2 at 3
    27.0
    """
    if not callable(f):
        raise TypeError(f"trace: f must be callable, got {type(f).__name__} {f!r}")
    return Program(trace_call(f, args, kwargs))


def signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Hashable | None, list[Any]]:
    """(What a program is specialised to, the program's inputs) at these arguments.

    The signature is the structure of the arguments and every leaf that is not
    a float (its type and value); None when a leaf is unhashable or a Var
    (whose derivative a replay would drop). The inputs are the float leaves.
    """
    kinds: set[type] = set()
    leaves, tree = flatten((args, kwargs), "jit: argument", static=True, kinds=kinds)
    if kinds <= {float}:  # the common case
        return (tree,), leaves
    if any(issubclass(kind, Handle) for kind in kinds):
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


_NOT_KEPT = (
    "jit({name}): the traced program reads a Var's value (.data), holds or compares a "
    "Var that {name} closes over, or returns an object that is not numbers, lists, tuples and "
    "dicts, so it cannot stand for other arguments: every call runs {name} itself. "
    "Pass such Vars as arguments, and take constants with tapegrad.stop_gradient."
)
_UNTRACEABLE = (
    "jit({name}): {name} converts its arguments to floats (float(x), Python's math "
    "module, numpy on scalars), which jit cannot trace (it calls {name} with Vars): "
    "every call runs {name} itself. tapegrad.math is the traceable drop-in for math."
)


def _warn_once(warned: set[str], message: str, f: Callable[..., Any]) -> None:
    if message not in warned:
        warned.add(message)
        warnings.warn(message.format(name=getattr(f, "__name__", "f")), stacklevel=3)


def jit(f: Callable[P, R], *, max_cache: int = 64) -> Callable[P, R]:
    """``f`` replayed from recorded programs: same results, a fraction of the time.

    See the module docstring for when it traces, replays, or calls ``f``.

    >>> import tapegrad as tg
    >>> def rosen(x):
    ...     return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    ...                for i in range(len(x) - 1))
    >>> fast = tg.jit(tg.value_and_grad(rosen))
    >>> fast([1.0, 2.0]) == tg.value_and_grad(rosen)([1.0, 2.0])
    True
    >>> fast([0.5, 0.5])  # the same program, replayed
    (6.5, [-51.0, 50.0])
    """
    if not callable(f):
        raise TypeError(f"jit: f must be callable, got {type(f).__name__} {f!r}")
    if not isinstance(max_cache, int) or isinstance(max_cache, bool) or max_cache < 1:
        raise ValueError(f"jit: max_cache must be a positive int, got {max_cache!r}")
    if getattr(f, "replays_programs", False):
        # vmap(f) already replays guarded programs, on arrays: tracing it would
        # unroll its batch into one program that grows with the batch.
        return f
    cache = Cache(max_cache)
    warned: set[str] = set()
    untraceable: set[Hashable] = set()  # signatures at which f converts a Var to a float

    @functools.wraps(f)
    def jitted(*args: P.args, **kwargs: P.kwargs) -> R:
        key, inputs = signature(args, kwargs)
        if key is None:  # Vars among the arguments, or an unhashable leaf
            return f(*args, **kwargs)
        for program in cache.get(key):
            try:
                flat = program.run(inputs)
            except GuardFailed:
                continue  # another branch of f
            except Exception:  # an error f raises too, with its own message
                return f(*args, **kwargs)
            if not program.finite(flat):
                return f(*args, **kwargs)
            result: R = unflatten(program.out_tree, flat)
            return result
        if key in untraceable:
            return f(*args, **kwargs)
        try:
            traced = trace_call(f, args, kwargs)
        except ConversionError:  # f turned a traced value into a float (math.sin, float())
            if len(untraceable) >= max_cache:  # bounded like the cache of programs
                untraceable.clear()
            untraceable.add(key)
            _warn_once(warned, _UNTRACEABLE, f)
            return f(*args, **kwargs)
        program = Program(traced)
        if program.replayable:
            program.compile()  # the first call pays for all of it: trace, generate, compile
            cache.add(key, program)
            if not program.finite(flatten(traced.result, static=True)[0]):
                # As at replay: f's own non-finite answer (or error), not the trace's.
                return f(*args, **kwargs)
        elif not program.compared_nan:
            _warn_once(warned, _NOT_KEPT, f)
            if program.opaque_outputs:  # it may hold the trace's Vars: f's own object
                return f(*args, **kwargs)
        out: R = traced.result
        return out

    jitted.cache = cache  # type: ignore[attr-defined]
    return jitted
