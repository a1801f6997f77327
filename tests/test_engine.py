"""The tape engine's micrograd semantics, against independent references.

References: micrograd 0.1.0 itself (same random programs built with both
libraries, values and every node's gradient compared to 1e-12), hand-derived
gradients and closed forms (a 1,000,000-op affine chain, a chain that crosses
chunk boundaries of the ambient tape), and plain-float replays of the same
computations. No test compares tapegrad with itself.

Some tests run in a fresh ``contextvars.Context()``: it starts with no tape, so
the first op opens a new ambient chunk and op positions are known; with
``engine.CHUNK_SIZE`` patched to a tiny value there, every few ops cross a
chunk boundary.
"""

from __future__ import annotations

import contextvars
import gc
import math
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import micrograd.engine  # type: ignore[import-untyped]
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.tape as tape_module
from tapegrad import Value, Var, engine


def in_fresh_context(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with no current tape, so it records on a brand-new ambient chunk."""
    return contextvars.Context().run(fn)


@pytest.fixture
def default_recursion_limit() -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # CPython's default
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


# -- micrograd attributes ------------------------------------------------------------


def test_data_and_grad_are_settable_floats() -> None:
    a = Var(2)
    assert type(a.data) is float and a.data == 2.0
    assert type(a.grad) is float and a.grad == 0.0
    a.data = 3.5
    a.grad = 1.25
    assert (a.data, a.grad) == (3.5, 1.25)
    b = a * 2.0  # ops use the current data
    assert b.data == 7.0
    assert b.grad == 0.0  # an intermediate before any backward
    b.grad = 0.5
    assert b.grad == 0.5
    b.backward()  # adds to what is there: leaves and the output alike
    assert b.grad == 1.5
    assert a.grad == 1.25 + 2.0


def test_intermediate_grads_after_backward() -> None:
    # L = (a*b + c) * f, seed 002; hand-derived: e = a*b and d = e + c get -2.
    a, b, c, f = Var(2.0), Var(-3.0), Var(10.0), Var(-2.0)
    e = a * b
    d = e + c
    big_l = d * f
    big_l.backward()
    assert [big_l.grad, d.grad, e.grad, f.grad] == [1.0, -2.0, -2.0, 4.0]
    assert [a.grad, b.grad, c.grad] == [6.0, -4.0, -2.0]


@pytest.mark.parametrize(
    ("expr", "grad"),
    [
        (lambda a: a + a, lambda x: 2.0),
        (lambda a: a * a, lambda x: 2 * x),
        (lambda a: a - a, lambda x: 0.0),
        (lambda a: a / a, lambda x: 0.0),
        (lambda a: a * a * a, lambda x: 3 * x * x),
        (lambda a: (a * 2.0) * (a * 2.0), lambda x: 8 * x),
        (lambda a: tg.math.minimum(a, a) + tg.math.hypot(a, a), lambda x: 1.0 + math.sqrt(2)),
    ],
    ids=["a+a", "a*a", "a-a", "a/a", "a*a*a", "(2a)(2a)", "min+hypot"],
)
def test_node_used_twice_gets_both_contributions(
    expr: Callable[[Any], Any], grad: Callable[[float], float]
) -> None:
    x = 3.0
    a = Var(x)
    expr(a).backward()
    assert a.grad == pytest.approx(grad(x), rel=1e-15, abs=1e-15)


def test_shared_intermediate_used_in_two_branches() -> None:
    a, b = Var(1.5), Var(-0.5)
    c = a * b  # used by two later nodes
    d = c * c + c.tanh()
    d.backward()
    cv = 1.5 * -0.5
    dd_dc = 2 * cv + 1 - math.tanh(cv) ** 2
    assert c.grad == pytest.approx(dd_dc, rel=1e-15)
    assert a.grad == pytest.approx(dd_dc * -0.5, rel=1e-15)
    assert b.grad == pytest.approx(dd_dc * 1.5, rel=1e-15)


def test_two_backward_calls_add_up_and_reset() -> None:
    a, b, c = Var(2.0), Var(-3.0), Var(10.0)
    e = a * b
    d = e + c
    big_l = d * -2.0
    big_l.backward()
    big_l.backward()
    assert [a.grad, b.grad, c.grad] == [12.0, -8.0, -4.0]
    assert [big_l.grad, d.grad, e.grad] == [2.0, -4.0, -4.0]
    for v in (a, b, c, e, d, big_l):
        v.grad = 0.0
    assert [v.grad for v in (a, b, c, e, d, big_l)] == [0.0] * 6
    big_l.backward()
    assert [a.grad, b.grad, c.grad] == [6.0, -4.0, -2.0]
    assert [big_l.grad, d.grad, e.grad] == [1.0, -2.0, -2.0]


def test_backward_from_two_outputs_sharing_a_leaf() -> None:
    a, b = Var(0.5), Var(4.0)
    (a * b).backward()
    (a.exp() + b).backward()
    assert a.grad == pytest.approx(4.0 + math.exp(0.5), rel=1e-15)
    assert b.grad == 0.5 + 1.0


def test_backward_of_a_leaf_and_of_unrelated_leaves() -> None:
    a, b = Var(3.0), Var(4.0)
    a.backward()
    assert a.grad == 1.0
    (a * 2.0).backward()
    assert (a.grad, b.grad) == (3.0, 0.0)


def test_labels() -> None:
    a = Var(1.0, label="a")
    b = Value(2.0)
    assert a.label == "a"
    assert b.label == ""
    b.label = "b"
    assert b.label == "b"
    c = a * b
    assert c.label == ""
    c.label = "c"
    a.label = "a2"
    assert (a.label, b.label, c.label) == ("a2", "b", "c")
    d = c + 1.0
    d.label = "d"
    assert (c.label, d.label) == ("c", "d")  # labels of different nodes are independent
    assert (c.data, d.data) == (2.0, 3.0)
    d.backward()
    assert (a.grad, b.grad) == (2.0, 1.0)


# -- Python protocols ------------------------------------------------------------------


def test_comparisons_return_bool() -> None:
    a, b = Var(1.0), Var(2.0)
    results = {
        "a < b": a < b,
        "a <= b": a <= b,
        "a > b": a > b,
        "a >= b": a >= b,
        "a == b": a == b,
        "a != b": a != b,
        "a < 1.5": a < 1.5,
        "2 > a": 2 > a,  # noqa: SIM300 - the reflected operator is under test
        "a == 1": a == 1,
        "1.0 == a": 1.0 == a,  # noqa: SIM300
        "a == Var(1.0)": a == Var(1.0),
        "a * 2 >= b": a * 2 >= b,
        "np.float64(1.5) < b": np.float64(1.5) < b,
    }
    assert {k: type(v) for k, v in results.items()} == dict.fromkeys(results, bool)
    assert [k for k, v in results.items() if v] == [
        "a < b",
        "a <= b",
        "a != b",
        "a < 1.5",
        "2 > a",
        "a == 1",
        "1.0 == a",
        "a == Var(1.0)",
        "a * 2 >= b",
        "np.float64(1.5) < b",
    ]
    branch = "yes" if a < b else "no"
    assert branch == "yes"


def test_equality_with_a_non_number_is_false() -> None:
    v = Var(1.0)
    assert (1.0 == "abc") is False  # type: ignore[comparison-overlap]  # float semantics
    assert (v == "abc") is False
    assert (v != None) is True  # noqa: E711 - the operator itself is under test
    assert v not in [None, "x"]


def test_float_int_bool_and_hash_by_identity() -> None:
    a = Var(2.5)
    for convert in (float, int, complex):  # each would drop the derivative
        with pytest.raises(TypeError, match=r"v\.data.*tapegrad\.math.*stop_gradient"):
            convert(a)
    assert f"{a:.2f}" == "2.50"  # formatting shows the value
    assert bool(a) and not bool(Var(0.0))
    h = hash(a)
    a.data = -7.0  # identity hash: unchanged by the value
    assert hash(a) == h
    twins = [Var(1.0), Var(1.0)]
    assert len(set(twins)) == 2
    table = {twins[0]: "first", twins[1]: "second"}
    assert table[twins[1]] == "second"
    c = twins[0] * 1.0  # equal by value to twins[0], a different object
    assert c == twins[0]
    assert {c: 1}[c] == 1
    assert c not in table  # found by identity, not by value


def test_numpy_scalar_interop() -> None:
    v = Var(3.0)
    for out, value, grad in [
        (np.float64(2.0) * v, 6.0, 2.0),
        (v * np.float64(2.0), 6.0, 2.0),
        (np.float64(2.0) + v, 5.0, 1.0),
        (np.float64(2.0) - v, -1.0, -1.0),
        (np.float64(6.0) / v, 2.0, -6.0 / 9.0),
        (v ** np.int64(2), 9.0, 6.0),
        (np.float32(0.5) * v, 1.5, 0.5),
        (np.float64(2.0) ** v, 8.0, 8.0 * math.log(2.0)),
    ]:
        assert isinstance(out, Var), type(out)
        assert out.data == value
        v.grad = 0.0
        out.backward()
        assert v.grad == pytest.approx(grad, rel=1e-15)
    for raw, value in [(np.float32(1.5), 1.5), (np.float64(-2.25), -2.25), (np.int64(3), 3.0)]:
        w = Var(raw)
        assert type(w.data) is float and w.data == value
    assert Var(True).data == 1.0 and type(Var(True).data) is float


def test_a_numpy_scalar_compares_with_a_var_as_with_its_float() -> None:
    # numpy compares a float with a float32 in float32: 0.100000002 rounds to
    # float32(0.1). Either spelling must agree with the float's comparison.
    c, x = np.float32(0.1), 0.100000002
    v = Var(x)
    assert [c < v, c <= v, c > v, c >= v, c == v, c != v] == [
        c < x,
        c <= x,
        c > x,
        c >= x,
        c == x,
        c != x,
    ]
    assert [c < v, c == v] == [False, True]  # not float64's answer
    assert (np.float64(0.05) < v) is True and (np.array(0.2) < v) is False


def test_sum_and_numpy_object_array_sum() -> None:
    # Seed 002 sums a list of Values with np.array(...).sum(); builtin sum starts at 0.
    xs = [Var(float(i)) for i in range(1, 5)]
    for total in (sum(x * x for x in xs), np.array([x * x for x in xs]).sum()):
        assert isinstance(total, Var)
        assert total.data == 30.0
        for x in xs:
            x.grad = 0.0
        total.backward()
        assert [x.grad for x in xs] == [2.0, 4.0, 6.0, 8.0]


# -- agreement with micrograd ------------------------------------------------------------


def random_program(make: Callable[[float], Any], seed: int, n_ops: int = 40) -> list[Any]:
    """A random expression DAG built with ``make`` (a Value class); returns all its nodes.

    The random choices do not depend on the library, so the same seed gives the
    same program with tapegrad and micrograd. Nodes are reused (a DAG, not a
    tree) and values are kept moderate by squashing large ones.
    """
    rng = random.Random(seed)
    nodes = [make(rng.uniform(-1.5, 1.5)) for _ in range(4)]
    for _ in range(n_ops):
        kind = rng.randrange(14)
        a, b = rng.choice(nodes), rng.choice(nodes)
        c = rng.choice([-2.0, -0.5, 0.75, 1.5, 3])
        if kind == 0:
            r = a + b
        elif kind == 1:
            r = a - b
        elif kind == 2:
            r = a * b
        elif kind == 3:
            r = a / (b * b + 1.0)
        elif kind == 4:
            r = a**2
        elif kind == 5:
            r = a**3
        elif kind == 6:
            r = a.relu()
        elif kind == 7:
            r = -a
        elif kind == 8:
            r = c + a
        elif kind == 9:
            r = c - a
        elif kind == 10:
            r = c * a
        elif kind == 11:
            r = c / (a * a + 0.5)
        elif kind == 12:
            r = a * c + b
        else:
            r = a / c
        if abs(r.data) > 4.0:
            r = r / (r * r + 1.0)
        nodes.append(r)
    nodes.append(nodes[-1] * nodes[-2] + nodes[-3] - nodes[4])
    return nodes


def compare_with_micrograd(seed: int, n_ops: int = 40) -> None:
    ours = random_program(Value, seed, n_ops)
    theirs = random_program(micrograd.engine.Value, seed, n_ops)
    ours[-1].backward()
    theirs[-1].backward()
    assert [v.data for v in ours] == pytest.approx([v.data for v in theirs], rel=1e-12, abs=1e-12)
    scale = max(1.0, *(abs(v.grad) for v in theirs))
    # Every node: the 4 leaves and all intermediates.
    assert [v.grad for v in ours] == pytest.approx(
        [float(v.grad) for v in theirs], rel=1e-12, abs=1e-12 * scale
    )


@pytest.mark.parametrize("seed", range(25))
def test_random_programs_agree_with_micrograd(seed: int) -> None:
    compare_with_micrograd(seed)


def test_micrograd_readme_graph_agrees_node_by_node() -> None:
    def build(make: Callable[[float], Any]) -> list[Any]:
        a = make(-4.0)
        b = make(2.0)
        c = a + b
        d = a * b + b**3
        c1 = c + c + 1
        c2 = c1 + 1 + c1 + (-a)
        d1 = d + d * 2 + (b + a).relu()
        d2 = d1 + 3 * d1 + (b - a).relu()
        e = c2 - d2
        f = e**2
        g = f / 2.0
        g1 = g + 10.0 / f
        return [a, b, c, d, c1, c2, d1, d2, e, f, g, g1]

    ours, theirs = build(Value), build(micrograd.engine.Value)
    ours[-1].backward()
    theirs[-1].backward()
    assert [v.data for v in ours] == pytest.approx([v.data for v in theirs], rel=1e-14)
    assert [v.grad for v in ours] == pytest.approx([v.grad for v in theirs], rel=1e-12)


# -- chunk boundaries of the ambient tape ---------------------------------------------------


def test_backward_across_real_chunk_boundaries() -> None:
    eps = 1e-4
    n = 3 * engine.CHUNK_SIZE // 2 + 7  # two ops per step: crosses 3 chunk boundaries
    x_a, x_b = 1.3, -0.7

    def run() -> None:
        a, b = Var(x_a), Var(x_b)
        t = a * b  # on the first chunk, used again on the last one
        acc = t
        mid = acc
        for i in range(n):
            acc = acc + a * eps  # the leaf a is used on every chunk
            if i == n // 2:
                mid = acc
        out = acc * t
        assert len({id(v._tape) for v in (t, mid, out)}) == 3, "expected three chunks"

        # Plain-float replay and hand-derived closed forms.
        f_t = x_a * x_b
        f_acc = f_t
        for _ in range(n):
            f_acc = f_acc + x_a * eps
        assert acc.data == f_acc
        assert out.data == f_acc * f_t
        out.backward()
        da = (x_b + n * eps) * f_t + f_acc * x_b  # d(acc*t)/da, acc = ab + n a eps
        db = x_a * f_t + f_acc * x_a
        assert a.grad == pytest.approx(da, rel=1e-10)
        assert b.grad == pytest.approx(db, rel=1e-10)
        assert t.grad == pytest.approx(f_acc + f_t, rel=1e-12)  # acc = t + ...
        assert mid.grad == pytest.approx(f_t, rel=1e-12)
        assert acc.grad == pytest.approx(f_t, rel=1e-12)

        # Intermediates of sealed chunks keep labels and settable grads.
        t.label = "t"
        assert t.label == "t"
        t.grad = 0.0
        mid.grad = 0.0
        out.backward()
        assert t.grad == pytest.approx(f_acc + f_t, rel=1e-12)
        assert a.grad == pytest.approx(2 * da, rel=1e-10)
        # backward() from an intermediate of the oldest chunk.
        a.grad = b.grad = 0.0
        t.backward()
        assert (a.grad, b.grad) == (x_b, x_a)

    in_fresh_context(run)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
@pytest.mark.parametrize("seed", range(5))
def test_tiny_chunks_agree_with_micrograd(
    chunk: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tape_module, "CHUNK_SIZE", chunk)

    def run() -> None:
        probe = Var(1.0) * 1.0
        later = probe
        for _ in range(chunk + 2):
            later = later * 1.0
        assert later._tape is not probe._tape, "the patched chunk size did not take effect"
        compare_with_micrograd(100 + seed, n_ops=60)

    in_fresh_context(run)


@pytest.mark.parametrize("chunk", [1, 2, 5, 64])
@pytest.mark.parametrize("seed", range(5))
def test_tiny_chunks_only_the_output_alive(
    chunk: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sealed chunks that no live Var reaches are released; those the output's
    # backward pass needs must survive although every intermediate is gone.
    monkeypatch.setattr(tape_module, "CHUNK_SIZE", chunk)
    theirs = random_program(micrograd.engine.Value, 200 + seed, 80)
    theirs[-1].backward()

    def run() -> tuple[float, list[float]]:
        nodes = random_program(Value, 200 + seed, 80)
        leaves, out = nodes[:4], nodes[-1]
        del nodes
        gc.collect()
        out.backward()
        return out.data, [v.grad for v in leaves]

    value, grads = in_fresh_context(run)
    assert value == pytest.approx(theirs[-1].data, rel=1e-12, abs=1e-12)
    scale = max(1.0, *(abs(v.grad) for v in theirs))
    assert grads == pytest.approx([float(v.grad) for v in theirs[:4]], rel=1e-12, abs=1e-12 * scale)


def test_a_var_of_an_old_chunk_mixed_with_leaves_and_new_vars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every operand combination of leaf / open-chunk Var / sealed-chunk Var.
    monkeypatch.setattr(tape_module, "CHUNK_SIZE", 4)

    def run() -> None:
        a, b = Var(0.5), Var(-1.5)
        old = a * b  # will be on a sealed chunk
        for _ in range(10):
            Var(0.0) * 1.0  # fill chunks with unrelated ops
        assert old._tape is not None and old._tape.closed
        new = b * 2.0
        terms = [old + a, a + old, old * new, new * old, old - new, -old, old.tanh(), 3.0 / old]
        out = terms[0]
        for term in terms[1:]:
            out = out + term
        out.backward()
        o, nw = 0.5 * -1.5, -3.0
        # d/d old of the terms: 1 + 1 + new + new + 1 - 1 + (1 - tanh^2) - 3/old^2
        d_old = 2 + 2 * nw + (1 - math.tanh(o) ** 2) - 3.0 / o**2
        d_new = 2 * o - 1
        assert old.grad == pytest.approx(d_old, rel=1e-14)
        assert a.grad == pytest.approx(d_old * -1.5 + 2, rel=1e-14)
        assert b.grad == pytest.approx(d_old * 0.5 + 2 * d_new, rel=1e-14)

    in_fresh_context(run)


# -- deep graphs: no recursion anywhere -------------------------------------------------------


@pytest.mark.usefixtures("default_recursion_limit")
def test_million_op_chain_forward_and_backward() -> None:
    a, c = 1.0000001, 1e-9
    steps = 500_000  # two ops per step
    x0 = Var(0.5)
    x = x0
    mid = x
    for i in range(steps):
        x = x * a + c
        if i == steps // 2 - 1:
            mid = x
    # Closed form x_n = a^n x0 + c (a^n - 1) / (a - 1), and a float replay.
    an = a**steps
    assert x.data == pytest.approx(an * 0.5 + c * (an - 1) / (a - 1), rel=1e-9)
    f = 0.5
    for _ in range(steps):
        f = f * a + c
    assert x.data == f
    x.backward()
    assert x0.grad == pytest.approx(an, rel=1e-9)
    assert mid.grad == pytest.approx(a ** (steps - steps // 2), rel=1e-9)
    del x, mid  # releasing a long chain must not recurse either


@pytest.mark.usefixtures("default_recursion_limit")
def test_deep_chain_through_the_generic_path() -> None:
    # sin is recorded by apply(), not by a fast path; 100,000 nested calls.
    x0 = Var(1.2)
    x = x0
    f, deriv = 1.2, 1.0
    for _ in range(100_000):
        x = tg.math.sin(x) * 1.01
        deriv *= math.cos(f) * 1.01
        f = math.sin(f) * 1.01
    assert x.data == f
    x.backward()
    assert x0.grad == pytest.approx(deriv, rel=1e-9)
