"""Extending the rule table at run time: :func:`primitive`.

A primitive is a forward function on floats plus one partial per input.
Partials receive the inputs and the output (``partial_i(*inputs, out)``) and
are written with operators and :mod:`tapegrad.math`, so they are themselves
differentiable: a custom primitive works under every transform, at every order.

>>> import math, tapegrad as tg
>>> softplus = tg.primitive(lambda x: math.log1p(math.exp(x)),
...                         lambda x, out: tg.math.sigmoid(x), name="softplus")
>>> softplus(0.0) == math.log(2.0)
True
>>> tg.grad(softplus)(0.0)
0.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tapegrad.handle import Handle, is_real
from tapegrad.record import evaluate
from tapegrad.rules import Rule
from tapegrad.var import apply

__all__ = ["primitive"]


def primitive(
    forward: Callable[..., float], *partials: Callable[..., Any], name: str | None = None
) -> Callable[..., Any]:
    """A new primitive: ``forward`` on floats, ``partials[i](*inputs, out)`` = d out / d input i.

    Returns a function of floats (giving a float) or Vars (giving a Var).
    The rule is owned by the returned function: it lives as long as that
    function and the tapes that use it (no registry of every primitive made).
    Values and partials are checked when recorded: anything but a real
    number or a Var raises ``TypeError`` naming the primitive.
    """
    if not callable(forward) or not all(callable(p) for p in partials):
        raise TypeError("primitive: forward and every partial must be callable")
    if not partials:
        raise TypeError("primitive: give one partial derivative per input (at least one)")
    label = name if name is not None else getattr(forward, "__name__", "primitive")
    rule = Rule(label, label, forward, tuple(partials))
    arity = len(partials)

    def fn(*args: Any) -> Any:
        if len(args) != arity:
            raise TypeError(f"{label}: takes {arity} argument(s), got {len(args)}")
        for a in args:
            if not (isinstance(a, Handle) or is_real(a)):
                raise TypeError(f"{label}: needs real numbers or Vars, not {type(a).__name__}")
        if any(isinstance(a, Handle) for a in args):
            return apply(rule, args)
        return evaluate(rule, tuple(float(a) for a in args))

    fn.__name__ = fn.__qualname__ = label
    fn.__doc__ = f"The custom primitive {label!r} (see tapegrad.primitive)."
    return fn
