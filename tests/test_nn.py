"""Tests of tapegrad.nn and tapegrad.datasets against independent references.

References: hand-derived values and derivatives, micrograd itself (for the
initialisation and the parameter count), a numpy network with hand-written
backpropagation (tests/nn_reference.py), the closed-form circles of the two
moons, and the textbook update formulas of SGD and Adam.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import micrograd.nn as mg_nn
import numpy as np
import pytest
from nn_reference import forward as np_forward
from nn_reference import weights_of

import tapegrad
import tapegrad.nn as nn
from tapegrad import Var
from tapegrad.datasets import make_moons


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def test_mlp_3_4_4_1_has_41_parameters() -> None:
    # micrograd's lecture: len(m.parameters()) == 41 = (3+1)*4 + (4+1)*4 + (4+1)*1
    assert len(nn.MLP(3, [4, 4, 1]).parameters()) == 41
    assert len(mg_nn.MLP(3, [4, 4, 1]).parameters()) == 41  # the reference agrees


@pytest.mark.parametrize(
    ("make", "count"),
    [
        (lambda: nn.Neuron(3), 4),
        (lambda: nn.Layer(3, 4), 16),
        (lambda: nn.Linear(8, 4), 36),
        (lambda: nn.MLP(2, [16, 16, 1]), 337),  # micrograd's demo model
    ],
)
def test_parameter_counts(make: Any, count: int) -> None:
    params = make().parameters()
    assert len(params) == count
    assert len({id(p) for p in params}) == count
    assert all(isinstance(p, Var) and p.is_leaf for p in params)


def test_initialisation_matches_micrograd() -> None:
    # Same global seed, same draws: the weights micrograd gets, biases 0.
    random.seed(1234)
    ours = nn.MLP(2, [16, 16, 1], activation="relu")
    random.seed(1234)
    theirs = mg_nn.MLP(2, [16, 16, 1])
    assert [p.data for p in ours.parameters()] == [float(p.data) for p in theirs.parameters()]


def test_initialisation_ranges_and_rng_determinism() -> None:
    a = nn.MLP(3, [4, 4, 1], rng=random.Random(7))
    b = nn.MLP(3, [4, 4, 1], rng=random.Random(7))
    c = nn.MLP(3, [4, 4, 1], rng=random.Random(8))
    assert [p.data for p in a.parameters()] == [p.data for p in b.parameters()]
    assert [p.data for p in a.parameters()] != [p.data for p in c.parameters()]
    for layer in a.layers:
        for n in layer.neurons:
            assert all(-1.0 <= w.data <= 1.0 for w in n.w)
            assert n.b.data == 0.0


def _neuron(activation: Any) -> nn.Neuron:
    n = nn.Neuron(2, activation=activation)
    n.w[0].data, n.w[1].data, n.b.data = 2.0, -1.0, 0.5
    return n


@pytest.mark.parametrize(
    ("activation", "value", "slope"),
    [
        # act = 2*3 - 1*4 + 0.5 = 2.5; slope = d out / d act
        ("linear", 2.5, 1.0),
        ("tanh", math.tanh(2.5), 1.0 - math.tanh(2.5) ** 2),
        ("relu", 2.5, 1.0),
        ("sigmoid", sigmoid(2.5), sigmoid(2.5) * (1.0 - sigmoid(2.5))),
        (lambda v: v * v, 6.25, 5.0),
    ],
)
def test_neuron_value_and_gradients_by_hand(activation: Any, value: float, slope: float) -> None:
    n = _neuron(activation)
    x = [Var(3.0), Var(4.0)]
    out = n(x)
    assert out.data == pytest.approx(value, rel=1e-15)
    out.backward()
    # d out/d w_i = slope * x_i, d out/d b = slope, d out/d x_i = slope * w_i
    assert n.w[0].grad == pytest.approx(slope * 3.0, rel=1e-14)
    assert n.w[1].grad == pytest.approx(slope * 4.0, rel=1e-14)
    assert n.b.grad == pytest.approx(slope, rel=1e-14)
    assert x[0].grad == pytest.approx(slope * 2.0, rel=1e-14)
    assert x[1].grad == pytest.approx(slope * -1.0, rel=1e-14)


def test_relu_neuron_at_the_kink_has_zero_gradient() -> None:
    n = _neuron("relu")
    n.b.data = -2.0  # act = 6 - 4 - 2 = 0
    out = n([3.0, 4.0])
    out.backward()
    assert out.data == 0.0
    assert n.b.grad == 0.0  # relu'(0) = 0, as PyTorch and micrograd


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_mlp_forward_and_gradients_match_numpy_backprop(activation: str) -> None:
    from nn_reference import backward as np_backward

    model = nn.MLP(3, [5, 4, 2], activation=activation, rng=random.Random(3))
    net = weights_of(model)
    x = [0.3, -1.2, 0.8]
    out = model(x)
    assert isinstance(out, list) and len(out) == 2
    ref, cache = np_forward(net, np.array([x]))
    assert [o.data for o in out] == pytest.approx(list(ref[0]), rel=1e-13, abs=1e-15)
    # d (o0 + 3 o1) / d params, against backprop by hand
    (out[0] + 3.0 * out[1]).backward()
    grads = np_backward(net, cache, np.array([[1.0, 3.0]]))
    for layer, (dW, db) in zip(model.layers, grads):
        for i, n in enumerate(layer.neurons):
            assert [w.grad for w in n.w] == pytest.approx(list(dW[i]), rel=1e-12, abs=1e-14)
            assert n.b.grad == pytest.approx(db[i], rel=1e-12, abs=1e-14)


def test_mlp_last_layer_is_linear_unless_asked() -> None:
    m = nn.MLP(2, [3, 1], activation="relu", rng=random.Random(0))
    assert [layer.activation for layer in m.layers] == ["relu", "linear"]
    m = nn.MLP(2, [3, 1], out_activation="tanh", rng=random.Random(0))
    assert [layer.activation for layer in m.layers] == ["tanh", "tanh"]
    assert isinstance(m([1.0, 2.0]), Var)  # one output neuron: a Var, as micrograd
    assert "out_activation='tanh'" in repr(m)


def test_layer_returns_var_for_one_neuron_and_linear_always_a_list() -> None:
    assert isinstance(nn.Layer(2, 1)([1.0, 2.0]), Var)
    assert isinstance(nn.Layer(2, 3)([1.0, 2.0]), list)
    out = nn.Linear(2, 1)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 1


def test_inputs_may_be_tuples_floats_ints_or_vars() -> None:
    m = nn.MLP(2, [2, 1], rng=random.Random(0))
    a = m([1, 2])
    b = m((1.0, Var(2.0)))
    assert a.data == b.data


# ---------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------


class Model(nn.Module):
    """toygrad's model: Linear(in, 8) -> relu -> Linear(8, 4) -> relu -> Linear(4, out)."""

    def __init__(self, nin: int, nout: int) -> None:
        self.layer1 = nn.Linear(nin, 8)
        self.layer2 = nn.Linear(8, 4)
        self.output = nn.Linear(4, nout)

    def forward(self, x: list[float]) -> list[Var]:
        h = [v.relu() for v in self.layer1(x)]
        h = [v.relu() for v in self.layer2(h)]
        return self.output(h)


