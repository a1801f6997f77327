"""``vmap`` on Dask arrays: lazy, blockwise over the input's chunks, equal to numpy's vmap.

The reference is ``vmap`` on the same batch as one numpy array: each block is
that numpy path on a slice of the batch, so results must agree bit for bit
(numpy's elementwise functions give each element the same value whatever
the array's length). Laziness is checked by counting: a Dask scheduler
callback counts every task run, and the input's blocks come from a function
that counts its calls; both stay at zero through the ``vmap`` call.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections import namedtuple
from typing import Any

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.programs import dask_blocks
from tapegrad.programs.dask_blocks import BlockProgram

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
from dask.callbacks import Callback  # noqa: E402


def rosenbrock(x: Any) -> Any:
    return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(len(x) - 1))


def log_or_sqrt(x: Any) -> Any:  # two branches: samples on both sides share blocks
    return tg.math.log(x) if x > 0 else tg.math.sqrt(-x)


Pair = namedtuple("Pair", ["value", "slope"])


def as_pair(x: Any) -> Any:
    value, slope = tg.value_and_grad(log_or_sqrt)(x)
    return Pair(value, slope)


class Counted:
    """Tasks run by a local Dask scheduler while it is active."""

    def __init__(self) -> None:
        self.tasks = 0

    def __enter__(self) -> Counted:
        def pretask(key: Any, dsk: Any, state: Any) -> None:
            self.tasks += 1

        self._callback = Callback(pretask=pretask)
        self._callback.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._callback.__exit__(*exc)


def test_a_dask_batch_of_ten_million_samples_is_mapped_without_computing() -> None:
    made: list[int] = []

    def block_of_points(block: Any) -> Any:  # counts each block computed
        made.append(len(block))
        return block * 0.5 + 0.25

    meta = np.empty((0, 0))  # given, so that dask does not call the function to find it
    x = da.ones((10**7, 3), chunks=(10**6, 3)).map_blocks(block_of_points, meta=meta)
    with Counted() as counted:
        values, grads = tg.vmap(tg.value_and_grad(rosenbrock))(x)
    assert counted.tasks == 0 and made == []
    assert isinstance(values, da.Array) and isinstance(grads, da.Array)
    assert values.chunks == (x.chunks[0],) and grads.chunks == x.chunks
    # The counters do count: computing one block makes one block of points.
    with Counted() as counted:
        first = values[:5].compute()
    assert counted.tasks > 0 and made == [10**6]
    assert first.tolist() == [rosenbrock([0.75] * 3)] * 5


def test_results_equal_numpy_vmap_bit_for_bit_and_chunks_are_kept() -> None:
    rng = np.random.default_rng(19)
    points = rng.normal(size=(10_000, 6))
    lazy = da.from_array(points, chunks=(1_500, 2))  # chunked across samples too
    vg = tg.vmap(tg.value_and_grad(rosenbrock))
    values, grads = vg(lazy)
    assert values.chunks[0] == lazy.chunks[0] and grads.chunks[0] == lazy.chunks[0]
    want_values, want_grads = vg(points)
    got_values, got_grads = dask.compute(values, grads)
    np.testing.assert_array_equal(got_values, want_values)
    np.testing.assert_array_equal(got_grads, want_grads)


def test_guards_split_samples_inside_each_block() -> None:
    xs = np.linspace(-3.0, 3.0, 1001)
    lazy = da.from_array(xs, chunks=128)
    got = tg.vmap(as_pair)(lazy)
    assert isinstance(got, Pair)
    want = tg.vmap(as_pair)(xs)
    np.testing.assert_array_equal(got.value.compute(), want.value)
    np.testing.assert_array_equal(got.slope.compute(), want.slope)
    # Hand-derived: log(2) and 1/2 at 2; sqrt(2) and -1/(2 sqrt(2)) at -2.
    values, slopes = dask.compute(got.value, got.slope)
    k = int(np.argmin(abs(xs - 2.0)))
    assert values[k] == pytest.approx(np.log(xs[k])) and slopes[k] == pytest.approx(1 / xs[k])
    assert values[-k - 1] == pytest.approx(np.sqrt(xs[k]))


def test_unbatched_numpy_and_batched_numpy_arguments_beside_a_dask_one() -> None:
    def f(c: Any, x: Any, y: Any) -> Any:
        return c[0] * x[0] * y + c[1] * x[1], {"x": x * y}

    c = np.array([2.0, -1.0])
    xs = np.random.default_rng(1).normal(size=(4, 50))  # samples along axis 1
    ys = np.linspace(0.0, 1.0, 50)
    mapped = tg.vmap(f, in_axes=(None, 1, 0), out_axes=-1)
    got = mapped(c, da.from_array(xs, chunks=(4, 20)), ys)
    want = mapped(c, xs, ys)
    assert got[0].chunks == ((20, 20, 10),) and got[1]["x"].chunks == ((4,), (20, 20, 10))
    np.testing.assert_array_equal(got[0].compute(), want[0])
    np.testing.assert_array_equal(got[1]["x"].compute(), want[1]["x"])


def test_bad_dask_calls_raise_clear_errors() -> None:
    lazy = da.ones(10, chunks=5)
    with pytest.raises(TypeError, match="argument 0 is a Dask array with in_axes None"):
        tg.vmap(lambda c, x: c * x, in_axes=(None, 0))(lazy, np.ones(10))
    with pytest.raises(ValueError, match="different lengths"):
        tg.vmap(lambda x, y: x * y)(lazy, np.ones(11))
    with pytest.raises(ValueError, match="out_axes 2 is out of range"):
        tg.vmap(lambda x: x * 2.0, out_axes=2)(lazy)
    with pytest.raises(ValueError, match="the batch is empty"):
        tg.vmap(lambda x: x * 2.0)(da.ones(0, chunks=5))


def test_a_function_that_raises_at_every_probe_is_traced_at_the_first_sample() -> None:
    def only_near_ten(x: Any) -> Any:
        if abs(x - 10.0) > 1.0:
            raise ValueError("far from 10")
        return x * x

    xs = np.linspace(9.5, 10.5, 40)
    got = tg.vmap(only_near_ten)(da.from_array(xs, chunks=16))
    np.testing.assert_array_equal(got.compute(), xs * xs)


def test_the_block_program_pickles_and_traces_again_where_it_is_unpickled() -> None:
    xs = np.linspace(-2.0, 2.0, 9)
    program = BlockProgram(tg.value_and_grad(log_or_sqrt), [0], {}, {}, max_cache=8, vmap=tg.vmap)
    copy = pickle.loads(cloudpickle.dumps(program))  # as distributed sends it to workers
    assert copy.token == program.token and copy.f is not program.f
    dask_blocks._PROGRAMS.clear()  # as in a new process: no program traced yet
    got = copy(xs)
    want = tg.vmap(tg.value_and_grad(log_or_sqrt))(xs)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_tapegrad_imports_dask_only_when_given_a_dask_array() -> None:
    code = (
        "import sys, numpy as np, tapegrad as tg\n"
        "tg.vmap(tg.grad(lambda x: x * x))(np.ones(3))\n"
        "assert not any(m == 'dask' or m.startswith('dask.') for m in sys.modules), 'dask'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_two_worker_process_cluster_computes_a_million_samples_as_numpy_does() -> None:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        timeout=60,
    )
    try:
        with distributed.Client(cluster, timeout=60) as client:
            lazy = da.random.default_rng(7).uniform(-2.0, 2.0, size=(10**6, 4), chunks=(125_000, 4))
            points = client.compute(lazy).result(timeout=60)  # made on the workers
            values, grads = tg.vmap(tg.value_and_grad(rosenbrock))(lazy)
            branches = tg.vmap(as_pair)(lazy[:, 0])
            futures = client.compute([values, grads, branches.value, branches.slope])
            got = [future.result(timeout=60) for future in futures]  # bounded waits
            workers = client.run(lambda: "tapegrad.programs.vmap" in sys.modules)
    finally:
        cluster.close(timeout=30)
    assert len(workers) == 2 and all(workers.values())  # each worker traced for itself
    want_values, want_grads = tg.vmap(tg.value_and_grad(rosenbrock))(points)
    want_pair = tg.vmap(as_pair)(points[:, 0])
    np.testing.assert_array_equal(got[0], want_values)
    np.testing.assert_array_equal(got[1], want_grads)
    np.testing.assert_array_equal(got[2], want_pair.value)
    np.testing.assert_array_equal(got[3], want_pair.slope)
