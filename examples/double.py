"""Learning ``double(x) = 2 * x`` with one weight, as in the Go port's write-up.

Run: ``python examples/double.py``. One neuron without bias or activation,
``ypred = w * x``, starts at ``w = 0.4`` and learns from the single example
``x = 2, y = 4`` with the squared error ``(ypred - y) ** 2`` and a learning
rate of 0.1. The first loss is ``(0.8 - 4) ** 2 = 10.24`` and its gradient
``2 * (0.8 - 4) * 2 = -12.8``, so ``w`` becomes ``0.4 + 0.1 * 12.8 = 1.68``.
Each step multiplies ``w - 2`` by ``1 - 0.1 * 2 * x**2 = 0.2`` (and the loss
by 0.04), so ``w`` is 2 to four digits after six steps. The training lines
are the Go program's output, character for character.

After the first and the last step the tape is listed, like the Go post's
``DisplayGraph``: the first listing has the Go post's numbers (ypred 0.8 with
gradient -6.4, w -12.8, x -2.56, y 6.4). ``x`` and ``y`` are never zeroed,
so their gradients add up over the steps, towards ``-16/3`` and ``8``.
"""

from __future__ import annotations

from tapegrad import Value
from tapegrad.viz import listing


def main() -> None:
    x = Value(2, label="x")
    w = Value(0.4, label="w")  # pretend random init
    y = Value(4, label="y")

    for k in range(6):
        # forward pass
        ypred = w * x
        ypred.label = "ypred"
        diff = ypred - y
        diff.label = "ypred - y"
        loss = diff**2
        loss.label = "loss"

        # backward pass
        w.grad = 0  # zero previous gradients
        loss.backward()

        # update weights
        w.data += -0.1 * w.grad

        # Go's fmt.Printf("Iter: %2v, Loss: %.4v, w: %.4v\n", ...)
        print(f"Iter: {k:2}, Loss: {loss.data:.4g}, w: {w.data:.4g}")
        if k in (0, 5):
            print()
            print(listing(loss))
            print()


if __name__ == "__main__":
    main()
