"""The interpolated process (Benaim 1999; docs/theory.md §5).

    w(t) = w_i + (t - tau_i) / (tau_{i+1} - tau_i) * (w_{i+1} - w_i),   t in [tau_i, tau_{i+1}],

with ``tau`` the recorded interpolation times ``tau_k = sum_{j<k} scale * alpha_j``.
With ``record_every > 1`` this is the piecewise-linear path through the
*recorded* points, a coarser path than the one through every iterate (they
differ by at most the excursion of the iterates between two records).  Outside
``[tau_0, tau_last]`` the path is extended by its end values.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from nsopt.algorithms.run import Trajectory
from nsopt.flow._util import batch_shape, check_trajectory, map_leading

PyTree = Any

__all__ = ["interpolate", "interpolate_path"]


def interpolate_path(tau: Array, x: PyTree, t: Array) -> PyTree:
    """Piecewise-linear ``x(t)`` through ``(tau[i], x[i])``; ``tau`` of shape ``(R,)``, nondecreasing.

    ``x`` is a pytree whose leaves have the leading record axis ``R``; ``t``
    has any shape, and the result's leaves have shape ``t.shape + event``.
    Exact at the nodes: ``interpolate_path(tau, x, tau) == x``.  Repeated
    ``tau`` values (zero-length segments) take the later node.
    """
    tau = jnp.asarray(tau)
    t = jnp.asarray(t, jnp.result_type(tau, float))
    n = tau.shape[0]
    i = jnp.clip(jnp.searchsorted(tau, t, side="right") - 1, 0, n - 2)
    t0, t1 = tau[i], tau[i + 1]
    width = t1 - t0
    safe = jnp.where(width > 0, width, 1)
    lam = jnp.clip(jnp.where(width > 0, (t - t0) / safe, 1), 0, 1)

    def leaf(a: Array) -> Array:
        a0, a1 = a[i], a[i + 1]
        lm = jnp.reshape(lam, lam.shape + (1,) * (a.ndim - 1)).astype(a.dtype)
        return (1 - lm) * a0 + lm * a1

    return jax.tree.map(leaf, x)


def interpolate(traj: Trajectory, t: Array | float) -> PyTree:
    """The interpolated process ``w(t)`` of ``traj`` (piecewise linear in ``tau``), vectorized over ``t``.

    ``traj`` is one run (``tau`` of shape ``(R,)``) or a batch (``tau`` of
    shape ``batch + (R,)``, e.g. ``(seeds, inits, scales, R)`` from
    ``run_batch``); ``t`` (any shape) is shared by the batch.  Leaves of the
    result have shape ``batch + t.shape + event``.  Constant outside
    ``[tau_0, tau_last]``.  For heavy ball's momentum (or any recorded
    quantity) use ``interpolate_path(traj.tau, traj.y, t)`` on one run.
    """
    check_trajectory(traj, "interpolate")
    return _interpolate(traj.tau, traj.w, jnp.asarray(t), len(batch_shape(traj)))


@eqx.filter_jit
def _interpolate(tau, w, t, num_batch):
    return map_leading(lambda tau_, w_: interpolate_path(tau_, w_, t), num_batch)(tau, w)
