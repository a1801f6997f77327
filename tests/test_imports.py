"""How tapegrad's modules import each other: no cycles, honest public names, no dependencies.

An import cycle that works only because some imports happen late (inside
functions, or in an order that one edit can break) is a trap: one was found
as ``engine -> rules -> math -> engine``, kept alive by lazy lambdas. These tests
read the import statements with ``ast`` (what the code says, not what one
import order happens to allow) and import each module in a fresh interpreter
(what Python does with it).
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tapegrad"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Every module of tapegrad, subpackages (tapegrad.programs) included.
PATHS = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
MODULES = sorted(PATHS)
PACKAGES = {name for name, path in PATHS.items() if path.name == "__init__.py"}


def _path(module: str) -> Path:
    return PATHS[module]


# ---------------------------------------------------------------------------
# Each module imports on its own, in a fresh interpreter
# ---------------------------------------------------------------------------


# ``import tapegrad.x`` runs tapegrad/__init__.py first, which imports most
# modules in one fixed order; so each module is also imported with the package
# bare (an empty module with tapegrad's __path__), which makes it the first
# tapegrad module to load: any order of imports then works, not just one.
BARE = (
    "import importlib, importlib.util, sys, types\n"
    "spec = importlib.util.find_spec('tapegrad')\n"
    "bare = types.ModuleType('tapegrad')\n"
    "bare.__path__ = list(spec.submodule_search_locations)\n"
    "bare.__spec__ = spec\n"
    "sys.modules['tapegrad'] = bare\n"
    "importlib.import_module({module!r})\n"
)
CASES = [(m, "package") for m in MODULES] + [(m, "bare") for m in MODULES if m != "tapegrad"]
Done = subprocess.CompletedProcess[str]


def _import_alone(case: tuple[str, str]) -> Done:
    module, how = case
    # tapegrad.__main__ only defines main when imported (its name is not
    # "__main__" then), so importing it does not run the command line.
    code = f"import {module}" if how == "package" else BARE.format(module=module)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def fresh_imports() -> dict[tuple[str, str], Done]:
    """Every module imported in its own interpreter, two at a time (one per core)."""
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(CASES, pool.map(_import_alone, CASES)))


def test_every_module_is_listed() -> None:
    # The glob must find the package, or the parametrized tests test nothing.
    assert {"tapegrad", "tapegrad.__main__", "tapegrad.testing", "tapegrad.engine"} <= set(MODULES)
    assert "tapegrad" in PACKAGES


@pytest.mark.parametrize(("module", "how"), CASES)
def test_module_imports_alone_in_a_fresh_interpreter(
    module: str, how: str, fresh_imports: dict[tuple[str, str], Done]
) -> None:
    done = fresh_imports[module, how]
    assert done.returncode == 0, f"import {module} ({how}) failed:\n{done.stderr}"


def test_a_bare_import_can_fail(tmp_path: Path) -> None:
    # A module that needs the package's __init__ to have run first fails bare.
    package = tmp_path / "tapegrad"
    package.mkdir()
    (package / "__init__.py").write_text("from tapegrad.a import x\ny = 1\n")
    (package / "a.py").write_text("x = 1\n")
    (package / "b.py").write_text("from tapegrad import y\n")

    def run(code: str) -> Done:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )

    done = run(BARE.format(module="tapegrad.b"))
    assert done.returncode != 0 and "cannot import name 'y'" in done.stderr
    done = run("import tapegrad.b")
    assert done.returncode == 0, done.stderr


def test_import_tapegrad_needs_neither_numpy_nor_hypothesis() -> None:
    # The core has no dependency: numpy and Hypothesis are for users' code and
    # tapegrad.testing, and must not be imported by `import tapegrad`.
    code = (
        "import sys, tapegrad\n"
        "print(' '.join(sorted(m for m in ('numpy', 'hypothesis', 'scipy') if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"import tapegrad imported: {done.stdout.strip()}"


# ---------------------------------------------------------------------------
# The import graph, from the source
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import statement of a tapegrad module that names a tapegrad module."""

    source: str  # the importing module
    target: str  # the tapegrad module it makes Python import first
    names: tuple[str, ...]  # names imported from it (from ... import), else ()
    line: int
    where: str  # "module", "function" or "type-checking"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, node: ast.ImportFrom) -> str | None:
    """The absolute module name of ``from X import ...`` (relative imports too)."""
    if node.level == 0:
        return node.module
    package = module if module in PACKAGES else module.rpartition(".")[0]
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def _walk(module: str, body: list[ast.stmt], where: str) -> Iterator[Import]:
    """The tapegrad imports in ``body``; ``where`` says when they run."""
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "tapegrad" or alias.name.startswith("tapegrad."):
                    yield Import(module, alias.name, (), node.lineno, where)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            if base is None or not (base == "tapegrad" or base.startswith("tapegrad.")):
                continue
            # `from tapegrad import math` imports the submodule tapegrad.math;
            # `from tapegrad import Var` takes a name from the package itself.
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in PATHS else base
                yield Import(module, target, (alias.name,), node.lineno, where)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(module, node.body, "function")
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(module, node.body, "type-checking")
            yield from _walk(module, node.orelse, where)
        else:  # class bodies, try, with, other ifs: run at import time like the module
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    stmts = [s for s in inner if isinstance(s, ast.stmt)]
                    stmts += [s for h in inner if isinstance(h, ast.ExceptHandler) for s in h.body]
                    yield from _walk(module, stmts, where)


