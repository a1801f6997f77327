"""Flat memory without any reset call, measured with ``tracemalloc``.

The contract (API.md, "Memory"): a training loop or a forward-only loop holds
memory flat, and recorded ops are released when no Var of theirs is alive.

Method: each loop runs in a fresh ``contextvars.Context()`` (so it starts on a
new ambient chunk), warms up untraced, then ``tracemalloc`` counts the bytes
allocated after the warm-up that are still alive, sampled every few
iterations. Two checks on the samples:

* ceiling: every sample stays below ``2 MB + CHUNK_SIZE * 400 B``. A correct
  engine holds at most the open chunk (one tuple of six fields per entry plus
  its floats, ~150 B), the chunk being sealed (its packed columns, ~41 B per
  entry, and the transient columns of ``zip``, ~50 B per entry) and the graph
  of the current iteration: about ``CHUNK_SIZE * 250 B``. The 2 MB cover
  interpreter caches and free lists. At the default chunk size that is 8.5 MB,
  where a loop that keeps every sealed chunk grows by ~0.7 MB per chunk.
* no trend: the highest sample of the last quarter exceeds the highest of the
  first quarter by less than 1 MB (a leak of one float per iteration over
  90,000 iterations would be 2 MB).

The loops use a micrograd-style MLP written inline (one input, two tanh
units, a linear output), the smallest net with a hidden layer: tracemalloc
slows every allocation down, so the model is small and the step counts are
not reduced.
"""

from __future__ import annotations

import contextvars
import gc
import random
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

import tapegrad.tape as tape_module
from tapegrad import Value, engine

MB = 1 << 20


class TinyMLP:
    """1 -> 2 (tanh) -> 1, built from Values the way micrograd's nn does it."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.w1 = [Value(rng.uniform(-1, 1)) for _ in range(2)]
        self.b1 = [Value(rng.uniform(-1, 1)) for _ in range(2)]
        self.w2 = [Value(rng.uniform(-1, 1)) for _ in range(2)]
        self.b2 = Value(0.0)

    def __call__(self, x: float) -> Value:
        hidden = [(b + w * x).tanh() for w, b in zip(self.w1, self.b1)]
        out = self.b2
        for w, h in zip(self.w2, hidden):
            out = out + w * h
        return out

    def parameters(self) -> list[Value]:
        return [*self.w1, *self.b1, *self.w2, self.b2]


def traced(body: Callable[[int], Any], total: int, warmup: int, every: int) -> list[int]:
    """Run ``body(i)`` ``total`` times; sample the bytes allocated after the warm-up."""
    for i in range(warmup):
        body(i)
    gc.collect()
    samples = []
    tracemalloc.start()
    try:
        for i in range(warmup, total):
            body(i)
            if i % every == 0:
                samples.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    return samples


def assert_flat(samples: list[int], chunk_size: int) -> None:
    ceiling = 2 * MB + chunk_size * 400
    quarter = len(samples) // 4
    first, last = max(samples[:quarter]), max(samples[-quarter:])
    summary = (
        f"after warm-up: max {max(samples) / MB:.2f} MB (ceiling {ceiling / MB:.2f} MB); "
        f"first quarter max {first / MB:.2f} MB, last quarter max {last / MB:.2f} MB"
    )
    assert max(samples) < ceiling, summary
    assert last - first < 1 * MB, summary


def run_fresh(fn: Callable[[], Any]) -> Any:
    return contextvars.Context().run(fn)


def test_forward_only_loop_memory_is_flat() -> None:
    def run() -> list[int]:
        model = TinyMLP(seed=0)
        return traced(lambda i: model(0.3 + (i % 10) * 0.01), 100_000, 10_000, every=100)

    assert_flat(run_fresh(run), engine.CHUNK_SIZE)


def test_training_loop_memory_is_flat(monkeypatch: pytest.MonkeyPatch) -> None:
    # backward() sweeps the open chunk from the output down to its first entry,
    # so a step costs O(CHUNK_SIZE) allocations of loop indices, each traced by
    # tracemalloc: 10,000 steps took ~150 s at the default size when measured.
    # A 1024-entry chunk keeps every mechanism (sealing, imports, release) and
    # makes the loop cross ~120 chunk boundaries instead of 7.
    chunk = 1024
    monkeypatch.setattr(tape_module, "CHUNK_SIZE", chunk)

    def run() -> list[int]:
        model = TinyMLP(seed=1)
        params = model.parameters()
        data = [(x / 10, 0.5 * x / 10 - 0.2) for x in range(-5, 6)]
        losses = [0.0] * 10_000

        def step(i: int) -> None:
            x, y = data[i % len(data)]
            loss = (model(x) - y) ** 2  # forward
            for p in params:  # zero grads
                p.grad = 0.0
            loss.backward()  # backward
            for p in params:  # update
                p.data -= 0.05 * p.grad
            losses[i] = loss.data

        probe = Value(1.0) * 1.0
        samples = traced(step, 10_000, 1_000, every=10)
        assert probe._tape is not None and probe._tape.limit == chunk, "patch not in effect"
        assert sum(losses[-len(data) :]) < 0.5 * sum(losses[: len(data)])  # it did train
        return samples

    assert_flat(run_fresh(run), chunk)


def test_a_long_graph_is_released_when_its_last_var_dies() -> None:
    # 300,000 ops span 18 chunks (~12 MB packed). Once the output is gone only
    # the open chunk may remain: at most CHUNK_SIZE entries.
    def run() -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        try:
            x0 = Value(0.5)
            x = x0
            for _ in range(300_000):
                x = x * 1.000001
            built = tracemalloc.get_traced_memory()[0]
            del x
            gc.collect()
            left = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return built, left

    built, left = run_fresh(run)
    assert built > 8 * MB  # the graph was really held while x was alive
    assert left < 2 * MB + engine.CHUNK_SIZE * 250, f"{left / MB:.1f} MB still held"
