"""Ship a program: a recorded :class:`Program` as a standalone Python module.

``export(prog, path)`` writes a module that does not import tapegrad. Its
``program(*args, **kwargs)`` computes what ``prog(*args, **kwargs)`` does, bit
for bit: the module holds the program's generated source
(:mod:`tapegrad.programs.pyscalar`) and a copy of every function that source
calls (a rule's float forward such as ``_scaled_pow``, the helpers those call,
``math`` functions by name), so the arithmetic is the same statements on the
same floats. With ``arrays=True`` it holds the Array API dialect instead
(:mod:`tapegrad.programs.pyarrays`):
``program(xp, *args, **kwargs)`` computes the batch as ``tapegrad.vmap``
computes it (with the rules' array forms of :mod:`tapegrad.programs.arrays`,
copied likewise), for samples that take the traced branch.

A guard that fails raises ``ValueError`` naming the comparison, what it gave
when traced, and the values it compares now (in the array form, at the first
sample where it fails). A module needs nothing but the standard library;
numpy only when an argument or a result is a numpy array (the float form),
and the array form needs the namespace it is given.

How functions are copied: the source of each (a ``def`` or a ``lambda``) is
found in its file by line and checked by compiling it and comparing the
bytecode with the function's own, so a copy is the function, not a guess.
The names it reads from its module are copied too, recursively (functions,
numbers, modules other than tapegrad's, which become imports). A function
whose source cannot be found (one typed at a prompt) raises ``ValueError``
naming it.
"""

from __future__ import annotations

import ast
import builtins
import copy
import inspect
import math
import os
import re
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tapegrad.programs.pyarrays import array_source
from tapegrad.programs.pyscalar import scalar_source
from tapegrad.programs.pysource import GuardFailed
from tapegrad.programs.recording import Const
from tapegrad.pytree import TreeDef

if TYPE_CHECKING:  # program.py's Program.export calls this module
    from tapegrad.programs.program import Program

__all__ = ["export", "export_source", "undefined_names"]

Axes = int | None | Sequence[int | None]


def export(
    program: Program, path: str | os.PathLike[str], arrays: bool = False, in_axes: Axes = 0
) -> Path:
    """Write ``program`` as a standalone module at ``path``; returns the path.

    ``arrays=True`` writes the Array API form ``program(xp, *args, **kwargs)``,
    whose positional arguments are batched along ``in_axes`` as
    :func:`tapegrad.vmap` batches them (an int for all, or one int or None
    per positional argument; keyword arguments are the same for every
    sample); results are stacked along axis 0.
    """
    text = export_source(program, arrays=arrays, in_axes=in_axes)
    target = Path(path)
    target.write_text(text, encoding="utf-8")
    return target


def export_source(program: Program, arrays: bool = False, in_axes: Axes = 0) -> str:
    """The text of the module :func:`export` writes."""
    if not all(hasattr(program, a) for a in ("steps", "guards", "outputs", "in_tree")):
        raise TypeError(f"export: expected a tapegrad Program, got {type(program).__name__}")
    if program.captures_vars:
        raise ValueError(
            "export: the program computes with a Var its function closes over; its value "
            "would be frozen and its derivative lost: pass it as an argument"
        )
    return _Module(program, arrays, in_axes).text()


# -- copying functions and values -------------------------------------------------------


