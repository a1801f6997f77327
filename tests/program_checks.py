"""Shared references for the tests of recorded programs (test_programs, test_jit, test_vmap).

The reference for ``jit(f)`` is ``f`` itself, run eagerly: the contract is
"the same results as ``f``", so results are compared bit for bit
(:func:`canonical`), exceptions by type and message (:func:`outcome`). The
reference for ``vmap(f)`` is a Python loop of ``f``; array functions (numpy's
``sin``, ``exp``, ``pow``) may round differently from ``math``'s, so samples
are compared to a relative tolerance (:func:`assert_batch_matches`).
"""

from __future__ import annotations

import io
import itertools
import math
import re
import tokenize
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.programs import pysource


def canonical(x: Any) -> Any:
    """A hashable, comparable picture of a result, exact to the bit and to the type.

    Floats compare by ``float.hex`` (so ``-0.0 != 0.0`` and NaN equals NaN),
    containers by type and contents, Vars by their value.
    """
    if isinstance(x, tg.Var):
        return ("Var", canonical(x.data))
    if isinstance(x, float):  # float and numpy.float64
        return (type(x).__name__, x.hex())
    if isinstance(x, (bool, int, str, bytes)) or x is None:
        return (type(x).__name__, x)
    if isinstance(x, np.ndarray):
        return ("ndarray", str(x.dtype), x.shape, tuple(canonical(float(v)) for v in x.flat))
    if isinstance(x, dict):  # pytrees order dict keys (sorted), as JAX does
        items = sorted(x.items(), key=lambda kv: repr(kv[0]))
        return (type(x).__name__, tuple((k, canonical(v)) for k, v in items))
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, tuple(canonical(v) for v in x))
    return ("other", type(x).__name__, repr(x))


def zero_sign_dropped(picture: Any) -> Any:
    """A :func:`canonical` picture (or :func:`outcome`) with ``-0.0`` read as ``0.0``.

    For the random-program tests: eager first-order gradients add into ``0.0``
    (so ``0.0 + -0.0`` is ``0.0``) where a replayed sweep may not (see
    test_jit.py::test_zero_gradients_have_fs_sign); everything else stays exact.
    """
    if picture == "-0x0.0p+0":
        return "0x0.0p+0"
    if isinstance(picture, tuple):
        return tuple(zero_sign_dropped(p) for p in picture)
    return picture


