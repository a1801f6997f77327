"""tapegrad: reverse-mode automatic differentiation of scalar Python code on a tape.

>>> from tapegrad import Value
>>> a = Value(2.0); b = Value(-3.0)
>>> c = a * b + a
>>> c.backward()
>>> a.grad, b.grad
(-2.0, 2.0)
"""

from tapegrad import math
from tapegrad.checking import check_grads
from tapegrad.engine import Value, Var
from tapegrad.explain import Explanation, explain
from tapegrad.extend import primitive
from tapegrad.handle import ConversionError
from tapegrad.programs import GuardError, Program, jit, trace, vmap
from tapegrad.transforms import (
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    stop_gradient,
    value_and_grad,
    vjp,
)
from tapegrad.viz import draw_dot

__all__ = [
    "Var",
    "ConversionError",
    "Value",
    "math",
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "jacobian",
    "jacrev",
    "jacfwd",
    "hessian",
    "hvp",
    "stop_gradient",
    "primitive",
    "check_grads",
    "draw_dot",
    "explain",
    "Explanation",
    "trace",
    "jit",
    "vmap",
    "Program",
    "GuardError",
]
__version__ = "0.1.0"
