"""Tests of tapegrad.pytree: flattening order, rebuilding with the same types, structure checks.

The references are the structures themselves (what goes in must come back, of
the same type, in the documented order) and JAX's documented conventions:
namedtuple fields in order, dict keys sorted, arrays in C order, Jacobians of
array outputs laid out as ``out.shape + in.shape`` per input leaf.
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from typing import Any, NamedTuple

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.pytree import (
    describe,
    flatten,
    map_vars,
    structure_difference,
    tree_map,
    unflatten,
)

Pair = namedtuple("Pair", "a b")


class Typed(NamedTuple):
    w: Any
    b: Any


@dataclasses.dataclass
class Params:
    w: Any
    b: Any


@dataclasses.dataclass(frozen=True)
class Frozen:
    z: Any  # declared first: comes first although it sorts last
    a: Any


@dataclasses.dataclass(frozen=True)
class Child(Frozen):
    extra: Any = 0.0


@dataclasses.dataclass
class Derived:
    a: Any
    total: Any = dataclasses.field(init=False, default=0.0)


def roundtrip(tree: Any) -> Any:
    leaves, treedef = flatten(tree)
    return unflatten(treedef, leaves)


# -- namedtuples and dataclasses keep their type ------------------------------


@pytest.mark.parametrize(
    ("tree", "in_order"),
    [(Pair(b=2.0, a=1.0), [1.0, 2.0]), (Typed(b=3.0, w=[1.0, 2.0]), [1.0, 2.0, 3.0])],
)
def test_namedtuples_keep_their_type_and_field_order(tree: Any, in_order: list[float]) -> None:
    leaves, treedef = flatten(tree)
    assert leaves == in_order
    back = unflatten(treedef, leaves)
    assert type(back) is type(tree) and back == tree


def test_dataclasses_in_declaration_order_frozen_and_inherited() -> None:
    leaves, treedef = flatten(Frozen(z=1.0, a=2.0))
    assert leaves == [1.0, 2.0]  # declaration order, not sorted like dict keys
    back = unflatten(treedef, [10.0, 20.0])
    assert type(back) is Frozen and back == Frozen(z=10.0, a=20.0)
    leaves, treedef = flatten(Child(z=1.0, a=2.0, extra=3.0))
    assert leaves == [1.0, 2.0, 3.0]  # base-class fields first, as dataclasses.fields
    assert unflatten(treedef, [4.0, 5.0, 6.0]) == Child(4.0, 5.0, 6.0)
    nested = {"p": Params(w=[1.0, 2.0], b=Pair(3.0, 4.0))}
    assert roundtrip(nested) == nested
    assert type(roundtrip(nested)["p"].b) is Pair


def test_dataclass_with_init_false_field_is_rejected_by_name() -> None:
    with pytest.raises(TypeError, match=r"grad: argument 0: dataclass Derived has field 'total'"):
        flatten(Derived(1.0), "grad: argument 0")
    with pytest.raises(TypeError, match="init=False"):
        tg.grad(lambda d: d.a)(Derived(1.0))


def test_dataclass_class_object_is_not_a_pytree() -> None:
    with pytest.raises(TypeError, match="not a real number"):
        flatten(Params)


# -- numpy bools ------------------------------------------------------------------


def test_numpy_bools_are_scalars_like_python_bools() -> None:
    leaves, treedef = flatten([np.True_, np.array([True, False])])
    assert [float(x) for x in leaves] == [1.0, 1.0, 0.0]
    assert treedef.children[1].kind == "array" and treedef.children[1].keys == (2,)
    assert tree_map(float, np.array([[True], [False]])).tolist() == [[1.0], [0.0]]


# -- structure checks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "got", "message"),
    [
        ((1.0, 2.0), [1.0, 2.0], "a list of length 2 where a tuple of length 2 is expected"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "a list of length 3 where a list of length 2 is expected"),
        (
            {"a": 1.0, "b": 2.0},
            {"a": 1.0, "c": 2.0},
            "a dict with keys ['a', 'c'] where a dict with keys ['a', 'b'] is expected",
        ),
        (
            np.zeros((2, 3)),
            np.zeros((3, 2)),
            "an array of shape (3, 2) where an array of shape (2, 3) is expected",
        ),
        (Pair(1.0, 2.0), (1.0, 2.0), "a tuple of length 2 where a namedtuple Pair of length"),
        (Params(1.0, 2.0), {"w": 1.0, "b": 2.0}, "where a dataclass Params is expected"),
        (1.0, [1.0], "a list of length 1 where a scalar is expected"),
        ({"w": [1.0, (2.0, 3.0)]}, {"w": [1.0, [2.0, 3.0]]}, "at ['w'][1], a list of length 2"),
        (Params([1.0], 2.0), Params((1.0,), 2.0), "at .w, a tuple of length 1 where a list"),
    ],
)
def test_structure_difference_names_the_first_difference(
    expected: Any, got: Any, message: str
) -> None:
    difference = structure_difference(flatten(expected)[1], flatten(got)[1])
    assert difference is not None and message in difference


def test_same_structure_with_other_scalar_types_agrees() -> None:
    a = flatten({"x": [1.0, np.array([1.0, 2.0])], "p": Pair(1.0, 2.0)})[1]
    b = flatten({"x": [True, np.array([1, 2])], "p": Pair(tg.Var(3.0), np.float32(1.0))})[1]
    assert structure_difference(a, b) is None


def test_describe_uses_the_right_article() -> None:
    assert describe(flatten(np.zeros(3))[1]) == "an array of shape (3,)"
    assert describe(flatten([1.0])[1]) == "a list"
    assert describe(flatten(Pair(1.0, 2.0))[1]) == "a namedtuple Pair"
    assert describe(flatten(Params(1.0, 2.0))[1]) == "a dataclass Params"


# -- arrays of pytrees: the JAX layout of Jacobians -------------------------------


def test_array_of_rows_stacks_each_input_leaf_as_jax_does() -> None:
    # A row per output scalar of a (2,) output, each row (d/dx of shape (3,), d/dy scalar).
    rows = [(np.arange(3.0) + 10 * i, float(i)) for i in range(2)]
    out = unflatten(flatten(np.zeros(2))[1], rows)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_array_equal(out[0], [[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]])
    np.testing.assert_array_equal(out[1], [0.0, 1.0])
    rows_dc = [Params(w=float(i), b=[float(i), 2.0 * i]) for i in range(3)]
    out_dc = unflatten(flatten(np.zeros(3))[1], rows_dc)
    assert type(out_dc) is Params
    np.testing.assert_array_equal(out_dc.w, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(out_dc.b[1], [0.0, 2.0, 4.0])


# -- map_vars (aux values) ---------------------------------------------------------


def test_map_vars_reaches_vars_everywhere_and_keeps_the_rest() -> None:
    v = tg.Var(2.0)
    obj = {
        "list": [v, "text"],
        "pair": Pair(v, None),
        "params": Params(w=v, b=3),
        "array": np.array([v, v], dtype=object),
        "mixed": np.array([v, "q"], dtype=object),
        "derived": Derived(v),  # cannot be rebuilt: kept as it is
    }
    out = map_vars(lambda x: x.data, obj)
    assert out["list"] == [2.0, "text"] and out["pair"] == Pair(2.0, None)
    assert out["params"] == Params(2.0, 3)
    assert out["array"].dtype == np.float64 and out["array"].tolist() == [2.0, 2.0]
    assert out["mixed"].tolist() == [2.0, "q"]
    assert out["derived"] is obj["derived"]
