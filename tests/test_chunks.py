"""Chunks of the ambient tape: gradients across chunk boundaries, and release.

A chunk may be freed as soon as no live Var can reach it. These tests build
graphs that cross several chunks and check (a) gradients against closed
forms, even after the Vars of older chunks are deleted, and (b) with weak
references, that chunks are freed when, and only when, nothing reaches them,
including the common script pattern where the previous iteration's output is
still alive while the next one is computed.
"""

from __future__ import annotations

import contextvars
import gc
import math
import weakref
from typing import Any

import pytest

import tapegrad.tape as tape_module
from tapegrad import Value, engine

SMALL = 256  # chunk size for these tests: many boundaries, fast


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tape_module, "CHUNK_SIZE", SMALL)


def fresh(fn: Any) -> Any:
    """Run ``fn`` in a new context, so it starts on a new ambient chunk."""
    return contextvars.Context().run(fn)


def fill(n: int = SMALL) -> None:
    """Record ``n`` throwaway ops, sealing the current chunk."""
    z = Value(1.0)
    for _ in range(n):
        z * 1.0


def test_gradient_through_a_deleted_intermediate_of_a_sealed_chunk() -> None:
    def run() -> None:
        x = Value(2.0)
        y = x * 3.0  # on chunk A
        fill()  # A is sealed
        z = y * y + y  # on a newer chunk, importing y
        del y
        gc.collect()
        z.backward()
        assert x.grad == 2 * 6.0 * 3.0 + 3.0  # d(9x^2 + 3x)/dx = 18x + 3

    fresh(run)


def test_chain_across_many_chunks_matches_closed_form() -> None:
    def run() -> None:
        x = Value(0.5)
        y = x
        steps = 20 * SMALL
        for _ in range(steps):
            y = y * 1.001 + 0.0001
        y.backward()
        assert x.grad == pytest.approx(1.001**steps, rel=1e-12)

    fresh(run)


def test_chunk_is_freed_when_no_var_reaches_it() -> None:
    def run() -> None:
        x = Value(1.5)
        a = x * 2.0
        first = weakref.ref(a._tape)  # type: ignore[arg-type]
        fill()
        b = a + 1.0  # imports a into a newer chunk
        assert first() is not None
        del a
        gc.collect()
        assert first() is not None, "b still needs the first chunk for its backward pass"
        b.backward()
        assert x.grad == 2.0
        del b
        gc.collect()
        assert first() is None, "nothing reaches the first chunk any more"

    fresh(run)


def test_previous_output_alive_while_the_next_is_computed() -> None:
    # for ...: y = model(x)   -- the old y lives until the new one is assigned.
    def run() -> None:
        w = [Value(0.1 * k) for k in range(8)]
        refs: list[weakref.ref[engine.Tape]] = []
        y: Value | None = None
        for step in range(60):
            acc = Value(0.0)
            for k in range(8):
                acc = acc + (w[k] * (step * 0.01 + k)).tanh()
            y = acc  # the previous y dies only here
            refs.append(weakref.ref(y._tape))  # type: ignore[arg-type]
        gc.collect()
        alive = {id(r()) for r in refs if r() is not None}
        # 60 steps of ~25 ops cross ~6 chunks of 256; only the chunks the last
        # y reaches (and the open one) may still be alive.
        assert len(alive) <= 3, f"{len(alive)} chunks still alive"
        assert y is not None
        y.backward()
        # y = sum_k tanh(w_k c_k) with c_k = 0.59 + k, so dy/dw_k = (1 - tanh^2) c_k
        inputs = [59 * 0.01 + k for k in range(8)]
        expect = [(1 - math.tanh(p.data * c) ** 2) * c for p, c in zip(w, inputs)]
        assert [p.grad for p in w] == pytest.approx(expect, rel=1e-12)

    fresh(run)