class _Emitter:
    """Module-level definitions, each once: copied functions, constants, imports."""

    def __init__(self) -> None:
        self.imports: dict[str, str] = {"math": "import math"}  # alias -> statement
        self.lines: list[str] = []
        self.done: dict[int, str] = {}  # id(object) -> its name in the module
        self.keep: list[Any] = []  # the objects named (so their ids stay theirs)
        self.counter = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"_t{self.counter}_{re.sub(r'[^0-9A-Za-z_]', '', hint)[:30]}"

    def value(self, obj: Any, what: str) -> str:
        """A Python expression for ``obj`` in the module (defining what it needs)."""
        if obj is None or obj.__class__ in (bool, int, str):
            return repr(obj)
        if obj.__class__ is float:
            return _float_text(obj)
        if isinstance(obj, types.ModuleType):
            return self.module(obj, what)
        module = type(obj).__module__
        if module == "numpy" and hasattr(obj, "dtype") and getattr(obj, "shape", None) == ():
            self.imports["numpy"] = "import numpy"
            inner = _float_text(float(obj)) if obj.dtype.kind == "f" else repr(obj.item())
            return f"numpy.dtype({obj.dtype.name!r}).type({inner})"
        if callable(obj):
            return self.function(obj, what)
        raise ValueError(f"export: {what} is a {type(obj).__name__}, which a module cannot hold")

    def module(self, mod: types.ModuleType, what: str) -> str:
        name = mod.__name__
        if name == "tapegrad" or name.startswith("tapegrad."):
            raise ValueError(f"export: {what} is the tapegrad module {name}")
        alias = "math" if name == "math" else "_m_" + name.replace(".", "_")
        self.imports[alias] = "import math" if name == "math" else f"import {name} as {alias}"
        return alias

    def function(self, fn: Any, what: str) -> str:
        found = self.done.get(id(fn))
        if found is not None:
            return found
        if isinstance(fn, types.BuiltinFunctionType):
            text = self._builtin(fn, what)
        elif isinstance(fn, types.FunctionType):
            text = self._python_function(fn, what)
        else:
            raise ValueError(
                f"export: {what} is a {type(fn).__name__}, not a function whose source "
                "can be copied"
            )
        self.done[id(fn)] = text
        self.keep.append(fn)
        return text

    def _builtin(self, fn: Any, what: str) -> str:
        name: str = fn.__name__
        if getattr(builtins, name, None) is fn:
            return name
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, types.ModuleType) and getattr(owner, name, None) is fn:
            return f"{self.module(owner, what)}.{name}"
        raise ValueError(f"export: {what} is the built-in {name!r}, found in no module")

    def _python_function(self, fn: types.FunctionType, what: str) -> str:
        node = _source_node(fn)
        if node is None:
            raise ValueError(
                f"export: the source of {what} ({fn.__qualname__}) cannot be found "
                "(a function typed at a prompt?): define it in a file"
            )
        node = _without_annotations(copy.deepcopy(node))  # the parsed file is cached: copy
        name = self.fresh(fn.__name__)
        self.done[id(fn)] = name  # a function that calls itself finds its name
        self.keep.append(fn)
        renames: dict[str, str] = {}
        local = _bound_names(node)
        for ident in sorted(_loaded_names(node) - local - set(fn.__code__.co_freevars)):
            if ident in fn.__globals__:
                renames[ident] = self.value(fn.__globals__[ident], f"{ident!r} read by {what}")
            elif not hasattr(builtins, ident):
                raise ValueError(f"export: {what} reads {ident!r}, which is not defined")
        node = _Rename(renames).visit(node)
        free = fn.__code__.co_freevars
        cells = [
            self.value(c.cell_contents, f"{v!r} that {what} closes over")
            for v, c in zip(free, fn.__closure__ or ())
        ]
        if isinstance(node, ast.Lambda):
            body = [f"return {ast.unparse(node)}"] if free else []
            expr = ast.unparse(node)
        else:
            node.name = name if not free else node.name
            node.decorator_list = []
            body = [*ast.unparse(node).splitlines(), f"return {node.name}"]
        if free:
            maker = self.fresh("make_" + fn.__name__)
            self.lines.append(f"def {maker}({', '.join(free)}):")
            self.lines += ["    " + line for line in body]
            self.lines.append(f"{name} = {maker}({', '.join(cells)})")
        elif isinstance(node, ast.Lambda):
            self.lines.append(f"{name} = {expr}")
        else:
            self.lines += body[:-1]
        self.lines.append("")
        return name


def _float_text(x: float) -> str:
    if math.isfinite(x):
        return repr(x)
    if x != x:
        return "math.nan"
    return "math.inf" if x > 0 else "-math.inf"


_PARSED: dict[str, ast.Module] = {}


def _source_node(fn: types.FunctionType) -> ast.FunctionDef | ast.Lambda | None:
    """The ``def`` or ``lambda`` of ``fn`` in its file, checked against its bytecode."""
    try:
        filename = inspect.getsourcefile(fn)
    except TypeError:
        return None
    if filename is None or not os.path.exists(filename):
        return None
    tree = _PARSED.get(filename)
    if tree is None:
        tree = _PARSED[filename] = ast.parse(Path(filename).read_text(encoding="utf-8"))
    code = fn.__code__
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda) and code.co_name == "<lambda>":
            lines = {node.lineno}
        elif isinstance(node, ast.FunctionDef) and node.name == code.co_name:
            lines = {node.lineno, *(d.lineno for d in node.decorator_list)}
        else:
            continue
        if code.co_firstlineno in lines and _same_code(node, code):
            return node
    return None