@cache
def imports() -> tuple[Import, ...]:
    """Every tapegrad import of every tapegrad module."""
    found: list[Import] = []
    for module in MODULES:
        tree = ast.parse(_path(module).read_text(), filename=str(_path(module)))
        found.extend(_walk(module, tree.body, "module"))
    return tuple(found)


def _graph() -> dict[str, set[str]]:
    """Who imports whom: imports at module level and inside functions alike.

    An import inside a function still makes the importing module depend on
    the imported one; it only runs later. Type-only imports (under
    ``if TYPE_CHECKING:``) are not edges: they never run.
    """
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in imports():
        if imp.where != "type-checking" and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    # The check below must be able to fail.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_ast_walk_sees_every_kind_of_import() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import tapegrad.rules\n"
        "from tapegrad import math, Var\n"
        "from . import tape\n"
        "from .handle import Handle\n"
        "if TYPE_CHECKING:\n    from tapegrad.var import Var\n"
        "def f():\n    from tapegrad.nn import MLP\n"
        "class C:\n    from tapegrad.sweeps import backward\n"
        "try:\n    import tapegrad.viz\nexcept ImportError:\n    import tapegrad.cli\n"
    )
    found = {(i.target, i.where) for i in _walk("tapegrad.x", ast.parse(source).body, "module")}
    assert found == {
        ("tapegrad.rules", "module"),
        ("tapegrad.math", "module"),
        ("tapegrad", "module"),
        ("tapegrad.tape", "module"),
        ("tapegrad.handle", "module"),
        ("tapegrad.var", "type-checking"),
        ("tapegrad.nn", "function"),
        ("tapegrad.sweeps", "module"),
        ("tapegrad.viz", "module"),
        ("tapegrad.cli", "module"),
    }


def function_level_imports() -> list[str]:
    """Every import statement inside a function of a tapegrad module, of any module."""
    found = []
    for module in MODULES:
        tree = ast.parse(_path(module).read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in fn.body:
                    for inner in ast.walk(node):
                        if isinstance(inner, ast.Import):
                            names = ", ".join(a.name for a in inner.names)
                        elif isinstance(inner, ast.ImportFrom):
                            names = inner.module or "."
                        else:
                            continue
                        found.append(f"{module}:{inner.lineno} in {fn.name}(): {names}")
    return sorted(set(found))


def test_no_import_cycle_among_tapegrad_modules(
    record_property: Callable[[str, object], None],
) -> None:
    # Every tapegrad import counts, inside functions too (a cycle kept alive
    # by a late import is still a cycle); the function-level imports of any
    # module are listed too (pytest -rP shows them).
    late = function_level_imports()
    record_property("function_level_imports", len(late))
    tapegrad_late = [i for i in imports() if i.where == "function"]
    print(f"{len(late)} function-level imports, {len(tapegrad_late)} of tapegrad modules:")
    print("\n".join(f"  {line}" for line in late))
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_through_a_function_level_import_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The check above must see an import inside a function, and must not see
    # a type-only one: the handle -> operators -> handle cycle that the
    # engine once had, through operators' ``round``, is found from source.
    source = {
        "tapegrad.handle": "from tapegrad.operators import Operators\n",
        "tapegrad.operators": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from tapegrad.var import Var\n"
            "def r(x):\n    from tapegrad.handle import concrete\n    return concrete(x)\n"
        ),
        "tapegrad.var": "from tapegrad.operators import Operators\n",
    }
    found = tuple(
        imp
        for module, text in source.items()
        for imp in _walk(module, ast.parse(text).body, "module")
    )
    monkeypatch.setattr(sys.modules[__name__], "imports", lambda: found)
    assert find_cycle(_graph()) == ["tapegrad.handle", "tapegrad.operators", "tapegrad.handle"]
    found = tuple(i for i in found if i.where != "function")
    assert find_cycle(_graph()) is None


