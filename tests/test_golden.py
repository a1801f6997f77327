"""Golden tests: worked examples from micrograd's README and the seed write-ups.

Every expected number here was printed by another implementation (micrograd,
the Go port of seed 001, PyTorch in seed 002) or derived by hand in the seed
text; none of them is computed with tapegrad.

* micrograd README: ``g`` prints 24.7041, ``dg/da`` 138.8338, ``dg/db`` 645.5773.
* seed 002: ``L = (a*b + c) * f`` with its hand-derived gradients, the one-step
  "optimization preview" (L becomes -7.286496), and the tanh neuron whose
  gradients PyTorch prints as x1 -1.5, w1 1.0, x2 0.5, w2 0, built once with
  ``tanh`` and once from ``exp``.
* seed 001: the ``double(x)`` model (one weight, w = 0.4, x = 2, y = 4, loss
  ``(w*x - y)**2``, learning rate 0.1) whose Go port prints six lines of loss and w.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from tapegrad import Value

# The neuron's bias from seed 002: atanh(1/sqrt(2)) + 6, so that n = 0.8813... and
# o = tanh(n) = 1/sqrt(2), 1 - o**2 = 1/2.
B_NEURON = 6.8813735870195432


def test_micrograd_readme_example(capsys: pytest.CaptureFixture[str]) -> None:
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    print(f"{g.data:.4f}")  # prints 24.7041, the outcome of this forward pass
    g.backward()
    print(f"{a.grad:.4f}")  # prints 138.8338, i.e. the numerical value of dg/da
    print(f"{b.grad:.4f}")  # prints 645.5773, i.e. the numerical value of dg/db
    assert capsys.readouterr().out.split() == ["24.7041", "138.8338", "645.5773"]


def build_l_graph() -> dict[str, Value]:
    """Seed 002's first expression, with its labels."""
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    big_l = d * f
    big_l.label = "L"
    return {"a": a, "b": b, "c": c, "e": e, "d": d, "f": f, "L": big_l}


def test_l_graph_values_and_hand_derived_grads() -> None:
    g = build_l_graph()
    assert g["e"].data == -6.0
    assert g["d"].data == 4.0
    assert g["L"].data == -8.0
    g["L"].backward()
    # Seed 002, "manual backpropagation example #1", steps 1-7.
    expected = {"L": 1.0, "d": -2.0, "f": 4.0, "c": -2.0, "e": -2.0, "a": 6.0, "b": -4.0}
    assert {name: g[name].grad for name in expected} == expected
    assert {name: v.label for name, v in g.items()} == {name: name for name in g}


def test_l_graph_one_optimization_step() -> None:
    # Seed 002, "preview of a single optimization step": prints -7.286496.
    g = build_l_graph()
    g["L"].backward()
    a, b, c, f = g["a"], g["b"], g["c"], g["f"]
    for leaf in (a, b, c, f):
        leaf.data += 0.01 * leaf.grad
    e = a * b
    d = e + c
    big_l = d * f
    assert big_l.data == pytest.approx(-7.286496, rel=1e-12)


def neuron_inputs() -> tuple[Value, Value, Value, Value, Value]:
    return (
        Value(2.0, label="x1"),
        Value(0.0, label="x2"),
        Value(-3.0, label="w1"),
        Value(1.0, label="w2"),
        Value(B_NEURON, label="b"),
    )


def neuron_preactivation(x1: Value, x2: Value, w1: Value, w2: Value, b: Value) -> Value:
    x1w1 = x1 * w1
    x1w1.label = "x1w1"
    x2w2 = x2 * w2
    x2w2.label = "x2w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1w1 + x2w2"
    n = x1w1x2w2 + b
    n.label = "n"
    return n


def tanh_direct(n: Value) -> Value:
    return n.tanh()


def tanh_from_exp(n: Value) -> Value:
    e = (2 * n).exp()
    e.label = "e"
    return (e - 1) / (e + 1)


