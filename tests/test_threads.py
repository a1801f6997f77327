"""Recording and differentiating from several threads and asyncio tasks at once.

The reference for every concurrent run is the same computation run alone in
the main thread first (values bit for bit; gradients to 1e-12, since chunk
boundaries may fall elsewhere and group the same sums differently), or a
hand-derived derivative. Threads start together at a barrier and the switch
interval is lowered so that their ops interleave finely. The programs are long
enough (~36,000 ops each) to cross chunk boundaries of the ambient tape while
other threads record.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tapegrad as tg
from tapegrad import Var

Result = tuple[float, list[float], float]


@pytest.fixture
def fine_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def program(seed: int, params: list[Var] | None = None, steps: int = 6000) -> Result:
    """A recurrent chain of ~6 ops per step; returns (value, leaf grads, a middle grad)."""
    rng = random.Random(seed)
    w = params if params is not None else [Var(rng.uniform(-1, 1)) for _ in range(3)]
    xs = [rng.uniform(-1, 1) for _ in range(steps)]
    acc = Var(0.1) * 1.0
    middle = acc
    for i in range(steps):
        acc = (acc * w[0] + w[1] * xs[i]).tanh() + w[2] * 0.01
        if i % 500 == 0:
            acc = tg.math.sin(acc) + acc.exp() * 0.001  # the generic (apply) path too
        if i == steps // 2:
            middle = acc
    acc.backward()
    return acc.data, [p.grad for p in w], middle.grad


def run_threads(target: Callable[[int], Any], n: int) -> list[Any]:
    """Run ``target(k)`` for k < n in n threads started together; re-raise any error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            barrier.wait()
            results[k] = target(k)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def assert_same(got: Result, expected: Result) -> None:
    assert got[0] == expected[0]
    assert got[1] == pytest.approx(expected[1], rel=1e-12, abs=1e-15)
    assert got[2] == pytest.approx(expected[2], rel=1e-12, abs=1e-15)


@pytest.mark.usefixtures("fine_switching")
def test_threads_record_and_differentiate_different_graphs() -> None:
    expected = [program(seed) for seed in range(4)]
    for _ in range(2):
        got = run_threads(program, 4)
        for g, e in zip(got, expected):
            assert_same(g, e)


@pytest.mark.usefixtures("fine_switching")
def test_threads_sharing_leaf_parameters() -> None:
    def shared() -> list[Var]:
        return [Var(0.7), Var(-0.4), Var(1.3)]

    # Alone: each program's grads on fresh copies of the parameters.
    expected = [program(seed, shared(), steps=3000) for seed in range(4)]
    params = shared()
    got = run_threads(lambda k: program(k, params, steps=3000), 4)
    for g, e in zip(got, expected):
        assert g[0] == e[0]
        assert g[2] == pytest.approx(e[2], rel=1e-12, abs=1e-15)
    # The shared leaves received every thread's contribution.
    totals = [sum(e[1][i] for e in expected) for i in range(3)]
    assert [p.grad for p in params] == pytest.approx(totals, rel=1e-12)


@pytest.mark.usefixtures("fine_switching")
def test_threads_training_shared_parameters_in_many_small_steps() -> None:
    # Each thread: 300 small graphs on the same leaves, one backward() each.
    w, b = Var(0.5), Var(-0.25)

    def work(k: int) -> None:
        for i in range(300):
            x = (k + 1) * 0.1 + i * 1e-3
            ((w * x + b).tanh() * (k + 1)).backward()

    run_threads(work, 4)
    # Hand-derived: d/dw (k+1) tanh(w x + b) = (k+1) x (1 - tanh^2), d/db likewise.
    dw = db = 0.0
    for k in range(4):
        for i in range(300):
            x = (k + 1) * 0.1 + i * 1e-3
            s = 1 - math.tanh(0.5 * x - 0.25) ** 2
            dw += (k + 1) * x * s
            db += (k + 1) * s
    assert w.grad == pytest.approx(dw, rel=1e-12)
    assert b.grad == pytest.approx(db, rel=1e-12)