def test_the_graph_has_the_package_edges() -> None:
    # The graph is built from the real files: the package imports its engine.
    graph = _graph()
    assert "tapegrad.engine" in graph["tapegrad"]
    assert "tapegrad.rules" in graph["tapegrad.tape"]


# ---------------------------------------------------------------------------
# Public names: __all__ and the leading underscore
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", [m for m in MODULES if m != "tapegrad.__main__"])
def test_all_lists_names_that_exist(module: str) -> None:
    mod = importlib.import_module(module)
    public = getattr(mod, "__all__", None)
    assert public is not None, f"{module} has no __all__"
    assert len(public) == len(set(public)), f"{module}.__all__ repeats a name"
    missing = [name for name in public if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports() -> list[str]:
    """Private names that one tapegrad module imports from another (modules excepted)."""
    found = []
    for imp in imports():
        for name in imp.names:
            # `from tapegrad import _private_module` imports a module, which is fine.
            is_module = imp.target.endswith(f".{name}") and imp.target in PATHS
            if _private(name) and not is_module:
                found.append(f"{imp.source}:{imp.line} imports {name} from {imp.target}")
    return found


def test_no_private_name_is_imported_across_modules() -> None:
    found = private_imports()
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_private_import_check_can_fail() -> None:
    tree = ast.parse("from tapegrad.record import _evaluate\nfrom tapegrad import var\n")
    walked = list(_walk("tapegrad.math", tree.body, "module"))
    assert [imp.names for imp in walked] == [("_evaluate",), ("var",)]
    assert [imp.target for imp in walked] == ["tapegrad.record", "tapegrad.var"]


# ---------------------------------------------------------------------------
# The reading order that docs/engine.md and tapegrad.engine give
# ---------------------------------------------------------------------------


def _engine_modules() -> set[str]:
    """The modules tapegrad.engine imports, directly or not (type-only imports aside)."""
    graph = _graph()
    seen: set[str] = set()
    todo = ["tapegrad.engine"]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _documented_orders() -> dict[str, list[str]]:
    """The reading order of the engine's modules, as docs/engine.md and engine.py list them."""
    doc = (PACKAGE.parent / "docs" / "engine.md").read_text()
    section = doc.split("## The modules, in reading order", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `tapegrad/(\w+)\.py` \|", section, flags=re.MULTILINE)
    docstring = ast.get_docstring(ast.parse(_path("tapegrad.engine").read_text())) or ""
    listed = re.findall(r"^\d+\. :mod:`(tapegrad\.\w+)`", docstring, flags=re.MULTILINE)
    return {"docs/engine.md": [f"tapegrad.{m}" for m in table], "tapegrad/engine.py": listed}


def _upward_violations(order: list[str], graph: dict[str, set[str]]) -> list[str]:
    """Imports of a module in ``order`` that point at a module listed after it."""
    rank = {module: n for n, module in enumerate(order)}
    return [
        f"{source} imports {target}, listed after it"
        for source in order
        for target in sorted(graph[source])
        if target in rank and rank[target] > rank[source]
    ]


@pytest.mark.parametrize("where", ["docs/engine.md", "tapegrad/engine.py"])
def test_the_documented_reading_order_follows_the_imports(where: str) -> None:
    # Every engine module is listed once, and each imports only modules listed
    # above it: the order in which the engine can be read, bottom up.
    order = _documented_orders()[where]
    assert len(order) == len(set(order)), f"{where} lists a module twice: {order}"
    assert set(order) == _engine_modules(), f"{where} lists {order}"
    assert _upward_violations(order, _graph()) == []


def test_a_wrong_reading_order_is_caught() -> None:
    # The check above can fail: the documented order read backwards breaks it.
    order = _documented_orders()["docs/engine.md"]
    assert _upward_violations(list(reversed(order)), _graph()) != []


def test_the_programs_map_lists_every_module_in_import_order() -> None:
    # docs/engine.md maps tapegrad/programs/: every module once, each importing
    # only modules listed above it (imports inside functions included).
    doc = (PACKAGE.parent / "docs" / "engine.md").read_text()
    section = doc.split("## Replay", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `programs/(\w+)\.py` \|", section, flags=re.MULTILINE)
    order = [f"tapegrad.programs.{m}" for m in table]
    modules = {m for m in MODULES if m.startswith("tapegrad.programs.")}
    assert len(order) == len(set(order)), f"docs/engine.md lists a module twice: {order}"
    assert set(order) == modules, f"docs/engine.md lists {order}, the package has {modules}"
    assert _upward_violations(order, _graph()) == []
    assert _upward_violations(list(reversed(order)), _graph()) != []
