"""Every route by which a traced value reaches Python is a guard, pure, or not reusable.

A recorded program replays ops and guards. Any other way a value leaves the
tape while ``f`` is traced (``float``, ``format``, a hash, an op that raises
...) would be replayed as the constant it was; such a trace is *not
reusable*: ``jit`` keeps no program, runs ``f`` and warns once, naming the
route and the ``file:line`` in ``f``. The classification test walks the whole
surface of ``Var`` (and numpy scalars mixed with Vars) and fails for a member
that is not classified, so a new method cannot open a silent route.

Reference everywhere: ``f`` itself, run eagerly on the same arguments
(``program_checks.outcome``: the same floats to the bit, the same types, the
same exception and message).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import math
import random
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from program_checks import counted, examples, on_vars, outcome, zero_sign_dropped

import tapegrad as tg
from tapegrad.programs.recording import Recorder, trace_call
from tapegrad.rules import RULES
from tapegrad.testing import RouteProgram, route_programs

# -- what a trace notes -------------------------------------------------------------------


def traced_notes(fn: Callable[..., Any], *args: Any) -> tuple[list[str], int]:
    """(The routes noted, the number of guards) while ``fn`` is traced at ``args``."""
    recorder = Recorder()
    with contextlib.suppress(Exception):  # a conversion refused: noted before it raises
        trace_call(fn, args, {}, recorder)
    return [route for route, _ in recorder.routes], len(recorder.guards)


def jit_warnings(jitted: Callable[..., Any], *args: Any) -> tuple[Any, list[str]]:
    """(What ``jitted(*args)`` does, as ``outcome`` pictures it; the warnings it gave)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = outcome(jitted, *args)
    return result, [str(w.message) for w in caught]


# -- the classification of Var's surface --------------------------------------------------