def test_module_finds_parameters_in_attributes() -> None:
    m = Model(3, 2)
    params = m.parameters()
    assert len(params) == (3 + 1) * 8 + (8 + 1) * 4 + (4 + 1) * 2
    expected = m.layer1.parameters() + m.layer2.parameters() + m.output.parameters()
    assert [id(p) for p in params] == [id(p) for p in expected]


def test_module_parameters_in_lists_once_each_and_leaves_only() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            self.scale = Var(2.0)
            self.blocks = [nn.Neuron(1), nn.Neuron(1)]
            self.again = self.blocks[0]  # shared: counted once
            self.derived = self.scale * 3.0  # not a leaf: not a parameter
            self.name = "not a parameter"

    params = Shared().parameters()
    assert len(params) == 1 + 2 + 2


def test_zero_grad_and_forward_requirement() -> None:
    m = Model(2, 1)
    m([1.0, 2.0])[0].backward()
    assert any(p.grad != 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1.0)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "x", "expected", "actual"),
    [
        (nn.Neuron(3), [1.0, 2.0], 3, 2),
        (nn.Layer(3, 4), [1.0, 2.0], 3, 2),
        (nn.Linear(2, 2), [1.0, 2.0, 3.0], 2, 3),
        (nn.MLP(3, [4, 4, 1]), [1.0] * 4, 3, 4),
        (nn.MLP(3, [4, 4, 1]), [], 3, 0),
    ],
)
def test_wrong_input_size_names_expected_and_actual(
    model: Any, x: list[float], expected: int, actual: int
) -> None:
    with pytest.raises(ValueError, match=rf"expects {expected} inputs, got {actual}\b"):
        model(x)


