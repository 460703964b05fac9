"""The differentiable Lasso / elastic-net maps: a ``jax.custom_jvp`` whose tangent solves the
support-restricted system with the Cholesky factor of the forward pass (transposable, so
reverse mode works too), and the failure messages of :mod:`nsopt.failures`."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array
from jax.custom_derivatives import SymbolicZero

from nsopt import failures
from nsopt.failures import RESULTS, Solution
from nsopt.layers.lasso.linalg import Factor, cho_solve, gather, scatter
from nsopt.layers.lasso.forward import forward

__all__ = ["SOLVER", "enet_map", "handle", "lasso_map", "messages"]

SOLVER = "nsopt.layers.lasso"


@functools.cache
def messages(enet: bool) -> dict[int, str]:
    """The one message of each failure of the Lasso (``enet=False``) or the elastic net."""
    name = f"{SOLVER} (elastic net)" if enet else SOLVER
    return {
        RESULTS.max_steps_reached: failures.message(
            name, RESULTS.max_steps_reached,
            "kkt_violation = dist_inf(0, dF(x)) / lam > tol after LassoConfig.max_steps FISTA "
            "steps or the working-set round limit",
            "Increase LassoConfig.max_steps or tol"),
        RESULTS.size_limit_exceeded: failures.message(
            name, RESULTS.size_limit_exceeded,
            "the support (or the equicorrelation set) has more elements than "
            "LassoConfig.max_support", "Increase max_support"),
        RESULTS.nonfinite: failures.message(
            name, RESULTS.nonfinite, "non-finite iterate", "Check A, b and theta"),
        RESULTS.rank_deficient: failures.message(
            name, RESULTS.rank_deficient,
            "A_E^T A_E is rank deficient on the equicorrelation set "
            "E = {j : |A_j^T (b - A x)| = e^theta}: Prop. 5 of arXiv 2106.04350 fails, the "
            "solution may be non-unique and its derivative is undefined",
            "Check for duplicated or collinear columns, or use the elastic net"),
    }


def handle(sol: Solution, on_failure: str, enet: bool) -> Solution:
    """:func:`nsopt.failures.handle` with the Lasso's messages."""
    name = f"{SOLVER} (elastic net)" if enet else SOLVER
    return failures.handle(sol, on_failure, name, messages(enet))


def _tangent(A: Array, x: Array, residual: Array, fac: Factor, dA: Array | None,
             db: Array | None, dlam: Array | None, dmu: Array | None) -> Array:
    """``dx`` from ``(A_S^T A_S + mu I) dx_S = -(dlam s_S + dmu x_S + dA_S^T r + A_S^T (dA x - db))``.

    ``None`` marks a zero tangent (its terms are skipped: no dense zero ``dA``).
    """
    p = A.shape[1]
    xs = gather(x, fac.idx)
    rhs = jnp.zeros_like(xs)
    if dlam is not None:
        rhs = rhs + dlam * jnp.sign(xs)
    if dmu is not None:
        rhs = rhs + dmu * xs
    if dA is not None:
        dAS = jnp.take(dA, fac.idx, axis=1, mode="fill", fill_value=0)
        rhs = rhs + dAS.T @ residual
    if dA is not None or db is not None:
        AS = jnp.take(A, fac.idx, axis=1, mode="fill", fill_value=0)
        dfit = (dA @ x if dA is not None else 0.0) - (db if db is not None else 0.0)
        rhs = rhs + AS.T @ dfit
    dz = -cho_solve(fac.chol, jnp.where(fac.valid, rhs, 0.0))
    return scatter(jnp.where(fac.valid, dz, 0.0), fac.idx, p)


def _make_map(enet: bool):
    # cfg and on_failure are static (hashable) nondiff arguments.
    @functools.partial(jax.custom_jvp, nondiff_argnums=(6, 7))
    def smap(A, b, lam, mu, x0, lipschitz, cfg, on_failure):
        fwd = forward(A, b, lam, mu, x0, lipschitz, cfg, enet)
        return handle(fwd.sol, on_failure, enet).value

    def smap_jvp(cfg, on_failure, primals, tangents):
        A, b, lam, mu, x0, lipschitz = primals
        dA, db, dlam, dmu = (None if isinstance(t, SymbolicZero) else t for t in tangents[:4])
        fwd = forward(A, b, lam, mu, x0, lipschitz, cfg, enet)
        x = handle(fwd.sol, on_failure, enet).value
        dx = _tangent(A, x, fwd.residual, fwd.fac, dA, db, dlam, dmu)
        return x, dx

    # Symbolic zeros: differentiating in theta alone never builds a dense zero dA.
    smap.defjvp(smap_jvp, symbolic_zeros=True)
    return smap


lasso_map = _make_map(False)
enet_map = _make_map(True)