def _same_code(node: ast.FunctionDef | ast.Lambda, code: types.CodeType) -> bool:
    """Whether ``node`` compiles to ``code`` (inside a maker of its free variables)."""
    free = code.co_freevars
    inner = ast.unparse(node)
    if free:
        if isinstance(node, ast.Lambda):
            inner = f"return {inner}"
        text = f"def _maker({', '.join(free)}):\n" + "\n".join(
            "    " + line for line in inner.splitlines()
        )
    else:
        text = inner
    try:
        compiled = compile(text, "<export>", "exec")
    except SyntaxError:
        return False
    key = _code_key(code)
    return any(_code_key(c) == key for c in _code_objects(compiled) if c.co_name == code.co_name)


def _code_objects(code: types.CodeType) -> list[types.CodeType]:
    found = []
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            found.append(c)
            found += _code_objects(c)
    return found


def _code_key(code: types.CodeType) -> tuple[Any, ...]:
    """What a compiled copy must share with the function: names, constants, arguments.

    Not the bytecode itself: CPython 3.11 specialises a function's bytecode
    as it runs, and ``co_code`` then reads differently (``LOAD_ATTR`` for a
    call's ``LOAD_METHOD``, other inline caches) from a fresh compilation of
    the same source. With the line and the name also matching, these pin it.
    """
    consts = tuple(
        _code_key(c) if isinstance(c, types.CodeType) else (type(c), repr(c))
        for c in code.co_consts
    )
    return (
        code.co_argcount,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        consts,
    )


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _bound_names(node: ast.AST) -> set[str]:
    """Names bound inside ``node``: parameters, assigned names, nested defs."""
    bound: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            bound.add(n.id)
        elif (isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n is not node) or (
            isinstance(n, ast.ExceptHandler) and n.name
        ):
            bound.add(str(n.name))
    return bound


def _without_annotations(node: ast.FunctionDef | ast.Lambda) -> ast.FunctionDef | ast.Lambda:
    """``node`` without type hints: they are not code, and name types the module lacks."""
    for n in ast.walk(node):
        if isinstance(n, ast.arg):
            n.annotation = None
        elif isinstance(n, ast.FunctionDef):
            n.returns = None
        elif isinstance(n, ast.AnnAssign) and n.value is None:
            n.annotation = ast.Constant(None)  # a bare declaration: harmless as None
        elif isinstance(n, ast.AnnAssign):
            n.annotation = ast.Constant(None)
    return node


class _Rename(ast.NodeTransformer):
    """Global names read by a copied function, as the module names them."""

    def __init__(self, renames: dict[str, str]) -> None:
        self.renames = renames

    def visit_Name(self, node: ast.Name) -> ast.AST:
        text = self.renames.get(node.id)
        if text is None or not isinstance(node.ctx, ast.Load):
            return node
        return ast.copy_location(ast.parse(text, mode="eval").body, node)


