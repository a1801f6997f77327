"""Hypothesis strategies for testing derivatives: random programs and primitive inputs.

This module needs `Hypothesis <https://hypothesis.readthedocs.io>`_ (a
development dependency); ``import tapegrad`` does not import it.

* :func:`programs` draws a random differentiable :class:`Program`: a
  straight-line DAG of up to ~50 primitive operations over 1-4 inputs, built
  while evaluating it on floats, so every op is used only where it is smooth
  and safely inside its domain, not only at the drawn inputs but at every point
  that :func:`tapegrad.check_grads` visits around them (no ``log`` of a value
  near 0, no ``relu`` near 0, no ``minimum`` near a tie, no ``tan`` near a
  pole, no value above 1e6, no value finite differences cannot resolve, no
  op whose arguments' variations cancel). Unused results are added into the
  output, so every op matters.
* :func:`inputs_for` draws argument tuples inside one primitive's domain.
* :func:`op_spec` describes a user's own :func:`tapegrad.primitive` (its arity
  and domain) so that :func:`programs` can mix it with the built-in ones, and
  :func:`primitive_test` turns it into a ready-made Hypothesis test.

>>> import tapegrad as tg
>>> from hypothesis import given, settings
>>> from tapegrad.testing import programs
>>> @settings(max_examples=5, deadline=None)
... @given(programs(max_ops=10))
... def test_programs(prog):
...     tg.check_grads(prog, prog.inputs, order=2)
>>> test_programs()

A :class:`Program` is a plain data object: call it with floats or Vars, print
it to read it (Hypothesis prints the shrunk failing program this way)::

    Program(n_inputs=2, inputs=(0.5, -1.25)):
        v2 = tm.sin(x0)
        v3 = v2 * x1
        v4 = v3.exp()
        return v4
"""

from __future__ import annotations

import itertools
import math
import operator
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, reject
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from tapegrad import math as tm
from tapegrad.checking import DEFAULT_EPS, check_grads
from tapegrad.engine import Var
from tapegrad.rules import EDGE as _EDGE
from tapegrad.rules import RULES, Inputs, Rule, call

__all__ = [
    "OpSpec",
    "Op",
    "Program",
    "BUILTIN_OPS",
    "op_spec",
    "inputs_for",
    "extreme_inputs_for",
    "programs",
    "primitive_test",
    "MAX_MAGNITUDE",
    "UNCHECKABLE",
]

# Every value of a generated program, at every point check_grads visits, is
# at most this large: derivatives stay well scaled and nothing overflows.
MAX_MAGNITUDE = 1e6
# The distances kept from a domain edge and from a kink (tapegrad.rules.EDGE, KINK).
# Offsets, in units of check_grads' first finite-difference step, of the
# points on each coordinate line through the inputs where every op must be
# safely inside its domain.
_OFFSETS = (-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0)  # 9 equally spaced with 0

# domain(*args) -> bool, or a float: the distance from args to the nearest
# domain edge or kink, less the margin kept from it (<= 0: outside).
Domain = Callable[..., "bool | float"]


@dataclass(frozen=True, eq=False)
class OpSpec:
    """What the strategies need to know about one primitive.

    * ``name``: the primitive's name (a ``RULES`` key for built-in ones);
    * ``arity``: number of inputs;
    * ``fn``: the function, on floats and on Vars;
    * ``domain(*args)``: where the primitive is smooth and safely defined,
      either a bool, or better a float: how far ``args`` are from the nearest
      domain edge or kink (positive inside, less any margin you want kept).
      With a distance, :func:`programs` also makes sure no argument moves
      between two neighbouring sample points by more than half of it, so a
      kink cannot hide between them. ``None``: smooth everywhere;
    * ``ranges``: one ``(low, high)`` per input, where :func:`inputs_for` draws;
    * ``styles``: how a program calls it: ``"fn"`` (``tm.sin(x)``),
      ``"method"`` (``x.sin()``), ``"op"`` (an operator, ``x * y``).
    """

    name: str
    arity: int
    fn: Callable[..., Any]
    domain: Domain | None = None
    ranges: tuple[tuple[float, float], ...] = ()
    styles: tuple[str, ...] = ("fn",)
    operator: str = ""  # the Python operator, for style "op"
    forward: Callable[..., float] | None = None  # a faster fn for floats only, if any

    def __repr__(self) -> str:
        return f"OpSpec({self.name!r}, arity={self.arity})"

    def ok(self, *args: float) -> bool:
        """Whether ``args`` is safely inside the domain."""
        return self.domain is None or _inside(self.domain(*args))


def _inside(d: bool | float) -> bool:
    return d is True or (d is not False and d > 0.0)


