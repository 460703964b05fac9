"""Public functions of :mod:`nsopt.layers.lasso`: the differentiable maps :func:`solution`,
:func:`enet_solution` (arrays) and the diagnostic solves :func:`solve`, :func:`enet_solve`
(:class:`~nsopt.failures.Solution`)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array, lax
from jax.typing import ArrayLike

from nsopt import failures
from nsopt.failures import OnFailure, Solution
from nsopt.layers.lasso.config import LassoConfig
from nsopt.layers.lasso.derivative import enet_map, handle, lasso_map
from nsopt.layers.lasso.forward import forward

__all__ = ["enet_solution", "enet_solve", "lambda_max", "solution", "solve"]


def lambda_max(A: ArrayLike, b: ArrayLike) -> Array:
    """``||A^T b||_inf``: the Lasso solution is 0 iff ``e^theta >= lambda_max``."""
    A = jnp.asarray(A)
    return jnp.max(jnp.abs(A.T @ jnp.asarray(b, A.dtype)))


def _prepare(A, b, x0, lipschitz):
    A = jnp.asarray(A)
    if not jnp.issubdtype(A.dtype, jnp.floating):
        A = A.astype(jnp.result_type(float))
    if A.ndim != 2:
        raise ValueError(f"A must be a matrix (n, p), got shape {A.shape}")
    b = jnp.asarray(b, A.dtype)
    if b.shape != (A.shape[0],):
        raise ValueError(f"b must have shape ({A.shape[0]},) to match A {A.shape}, got {b.shape}")
    p = A.shape[1]
    x0 = jnp.zeros(p, A.dtype) if x0 is None else lax.stop_gradient(jnp.asarray(x0, A.dtype))
    if x0.shape != (p,):
        raise ValueError(f"x0 must have shape ({p},), got {x0.shape}")
    if lipschitz is not None:
        lipschitz = lax.stop_gradient(jnp.asarray(lipschitz, A.dtype))
    return A, b, x0, lipschitz


def _lasso_theta(theta, dtype):
    theta = jnp.asarray(theta, dtype)
    if theta.shape != ():
        raise ValueError(f"theta must be a scalar (vmap for several), got shape {theta.shape}")
    return theta


def _enet_theta(theta, dtype):
    theta = jnp.asarray(theta, dtype)
    if theta.shape != (2,):
        raise ValueError(
            f"elastic-net theta must have shape (2,) = (log l1 weight, log l2 weight), "
            f"got shape {theta.shape}"
        )
    return jnp.exp(theta[0]), jnp.exp(theta[1])


def solve(
    A: ArrayLike, b: ArrayLike, theta: ArrayLike, *, x0: ArrayLike | None = None,
    lipschitz: ArrayLike | None = None, config: LassoConfig = LassoConfig(),
    on_failure: OnFailure = "raise",
) -> Solution:
    """Solve the Lasso ``1/2||Ax - b||^2 + e^theta ||x||_1`` with diagnostics (not differentiable).

    Returns a :class:`~nsopt.failures.Solution`: ``value`` the solution ``x``, ``result``
    (``max_steps_reached``, ``size_limit_exceeded``, ``nonfinite``, ``rank_deficient``), and
    ``stats`` (``num_steps``, ``num_newton``, ``kkt_violation``, ``support_size``,
    ``equicorrelation_size``, ``sigma_ratio``); ``on_failure`` as in :mod:`nsopt.failures`.
    ``x0`` warm-starts; ``lipschitz`` (an estimate of ``||A||_2^2``, the initial FISTA
    constant, raised by backtracking if too small) skips the power method.
    """
    failures.check_on_failure(on_failure)
    A, b, x0, lipschitz = _prepare(A, b, x0, lipschitz)
    theta = _lasso_theta(theta, A.dtype)
    A, b, theta = (lax.stop_gradient(v) for v in (A, b, theta))
    sol = forward(A, b, jnp.exp(theta), jnp.zeros((), A.dtype), x0, lipschitz, config, False).sol
    return handle(sol, on_failure, False)


def solution(
    A: ArrayLike, b: ArrayLike, theta: ArrayLike, *, x0: ArrayLike | None = None,
    lipschitz: ArrayLike | None = None, config: LassoConfig = LassoConfig(),
    on_failure: OnFailure = "raise",
) -> Array:
    """``x^(theta) = argmin_x 1/2 ||A x - b||^2 + e^theta ||x||_1``, differentiable in ``theta, A, b``.

    Derivative: ``dx_S = -(A_S^T A_S)^{-1} (e^theta sign(x_S) dtheta + dA_S^T r +
    A_S^T (dA x - db))``, zero off the support (arXiv 2106.04350, Prop. 5).
    ``on_failure`` (:mod:`nsopt.failures`): what to do when the solver did not certify
    ``kkt_violation <= tol`` or when ``A_E^T A_E`` is singular (``RESULTS.rank_deficient``:
    Prop. 5 fails); ``"raise"`` works under ``jit`` (``eqx.error_if``), ``"warn"`` via a host
    callback.  Returns an array (read the result code with :func:`solve`).  ``x0``
    warm-starts (not differentiated).  ``theta`` is a scalar; ``vmap`` for several.
    """
    failures.check_on_failure(on_failure)
    A, b, x0, lipschitz = _prepare(A, b, x0, lipschitz)
    theta = _lasso_theta(theta, A.dtype)
    return lasso_map(A, b, jnp.exp(theta), jnp.zeros((), A.dtype), x0, lipschitz, config,
                     on_failure)


def enet_solve(
    A: ArrayLike, b: ArrayLike, theta: ArrayLike, *, x0: ArrayLike | None = None,
    lipschitz: ArrayLike | None = None, config: LassoConfig = LassoConfig(),
    on_failure: OnFailure = "raise",
) -> Solution:
    """Solve ``1/2||Ax - b||^2 + e^theta[0] ||x||_1 + e^theta[1]/2 ||x||^2`` (a
    :class:`~nsopt.failures.Solution`, as :func:`solve`; never ``rank_deficient``)."""
    failures.check_on_failure(on_failure)
    A, b, x0, lipschitz = _prepare(A, b, x0, lipschitz)
    lam, mu = _enet_theta(lax.stop_gradient(jnp.asarray(theta)), A.dtype)
    A, b = lax.stop_gradient(A), lax.stop_gradient(b)
    return handle(forward(A, b, lam, mu, x0, lipschitz, config, True).sol, on_failure, True)


def enet_solution(
    A: ArrayLike, b: ArrayLike, theta: ArrayLike, *, x0: ArrayLike | None = None,
    lipschitz: ArrayLike | None = None, config: LassoConfig = LassoConfig(),
    on_failure: OnFailure = "raise",
) -> Array:
    """Elastic net ``argmin 1/2||Ax - b||^2 + e^theta[0] ||x||_1 + e^theta[1]/2 ||x||^2``.

    Differentiable in ``theta`` (shape ``(2,)``), ``A`` and ``b``:
    ``(A_S^T A_S + mu I) dx_S = -(dlam sign(x_S) + dmu x_S + dA_S^T r + A_S^T(dA x - db))``.
    Strongly convex, so always unique and invertible (never ``rank_deficient``).  The support
    may exceed ``n``: ``LassoConfig.max_support`` defaults to ``p`` when ``p <= 4096``.
    """
    failures.check_on_failure(on_failure)
    A, b, x0, lipschitz = _prepare(A, b, x0, lipschitz)
    lam, mu = _enet_theta(theta, A.dtype)
    return enet_map(A, b, lam, mu, x0, lipschitz, config, on_failure)
