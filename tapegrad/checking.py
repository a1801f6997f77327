"""Checking derivatives against finite differences: :func:`check_grads`.

``check_grads(f, args, order)`` computes the full Jacobian of ``f`` at
``args`` three ways and compares them entry by entry:

* forward mode, one :func:`~tapegrad.jvp` per input coordinate;
* reverse mode, one cotangent per output coordinate of :func:`~tapegrad.vjp`;
* central finite differences with Richardson extrapolation (Ridders' method:
  a Neville tableau over steps ``h, h/1.4, h/1.4**2 ...`` that stops when the
  extrapolated estimate stops improving), which also yields an error
  estimate. On smooth functions this is accurate to ~1e-12 relative, so the
  default tolerance can be tight: ``rtol=1e-7``. A disagreement is confirmed
  from first steps 10 times smaller before it is reported.

For ``order > 1`` it recurses, as JAX's ``check_grads`` does: the derivative
functions ``x -> jvp(f, x, v)[1]`` and ``x -> vjp(f, *x)[1](u)`` (for fixed
random ``v`` and ``u``) are checked again, to ``order - 1``, in every mode. So
``order=2`` checks forward-over-forward, reverse-over-forward,
forward-over-reverse and reverse-over-reverse second derivatives.

A mismatch raises ``AssertionError`` naming the order, the mode, the argument
and coordinate, the output coordinate, the AD value, the finite-difference
value and the mismatch.

>>> import tapegrad as tg
>>> check_grads(lambda x, y: tg.math.sin(x) * y**2, (0.5, 1.5), order=2)
>>> bad = tg.primitive(lambda x: x**3, lambda x, out: 2.999 * x**2, name="cube")
>>> check_grads(bad, (1.0,))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AssertionError: check_grads: order 1, mode rev: d out / d args[0] is wrong ...
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tapegrad.engine import Var
from tapegrad.pytree import TreeDef, flatten, unflatten
from tapegrad.transforms import jvp, vjp

__all__ = ["check_grads", "check_jacobian", "numerical_jacobian", "FiniteDifferenceError"]

DEFAULT_RTOL = 1e-7
DEFAULT_EPS = 1e-2  # first step of the Richardson tableau, relative to max(|x|, 1)

# Ridders' method (Numerical Recipes, dfridr): steps shrink by _CON per level.
_CON = 1.4
_CON2 = _CON * _CON
_NTAB = 12  # at most this many step sizes
_SAFE = 2.0  # stop when the error grows by this factor over the best so far
_RETRIES = 30  # step reductions allowed when f fails near the edge of its domain
# Differences within this multiple of the FD error estimate are not evidence.
_ERR_SLACK = 4.0
# The FD estimate of an entry is "not converged" when its error estimate is
# larger than this, relative to max(|fd|, |ad|, atol), and larger than _NOISE
# times max|f_k| / max(|x_j|, 1): below that it is rounding noise (at a
# stationary point, say), which the tolerance absorbs.
_UNRELIABLE = 1e-4
_NOISE = 1e-8
# A disagreement is confirmed with first steps this many times smaller.
_REFINE = 10.0
# FD cannot resolve derivatives below the rounding error of the function
# values: the default atol of entry (k, j) is this times max |f_k| (over the
# points evaluated) / max(|x_j|, 1).
_FLOOR = 1e-11
# ... where |f_k| counts as at least 1: an output that is small because terms
# cancel (log(1.0), or a derivative summed from contributions ~1) carries the
# rounding errors of those terms.
_TINY = 1.0


class FiniteDifferenceError(AssertionError):
    """Finite differences could not give a trustworthy estimate (f not smooth there)."""


# ---------------------------------------------------------------------------
# Flat views of pytree functions
# ---------------------------------------------------------------------------


def _paths(tree: TreeDef, prefix: str) -> list[str]:
    """A readable path (``args[0]['w'][1]``) for each scalar of ``tree``, in flatten order."""
    if tree.kind == "scalar":
        return [prefix]
    if tree.kind in ("list", "tuple"):
        return [p for i, c in enumerate(tree.children) for p in _paths(c, f"{prefix}[{i}]")]
    if tree.kind == "dict":
        return [p for k, c in zip(tree.keys, tree.children) for p in _paths(c, f"{prefix}[{k!r}]")]
    shape = tuple(int(s) for s in tree.keys)  # a numpy array: keys hold the shape
    out = []
    for flat in range(tree.size):
        idx = []
        for s in reversed(shape):
            idx.append(flat % s)
            flat //= s
        out.append(prefix + "[" + ", ".join(str(i) for i in reversed(idx)) + "]")
    return out


def _to_float(x: Any, what: str) -> float:
    if isinstance(x, Var):
        raise TypeError(
            f"check_grads: {what} is a Var; check_grads works on float arguments and "
            "results (call it outside of other transforms)"
        )
    return float(x)


@dataclass
class _Args:
    """The positional arguments of ``f``, flattened to one list of floats."""

    trees: list[TreeDef]
    sizes: list[int]
    values: list[float]
    paths: list[str]
    owner: list[tuple[int, int]]  # (argument index, index within it) per scalar

    @staticmethod
    def of(args: Sequence[Any]) -> _Args:
        trees: list[TreeDef] = []
        sizes: list[int] = []
        values: list[float] = []
        paths: list[str] = []
        owner: list[tuple[int, int]] = []
        for i, a in enumerate(args):
            leaves, tree = flatten(a, f"check_grads: argument {i}")
            trees.append(tree)
            sizes.append(len(leaves))
            values.extend(_to_float(x, f"argument {i}") for x in leaves)
            paths.extend(_paths(tree, f"args[{i}]"))
            owner.extend((i, j) for j in range(len(leaves)))
        return _Args(trees, sizes, values, paths, owner)

    def build(self, flat: Sequence[Any]) -> tuple[Any, ...]:
        """Positional arguments with the structure of ``args`` around ``flat``."""
        out, start = [], 0
        for tree, size in zip(self.trees, self.sizes):
            out.append(unflatten(tree, list(flat[start : start + size])))
            start += size
        return tuple(out)

    def basis(self, j: int) -> tuple[Any, ...]:
        """The unit tangent along scalar ``j``, structured like ``args``."""
        return self.build([1.0 if k == j else 0.0 for k in range(len(self.values))])


def _flat_out(out: Any, what: str) -> tuple[list[float], TreeDef]:
    leaves, tree = flatten(out, what)
    return [_to_float(x, what) for x in leaves], tree


# ---------------------------------------------------------------------------
# Finite differences: Ridders' extrapolation of central differences
# ---------------------------------------------------------------------------

_EVAL_ERRORS = (ValueError, ZeroDivisionError, OverflowError)


def _central(
    F: Callable[[list[float]], list[float]], x: list[float], j: int, h: float, fmax: list[float]
) -> list[float]:
    """``(F(x + h e_j) - F(x - h e_j)) / 2h``, componentwise; raises on non-finite values.

    Updates ``fmax``, the largest ``|F_k|`` seen, which sets the rounding floor.
    """
    xp, xm = list(x), list(x)
    xp[j] += h
    xm[j] -= h
    hp, hm = xp[j] - x[j], x[j] - xm[j]  # the steps actually taken (exact in binary)
    fp, fm = F(xp), F(xm)
    d = [(a - b) / (hp + hm) for a, b in zip(fp, fm)]
    if not all(math.isfinite(v) for v in d):
        raise OverflowError("non-finite finite difference")
    for k, (a, b) in enumerate(zip(fp, fm)):
        fmax[k] = max(fmax[k], abs(a), abs(b))
    return d


@dataclass
class _Column:
    """Finite-difference derivatives of every output along one input coordinate."""

    value: list[float]
    error: list[float]  # Ridders' error estimate
    fmax: list[float]  # largest |F_k| evaluated: the scale of rounding errors


def _ridders(
    F: Callable[[list[float]], list[float]], x: list[float], j: int, h0: float, m: int
) -> _Column:
    """Derivative of each of the ``m`` outputs of ``F`` along coordinate ``j``, and its error.

    Shrinks the first step while ``F`` fails (outside its domain) or overflows.
    """
    h = h0
    fmax = [0.0] * m
    for _ in range(_RETRIES):
        try:
            first = _central(F, x, j, h, fmax)
            break
        except _EVAL_ERRORS:
            h /= 4.0
    else:
        raise FiniteDifferenceError(
            f"check_grads: f fails at every finite-difference step around coordinate {j} "
            f"(down to {h:.3g}); is the point at the edge of f's domain?"
        )
    # One tableau per output component; rows are levels, entries are extrapolations.
    prev: list[list[float]] = [[d] for d in first]
    best = list(first)
    err = [math.inf] * m
    done = [False] * m
    for _level in range(1, _NTAB):
        if all(done):
            break
        h /= _CON
        try:
            d = _central(F, x, j, h, fmax)
        except _EVAL_ERRORS:
            break
        for k in range(m):
            if done[k]:
                continue
            row = [d[k]]
            fac = _CON2
            for i in range(1, len(prev[k]) + 1):
                row.append((row[i - 1] * fac - prev[k][i - 1]) / (fac - 1.0))
                fac *= _CON2
                errt = max(abs(row[i] - row[i - 1]), abs(row[i] - prev[k][i - 1]))
                if errt <= err[k]:
                    err[k] = errt
                    best[k] = row[i]
            if abs(row[-1] - prev[k][-1]) >= _SAFE * err[k]:
                done[k] = True
            prev[k] = row
    return _Column(best, [e if math.isfinite(e) else abs(b) for e, b in zip(err, best)], fmax)


def _step(x: float, eps: float) -> float:
    return eps * max(abs(x), 1.0)


def numerical_jacobian(
    f: Callable[..., Any], args: Sequence[Any], eps: float | None = None
) -> tuple[list[list[float]], list[list[float]]]:
    """Finite-difference Jacobian of ``f`` at ``args`` and its error estimate.

    Both are lists of rows, one row per output scalar and one column per
    input scalar, in :func:`tapegrad.pytree.flatten` order.

    >>> import tapegrad as tg
    >>> J, err = numerical_jacobian(lambda x: [tg.math.exp(x), x * x], (1.0,))
    >>> [round(row[0], 12) for row in J]
    [2.718281828459, 2.0]
    """
    fa = _Args.of(_as_args(args))
    F = _flat_fn(f, fa)
    m = len(F(fa.values))
    cols = [
        _ridders(F, fa.values, j, _step(x, DEFAULT_EPS if eps is None else eps), m)
        for j, x in enumerate(fa.values)
    ]
    J = [[c.value[k] for c in cols] for k in range(m)]
    E = [[c.error[k] for c in cols] for k in range(m)]
    return J, E


def _flat_fn(f: Callable[..., Any], fa: _Args) -> Callable[[list[float]], list[float]]:
    def F(flat: list[float]) -> list[float]:
        return _flat_out(f(*fa.build(flat)), "output of f")[0]

    return F


def _as_args(args: Any) -> tuple[Any, ...]:
    if not isinstance(args, (tuple, list)):
        raise TypeError(
            "check_grads: args must be a tuple (or list) of positional arguments, "
            f"e.g. (x,) rather than x; got {type(args).__name__}"
        )
    return tuple(args)


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------


@dataclass
class _Config:
    eps: float
    rtol: float
    atol: float | None
    modes: tuple[str, ...]
    rng: random.Random


@dataclass
class _Mismatch:
    score: float  # |ad - fd| / tolerance; > 1 is a mismatch
    text: str


def _fmt(v: float) -> str:
    return f"{v:.16g}"


def _check_once(f: Callable[..., Any], args: tuple[Any, ...], what: str, cfg: _Config) -> None:
    """Check the first derivatives of ``f`` at ``args`` in every mode of ``cfg``."""
    fa = _Args.of(args)
    y, out_tree = _flat_out(f(*args), f"{what}: output of f")
    n, m = len(fa.values), len(y)
    fds = _FD(f, fa, m, cfg.eps)

    ad: dict[str, list[list[float]]] = {}  # mode -> J[k][j]
    if "fwd" in cfg.modes:
        cols = []
        for j in range(n):
            out, tangent = jvp(f, args, fa.basis(j))
            _check_primal(out, y, what, "fwd", cfg)
            cols.append(_flat_out(tangent, f"{what}: tangent output of jvp")[0])
        ad["fwd"] = [[cols[j][k] for j in range(n)] for k in range(m)]
    if "rev" in cfg.modes:
        out, back = vjp(f, *args)
        _check_primal(out, y, what, "rev", cfg)
        rows = []
        for k in range(m):
            cot = unflatten(out_tree, [1.0 if i == k else 0.0 for i in range(m)])
            rows.append(_flat_out(list(back(cot)), f"{what}: result of vjp")[0])
        ad["rev"] = rows
    _compare(ad, fds, y, _paths(out_tree, "out"), f"check_grads: {what}", cfg)


class _FD:
    """Finite-difference columns of ``f``, computed once, and refined on demand."""

    def __init__(self, f: Callable[..., Any], fa: _Args, m: int, eps: float) -> None:
        self.F = _flat_fn(f, fa)
        self.fa = fa
        self.m = m
        self.eps = eps
        self.cols = [
            _ridders(self.F, fa.values, j, _step(x, eps), m) for j, x in enumerate(fa.values)
        ]
        self._fine: dict[int, _Column] = {}

    def fine(self, j: int) -> _Column:
        """Column ``j`` again from first steps ``_REFINE`` times smaller."""
        col = self._fine.get(j)
        if col is None:
            x = self.fa.values[j]
            col = _ridders(self.F, self.fa.values, j, _step(x, self.eps) / _REFINE, self.m)
            self._fine[j] = col
        return col


@dataclass
class _Verdict:
    ok: bool
    reliable: bool
    fd: float
    err: float
    tol: float
    atol: float


def _judge(got: float, col: _Column, k: int, x: float, y: float, cfg: _Config) -> _Verdict:
    """Compare one AD entry with one finite-difference estimate."""
    fd, err = col.value[k], col.error[k]
    f_scale = max(abs(y), col.fmax[k], _TINY)
    x_scale = max(abs(x), 1.0)
    atol = _FLOOR * f_scale / x_scale if cfg.atol is None else cfg.atol
    scale = max(abs(got), abs(fd))
    tol = atol + cfg.rtol * scale
    diff = abs(got - fd)
    if diff <= tol:
        return _Verdict(True, True, fd, err, tol, atol)
    # An error estimate large next to the derivative, and above the rounding
    # noise of f's values, means there is no derivative to compare with.
    if err > _UNRELIABLE * max(scale, atol) and err > _NOISE * f_scale / x_scale:
        return _Verdict(False, False, fd, err, tol, atol)
    tol += _ERR_SLACK * err
    return _Verdict(diff <= tol, True, fd, err, tol, atol)


def _compare(
    ad: dict[str, list[list[float]]],
    fds: _FD,
    y: list[float],
    out_paths: list[str],
    what: str,
    cfg: _Config,
) -> None:
    """Compare Jacobians ``ad[mode][k][j]`` with finite differences; raise on a mismatch.

    A disagreement is only reported if finite differences from 10 times
    smaller first steps confirm it: where the first steps are too coarse for
    the extrapolation (a function that curves sharply on the scale of the
    steps), the finer estimate agrees with AD.
    """
    fa = fds.fa
    n, m = len(fa.values), len(y)
    worst: _Mismatch | None = None
    unreliable = ""
    count = 0
    for mode, J in ad.items():
        for k in range(m):
            for j in range(n):
                got = J[k][j]
                x = fa.values[j]
                coarse = _judge(got, fds.cols[j], k, x, y[k], cfg)
                if coarse.ok:
                    continue
                fine = _judge(got, fds.fine(j), k, x, y[k], cfg)
                if fine.ok:
                    continue
                # Both disagree: report the more trustworthy estimate.
                trusted = [c for c in (coarse, fine) if c.reliable] or [coarse, fine]
                v = min(trusted, key=lambda c: c.err)
                if not v.reliable:
                    unreliable = unreliable or (
                        f"{what}: finite differences of {out_paths[k]} along "
                        f"{fa.paths[j]} do not converge (estimate {_fmt(v.fd)}, error estimate "
                        f"{v.err:.3g}, AD ({mode}) {_fmt(got)}); f may not be smooth near args, "
                        f"or the steps (eps={cfg.eps:g}) leave a region where it is: choose a "
                        "point away from kinks and domain edges, or a smaller eps"
                    )
                    continue
                count += 1
                diff = abs(got - v.fd)
                score = diff / v.tol if v.tol > 0 else math.inf
                if math.isnan(score):
                    score = math.inf
                if worst is None or score > worst.score:
                    i, jj = fa.owner[j]
                    scale = max(abs(got), abs(v.fd))
                    rel = diff / scale if scale > 0 else math.inf
                    worst = _Mismatch(
                        score,
                        f"{what}, mode {mode}: d {out_paths[k]} / d "
                        f"{fa.paths[j]} is wrong (argument {i}, coordinate {jj})\n"
                        f"  AD ({mode}):  {_fmt(got)}\n"
                        f"  finite diff: {_fmt(v.fd)}  (error estimate {v.err:.2g})\n"
                        f"  mismatch:    {diff:.3g} absolute, {rel:.3g} relative; "
                        f"tolerance {v.tol:.3g} (rtol={cfg.rtol:g}, atol={v.atol:.3g})",
                    )
    if worst is not None:
        total = len(ad) * m * n
        raise AssertionError(
            worst.text + f"\n  ({count} of {total} derivative entries mismatch; this is the worst)"
        )
    if unreliable:
        raise FiniteDifferenceError(unreliable)


def check_jacobian(
    f: Callable[..., Any],
    args: Sequence[Any],
    jac: Any,
    *,
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    name: str = "given",
) -> None:
    """Check a Jacobian computed some other way against finite differences of ``f``.

    ``jac`` is any pytree whose scalars, in flatten order, are the Jacobian
    row by row: one row per output scalar of ``f``, one column per input
    scalar of ``args`` (so the result of :func:`tapegrad.jacobian`, of
    :func:`tapegrad.grad` for a scalar ``f``, or a nested list ``J[k][j]``).
    Tolerances and errors are those of :func:`check_grads`; ``name`` labels
    the Jacobian in the message.

    >>> import tapegrad as tg
    >>> f = lambda x: tg.math.sin(x[0]) * x[1]
    >>> check_jacobian(f, ([0.3, 2.0],), tg.grad(f)([0.3, 2.0]), name="grad")
    """
    call = _as_args(args)
    cfg = _config(1, ("rev",), eps, rtol, atol)
    fa = _Args.of(call)
    y, out_tree = _flat_out(f(*call), "check_jacobian: output of f")
    n, m = len(fa.values), len(y)
    leaves, _ = flatten(jac, "check_jacobian: jac")
    if len(leaves) != m * n:
        raise ValueError(
            f"check_jacobian: jac has {len(leaves)} entries; f has {m} output and {n} input "
            f"scalars, so the Jacobian has {m * n}"
        )
    flat = [_to_float(v, "jac") for v in leaves]
    J = [flat[k * n : (k + 1) * n] for k in range(m)]
    _compare({name: J}, _FD(f, fa, m, cfg.eps), y, _paths(out_tree, "out"), "check_jacobian", cfg)


def _check_primal(out: Any, y: list[float], what: str, mode: str, cfg: _Config) -> None:
    got, _ = _flat_out(out, f"{what}: primal output of {mode}")
    for k, (a, b) in enumerate(zip(got, y)):
        if not abs(a - b) <= cfg.rtol * max(abs(a), abs(b)) + (cfg.atol or 0.0):
            raise AssertionError(
                f"check_grads: {what}, mode {mode}: the primal output {k} differs from f(*args):"
                f" {_fmt(a)} vs {_fmt(b)}"
            )


def _random_like(tree_value: Any, rng: random.Random) -> Any:
    """A pytree like ``tree_value`` with random entries in [-1, -0.25] U [0.25, 1]."""
    leaves, tree = flatten(tree_value)
    return unflatten(tree, [rng.choice((-1.0, 1.0)) * rng.uniform(0.25, 1.0) for _ in leaves])


def _check(
    f: Callable[..., Any], args: tuple[Any, ...], order: int, level: int, name: str, cfg: _Config
) -> None:
    """Check ``f`` (described by ``name``) in every mode, then its derivative functions."""
    what = f"order {level}" + ("" if level == 1 else f" (first derivatives of {name})")
    for mode in cfg.modes:
        _check_once(f, args, what, _Config(cfg.eps, cfg.rtol, cfg.atol, (mode,), cfg.rng))
        if order <= 1:
            continue
        inner = "f" if level == 1 else f"g{level - 1}"
        if mode == "fwd":
            v = tuple(_random_like(a, cfg.rng) for a in args)
            g_name = f"g{level}(x) = jvp({inner}, x, v{level})[1] with v{level} = {_short(v)}"
            _check(_jvp_fn(f, v), args, order - 1, level + 1, _chain(g_name, name), cfg)
        else:
            u = _random_like(f(*args), cfg.rng)
            g_name = f"g{level}(x) = vjp({inner}, *x)[1](u{level}) with u{level} = {_short(u)}"
            _check(_vjp_fn(f, u), args, order - 1, level + 1, _chain(g_name, name), cfg)


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 120 else text[:117] + "..."


def _chain(new: str, old: str) -> str:
    return new if not old else f"{new}, {old}"


def _jvp_fn(f: Callable[..., Any], v: tuple[Any, ...]) -> Callable[..., Any]:
    def f_jvp(*xs: Any) -> Any:
        return jvp(f, xs, v)[1]

    return f_jvp


def _vjp_fn(f: Callable[..., Any], u: Any) -> Callable[..., Any]:
    def f_vjp(*xs: Any) -> Any:
        return vjp(f, *xs)[1](u)

    return f_vjp


def _config(
    order: int,
    modes: Sequence[str],
    eps: float | None,
    rtol: float | None,
    atol: float | None,
) -> _Config:
    """Validated settings (ValueError for bad ones)."""
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"check_grads: order must be an int >= 1, got {order!r}")
    mode_tuple = (modes,) if isinstance(modes, str) else tuple(modes)
    if not mode_tuple or any(m not in ("rev", "fwd") for m in mode_tuple):
        raise ValueError(
            f'check_grads: modes must be a non-empty subset of ("rev", "fwd"), got {modes!r}'
        )
    for name, val in (("eps", eps), ("rtol", rtol), ("atol", atol)):
        if val is not None and not (
            isinstance(val, (int, float)) and not isinstance(val, bool) and val >= 0.0
        ):
            raise ValueError(f"check_grads: {name} must be a non-negative number, got {val!r}")
    if eps is not None and eps <= 0.0:
        raise ValueError(f"check_grads: eps must be positive, got {eps!r}")
    return _Config(
        eps=DEFAULT_EPS if eps is None else float(eps),
        rtol=DEFAULT_RTOL if rtol is None else float(rtol),
        atol=None if atol is None else float(atol),
        modes=tuple(dict.fromkeys(mode_tuple)),
        rng=random.Random(0),
    )


def check_grads(
    f: Callable[..., Any],
    args: Sequence[Any],
    order: int = 1,
    modes: Sequence[str] = ("rev", "fwd"),
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check derivatives of ``f`` at ``args`` up to ``order`` against finite differences.

    ``f`` takes positional arguments (pytrees of floats) and returns a pytree;
    it must be written with operators, :mod:`tapegrad.math` and primitives
    made with :func:`tapegrad.primitive`, so that it runs on floats (for
    finite differences) and on Vars (for AD).
    ``args`` is the tuple of positional arguments. ``modes`` is a subset of
    ``("rev", "fwd")``: reverse mode (``vjp``) and forward mode (``jvp``).

    Every entry of the Jacobian is compared: ``|ad - fd| <= atol + rtol *
    max(|ad|, |fd|) + 4 * fd_error``, where ``fd_error`` is the error estimate
    of the extrapolated finite difference (~1e-12 relative when ``f`` is
    smooth). ``rtol`` defaults to 1e-7; ``atol`` defaults to
    ``1e-11 * max(|f_k|, 1) / max(|x_j|, 1)`` (the largest ``|f_k|``
    among the points evaluated), the rounding floor of finite differences.
    ``eps`` is the first finite-difference step relative to ``max(|x_j|, 1)``
    (default 1e-2; steps shrink from there, and shrink further where ``f``
    fails, at the edge of its domain). An entry that disagrees is estimated
    again from first steps 10 times smaller and reported only if that
    estimate disagrees too.

    Raises ``AssertionError`` for the worst mismatch, naming the order, the
    mode, the argument and coordinate, the output, both values and the
    mismatch; :class:`FiniteDifferenceError` (an ``AssertionError``) when
    finite differences do not converge, e.g. at a kink of ``f``.

    >>> import tapegrad as tg
    >>> check_grads(lambda p: tg.math.exp(p["a"]) * p["b"], ({"a": 0.3, "b": -2.0},), order=2)
    """
    cfg = _config(order, modes, eps, rtol, atol)
    _check(f, _as_args(args), order, 1, "", cfg)
