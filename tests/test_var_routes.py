"""Reading ``.data`` or ``.grad`` of any Var while a trace records is noted as a route.

A recorded program replays ops; a value that reaches Python through ``.data``
or ``.grad`` would be replayed as the constant it was. So, while
:func:`tapegrad.trace` records, reading either attribute of any Var (a traced
input, an intermediate, a leaf or parameter the function closes over) is told
to the tracing tapes of this context (``tapegrad.context.note_route``), with
the ``file:line`` of the read. tapegrad's own reads (the ops, the sweeps of a
transform inside the trace) go through the slot and count as nothing; outside
a trace no route is noted at all, and the attributes behave as in micrograd.

The traces here are made with ``trace_call`` (what ``tg.trace`` and ``jit``
call), whose recorder holds the routes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import tapegrad as tg
import tapegrad.handle as handle_module
from tapegrad import context
from tapegrad.programs.recording import Recorder, trace_call

HERE = Path(__file__).name


def routes_of(f: Any, *args: Any) -> list[tuple[str, str]]:
    """The routes noted while ``f(*args)`` is traced."""
    return trace_call(f, args, {}).recorder.routes


def _line_of(marker: str) -> int:
    """The line of this file that holds ``marker`` (where a route should point)."""
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if marker in line and "_line_of" not in line:
            return number
    raise AssertionError(marker)


def test_data_of_a_closed_over_leaf_is_a_route() -> None:
    w = tg.Value(3.0)

    def f(x: Any) -> Any:
        return x * w.data  # read: closed-over data

    routes = routes_of(f, 2.0)
    assert [route for route, _ in routes] == [".data"]
    where = routes[0][1]
    assert where.endswith(f"{HERE}:{_line_of('# read: closed-over data')}"), where


def test_grad_of_a_closed_over_parameter_is_a_route() -> None:
    p = tg.Value(1.5)
    (p * p).backward()
    assert p.grad == 3.0

    def step(x: Any) -> Any:
        return x - 0.1 * p.grad  # read: closed-over grad

    routes = routes_of(step, 2.0)
    assert [route for route, _ in routes] == [".grad"]
    assert routes[0][1].endswith(f"{HERE}:{_line_of('# read: closed-over grad')}")


def test_data_and_grad_of_intermediates_and_inputs_are_routes() -> None:
    w = tg.Value(2.0)
    outer = w * 5.0  # an intermediate of the ambient tape, closed over

    def f(x: Any) -> Any:
        y = x * x
        return y + y.data + x.grad + outer.data

    routes = routes_of(f, 3.0)
    assert [route for route, _ in routes] == [".data", ".grad", ".data"]


def test_a_traced_value_read_still_sets_the_flag_programs_read() -> None:
    # tapegrad.programs reads recorder.read_values for a traced Var's value.
    traced = trace_call(lambda x: x * x.data, (2.0,), {})
    assert traced.recorder.read_values
    traced = trace_call(lambda x: x * tg.Value(4.0).data, (2.0,), {})
    assert not traced.recorder.read_values  # a route all the same
    assert [route for route, _ in traced.recorder.routes] == [".data"]


def test_tapegrads_own_reads_are_not_routes() -> None:
    # Ops on closed-over Vars, math functions, a transform inside the trace
    # (its sweep reads values and gradients internally), copies: no route.
    import copy

    w = tg.Value(0.5)
    b = w * 2.0

    def f(x: Any) -> Any:
        y = tg.math.sin(x * w) + b
        g = tg.grad(lambda t: t * t * w)(x)
        c = copy.copy(w)
        return tg.math.dot([x, y], [g, 2.0], start=c)

    traced = trace_call(f, (1.25,), {})
    assert traced.recorder.routes == []
    assert not traced.recorder.read_values


def test_outside_a_trace_no_route_is_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(handle_module, "note_route", calls.append)
    w = tg.Value(2.0)
    y = w * w
    y.backward()
    assert (w.data, w.grad, y.data, y.grad) == (2.0, 4.0, 4.0, 1.0)
    routes_of(lambda x: x + 1.0, 1.0)  # a trace that reads nothing, then none open
    assert context.open_traces == 0
    assert (w.data, y.grad) == (2.0, 1.0)
    assert calls == []


def test_the_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # The spy above sees reads made while a trace records.
    calls: list[str] = []
    monkeypatch.setattr(handle_module, "note_route", calls.append)
    w = tg.Value(2.0)
    routes_of(lambda x: x + w.data + w.grad, 1.0)
    assert calls == [".data", ".grad"]


def test_nested_traces_are_each_told() -> None:
    w = tg.Value(2.0)
    inner_routes: list[list[tuple[str, str]]] = []

    def outer(x: Any) -> Any:
        def inner(y: Any) -> Any:
            return y * w.data

        inner_routes.append(routes_of(inner, 1.0))
        return x + 1.0

    outer_routes = routes_of(outer, 1.0)
    assert [r for r, _ in inner_routes[0]] == [".data"]
    assert [r for r, _ in outer_routes] == [".data"]


def test_a_trace_in_another_thread_does_not_catch_this_threads_reads() -> None:
    # While another thread traces, the counter is above 0 here too; the read
    # is then looked up in this context's own stack, which has no trace.
    started, finish = threading.Event(), threading.Event()
    recorders: list[Recorder] = []

    def slow(x: Any) -> Any:
        started.set()
        assert finish.wait(30)
        return x + 1.0

    def worker() -> None:
        recorders.append(trace_call(slow, (1.0,), {}).recorder)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert started.wait(30)
        assert context.open_traces >= 1
        w = tg.Value(2.0)
        assert w.data == 2.0 and w.grad == 0.0
    finally:
        finish.set()
        thread.join(30)
    assert recorders[0].routes == []
    assert context.open_traces == 0


def test_the_count_of_open_traces_survives_an_error() -> None:
    def broken(x: Any) -> Any:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        routes_of(broken, 1.0)
    assert context.open_traces == 0


def test_eager_semantics_are_micrographs() -> None:
    # Setting .data works on leaves and intermediates (an SGD step), the
    # value is a float, gradients accumulate and can be reset.
    p = tg.Value(1.0)
    for _ in range(2):
        loss = (p * 3.0) ** 2
        loss.backward()
    assert p.grad == 36.0  # 2 * 18, accumulated
    p.data -= 0.01 * p.grad
    assert p.data == 1.0 - 0.36 and type(p.data) is float
    p.grad = 0.0
    assert p.grad == 0.0
    y = p * 2.0
    y.data = 5.0  # micrograd allows it on any Value
    assert y.data == 5.0


def test_a_traced_var_cannot_be_set() -> None:
    def f(x: Any) -> Any:
        x.data = 2.0
        return x

    with pytest.raises(TypeError, match="traced Var cannot be set"):
        routes_of(f, 1.0)


def test_setting_a_closed_over_leaf_inside_a_trace_works() -> None:
    w = tg.Value(1.0)

    def f(x: Any) -> Any:
        w.data = 4.0  # a write is no read: no route
        return x * w

    traced = trace_call(f, (2.0,), {})
    assert w.data == 4.0
    assert traced.recorder.routes == []


def test_the_property_is_the_one_mechanism() -> None:
    # Every Var class shares Handle's data and grad: no class overrides them.
    from tapegrad.var import Node, TracedNode, Var

    for cls in (Var, Node, TracedNode):
        assert "data" not in vars(cls) and "grad" not in vars(cls)
        assert cls.data is handle_module.Handle.data  # type: ignore[comparison-overlap]
