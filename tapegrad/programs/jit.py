"""``jit``: a function replayed as generated straight-line Python, guarded.

On the first call for a given *signature* (the structure of the arguments,
and every leaf that is not a float: ints, bools, strings, arrays' shapes; see
:mod:`tapegrad.programs.cache`), ``jit(f)`` traces ``f``
(:mod:`tapegrad.programs.recording`), turns the trace into Python source with
one statement per op (:mod:`tapegrad.programs.pyscalar`),
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
  floats would drop their derivatives, so ``f`` runs on the Vars; arguments
  holding numpy float32 (or float16) numbers, which ``f`` computes with in
  their precision; unhashable arguments that are not numbers (a namespace):
  no program can be keyed by them (the last two with a one-time warning);
* a trace through a *route* (:func:`tapegrad.context.note_route`): a traced
  value reached Python as Python data (``float``, ``__index__``, ``format``
  with a spec, ``str``, a hash, ``.data``, an op that raised, caught or
  not ...). No program is kept, ``f`` runs for that call and every later call
  at that signature, and ``jit`` warns once per route and ``file:line``;
* a trace that compared a NaN (its guards say nothing), that holds a Var
  ``f`` closed over (a model's parameter, which may change), or that returns
  an object other than numbers in lists, tuples and dicts (which may hold
  traced Vars): not kept, with a warning for all but the first;
* a signature that keeps re-tracing (more than half of its recent calls
  each took a new branch: builtin ``max(0.0, s)`` per unit): tracing costs
  more than it saves, so ``jit`` stops tracing it and warns once with the fix
  (``tapegrad.math.relu``, ``maximum``).

The call that traces returns what the trace computed, unless that is not
finite: then, as at replay, ``f``'s own answer (or error) is returned.

Replay is only valid for a function whose ops depend on nothing but its
arguments: Python side effects, randomness, and loop counts taken from
globals are frozen at trace time (docs/programs.md).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, TypeVar

from tapegrad.handle import ConversionError
from tapegrad.programs.cache import Cache, no_signature_reason, signature
from tapegrad.programs.program import Program
from tapegrad.programs.pysource import GuardFailed
from tapegrad.programs.recording import Recorder, trace_call
from tapegrad.pytree import flatten, unflatten

__all__ = ["jit", "trace"]

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


_NOT_KEPT = (
    "jit({name}): the traced program reads a Var's value (.data), holds a Var that "
    "{name} closes over, or returns an object that is not numbers, lists, tuples and "
    "dicts, so it cannot stand for other arguments: every call runs {name} itself. "
    "Pass such Vars as arguments, and take constants with tapegrad.stop_gradient."
)
_UNTRACEABLE = (
    "jit({name}): {name} converts its arguments to floats (float(x), Python's math "
    "module, numpy on scalars), which jit cannot trace (it calls {name} with Vars): "
    "every call runs {name} itself. tapegrad.math is the traceable drop-in for math."
)
_ROUTE = (
    "jit({{name}}): {route} at {where} takes a traced value into Python, where a program "
    "would keep it as the constant it was: no program is kept, and every call with these "
    "kinds of arguments runs {{name}} itself. {hint}"
)
_NO_SIGNATURE = "jit({{name}}): {why}: every such call runs {{name}} itself."
_RETRACING = (
    "jit({{name}}): {traces} of the last {calls} calls with one kind of arguments took a "
    "branch not traced before (a comparison per value, such as builtin max(0.0, s) per "
    "unit), so tracing costs more than it saves: jit stops tracing these and runs "
    "{{name}} itself. tapegrad.math.relu, maximum and minimum compute such kinks inside one "
    "op, which a program replays for any input."
)

# What to do instead, by the first word of a route (see Handle and record).
_ROUTE_HINTS = {
    "float()": (
        "jit cannot trace a conversion to float (float(x), Python's math module, numpy on "
        "scalars): tapegrad.math is the traceable drop-in for math."
    ),
    "int()": "Compare the value to branch (a guard); keep ints out of the traced values.",
    "__index__": "Compare the value to branch (a guard); index with fixed ints.",
    "complex()": "tapegrad differentiates real numbers only.",
    "format": "Return the value and format it outside the jitted function.",
    "str()/repr()": "Return the value and format it outside the jitted function.",
    "hash": "Compare with == (a guard) instead of a set or dict lookup by value.",
    "comparison": "Pass the Var as an argument.",
    ".data": "Use tapegrad.stop_gradient(x) for a constant; pass parameters as arguments.",
    ".grad": "Pass gradients as arguments, or take them with tapegrad.grad inside.",
    "a": "jit computes in float64: use float (float64) constants.",
    "__getstate__": "Copy Vars with copy.copy; pickle values outside the jitted function.",
}
_RAISED_HINT = (
    "An op raised at the traced arguments: test its domain with a comparison "
    "(if x != 0: ...) rather than catching the error."
)


def _route_message(route: str, where: str) -> str:
    raised = " raised by " in route
    hint = _RAISED_HINT if raised else _ROUTE_HINTS.get(route.split(" ")[0], "")
    return _ROUTE.format(route=route, where=where, hint=hint)


def _warn_once(warned: set[str], message: str, f: Callable[..., Any]) -> None:
    if message not in warned:
        warned.add(message)
        warnings.warn(message.format(name=getattr(f, "__name__", "f")), stacklevel=3)


# A signature stops being traced when, within a window of this many calls of
# the jitted function since its first trace (at least half of them seen),
# more than half of them traced it anew.
_RETRACE_WINDOW = 40


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
    # Signatures at which f runs itself: it converts a Var (float()), a value
    # took another route into Python, or it keeps re-tracing.
    untraceable: set[Hashable] = set()
    # Per signature: (calls counter when its window opened, traces in it).
    retraces: dict[Hashable, list[int]] = {}
    calls = [0]  # calls of the jitted function (a list: shared by the closure)

    def run_f_from_now_on(key: Hashable) -> None:
        if len(untraceable) >= max_cache:  # bounded like the cache of programs
            untraceable.clear()
        untraceable.add(key)

    def keeps_retracing(key: Hashable) -> bool:
        """Count a new trace of ``key``; whether it is traced more than every other call."""
        window = retraces.get(key)
        if window is None or calls[0] - window[0] >= _RETRACE_WINDOW:
            if len(retraces) >= 4 * max_cache:
                retraces.clear()
            window = retraces[key] = [calls[0] - 1, 0]
        window[1] += 1
        seen = calls[0] - window[0]
        if seen >= _RETRACE_WINDOW // 2 and window[1] > seen / 2:
            message = _RETRACING.format(traces=window[1], calls=seen)
            _warn_once(warned, message, f)
            return True
        return False

    def warn_routes(routes: list[tuple[str, str]]) -> None:
        for route, where in routes:
            _warn_once(warned, _route_message(route, where), f)

    @functools.wraps(f)
    def jitted(*args: P.args, **kwargs: P.kwargs) -> R:
        calls[0] += 1
        key, inputs = signature(args, kwargs)
        if key is None:  # Vars among the arguments, an unhashable or a float32 leaf
            why = no_signature_reason(args, kwargs)
            if why is not None:
                _warn_once(warned, _NO_SIGNATURE.format(why=why), f)
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
        if keeps_retracing(key):
            run_f_from_now_on(key)
            return f(*args, **kwargs)
        recorder = Recorder()
        try:
            traced = trace_call(f, args, kwargs, recorder)
        except Exception as error:
            # f raised on the tracing tape: nothing is kept, and f itself runs
            # (it raises its own error, or returns its answer on floats). If a
            # value took a route first (float(x), table[x]), f runs at this
            # signature from now on; an op that raised and was not caught is
            # only f's own error at these arguments.
            taken = [r for r in recorder.routes if " raised by " not in r[0]]
            if taken or isinstance(error, ConversionError):
                run_f_from_now_on(key)
                if taken:
                    warn_routes(taken)
                else:
                    _warn_once(warned, _UNTRACEABLE, f)
            return f(*args, **kwargs)
        program = Program(traced)
        if program.routes:
            # A value left the tape: the trace's own result may differ from
            # f's (a set lookup by identity, float64 for float32), so f runs.
            run_f_from_now_on(key)
            warn_routes(program.routes)
            return f(*args, **kwargs)
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
