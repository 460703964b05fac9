"""The interpolated process (Benaim 1999; docs/theory.md §5).

    w(t) = w_i + (t - tau_i) / (tau_{i+1} - tau_i) * (w_{i+1} - w_i),   t in [tau_i, tau_{i+1}],

with ``tau`` the recorded interpolation times ``tau_k = sum_{j<k} scale * alpha_j``.
With ``record_every > 1`` this is the piecewise-linear path through the
*recorded* points, a coarser path than the one through every iterate (they
differ by at most the excursion of the iterates between two records).  Outside
``[tau_0, tau_last]`` the path is extended by its end values.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt.algorithms.run import Trajectory
from nsopt.flow._util import batch_shape, check_trajectory, map_leading

PyTree = Any

__all__ = [
    "advance_count",
    "interpolate",
    "interpolate_at",
    "interpolate_path",
    "records_per_step",
    "walk_bound",
]


def interpolate_path(tau: Array, x: PyTree, t: Array) -> PyTree:
    """Piecewise-linear ``x(t)`` through ``(tau[i], x[i])``; ``tau`` of shape ``(R,)``, nondecreasing.

    ``x`` is a pytree whose leaves have the leading record axis ``R``; ``t``
    has any shape, and the result's leaves have shape ``t.shape + event``.
    Exact at the nodes: ``interpolate_path(tau, x, tau) == x``.  Repeated
    ``tau`` values (zero-length segments) take the later node.
    """
    tau = jnp.asarray(tau)
    t = jnp.asarray(t, jnp.result_type(tau, float))
    return interpolate_at(tau, x, t, jnp.searchsorted(tau, t, side="right"))


def interpolate_at(tau: Array, x: PyTree, t: Array, count: Array) -> PyTree:
    """:func:`interpolate_path` given ``count = #{i : tau[i] <= t}`` (``searchsorted(tau, t, 'right')``).

    Lets a caller that knows the count (e.g. :func:`advance_count`) skip the binary search; the
    numbers are those of :func:`interpolate_path`.
    """
    n = tau.shape[0]
    i = jnp.clip(count - 1, 0, n - 2)
    t0, t1 = tau[i], tau[i + 1]
    width = t1 - t0
    safe = jnp.where(width > 0, width, 1)
    lam = jnp.clip(jnp.where(width > 0, (t - t0) / safe, 1), 0, 1)

    def leaf(a: Array) -> Array:
        a0, a1 = a[i], a[i + 1]
        lm = jnp.reshape(lam, lam.shape + (1,) * (a.ndim - 1)).astype(a.dtype)
        return (1 - lm) * a0 + lm * a1

    return jax.tree.map(leaf, x)


def advance_count(tau: Array, count: Array, t: Array, most: int) -> Array:
    """``#{i : tau[i] <= t}`` from ``count``, the same count at an earlier time ``t' <= t``.

    A merged walk along increasing query times instead of a binary search over all of ``tau``:
    exact when at most ``most`` records lie in ``(t', t]`` (:func:`records_per_step`; ``tau``
    nondecreasing, NaN records count as ``+inf`` as in ``jnp.searchsorted``).  A branchless
    bisection of the window ``[count, count + most]``: ``bit_length(most)`` gathers, unrolled,
    against ``log2 R`` in a loop for ``searchsorted``.
    """
    n = tau.shape[0]
    for p in reversed(range(int(most).bit_length())):
        cand = count + (1 << p)
        ok = (cand <= n) & (tau[jnp.clip(cand - 1, 0, n - 1)] <= t)
        count = jnp.where(ok, cand, count)
    return count


def walk_bound(tau: Any, h: float) -> int | None:
    """The ``most`` of :func:`advance_count` for query times ``h`` apart, rounded up to ``2^p - 1``
    (same program for the same walk length), or ``None`` (binary search) when ``tau`` is traced or
    the walk would not take fewer gathers than the search."""
    try:
        tau = np.asarray(tau, np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None
    levels = _fitting_records(tau, h, exact=False).bit_length()  # the walk covers 2^levels - 1 records anyway
    return (1 << levels) - 1 if levels < math.log2(max(tau.shape[-1], 2)) else None


def records_per_step(tau: Any, h: float) -> int:
    """Largest number of records of a concrete ``tau`` (``batch + (R,)``) in any ``(a, a + h]``.

    A slack of a few ulps (float32) of ``tau`` covers the rounding of the query times.  ``(a, a + h]``
    holds at most the records in ``[tau_i, tau_i + h]`` for its first record ``tau_i``, and ``m``
    records fit iff ``tau_{i+m-1} <= tau_i + h`` for some ``i`` (monotone in ``m``): a doubling and
    bisection over ``m``, each probe one vectorized comparison of all rows (non-finite records
    are dropped, as if absent).
    """
    return _fitting_records(tau, h, exact=True)


def _fitting_records(tau: Any, h: float, exact: bool) -> int:
    """:func:`records_per_step`, or with ``exact=False`` only a number of the same ``bit_length``
    (the largest power of two that fits: no bisection)."""
    tau = np.asarray(tau, np.float64)
    flat = tau.reshape(-1, tau.shape[-1])
    if np.isfinite(flat).all():  # (the usual case: no full-size copies)
        top = max(-float(flat.min()), float(flat.max())) if flat.size else 0.0
    else:  # finite records first, in their order (rows are nondecreasing); NaN compares false
        fin = np.isfinite(flat)
        top = float(np.max(np.abs(flat[fin]))) if fin.any() else 0.0
        flat = np.sort(np.where(fin, flat, np.nan), axis=-1)
    reach = h * (1 + 1e-6) + 16 * np.finfo(np.float32).eps * top
    n, ends = flat.shape[-1], flat + reach

    def fits(m: int) -> bool:
        return m <= n and bool(np.any(flat[:, m - 1:] <= ends[:, :n - m + 1]))

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, 2 * hi
    while exact and hi - lo > 1:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


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