@pytest.mark.parametrize("activation", [tanh_direct, tanh_from_exp], ids=["tanh", "exp"])
def test_tanh_neuron(activation: Callable[[Value], Value]) -> None:
    x1, x2, w1, w2, b = neuron_inputs()
    n = neuron_preactivation(x1, x2, w1, w2, b)
    o = activation(n)
    o.label = "o"
    assert o.data == pytest.approx(1 / math.sqrt(2), rel=1e-14)
    assert o.data == pytest.approx(0.7071, abs=5e-5)
    o.backward()
    # PyTorch in seed 002 (float32 bias, hence its 1e-7 noise): x1 -1.5, w1 1.0,
    # x2 0.5, w2 0.0; by hand: do/dn = 1 - o**2 = 1/2.
    assert n.grad == pytest.approx(0.5, rel=1e-13)
    assert b.grad == pytest.approx(0.5, rel=1e-13)
    assert x1.grad == pytest.approx(-1.5, rel=1e-13)
    assert w1.grad == pytest.approx(1.0, rel=1e-13)
    assert x2.grad == pytest.approx(0.5, rel=1e-13)
    assert w2.grad == 0.0
    assert o.grad == 1.0
    assert o.label == "o"


def test_tanh_neuron_seed_bias_value() -> None:
    # With the seed's rounded bias 6.88137358 the seed prints o = 0.707106777676776.
    x1, x2, w1, w2, _ = neuron_inputs()
    o = neuron_preactivation(x1, x2, w1, w2, Value(6.88137358)).tanh()
    assert o.data == pytest.approx(0.707106777676776, rel=1e-14)


def test_tanh_neuron_both_forms_give_the_same_grads() -> None:
    grads = []
    for activation in (tanh_direct, tanh_from_exp):
        leaves = neuron_inputs()
        activation(neuron_preactivation(*leaves)).backward()
        grads.append([v.grad for v in leaves])
    assert grads[0] == pytest.approx(grads[1], rel=1e-13, abs=1e-15)


# Seed 001, printed by the Go port with fmt "Iter: %2v, Loss: %.4v, w: %.4v".
DOUBLE_X_OUTPUT = """\
Iter:  0, Loss: 10.24, w: 1.68
Iter:  1, Loss: 0.4096, w: 1.936
Iter:  2, Loss: 0.01638, w: 1.987
Iter:  3, Loss: 0.0006554, w: 1.997
Iter:  4, Loss: 2.621e-05, w: 1.999
Iter:  5, Loss: 1.049e-06, w: 2"""


@pytest.mark.parametrize("exponent", ["number", "Value"])
def test_double_x_training_loop(exponent: str) -> None:
    x = Value(2)
    w = Value(0.4)  # pretend random init
    y = Value(4)
    two: float | Value = 2 if exponent == "number" else Value(2)
    lines = []
    ws = [w.data]
    for k in range(6):
        ypred = w * x  # forward pass
        loss = (ypred - y) ** two
        if k == 0:
            assert loss.data == pytest.approx(10.24, rel=1e-14)
        w.grad = 0  # zero previous gradients
        loss.backward()
        if k == 0:
            # dL/dw = 2 (wx - y) x = 2 (0.8 - 4) 2 = -12.8 (seed 001); the Go
            # port's graph after the first iteration shows -6.4 at ypred and at
            # ypred - y, -2.56 at x and +6.4 at y.
            assert w.grad == pytest.approx(-12.8, rel=1e-14)
            assert ypred.grad == pytest.approx(-6.4, rel=1e-14)
            assert x.grad == pytest.approx(-2.56, rel=1e-14)
            assert y.grad == pytest.approx(6.4, rel=1e-14)
        w.data += -0.1 * w.grad  # update weights
        ws.append(w.data)
        lines.append(f"Iter: {k:2d}, Loss: {loss.data:.4g}, w: {w.data:.4g}")
    assert "\n".join(lines) == DOUBLE_X_OUTPUT
    # x and y were never zeroed, so their grads summed over the six steps:
    # dL/dx = 2 (w x - y) w and dL/dy = -2 (w x - y), with w before each update.
    grad_x = sum(2 * (wk * 2 - 4) * wk for wk in ws[:-1])
    grad_y = sum(-2 * (wk * 2 - 4) for wk in ws[:-1])
    assert x.grad == pytest.approx(grad_x, rel=1e-12)
    assert y.grad == pytest.approx(grad_y, rel=1e-12)
    assert y.grad == pytest.approx(8.0, abs=1e-3)  # the Go port's final graph shows 8.0000