def counted(f: Callable[..., Any]) -> tuple[Callable[..., Any], list[tuple[Any, ...]]]:
    """``f`` and the list of arguments it was called with (a replay calls nothing)."""
    calls: list[tuple[Any, ...]] = []

    def g(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return f(*args, **kwargs)

    return g, calls


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What ``fn(*args)`` does: ("ok", canonical result) or ("raises", type, message)."""
    try:
        result = fn(*args, **kwargs)
    except Exception as error:  # the reference raises too: compare type and message
        return ("raises", type(error).__name__, str(error))
    return ("ok", canonical(result))


def leaves(tree: Any) -> Iterator[Any]:
    """The leaves of a result in order: floats, arrays, and static things (strings)."""
    if isinstance(tree, dict):  # in pytree order: sorted keys
        for _, v in sorted(tree.items(), key=lambda kv: repr(kv[0])):
            yield from leaves(v)
    elif isinstance(tree, (tuple, list)):
        for v in tree:
            yield from leaves(v)
    else:
        yield tree


def close(a: float, b: float, rtol: float, scale: float = 0.0) -> bool:
    """``a`` and ``b`` agree to ``rtol`` relative to their size (or ``scale``); NaN equals NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rtol * max(abs(a), abs(b), scale)


def assert_batch_matches(batched: Any, samples: Sequence[Any], rtol: float = 1e-12) -> None:
    """``batched`` (vmap's result) holds ``samples[i]`` (f's results) at index ``i``.

    Array leaves of ``batched`` have the batch axis first; static leaves
    (strings) must equal each sample's. Values agree to ``rtol`` relative to
    the larger of themselves and the output's scale (its largest finite value
    over the batch, at least 1): an ulp that ``numpy.cosh`` rounds otherwise
    than ``math.cosh`` is a large relative error in ``log2(cosh(x))`` near 0.
    """
    if not samples:
        return
    got = list(leaves(batched))
    wanted = [list(leaves(sample)) for sample in samples]
    for k, g in enumerate(got):
        column = [w[k] for w in wanted]
        if isinstance(column[0], str) or column[0] is None:
            assert all(g == w for w in column), (g, column)
            continue
        expected = np.asarray(column, dtype=np.float64)
        array = np.asarray(g, dtype=np.float64)
        assert array.shape == expected.shape, (array.shape, expected.shape)
        finite = np.abs(expected[np.isfinite(expected)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        for i in range(len(samples)):
            for a, b in zip(array[i].flat, expected[i].flat):
                assert close(float(a), float(b), rtol, scale), f"sample {i}: {a!r} != {b!r}"


# Names the generated source may use: its own locals and functions, and the
# namespace names it gives constants and functions (k3, f0, g1, d2).
_SOURCE_NAME = re.compile(
    r"(v|k|f|g|d|part)\d+|program|inputs|xp|holds|bad|elementwise|S|list|GuardFailed"
    r"|def|if|not|raise|return|None|and|or|else|del"
)


def assert_no_user_text(source: str) -> None:
    """The generated source holds only its own vocabulary: no strings, no foreign names.

    Stronger than looking for a given label: any text of the user's would have
    to reach the source as a string literal or a name, and there is none.
    """
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING:
            raise AssertionError(f"a string literal in the generated source: {token.string}")
        if token.type == tokenize.NAME:
            assert _SOURCE_NAME.fullmatch(token.string), f"unexpected name {token.string!r}"
        if token.type == tokenize.COMMENT:
            raise AssertionError(f"a comment in the generated source: {token.string}")


def set_segment(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Cut generated programs into functions of ``size`` ops, for this test only.

    ``pysource.SEGMENT`` is the setting, read each time a source is written
    (see test_segment_setting_is_read_when_source_is_generated).
    """
    monkeypatch.setattr(pysource, "SEGMENT", size)


def examples(weight: float) -> Any:
    """``weight`` times the Hypothesis profile's budget (see tests/conftest.py)."""
    from hypothesis import settings

    return settings(max_examples=max(1, round(weight * settings().max_examples)))


def near_points(xs: Sequence[float]) -> list[tuple[float, ...]]:
    """``xs`` and points a step or two away along each axis.

    ``tapegrad.testing.programs`` makes every op safe at these points (they are
    where check_grads' finite differences go), so f raises at none of them.
    """
    points = [tuple(xs)]
    for j, x in enumerate(xs):
        step = 1e-2 * max(abs(x), 1.0)
        for offset in (-1.0, 1.0, 2.0):
            p = list(xs)
            p[j] = x + offset * step
            points.append(tuple(p))
    return points


def with_guard(prog: Callable[..., Any], threshold: float) -> Callable[..., Any]:
    """``prog`` followed by a branch on its value: a guard whose outcome flips at ``threshold``.

    The random programs' own kinks (relu, abs, min, max) are not guards, so
    this is where jit must trace a second branch. Both branches are well
    conditioned (``sin`` of a value of 10^4 would turn vmap's ulps into 1e-10).
    """

    def f(*xs: Any) -> Any:
        y = prog(*xs)
        if y > threshold:
            return y * y - threshold
        return tg.math.tanh(y) * 2.0 + y

    return f


def median(values: Sequence[float]) -> float:
    """The middle value: a threshold that some points meet exactly (the edge case for jit)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def widest_gap(values: Sequence[float]) -> float:
    """A threshold between values, inside the widest gap between neighbours.

    For vmap: array functions may round a value differently from ``math`` by
    an ulp, so a sample lying *on* a threshold may take either branch. Away
    from every sample, each one's branch is the same for arrays and floats.
    The split is at an irrational fraction of the gap, so that values a
    whole or half step apart (floor, round) do not land on it either.
    """
    ordered = sorted(set(values))
    if len(ordered) == 1:
        return ordered[0] - _SPLIT
    gap, low = max((b - a, a) for a, b in itertools.pairwise(ordered))
    return low + gap * _SPLIT


_SPLIT = math.sqrt(2.0) - 1.0


def near_threshold(value: float, threshold: float) -> bool:
    """Whether ``value`` is within rounding of ``threshold`` (its branch may go either way)."""
    return abs(value - threshold) <= 1e-9 * max(abs(value), abs(threshold))


def on_vars(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` run on Vars, its results as floats: the semantics a trace records.

    On floats, ``tapegrad.testing.Program`` computes ``x ** y`` with Python's
    operator (a complex number for a negative base), where a Var raises
    ``ValueError`` as ``math.pow`` does; jit and vmap trace with Vars. Where
    the two differ, either is f's answer.
    """

    def g(*xs: float) -> Any:
        return tg.stop_gradient(f(*[tg.Var(x) for x in xs]))

    return g


def take(batched: Any, rows: Sequence[int]) -> Any:
    """The samples ``rows`` of a vmap result (arrays as numpy arrays, static leaves as they are)."""
    if isinstance(batched, dict):
        return {k: take(v, rows) for k, v in batched.items()}
    if isinstance(batched, tuple) and hasattr(batched, "_fields"):  # a namedtuple
        return type(batched)(*(take(v, rows) for v in batched))
    if isinstance(batched, (tuple, list)):
        return type(batched)(take(v, rows) for v in batched)
    if isinstance(batched, str) or batched is None:
        return batched
    return np.asarray(batched, dtype=np.float64)[list(rows)]


def steady(f: Callable[..., Any], point: Sequence[float], rtol: float = 1e-10) -> bool:
    """Whether ``f``'s results move by less than ``rtol`` when each input moves by an ulp.

    Array functions may round an intermediate value an ulp away from
    ``math``'s; where f amplifies that (``cos(sinh(19))``: ``cos`` of 1e8),
    vmap and a loop of f legitimately disagree. Such samples are left out of
    the comparison of values (not of errors).
    """
    try:
        base = [np.asarray(x, dtype=np.float64) for x in leaves(f(*point)) if _numeric(x)]
        for direction in (math.inf, -math.inf):
            moved = tuple(math.nextafter(x, direction) for x in point)
            other = [np.asarray(x, dtype=np.float64) for x in leaves(f(*moved)) if _numeric(x)]
            for a, b in zip(base, other):
                scale = max(1.0, float(np.max(np.abs(a), initial=0.0)))
                if not all(close(float(u), float(v), rtol, scale) for u, v in zip(a.flat, b.flat)):
                    return False
    except Exception:  # f raises next to the point: not steady either
        return False
    return True


def _numeric(x: Any) -> bool:
    return not isinstance(x, str) and x is not None
