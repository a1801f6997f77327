"""The lecture's neuron ``o = tanh(x1*w1 + x2*w2 + b)``, built with ``tanh`` and from ``exp``.

Run: ``python examples/tanh_neuron.py``. The bias 6.8813735870195432 makes
``n = 0.8813...`` so that ``o`` is about ``1/sqrt(2)``. The gradients are
computed three ways: by hand, as in the lecture (``do/dn = 1 - o**2``, a
plus node routes the gradient, a times node multiplies by the other input);
by ``o.backward()`` on the ``tanh`` version; and by ``o.backward()`` on the
version that spells tanh out as ``(exp(2n) - 1) / (exp(2n) + 1)``. All three
give ``o = 0.7071``, ``x1 -1.5``, ``w1 1.0``, ``x2 0.5``, ``w2 0.0``.

The lecture then checks against PyTorch, which prints 0.7071066904050358,
x1 -1.5000003851533106, w1 1.0000002567688737, x2 0.5000001283844369,
w2 0.0. Those differ from 1/sqrt(2) in the 7th digit because
``torch.tensor([6.8813735870195432]).double()`` rounds the bias to float32
(6.881373405456543) before widening it. With that bias, tapegrad prints
PyTorch's numbers.
"""

from __future__ import annotations

import struct

from tapegrad import Value
from tapegrad.viz import listing

BIAS = 6.8813735870195432
BIAS_FLOAT32 = struct.unpack("f", struct.pack("f", BIAS))[0]  # what torch.tensor() keeps


def inputs(bias: float = BIAS) -> tuple[Value, Value, Value, Value, Value]:
    """Fresh leaves: inputs x1, x2, weights w1, w2, bias b."""
    return (
        Value(2.0, label="x1"),
        Value(0.0, label="x2"),
        Value(-3.0, label="w1"),
        Value(1.0, label="w2"),
        Value(bias, label="b"),
    )


def neuron(x1: Value, x2: Value, w1: Value, w2: Value, b: Value, from_exp: bool) -> Value:
    """The neuron's output; ``from_exp`` builds tanh out of exp, - and /."""
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b
    n.label = "n"
    if from_exp:
        e = (2 * n).exp()
        e.label = "e"
        o = (e - 1) / (e + 1)
    else:
        o = n.tanh()
    o.label = "o"
    return o


def report(title: str, o: float, grads: dict[str, float]) -> None:
    print(title)
    print(o)
    print("------------------")
    for name in ("x1", "w1", "x2", "w2"):
        print(name, grads[name])
    print("------------------")
    print()


def main() -> None:
    # 1. By hand, from the output back, as in the lecture.
    x1, x2, w1, w2, b = inputs()
    o = neuron(x1, x2, w1, w2, b, from_exp=False)
    o_grad = 1.0
    n_grad = (1.0 - o.data**2) * o_grad  # d tanh(n) / dn = 1 - tanh(n)**2
    x1w1_grad = x2w2_grad = n_grad  # n = (x1w1 + x2w2) + b: plus nodes route it
    manual = {
        "x1": w1.data * x1w1_grad,
        "w1": x1.data * x1w1_grad,
        "x2": w2.data * x2w2_grad,
        "w2": x2.data * x2w2_grad,
    }
    report("by hand:", o.data, manual)

    # 2. backward() through tanh.
    o.backward()
    report("backward() through tanh:", o.data, {v.label: v.grad for v in (x1, w1, x2, w2)})
    print(listing(o))
    print()
    print()

    # 3. backward() through exp: other ops, same derivatives.
    x1, x2, w1, w2, b = inputs()
    o = neuron(x1, x2, w1, w2, b, from_exp=True)
    o.backward()
    report("backward() through exp:", o.data, {v.label: v.grad for v in (x1, w1, x2, w2)})
    print(listing(o))
    print()
    print()

    # 4. The lecture's PyTorch comparison, with the bias PyTorch actually used.
    x1, x2, w1, w2, b = inputs(BIAS_FLOAT32)
    o = neuron(x1, x2, w1, w2, b, from_exp=False)
    o.backward()
    report(f"as PyTorch, b = {b.data!r}:", o.data, {v.label: v.grad for v in (x1, w1, x2, w2)})


if __name__ == "__main__":
    main()
