"""The lecture's tiny network: ``MLP(3, [4, 4, 1])`` fits four points.

Run: ``python examples/mlp_four_points.py``. As in the lecture, the network
has tanh on every layer (``out_activation="tanh"``; tapegrad's default output
layer is linear, as micrograd's repository), 41 parameters, and is trained by
plain gradient descent on the summed squared error
``sum((yout - ygt) ** 2)`` of four examples with targets +1, -1, -1, +1:
forward pass, zero the gradients, backward pass, update. The lecture's own
numbers come from numpy's random weights; here ``random.Random(42)`` draws
them, so the run is the same everywhere.
"""

from __future__ import annotations

import random

from tapegrad.nn import MLP, SGD, mse_loss

SEED = 42
STEPS = 20
LEARNING_RATE = 0.05

xs = [
    [2.0, 3.0, -1.0],
    [3.0, -1.0, 0.5],
    [0.5, 1.0, 1.0],
    [1.0, 1.0, -1.0],
]
ys = [1.0, -1.0, -1.0, 1.0]  # desired targets


def main() -> None:
    model = MLP(3, [4, 4, 1], out_activation="tanh", rng=random.Random(SEED))
    print(model)
    print("parameters:", len(model.parameters()))
    opt = SGD(model.parameters(), lr=LEARNING_RATE)
    for k in range(STEPS):
        # forward pass
        ypred = [model(x) for x in xs]
        loss = mse_loss(ypred, ys, reduction="sum")  # the lecture's sum of squares
        # backward pass
        opt.zero_grad()  # for p in model.parameters(): p.grad = 0.0
        loss.backward()
        # update
        opt.step()  # for p in model.parameters(): p.data += -0.05 * p.grad
        print(k, loss.data)
    print("predictions:", [round(model(x).data, 4) for x in xs])
    print("targets:    ", ys)


if __name__ == "__main__":
    main()
