"""Autodiff oracles: ``oracle(w, xi) = backprop of loss(., xi) at w``.

By the chain and sum rules of conservative calculus (Bolte-Pauwels 2020;
docs/theory.md §1), reverse-mode autodiff of a program built from path
differentiable pieces returns an element ``v in D(w, xi)`` of a conservative
field of ``loss(., xi)``; the integral rule (§4) makes its expectation a
conservative field of ``F = E_xi loss(., xi)``.
"""

from __future__ import annotations

from typing import Any, Callable

import equinox as eqx
import jax

PyTree = Any
Loss = Callable[[PyTree, Any], Any]
Oracle = Callable[[PyTree, Any], PyTree]

__all__ = ["Oracle", "Loss", "Autodiff", "autodiff"]


class Autodiff(eqx.Module):
    """Oracle ``(w, xi) -> grad_w loss(w, xi)``; also exposes ``value_and_grad``."""

    loss: Loss

    def __call__(self, w: PyTree, xi: Any) -> PyTree:
        return jax.grad(self.loss)(w, xi)

    def value_and_grad(self, w: PyTree, xi: Any) -> tuple[Any, PyTree]:
        return jax.value_and_grad(self.loss)(w, xi)


def autodiff(loss: Loss) -> Autodiff:
    """Turn a scalar ``loss(w, xi)`` into an oracle ``(w, xi) -> D(w, xi)`` by backprop.

    The kink values are those of the primitives the loss uses: use
    :func:`nsopt.oracles.relu` (``relu'(0) = kink``), :func:`nsopt.oracles.abs`,
    :func:`nsopt.oracles.maximum` to choose them.
    """
    if not callable(loss):
        raise TypeError(f"autodiff(loss): loss must be callable (w, xi) -> scalar, got {loss!r}")
    return Autodiff(loss)