def op_spec(
    fn: Callable[..., Any],
    arity: int = 1,
    domain: Domain | None = None,
    *,
    ranges: Sequence[tuple[float, float]] | None = None,
    name: str | None = None,
) -> OpSpec:
    """Describe your own primitive (made with :func:`tapegrad.primitive`) for the strategies.

    ``domain(*args)`` says where ``fn`` is smooth and safely defined: a bool,
    or a float distance to the nearest edge or kink (see :class:`OpSpec`).
    ``ranges`` gives one ``(low, high)`` per input for :func:`inputs_for`
    (default ``(-3, 3)``).

    >>> import math, tapegrad as tg
    >>> cube_root = tg.primitive(lambda x: math.copysign(abs(x) ** (1 / 3), x),
    ...                          lambda x, out: 1 / (3 * out * out), name="cbrt")
    >>> spec = op_spec(cube_root, 1, lambda x: abs(x) - 0.01, ranges=[(-8.0, 8.0)])
    >>> spec
    OpSpec('cbrt', arity=1)
    """
    if arity < 1:
        raise ValueError("op_spec: arity must be at least 1")
    rng = tuple(ranges) if ranges is not None else ((-3.0, 3.0),) * arity
    if len(rng) != arity:
        raise ValueError(f"op_spec: give one range per input ({arity}), got {len(rng)}")
    label = name if name is not None else getattr(fn, "__name__", "primitive")
    return OpSpec(label, arity, fn, domain, rng)


# ---------------------------------------------------------------------------
# The built-in primitives: read from the rows of the rule table
# ---------------------------------------------------------------------------


def _const_pow(x: float, c: float) -> float:
    """x ** c for a constant exponent c: negative bases only for integer c.

    Near 0, x ** c for c < 2 has a first or second derivative whose terms
    overflow (x ** -1, x ** -2 for a subnormal x; and 0 * inf is NaN, as the
    second derivative of x ** 0.0 at 1e-308): keep away unless c is an
    integer >= 2.
    """
    if not c.is_integer():
        return x - _EDGE
    return math.inf if c >= 2.0 else abs(x) - _EDGE


# The Python operators a row may name (Names.operator), on floats and Vars.
_OPERATOR_FNS: dict[tuple[str, int], Callable[..., Any]] = {
    ("+", 2): operator.add,
    ("-", 2): operator.sub,
    ("*", 2): operator.mul,
    ("/", 2): operator.truediv,
    ("**", 2): operator.pow,
    ("//", 2): operator.floordiv,
    ("%", 2): operator.mod,
    ("-", 1): operator.neg,
    ("abs", 1): abs,
}


def _from_row(rule: Rule) -> OpSpec:
    """The OpSpec of a row: its ``inputs``, and the styles its ``names`` allow."""
    inputs = rule.inputs
    if inputs is None:
        raise ValueError(f"rule {rule.name!r} has no inputs for tests")
    names = rule.names
    ranges = tuple(r for r, fixed in zip(inputs.ranges, _padded(inputs)) if fixed is None)
    fn: Callable[..., Any] | None = inputs.call
    styles: list[str] = []
    if names.operator and (names.operator, rule.arity) in _OPERATOR_FNS:
        styles.append("op")
        fn = fn or _OPERATOR_FNS[names.operator, rule.arity]
    if names.math or not styles:
        styles.append("fn")
    if rule.name in names.methods:
        styles.append("method")
    if fn is None:  # tapegrad.math's function, or (for the rules' own vocabulary) the rule
        fn = getattr(tm, rule.name, None) or (lambda *args: call(rule, *args))
    if names.math and names.operator:
        fn = getattr(tm, rule.name)  # style "op" calls the operator itself (_OPERATORS)
    # A row called otherwise (round(x)) is checked through that call on floats too.
    forward = inputs.call if inputs.call is not None else rule.forward
    return OpSpec(rule.name, len(ranges), fn, inputs.distance, ranges, tuple(styles),
                  names.operator, forward)  # fmt: skip


def _padded(inputs: Inputs) -> tuple[tuple[float, ...] | None, ...]:
    """``inputs.constants`` with one entry per input."""
    pad = len(inputs.ranges) - len(inputs.constants)
    return tuple(inputs.constants) + (None,) * pad


# Every rule but ``stop`` (stop_gradient's op inside trace): its value moves
# with its input while its derivative is 0 by design, so no finite
# difference can check it; tests/test_rules.py checks it by hand.
UNCHECKABLE = frozenset({"stop"})

# How far each primitive's arguments are from trouble (see Domain), read from
# its row. Used both by inputs_for and, at every sample point around a
# program's inputs, by programs.
BUILTIN_OPS: dict[str, OpSpec] = {
    rule.name: _from_row(rule) for rule in RULES.values() if rule.name not in UNCHECKABLE
}


# Style "op" of pow and abs: the operator / builtin, not tapegrad.math's function.
_OPERATORS: dict[str, Callable[..., Any]] = {
    name: _OPERATOR_FNS[rule.names.operator, rule.arity]
    for name, rule in RULES.items()
    if rule.names.math and (rule.names.operator, rule.arity) in _OPERATOR_FNS
}