@pytest.mark.usefixtures("fine_switching")
def test_transforms_in_one_thread_while_others_record() -> None:
    def f(x: Any) -> Any:
        return tg.math.sin(x) * x**3

    def df(x: float) -> float:
        return math.cos(x) * x**3 + 3 * math.sin(x) * x**2

    def work(k: int) -> Any:
        if k == 0:
            return [tg.grad(f)(0.1 * i) for i in range(1, 400)]
        return program(k, steps=4000)

    expected = [program(k, steps=4000) for k in range(1, 3)]
    got = run_threads(work, 3)
    assert got[0] == pytest.approx([df(0.1 * i) for i in range(1, 400)], rel=1e-13)
    for g, e in zip(got[1:], expected):
        assert_same(g, e)


def test_a_main_thread_intermediate_used_in_a_worker() -> None:
    a = Var(1.5)
    h = a * 2.0  # recorded by the main thread

    def work(k: int) -> float:
        y = (h * 3.0).tanh() + h * h
        y.backward()
        return float(y.data)

    [value] = run_threads(work, 1)
    assert value == math.tanh(9.0) + 9.0
    assert a.grad == pytest.approx(2.0 * (3.0 * (1 - math.tanh(9.0) ** 2) + 2 * 3.0), rel=1e-15)


def test_a_worker_never_records_on_the_main_threads_tape() -> None:
    h = Var(1.5) * 2.0  # an intermediate on the main thread's open chunk
    main_tape = h._tape
    assert main_tape is not None
    before = len(main_tape)

    def work(k: int) -> None:
        (h * 3.0).tanh()
        -h  # noqa: B018 - the op itself is under test
        h + Var(1.0)

    run_threads(work, 1)
    assert len(main_tape) == before


# -- copied contexts: workers that inherit the caller's tape stack ---------------------

C = 1.0 - 1e-3
STEPS = 3000


def worker_chain(x0: float, h: Var) -> tuple[float, float]:
    """y <- y * C + h, STEPS times, from a leaf x; returns (x.grad, y.data).

    Each worker runs in a context copied from the main thread, whose open chunk
    holds ``h``: the worker must record on its own chunk and import ``h``.
    """
    x = Var(x0)
    y: Any = x
    for _ in range(STEPS):
        y = y * C + h
    y.backward()
    return x.grad, y.data


def exact(x0: float, h: float) -> tuple[float, float]:
    """Hand-derived: y_n = x C^n + h (1 - C^n) / (1 - C); dy/dx = C^n."""
    geometric = (1 - C**STEPS) / (1 - C)
    return C**STEPS, x0 * C**STEPS + h * geometric


@pytest.fixture
def finest_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.mark.usefixtures("finest_switching")
def test_asyncio_to_thread_workers_inherit_the_stack_and_record_on_their_own() -> None:
    # Tried as a user would: 4 workers x 3,000-op chains, each gradient exact.
    for _ in range(3):
        m = Var(0.75)
        h = m * 2.0  # on the main thread's open chunk, inherited by every worker
        main_tape = h._tape
        assert main_tape is not None
        before = len(main_tape)

        async def main(h: Var = h) -> list[tuple[float, float]]:
            jobs = [asyncio.to_thread(worker_chain, 0.1 * (k + 1), h) for k in range(4)]
            return list(await asyncio.gather(*jobs))

        results = asyncio.run(main())
        assert len(results) == 4
        for k, (grad, value) in enumerate(results):
            dx, y = exact(0.1 * (k + 1), 1.5)
            assert grad == pytest.approx(dx, rel=1e-12)
            assert value == pytest.approx(y, rel=1e-12)
        assert len(main_tape) == before  # no worker appended to the main thread's chunk
        # Every worker's d y / d h reached the shared leaf, 2 d h / d m each.
        geometric = (1 - C**STEPS) / (1 - C)
        assert m.grad == pytest.approx(4 * 2.0 * geometric, rel=1e-12)


