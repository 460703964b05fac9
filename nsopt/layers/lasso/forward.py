"""The Lasso / elastic-net forward pass: solve, factor the support, check Prop. 5.

Returns a :class:`~nsopt.failures.Solution` (nothing handled here) plus what the
derivative needs (the Cholesky factor of ``A_S^T A_S + mu I`` and ``r = A x - b``).
The rank condition of Prop. 5 (arXiv 2106.04350): ``A_E`` of full column rank on the
equicorrelation set ``E = {j : |A_j^T (b - A x)| = lam}``, estimated by power / inverse
power iterations on a Cholesky factor of ``A_E^T A_E``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax

from nsopt import failures
from nsopt.failures import RESULTS, Solution
from nsopt.layers.lasso.config import LassoConfig, resolve
from nsopt.layers.lasso.linalg import Factor, extreme_eigs, factor, kkt, spectral_sq
from nsopt.layers.lasso.solver import dense_solve, working_set_solve

__all__ = ["Forward", "forward"]


class Forward(NamedTuple):
    sol: Solution
    fac: Factor
    residual: Array  # A x - b


def _sigma_ratio(A: Array, E: Array, nE: Array, nS: Array, fac: Factor, mu: Array, k_max: int,
                 iters: int) -> Array:
    """Estimated ``sigma_min / sigma_max`` of ``A_E`` (1 when ``E`` is empty, 0 when ``A_E``
    cannot have full column rank or its factor broke down)."""
    n, dt = A.shape[0], A.dtype
    efac = lax.cond((nE == nS) | (nE > k_max), lambda _: fac, lambda _: factor(A, E, mu, k_max), None)
    finite_fac = jnp.all(jnp.isfinite(efac.chol))
    safe = Factor(jnp.where(finite_fac, efac.chol, jnp.eye(k_max, dtype=dt)), efac.idx, efac.valid)
    lmin, lmax = extreme_eigs(safe, iters)
    ratio = jnp.sqrt(jnp.maximum(lmin, 0.0) / jnp.maximum(lmax, jnp.finfo(dt).tiny))
    ratio = jnp.where(finite_fac, ratio, 0.0)
    ratio = jnp.where(nE == 0, 1.0, ratio)
    return jnp.where(nE > jnp.minimum(k_max, n), 0.0, ratio)


@functools.partial(jax.jit, static_argnames=("cfg", "enet"))
def forward(
    A: Array, b: Array, lam: Array, mu: Array, x0: Array, lipschitz: Array | None,
    cfg: LassoConfig, enet: bool,
) -> Forward:
    """Solve, then factor the support and check Prop. 5 on the equicorrelation set.

    ``result``: ``nonfinite``, else ``max_steps_reached`` (``kkt_violation > tol``), else
    ``size_limit_exceeded`` (``|S| > max_support``), else (Lasso) ``rank_deficient``
    (``sigma_ratio <= rank_rtol``).  ``stats``: ``num_steps`` (FISTA iterations),
    ``num_newton`` (restricted Newton trials), ``kkt_violation = dist_inf(0, dF(x)) / lam``,
    ``support_size`` ``|S|``, ``equicorrelation_size`` ``|E|``, ``sigma_ratio``.
    """
    dt = A.dtype
    tol, k_max, ws, etol, rtol = resolve(cfg, A, enet)

    if ws == 0:
        L = (spectral_sq(A, cfg.power_iterations) if lipschitz is None else lipschitz) + mu
        x, done, steps, trials, newton_ok, fac = dense_solve(
            A, b, lam, mu, x0, L, tol, k_max, cfg, jnp.asarray(cfg.max_steps, jnp.int32)
        )
        c = None
    else:
        x, done, steps, trials, newton_ok, fac, c = working_set_solve(
            A, b, lam, mu, x0, lipschitz, tol, k_max, ws, cfg
        )
        # c was computed at x by the last round when it certified x; otherwise recompute.
        c = lax.cond(done, lambda _: c, lambda _: A.T @ (b - A @ x) - mu * x, None)

    # Final factor of the support when the last point is not a Newton point.
    S = x != 0
    nS = jnp.sum(S)

    def refactor(_):
        return factor(A, S & (nS <= k_max), mu, k_max)

    fac = lax.cond(newton_ok, lambda _: fac, refactor, None)
    residual = A @ x - b
    if c is None:
        c = -(A.T @ residual) - mu * x
    violation = kkt(c, x, lam)
    finite = jnp.all(jnp.isfinite(x)) & jnp.isfinite(violation)
    converged = done & (violation <= tol)
    result = failures.result_where(~finite, RESULTS.nonfinite)
    result = failures.result_where(~converged, RESULTS.max_steps_reached, result)
    result = failures.result_where(nS > k_max, RESULTS.size_limit_exceeded, result)

    # Equicorrelation set and the rank condition of Prop. 5 (Lasso only; the elastic net is
    # strongly convex).  Only meaningful at a solution: an unconverged point reports its own
    # failure first.
    E = (jnp.abs(c) >= lam * (1.0 - etol)) | S
    nE = jnp.sum(E)
    if enet:
        ratio = jnp.ones((), dt)
    else:
        ratio = _sigma_ratio(A, E, nE, nS, fac, mu, k_max, cfg.power_iterations)
        result = failures.result_where(ratio <= rtol, RESULTS.rank_deficient, result)
    stats = {
        "num_steps": steps,
        "num_newton": trials,
        "kkt_violation": violation,
        "support_size": nS.astype(jnp.int32),
        "equicorrelation_size": nE.astype(jnp.int32),
        "sigma_ratio": ratio,
    }
    return Forward(Solution(x, result, stats), fac, residual)
