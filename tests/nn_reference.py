"""An independent reference for the nn tests: dense networks in numpy, backprop by hand.

Nothing here uses tapegrad's differentiation: forward passes are matrix
products, gradients are the textbook backpropagation formulas for dense
layers, and the losses' derivatives are written out. The tests only read a
tapegrad model's *initial* parameter values (:func:`weights_of`) and then
compare what tapegrad computes with what this module computes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = Any  # numpy arrays; numpy's own annotations are not needed here

# activation name -> (f(a), f'(a) written with the activation's value h = f(a))
ACTS: dict[str, tuple[Callable[[Array], Array], Callable[[Array, Array], Array]]] = {
    "tanh": (np.tanh, lambda a, h: 1.0 - h * h),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, h: (a > 0.0).astype(float)),
    "sigmoid": (lambda a: 1.0 / (1.0 + np.exp(-a)), lambda a, h: h * (1.0 - h)),
    "linear": (lambda a: a, lambda a, h: np.ones_like(a)),
}


@dataclass
class Dense:
    """One layer: ``act(W @ x + b)`` with ``W`` of shape (nout, nin)."""

    W: Array
    b: Array
    act: str


def weights_of(model: Any) -> list[Dense]:
    """A copy of a tapegrad Layer/Linear-based model's parameters as numpy layers.

    ``model.layers`` (MLP) or a list of layers; each layer has ``neurons``
    with ``w`` and ``b`` and an ``activation`` name.
    """
    layers = model.layers if hasattr(model, "layers") else model
    return [
        Dense(
            np.array([[w.data for w in n.w] for n in layer.neurons], dtype=float),
            np.array([n.b.data for n in layer.neurons], dtype=float),
            layer.activation,
        )
        for layer in layers
    ]


def forward(net: Sequence[Dense], X: Array) -> tuple[Array, list[tuple[Array, Array, Array]]]:
    """Outputs for a batch ``X`` (n, nin) and the cache (input, pre-activation, output)."""
    h = np.asarray(X, dtype=float)
    cache = []
    for layer in net:
        a = h @ layer.W.T + layer.b
        out = ACTS[layer.act][0](a)
        cache.append((h, a, out))
        h = out
    return h, cache


def backward(
    net: Sequence[Dense], cache: list[tuple[Array, Array, Array]], d_out: Array
) -> list[tuple[Array, Array]]:
    """``(dW, db)`` per layer, given d loss / d output of shape (n, nout)."""
    grads: list[tuple[Array, Array]] = []
    g = d_out
    for layer, (h, a, out) in zip(reversed(net), reversed(cache)):
        g = g * ACTS[layer.act][1](a, out)  # through the activation
        grads.append((g.T @ h, g.sum(axis=0)))
        g = g @ layer.W  # to the layer's input
    grads.reverse()
    return grads


def sse(out: Array, y: Array) -> tuple[float, Array]:
    """Sum of squared errors and its derivative."""
    d = out - y
    return float((d * d).sum()), 2.0 * d


def mse(out: Array, y: Array) -> tuple[float, Array]:
    """Mean squared error over all outputs and its derivative."""
    d = out - y
    return float((d * d).mean()), 2.0 * d / d.size


def hinge(out: Array, y: Array) -> tuple[float, Array]:
    """Mean of relu(1 - y * out) for one output column, and its derivative."""
    margin = 1.0 - y * out
    n = out.shape[0]
    return float(np.maximum(margin, 0.0).sum() / n), np.where(margin > 0.0, -y / n, 0.0)


def l2(net: Sequence[Dense], alpha: float) -> float:
    return alpha * float(sum((layer.W**2).sum() + (layer.b**2).sum() for layer in net))


def train_sgd(
    net: list[Dense],
    X: Array,
    y: Array,
    loss: Callable[[Array, Array], tuple[float, Array]],
    steps: int,
    lr: Callable[[int], float],
    momentum: float = 0.0,
    alpha: float = 0.0,
) -> list[float]:
    """Full-batch SGD (heavy-ball momentum, L2 ``alpha * sum(p**2)``); the loss per step.

    Each loss is the one computed before that step's update, as in micrograd.
    """
    vel = [(np.zeros_like(layer.W), np.zeros_like(layer.b)) for layer in net]
    history = []
    for k in range(steps):
        out, cache = forward(net, X)
        value, d_out = loss(out, y)
        history.append(value + l2(net, alpha))
        grads = backward(net, cache, d_out)
        rate = lr(k)
        for i, (layer, (dW, db)) in enumerate(zip(net, grads)):
            dW = dW + 2.0 * alpha * layer.W
            db = db + 2.0 * alpha * layer.b
            vW, vb = vel[i]
            vW = momentum * vW + dW
            vb = momentum * vb + db
            vel[i] = (vW, vb)
            layer.W = layer.W - rate * vW
            layer.b = layer.b - rate * vb
    return history
