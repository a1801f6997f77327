"""Saving and resuming training: ``named_parameters``, ``state_dict``, ``load_state_dict``,
the optimisers' state, ``tapegrad.nn.save``/``load``, the pickle check, micrograd's ``nonlin=``.

The resume test is the contract of docs/nn.md: 10 steps, a checkpoint, 10 more
steps in a new Python process give the 20-step result bit for bit.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tapegrad import Var, nn

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# named_parameters and the model's state
# ---------------------------------------------------------------------------


class Shared(nn.Module):
    """A model holding one Linear twice and a bare Var in a tuple."""

    def __init__(self) -> None:
        self.first = nn.Linear(2, 2, rng=random.Random(3))
        self.again = self.first
        self.extra = (Var(0.5), [Var(1.5)])

    def forward(self, x: list[float]) -> Var:
        h = self.first(x)
        return self.again(h)[0] * self.extra[0] + self.extra[1][0]


MODELS = [
    lambda: nn.Neuron(3, rng=random.Random(1)),
    lambda: nn.Layer(3, 4, rng=random.Random(1)),
    lambda: nn.Linear(2, 3, rng=random.Random(1)),
    lambda: nn.MLP(3, [4, 4, 1], rng=random.Random(1)),
    Shared,
]


@pytest.mark.parametrize("make", MODELS)
def test_named_parameters_follow_parameters(make: Any) -> None:
    model = make()
    named = list(model.named_parameters())
    assert [p for _, p in named] == model.parameters()
    assert all(a is b for (_, a), b in zip(named, model.parameters()))
    assert len({name for name, _ in named}) == len(named)


def test_names_are_attribute_paths() -> None:
    model = nn.MLP(2, [4, 1], rng=random.Random(0))
    named = dict(model.named_parameters())
    assert named["layers.0.neurons.3.w.1"] is model.layers[0].neurons[3].w[1]
    assert named["layers.1.neurons.0.b"] is model.layers[1].neurons[0].b
    shared = dict(Shared().named_parameters())
    assert list(shared)[-2:] == ["extra.0", "extra.1.0"]
    assert not any(name.startswith("again") for name in shared)  # held twice: first name
    assert [name for name, _ in nn.Neuron(2).named_parameters(prefix="n.")] == [
        "n.w.0",
        "n.w.1",
        "n.b",
    ]


def test_state_dict_is_a_copy_of_the_values() -> None:
    model = nn.MLP(2, [3, 1], rng=random.Random(0))
    state = model.state_dict()
    assert list(state) == [name for name, _ in model.named_parameters()]
    assert list(state.values()) == [p.data for p in model.parameters()]
    assert all(type(v) is float for v in state.values())
    state["layers.0.neurons.0.b"] = 7.0  # the dict is the caller's
    assert model.layers[0].neurons[0].b.data == 0.0


def test_load_state_dict_sets_data_in_place() -> None:
    source = nn.MLP(2, [3, 1], rng=random.Random(0))
    target = nn.MLP(2, [3, 1], rng=random.Random(1))
    params = target.parameters()
    before = [p.data for p in params]
    target.load_state_dict(source.state_dict())
    assert target.parameters() == params and all(
        a is b for a, b in zip(target.parameters(), params)
    )
    assert [p.data for p in params] == [p.data for p in source.parameters()] != before
    x = [0.3, -1.2]
    assert target(x).data == source(x).data


def test_load_state_dict_takes_ints_and_non_finite_floats() -> None:
    neuron = nn.Neuron(2, rng=random.Random(0))
    neuron.load_state_dict({"w.0": 2, "w.1": math.inf, "b": math.nan})
    assert type(neuron.w[0].data) is float and neuron.w[0].data == 2.0
    assert neuron.w[1].data == math.inf and math.isnan(neuron.b.data)


def test_load_state_dict_names_missing_and_unexpected_keys() -> None:
    neuron = nn.Neuron(2, rng=random.Random(0))
    before = neuron.state_dict()
    with pytest.raises(KeyError, match=r"missing 'w\.1', 'b'"):
        neuron.load_state_dict({"w.0": 1.0})
    with pytest.raises(KeyError, match=r"has no 'bias'"):
        neuron.load_state_dict({"w.0": 1.0, "w.1": 1.0, "b": 0.0, "bias": 0.0})
    assert neuron.state_dict() == before  # nothing was set


@pytest.mark.parametrize("bad", ["1.0", None, True, Var(1.0), [1.0], 1j])
def test_load_state_dict_rejects_non_numbers(bad: object) -> None:
    neuron = nn.Neuron(1, rng=random.Random(0))
    before = neuron.state_dict()
    with pytest.raises(TypeError, match=r"'b': a value must be a real number"):
        neuron.load_state_dict({"w.0": 3.0, "b": bad})  # type: ignore[dict-item]
    assert neuron.state_dict() == before


def test_load_state_dict_wants_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        nn.Neuron(1).load_state_dict([("w.0", 1.0), ("b", 0.0)])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The optimisers' state
# ---------------------------------------------------------------------------


def _quadratic_steps(opt: nn.Optimizer, params: list[Var], steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(((p - 0.5 * i) * (p - 0.5 * i) for i, p in enumerate(params)), Var(0.0))
        loss.backward()
        opt.step()


def test_sgd_state_holds_momentum_by_position() -> None:
    params = [Var(1.0), Var(-2.0)]
    opt = nn.SGD(params, lr=0.1, momentum=0.9)
    _quadratic_steps(opt, params, 3)
    state = opt.state_dict()
    assert state["optimizer"] == "SGD" and state["steps"] == 3
    assert state["params"] == {
        "0": {"velocity": opt.velocity[0]},
        "1": {"velocity": opt.velocity[1]},
    }
    assert opt.velocity[0] != 0.0


def test_adam_state_holds_moments_by_name() -> None:
    model = nn.MLP(2, [2, 1], rng=random.Random(0))
    opt = nn.Adam(model.named_parameters(), lr=0.01)
    assert opt.params == model.parameters()
    model([1.0, 2.0]).backward()
    opt.step()
    state = opt.state_dict()
    assert list(state["params"]) == [name for name, _ in model.named_parameters()]
    first = state["params"]["layers.0.neurons.0.w.0"]
    assert first == {"m": opt.m[0], "v": opt.v[0]} and first["v"] > 0.0


def test_optimizer_state_loads_into_a_fresh_optimizer() -> None:
    params = [Var(1.0), Var(-2.0)]
    opt = nn.Adam(params, lr=0.1)
    _quadratic_steps(opt, params, 4)
    fresh = nn.Adam([Var(p.data) for p in params], lr=0.1)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.steps == 4 and fresh.m == opt.m and fresh.v == opt.v
    assert fresh.state_dict() == opt.state_dict()


def test_optimizer_load_state_dict_checks_everything_first() -> None:
    params = [Var(1.0), Var(2.0)]
    opt = nn.SGD(params, lr=0.1, momentum=0.5)
    good: dict[str, Any] = {
        "optimizer": "SGD",
        "steps": 2,
        "params": {"0": {"velocity": 1.0}, "1": {"velocity": 2.0}},
    }

    def broken(**changes: Any) -> dict[str, Any]:
        state = copy.deepcopy(good)
        state.update(changes)
        return state

    cases: list[tuple[Any, type[Exception], str]] = [
        ({**good, "optimizer": "Adam"}, ValueError, "of a 'Adam' optimizer"),
        ({k: v for k, v in good.items() if k != "steps"}, KeyError, "missing 'steps'"),
        (broken(lr=0.1), KeyError, "has no 'lr'"),
        (broken(steps=2.0), TypeError, "steps must be an int"),
        (broken(steps=True), TypeError, "steps must be an int"),
        (broken(steps=-1), ValueError, "steps must be >= 0"),
        (broken(params=[1.0, 2.0]), TypeError, "params must be a mapping"),
        (broken(params={"0": {"velocity": 1.0}}), KeyError, "missing '1'"),
        (broken(params={**good["params"], "2": {"velocity": 0.0}}), KeyError, "has no '2'"),
        (broken(params={"0": {"velocity": 1.0}, "1": {"m": 0.0}}), KeyError, "missing 'velocity'"),
        (broken(params={"0": {"velocity": 1.0}, "1": 2.0}), TypeError, r"params\['1'\] must be"),
        (broken(params={"0": {"velocity": 1.0}, "1": {"velocity": "2"}}), TypeError, "real number"),
        ("state", TypeError, "takes a mapping"),
    ]
    for state, error, message in cases:
        with pytest.raises(error, match=message):
            opt.load_state_dict(state)
        assert opt.steps == 0 and opt.velocity == [0.0, 0.0]  # untouched
    opt.load_state_dict(good)
    assert opt.steps == 2 and opt.velocity == [1.0, 2.0]


def test_optimizer_named_params_are_checked() -> None:
    with pytest.raises(TypeError, match="not a mix"):
        nn.SGD([("a", Var(1.0)), Var(2.0)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\(str, Var\) pair"):
        nn.SGD([(1, Var(1.0))])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distinct"):
        nn.SGD([("a", Var(1.0)), ("a", Var(2.0))])
    with pytest.raises(TypeError, match="must be Vars"):
        nn.SGD([("a", 1.0)])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# save and load
# ---------------------------------------------------------------------------


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_save_load_round_trips_every_float_bit_for_bit(tmp_path: Path) -> None:
    rng = random.Random(7)
    # random bit patterns: subnormals, huge and tiny exponents, -0.0, both signs
    floats = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(2000)
    ]
    floats = [x for x in floats if math.isfinite(x)]
    floats += [0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, 0.1, 1 / 3, math.inf, -math.inf]
    path = tmp_path / "floats.json"
    nn.save({"xs": floats, "nested": {"nan": math.nan, "n": 3, "ok": True, "none": None}}, path)
    back = nn.load(path)
    assert [_bits(x) for x in back["xs"]] == [_bits(x) for x in floats]
    assert math.isnan(back["nested"]["nan"])
    assert back["nested"]["n"] == 3 and type(back["nested"]["n"]) is int
    assert back["nested"]["ok"] is True and back["nested"]["none"] is None


def test_saved_file_is_standard_json(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.json"
    nn.save({"a": [math.inf, -math.inf, math.nan]}, str(path))

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    raw = json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)
    assert raw == {"a": [{"$float": "inf"}, {"$float": "-inf"}, {"$float": "nan"}]}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.json"]  # no temporary left behind


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [
        ({1: 2.0}, TypeError, "keys must be str"),
        ({"a": (1.0, 2.0)}, TypeError, r"state\['a'\] is a tuple \(use a list"),
        ({"a": Var(1.0)}, TypeError, "is a Var"),
        ({"a": {"$float": "inf"}}, ValueError, "reserved key"),
        ([1.0], TypeError, "must be a dict"),
    ],
)
def test_save_refuses_what_json_would_change(
    tmp_path: Path, state: Any, error: type[Exception], message: str
) -> None:
    path = tmp_path / "bad.json"
    with pytest.raises(error, match=message):
        nn.save(state, path)
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_an_unknown_float_tag(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text('{"x": {"$float": "Inf"}}', encoding="utf-8")
    with pytest.raises(ValueError, match="not 'inf', '-inf' or 'nan'"):
        nn.load(path)


# ---------------------------------------------------------------------------
# Resuming in a new process: 10 + 10 steps == 20 steps, bit for bit
# ---------------------------------------------------------------------------

# Run by this test and by the child process: the same data, model and loop.
SETUP = """
import random
from tapegrad import nn
from tapegrad.datasets import make_moons