def test_non_sequence_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="sequence of 1 inputs"):
        nn.Neuron(1)(1.0)  # type: ignore[arg-type]


def test_unknown_activation_lists_valid_names() -> None:
    for make in (
        lambda: nn.Neuron(2, activation="tanhh"),
        lambda: nn.Layer(2, 2, activation="tanhh"),
        lambda: nn.MLP(2, [2, 1], activation="tanhh"),
        lambda: nn.MLP(2, [2, 1], out_activation="tanhh"),
    ):
        with pytest.raises(ValueError) as info:
            make()
        message = str(info.value)
        assert "'tanhh'" in message
        for name in ("tanh", "relu", "sigmoid", "linear"):
            assert f"'{name}'" in message
    with pytest.raises(TypeError, match="activation"):
        nn.Neuron(2, activation=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Neuron(0),
        lambda: nn.Layer(2, 0),
        lambda: nn.MLP(2, []),
        lambda: nn.MLP(2, 3),
        lambda: nn.MLP(2, [4, -1]),
        lambda: nn.MLP(2.5, [1]),
    ],
)
def test_bad_sizes(make: Any) -> None:
    with pytest.raises(ValueError):
        make()


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def test_mse_value_and_gradient_by_hand() -> None:
    p = [Var(1.0), Var(3.0), Var(-2.0)]
    t = [0.0, 1.0, -2.5]
    loss = nn.mse_loss(p, t)
    assert loss.data == pytest.approx((1.0 + 4.0 + 0.25) / 3, rel=1e-15)
    loss.backward()
    # d/dp_i = 2 (p_i - t_i) / n
    assert [v.grad for v in p] == pytest.approx([2 / 3, 4 / 3, 1 / 3], rel=1e-15)
    total = nn.mse_loss([Var(1.0), Var(3.0)], [0.0, 1.0], reduction="sum")
    assert total.data == 5.0


def test_hinge_value_and_gradient_by_hand() -> None:
    s = [Var(0.5), Var(-2.0), Var(2.0), Var(0.0)]
    y = [1, -1, -1, 1]
    loss = nn.hinge_loss(s, y)
    # margins 1 - y s: 0.5, -1 (inactive), 3, 1  -> mean (0.5 + 0 + 3 + 1) / 4
    assert loss.data == pytest.approx(4.5 / 4, rel=1e-15)
    loss.backward()
    assert [v.grad for v in s] == [-0.25, 0.0, 0.25, -0.25]
    # exactly on the margin: relu'(0) = 0
    on_margin = Var(1.0)
    nn.hinge_loss([on_margin], [1]).backward()
    assert on_margin.grad == 0.0


@pytest.mark.parametrize("z", [-3.0, -0.5, 0.0, 0.7, 4.0])
@pytest.mark.parametrize("t", [0.0, 0.25, 1.0])
def test_bce_with_logits_matches_the_definition(z: float, t: float) -> None:
    logit = Var(z)
    loss = nn.bce_with_logits([logit], [t])
    p = sigmoid(z)
    assert loss.data == pytest.approx(-(t * math.log(p) + (1 - t) * math.log(1 - p)), rel=1e-12)
    loss.backward()
    assert logit.grad == pytest.approx(p - t, rel=1e-12, abs=1e-15)  # d/dz = sigmoid(z) - t


def test_bce_with_logits_does_not_overflow() -> None:
    big = Var(1000.0)
    loss = nn.bce_with_logits([big, Var(-1000.0)], [0.0, 1.0], reduction="sum")
    assert loss.data == pytest.approx(2000.0)
    loss.backward()
    assert big.grad == pytest.approx(1.0)


