"""Mutation check of the rule table: break one field of one row, run its tests, expect a failure.

For every row of ``tapegrad.rules.RULES`` and every field (the forward, each
partial, each kind of name, the array form, the domain, the test inputs, the
fast-path flag) this deletes or perturbs the field in place (so every module
that bound the row sees the mutant), runs the tests that concern the row
(``pytest.main`` in this process: the row's parametrized tests, selected by
``-k``, and the tests of the whole table), and restores the row. A mutant
that no test fails *survives*; the report lists each one.

Usage::

    nice python tools/mutate_rows.py                 # every row (tens of minutes)
    nice python tools/mutate_rows.py exp fmod round  # some rows
    python tools/mutate_rows.py --files tests/test_rows.py -- exp

The report (counts, survivors) is printed at the end; docs/testing.md quotes
the last full run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pytest  # noqa: E402

import tapegrad.testing  # noqa: E402
from tapegrad.rules import RULES, Domain, Rule, _zero  # noqa: E402

FILES = ["tests/test_rows.py", "tests/test_rules.py", "tests/test_check_grads.py"]
# Tests of the whole table, run for every mutant (besides the row's own).
TABLE_TESTS = (
    "binds or methods or ufuncs or docs_list or each_operator or fast_paths or every_row"
    " or has_a_reference"
)

Mutation = tuple[str, Callable[[Rule], dict[str, Any]]]


def _scaled(fn: Callable[..., Any], factor: float) -> Callable[..., Any]:
    return lambda *args: fn(*args) * factor


def mutations(rule: Rule) -> list[Mutation]:
    """(label, field changes) for each way of breaking ``rule``."""
    out: list[Mutation] = [
        ("forward perturbed", lambda r: {"forward": _scaled(r.forward, 1.0 + 2.0**-30)}),
        ("fast_path flipped", lambda r: {"fast_path": not r.fast_path}),
    ]
    for i in range(rule.arity):
        if rule.partials[i] is _zero:
            continue  # equivalent mutants: 0 * 1.01 and "deleted" (0) are 0 again
        out.append(
            (
                f"partial {i} perturbed",
                lambda r, i=i: {"partials": _replace(r.partials, i, _scaled(r.partials[i], 1.01))},
            )
        )
        out.append(
            (
                f"partial {i} deleted (0)",
                lambda r, i=i: {"partials": _replace(r.partials, i, lambda *a: 0.0)},
            )
        )
    for field in ("math", "methods", "numpy"):
        if getattr(rule.names, field):
            out.append(
                (
                    f"names.{field} deleted",
                    lambda r, f=field: {"names": dataclasses.replace(r.names, **{f: ()})},
                )
            )
    if rule.names.operator:
        out.append(
            (
                "names.operator deleted",
                lambda r: {"names": dataclasses.replace(r.names, operator="")},
            )
        )
    if rule.array_form is not None:
        form = rule.array_form
        out.append(("array_form deleted", lambda r: {"array_form": None}))
        out.append(
            ("array_form perturbed", lambda r: {"array_form": _scaled(form, 1.0 + 2.0**-30)})
        )
    if rule.domain is not None:
        domain = rule.domain
        out.append(("domain deleted", lambda r: {"domain": None}))
        out.append(
            ("domain.errors emptied", lambda r: {"domain": dataclasses.replace(domain, errors=())})
        )
        if domain.where is not None:
            where = domain.where
            out.append(
                (
                    "domain.where narrowed (never)",
                    lambda r: {
                        "domain": Domain(
                            domain.errors, lambda xp, *a: where(xp, *a) & (a[0] != a[0])
                        )
                    },
                )
            )
    else:
        out.append(
            (
                "domain added (x > 2)",
                lambda r: {"domain": Domain((ValueError,), lambda xp, x, *rest: x > 2.0)},
            )
        )
    if rule.inputs is not None:
        inputs = rule.inputs
        changes: list[tuple[str, dict[str, Any]]] = [
            (
                "inputs.ranges widened",
                {"ranges": tuple((lo - 5.0, hi + 5.0) for lo, hi in inputs.ranges)},
            ),
            ("inputs.distance deleted", {"distance": None}),
            ("inputs.edges deleted", {"edges": ()}),
            ("inputs.ulps changed", {"ulps": 0 if inputs.ulps else 4}),
        ]
        if inputs.constants:
            changes.append(("inputs.constants deleted", {"constants": ()}))
        if inputs.call is not None:
            changes.append(("inputs.call deleted", {"call": None}))
        for label, change in changes:
            if all(getattr(inputs, k) == v for k, v in change.items()):
                continue  # nothing to change (no edges, no distance)
            out.append((label, lambda r, c=change: {"inputs": dataclasses.replace(inputs, **c)}))
    return out


def _replace(items: tuple[Any, ...], i: int, new: Any) -> tuple[Any, ...]:
    return (*items[:i], new, *items[i + 1 :])


@contextlib.contextmanager
def mutated(rule: Rule, changes: dict[str, Any]) -> Iterator[None]:
    """``rule`` with ``changes``, in place (the object every module bound), then restored."""
    saved = {k: getattr(rule, k) for k in changes}
    spec = tapegrad.testing.BUILTIN_OPS.get(rule.name)
    try:
        for k, v in changes.items():
            object.__setattr__(rule, k, v)  # a frozen dataclass: the row itself changes
        if spec is not None:  # testing copied the row's inputs and names into an OpSpec
            tapegrad.testing.BUILTIN_OPS[rule.name] = tapegrad.testing._from_row(rule)
        yield
    finally:
        for k, v in saved.items():
            object.__setattr__(rule, k, v)
        if spec is not None:
            tapegrad.testing.BUILTIN_OPS[rule.name] = spec


def killed(name: str, files: list[str]) -> bool:
    """Whether the row's tests fail (pytest.main in this process, quiet)."""
    selection = f"[{name}] or [{name}- or {TABLE_TESTS}"
    args = [*files, "-x", "-q", "-p", "no:cacheprovider", "-k", selection]
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(args)
    return code != pytest.ExitCode.OK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", nargs="*", help="row names (default: every row)")
    parser.add_argument("--files", nargs="+", default=FILES)
    ns = parser.parse_args()
    names = ns.rows or sorted(RULES)
    if killed("no-such-row", ns.files):
        print("the unmutated table fails its tests: fix that first")
        return 2
    survivors: list[str] = []
    total = 0
    start = time.perf_counter()
    for name in names:
        rule = RULES[name]
        for label, change in mutations(rule):
            total += 1
            with mutated(rule, change(rule)):
                dead = killed(name, ns.files)
            if not dead:
                survivors.append(f"{name}: {label}")
            print(f"{'killed  ' if dead else 'SURVIVED'} {name}: {label}", flush=True)
    minutes = (time.perf_counter() - start) / 60
    print(f"\n{total} mutants of {len(names)} rows, {total - len(survivors)} killed, "
          f"{len(survivors)} survived ({minutes:.1f} min)")  # fmt: skip
    for s in survivors:
        print("  survived:", s)
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