X, Y = make_moons(24, noise=0.1, rng=5, signed=True)

def make(kind, seed):
    model = nn.MLP(2, [6, 6, 1], activation="relu", rng=random.Random(seed))
    if kind == "sgd":
        opt = nn.SGD(model.parameters(), lr=nn.linear_decay(0.3, 0.03, 20), momentum=0.9,
                     weight_decay=1e-3)
    elif kind == "adam":
        opt = nn.Adam(model.parameters(), lr=0.02, weight_decay=1e-3)
    else:
        opt = nn.Adam(model.named_parameters(), lr=0.02, betas=(0.8, 0.99))
    return model, opt

def train(model, opt, steps):
    for _ in range(steps):
        scores = [model(x) for x in X]
        loss = nn.hinge_loss(scores, Y) + nn.l2_penalty(model.parameters(), 1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
"""

CHILD = """
import sys
from tapegrad import nn
kind, path, out = sys.argv[1:4]
checkpoint = nn.load(path)
model, opt = make(kind, seed=99)  # other weights: only the checkpoint can make it match
model.load_state_dict(checkpoint["model"])
opt.load_state_dict(checkpoint["optimizer"])
train(model, opt, 10)
nn.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, out)
"""


@pytest.mark.parametrize("kind", ["sgd", "adam", "adam-named"])
def test_resume_in_a_new_process_equals_training_straight_through(
    tmp_path: Path, kind: str
) -> None:
    env: dict[str, Any] = {}
    exec(SETUP, env)  # the test's own code: run here and in the child
    straight, straight_opt = env["make"](kind, seed=1)
    env["train"](straight, straight_opt, 20)

    model, opt = env["make"](kind, seed=1)
    env["train"](model, opt, 10)
    ten_steps = model.state_dict()
    checkpoint = tmp_path / "ckpt.json"
    nn.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, checkpoint)

    resumed = tmp_path / "resumed.json"
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", SETUP + CHILD, kind, str(checkpoint), str(resumed)],
        check=True,
        env=environ,
        timeout=120,
    )
    result = nn.load(resumed)
    expected = straight.state_dict()
    assert list(result["model"]) == list(expected)
    assert [_bits(x) for x in result["model"].values()] == [_bits(x) for x in expected.values()]
    assert result["optimizer"] == straight_opt.state_dict()  # steps and every buffer
    assert result["optimizer"]["steps"] == 20
    assert expected != ten_steps  # the last 10 steps did move the weights


# ---------------------------------------------------------------------------
# Pickles: an optimizer restored apart from its model must not step silently
# ---------------------------------------------------------------------------


def _trained_pair() -> tuple[nn.MLP[Var], nn.SGD]:
    model = nn.MLP(2, (3, 1), rng=random.Random(0))
    opt = nn.SGD(model.parameters(), lr=0.1, momentum=0.5)
    return model, opt


def _one_step(model: nn.MLP[Var], opt: nn.Optimizer) -> None:
    opt.zero_grad()
    model([1.0, -1.0]).backward()
    opt.step()


SEPARATELY = [
    lambda model, opt: (pickle.loads(pickle.dumps(model)), pickle.loads(pickle.dumps(opt))),
    lambda model, opt: (copy.deepcopy(model), copy.deepcopy(opt)),
]


@pytest.mark.parametrize("restore", SEPARATELY, ids=["pickle", "deepcopy"])
def test_an_optimizer_restored_apart_from_its_model_raises_on_step(restore: Any) -> None:
    model2, opt2 = restore(*_trained_pair())
    before = model2.state_dict()
    for _ in range(2):  # and again: the check is not spent by failing
        with pytest.raises(RuntimeError, match=r"13 of its 13 parameters are held by nothing but"):
            _one_step(model2, opt2)
    assert model2.state_dict() == before


TOGETHER = [
    lambda model, opt: pickle.loads(pickle.dumps((model, opt))),
    lambda model, opt: copy.deepcopy((model, opt)),
]


@pytest.mark.parametrize("restore", TOGETHER, ids=["pickle", "deepcopy"])
def test_a_model_and_optimizer_restored_together_train(restore: Any) -> None:
    model, opt = _trained_pair()
    _one_step(model, opt)
    model2, opt2 = restore(model, opt)
    assert opt2.params == model2.parameters()
    _one_step(model, opt)
    _one_step(model2, opt2)
    assert model2.state_dict() == model.state_dict()  # the restored one moved just the same


@pytest.fixture(params=["refcounts", "gc walk"])
def holder_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of telling who holds a parameter: the reference-count pass and the gc walk."""
    if request.param == "gc walk":
        monkeypatch.setattr(nn, "_all_referenced_elsewhere", lambda params: False)
    return str(request.param)


