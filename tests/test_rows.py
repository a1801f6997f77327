"""Every row of the rule table, walked generically: all forms of a primitive agree.

A row of ``tapegrad.rules.RULES`` owns everything about its primitive (its
float forward, partials, names, array form, domain, test inputs, fast-path
flag). This file checks, for every row, with nothing written per primitive:

* names: ``tapegrad.math`` binds exactly the rows' ``names.math``, Var has
  exactly the rows' ``names.methods`` (each records the row), every numpy
  ufunc a row names runs on object arrays of Vars, the type-checker
  declarations in math.py and operators.py list exactly those names, and
  ``tools/gen_fastpaths.py`` generates fast paths for exactly the rows that
  say ``fast_path``;
* values on hostile floats (+-0.0, subnormals, +-1e+-300, the largest float,
  +-inf, NaN, a few ulps either side of the row's ``inputs.edges``): the
  float forward, ``tapegrad.math`` on floats and on Vars, ``tapegrad.jit``,
  the row's array form and ``tapegrad.vmap`` agree, bit for bit (the sign of
  zero included, NaN equal to NaN) for a row whose ``inputs.ulps`` is 0,
  within that many ulps otherwise; each raises where the forward raises (the
  row's ``domain`` is exactly where: jit raises as eager does, also when the
  op's value is unused, and vmap hands the sample to ``f``, which raises);
* gradients, likewise, between ``grad`` eagerly, ``jit(grad)`` and
  ``vmap(grad)`` (the sign of a zero gradient aside: see ``grad_outcome``);
* an independent value reference for rows that name a function of ``math``,
  numpy or ``scipy.special``, and finite differences (``tapegrad.testing``,
  from the row's ``inputs``) for every row's partials.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import math
import operator
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings

import tapegrad as tg
from tapegrad import math as tm
from tapegrad.rules import RULES, UNKNOWN_DOMAIN, Rule
from tapegrad.rules import call as apply_rule
from tapegrad.testing import BUILTIN_OPS, UNCHECKABLE, inputs_for

ROOT = Path(__file__).resolve().parents[1]
ROWS = sorted(RULES)

# -- the hostile floats ------------------------------------------------------------

_MAX = sys.float_info.max
_TINY = sys.float_info.min  # the smallest normal float
HOSTILE: tuple[float, ...] = (
    0.0, -0.0, 5e-324, -5e-324, 2.2e-311, -2.2e-311, _TINY, -_TINY, 1e-300, -1e-300,
    0.5, -0.5, 1.0, -1.0, 2.0, -2.5, 3.0, 1e300, -1e300, _MAX, -_MAX,
    math.inf, -math.inf, math.nan,
)  # fmt: skip
# Three-input rows (scaled_pow) take fewer, so that the cube stays small.
HOSTILE_FEW: tuple[float, ...] = (
    0.0,
    -0.0,
    5e-324,
    -1.0,
    0.5,
    2.0,
    3.0,
    -2.5,
    1e300,
    math.inf,
    math.nan,
)


def near(edge: float) -> list[float]:
    """``edge`` and the floats 1 and 2 ulps either side of it."""
    out = [edge]
    for direction in (math.inf, -math.inf):
        x = edge
        for _ in range(2):
            x = math.nextafter(x, direction)
            out.append(x)
    return out


def per_input(rule: Rule) -> list[list[float]]:
    """The values each input of ``rule`` takes: hostile floats and its edges, or constants."""
    inputs = rule.inputs
    assert inputs is not None, f"row {rule.name!r} has no inputs"
    base = HOSTILE if rule.arity < 3 else HOSTILE_FEW
    edges = [x for e in inputs.edges for x in near(e)] if rule.arity < 3 else list(inputs.edges)
    columns = []
    for i in range(rule.arity):
        fixed = inputs.constants[i] if i < len(inputs.constants) else None
        values = fixed if fixed is not None else [*base, *edges]
        # One of each float, by its bits: 0.0 and -0.0 are equal keys of a dict.
        columns.append(list({struct.pack("<d", v): v for v in values}.values()))
    return columns


class Case:
    """A row with its constant inputs (if any) fixed: ``f`` on the free ones, at ``points``."""

    def __init__(self, rule: Rule, constants: dict[int, float], columns: list[list[float]]):
        self.rule, self.constants = rule, constants
        self.points = list(itertools.product(*columns))
        self.arity = len(columns)

    def full(self, free: Sequence[Any]) -> list[Any]:
        values = list(free)
        for i, c in sorted(self.constants.items()):
            values.insert(i, c)
        return values

    def f(self, *free: Any) -> Any:
        """The row applied as user code applies it (floats or Vars)."""
        return apply_rule(self.rule, *self.full(free))

    def forward(self, *free: float) -> float:
        return self.rule.forward(*self.full(free))

    def arrays(self, columns: Sequence[Any]) -> list[Any]:
        """Columns of the free inputs; constants as 0-d arrays, as the array dialect has them."""
        values = self.full(list(columns))
        return [np.asarray(v) if i in self.constants else v for i, v in enumerate(values)]

    def __repr__(self) -> str:
        return f"{self.rule.name} with {self.constants}" if self.constants else self.rule.name


def cases(rule: Rule) -> list[Case]:
    columns = per_input(rule)
    assert rule.inputs is not None
    fixed = [i for i, c in enumerate(rule.inputs.constants) if c is not None]
    free = [columns[i] for i in range(rule.arity) if i not in fixed]
    return [
        Case(rule, dict(zip(fixed, combo)), free)
        for combo in itertools.product(*[columns[i] for i in fixed])
    ]


def outcome(fn: Callable[..., Any], *args: Any) -> float | type[BaseException]:
    """``fn(*args)`` as a float, or the type of what it raised."""
    try:
        value = fn(*args)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError) as e:
        return type(e)
    return float(value.data if isinstance(value, tg.Var) else value)


def bits(x: float) -> int:
    """An int that orders floats as numbers do, with -0.0 just below 0.0 (1 ulp apart)."""
    (b,) = struct.unpack("<q", struct.pack("<d", x))
    return b if b >= 0 else -(b & 0x7FFFFFFFFFFFFFFF) - 1


def ulps_apart(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    if math.isinf(a) or math.isinf(b):
        return 0.0 if a == b else math.inf
    return float(abs(bits(a) - bits(b)))


def agree(got: Any, want: Any, ulps: int) -> bool:
    """Same exception type, or floats within ``ulps`` (0: the same bits; NaN equals NaN)."""
    if isinstance(want, type) or isinstance(got, type):
        return got == want
    return ulps_apart(float(got), float(want)) <= ulps


def disagreements(
    what: str, pts: Sequence[tuple[float, ...]], got: Sequence[Any], want: Sequence[Any], ulps: int
) -> list[str]:
    return [
        f"{what}{p}: {g!r}, forward {w!r}"
        for p, g, w in zip(pts, got, want)
        if not agree(g, w, ulps)
    ][:5]


# -- names -------------------------------------------------------------------------


def declared_names(path: Path, scope: str | None) -> set[str]:
    """The names declared under ``if TYPE_CHECKING:`` at module level or in class ``scope``."""
    tree = ast.parse(path.read_text())
    body: list[ast.stmt] = tree.body
    if scope is not None:
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == scope).body
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                if isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
                    names.add(inner.target.id)
                elif isinstance(inner, ast.FunctionDef):
                    names.add(inner.name)
    return names


def inside(rule: Rule) -> list[float]:
    """A point inside the row's test ranges (their midpoints)."""
    assert rule.inputs is not None
    return [(lo + hi) / 2 + 0.125 for lo, hi in rule.inputs.ranges]


