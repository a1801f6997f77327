"""Recorded programs: ``trace``, ``jit`` (guarded straight-line Python) and ``vmap``.

A tape is a straight-line program. :func:`trace` exposes what a function
records as a :class:`Program`; :func:`jit` replays such programs as generated
Python, guarded by the comparisons made while tracing; :func:`vmap` replays
one over arrays, a batch of inputs at a time. docs/programs.md explains how
and when replay is valid.
"""

from tapegrad.programs.jit import jit, trace
from tapegrad.programs.program import GuardError, Program
from tapegrad.programs.vmap import vmap

__all__ = ["trace", "jit", "vmap", "Program", "GuardError"]
