"""Every primitive on arrays: what the array dialect reads from each row of the rule table.

A row's ``array_form(xp, *args)`` (:class:`tapegrad.rules.Rule`) computes the
rule elementwise on arrays of the namespace ``xp`` (numpy, array-api-strict,
torch through array-api-compat ...), calling only functions of the Array API
standard, so a GPU array library computes on the GPU. A row's
``domain.where(xp, *args)`` marks the elements where the float forward
*raises*: :mod:`tapegrad.programs.vmap` hands those samples to ``f`` itself,
which raises what it would. A rule without an array form (a custom
primitive, ``erf``: the standard has no erf) is computed element by element
with its float forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tapegrad.rules import UNKNOWN_DOMAIN, Rule

__all__ = ["array_form", "domain_mask", "may_raise"]


def array_form(rule: Rule) -> Callable[..., Any] | None:
    """The rule's Array API form, or None: compute it element by element."""
    return rule.array_form


def domain_mask(rule: Rule) -> Callable[..., Any] | None:
    """``where(xp, *args)``: the samples where the rule's forward raises; None if it never does."""
    domain = rule.domain
    if domain is None or domain is UNKNOWN_DOMAIN:
        return None  # unknown (a custom primitive): computed per element, errors made NaN
    return domain.where


def may_raise(rule: Rule) -> bool:
    """Whether the rule's float forward raises for some inputs (a custom primitive may)."""
    return rule.domain is not None