def test_math_binds_exactly_the_rows_names() -> None:
    bound = {n for r in RULES.values() for n in r.names.math}
    extras = {"isfinite", "isinf", "isnan", "sum", "prod", "dot", "pi", "e", "tau", "inf", "nan"}
    assert set(tm.__all__) == bound | extras
    assert declared_names(ROOT / "tapegrad" / "math.py", None) == bound
    for rule in RULES.values():
        for name in rule.names.math:
            x = [tg.Var(a) for a in inside(rule)]
            out = getattr(tm, name)(*x)
            assert out._tape.rules[out._index] is rule, name


def test_var_has_exactly_the_rows_methods() -> None:
    methods = {n for r in RULES.values() for n in r.names.methods}
    assert declared_names(ROOT / "tapegrad" / "operators.py", "Operators") == methods
    for rule in RULES.values():
        for name in rule.names.methods:
            args = inside(rule)
            out = getattr(tg.Var(args[0]), name)(*args[1:])
            assert out._tape.rules[out._index] is rule, name
            assert out.data == rule.forward(*args), name


@pytest.mark.parametrize(
    ("name", "ufunc"), [(r.name, u) for r in RULES.values() for u in r.names.numpy]
)
def test_numpy_ufuncs_the_rows_name_run_on_vars(name: str, ufunc: str) -> None:
    rule = RULES[name]
    args = inside(rule)
    free = args[:1] if rule.names.operator == "round" else args  # np.rint(a): ndigits 0
    objects = [np.array([tg.Var(a)], dtype=object) for a in free]
    out = getattr(np, ufunc)(*objects)[0]
    assert isinstance(out, tg.Var)
    assert out.data == rule.forward(*free, *([0.0] if len(free) < len(args) else []))


