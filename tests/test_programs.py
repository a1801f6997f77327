"""``trace`` and ``Program``: listing, DOT, source, replay, guards, safety, size.

References: hand-written listings and hand-derived values for small
functions; the eager function itself for replays (bit for bit, via
``program_checks.canonical``); Python's ``tokenize`` for what the generated
source may contain; Graphviz's ``dot`` (when installed) for the DOT text.
jit and vmap have their own files (test_jit.py, test_vmap.py).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from typing import Any

import numpy as np
import pytest
from program_checks import assert_no_user_text, canonical, set_segment

import tapegrad as tg
from tapegrad.programs import pyarrays, pysource


def branchy(x: Any, y: Any) -> Any:
    z = x * y + 2.0
    if z > 0:
        return tg.math.tanh(z), -z
    return z, 3


# -- the listing -----------------------------------------------------------------------


def test_listing_numbers_inputs_first_then_ops_with_guards_in_place() -> None:
    # Reference: written by hand from branchy's code at (0.5, 3.0), where z = 3.5 > 0.
    prog = tg.trace(branchy, 0.5, 3.0)
    assert str(prog) == "\n".join(
        [
            "%1 = input",
            "%2 = input",
            "%3 = mul %1 %2",
            "%4 = add %3 2.0",
            "guard %4 > 0 (True)",
            "%5 = tanh %4",
            "%6 = neg %4",
            "return %5, %6",
        ]
    )
    assert len(prog) == 4  # ops only: inputs and guards are not entries
    assert repr(prog) == "<Program: 2 inputs, 4 ops, 1 guards>"


def test_listing_of_the_other_branch_returns_a_constant() -> None:
    # z = -1 * 3 + 2 = -1 <= 0: the guard records False, and 3 is returned as is.
    prog = tg.trace(branchy, -1.0, 3.0)
    lines = str(prog).splitlines()
    assert lines[4] == "guard %4 > 0 (False)"
    assert lines[-1] == "return %4, 3"
    assert prog(-2.0, 3.0) == (-4.0, 3)


def test_listing_of_builtin_max_and_equality_are_guards() -> None:
    # max(x, 1.0) asks `1.0 > x`, i.e. x < 1.0; x == 2.0 is True and adds as 1.0.
    prog = tg.trace(lambda x: max(x, 1.0) + (x == 2.0), 2.0)
    assert str(prog).splitlines() == [
        "%1 = input",
        "guard %1 < 1.0 (False)",
        "guard %1 == 2.0 (True)",
        "%2 = add %1 1.0",
        "return %2",
    ]


def test_kinks_inside_primitives_are_not_guards() -> None:
    # relu, abs, minimum, maximum choose by value inside their rule: no guard,
    # and the one program is right on both sides of every kink.
    def f(x: Any, y: Any) -> Any:
        return tg.math.relu(x) + abs(y) + tg.math.minimum(x, y) * tg.math.maximum(x, y)

    prog = tg.trace(tg.value_and_grad(f, argnums=(0, 1)), 1.0, -2.0)
    assert not prog.guards and "guard" not in str(prog)
    for point in [(1.0, -2.0), (-1.0, 2.0), (0.5, 0.25), (-3.0, -4.0), (0.0, 0.0)]:
        assert canonical(prog(*point)) == canonical(tg.value_and_grad(f, argnums=(0, 1))(*point))


def test_a_traced_transform_holds_its_backward_sweep_as_ordinary_ops() -> None:
    # d/dx x**3 = 3 x**2: 27 at 3, 0.75 at -0.5 (hand-derived).
    prog = tg.trace(tg.grad(lambda x: x * x * x), 2.0)
    assert prog(3.0) == 27.0 and prog(-0.5) == 0.75
    assert all(line.split()[2] in ("mul", "add") for line in str(prog).splitlines()[1:-1])


def test_ops_nothing_needs_are_pruned() -> None:
    def f(x: Any) -> Any:
        unused = tg.math.tanh(x) * 3.0  # computed, never returned nor compared
        del unused
        return x + 1.0

    prog = tg.trace(f, 0.5)
    assert len(prog) == 1 and "tanh" not in str(prog)


# -- DOT -------------------------------------------------------------------------------

_DOT_LINE = re.compile(
    r'\t(?:(?:v|c|out)\d+ \[label="(?:[^"\\]|\\.)*"(?: shape=\w+)?\]'
    r"|(?:v|c)\d+ -> (?:v|out)\d+"
    r"|graph \[rankdir=LR\]|node \[shape=box\])"
)


def dot_labels(dot: str) -> list[str]:
    """The labels of a DOT text, unescaped (a rough parser of what to_dot writes)."""
    labels = re.findall(r'label="((?:[^"\\]|\\.)*)"', dot)
    return [
        re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), t) for t in labels
    ]


def assert_dot_is_valid(dot: str) -> None:
    lines = dot.splitlines()
    assert lines[0] == "digraph program {" and lines[-1] == "}"
    for line in lines[1:-1]:
        assert _DOT_LINE.fullmatch(line), f"not a DOT statement: {line!r}"
    if shutil.which("dot"):  # the real parser, when Graphviz is installed
        done = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "<svg" in done.stdout


def test_dot_has_a_node_per_input_op_and_output_and_an_edge_per_operand() -> None:
    prog = tg.trace(branchy, 0.5, 3.0)
    dot = prog.to_dot()
    assert_dot_is_valid(dot)
    assert dot_labels(dot) == [
        "%1 input",
        "%2 input",
        "%3 mul",
        "%4 add",
        "2.0",
        "%5 tanh",
        "%6 neg",
        "output 0",
        "output 1",
    ]
    edges = re.findall(r"\t(\w+) -> (\w+)", dot)
    assert edges == [
        ("v1", "v3"),
        ("v2", "v3"),
        ("v3", "v4"),
        ("c1", "v4"),
        ("v4", "v5"),
        ("v4", "v6"),
        ("v5", "out0"),
        ("v6", "out1"),
    ]


# -- the source and replay ---------------------------------------------------------------


def test_source_compiles_and_replays_f_bit_for_bit() -> None:
    prog = tg.trace(branchy, 0.5, 3.0)
    compile(prog.source, "<test>", "exec")
    assert_no_user_text(prog.source)
    for point in [(0.5, 3.0), (1.0, 1.0), (0.1, -0.2), (1e-300, 5e-300)]:
        assert canonical(prog(*point)) == canonical(branchy(*point))


def test_constants_without_literals_and_negative_zero_replay_exactly() -> None:
    def f(x: Any) -> Any:
        return x * math.inf, x - math.nan, -0.0 * x, x / -2.0, x - 0.0, x + -0.0

    prog = tg.trace(f, 2.0)
    for x in [2.0, -0.0, 0.0, -3.5, math.inf]:
        assert canonical(prog(x)) == canonical(f(x))


def test_a_failed_guard_raises_guard_error_naming_it() -> None:
    prog = tg.trace(branchy, 0.5, 3.0)
    with pytest.raises(tg.GuardError, match=r"guard %4 > 0 was True"):
        prog(-1.0, 3.0)
    assert issubclass(tg.GuardError, ValueError)


def test_a_nan_fails_every_guard() -> None:
    # Each recorded outcome was made on numbers; a NaN makes every comparison
    # False (or != True), so no branch may claim it.
    for op in ["<", "<=", ">", ">=", "==", "!="]:
        for at in [0.5, 2.0]:

            def f(x: Any, op: str = op) -> Any:
                return x * 2.0 if eval(f"x {op} 2.0") else x * 3.0

            prog = tg.trace(f, at)
            with pytest.raises(tg.GuardError):
                prog(math.nan)


def test_fixed_leaves_are_baked_in_and_other_values_rejected() -> None:
    def f(x: Any, n: int, how: str) -> Any:
        return x**n if how == "pow" else x

    prog = tg.trace(f, 2.0, 3, "pow")
    assert str(prog).splitlines()[1] == "%2 = pow %1 3.0"
    assert prog(1.5, 3, "pow") == 1.5**3
    for wrong in [(1.5, 4, "pow"), (1.5, 3, "id"), ([1.5], 3, "pow"), (1.5, True, "pow")]:
        # another int, another string, another structure, True (== 1, not the int 3)
        with pytest.raises(ValueError, match="do not fit the traced ones"):
            prog(*wrong)


def test_a_different_fixed_leaf_is_named_in_the_error() -> None:
    prog = tg.trace(lambda x, how: x * 2.0 if how == "double" else x, 1.0, "double")
    with pytest.raises(ValueError) as error:
        prog(1.0, "same")
    message = str(error.value)
    assert "fixed" in message and "'same'" in message and "'double'" in message


def test_keyword_and_container_arguments_are_inputs_too() -> None:
    def f(p: dict[str, Any], *, scale: Any) -> Any:
        return {"s": p["a"] * scale, "t": [p["b"], p["a"] + p["b"]]}

    prog = tg.trace(f, {"a": 1.0, "b": 2.0}, scale=3.0)
    assert prog.n_inputs == 3
    args = ({"a": 0.25, "b": -1.0},)
    assert canonical(prog(*args, scale=5.0)) == canonical(f(*args, scale=5.0))


def test_trace_of_a_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="callable"):
        tg.trace(3.0, 1.0)  # type: ignore[arg-type]


# -- safety: no user text in the source ---------------------------------------------------

EVIL_LABEL = '"); import os; os.system("x") #'
EVIL_NAME = 'evil"; import os #\n}\\'


def test_labels_names_aux_and_keys_never_reach_the_source() -> None:
    evil = tg.primitive(lambda x: x * 2.0, lambda x, out: 2.0, name=EVIL_NAME)
    key = "k\"ey'\n"

    def f(x: Any, d: dict[str, Any]) -> Any:
        if isinstance(x, tg.Var):  # traced (eagerly, x is a float)
            x.label = EVIL_LABEL
        y = evil(x) * d[key] + tg.math.sin(x)
        if isinstance(y, tg.Var):
            y.label = "a\nb = 1\nimport os"
        return y, EVIL_LABEL

    prog = tg.trace(f, 2.0, {key: 3.0})
    source = prog.source
    assert_no_user_text(source)  # only the generator's own names, no string literal
    for text in (EVIL_LABEL, "import", "os", "evil", "ey"):
        assert text not in source
    compile(source, "<test>", "exec")
    # It runs, and gives f's results (the aux string comes back as is).
    assert canonical(prog(0.5, {key: 3.0})) == canonical(f(0.5, {key: 3.0}))
    jitted = tg.jit(tg.value_and_grad(f, has_aux=True))
    for x in (2.0, 0.5):  # trace, then replay
        want = tg.value_and_grad(f, has_aux=True)(x, {key: 3.0})
        assert canonical(jitted(x, {key: 3.0})) == canonical(want)
    # The array dialect (vmap's) of the same program: no user text either.
    arrays = pyarrays.array_source(
        prog.n_inputs, prog.steps, prog.guards, prog.outputs, batched={1}
    ).text
    assert_no_user_text(arrays)
    # vmap stacks numbers only (the aux string is refused by name, as jax.vmap does).
    with pytest.raises(TypeError, match="f returns a str"):
        tg.vmap(f, in_axes=(0, None))(np.array([2.0, 0.5]), {key: 3.0})
    batched = tg.vmap(lambda x, d: f(x, d)[0], in_axes=(0, None))(np.array([2.0, 0.5]), {key: 3.0})
    assert np.array_equal(batched, np.array([f(2.0, {key: 3.0})[0], f(0.5, {key: 3.0})[0]]))


def test_dot_escapes_names_with_quotes_backslashes_and_newlines() -> None:
    evil = tg.primitive(lambda x: x + 1.0, lambda x, out: 1.0, name=EVIL_NAME)
    prog = tg.trace(lambda x: evil(x) * 2.0, 1.0)
    dot = prog.to_dot()
    assert_dot_is_valid(dot)  # every line a DOT statement: the name broke out of none
    assert f"%2 {EVIL_NAME}" in dot_labels(dot)  # and it reads back unchanged


# -- size: programs cut into functions ------------------------------------------------------


def chain(x: Any, y: Any, n: int) -> Any:
    """n ops mixing early and late values, so many values cross cuts."""
    keep = [x, y]
    acc = x
    for i in range(n):
        acc = acc * keep[i % len(keep)] if i % 3 == 0 else tg.math.sin(acc) + keep[i // 2]
        keep.append(acc)
    return acc, keep[1], keep[len(keep) // 2]


def chain_sum(x: Any, y: Any, n: int) -> Any:
    a, b, c = chain(x, y, n)
    return a + b * c


def test_default_segment_splits_only_big_programs() -> None:
    small = tg.trace(chain, 0.3, 0.7, 50)
    assert "def part" not in small.source
    assert len(small) <= pysource.SEGMENT


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_small_segments_replay_f_bit_for_bit(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    set_segment(monkeypatch, size)
    prog = tg.trace(tg.value_and_grad(chain_sum, argnums=(0, 1)), 0.3, 0.7, 30)
    parts = prog.source.count("def part")
    assert parts == -(-len(prog) // size)  # ceil: every cut made
    assert_no_user_text(prog.source)
    for point in [(0.3, 0.7), (-1.25, 0.5), (2.0, -0.75)]:
        want = tg.value_and_grad(chain_sum, argnums=(0, 1))(*point, 30)
        assert canonical(prog(*point, 30)) == canonical(want)


def test_cuts_keep_inputs_constants_and_aliases_as_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    set_segment(monkeypatch, 2)

    def f(x: Any, y: Any) -> Any:
        a = x * 1.0  # an alias of the input x, used after several cuts
        b = y * 3.0
        c = b * 1.0  # an alias of a computed value, returned and used later
        d = b / 1.0
        e = (d - 0.0) * 2.0
        s = tg.math.sin(e) + a
        t = s * x + c
        return x, 2.5, math.inf, a, c, t * y, y, -0.0, d

    prog = tg.trace(f, 0.5, 1.5)
    assert "def part" in prog.source
    for point in [(0.5, 1.5), (-2.0, 0.25), (-0.0, 3.0)]:
        assert canonical(prog(*point)) == canonical(f(*point))


def test_guards_in_every_segment_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    set_segment(monkeypatch, 2)

    def f(x: Any) -> Any:
        for _ in range(6):
            x = x * 1.5 - 0.25
            if x > 10.0:  # a guard after every second op: at every cut
                x = x / 7.0
        return x

    prog = tg.trace(f, 1.0)  # x stays below 10: every guard False
    assert prog.source.count("def part") >= 3
    assert prog(1.1) == f(1.1)
    with pytest.raises(tg.GuardError):
        prog(4.0)  # goes above 10 on the way: a guard in a later segment fails


def test_more_inputs_than_a_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    set_segment(monkeypatch, 3)

    def f(xs: list[Any]) -> Any:
        return xs[0] * xs[7], xs[9], xs[3] if xs[3] > 0 else 0.0

    xs = [float(i) - 2.5 for i in range(10)]
    prog = tg.trace(f, xs)
    assert "def part" in prog.source
    assert prog(xs) == f(xs)
    assert tg.trace(lambda xs: xs, xs)(xs[::-1]) == xs[::-1]  # no ops at all


def test_listing_keeps_one_op_per_line_whatever_the_names() -> None:
    evil = tg.primitive(lambda x: x + 1.0, lambda x, out: 1.0, name=EVIL_NAME)
    prog = tg.trace(lambda x: evil(x) * 2.0, 1.0)
    assert len(str(prog).splitlines()) == 4  # input, two ops, return


@pytest.mark.parametrize(
    "f",
    [
        lambda x, y: -x + -y,
        lambda x, y: x * -1.0 + y * -1.0,
        tg.hessian(lambda x, y: (0.0 - x / y) ** 2, argnums=(0, 1)),
    ],
    ids=["neg", "mul", "hessian"],
)
def test_two_folded_negations_added(f: Any) -> None:
    prog = tg.trace(f, 1.0, 2.0)
    for point in [(1.0, 2.0), (-0.5, 3.0)]:
        assert canonical(prog(*point)) == canonical(f(*point))


def test_segment_setting_is_read_when_source_is_generated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pysource, "SEGMENT", 3)
    prog = tg.trace(chain, 0.3, 0.7, 30)
    assert "def part" in prog.source