def test_both_checks_accept_parameters_a_model_holds(holder_check: str) -> None:
    model, opt = _trained_pair()
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    _one_step(model2, opt2)
    assert not opt2._restored  # checked, and passed
    assert model2.state_dict() != model.state_dict()


def test_both_checks_count_a_local_variable_as_a_holder(holder_check: str) -> None:
    p = Var(2.0)
    opt = nn.SGD([p], lr=0.5)
    p2, opt2 = pickle.loads(pickle.dumps((p, opt)))
    p2.grad = 1.0
    opt2.step()  # p2 lives only in this frame's locals (and opt2.params)
    assert p2.data == 1.5


def test_the_refcount_pass_leaves_orphans_to_the_gc_walk() -> None:
    model, opt = _trained_pair()
    model2, together = pickle.loads(pickle.dumps((model, opt)))
    apart = pickle.loads(pickle.dumps(opt))
    assert nn._all_referenced_elsewhere(tuple(together.params))
    del model2  # now nothing but the optimizer holds them
    assert not nn._all_referenced_elsewhere(tuple(together.params))
    assert not nn._all_referenced_elsewhere(tuple(apart.params))


def test_parameters_held_only_by_a_local_variable_count_as_held() -> None:
    p = Var(2.0)
    opt = nn.SGD([p], lr=0.5)
    p2, opt2 = pickle.loads(pickle.dumps((p, opt)))
    p2.grad = 1.0
    opt2.step()  # p2 lives only in this frame's locals (and opt2.params)
    assert p2.data == 1.5