def test_docs_list_exactly_the_numpy_ufuncs_that_run_on_vars() -> None:
    text = (ROOT / "docs" / "numpy.md").read_text()
    start = text.index("numpy's ufuncs with a tapegrad counterpart")
    listed = set(text[text.index("`add ", start) :].split("`")[1].split())
    from tapegrad.operators import _NUMPY_UFUNCS

    comparisons = {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal"}
    assert listed == set(_NUMPY_UFUNCS) - comparisons
    # numpy's ufuncs of no row: their object loops call operators (np.square: a * a).
    of_no_row = {"divmod", "positive", "square", "reciprocal", "sign", "conjugate"}
    assert listed == {u for r in RULES.values() for u in r.names.numpy} | of_no_row


# Python's operators on Vars, and the row each records.
OPERATORS: dict[tuple[str, int], Callable[..., Any]] = {
    ("+", 2): operator.add,
    ("-", 2): operator.sub,
    ("*", 2): operator.mul,
    ("/", 2): operator.truediv,
    ("**", 2): operator.pow,
    ("//", 2): operator.floordiv,
    ("%", 2): operator.mod,
    ("-", 1): operator.neg,
    ("abs", 1): abs,
    ("round", 2): lambda x, n: round(x, int(n.data)),
}


def test_each_operator_records_the_row_that_names_it() -> None:
    named = {(r.names.operator, r.arity): r for r in RULES.values() if r.names.operator}
    assert set(named) == set(OPERATORS)
    for key, rule in named.items():
        args = [tg.Var(a) for a in inside(rule)]
        out = OPERATORS[key](*args)
        assert out._tape.rules[out._index] is rule, key


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("_gen_rows", ROOT / "tools" / "gen_fastpaths.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_fast_paths_are_generated_for_exactly_the_rows_that_say_so() -> None:
    generated = {row.rule for row in load_generator().SPEC}
    assert generated == {r.name for r in RULES.values() if r.fast_path}


def test_every_row_has_test_inputs_and_an_arity_to_match() -> None:
    for rule in RULES.values():
        # A row states its domain (None: never raises); "unknown" is for custom primitives.
        assert rule.domain is not UNKNOWN_DOMAIN, rule.name
        assert rule.inputs is not None, rule.name
        assert len(rule.inputs.ranges) == rule.arity, rule.name
        assert len(rule.inputs.constants) <= rule.arity, rule.name


# -- values ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n in ROWS if RULES[n].domain is not None))
def test_test_inputs_keep_away_from_where_the_forward_raises(name: str) -> None:
    """Where the forward has a domain error at finite inputs, the row's distance says: outside.

    (Overflow is left out: the test ranges keep far from it, and say so.)
    """
    rule = RULES[name]
    for case in cases(rule):
        for p in case.points:
            if all(math.isfinite(x) for x in p) and outcome(case.forward, *p) in (
                ValueError,
                ZeroDivisionError,
            ):
                assert rule.inputs is not None and rule.inputs.distance is not None, name
                d = rule.inputs.distance(*p)
                assert d is False or (d is not True and d <= 0.0), f"{name}{p}: distance {d}"


@pytest.mark.parametrize("name", ROWS)
def test_eager_jit_array_form_and_vmap_agree_on_hostile_floats(name: str) -> None:
    rule = RULES[name]
    assert rule.inputs is not None
    problems: list[str] = []
    for case in cases(rule):
        problems += case_disagreements(case, rule.inputs.ulps)
    assert not problems, "\n".join(problems)


def case_disagreements(case: Case, ulps: int) -> list[str]:
    rule, pts, f = case.rule, case.points, case.f
    want = [outcome(case.forward, *p) for p in pts]
    problems: list[str] = []

    # Eager: tapegrad.math (or the rule) on floats and on Vars.
    problems += disagreements("floats", pts, [outcome(f, *p) for p in pts], want, 0)
    problems += disagreements(
        "Vars", pts, [outcome(lambda *a: f(*map(tg.Var, a)), *p) for p in pts], want, 0
    )

    # jit: traced at a point where the forward is fine, replayed at every point.
    jitted = tg.jit(f)
    problems += disagreements("jit", pts, [outcome(jitted, *p) for p in pts], want, 0)

    # The domain: exactly where the forward raises, and what it raises.
    columns = [np.array([p[i] for p in pts]) for i in range(case.arity)]
    raises = np.array([isinstance(w, type) for w in want])
    if rule.domain is None:
        assert not raises.any(), f"{case} raises at {[p for p, r in zip(pts, raises) if r][:3]}"
    else:
        assert rule.domain.where is not None
        with np.errstate(all="ignore"):
            mask = np.asarray(rule.domain.where(np, *case.arrays(columns)), dtype=bool)
        wrong = [p for p, m, r in zip(pts, np.broadcast_to(mask, raises.shape), raises) if m != r]
        assert not wrong, f"{case}: domain wrong at {wrong[:5]}"
        kinds = {w for w in want if isinstance(w, type)}
        assert kinds <= set(rule.domain.errors), f"{case} raises {kinds}"

    # The array form on every point where the forward gives a value.
    fine = [k for k, w in enumerate(want) if not isinstance(w, type)]
    if rule.array_form is not None and fine:
        with np.errstate(all="ignore"):
            got = rule.array_form(np, *case.arrays([c[fine] for c in columns]))
        got = np.broadcast_to(np.asarray(got, dtype=float), (len(fine),)).tolist()
        fine_pts = [pts[k] for k in fine]
        problems += disagreements("array form", fine_pts, got, [want[k] for k in fine], ulps)

    # vmap over all the fine points at once; then each raising point with a fine one.
    if fine:
        batched = tg.vmap(f)(*[c[fine] for c in columns])
        got = np.broadcast_to(np.asarray(batched, dtype=float), (len(fine),)).tolist()
        problems += disagreements(
            "vmap", [pts[k] for k in fine], got, [want[k] for k in fine], ulps
        )
        for k in [k for k, w in enumerate(want) if isinstance(w, type)][:8]:
            pair = [c[[fine[0], k]] for c in columns]
            assert outcome(tg.vmap(f), *pair) == want[k], f"vmap {case} at {pts[k]}"
    return [f"{case}: {p}" for p in problems]


@pytest.mark.parametrize("name", sorted(n for n in ROWS if RULES[n].domain is not None))
def test_an_unused_op_that_raises_still_raises_under_jit_and_vmap(name: str) -> None:
    """The value is thrown away, but ``f`` raises there: so must a replay."""
    raised = False
    for case in cases(RULES[name]):

        def f(*xs: Any, case: Case = case) -> Any:
            case.f(*xs)
            return xs[0] * 1.0

        pts = case.points
        want = [outcome(f, *p) for p in pts]
        raising = [k for k, w in enumerate(want) if isinstance(w, type)]
        raised = raised or bool(raising)
        fine = next(k for k, w in enumerate(want) if not isinstance(w, type))
        jitted = tg.jit(f)
        assert outcome(jitted, *pts[fine]) == want[fine]
        for k in raising[:20]:
            assert outcome(jitted, *pts[k]) == want[k], f"jit {case} at {pts[k]}"
            pair = [np.array([pts[fine][i], pts[k][i]]) for i in range(case.arity)]
            assert outcome(tg.vmap(f), *pair) == want[k], f"vmap {case} at {pts[k]}"
    assert raised, f"{name}: no hostile point where it raises"


# -- gradients ---------------------------------------------------------------------


def grad_outcome(g: Callable[..., Any], *args: float) -> list[float] | type[BaseException]:
    """``g(*args)`` as a list of floats (a zero as 0.0), or the type of what it raised.

    The sign of a zero gradient is not compared: the eager float sweep sums
    each gradient from 0.0 (so never gives -0.0) and the traced sweep does not
    (a known bug, xfailed strictly in tests/test_jit.py:
    test_zero_gradients_have_fs_sign).
    """
    try:
        value = g(*args)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError) as e:
        return type(e)
    return [float(v) + 0.0 for v in (value if isinstance(value, tuple) else (value,))]


@pytest.mark.parametrize("name", ROWS)
def test_gradients_agree_between_eager_jit_and_vmap(name: str) -> None:
    rule = RULES[name]
    assert rule.inputs is not None
    # A transcendental partial rounds its own way on arrays: a few ulps of
    # each factor, 4x the value's ulps (and see close()).
    tolerance = 4 * rule.inputs.ulps
    problems = []
    for case in cases(rule):
        g = tg.grad(case.f, argnums=tuple(range(case.arity)))
        pts = case.points[::3] if case.arity > 1 else case.points
        want = [grad_outcome(g, *p) for p in pts]
        jitted = tg.jit(g)
        for p, w in zip(pts, want):
            got = grad_outcome(jitted, *p)
            if isinstance(w, type) or isinstance(got, type):
                ok = got == w
            else:
                ok = all(agree(a, b, tolerance) or close(a, b, tolerance) for a, b in zip(got, w))
            if not ok:
                problems.append(f"jit(grad) {case} {p}: {got!r}, eager {w!r}")
        fine = [k for k, w in enumerate(want) if not isinstance(w, type)]
        if not fine:
            continue
        columns = [np.array([pts[k][i] for k in fine]) for i in range(case.arity)]
        batched = tg.vmap(g)(*columns)
        outs = batched if isinstance(batched, tuple) else (batched,)
        for j, out in enumerate(outs):
            got_j = (np.broadcast_to(np.asarray(out, dtype=float), (len(fine),)) + 0.0).tolist()
            for k, value in zip(fine, got_j):
                w = want[k]
                assert not isinstance(w, type)
                if not (agree(value, w[j], tolerance) or close(value, w[j], tolerance)):
                    problems.append(f"vmap(grad) {case} {pts[k]}[{j}]: {value!r}, eager {w[j]!r}")
    assert not problems, "\n".join(problems[:8])


def close(a: float, b: float, tolerance: int) -> bool:
    """For a transcendental row: equal up to the rounding of a difference of terms of size 1.

    ``1 - out**2`` (tanh') at ``out ~ 1``: one ulp of ``out`` is many ulps of
    the difference, but at most ``4e-16`` absolutely.
    """
    if not tolerance:
        return False
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 4e-16 * max(1.0, abs(a), abs(b))


# -- independent references, generated from the rows --------------------------------


def library_reference(rule: Rule) -> Callable[..., float] | None:
    """The function of ``math``, numpy or ``scipy.special`` with the row's name, if any."""
    for name in rule.names.math:
        for library in (math, np, scipy.special):
            fn = getattr(library, name, None)
            if callable(fn) and not isinstance(fn, type):
                return lambda *xs, fn=fn: float(fn(*xs))
    return None


REFERENCED = [n for n in ROWS if library_reference(RULES[n]) is not None]


@pytest.mark.parametrize("name", REFERENCED)
def test_values_match_the_library_function_of_the_same_name(name: str) -> None:
    rule = RULES[name]
    reference = library_reference(rule)
    assert reference is not None and rule.inputs is not None
    ulps = max(rule.inputs.ulps, 1)  # numpy's and scipy's libm round their own way
    rng = np.random.default_rng(17)
    for _ in range(200):
        args = tuple(float(rng.uniform(lo, hi)) for lo, hi in rule.inputs.ranges)
        got, want = outcome(rule.forward, *args), outcome(reference, *args)
        assert agree(got, want, ulps), f"{name}{args}: {got!r}, reference {want!r}"


@pytest.mark.parametrize("name", sorted(set(ROWS) - UNCHECKABLE))
def test_partials_match_finite_differences_on_the_rows_inputs(name: str) -> None:
    spec = BUILTIN_OPS[name]

    @settings(max_examples=15, derandomize=True, database=None, deadline=None)
    @given(inputs_for(name))
    def check(args: tuple[float, ...]) -> None:
        tg.check_grads(spec.fn, args, order=2)

    check()
