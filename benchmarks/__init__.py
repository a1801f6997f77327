"""tapegrad's benchmark suite (tracker issue 5); not collected by pytest.

``python benchmarks/run.py`` runs it and writes ``docs/benchmarks.md``;
``python benchmarks/run.py --quick`` is a smoke run. See ``benchmarks/README.md``.

Modules:

* :mod:`benchmarks.workloads`: the functions being timed, written once and
  generically (they run on floats, tapegrad/micrograd Values, torch tensors,
  autograd boxes and JAX tracers alike);
* :mod:`benchmarks.cases`: one :class:`~benchmarks.cases.Case` per workload and
  library, with separate forward and backward steps;
* :mod:`benchmarks.harness`: timing, per-primitive and memory measurements,
  run inside one worker process per case;
* :mod:`benchmarks.run`: the command line, the plan and the worker processes;
* :mod:`benchmarks.report`: ``docs/benchmarks.md`` and the scaling plot;
* :mod:`benchmarks.profile`: where tapegrad's time goes (cProfile).
"""
