"""The Lorenz system as an implicit bilevel objective (arXiv 2106.04350 §6; docs/theory.md §6).

``max_u u^T z(u)`` with ``z(u) in argmin_s ||s - L(u)||^4``, ``L`` the Lorenz field: the
lower level's optimality condition ``||s - L(u)||^2 (s - L(u)) = 0`` has ``B = A = 0`` at its
solution, so the pseudo-inverse implicit derivative is ``dz/du = 0`` and gradient ascent on the
implicit objective is the Euler scheme of the Lorenz flow, while the explicit objective
``u^T L(u)`` is an indefinite quadratic.  Used by ``experiment=lorenz``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import Array

import nsopt.implicit as ni
from nsopt.oracles import autodiff

__all__ = ["SIGMA", "RHO", "BETA", "EXPLICIT_HESSIAN", "LORENZ_LYAPUNOV", "lorenz", "lower_residual",
           "lower_solve", "solution_map", "implicit_outer", "implicit_loss", "explicit_loss", "oracle",
           "sampler"]

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
EXPLICIT_HESSIAN = np.array([[-20.0, 38.0, 0.0], [38.0, -2.0, 0.0], [0.0, 0.0, -2 * BETA]])
LORENZ_LYAPUNOV = 0.9056  # largest Lyapunov exponent of the Lorenz flow (sigma, rho, beta) = (10, 28, 8/3)


def lorenz(u: Array) -> Array:
    """``L(x, y, z) = (10 (y - x), x (28 - z) - y, x y - 8 z / 3)``."""
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    return jnp.stack([SIGMA * (y - x), x * (RHO - z) - y, x * y - BETA * z], axis=-1)


def lower_residual(v: Array, s: Array, offset: Array | None = None) -> Array:
    """``F(v, s) = ||s - v||^2 (s - v)``: the gradient of ``||s - v||^4 / 4`` in ``s`` (``v = L(u)``).

    ``offset`` belongs to the forward solve (see :func:`lower_solve`), not to ``F``.
    """
    del offset
    r = s - v
    return jnp.sum(r * r) * r


def lower_solve(v: Array, offset: Array | None = None) -> Array:
    """The minimiser ``s = v`` of ``||s - v||^4`` (plus ``offset``: an inexact solver).

    The lower level depends on ``u`` only through ``v = L(u)``, so ``z(u) = s(L(u))``
    and the implicit part differentiates ``v -> s``.  Returning ``v`` itself makes
    ``s - v`` exactly ``0`` in floating point under any compilation; recomputing
    ``L(u)`` inside ``F`` would leave a rounding-level residual ``r`` (about
    ``1e-14`` when XLA fuses the two computations differently), and then
    ``B = ||r||^2 I + 2 r r^T`` is tiny but perfectly conditioned (cond 3), passes
    the relative singularity test, and ``-B^{-1} A = I`` (``dz/du = J_L``): the
    *true* derivative, and the pathology disappears.
    """
    return v if offset is None else v + offset


def solution_map(singular: str = "pinv") -> ni.ImplicitFunction:
    """``v -> s(v)`` through :func:`nsopt.implicit.root`; ``B = A = 0`` at the exact solution."""
    return ni.root(lower_residual, lower_solve, singular=singular)


def implicit_outer(u: Array, z: Array, xi: Any = None) -> Array:
    """``-u^T z``: gradient *descent* on it is ascent on ``u^T z(u)``."""
    del xi
    return -jnp.dot(u, z)


def implicit_loss(u: Array, xi: Any = None, offset: Array | None = None,
                  singular: str = "pinv") -> Array:
    """``-u^T z(u)`` with ``z(u) = s(L(u))`` differentiated implicitly (``offset``: inexact solve)."""
    del xi
    args = () if offset is None else (offset,)
    return implicit_outer(u, solution_map(singular)(lorenz(u), *args))


def explicit_loss(u: Array, xi: Any = None) -> Array:
    """``-u^T L(u)`` (autodiff oracle: ``-(L(u) + J_L(u)^T u) = -H u``)."""
    del xi
    return -jnp.dot(u, lorenz(u))


def sampler(key: Array) -> Array:
    """No noise: the ascent is deterministic."""
    del key
    return jnp.zeros(())


def oracle(kind: str):
    """The autodiff oracle of the ``implicit`` (pinv) or ``explicit`` objective."""
    if kind == "implicit":
        return autodiff(implicit_loss)
    if kind == "explicit":
        return autodiff(explicit_loss)
    raise ValueError(f"kind must be 'implicit' or 'explicit', got {kind!r}")