def undefined_names(text: str) -> set[str]:
    """Names a module's code reads that nothing in it defines and that are not builtins.

    The exported modules must have none: a test checks it on many programs.
    """
    tree = ast.parse(text)
    bound = _bound_names(tree) | {
        a.asname or a.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    bound |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return {name for name in _loaded_names(tree) - bound if not hasattr(builtins, name)}


# -- the module ---------------------------------------------------------------------------

_HEADER = '''"""A tapegrad program, exported: a standalone module that does not import tapegrad.

{usage}

A guard (a comparison recorded while tracing) that goes the other way raises
ValueError naming it: the traced function would have taken another branch.

The program, one op per line:

{listing}
"""
'''

_FLOAT_USAGE = """program(*args, **kwargs) computes what the traced program computes at
arguments of the structure it was traced with (floats where it had floats)."""

_ARRAY_USAGE = """program(xp, *args, **kwargs) computes the program for a batch of samples
with the Array API namespace xp (numpy, array_api_strict, torch through
array-api-compat ...), as tapegrad.vmap does; results are stacked along
axis 0. A sample whose comparisons go the other way raises ValueError
(naming the guard and the sample) instead of being computed."""

_RUNTIME = '''

class GuardFailed(Exception):
    """A recorded comparison goes the other way (index into GUARDS, values compared)."""

    def __init__(self, index, *values):
        super().__init__(index)
        self.index = index
        self.values = values


def _guard_message(index, values, where):
    text, outcome, sides = GUARDS[index]
    shown = ", ".join(f"{name} = {value!r}" for name, value in zip(sides, values) if name)
    return (
        f"program: guard {text} was {outcome} when traced and is not {where}"
        + (f" ({shown})" if shown else "")
        + ": the traced function takes another branch there"
    )


def _check(value, expected, where):
    if type(value) is not type(expected) or value != expected:
        raise ValueError(
            f"program: {where} was {expected!r} when traced, is {value!r}: "
            "it is fixed in the program"
        )


def _count(items, n, where):
    if len(items) != n:
        raise TypeError(f"program: {where} has {len(items)} entries, the traced one had {n}")


def _elements(x, shape, where):
    if tuple(getattr(x, "shape", ())) != shape or not hasattr(x, "reshape"):
        raise TypeError(f"program: {where} must be an array of shape {shape}")
    return [float(v) for v in x.reshape(-1).tolist()]


def _array(values, shape):
    import numpy

    return numpy.array(values, dtype=numpy.float64).reshape(shape)
'''

_ARRAY_RUNTIME = '''

def _guard(xp, holds, cond, index, sides):
    """holds & cond, after raising ValueError if cond fails for a sample."""
    ok = xp.asarray(cond)
    if bool(xp.all(ok)):
        return holds
    values = sides()
    if ok.ndim == 0:
        raise ValueError(_guard_message(index, [_at(v, None) for v in values], "here"))
    i = int(xp.argmax(xp.astype(~ok, xp.int8)))
    where = f"for sample {i}"
    raise ValueError(_guard_message(index, [_at(v, i) for v in values], where))


def _at(v, i):
    if i is not None and hasattr(v, "shape") and len(v.shape) > 0:
        return float(v[i])
    return float(v)


def _floats(xp, a):
    flat = xp.reshape(a, (-1,))
    tolist = getattr(flat, "tolist", None)
    return [float(v) for v in (tolist() if tolist is not None else flat)]


def _elementwise(xp, size, fn, *arrays):
    """An op with no Array API form, sample by sample with its float function."""
    columns = [_floats(xp, xp.broadcast_to(xp.asarray(a), (size,))) for a in arrays]
    return xp.asarray([float(fn(*row)) for row in zip(*columns)], dtype=xp.float64)


def _batch(xp, x, axis, where):
    x = xp.asarray(x, dtype=xp.float64)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"program: {where} has {x.ndim} axes, its batch axis {axis} is not one")
    axis %= x.ndim
    x = xp.permute_dims(x, (axis, *(d for d in range(x.ndim) if d != axis)))
    flat = xp.reshape(x, (int(x.shape[0]), -1))
    columns = [flat[:, j] for j in range(int(flat.shape[1]))]
    return int(x.shape[0]), tuple(int(d) for d in x.shape[1:]), columns


def _size(sizes):
    if not sizes:
        raise ValueError("program: no argument is batched")
    if len(set(sizes)) > 1 or sizes[0] == 0:
        raise ValueError(
            f"program: the batched arguments have lengths {sizes}: they must agree, and not be 0"
        )
    return sizes[0]


def _column(xp, o, size):
    return xp.full((size,), o, dtype=xp.float64) if isinstance(o, (int, float)) else o


def _stack(xp, cols, size, shape):
    if not cols:
        return xp.zeros((size, *shape), dtype=xp.float64)
    stacked = xp.permute_dims(xp.stack(cols, axis=0), (1, 0))
    return xp.reshape(stacked, (size, *shape))


_BUILT = {}


def program(xp, *args, **kwargs):
    """The program over a batch (see the module's docstring)."""
    run = _BUILT.get(id(xp))
    if run is None:
        run = _BUILT[id(xp)] = (_build(xp), xp)
    inputs, size = _inputs(xp, args, kwargs)
    holds = xp.ones((size,), dtype=xp.bool)
    bad = xp.zeros((size,), dtype=xp.bool)

    def elementwise(fn, *arrays):
        return _elementwise(xp, size, fn, *arrays)

    flat, holds, bad = run[0](inputs, xp, holds, bad, elementwise)
    if bool(xp.any(bad)):
        i = int(xp.argmax(xp.astype(bad, xp.int8)))
        raise ValueError(
            f"program: at sample {i} an op is outside its domain (log of a negative number, "
            "a division by zero ...): the traced function raises there"
        )
    flat = [_column(xp, o, size) for o in flat]
    return _outputs(xp, flat, size)
'''

_FLOAT_MAIN = '''

def program(*args, **kwargs):
    """The program at these arguments (see the module's docstring)."""
    inputs = _inputs(args, kwargs)
    try:
        flat = _flat_program(inputs)
    except GuardFailed as failed:
        message = _guard_message(failed.index, failed.values, "at these arguments")
        raise ValueError(message) from None
    return _outputs(flat)
'''


class _Module:
    """The text of one exported module."""

    def __init__(self, program: Program, arrays: bool, in_axes: Axes) -> None:
        self.program = program
        self.arrays = arrays
        self.emit = _Emitter()
        in_tree = program.in_tree
        if in_tree.kind != "tuple" or len(in_tree.children) != 2:
            raise ValueError("export: the program's arguments are not (args, kwargs)")
        self.args_tree, self.kwargs_tree = in_tree.children
        n_args = len(self.args_tree.children)
        if in_axes is None or isinstance(in_axes, int):
            if isinstance(in_axes, bool):
                raise TypeError("export: in_axes must be an int, None, or a sequence of them")
            self.axes: list[int | None] = [in_axes] * n_args
        else:
            self.axes = list(in_axes)
            if len(self.axes) != n_args:
                raise ValueError(
                    f"export: in_axes has {len(self.axes)} entries "
                    f"for {n_args} positional arguments"
                )
            for a in self.axes:
                if a is not None and (not isinstance(a, int) or isinstance(a, bool)):
                    raise TypeError(f"export: in_axes entries must be ints or None, got {a!r}")

    def text(self) -> str:
        prog = self.program
        usage = _ARRAY_USAGE if self.arrays else _FLOAT_USAGE
        listing = "\n".join("    " + line for line in str(prog).splitlines())
        listing = listing.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        parts = [_HEADER.format(usage=usage, listing=listing)]
        body: list[str] = []
        if self.arrays:
            inputs_fn, batched = self._array_inputs()
            source = array_source(
                prog.n_inputs, prog.steps, prog.guards, prog.outputs, batched=batched
            )
            body += self._namespace(source.namespace, arrays=True)
            body += self._array_program(source.parts, source.namespace)
            body.append(_ARRAY_RUNTIME)
            body += inputs_fn
            body += self._outputs_fn()
        else:
            source = scalar_source(prog.n_inputs, prog.steps, prog.guards, prog.outputs)
            body += self._namespace(source.namespace, arrays=False)
            text = re.sub(r"^def program\(", "def _flat_program(", source.text, flags=re.M)
            body.append(_guard_values(text))
            body.append(_FLOAT_MAIN)
            body += self._float_inputs()
            body += self._outputs_fn()
        parts.append("\n".join(sorted(set(self.emit.imports.values()))) + "\n")
        parts.append(_RUNTIME)
        parts.append(self._guards_table())
        parts.append("\n".join(self.emit.lines))
        parts.append("\n".join(body))
        return "\n".join(parts).rstrip() + "\n"

    def _guards_table(self) -> str:
        rows = []
        for g in self.program.guards:
            sides = [_operand_name(o) for o in (g.a, g.b)]
            text = f"{sides[0]} {g.op} {sides[1]}"
            names = tuple("" if isinstance(o, Const) else _operand_name(o) for o in (g.a, g.b))
            rows.append(f"    ({text!r}, {g.outcome!r}, {names!r}),")
        return "\nGUARDS = [\n" + "\n".join(rows) + "\n]\n"

    def _namespace(self, namespace: dict[str, Any], arrays: bool) -> list[str]:
        """Module-level names of the generated source (its ``_Scalar`` constants go in _build)."""
        lines = []
        for name, value in namespace.items():
            if name == "GuardFailed" and value is GuardFailed:
                continue
            if _array_constant(value):
                continue
            lines.append(f"{name} = {self.emit.value(value, f'{name} of the program')}")
        return lines

    def _array_program(self, parts: list[str], namespace: dict[str, Any]) -> list[str]:
        lines = ["", "", "def _build(xp):", '    """The program with its constants in ``xp``."""']
        for name, value in namespace.items():
            if _array_constant(value):
                inner = self.emit.value(value.value, f"constant {name}")
                lines.append(f"    {name} = xp.asarray({inner}, dtype=xp.float64)")
        numbers = iter(range(len(self.program.guards)))
        for part in parts:
            part = re.sub(r"^def program\(", "def _array_program(", part, flags=re.M)
            part = _guard_checks(part, numbers)
            lines += ["    " + line if line else "" for line in part.splitlines()]
        lines.append("    return _array_program")
        return lines

    # -- arguments and results

    def _walk_inputs(self, tree: TreeDef, expr: str, where: str, out: list[str]) -> list[str]:
        """Lines checking the structure at ``expr``; returns the expressions of its leaves."""
        kind = tree.kind
        if kind == "scalar":
            return [expr]
        if kind == "static":
            value = tree.keys[0]
            if value is None or value.__class__ in (bool, int, str, float):
                out.append(f"    _check({expr}, {self.emit.value(value, where)}, {where!r})")
            return []
        if kind == "array":
            local = f"_a{len(out)}"
            out.append(f"    {local} = _elements({expr}, {tuple(tree.keys)!r}, {where!r})")
            return [f"{local}[{i}]" for i in range(tree.size)]
        if kind in ("list", "tuple"):
            out.append(f"    _count({expr}, {len(tree.children)}, {where!r})")
            leaves = []
            for k, child in enumerate(tree.children):
                leaves += self._walk_inputs(child, f"{expr}[{k}]", f"{where}[{k}]", out)
            return leaves
        leaves = []
        for key, child in zip(tree.keys, tree.children):
            if tree.node_type is not None:  # a dataclass
                sub, path = f"{expr}.{key}", f"{where}.{key}"
            else:
                sub, path = f"{expr}[{self.emit.value(key, where)}]", f"{where}[{key!r}]"
            leaves += self._walk_inputs(child, sub, path, out)
        return leaves

    def _float_inputs(self) -> list[str]:
        out: list[str] = []
        leaves = self._walk_inputs(self.args_tree, "args", "args", out)
        leaves += self._walk_inputs(self.kwargs_tree, "kwargs", "kwargs", out)
        out += self._fixed_checks(leaves, set())
        picked = [f"float({leaves[k]})" for k in self.program.positions]
        return ["", "", "def _inputs(args, kwargs):", *out, f"    return [{', '.join(picked)}]"]

    def _fixed_checks(self, leaves: list[str], skip: set[int]) -> list[str]:
        """Checks that the numbers fixed in the program (ints, bools) are the ones given."""
        lines = []
        for k, value in self.program.fixed.items():
            if k not in skip and value.__class__ in (bool, int):
                where = leaves[k].replace("_a", "array ")
                lines.append(f"    _check({leaves[k]}, {value!r}, {where!r})")
        return lines

    def _array_inputs(self) -> tuple[list[str], set[int]]:
        """``_inputs(xp, args, kwargs)``, and the input numbers that are batch columns."""
        out: list[str] = ["    sizes = []"]
        leaves: list[str] = []
        batched_leaves: set[int] = set()
        out.append(f"    _count(args, {len(self.args_tree.children)}, 'args')")
        for k, (child, axis) in enumerate(zip(self.args_tree.children, self.axes)):
            where = f"argument {k}"
            if axis is None:
                leaves += self._walk_inputs(child, f"args[{k}]", where, out)
                continue
            if child.kind not in ("scalar", "array"):
                raise ValueError(
                    f"export: argument {k} is batched (in_axes {axis}) but was traced as "
                    "a structure, not a float or an array: give it in_axes None"
                )
            shape = tuple(child.keys) if child.kind == "array" else ()
            local = f"_c{k}"
            out += [
                f"    n, shape, {local} = _batch(xp, args[{k}], {axis}, {where!r})",
                "    sizes.append(n)",
                f"    if shape != {shape!r}:",
                f"        raise TypeError('program: {where} must have samples of shape {shape}')",
            ]
            start = len(leaves)
            leaves += [f"{local}[{i}]" for i in range(child.size)]
            batched_leaves |= set(range(start, len(leaves)))
        leaves += self._walk_inputs(self.kwargs_tree, "kwargs", "kwargs", out)
        out += self._fixed_checks(leaves, batched_leaves)
        picked, batched = [], set()
        for number, k in enumerate(self.program.positions, start=1):
            if k in batched_leaves:
                batched.add(number)
                picked.append(leaves[k])
            else:
                picked.append(f"float({leaves[k]})")
        lines = ["", "", "def _inputs(xp, args, kwargs):", *out]
        lines.append(f"    return [{', '.join(picked)}], _size(sizes)")
        return lines, batched

    def _outputs_fn(self) -> list[str]:
        counter = iter(range(self.program.out_tree.size))
        expr = self._output_expr(self.program.out_tree, counter)
        head = "def _outputs(xp, flat, size):" if self.arrays else "def _outputs(flat):"
        return ["", "", head, f"    return {expr}"]

    def _output_expr(self, tree: TreeDef, counter: Any) -> str:
        kind = tree.kind
        if kind == "scalar":
            return f"flat[{next(counter)}]"
        if kind == "static":
            value = tree.keys[0]
            if value is None or value.__class__ in (bool, int, str, float):
                return self.emit.value(value, "a fixed result")
            raise ValueError(
                f"export: the program returns a {type(value).__name__}, which a module "
                "cannot hold (results are numbers, lists, tuples, dicts and arrays)"
            )
        if kind == "array":
            items = [f"flat[{next(counter)}]" for _ in range(tree.size)]
            shape = tuple(tree.keys)
            if self.arrays:
                return f"_stack(xp, [{', '.join(items)}], size, {shape!r})"
            return f"_array([{', '.join(items)}], {shape!r})"
        items = [self._output_expr(c, counter) for c in tree.children]
        if kind == "list":
            return f"[{', '.join(items)}]"
        if kind == "tuple":  # a namedtuple comes back as a plain tuple (equal to it)
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        pairs = [f"{self.emit.value(key, 'a result key')}: {i}" for key, i in zip(tree.keys, items)]
        return "{" + ", ".join(pairs) + "}"  # a dataclass comes back as a dict of its fields


def _array_constant(value: Any) -> bool:
    """A constant operand of the array dialect: a wrapper of a number (``.value``).

    pyarrays wraps them so that ``ArraySource.compile(xp)`` makes each a 0-d array
    of the namespace; the exported module does the same in ``_build(xp)``.
    """
    return hasattr(value, "value") and not callable(value) and not isinstance(value, (int, float))


def _operand_name(o: Any) -> str:
    if isinstance(o, Const):
        v = o.value
        return repr(v) if v.__class__ in (float, int, bool) else repr(float(v))
    return f"%{o}"


_IF = re.compile(r"^(\s*)if not \((.*)\):$")
_RAISE = re.compile(r"^(\s*)raise GuardFailed\((\d+)\)$")
_HOLDS = re.compile(r"^(\s*)holds = holds & \((.*)\)$")


def _sides(condition: str) -> tuple[str, str]:
    """The two operands of a guard's test: those of its first comparison."""
    tree = ast.parse(condition, mode="eval")
    compare = next(n for n in ast.walk(tree) if isinstance(n, ast.Compare))
    return ast.unparse(compare.left), ast.unparse(compare.comparators[0])


def _guard_values(text: str) -> str:
    """The float dialect, each failed guard raising with the values it compared."""
    lines = text.splitlines()
    for k in range(1, len(lines)):
        raised, test = _RAISE.match(lines[k]), _IF.match(lines[k - 1])
        if raised and test:
            a, b = _sides(test.group(2))
            lines[k] = f"{raised.group(1)}raise GuardFailed({raised.group(2)}, {a}, {b})"
    return "\n".join(lines) + "\n"


def _guard_checks(text: str, numbers: Iterator[int]) -> str:
    """The array dialect, each guard checked (raising ValueError) instead of masking samples.

    ``numbers`` gives the guards' indices in the order the source tests them.
    """
    lines = text.splitlines()
    for k, line in enumerate(lines):
        found = _HOLDS.match(line)
        if found:
            a, b = _sides(found.group(2))
            lines[k] = (
                f"{found.group(1)}holds = _guard(xp, holds, ({found.group(2)}), {next(numbers)}, "
                f"lambda: ({a}, {b}))"
            )
    return "\n".join(lines) + "\n"