# ---------------------------------------------------------------------------
# micrograd's nonlin=
# ---------------------------------------------------------------------------


def test_nonlin_true_is_relu_and_false_is_linear() -> None:
    relu = nn.Neuron(1, nonlin=True, rng=random.Random(0))
    linear = nn.Neuron(1, nonlin=False, rng=random.Random(0))
    relu.w[0].data = linear.w[0].data = -2.0
    assert relu([1.0]).data == 0.0 and linear([1.0]).data == -2.0
    assert relu([-1.0]).data == 2.0
    layer = nn.Layer(2, 3, nonlin=True)
    assert layer.activation == "relu" and all(n.activation == "relu" for n in layer.neurons)
    assert nn.Layer(2, 3, nonlin=False).activation == "linear"
    assert nn.Layer(2, 3).activation == nn.Neuron(2).activation == "tanh"


def test_nonlin_draws_the_weights_micrograd_draws() -> None:
    random.seed(11)
    ours = nn.Layer(3, 2, nonlin=False)
    random.seed(11)
    expected = [random.uniform(-1, 1) for _ in range(6)]
    assert [w.data for n in ours.neurons for w in n.w] == expected


@pytest.mark.parametrize("cls", [nn.Neuron, lambda nin, **kw: nn.Layer(nin, 2, **kw)])
def test_nonlin_and_activation_together_or_not_a_bool_raise(cls: Any) -> None:
    with pytest.raises(TypeError, match="activation= or micrograd's nonlin=, not both"):
        cls(2, activation="relu", nonlin=True)
    with pytest.raises(TypeError, match=r"nonlin must be True \(ReLU\) or False \(linear\)"):
        cls(2, nonlin="relu")
    with pytest.raises(TypeError, match="nonlin must be"):
        cls(2, nonlin=1)


def test_an_optimizer_pickled_before_it_had_names_still_loads() -> None:
    _model, opt = _trained_pair()
    state = dict(vars(opt))
    del state["param_names"], state["_restored"]  # what an older tapegrad pickled
    old = nn.SGD.__new__(nn.SGD)
    old.__setstate__(state)
    assert old.param_names is None and old._restored
    assert old.state_dict() == opt.state_dict()