@pytest.mark.usefixtures("finest_switching")
def test_threads_with_copied_contexts_while_the_main_thread_records() -> None:
    m = Var(-0.5)
    h = m * 2.0  # on the main thread's open chunk: every copied context below starts there
    results: list[tuple[float, float] | None] = [None] * 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)

    def work(k: int) -> None:
        try:
            barrier.wait()
            results[k] = worker_chain(0.2 * k, h)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(work, k)) for k in range(4)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    # Meanwhile the main thread keeps recording on the chunk that holds h.
    acc: Any = h
    for _ in range(STEPS):
        acc = acc * C + h
    for t in threads:
        t.join()
    assert not errors, errors
    geometric = (1 - C**STEPS) / (1 - C)
    for k, result in enumerate(results):
        assert result is not None
        dx, y = exact(0.2 * k, -1.0)
        assert result[0] == pytest.approx(dx, rel=1e-12)
        assert result[1] == pytest.approx(y, rel=1e-12)
    acc.backward()  # the main thread's own chain, swept after the workers swept its chunk
    total = 4 * 2.0 * geometric + 2.0 * (C**STEPS + geometric)
    assert m.grad == pytest.approx(total, rel=1e-12)


def test_a_transform_var_used_in_another_thread_is_an_error() -> None:
    import tapegrad as tg

    errors: list[BaseException] = []

    def f(x: Any) -> Any:
        def work() -> None:
            try:
                x * 2.0
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=contextvars.copy_context().run, args=(work,))
        t.start()
        t.join()
        return x * x

    assert tg.grad(f)(3.0) == 6.0
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert "another thread" in str(errors[0])


# -- asyncio -------------------------------------------------------------------------


async def program_async(seed: int, steps: int = 6000) -> Result:
    """``program`` with a suspension point every 50 steps, so tasks interleave."""
    rng = random.Random(seed)
    w = [Var(rng.uniform(-1, 1)) for _ in range(3)]
    xs = [rng.uniform(-1, 1) for _ in range(steps)]
    acc = Var(0.1) * 1.0
    middle = acc
    for i in range(steps):
        acc = (acc * w[0] + w[1] * xs[i]).tanh() + w[2] * 0.01
        if i % 500 == 0:
            acc = tg.math.sin(acc) + acc.exp() * 0.001
        if i == steps // 2:
            middle = acc
        if i % 50 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    acc.backward()
    return acc.data, [p.grad for p in w], middle.grad


def test_asyncio_tasks_interleaving_graphs() -> None:
    expected = [program(seed) for seed in range(4)]

    async def main() -> list[Result]:
        return list(await asyncio.gather(*(program_async(seed) for seed in range(4))))

    got = asyncio.run(main())
    for g, e in zip(got, expected):
        assert_same(g, e)


def test_asyncio_tasks_sharing_leaves() -> None:
    w, b = Var(0.5), Var(-0.25)

    async def task(k: int) -> float:
        total = 0.0
        for i in range(200):
            x = (k + 1) * 0.1 + i * 1e-3
            y = w * x
            await asyncio.sleep(0)  # another task records between these ops
            out = (y + b).tanh() * (k + 1)
            await asyncio.sleep(0)
            out.backward()
            total += out.data
        return total

    async def main() -> list[float]:
        return list(await asyncio.gather(*(task(k) for k in range(3))))

    totals = asyncio.run(main())
    dw = db = 0.0
    for k in range(3):
        expected_total = 0.0
        for i in range(200):
            x = (k + 1) * 0.1 + i * 1e-3
            expected_total += math.tanh(0.5 * x - 0.25) * (k + 1)
            s = 1 - math.tanh(0.5 * x - 0.25) ** 2
            dw += (k + 1) * x * s
            db += (k + 1) * s
        assert totals[k] == pytest.approx(expected_total, rel=1e-14)
    assert w.grad == pytest.approx(dw, rel=1e-12)
    assert b.grad == pytest.approx(db, rel=1e-12)