# Members that compute a new Var by a rule: no value leaves the tape.
PURE_UNARY = {
    "__abs__", "__neg__", "__pos__", "__round__", "__floor__", "__ceil__", "__trunc__",
    "abs", "acos", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctanh", "asin",
    "atan", "cbrt", "conjugate", "cos", "cosh", "erf", "exp", "exp2", "expm1", "fabs", "log",
    "log10", "log1p", "log2", "relu", "rint", "sigmoid", "sin", "sinh", "softplus", "sqrt",
    "tan", "tanh",
}  # fmt: skip
PURE_BINARY = {
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__",
    "__rpow__", "__divmod__", "__rdivmod__", "atan2", "arctan2", "hypot", "maximum",
    "minimum", "pow", "__array_ufunc__",
}  # fmt: skip
# The Var methods that the rule rows name apply one rule each: pure, by the row.
_ROW_METHODS = {m: rule.arity for rule in RULES.values() for m in rule.names.methods}
PURE_UNARY |= {m for m, arity in _ROW_METHODS.items() if arity == 1}
PURE_BINARY |= {m for m, arity in _ROW_METHODS.items() if arity == 2}
# Comparisons: recorded as guards with their outcome.
GUARDS = {"__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "__bool__"}
# A value reaches Python: noted, the trace is not reusable.
ROUTES = {
    "__float__": "float()",
    "__int__": "int()",
    "__index__": "__index__ (indexing, range)",
    "__complex__": "complex()",
    "__format__": "format with a spec",
    "__repr__": "str()/repr()",
    "__str__": "str()/repr()",
    "__hash__": "hash (a set or dict lookup)",
    "__getstate__": "__getstate__ (copy or pickle state)",
}
# .data and .grad are routes too; they are properties of every Var (checked
# by the tests of reading them below).
VALUE_PROPERTIES = {"data", "grad"}
# No value: names, structure, copies (a traced Var's copy is itself),
# pickling (refused for a Var of a transform), the reverse sweep (whose
# results reach Python only through .grad).
NO_VALUE = {
    "label", "is_leaf", "backward", "__copy__", "__deepcopy__", "__reduce__", "__reduce_ex__",
    "__class__", "__delattr__", "__dir__", "__doc__", "__init__", "__init_subclass__",
    "__module__", "__new__", "__setattr__", "__getattribute__", "__sizeof__", "__slots__",
    "__subclasshook__", "__annotations__", "__weakref__", "__dict__",
}  # fmt: skip
# The engine's own (private) members: users do not call them.
ENGINE = {
    "_binary", "_record", "_fresh_leaf", "_leaf_class", "_tape", "_index", "_keep", "_reg",
    "_grad", "_label", "_value", "_stored_grad",
}  # fmt: skip

CLASSIFIED = PURE_UNARY | PURE_BINARY | GUARDS | set(ROUTES) | VALUE_PROPERTIES | NO_VALUE | ENGINE


def test_every_member_of_var_is_classified() -> None:
    unclassified = sorted(set(dir(tg.Var)) - CLASSIFIED)
    assert not unclassified, f"classify these Var members as pure, guard or route: {unclassified}"
    groups = [PURE_UNARY, PURE_BINARY, GUARDS, set(ROUTES), VALUE_PROPERTIES, NO_VALUE, ENGINE]
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            assert not a & b, a & b


def _pure_call(name: str, x: Any) -> Any:
    if name == "__array_ufunc__":
        return np.add(x, 2.5)
    if name in PURE_UNARY:
        return getattr(x, name)()
    return getattr(x, name)(1.5)


@pytest.mark.parametrize("name", sorted(PURE_UNARY | PURE_BINARY))
def test_pure_members_record_an_op_and_no_route(name: str) -> None:
    def f(x: Any) -> Any:
        out = _pure_call(name, x)
        return list(out) if isinstance(out, tuple) else out

    points = (1.5, 1.25, 2.0) if name == "arccosh" else (0.5, 0.25, 0.75)
    routes, guards = traced_notes(f, points[0])
    assert routes == [] and guards == 0
    # ... and under jit they replay f at other points.
    jitted, calls = counted(f)
    fast = tg.jit(jitted)
    for x in points:
        if name == "__array_ufunc__":  # numpy returns a numpy.float64 on floats: same value
            assert fast(x) == f(x)
        else:  # f on floats (floats lack the methods) or on Vars: what a trace records
            assert outcome(fast, x) in {outcome(f, x), outcome(on_vars(f), x)}
    assert len(calls) == 1


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_comparisons_are_guards(name: str) -> None:
    def f(x: Any) -> Any:
        return getattr(x, name)() if name == "__bool__" else getattr(x, name)(0.5)

    routes, guards = traced_notes(f, 0.25)
    assert routes == [] and guards == 1


ROUTE_CALLS: dict[str, Callable[[Any], Any]] = {
    "__float__": float,
    "__int__": int,
    "__index__": lambda x: [1.0, 2.0][x],
    "__complex__": complex,
    "__format__": lambda x: f"{x:.3f}",
    "__repr__": repr,
    "__str__": str,
    "__hash__": lambda x: x in {0.5, 2.0},
    "__getstate__": lambda x: x.__getstate__(),
}


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_routes_are_noted_with_their_name(name: str) -> None:
    routes, _ = traced_notes(ROUTE_CALLS[name], 0.5)
    assert ROUTES[name] in routes


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_routes_under_jit_run_f_and_warn_once_naming_route_and_line(name: str) -> None:
    call = ROUTE_CALLS[name]

    def f(x: Any) -> Any:
        return call(x * 1.0)

    fast = tg.jit(f)
    got, messages = jit_warnings(fast, 0.5)
    assert got == outcome(f, 0.5)
    assert len(messages) == 1 and ROUTES[name] in messages[0]
    assert f"{__file__}:" in messages[0]  # the file:line in f where it happened
    for x in (1.0, 0.5):  # once per route and line
        got, messages = jit_warnings(fast, x)
        assert got == outcome(f, x) and messages == []


ARITHMETIC = ["+", "-", "*", "/", "**"]
COMPARISONS = ["<", "<=", ">", ">=", "==", "!="]


@pytest.mark.parametrize(
    ("scalar", "op"),
    [(s, op) for s in (np.float64(1.5), np.int64(2)) for op in ARITHMETIC + COMPARISONS]
    + [(np.bool_(True), op) for op in ARITHMETIC + COMPARISONS],
)
def test_numpy_scalars_with_vars_are_pure_or_guards(scalar: Any, op: str) -> None:
    for spelling in (f"s {op} x", f"x {op} s"):
        f = eval(f"lambda x: {spelling}", {"s": scalar})
        routes, guards = traced_notes(f, 0.75)
        assert routes == [], routes
        assert guards == (1 if op in COMPARISONS else 0)
        fast = tg.jit(f)
        for x in (0.75, 2.0, 1.0):  # f gives a numpy.float64 (bool_), jit a float (bool)
            assert fast(x) == f(x)


@pytest.mark.parametrize(
    "spelling",
    ["x + c", "x * c", "x / c", "c < x", "x < c", "c + x", "c * x", "c / x"],
)
def test_a_float32_constant_with_a_traced_var_gives_fs_float32_result(spelling: str) -> None:
    # On floats f computes in float32 (numpy keeps the narrow type); a
    # program would compute in float64, so such a trace is a route and jit
    # runs f. (A comparison is a guard made in float32, as f makes it.)
    c = np.float32(0.1)
    f = eval(f"lambda x: {spelling}", {"c": c})
    if "<" not in spelling:
        routes, _ = traced_notes(f, 0.3)
        assert "a float32 operand" in routes
    fast = tg.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in (0.3, 0.7):
            if "<" in spelling:  # f gives a numpy.bool_, jit a bool
                assert fast(x) == f(x)
            else:
                assert outcome(fast, x) == outcome(f, x)


# -- the numbered patterns, each against eager f ---------------------------------------------


def safe_inverse(x: Any) -> Any:
    try:
        return 1 / x
    except ZeroDivisionError:
        return 0.0


def test_a_caught_division_by_zero_is_not_replayed_as_the_caught_value() -> None:
    fast = tg.jit(safe_inverse)
    got, messages = jit_warnings(fast, 0.0)
    assert got == outcome(safe_inverse, 0.0) == ("ok", ("float", (0.0).hex()))
    assert len(messages) == 1 and "ZeroDivisionError raised by div" in messages[0]
    for x in (2.0, -4.0, 0.0):
        assert outcome(fast, x) == outcome(safe_inverse, x)
    assert fast(2.0) == 0.5


def test_a_caught_domain_error_under_jit_of_grad() -> None:
    def f(x: Any) -> Any:
        try:
            return tg.math.log(x) * x
        except ValueError:
            return x * 0.0

    g = tg.grad(f)
    fast = tg.jit(g)
    with pytest.warns(UserWarning, match="ValueError raised by log"):
        assert outcome(fast, -1.0) == outcome(g, -1.0)
    for x in (2.0, 3.0, -2.0):
        assert outcome(fast, x) == outcome(g, x)
    assert fast(2.0) == math.log(2.0) + 1.0


def test_an_uncaught_error_is_fs_own_error() -> None:
    fast = tg.jit(lambda x: 1.0 / x)
    assert outcome(fast, 0.0) == outcome(lambda x: 1.0 / x, 0.0)
    assert fast(4.0) == 0.25


@pytest.mark.parametrize(
    "spell",
    [
        lambda x: f"{x:.2f}",
        lambda x: format(x, ".3e"),
        lambda x: str(x),
        lambda x: float(format(x, ".17g")) * 2.0,
        lambda x: {"text": f"{x:.1f}", "value": x * 2.0},
    ],
)
def test_formatted_values_are_not_frozen(spell: Callable[[Any], Any]) -> None:
    fast = tg.jit(spell)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in (1.25, 2.5, 1.25, 7.0):
            assert outcome(fast, x) == outcome(spell, x)


def test_formatted_aux_of_value_and_grad_is_not_frozen() -> None:
    g = tg.value_and_grad(lambda x: (x * x, f"{x:.2f}"), has_aux=True)
    fast = tg.jit(g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in (1.0, 3.0):
            assert outcome(fast, x) == outcome(g, x)


@pytest.mark.parametrize(
    "lookup",
    [
        lambda x: 10.0 if x in {1.0, 2.0} else 0.0,
        lambda x: {1.0: 10.0}.get(x, -1.0),
        lambda x: x * 3.0 in {3.0},
    ],
)
def test_set_and_dict_lookups_by_value_follow_f(lookup: Callable[[Any], Any]) -> None:
    fast = tg.jit(lookup)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in (1.0, 5.0, 2.0, 1.0):
            assert outcome(fast, x) == outcome(lookup, x)


def test_hash_of_a_var_is_by_identity_outside_a_trace() -> None:
    v = tg.Var(1.0)
    assert hash(v) == id(v) and v not in {1.0} and v in {v}


def test_dict_arguments_keep_their_order_and_class() -> None:
    def keys_and_sum(d: dict[str, Any]) -> Any:
        total = 0.0
        for k in d:
            total = total * 2.0 + d[k]
        return [list(d), type(d).__name__, total]

    fast = tg.jit(keys_and_sum)
    for d in (
        {"b": 1.0, "a": 2.0},
        {"a": 2.0, "b": 1.0},
        collections.OrderedDict([("z", 1.0), ("y", 3.0)]),
        collections.Counter({"q": 1.0, "p": 2.0}),
        {"b": 4.0, "a": 5.0},
    ):
        assert outcome(fast, d) == outcome(keys_and_sum, d)


def test_a_defaultdict_argument_keeps_its_default() -> None:
    def f(d: dict[str, Any]) -> Any:
        return d["a"] + d["missing"]

    fast = tg.jit(f)
    for a in (1.0, 2.0):
        d = collections.defaultdict(lambda: 10.0, a=a)
        assert outcome(fast, d) == outcome(f, collections.defaultdict(lambda: 10.0, a=a))


def test_an_unknown_dict_subclass_runs_f() -> None:
    class Config(dict[str, Any]):
        def __init__(self, scale: float) -> None:
            super().__init__(scale=scale)

    f = lambda c: c["scale"] * 2.0
    fast = tg.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fast(Config(1.5)) == 3.0 and fast(Config(2.0)) == 4.0


def test_a_custom_primitive_returning_float32_replays_as_eager_code() -> None:
    triple = tg.primitive(lambda x: np.float32(x) * np.float32(3), lambda x, out: 3.0)
    f = lambda x: triple(x) + 0.0
    fast = tg.jit(f)
    for x in (1.0, 0.1, 2.0):
        assert outcome(fast, x) == outcome(f, x)
        assert type(fast(x)) is float


@pytest.mark.parametrize(
    "config",
    [SimpleNamespace(scale=2.0), {1, 2}, np.array(["a", "b"])],
    ids=["namespace", "set", "str-array"],
)
def test_an_unhashable_argument_runs_f_with_a_clear_warning(config: Any) -> None:
    def f(x: Any, c: Any) -> Any:
        return x * 2.0

    fast = tg.jit(f)
    got, messages = jit_warnings(fast, 1.5, config)
    assert got == outcome(f, 1.5, config)
    assert len(messages) == 1 and "not hashable" in messages[0]
    assert "TreeDef" not in messages[0]
    got, messages = jit_warnings(fast, 2.5, config)
    assert got == outcome(f, 2.5, config) and messages == []


def test_a_partial_nobody_uses_is_not_evaluated() -> None:
    # d sqrt-like / dx = 0.5 / out raises at 0; f on floats evaluates no partial.
    root = tg.primitive(math.sqrt, lambda x, out: 0.5 / out, name="root")
    f = lambda x: root(x) * 2.0
    for order in ([0.0, 4.0, 0.0], [4.0, 0.0, 9.0]):
        fast = tg.jit(f)
        for x in order:
            assert outcome(fast, x) == outcome(f, x)


def test_the_derivative_of_a_raising_partial_raises_as_eager() -> None:
    root = tg.primitive(math.sqrt, lambda x, out: 0.5 / out, name="root")
    g = tg.grad(lambda x: root(x))
    fast = tg.jit(g)
    for x in (4.0, 0.0, 9.0):
        assert outcome(fast, x) == outcome(g, x)


TABLE = [10.0, 20.0, 30.0, 40.0]


@pytest.mark.parametrize(
    "f",
    [
        lambda x: TABLE[round(x)],
        lambda x: sum(x * k for k in range(round(x))),
        lambda x: TABLE[int(x)] * x,
        lambda x: TABLE[math.floor(x)],
    ],
    ids=["table-round", "range-round", "int", "floor"],
)
def test_an_int_from_a_value_is_a_conversion(f: Callable[[Any], Any]) -> None:
    fast = tg.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in (1.2, 2.7, 0.4, 1.2):
            assert outcome(fast, x) == outcome(f, x)


@pytest.mark.parametrize(
    "args",
    [
        (np.float32(1.5), np.float32(0.1)),
        (np.float16(1.5), 0.1),
        (np.array([1.5, 0.1], dtype=np.float32), 0.3),
    ],
    ids=["float32", "float16", "float32-array"],
)
def test_float32_arguments_give_fs_float32_results(args: tuple[Any, ...]) -> None:
    def f(x: Any, y: Any) -> Any:
        return x * y + x / 3 if np.ndim(x) == 0 else [x[0] * y, x[1] - y]

    fast = tg.jit(f)
    got, messages = jit_warnings(fast, *args)
    assert got == outcome(f, *args)
    assert len(messages) == 1 and "float64" in messages[0]


def test_a_signature_that_keeps_retracing_stops_with_the_fix_named() -> None:
    rng = random.Random(3)

    def hidden(xs: list[Any]) -> Any:
        return sum(max(0.0, x) * w for x, w in zip(xs, (1.0, -2.0, 0.5, 3.0, 1.5, -1.0, 2.0)))

    jitted, calls = counted(hidden)
    fast = tg.jit(jitted)
    messages: list[str] = []
    for _ in range(200):
        xs = [rng.uniform(-1.0, 1.0) for _ in range(7)]
        got, caught = jit_warnings(fast, xs)
        messages += caught
        assert got == outcome(hidden, xs)
    assert len(messages) == 1 and "tapegrad.math.relu" in messages[0]
    traced = [c for c in calls if isinstance(c[0][0], tg.Var)]
    assert len(traced) < 40  # it stopped tracing, instead of 200 traces
    # relu, the fix, replays for any input: one trace.
    with_relu, calls = counted(lambda xs: sum(tg.math.relu(x) * 2.0 for x in xs))
    fast = tg.jit(with_relu)
    for _ in range(50):
        fast([rng.uniform(-1.0, 1.0) for _ in range(7)])
    assert len(calls) == 1


def test_a_few_branches_traced_early_do_not_stop_tracing() -> None:
    def halve(x: Any) -> Any:
        while x > 1.0:
            x = x / 2.0
        return x

    jitted, calls = counted(halve)
    fast = tg.jit(jitted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        points = [1.5 * 2.0**k for k in range(8)] * 10
        for x in points:
            assert fast(x) == halve(x)
    assert len(calls) == 8  # one trace per loop count, then replays


# -- .data and .grad of any Var (closed over included) -------------------------------------


def test_data_of_a_closed_over_var_is_a_route() -> None:
    w = tg.Var(3.0)
    routes, _ = traced_notes(lambda x: x * w.data, 2.0)
    assert ".data" in routes


def test_grad_of_a_closed_over_var_is_a_route() -> None:
    p = tg.Var(3.0)
    p.grad = 0.5
    routes, _ = traced_notes(lambda x: x - 0.1 * p.grad, 2.0)
    assert ".grad" in routes


def test_jit_follows_a_closed_over_var_whose_data_changes() -> None:
    w = tg.Var(3.0)
    f = lambda x: x * w.data
    fast = tg.jit(f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fast(2.0) == 6.0
        w.data = 5.0
        assert fast(2.0) == 10.0
    assert any(".data" in str(m.message) for m in caught)


def test_data_of_a_traced_var_is_not_replayed() -> None:
    f = lambda x: x * (x * 2.0).data
    fast = tg.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in (1.0, 3.0):  # .data of its own intermediate: f runs, on the floats given
            assert outcome(fast, x) == outcome(f, x)
            assert outcome(tg.jit(on_vars(f)), x) == outcome(on_vars(f), x)


def test_copies_of_a_traced_var_stay_on_the_tape() -> None:
    def f(x: Any) -> Any:
        return copy.copy(x * 2.0) + copy.deepcopy(x)

    routes, _ = traced_notes(f, 1.0)
    assert routes == []
    fast = tg.jit(f)
    assert fast(1.0) == 3.0 and fast(2.0) == 6.0


# -- random programs with routes, against eager f --------------------------------------------


@examples(3.0)
@given(f=route_programs(max_ops=10))
def test_random_programs_with_routes_equal_f_under_jit_at_every_point(f: RouteProgram) -> None:
    # The first point is where the try/except routes raise and the lookups
    # match: jit traces there first, then must follow f everywhere else. The
    # reference is f on floats (a set lookup of a Var is by identity, so f on
    # Vars is not: jit must not replay that).
    fast = tg.jit(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):  # the second round replays what the first kept
            for xs, weights in f.points:
                want = zero_sign_dropped(outcome(f, xs, weights))
                assert zero_sign_dropped(outcome(fast, xs, weights)) == want, (xs, weights)


@examples(1.0)
@given(f=route_programs(max_ops=8, max_routes=2))
def test_random_programs_with_routes_equal_their_gradient_under_jit(f: RouteProgram) -> None:
    g = tg.value_and_grad(f)
    fast = tg.jit(g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for xs, weights in f.points:
            want = zero_sign_dropped(outcome(g, xs, weights))
            assert zero_sign_dropped(outcome(fast, xs, weights)) == want, (xs, weights)
