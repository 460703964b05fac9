"""One call per algorithm: APT distances with a certified bound, an error estimate, Lyapunov curves.

:func:`diagnose` computes, for start times ``t_j`` on the flow grid ``q_m = tau_0 + m h``,

    d_T(t_j) = sup_{s in [0, T]} ||x(t_j + s) - g_j(s)||,     g_j(0) = x(t_j),

with ``x`` the interpolated process (``w``, or ``(w, y)`` for heavy ball on the
clock ``tau``, see :mod:`nsopt.flow.apt`) and ``g_j`` the fixed-step flow, and
returns three numbers per run and start time (:class:`FlowReport`):

- ``grid_distance``: the sup over the grid points ``s_i = i h`` only (what
  :func:`nsopt.flow.apt_distance` returns; it can miss the sup between grid points).
- ``distance``: a *certified upper bound* of the sup over all ``s in [0, T]`` for
  the discretized flow ``g_h`` extended piecewise linearly between its grid points.
  ``e(s) = x(t_j + s) - g_h(s)`` is piecewise linear with breakpoints at the grid
  points and at the record times, so ``||e||`` (convex on each piece) peaks at a
  breakpoint: the bound is *exact* (the sup itself) when an interval ``(s_i, s_{i+1})``
  holds at most ``K`` records (``K`` chosen from the data, at most ``MAX_RECORDS``);
  with more, the interval gets ``max(||e(s_i)||, ||e(s_{i+1})||) + h L`` with ``L``
  the largest slope of the interpolated process on the run (``e`` minus its chord
  is ``2 L``-Lipschitz and vanishes at both ends).
- ``error``: an estimate of ``sup_s ||g_h(s) - g(s)||`` (``g`` the exact flow, ``g_h``
  piecewise linear), hence of ``|d_h - d|``: on each pair of steps
  ``max(||g_h - g_{2h}||`` at its two ends ``) + ||g_{2p} - 2 g_{2p+1} + g_{2p+2}|| / 8``.
  The first term is step doubling (Richardson): for a scheme of order ``p`` it is
  ``(2^p - 1)`` times the leading error term of ``g_h`` at the grid points
  (Hairer-Norsett-Wanner, Solving ODEs I, §II.4); the second is the chord error
  ``h^2 / 8 ||g''||`` between grid points.  It bounds the error in the asymptotic
  regime; across a discontinuity of ``field`` (chattering on a sliding mode) the order
  drops to 1 and it measures the chattering band rather than bounds it.

``resolved = error <= rtol * distance``: the number is a distance of the iterates
to the flow, not of the flow to its discretization.  Windows tile the horizon by
default (``num_times = None``: start times every ``T / 2``), instead of many
overlapping windows; the flow stage costs ``runs x num_times x (n + n/2) x stages``
field evaluations with ``n = T / dt`` (the ``+ n/2`` is the coarse companion).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt.algorithms.devices import is_split, per_device, shard_leading
from nsopt.algorithms.run import Trajectory
from nsopt.flow._util import batch_shape, check_trajectory, concrete_positive, map_leading, tree_sq_norm
from nsopt.flow.apt import flow_state
from nsopt.flow.diagnostics import lyapunov
from nsopt.flow.integrate import Scheme, as_method, gradient_vector_field, heavy_ball_vector_field

PyTree = Any
Field = Callable[[PyTree], PyTree]
Progress = Callable[[int, int], None]

__all__ = ["DEFAULT_METHOD", "DEFAULT_STEPS", "MAX_RECORDS", "FlowReport", "diagnose"]

#: default scheme of :func:`diagnose` (see ``results/benchmarks_flow.md`` for the choice)
DEFAULT_METHOD = "heun"
#: default flow steps per window: ``dt = T / DEFAULT_STEPS``
DEFAULT_STEPS = 16
#: records per grid interval handled exactly (beyond: the Lipschitz bound)
MAX_RECORDS = 16


class FlowReport(eqx.Module):
    """Result of :func:`diagnose`; array fields have shape ``batch + (J,)`` unless stated.

    Attributes:
        times: start times ``t_j`` (on the flow grid ``tau_0 + m h``).
        distance: certified upper bound of ``sup_{s <= T} ||x(t_j + s) - g_h(s)||``.
        grid_distance: the same sup over the grid points ``s = i h`` only (``<= distance``).
        error: step-doubling estimate of ``sup_s ||g_h(s) - g(s)||`` (the flow's own error).
        resolved: ``error <= rtol * distance``.
        lyapunov: the Lyapunov curve at recorded points, ``batch + (R,)`` (``None`` without ``F``).
        lyapunov_tau: the recorded ``tau`` for it.
        T, dt, method, rtol: the settings (``dt = T / n``, ``n`` even).
        compile_s, flow_s, lyapunov_s: wall-clock seconds of each stage.
    """

    times: Array
    distance: Array
    grid_distance: Array
    error: Array
    resolved: Array
    lyapunov: Array | None
    lyapunov_tau: Array | None
    T: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    method: str = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    compile_s: float = eqx.field(static=True)
    flow_s: float = eqx.field(static=True)
    lyapunov_s: float = eqx.field(static=True)

    def summary(self, ok: Array | None = None) -> dict[str, Any]:
        """Medians over runs (those with ``ok``, e.g. not diverged) at the first and last start time."""
        d = np.asarray(self.distance).reshape(-1, self.distance.shape[-1])
        e = np.asarray(self.error).reshape(d.shape)
        res = np.asarray(self.resolved).reshape(d.shape)
        keep = np.ones(d.shape[0], bool) if ok is None else np.asarray(ok).reshape(-1)
        d, e, res = d[keep], e[keep], res[keep]
        med = (lambda a: float(np.median(a))) if len(d) else (lambda a: None)
        return {
            "T": self.T, "dt": self.dt, "method": self.method, "runs": int(len(d)),
            "apt_first_median": med(d[:, 0]) if len(d) else None,
            "apt_last_median": med(d[:, -1]) if len(d) else None,
            "error_first_median": med(e[:, 0]) if len(d) else None,
            "error_last_median": med(e[:, -1]) if len(d) else None,
            "resolved_fraction": float(res.mean()) if len(d) else None,
            "seconds": self.compile_s + self.flow_s + self.lyapunov_s,
        }


def _tables(tau: Array, h: Array, num_grid: int):
    """Grid ``q_m = tau_0 + m h`` (``m <= num_grid``), the last record ``<= q_m`` and the weights of ``x(q_m)``."""
    n = tau.shape[0]
    q = tau[0] + h * jnp.arange(num_grid + 1, dtype=tau.dtype)
    last = jnp.searchsorted(tau, q, side="right") - 1
    i = jnp.clip(last, 0, n - 2)
    width = tau[i + 1] - tau[i]
    safe = jnp.where(width > 0, width, 1)
    lam = jnp.clip(jnp.where(width > 0, (q - tau[i]) / safe, 1), 0, 1)
    return q, last, i, lam


def _bcast(a: Array, x: Array) -> Array:
    return jnp.reshape(a, a.shape + (1,) * (x.ndim - a.ndim)).astype(x.dtype)


def _lerp(a: PyTree, b: PyTree, lam: Array) -> PyTree:
    return jax.tree.map(lambda u, v: u + _bcast(lam, u) * (v - u), a, b)


def _dist(a: PyTree, b: PyTree) -> Array:
    return jnp.sqrt(tree_sq_norm(jax.tree.map(jnp.subtract, a, b), 1))


def _window(tau, x, m0, r, h, field, method: Scheme, n: int, K: int, num_grid: int, heavy: bool):
    """One run: ``(grid_distance, distance, error)`` for start indices ``m0`` (shape ``(J,)``)."""
    q, last, idx, lam = _tables(tau, h, num_grid)
    R = tau.shape[0]
    dtau = jnp.diff(tau)
    step_sq = tree_sq_norm(jax.tree.map(lambda a: jnp.diff(a, axis=0), x), 1)
    slope = jnp.sqrt(step_sq) / jnp.where(dtau > 0, dtau, 1)
    L = jnp.max(jnp.where(dtau > 0, slope, 0))

    def at(m):
        i = idx[m]
        return _lerp(jax.tree.map(lambda a: a[i], x), jax.tree.map(lambda a: a[i + 1], x), lam[m])

    def between(ga, gb, m, da, db):
        """Sup of ``||e||`` on ``[q_m, q_{m+1}]``: exact over <= K records inside, else Lipschitz."""
        out = jnp.maximum(da, db)
        for kk in range(K):
            k = jnp.minimum(last[m] + 1 + kk, R - 1)
            frac = jnp.clip((tau[k] - q[m]) / h, 0, 1)
            e = _dist(jax.tree.map(lambda a: a[k], x), _lerp(ga, gb, frac))
            out = jnp.maximum(out, jnp.where(last[m] + 1 + kk <= last[m + 1], e, 0))
        over = last[m + 1] - last[m] > K
        return jnp.where(over, jnp.maximum(da, db) + h * L, out)

    vf = heavy_ball_vector_field(field, r, clock=1 / r) if heavy else gradient_vector_field(field)
    vf = jax.jit(vf)  # traced once for the 2 x stages fine and the coarse evaluations of a pair
    fine = jax.vmap(lambda g: method.step(vf, g, h))
    coarse = jax.vmap(lambda g: method.step(vf, g, 2 * h))

    def body(carry, p):
        g, gc, e0, d0, grid, cert, err = carry
        m = m0 + 2 * p
        g1 = fine(g)
        g2 = fine(g1)
        gc2 = coarse(gc)
        d1, d2 = _dist(at(m + 1), g1), _dist(at(m + 2), g2)
        grid = jnp.maximum(grid, jnp.maximum(d1, d2))
        cert = jnp.maximum(cert, jnp.maximum(between(g, g1, m, d0, d1), between(g1, g2, m + 1, d1, d2)))
        e2 = _dist(g2, gc2)
        chord = 0.125 * jnp.sqrt(tree_sq_norm(jax.tree.map(lambda a, b, c: a - 2 * b + c, g, g1, g2), 1))
        err = jnp.maximum(err, jnp.maximum(e0, e2) + chord)
        return (g2, gc2, e2, d2, grid, cert, err), None

    g0 = at(m0)
    zero = jnp.zeros(m0.shape, tau.dtype)
    init = (g0, g0, zero, zero, zero, zero, zero)
    (_, _, _, _, grid, cert, err), _ = jax.lax.scan(body, init, jnp.arange(n // 2))
    return grid, cert, err


@eqx.filter_jit
def _kernel(tau, x, m0, r, h, field, method, n, K, num_grid, heavy, num_batch, split=False):
    def single(tau, x, m0, r):
        return _window(tau, x, m0, r, h, field, method, n, K, num_grid, heavy)

    batched = map_leading(single, num_batch)
    return per_device(batched, (0, 0, 0, 0), 0, split)(tau, x, m0, r)


def _records_per_interval(tau: np.ndarray, h: float, num_grid: int) -> int:
    """Largest number of records strictly inside one grid interval, over all runs."""
    flat = tau.reshape(-1, tau.shape[-1])
    most = 0
    for t in flat:
        q = t[0] + h * np.arange(num_grid + 1)
        last = np.searchsorted(t, q, side="right") - 1
        most = max(most, int(np.max(np.diff(last), initial=0)))
    return most


def _start_indices(tau: np.ndarray, times: Any, num_times: int | None, T: float, h: float, n: int,
                   num_grid: int, batch: tuple[int, ...]) -> np.ndarray:
    top = num_grid - n
    if times is None:
        if num_times is None:  # windows every T / 2: each part of the horizon is checked twice
            num_times = max(2, math.floor(2 * top / n) + 1)
        m = np.rint(np.linspace(0, top, int(num_times))).astype(np.int64)
        return np.broadcast_to(m, batch + m.shape).copy()
    t = np.asarray(times, np.float64)
    if t.ndim == 1:
        t = np.broadcast_to(t, batch + t.shape)
    elif t.shape[:-1] != batch:
        raise ValueError(f"diagnose: times must have shape (J,) or batch + (J,) = {batch} + (J,), got {t.shape}")
    rel = (t - tau[..., :1]) / h
    if np.any(rel < -0.5) or np.any(rel > top + 0.5):
        raise ValueError(
            f"diagnose: start times must be in [tau_0, tau_last - T] (T={T!r}; shortest horizon "
            f"tau_last - tau_0 = {num_grid * h!r}), got times from {float(t.min())!r} to {float(t.max())!r}"
        )
    return np.clip(np.rint(rel), 0, top).astype(np.int64)


def _chunked(tau, x, m0, r, h, static, chunks, progress, shard=None):
    """The kernel over the start times in ``chunks`` compiled calls; ``progress(done, total)`` after each.

    With several devices the runs (first batch axis) are split over them (``shard_leading``)."""
    J = m0.shape[-1]
    chunks = max(1, min(int(chunks), J))
    per = math.ceil(J / chunks)
    pad = np.concatenate([m0, np.repeat(m0[..., -1:], per * chunks - J, axis=-1)], axis=-1)
    part = [jnp.asarray(pad[..., c * per:(c + 1) * per], jnp.int32) for c in range(chunks)]
    if static[-1]:  # a batch of runs (not one run): place it, every chunk the same way
        tau, x, r, *part = shard_leading((tau, x, r, *part), shard)
    split = is_split(tau)  # each device runs the windows of its own runs
    t0 = time.perf_counter()
    compiled = _kernel.lower(tau, x, part[0], r, h, *static, split).compile()
    t1 = time.perf_counter()
    outs = []
    for c, mc in enumerate(part):
        outs.append(jax.block_until_ready(compiled(tau, x, mc, r, h, *static, split)))
        if progress is not None:
            progress(min((c + 1) * per, J), J)
    res = tuple(jnp.concatenate([o[i] for o in outs], axis=-1)[..., :J] for i in range(3))
    return res, t1 - t0, time.perf_counter() - t1


def diagnose(
    traj: Trajectory,
    field: Field,
    T: float,
    *,
    num_times: int | None = None,
    times: Array | Sequence[float] | None = None,
    method: str | Scheme = DEFAULT_METHOD,
    dt: float | None = None,
    r: float | Array | None = None,
    F: Callable[[PyTree], Array] | None = None,
    rtol: float = 0.1,
    max_steps: int | None = None,
    min_resolved: float = 0.9,
    chunks: int = 8,
    progress: Progress | None = None,
    shard: bool | None = None,
) -> FlowReport:
    """Flow diagnostics of one algorithm's batch of runs (see the module docstring).

    Args:
        traj: one run or a batch (``tau`` of shape ``batch + (R,)``), concrete.
        field: ``w -> element of D_F(w)`` (e.g. ``problem.field``).
        T: window length in ``tau`` units.
        num_times: start times evenly spaced on ``[tau_0, tau_last - T]``; default: every
            ``T / 2`` (windows tile the horizon twice).
        times: explicit start times (``(J,)`` or ``batch + (J,)``), rounded to the flow grid.
        method: ``"euler" | "heun" | "rk4"`` or a :class:`~nsopt.flow.Scheme`.
        dt: flow step, rounded down so that ``n = T / dt`` is even; default ``T / DEFAULT_STEPS``.
        r: heavy-ball coupling (default: the recorded ``traj.r``); only for heavy ball.
        F: objective; when given, the Lyapunov curve (``F``, or ``F + r/2 ||y||^2`` for heavy ball).
        rtol: ``resolved = error <= rtol * distance``.
        max_steps: when given, ``n = T / dt`` is doubled (same start times) until a fraction
            ``min_resolved`` of the runs and start times (diverged runs left out) is resolved
            or ``2 n > max_steps``; the report holds the last level (its ``dt``).
        chunks: the start times are processed in this many compiled calls (progress in between).
        progress: ``progress(done, total)`` called after each chunk (``total`` start times;
            it starts again from 0 at each refinement level).
        shard: with several JAX devices the runs (first batch axis) are split over them, or
            replicated when they do not divide evenly (:func:`nsopt.algorithms.devices.shard_leading`);
            ``False``: off; ``True``: an uneven split is an error.
    """
    check_trajectory(traj, "diagnose")
    T = concrete_positive(T, "T", "diagnose")
    dt = T / DEFAULT_STEPS if dt is None else concrete_positive(dt, "dt", "diagnose")
    n = 2 * max(1, math.ceil(T / (2 * dt) - 1e-9))
    h = T / n
    scheme = as_method(method)
    batch = batch_shape(traj)
    tau = jnp.asarray(traj.tau)
    dtype = jnp.result_type(tau, *jax.tree.leaves(traj.w), float)
    tau = tau.astype(dtype)
    tau_np = np.asarray(tau, np.float64)
    span = float(np.min(tau_np[..., -1] - tau_np[..., 0]))
    num_grid = math.floor(span / h + 1e-6)
    if num_grid < n:
        raise ValueError(f"diagnose: window T={T!r} is longer than the shortest recorded horizon {span!r}")
    x, r_b, heavy = flow_state(traj, r, dtype, "diagnose")
    m0 = _start_indices(tau_np, times, num_times, T, h, n, num_grid, batch)
    ok = np.isfinite(tau_np[..., -1])
    if getattr(traj, "diverged_step", None) is not None:
        ok = ok & (np.broadcast_to(np.asarray(traj.diverged_step), ok.shape) < 0)
    compile_s = flow_s = 0.0
    while True:
        K = min(_records_per_interval(tau_np, h, num_grid), MAX_RECORDS)
        static = (field, scheme, n, K, num_grid, heavy, len(batch))
        (grid, cert, err), c_s, f_s = _chunked(tau, x, m0, r_b, jnp.asarray(h, dtype), static, chunks, progress,
                                               shard)
        compile_s, flow_s = compile_s + c_s, flow_s + f_s
        resolved = np.asarray(err <= rtol * cert)
        frac = float(resolved[ok].mean()) if ok.any() else 1.0
        if max_steps is None or frac >= min_resolved or 2 * n > max_steps:
            break
        n, h, m0, num_grid = 2 * n, h / 2, 2 * m0, math.floor(span / (h / 2) + 1e-6)
    t2 = time.perf_counter()
    E = lyapunov(traj, F, r_b if heavy else None, shard=shard) if F is not None else None
    if E is not None:
        E = jax.block_until_ready(E)
    t3 = time.perf_counter()
    times_out = tau[..., :1] + jnp.asarray(m0, dtype) * h
    return FlowReport(
        times=times_out, distance=cert, grid_distance=grid, error=err, resolved=jnp.asarray(resolved),
        lyapunov=E, lyapunov_tau=tau if E is not None else None, T=T, dt=h,
        method=type(scheme).__name__.lower(), rtol=float(rtol), compile_s=compile_s, flow_s=flow_s,
        lyapunov_s=t3 - t2,
    )
