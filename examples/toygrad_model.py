"""toygrad's ``Model``: ``Linear(in, 8)``, ``Linear(8, 4)``, ``Linear(4, out)`` with relu between.

Run: ``python examples/toygrad_model.py``. The model is the one of the
toygrad write-up, a :class:`tapegrad.nn.Module` whose ``parameters()`` are
found in its attributes (as in PyTorch), trained with the mean squared error
on a small regression: 25 points of the grid ``[-1, 1] x [-1, 1]`` with
target ``y = x1 * x2 + 0.5 * x1 - 0.25``. Full-batch SGD with momentum 0.9;
the loss is printed every 25 epochs and the fit on a few points at the end.
"""

from __future__ import annotations

import random

from tapegrad import Var
from tapegrad.nn import SGD, Linear, Module, mse_loss

SEED = 0
EPOCHS = 200
LEARNING_RATE = 0.02
MOMENTUM = 0.9


def target(x1: float, x2: float) -> float:
    return x1 * x2 + 0.5 * x1 - 0.25


GRID = [-1.0, -0.5, 0.0, 0.5, 1.0]
X = [[x1, x2] for x1 in GRID for x2 in GRID]
Y = [target(x1, x2) for x1, x2 in X]


class Model(Module):
    def __init__(self, input_features: int, output_features: int, rng: random.Random) -> None:
        super().__init__()
        self.layer1 = Linear(input_features, 8, rng)
        self.layer2 = Linear(8, 4, rng)
        self.output = Linear(4, output_features, rng)

    def forward(self, x: list[float]) -> list[Var]:
        h = self.layer1(x)
        h = [hi.relu() for hi in h]
        h = self.layer2(h)
        h = [hi.relu() for hi in h]
        return self.output(h)


def main() -> None:
    model = Model(2, 1, random.Random(SEED))
    print("parameters:", len(model.parameters()))  # (2+1)*8 + (8+1)*4 + (4+1)*1 = 65
    opt = SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    for epoch in range(EPOCHS):
        preds = [model(x)[0] for x in X]
        loss = mse_loss(preds, Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % 25 == 0 or epoch == EPOCHS - 1:
            print(f"epoch {epoch:3d}  loss {loss.data:.6f}")
    print("x1     x2     target   model")
    for x in ([-1.0, -1.0], [-0.5, 1.0], [0.0, 0.0], [1.0, 0.5], [1.0, 1.0]):
        print(f"{x[0]:5.2f}  {x[1]:5.2f}  {target(*x):7.4f}  {model(x)[0].data:7.4f}")


if __name__ == "__main__":
    main()
