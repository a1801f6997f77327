"""The float lowering: a recorded program as ``program(inputs)`` on floats.

This is what :func:`tapegrad.jit` and :class:`tapegrad.Program` run: the ops
as :mod:`tapegrad.programs.pysource` writes them, and each guard as a test
that raises :class:`~tapegrad.programs.pysource.GuardFailed` when the
comparison goes the other way (or cannot be made: a NaN)::

    if not (v4 > 0):
        raise GuardFailed(0)
"""

from __future__ import annotations

from collections.abc import Sequence

from tapegrad.programs.pysource import HOLDS, Source, Writer, write_program
from tapegrad.programs.recording import Guard, Operand, Step

__all__ = ["scalar_source"]


class _FloatWriter(Writer):
    """Writes ops on floats; a guard raises GuardFailed."""

    def guard(self, guard: Guard, number: int) -> None:
        holds = HOLDS[(guard.op, guard.outcome)]
        a, b = self.operand(guard.a), self.operand(guard.b)
        self.lines += [f"if not ({holds.format(a, b)}):", f"    raise GuardFailed({number})"]


def scalar_source(
    n_inputs: int,
    steps: Sequence[Step],
    guards: Sequence[Guard],
    outputs: Sequence[Operand],
    segment: int | None = None,
) -> Source:
    """The program as ``program(inputs)`` returning the list of outputs."""
    return write_program(_FloatWriter(), n_inputs, steps, guards, outputs, segment)