def _spec(op: str | OpSpec) -> OpSpec:
    if isinstance(op, OpSpec):
        return op
    try:
        return BUILTIN_OPS[op]
    except KeyError:
        raise ValueError(
            f"unknown primitive {op!r}; built-in ones are {sorted(BUILTIN_OPS)}, "
            "describe your own with tapegrad.testing.op_spec"
        ) from None


def _float_in(low: float, high: float) -> SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def inputs_for(op: str | OpSpec) -> SearchStrategy[tuple[float, ...]]:
    """Argument tuples safely inside the domain of a primitive (a name or an :class:`OpSpec`).

    >>> from hypothesis import given
    >>> import tapegrad as tg
    >>> @given(inputs_for("log"))
    ... def test_log(args):
    ...     tg.check_grads(tg.math.log, args, order=2)
    >>> test_log()
    """
    spec = _spec(op)
    ranges = spec.ranges or ((-3.0, 3.0),) * spec.arity

    def safe(args: tuple[float, ...]) -> bool:
        # The points check_grads' finite differences visit must be safely
        # inside too, with no kink between neighbours (minimum at a tie 0.01
        # away, steps of 0.014): the same test programs() applies to each op.
        pts, lines = _points(args)
        columns = [[p[i] for p in pts] for i in range(len(args))]
        return _evaluate(spec, columns, lines, spec.domain) is not None

    return st.tuples(*(_float_in(lo, hi) for lo, hi in ranges)).filter(safe)


# ---------------------------------------------------------------------------
# Extreme inputs
# ---------------------------------------------------------------------------

_SMALLEST_NORMAL = sys.float_info.min  # 2.2250738585072014e-308; below it, subnormals
_LARGEST = sys.float_info.max

# Magnitudes at the ends of the float range, where a partial computes an
# intermediate that over- or underflows (1 / x, x ** -1, x * x) although the
# derivative itself is a finite float; a few fixed ones, drawn often.
_EXTREME_MAGNITUDES = st.one_of(
    st.sampled_from((0.0, 5e-324, 2.2e-311, _SMALLEST_NORMAL, 1e-300, 1e300, _LARGEST)),
    st.floats(5e-324, _SMALLEST_NORMAL, exclude_max=True),  # subnormals
    st.floats(_SMALLEST_NORMAL, 1e-250),
    st.floats(1e250, _LARGEST),
)
_EXTREME = st.builds(lambda m, negative: -m if negative else m, _EXTREME_MAGNITUDES, st.booleans())

_ULPS = st.integers(-(2**40), 2**40)


def _near(edge: float) -> SearchStrategy[float]:
    """``edge`` moved by up to 2**40 ulps either way (a relative 2e-4)."""
    return _ULPS.map(lambda k: edge + k * math.ulp(edge))


def extreme_inputs_for(op: str | OpSpec) -> SearchStrategy[tuple[float, ...]]:
    """Argument tuples of a primitive at the ends of the float range, on purpose.

    Each argument is drawn from subnormals (down to 5e-324), magnitudes near
    1e-308 and 1e308, zeros, the primitive's own ``ranges``, and (for the
    built-in primitives) points a few ulps from the edges of its domain
    (``asin`` near +-1, ``exp`` near where it overflows). Every tuple gives a
    finite value. These are the inputs where a partial that computes an
    intermediate (``1 / x``, ``x ** -1``, ``x * x``) over- or underflows
    although the derivative is a finite float, which :func:`inputs_for` and
    :func:`programs` keep away from: finite differences cannot check
    derivatives there, so compare them with a reference computed otherwise,
    or between modes (reverse and forward).

    >>> import math
    >>> from hypothesis import given, settings
    >>> import tapegrad as tg
    >>> @settings(max_examples=20, deadline=None)
    ... @given(extreme_inputs_for("atan"))
    ... def test_atan_slope(args):          # 1 / (1 + x**2): finite, in [0, 1]
    ...     assert 0.0 <= tg.grad(tg.math.atan)(*args) <= 1.0
    >>> test_atan_slope()
    """
    spec = _spec(op)
    ranges = spec.ranges or ((-3.0, 3.0),) * spec.arity
    row = RULES.get(spec.name)
    edges = row.inputs.edges if BUILTIN_OPS.get(spec.name) is spec and row and row.inputs else ()
    near = [_near(e) for e in edges]
    args = [st.one_of(_EXTREME, _float_in(lo, hi), *near) for lo, hi in ranges]
    fn = spec.forward or spec.fn

    def finite(xs: tuple[float, ...]) -> bool:
        try:
            value = fn(*xs)
        except _EVAL_ERRORS:
            return False
        return isinstance(value, (int, float)) and math.isfinite(value)

    return st.tuples(*args).filter(finite)


# ---------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------

Operand = int | float  # an int refers to an earlier value; a float is a constant