def test_l2_penalty_and_accuracy() -> None:
    ps = [Var(1.0), Var(-2.0)]
    pen = nn.l2_penalty(ps, 1e-4)
    assert pen.data == pytest.approx(5e-4, rel=1e-15)
    pen.backward()
    assert [p.grad for p in ps] == pytest.approx([2e-4, -4e-4], rel=1e-15)
    assert nn.accuracy([Var(0.3), -0.1, Var(0.0), 2.0], [1, -1, 1, -1]) == 0.5


def test_loss_errors() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        nn.mse_loss([Var(1.0), Var(2.0)], [1.0])
    with pytest.raises(ValueError, match="no predictions"):
        nn.hinge_loss([], [])
    with pytest.raises(ValueError, match="reduction"):
        nn.mse_loss([Var(1.0)], [1.0], reduction="max")
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        nn.bce_with_logits([Var(1.0)], [-1.0])
    with pytest.raises(ValueError, match="no parameters"):
        nn.l2_penalty([], 1.0)


# ---------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------


def _with_grads(values: list[float], grads: list[float]) -> list[Var]:
    ps = [Var(v) for v in values]
    for p, g in zip(ps, grads):
        p.grad = g
    return ps


def test_sgd_plain_and_schedule() -> None:
    p = _with_grads([1.0, -2.0], [0.5, -4.0])
    opt = nn.SGD(p, lr=nn.linear_decay(1.0, 0.1, 100))  # micrograd: 1.0 - 0.9 k / 100
    assert opt.current_lr() == 1.0
    opt.step()
    assert [v.data for v in p] == [0.5, 2.0]
    assert opt.current_lr() == pytest.approx(1.0 - 0.9 * 1 / 100, rel=1e-15)
    opt.step()
    assert p[0].data == pytest.approx(0.5 - 0.991 * 0.5, rel=1e-15)


def test_sgd_momentum_and_weight_decay_by_hand() -> None:
    (p,) = _with_grads([1.0], [2.0])
    opt = nn.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    x, v = 1.0, 0.0
    for _ in range(4):
        g = 2.0 + 0.01 * x  # the gradient stays 2.0; weight decay adds 0.01 x
        v = 0.9 * v + g
        x = x - 0.1 * v
        opt.step()
        assert p.data == pytest.approx(x, rel=1e-15)


def test_adam_by_hand_and_first_step_is_lr_times_sign() -> None:
    (p,) = _with_grads([1.0], [4.0])
    nn.Adam([p], lr=0.1).step()
    assert p.data == pytest.approx(0.9, abs=1e-8)  # m_hat / sqrt(v_hat) = sign(g)

    grads = [3.0, -1.0, 0.5]
    (q,) = _with_grads([0.2], [grads[0]])
    opt = nn.Adam([q], lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    x, m, s = 0.2, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        q.grad = g
        opt.step()
        m = 0.8 * m + 0.2 * g
        s = 0.99 * s + 0.01 * g * g
        x -= 0.01 * (m / (1 - 0.8**t)) / (math.sqrt(s / (1 - 0.99**t)) + 1e-6)
        assert q.data == pytest.approx(x, rel=1e-14)


@pytest.mark.parametrize("opt_cls", [nn.SGD, nn.Adam])
def test_optimisers_minimise_a_quadratic(opt_cls: Any) -> None:
    p = Var(3.0)
    opt = opt_cls([p], lr=0.1)
    for _ in range(300):
        loss = (p - 1.5) * (p - 1.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert p.data == pytest.approx(1.5, abs=1e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.SGD([], lr=0.1),
        lambda: nn.SGD([Var(1.0)], lr=-0.1),
        lambda: nn.SGD([Var(1.0)], lr=math.nan),
        lambda: nn.SGD([Var(1.0)], momentum=1.0),
        lambda: nn.SGD([Var(1.0) * 2.0]),  # not a leaf
        lambda: nn.Adam([Var(1.0)], betas=(0.9, 1.0)),
        lambda: nn.Adam([Var(1.0)], eps=-1.0),
        lambda: nn.linear_decay(1.0, 0.1, 0),
    ],
)
def test_optimiser_bad_arguments(make: Any) -> None:
    with pytest.raises(ValueError):
        make()
    with pytest.raises(TypeError, match="must be Vars"):
        nn.SGD([1.0])  # type: ignore[list-item]


# ---------------------------------------------------------------------------
# Copies and pickles of models: whole, with fresh parameters
# ---------------------------------------------------------------------------

X_COPY = [0.3, -1.2, 0.8]


def _trained_a_bit() -> nn.MLP:
    """A model after a backward pass (its parameters have grads) and a forward pass.

    The forward pass leaves the parameters used on the open tape: the case
    reported, where a copy that kept their place on the tape sent its gradients
    to the original.
    """
    model = nn.MLP(3, [4, 4, 1], rng=random.Random(7))
    out = model(X_COPY)
    assert isinstance(out, Var)
    out.backward()
    model(X_COPY)
    return model


def _grads(model: nn.Module) -> list[float]:
    return [p.grad for p in model.parameters()]


def _assert_fresh_parameters(original: nn.Module, clone: nn.Module) -> None:
    ps, qs = original.parameters(), clone.parameters()
    assert len(ps) == len(qs) == 41
    assert not {id(p) for p in ps} & {id(q) for q in qs}
    assert all(q.is_leaf for q in qs)
    assert [q.data for q in qs] == [p.data for p in ps]
    assert [q.grad for q in qs] == [p.grad for p in ps]
    assert [q.label for q in qs] == [p.label for p in ps]


def _backprop_reference(model: nn.Module) -> list[float]:
    """d output / d parameters by numpy backprop (tests/nn_reference.py), in parameter order."""
    from nn_reference import backward as np_backward

    net = weights_of(model)
    _, cache = np_forward(net, np.array([X_COPY]))
    grads = []
    for dW, db in np_backward(net, cache, np.array([[1.0]])):
        for i in range(len(db)):
            grads += [*dW[i], db[i]]
    return grads


CLONES = [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))]


