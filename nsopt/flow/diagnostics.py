"""Diagnostics along iterates and flows (docs/theory.md §5).

- :func:`objective_curve`, :func:`lyapunov`: ``F(w_k)`` and the heavy-ball
  Lyapunov function ``E(w, y) = F(w) + r/2 ||y||^2`` (Le 2023) at recorded points.
- :func:`min_norm_element`, :func:`criticality`: distance of ``0`` to the
  convex hull of field elements sampled in a ball (gradient sampling, Burke-
  Lewis-Overton 2005): small near Clarke-critical points, bounded away from
  ``0`` near *artificial* critical points where the chosen conservative field
  vanishes but Clarke's subdifferential does not contain ``0``.
- :func:`occupation`: alpha-weighted fraction of time spent near given points
  (essential accumulation points: a positive fraction in the limit).
- :func:`check_schedule`: warn when a step schedule is not in ``l^2 \\ l^1``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array
from jax.flatten_util import ravel_pytree

from nsopt.algorithms.devices import shard_leading
from nsopt.algorithms.run import Trajectory
from nsopt.flow._util import (
    batch_shape,
    check_trajectory,
    flatten_events,
    map_leading,
    static_int,
    tree_sq_norm,
)
from nsopt.schedules import ScheduleLike, TheoryWarning, as_schedule, in_l2_minus_l1

PyTree = Any
Field = Callable[[PyTree], PyTree]
Objective = Callable[[PyTree], Array]

__all__ = [
    "MinNorm",
    "check_schedule",
    "criticality",
    "energy",
    "lyapunov",
    "min_norm_element",
    "objective_curve",
    "occupation",
    "project_simplex",
]


# ----------------------------------------------------------------------------- curves


def objective_curve(traj: Trajectory, F: Objective, *, shard: bool | None = None) -> Array:
    """``F(w_i)`` at every recorded point: shape ``batch + (R,)`` (vmapped, one compiled call).

    With several JAX devices the runs (first batch axis) are split over them
    (:func:`nsopt.algorithms.devices.shard_leading`; ``shard`` as there)."""
    check_trajectory(traj, "objective_curve")
    w = shard_leading(traj.w, shard) if traj.tau.ndim > 1 else traj.w
    return _map_F(F, w, traj.tau.ndim)


@eqx.filter_jit
def _map_F(F, w, num_lead):
    return map_leading(F, num_lead)(w)


def energy(F: Objective, w: PyTree, y: PyTree, r: float | Array) -> Array:
    """``E(w, y) = F(w) + r/2 ||y||^2``: decreases along ``w' = -r y, y' = field(w) - y``."""
    return F(w) + 0.5 * r * tree_sq_norm(y, 0)


def lyapunov(traj: Trajectory, F: Objective, r: float | Array | None = None, *,
             shard: bool | None = None) -> Array:
    """Lyapunov curve at recorded points, shape ``batch + (R,)``.

    Heavy ball (``traj.y`` set): ``E = F(w) + r/2 ||y||^2`` with ``r`` the
    coupling of ``w' = -r y, y' = field(w) - y`` (required; a number or an
    array broadcastable to the batch shape, e.g. ``heavy_ball_r(alg, scales)``).
    SGD (``traj.y is None``): the gradient flow's Lyapunov function ``F(w)``.
    With several JAX devices the runs are split over them (``shard``: :func:`objective_curve`).
    """
    check_trajectory(traj, "lyapunov")
    f = objective_curve(traj, F, shard=shard)
    if traj.y is None:
        if r is not None:
            raise ValueError(
                f"lyapunov: r={r!r} was given but traj.y is None (SGD); its Lyapunov function is F"
            )
        return f
    if r is None and getattr(traj, "r", None) is not None:
        r = jnp.asarray(traj.r)[..., -1]  # the coupling recorded by nsopt.heavy_ball
    if r is None:
        raise ValueError(
            "lyapunov: traj.y is set (heavy ball), so E = F(w) + r/2 ||y||^2 needs r=; for "
            "nsopt.heavy_ball(nsopt.proportional(c, alpha), scale=s) use r = s / c "
            "(nsopt.flow.heavy_ball_r)"
        )
    batch = batch_shape(traj)
    try:
        r = jnp.broadcast_to(jnp.asarray(r, f.dtype), batch)
    except ValueError:
        raise ValueError(
            f"lyapunov: r of shape {jnp.shape(r)} does not broadcast to the batch shape {batch}"
        ) from None
    y, r = (traj.y, r) if traj.tau.ndim == 1 else shard_leading((traj.y, r), shard)
    return f + 0.5 * r[..., None] * tree_sq_norm(y, traj.tau.ndim)


# ----------------------------------------------------------------------------- criticality


def project_simplex(v: Array) -> Array:
    """Euclidean projection of ``v`` (last axis) onto the simplex ``{l >= 0, sum l = 1}``.

    Sort-based (Held-Wolfe-Crowder 1974; Duchi et al. 2008): ``max(v - theta, 0)``.
    """
    m = v.shape[-1]
    u = jnp.flip(jnp.sort(v, axis=-1), axis=-1)
    css = jnp.cumsum(u, axis=-1) - 1
    idx = jnp.arange(1, m + 1, dtype=v.dtype)
    cond = u - css / idx > 0
    rho = jnp.sum(cond, axis=-1, keepdims=True)
    theta = jnp.take_along_axis(css, rho - 1, axis=-1) / rho.astype(v.dtype)
    return jnp.maximum(v - theta, 0)


class MinNorm(eqx.Module):
    """Result of :func:`min_norm_element`.

    Attributes:
        element: ``x = sum_i l_i V_i``, the (approximate) min-norm point of ``conv(V)``.
        weights: ``l`` on the simplex.
        norm: ``||x||``, the distance of ``0`` to ``conv(V)`` (up to the gap).
        gap: Frank-Wolfe certificate ``||x||^2 - min_i <V_i, x> >= ||x||^2 - dist^2``,
            so ``dist >= sqrt(max(norm^2 - gap, 0))``.
    """

    element: Array
    weights: Array
    norm: Array
    gap: Array

    @property
    def lower_bound(self) -> Array:
        """A certified lower bound on the distance of ``0`` to the hull."""
        return jnp.sqrt(jnp.maximum(self.norm**2 - self.gap, 0))


def min_norm_element(V: Array, num_iters: int = 500) -> MinNorm:
    """Min-norm point of ``conv{V_1, .., V_m}`` (rows of ``V``, shape ``(m, D)``).

    Solves the QP ``min_{l in simplex} 1/2 ||V^T l||^2`` by accelerated
    projected gradient (FISTA, step ``1 / lambda_max(V V^T)``) with gradient
    restarts (O'Donoghue-Candes 2015) for ``num_iters`` (static) iterations;
    ``gap`` certifies the result.  Traceable and vmappable.
    """
    num_iters = static_int(num_iters, "num_iters", "min_norm_element")
    V = jnp.asarray(V, jnp.result_type(V, float))
    if V.ndim != 2 or V.shape[0] < 1:
        raise ValueError(f"min_norm_element: V must have shape (m, D) with m >= 1, got {V.shape}")
    return _min_norm(V, num_iters)


@eqx.filter_jit
def _min_norm(V: Array, num_iters: int) -> MinNorm:
    m = V.shape[0]
    G = V @ V.T
    L = jnp.linalg.eigvalsh(G)[-1]
    step = jnp.where(L > 0, 1 / jnp.where(L > 0, L, 1), 0)
    lam0 = jnp.full((m,), 1 / m, V.dtype)

    def body(_, carry):
        lam, yk, t = carry
        new = project_simplex(yk - step * (G @ yk))
        restart = jnp.dot(yk - new, new - lam) > 0
        t_new = (1 + jnp.sqrt(1 + 4 * t**2)) / 2
        y_new = new + ((t - 1) / t_new) * (new - lam)
        return new, jnp.where(restart, new, y_new), jnp.where(restart, 1.0, t_new)

    lam, _, _ = jax.lax.fori_loop(0, num_iters, body, (lam0, lam0, jnp.asarray(1.0, V.dtype)))
    x = lam @ V
    sq = jnp.dot(x, x)
    gap = jnp.maximum(sq - jnp.min(V @ x), 0)
    return MinNorm(element=x, weights=lam, norm=jnp.sqrt(sq), gap=gap)


def criticality(
    field: Field,
    w: PyTree,
    key: Array,
    radius: float | Array,
    num_samples: int = 32,
    *,
    num_iters: int = 500,
) -> MinNorm:
    """Gradient-sampling criticality: ``dist(0, conv{field(w + radius u_i)})``, ``u_i`` uniform in the ball.

    ``num_samples`` points are drawn uniformly in the ball of radius
    ``radius`` around ``w`` (the centre itself is *not* used: at an artificial
    critical point the chosen field vanishes at ``w`` only on a null set).
    The hull approximates Clarke's ``radius``-enlarged subdifferential, so the
    distance tends to ``0`` as ``radius -> 0`` exactly at Clarke-critical
    points.  ``radius`` may be traced; ``num_samples`` is static.
    ``MinNorm.element`` is flat (``ravel_pytree`` order of ``w``).
    """
    num_samples = static_int(num_samples, "num_samples", "criticality")
    return _criticality(field, w, key, jnp.asarray(radius), num_samples, num_iters)


@eqx.filter_jit
def _criticality(field, w, key, radius, num_samples, num_iters):
    flat, unravel = ravel_pytree(w)
    D = flat.shape[0]
    k1, k2 = jax.random.split(key)
    u = jax.random.normal(k1, (num_samples, D), flat.dtype)
    u = u / jnp.linalg.norm(u, axis=-1, keepdims=True)
    rad = radius.astype(flat.dtype) * jax.random.uniform(k2, (num_samples, 1), flat.dtype) ** (1 / D)
    pts = flat + rad * u
    V = jax.vmap(lambda p: ravel_pytree(field(unravel(p)))[0])(pts)
    return _min_norm(V, num_iters)


# ----------------------------------------------------------------------------- occupation


def occupation(traj: Trajectory, centers: Array, radius: float | Array, t0: float | Array = 0.0) -> Array:
    """Alpha-weighted fraction of ``[t0, tau_last]`` spent within ``radius`` of each centre.

    ``sum_i (tau_{i+1} - tau_i) 1{||w_i - c|| < radius, tau_i >= t0} / sum_i (tau_{i+1} - tau_i) 1{tau_i >= t0}``
    over recorded points (left Riemann sum of the interpolated process).
    Essential accumulation points keep a positive fraction as ``t0 -> inf``
    (Benaim 1999).  ``centers`` has shape ``(C, D)`` with ``D`` the flattened
    dimension of ``w``; the result has shape ``batch + (C,)`` (NaN when no
    record lies after ``t0``).
    """
    check_trajectory(traj, "occupation")
    centers = jnp.asarray(centers)
    nl = traj.tau.ndim
    W = flatten_events(traj.w, nl)
    if centers.ndim != 2 or centers.shape[-1] != W.shape[-1]:
        raise ValueError(
            f"occupation: centers must have shape (C, {W.shape[-1]}) (flattened w), got {centers.shape}"
        )
    tau = jnp.asarray(traj.tau, W.dtype)
    dtau = jnp.diff(tau, axis=-1)
    wts = jnp.where(tau[..., :-1] >= t0, dtau, 0)
    dist = jnp.linalg.norm(W[..., :-1, None, :] - centers.astype(W.dtype), axis=-1)
    inside = (dist < radius).astype(W.dtype)
    total = jnp.sum(wts, axis=-1)[..., None]
    num = jnp.sum(wts[..., None] * inside, axis=-2)
    return jnp.where(total > 0, num / jnp.where(total > 0, total, 1), jnp.nan)


# ----------------------------------------------------------------------------- schedules


def check_schedule(schedule: ScheduleLike, name: str = "alpha", num_terms: int = 10**6) -> bool:
    """``True`` when ``schedule`` is in ``l^2 \\ l^1`` (``sum alpha = inf``, ``sum alpha^2 < inf``).

    Otherwise warns with :class:`nsopt.schedules.TheoryWarning` (the APT and
    convergence results of docs/theory.md §5 do not apply: a constant step, for
    instance, leaves an APT distance of order ``sqrt(alpha)``) and returns ``False``.
    """
    sched = as_schedule(schedule, name)
    ok = bool(in_l2_minus_l1(sched, num_terms))
    if not ok:
        warnings.warn(
            f"schedule {name}={schedule!r} is not in l^2 \\ l^1 (need sum {name}_k = inf and "
            f"sum {name}_k^2 < inf, e.g. a / (k + b)^p with p in (1/2, 1]): the iterates need not "
            "be an asymptotic pseudo-trajectory of the flow",
            TheoryWarning,
            stacklevel=2,
        )
    return ok