@dataclass(frozen=True)
class Op:
    """One step of a program: ``spec`` applied to ``args``, called in ``style``.

    ``args`` holds ints (indices of earlier values: the inputs come first) and
    floats (constants).
    """

    spec: OpSpec
    args: tuple[Operand, ...]
    style: str = "fn"

    def apply(self, values: Sequence[Any]) -> Any:
        """Run this op on ``values`` (floats or Vars), one per argument."""
        spec = self.spec
        if self.style == "method" and isinstance(values[0], Var):
            return getattr(values[0], spec.name)(*values[1:])
        if self.style == "op" and spec.name in _OPERATORS:
            return _OPERATORS[spec.name](*values)
        return spec.fn(*values)

    def format(self, names: Sequence[str]) -> str:
        """This op as Python source, with values named by ``names``."""
        parts = [names[a] if isinstance(a, int) else _const(float(a)) for a in self.args]
        spec = self.spec
        if self.style == "op":
            if spec.name == "neg":
                return f"-{parts[0]}"
            if spec.name == "abs":
                return f"abs({parts[0]})"
            return f"{parts[0]} {spec.operator} {parts[1]}"
        if self.style == "method":
            return f"{parts[0]}.{spec.name}({', '.join(parts[1:])})"
        prefix = "tm." if BUILTIN_OPS.get(spec.name) is spec else ""
        return f"{prefix}{spec.name}({', '.join(parts)})"


def _const(c: float) -> str:
    return f"({c!r})" if c < 0.0 or math.copysign(1.0, c) < 0.0 else repr(c)