@pytest.mark.parametrize("clone", CLONES, ids=["deepcopy", "pickle"])
def test_a_cloned_model_trains_apart_from_its_original(clone: Any) -> None:
    model = _trained_a_bit()
    before = _grads(model)
    reference = _backprop_reference(model)  # d out / d params, by numpy backprop
    twin = clone(model)
    _assert_fresh_parameters(model, twin)
    # The reported repro: training the copy filled the original's gradients.
    out = twin(X_COPY)
    out.backward()
    assert _grads(model) == before
    assert _grads(twin) == pytest.approx(
        [b + r for b, r in zip(before, reference)], rel=1e-12, abs=1e-14
    )
    # Same predictions (exactly: the same floats in the same order).
    assert model(X_COPY).data == out.data
    # ... and the other way round: training the original leaves the copy alone.
    after = _grads(twin)
    model.zero_grad()
    model(X_COPY).backward()
    assert _grads(twin) == after
    assert _grads(model) == pytest.approx(reference, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("clone", CLONES, ids=["deepcopy", "pickle"])
def test_a_model_cloned_with_its_optimiser_keeps_them_together(clone: Any) -> None:
    model = _trained_a_bit()
    data, grads = [p.data for p in model.parameters()], _grads(model)
    reference = _backprop_reference(model)
    twin, opt = clone((model, nn.SGD(model.parameters(), lr=0.5)))
    assert all(p is q for p, q in zip(opt.params, twin.parameters()))
    twin(X_COPY).backward()
    opt.step()  # p -= lr * grad on the twin's parameters, not on the original's
    assert [p.data for p in model.parameters()] == data and _grads(model) == grads
    expected = [d - 0.5 * (g + r) for d, g, r in zip(data, grads, reference)]
    assert [q.data for q in twin.parameters()] == pytest.approx(expected, rel=1e-12, abs=1e-14)


class Tied(nn.Module):
    """A model that holds one parameter in two places (at module level: pickles by name)."""

    def __init__(self) -> None:
        self.w = Var(0.5, label="w")
        self.pair = [self.w, Var(2.0)]

    def forward(self, x: float) -> Var:
        return self.w * x + self.pair[0] * self.pair[1]


@pytest.mark.parametrize("clone", CLONES, ids=["deepcopy", "pickle"])
def test_a_model_with_a_parameter_used_twice_copies_it_once(clone: Any) -> None:
    model = Tied()
    model(1.0)
    twin = clone(model)
    assert twin.w is twin.pair[0] and twin.w is not model.w
    assert len(twin.parameters()) == 2
    twin(3.0).backward()  # d(w x + w v)/dw = x + v = 5 by hand, d/dv = w = 0.5
    assert (twin.w.grad, twin.pair[1].grad) == (5.0, 0.5)
    assert (model.w.grad, model.pair[1].grad) == (0.0, 0.0)


def _run_python(code: str, stdin: bytes = b"") -> str:
    """Run ``code`` in a fresh Python process that imports the same tapegrad; its stdout."""
    package_root = str(Path(tapegrad.__file__).resolve().parents[1])
    path = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


# One process pickles a model after a forward pass; another, with used leaves
# of its own on its tape, unpickles it and trains it one backward pass.
PARENT_PICKLES_A_MODEL = """
import pickle, random, sys
import tapegrad.nn as nn
model = nn.MLP(3, [4, 4, 1], rng=random.Random(7))
model([0.3, -1.2, 0.8])
sys.stdout.write(pickle.dumps(model).hex())
"""
CHILD_TRAINS_IT = """
import pickle, sys
from tapegrad import Var
own = [Var(float(i)) for i in range(60)]
for v in own:
    v * 1.0
model = pickle.loads(bytes.fromhex(sys.stdin.read()))
out = model([0.3, -1.2, 0.8])
out.backward()
assert all(v.grad == 0.0 for v in own), "the child's own leaves got gradients"
print(repr([out.data, *[p.grad for p in model.parameters()]]))
"""


def test_a_pickled_model_predicts_and_trains_the_same_in_another_process() -> None:
    payload = _run_python(PARENT_PICKLES_A_MODEL)
    result = _run_python(CHILD_TRAINS_IT, payload.encode())
    model = nn.MLP(3, [4, 4, 1], rng=random.Random(7))  # the same model, here
    out = model(X_COPY)
    out.backward()
    # The same floats: same data, same operations in the same order; and the
    # gradients are numpy backprop's.
    assert result == repr([out.data, *_grads(model)])
    assert _grads(model) == pytest.approx(_backprop_reference(model), rel=1e-12, abs=1e-14)


# ---------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------


def test_moons_lie_on_their_half_circles_without_noise() -> None:
    X, y = make_moons(101, noise=0.0, rng=0)
    assert len(X) == 101 and y.count(0) == 50 and y.count(1) == 51
    for (px, py), label in zip(X, y):
        cx, cy = (0.0, 0.0) if label == 0 else (1.0, 0.5)
        assert math.hypot(px - cx, py - cy) == pytest.approx(1.0, abs=1e-12)
        assert (py >= -1e-12) if label == 0 else (py <= 0.5 + 1e-12)  # upper / lower half
    # the end points of each arc are there: (1, 0), (-1, 0) and (0, 0.5), (2, 0.5)
    for end in ([1.0, 0.0], [-1.0, 0.0], [0.0, 0.5], [2.0, 0.5]):
        assert any(math.dist(p, end) < 1e-12 for p in X)


def test_moons_noise_seed_and_labels() -> None:
    X, y = make_moons(200, noise=0.1, rng=random.Random(5))
    X2, y2 = make_moons(200, noise=0.1, rng=5)
    assert (X, y) == (X2, y2)
    clean = {(round(p[0], 9), round(p[1], 9)) for p in make_moons(200, noise=0.0, rng=5)[0]}
    assert not clean & {(round(p[0], 9), round(p[1], 9)) for p in X}
    # residual distances from the circles have roughly the noise's scale
    dev = [
        math.hypot(px - (0.0 if c == 0 else 1.0), py - (0.0 if c == 0 else 0.5)) - 1.0
        for (px, py), c in zip(X, y)
    ]
    assert 0.03 < float(np.std(dev)) < 0.2
    _, signed = make_moons(10, rng=1, signed=True)
    assert sorted(set(signed)) == [-1, 1]
    assert make_moons(10, rng=1, signed=True)[0] == make_moons(10, rng=1)[0]


@pytest.mark.parametrize(("n", "noise"), [(1, 0.1), (0, 0.1), (10, -0.1), (10, math.inf)])
def test_moons_bad_arguments(n: int, noise: float) -> None:
    with pytest.raises(ValueError, match=re.escape("make_moons")):
        make_moons(n, noise=noise)
