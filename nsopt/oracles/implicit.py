"""Implicit oracles: backprop through a solution map ``x_star`` of a lower-level problem.

Bilevel objective (docs/theory.md §2-§3; arXiv 2106.04350, §6):

    loss(w, xi) = outer(w, x_star(w, *args), xi),     v = grad_w loss(w, xi),

where ``x_star`` is an implicit solution map (:func:`nsopt.implicit.root`,
:func:`nsopt.implicit.fixed_point`, :func:`nsopt.implicit.forward_backward`):
backprop through it solves ``B^T u = d outer / dx`` and returns ``-u^T A`` plus
the explicit part, an element of a conservative field of the bilevel loss
when the invertibility condition holds (it raises otherwise, with
``singular="raise"``).  The oracle has the interface of
:class:`nsopt.oracles.Autodiff`, so it plugs into :func:`nsopt.run` /
:func:`nsopt.run_batch` like any other oracle.

The oracle is stateless: each call solves the lower-level problem from the
solution map's own starting point (no warm start carried across iterations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jax import Array

PyTree = Any
Outer = Callable[[PyTree, PyTree, Any], Array]

__all__ = ["Implicit", "implicit_oracle"]


class Implicit(eqx.Module):
    """Oracle ``(w, xi) -> grad_w outer(w, x_star(w, *args), xi)``.

    ``args`` is a tuple of extra arguments of ``x_star`` (data), or a function
    ``xi -> tuple`` when the lower level depends on the sample.
    """

    outer: Outer
    x_star: Callable[..., PyTree]
    args: tuple | Callable[[Any], tuple] = ()

    def lower_args(self, xi: Any) -> tuple:
        a = self.args(xi) if callable(self.args) else self.args
        return tuple(a)

    def loss(self, w: PyTree, xi: Any) -> Array:
        """The bilevel loss ``outer(w, x_star(w, *args), xi)``."""
        return self.outer(w, self.x_star(w, *self.lower_args(xi)), xi)

    def __call__(self, w: PyTree, xi: Any) -> PyTree:
        return jax.grad(self.loss)(w, xi)

    def value_and_grad(self, w: PyTree, xi: Any) -> tuple[Array, PyTree]:
        return jax.value_and_grad(self.loss)(w, xi)


def implicit_oracle(
    outer: Outer,
    x_star: Callable[..., PyTree],
    args: tuple | Callable[[Any], tuple] = (),
) -> Implicit:
    """An oracle for ``loss(w, xi) = outer(w, x_star(w, *args), xi)`` (see :class:`Implicit`).

    Args:
        outer: upper-level loss ``outer(w, x, xi) -> scalar``.
        x_star: lower-level solution map ``x_star(w, *args) -> x``, usually built with
            :mod:`nsopt.implicit` (any JAX-differentiable callable is accepted; then
            the oracle is plain autodiff).
        args: extra arguments of ``x_star`` (a tuple), or ``xi -> tuple``.
    """
    if not callable(outer):
        raise TypeError(f"implicit_oracle: outer must be callable (w, x, xi) -> scalar, got {outer!r}")
    if not callable(x_star):
        raise TypeError(f"implicit_oracle: x_star must be callable (w, *args) -> x, got {x_star!r}")
    if not (callable(args) or isinstance(args, tuple)):
        raise TypeError(f"implicit_oracle: args must be a tuple or a function xi -> tuple, got {args!r}")
    return Implicit(outer=outer, x_star=x_star, args=args)
