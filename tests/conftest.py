"""Hypothesis profiles for the test suite, chosen by ``TAPEGRAD_HYPOTHESIS_PROFILE``.

* ``ci``: derandomized (the same examples on every run), no deadline, no
  example database, and a budget that keeps the whole suite to a few minutes
  on two slow cores;
* ``dev``: the same budget, but random examples and a database, so local
  runs keep exploring and replay what failed before;
* ``thorough``: long runs (see docs/testing.md): 250 times the budget.

The default is ``ci`` when the ``CI`` environment variable is set (as CI
services do), else ``dev``. A test that wants more or fewer examples than an
ordinary one scales the profile's budget (``max_examples``) rather than fixing
a number, so that every profile keeps its meaning; see
``tests/test_properties.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# max_examples is the budget of an ordinary property test (Hypothesis' own
# default in ci and dev, so other tests keep their usual size); tests scale it.
BUDGET = {"ci": 100, "dev": 100, "thorough": 25_000}

settings.register_profile(
    "ci",
    max_examples=BUDGET["ci"],
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=BUDGET["dev"],
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=BUDGET["thorough"],
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

PROFILE = os.environ.get("TAPEGRAD_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def pytest_report_header() -> str:
    return f"hypothesis profile: {PROFILE} (set TAPEGRAD_HYPOTHESIS_PROFILE to ci, dev or thorough)"