@dataclass(frozen=True)
class Program:
    """A random straight-line program: callable on floats or Vars, readable when printed.

    ``inputs`` is the point it was generated for: every op is smooth and
    safely inside its domain there and nearby. Values are numbered inputs
    first (``x0, x1 ...``), then one per op (``v{k}``); the program returns
    ``outputs`` (a scalar when there is one output, else a list).
    A ``"method"`` call (``v2.exp()``) runs as ``tm.exp(v2)`` on floats.
    """

    n_inputs: int
    ops: tuple[Op, ...]
    outputs: tuple[int, ...]
    inputs: tuple[float, ...] = field(default=())

    def __call__(self, *xs: Any) -> Any:
        if len(xs) != self.n_inputs:
            raise TypeError(f"this program takes {self.n_inputs} inputs, got {len(xs)}")
        values: list[Any] = list(xs)
        for op in self.ops:
            values.append(op.apply([values[a] if isinstance(a, int) else a for a in op.args]))
        out = [values[k] for k in self.outputs]
        return out[0] if len(out) == 1 else out

    def names(self) -> list[str]:
        """Names of the values: ``x0 ...`` for inputs, ``v{k}`` for op results."""
        return [
            f"x{k}" if k < self.n_inputs else f"v{k}" for k in range(self.n_inputs + len(self.ops))
        ]

    def primitives(self) -> set[str]:
        """Names of the primitives this program uses."""
        return {op.spec.name for op in self.ops}

    def __repr__(self) -> str:
        names = self.names()
        lines = [f"Program(n_inputs={self.n_inputs}, inputs={self.inputs!r}):"]
        for k, op in enumerate(self.ops, start=self.n_inputs):
            lines.append(f"    {names[k]} = {op.format(names)}")
        outs = ", ".join(names[k] for k in self.outputs)
        lines.append(f"    return {outs if len(self.outputs) == 1 else '[' + outs + ']'}")
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis (and IPython) print a program as its listing."""
        printer.text(repr(self))


def _points(xs: Sequence[float]) -> tuple[list[list[float]], list[list[int]]]:
    """``xs`` and points on each coordinate line through it; and the lines, as point indices.

    The points are those :func:`tapegrad.check_grads` visits (see _OFFSETS);
    each line lists its points in order, through ``xs`` (point 0).
    """
    pts = [list(xs)]
    lines = []
    half = len(_OFFSETS) // 2
    for j, x in enumerate(xs):
        step = DEFAULT_EPS * max(abs(x), 1.0)
        line = []
        for o in _OFFSETS:
            p = list(xs)
            p[j] = x + o * step
            line.append(len(pts))
            pts.append(p)
        lines.append([*line[:half], 0, *line[half:]])
    return pts, lines


_EVAL_ERRORS = (ValueError, ZeroDivisionError, OverflowError, TypeError)


def _evaluate(
    spec: OpSpec, args: Sequence[Sequence[float]], lines: list[list[int]], domain: Domain | None
) -> list[float] | None:
    """Values of ``spec`` at every point, or None if it is not safely smooth at all of them."""
    n = len(args[0])
    if domain is not None:
        dist = []
        for p in range(n):
            d = domain(*(v[p] for v in args))
            if not _inside(d):
                return None
            dist.append(float(d) if not isinstance(d, bool) else math.inf)
        # No argument may move by half the distance to trouble between neighbours.
        for line in lines:
            for p, q in itertools.pairwise(line):
                move = max(abs(v[p] - v[q]) for v in args)
                if not move <= 0.5 * min(dist[p], dist[q]):
                    return None
    out: list[float] = []
    fn = spec.forward or spec.fn
    for p in range(n):
        try:
            r = fn(*(v[p] for v in args))
        except _EVAL_ERRORS:
            return None
        if not isinstance(r, (int, float)):  # e.g. complex
            return None
        r = float(r)
        if not (math.isfinite(r) and abs(r) <= MAX_MAGNITUDE):
            return None
        out.append(r)
    if not _resolved(out, lines) or _cancels(fn, args, out, lines):
        return None
    return out


# 8th differences of 9 equally spaced samples: about s**8 times the 8th
# derivative for a smooth function, but ~100 times the rounding error for a
# value dominated by rounding.
_DIFF8 = (1.0, -8.0, 28.0, -56.0, 70.0, -56.0, 28.0, -8.0, 1.0)
# A value's 8th difference along a line must stay below this times its spread.
_NOISE = 1e-8


# A result must vary by at least this fraction of what its arguments' variations
# contribute (|partial| * variation, summed over the arguments).
_CANCEL = 1e-6


def _cancels(
    fn: Callable[..., float],
    args: Sequence[Sequence[float]],
    out: Sequence[float],
    lines: list[list[int]],
) -> bool:
    """Whether the arguments' variations cancel in the result along some line.

    ``atan2(x, x)`` is constant although both arguments vary: its derivative
    is a difference of equal terms, exact in theory, but a rounding error in
    AD's higher derivatives, where nothing cancels exactly any more, that the
    rest of the program can amplify beyond any tolerance. Finite differences
    of a constant are exactly 0, so such a program checks AD's rounding, not
    its rules.
    """
    base = [v[0] for v in args]
    partials = []
    for i, x in enumerate(base):
        h = 1e-7 * max(abs(x), 1.0)
        lo, hi = list(base), list(base)
        lo[i] -= h
        hi[i] += h
        try:
            partials.append(abs(fn(*hi) - fn(*lo)) / (2 * h))
        except _EVAL_ERRORS:
            return True
    for line in lines:
        terms = 0.0
        for d, v in zip(partials, args):
            vals = [v[p] for p in line]
            terms += d * (max(vals) - min(vals))
        res = [out[p] for p in line]
        if terms > 0.0 and max(res) - min(res) < _CANCEL * terms:
            return True
    return False


def _resolved(values: Sequence[float], lines: list[list[int]]) -> bool:
    """Whether finite differences can resolve ``values`` along every line.

    A value that barely varies compared with its rounding error (``1 - erf``
    of a large number, ``1e3 * x + 1e-12 * y`` along ``y``) would make finite
    differences noisy at ``check_grads``' tolerance; so would one whose high
    derivatives are huge on the scale of the finite-difference steps. Both
    show up as an 8th difference that is not tiny compared with the spread.
    """
    for line in lines:
        v = [values[p] for p in line]
        spread = max(v) - min(v)
        if spread and abs(sum(c * x for c, x in zip(_DIFF8, v))) > _NOISE * spread:
            return False
    return True


# Strategies are built once: building one per draw costs more than the draw.
_CONST = st.sampled_from((0.5, 2.0, -1.0, 3.0, 0.1, -2.5, 1.5)) | _float_in(-3.0, 3.0)
_EXPONENTS = (2.0, 3.0, -1.0, 0.5, 1.5, -2.0, 4.0, -0.5, 1.0, 0.0, 5.0)
_EXPONENT = st.sampled_from(_EXPONENTS) | _float_in(-2.5, 2.5)
_BASE = st.sampled_from((2.0, 0.5, math.e, 1.5)) | _float_in(0.1, 3.0)  # c ** x, c > 0
_SHAPES = st.sampled_from(("refs", "refs", "const_right", "const_left"))
_WHICH_REF = st.integers(0, 3)
_BOOL = st.booleans()
_BELOW: dict[int, SearchStrategy[int]] = {}
_STYLES: dict[tuple[str, ...], SearchStrategy[str]] = {}


def _below(n: int) -> SearchStrategy[int]:
    """``integers(0, n - 1)``, cached."""
    strategy = _BELOW.get(n)
    if strategy is None:
        strategy = _BELOW[n] = st.integers(0, n - 1)
    return strategy


def _styles(styles: tuple[str, ...]) -> SearchStrategy[str]:
    strategy = _STYLES.get(styles)
    if strategy is None:
        strategy = _STYLES[styles] = st.sampled_from(styles)
    return strategy


@dataclass
class _Builder:
    """A program under construction, with the values of every node at every point."""

    draw: DrawFn
    n_inputs: int
    values: list[list[float]]
    lines: list[list[int]]
    ops: list[Op] = field(default_factory=list)
    unused: list[int] = field(default_factory=list)  # op results no op uses yet

    def ref(self) -> int:
        """An earlier value: the latest, an unused one, or any; shrinks to the latest."""
        n = len(self.values)
        how = self.draw(_WHICH_REF)
        if how <= 1:
            return n - 1
        if how == 2 and self.unused:
            return self.unused[self.draw(_below(len(self.unused)))]
        return n - 1 - self.draw(_below(n))

    def push(self, op: Op, vals: list[float]) -> int:
        self.ops.append(op)
        self.values.append(vals)
        for a in op.args:
            if isinstance(a, int) and a in self.unused:
                self.unused.remove(a)
        self.unused.append(len(self.values) - 1)
        return len(self.values) - 1

    def try_op(
        self, spec: OpSpec, refs: Sequence[int] | None = None, style: str | None = None
    ) -> bool:
        """Draw operands and a call style for ``spec``; append the op if it is safe."""
        draw = self.draw
        args: list[Operand] = []
        if refs is not None:
            args = list(refs)
        elif spec.arity == 2 and BUILTIN_OPS.get(spec.name) is spec:
            shape = draw(_SHAPES)
            if shape == "const_right":
                c = draw(_EXPONENT if spec.name == "pow" else _CONST)
                args = [self.ref(), float(c)]
            elif shape == "const_left":
                c = draw(_BASE if spec.name == "pow" else _CONST)  # pow: c ** x, c > 0
                args = [float(c), self.ref()]
            else:
                args = [self.ref(), self.ref()]
        else:
            args = [self.ref() for _ in range(spec.arity)]
        if style is None:
            style = draw(_styles(spec.styles))
        if style == "method" and not isinstance(args[0], int):
            style = "fn"
        n_points = len(self.values[0])
        columns = [self.values[a] if isinstance(a, int) else [float(a)] * n_points for a in args]
        domain = spec.domain
        if spec is BUILTIN_OPS["pow"] and not isinstance(args[1], int):
            domain = _const_pow
        vals = _evaluate(spec, columns, self.lines, domain)
        if vals is None:
            return False
        self.push(Op(spec, tuple(args), style), vals)
        return True

    def bridge(self, spec: OpSpec) -> bool:
        """Append ``spec`` on values mapped into its ranges: ``lo + (hi - lo) * sigmoid(v)``."""
        refs = []
        for lo, hi in spec.ranges or ((-3.0, 3.0),) * spec.arity:
            lo, hi = lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo)
            node = self.ref()
            for op_spec_, extra in ((BUILTIN_OPS["sigmoid"], None), (BUILTIN_OPS["mul"], hi - lo),
                                    (BUILTIN_OPS["add"], lo)):  # fmt: skip
                args: tuple[Operand, ...] = (node,) if extra is None else (node, float(extra))
                style = "fn" if extra is None else "op"
                columns = [self.values[node]] + (
                    [] if extra is None else [[float(extra)] * len(self.values[0])]
                )
                vals = _evaluate(op_spec_, columns, self.lines, op_spec_.domain)
                if vals is None:
                    return False
                node = self.push(Op(op_spec_, args, style), vals)
            refs.append(node)
        return self.try_op(spec, refs)


def _programs(
    draw: DrawFn,
    n_inputs: tuple[int, int],
    max_ops: int,
    n_outputs: int,
    specs: tuple[OpSpec, ...],
    require: tuple[OpSpec, ...],
    at: tuple[float, ...] | None,
    input_range: tuple[float, float],
) -> Program:
    if at is None:
        n = draw(st.integers(*n_inputs))
        xs = tuple(draw(_float_in(*input_range)) for _ in range(n))
    else:
        xs = at
        n = len(xs)
    pts, lines = _points(xs)
    b = _Builder(draw, n, [[p[j] for p in pts] for j in range(n)], lines)
    count = max(draw(st.integers(1, max_ops)), len(require))
    pick = st.sampled_from(specs)
    pending = list(require)
    for slot in range(count):
        # Leave room to add the unused results into the output at the end.
        if len(b.ops) + max(0, len(b.unused) - n_outputs) >= count and not pending:
            break
        if pending and (count - slot <= len(pending) or draw(_BOOL)):
            spec = pending[0]
            if any(b.try_op(spec) for _ in range(5)) or any(b.bridge(spec) for _ in range(10)):
                pending.pop(0)
                continue
            reject()  # the required op cannot be placed safely at these inputs
        for _attempt in range(6):
            if b.try_op(draw(pick)):
                break
    if not b.ops:  # every attempt failed: sin is safe anywhere
        b.try_op(BUILTIN_OPS["sin"], [len(b.values) - 1])
    total = len(b.values)
    outputs = [max(0, total - n_outputs + i) for i in range(n_outputs)]  # repeats if few
    # Every op should matter: add the results nothing uses into the last output.
    add = BUILTIN_OPS["add"]
    for u in [u for u in b.unused if u not in outputs]:
        if b.try_op(add, [outputs[-1], u], "op"):
            outputs[-1] = len(b.values) - 1
    return Program(n, tuple(b.ops), tuple(outputs), tuple(xs))


def programs(
    *,
    n_inputs: int | tuple[int, int] = (1, 4),
    max_ops: int = 50,
    n_outputs: int = 1,
    ops: Iterable[str | OpSpec] | None = None,
    extra_ops: Iterable[OpSpec] = (),
    require: Iterable[str | OpSpec] = (),
    at: Sequence[float] | None = None,
    input_range: tuple[float, float] = (-3.0, 3.0),
) -> SearchStrategy[Program]:
    """Random differentiable programs with the point they are valid at (``prog.inputs``).

    * ``n_inputs``: a number, or a ``(min, max)`` range (default 1 to 4);
    * ``max_ops``: at most this many ops (a few more when ``require`` needs
      bridging ops to reach a primitive's domain);
    * ``n_outputs``: 1 gives a scalar program, more a list of the last values;
    * ``ops``: the primitives to draw from (names or :class:`OpSpec`), default
      all of :data:`BUILTIN_OPS`; ``extra_ops`` adds your own (see :func:`op_spec`);
    * ``require``: primitives every program must use (the example is rejected
      when one cannot be placed safely);
    * ``at``: fixed inputs instead of drawn ones (``n_inputs`` is then ignored);
    * ``input_range``: where inputs are drawn.

    >>> from hypothesis import given, settings
    >>> import tapegrad as tg
    >>> @settings(max_examples=5, deadline=None)
    ... @given(programs(n_inputs=2, max_ops=8, n_outputs=3))
    ... def test_jacobians(prog):
    ...     tg.check_grads(prog, prog.inputs)
    >>> test_jacobians()
    """
    lo_hi = (n_inputs, n_inputs) if isinstance(n_inputs, int) else tuple(n_inputs)
    if at is None and not 1 <= lo_hi[0] <= lo_hi[1]:
        raise ValueError(f"programs: n_inputs must be >= 1, got {n_inputs!r}")
    if max_ops < 1 or n_outputs < 1:
        raise ValueError("programs: max_ops and n_outputs must be >= 1")
    specs = tuple(_spec(o) for o in (BUILTIN_OPS.values() if ops is None else ops))
    specs += tuple(_spec(o) for o in extra_ops)
    if not specs:
        raise ValueError("programs: no primitives to draw from")
    need = tuple(_spec(o) for o in require)
    fixed = None if at is None else tuple(float(a) for a in at)
    if fixed is not None and not fixed:
        raise ValueError("programs: at must hold at least one input")
    return st.composite(_programs)(
        (lo_hi[0], lo_hi[1]), max_ops, n_outputs, specs, need, fixed, input_range
    )


def primitive_test(op: str | OpSpec, *, order: int = 2, max_ops: int = 12) -> Callable[[], None]:
    """A Hypothesis test of one primitive's derivatives, to assign to a ``test_*`` name.

    Each example checks, up to ``order`` with :func:`tapegrad.check_grads`,
    either the primitive alone at inputs from :func:`inputs_for`, or a random
    program (:func:`programs`) that uses it among the built-in primitives.

    >>> import math, tapegrad as tg
    >>> from hypothesis import settings
    >>> softplus = tg.primitive(lambda x: math.log1p(math.exp(x)),
    ...                         lambda x, out: tg.math.sigmoid(x), name="softplus")
    >>> test_softplus = primitive_test(op_spec(softplus, 1, lambda x: 30.0 - x))
    >>> settings(max_examples=10)(test_softplus)()  # pytest runs test_softplus itself
    """
    spec = _spec(op)
    alone = inputs_for(spec).map(lambda a: (spec.fn, a))
    extra = () if BUILTIN_OPS.get(spec.name) is spec else (spec,)
    mixed = programs(n_inputs=(1, 3), max_ops=max_ops, extra_ops=extra, require=(spec,))
    mixed_cases = mixed.map(lambda p: (p, p.inputs))

    @given(alone | mixed_cases)
    def test(case: tuple[Callable[..., Any], tuple[float, ...]]) -> None:
        check_grads(case[0], case[1], order=order)

    test.__name__ = test.__qualname__ = f"test_{spec.name}_derivatives"
    return test


# -- programs with routes into Python --------------------------------------------------------
#
# A random :class:`Program` extended with the ways a value reaches Python
# besides its ops: try/except around an op that raises, formatting, set and
# dict lookups by value, an int taken from a value to index a table, builtin
# max/min, and a dict argument whose insertion order matters. ``jit`` must
# give ``f``'s results at every point, whichever point it traced first.

__all__ += ["Route", "ROUTE_KINDS", "RouteProgram", "route_programs"]

# Each route applied to a value ``v`` of the program with a constant ``c``
# (``c`` is v's value at the first point, so that the try/except routes raise
# and the lookups find their key there).
ROUTE_KINDS = ("try_div", "try_log", "format", "set", "dict_get", "index", "max", "min")
_TABLE = (1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Route:
    """One route: ``kind`` applied to value ``at`` with constant ``c``.

    With ``guarded``, the route is taken only where ``v > c - 0.5`` (else it
    gives 0.0), so that some branches of ``f`` are replayable and others not.
    """

    kind: str
    at: int
    c: float
    guarded: bool

    def apply(self, v: Any) -> Any:
        """The route's value at ``v`` (a float or a Var)."""
        if self.guarded and not v > self.c - 0.5:
            return 0.0
        kind, c = self.kind, self.c
        if kind == "try_div":
            try:
                return 1.0 / (v - c)
            except ZeroDivisionError:
                return -1.0
        if kind == "try_log":
            try:
                return tm.log(v - (c + 1.0))
            except ValueError:
                return 0.5
        if kind == "format":
            return float(f"{v:.3f}")
        if kind == "set":
            return 2.0 if v in {c, c + 1.0} else 0.0
        if kind == "dict_get":
            return {c: 3.0}.get(v, 1.0)
        if kind == "index":
            return _TABLE[min(max(round(v), 0), 3)]
        if kind == "max":
            return max(0.0, v - c)
        return min(v, c)

    def format(self, name: str) -> str:
        text = {
            "try_div": f"try 1.0 / ({name} - c) except ZeroDivisionError: -1.0",
            "try_log": f"try tm.log({name} - (c + 1.0)) except ValueError: 0.5",
            "format": f'float(f"{{{name}:.3f}}")',
            "set": f"2.0 if {name} in {{c, c + 1.0}} else 0.0",
            "dict_get": f"{{c: 3.0}}.get({name}, 1.0)",
            "index": f"TABLE[min(max(round({name}), 0), 3)]",
            "max": f"max(0.0, {name} - c)",
            "min": f"min({name}, c)",
        }[self.kind]
        guard = f" if {name} > c - 0.5 else 0.0" if self.guarded else ""
        return f"({text}){guard}  # c = {self.c!r}"


@dataclass(frozen=True)
class RouteProgram:
    """``f(xs, weights)``: a :class:`Program` on the list ``xs``, its routes, a dict argument.

    Returns the program's output plus every route's value, then folds in the
    dict ``weights`` in its insertion order (``total = total * 0.5 + w``), so
    the order of its keys changes the result's rounding. ``points`` are the
    arguments to call it at: the first is where the routes raise or match.
    """

    program: Program
    routes: tuple[Route, ...]
    points: tuple[tuple[list[float], dict[str, float]], ...]

    def __call__(self, xs: Sequence[Any], weights: dict[str, Any]) -> Any:
        prog = self.program
        values: list[Any] = list(xs)
        for op in prog.ops:
            values.append(op.apply([values[a] if isinstance(a, int) else a for a in op.args]))
        total = values[prog.outputs[-1]]
        for route in self.routes:
            total = total + route.apply(values[route.at])
        for key in weights:
            total = total * 0.5 + weights[key]
        return total

    def __repr__(self) -> str:
        names = self.program.names()
        lines = [repr(self.program), "routes:"]
        lines += [f"    {r.format(names[r.at])}" for r in self.routes]
        lines.append(f"points: {self.points!r}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


_ROUTE_KIND = st.sampled_from(ROUTE_KINDS)
_KEYS = st.permutations(("a", "b", "c"))
_MOVES = st.sampled_from((0.0, 0.25, -0.5, 1.0, -1.5, 3.0))


def _route_programs(draw: DrawFn, max_ops: int, max_routes: int, n_points: int) -> RouteProgram:
    prog = draw(programs(n_inputs=(1, 3), max_ops=max_ops))
    values: list[float] = list(prog.inputs)
    for op in prog.ops:
        values.append(op.apply([values[a] if isinstance(a, int) else a for a in op.args]))
    routes = tuple(
        Route(draw(_ROUTE_KIND), k, float(values[k]), draw(_BOOL))
        for k in (draw(_below(len(values))) for _ in range(draw(st.integers(1, max_routes))))
    )
    keys = draw(_KEYS)
    points = []
    for p in range(n_points):
        xs = list(prog.inputs) if p == 0 else [x + draw(_MOVES) for x in prog.inputs]
        weights = {k: float(i + p) * 0.1 for i, k in enumerate(keys)}
        points.append((xs, weights))
    return RouteProgram(prog, routes, tuple(points))


def route_programs(
    *, max_ops: int = 12, max_routes: int = 3, n_points: int = 4
) -> SearchStrategy[RouteProgram]:
    """Random :class:`RouteProgram` s: a program, 1 to ``max_routes`` routes, ``n_points`` points.

    >>> from hypothesis import given, settings
    >>> import tapegrad as tg
    >>> @settings(max_examples=5, deadline=None)
    ... @given(route_programs(max_ops=6))
    ... def test_jit(f):
    ...     fast = tg.jit(f)
    ...     for xs, weights in f.points:
    ...         try:
    ...             want = f(xs, weights)
    ...         except (ArithmeticError, ValueError):  # a point outside f's domain
    ...             continue
    ...         assert repr(fast(xs, weights)) == repr(want)
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     test_jit()
    """
    if max_ops < 1 or max_routes < 1 or n_points < 1:
        raise ValueError("route_programs: max_ops, max_routes and n_points must be >= 1")
    return st.composite(_route_programs)(max_ops, max_routes, n_points)
