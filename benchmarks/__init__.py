"""tapegrad's benchmark suite; not collected by pytest. See ``benchmarks/README.md``.

* :mod:`benchmarks.workloads`: the table of workloads and the functions timed;
* :mod:`benchmarks.libs`: the table of libraries and how each computes a gradient;
* :mod:`benchmarks.bench`: the timings, a ``pyperf.Runner`` script;
* :mod:`benchmarks.run`: the whole suite: first results, agreement, pyperf, paired ratios;
* :mod:`benchmarks.report`: ``docs/benchmarks.md`` and its plots.

``TAPEGRAD_PATH=/some/checkout`` measures the tapegrad of another checkout
(every process of the suite imports this package first, and inherits the variable).
"""

import os
import sys

if os.environ.get("TAPEGRAD_PATH"):
    sys.path.insert(0, os.environ["TAPEGRAD_PATH"])
