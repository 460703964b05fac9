"""Distance of the interpolated process to the flow: asymptotic pseudo-trajectories (docs/theory.md §5).

The interpolated process ``w(t)`` is an asymptotic pseudo-trajectory (APT) of
the flow (Benaim 1999; Benaim-Hofbauer-Sorin 2005) when, for every ``T > 0``,

    d_T(t) = inf_{g(0) = w(t)} sup_{s in [0, T]} ||w(t + s) - g(s)||  ->  0   as t -> inf.

:func:`apt_distance` computes ``d_T`` at many start times ``t_j`` at once with
``g`` the fixed-step flow from ``g(0) = w(t_j)`` (one solution of the
inclusion: the infimum is over solutions, so this is an upper bound up to the
integration error).  The sup is taken on the flow grid ``s_i = i h``,
``h = T / n``.  Floors to expect: the integration error of the scheme
(``O(h)`` for Euler; on sliding modes the ``O(h)`` chattering band, see
:mod:`nsopt.flow.integrate`), plus the interpolation error between records
when ``record_every > 1``.

The query times ``t_j + i h`` of one window increase, so each flow step locates them among the
records by a short walk from the previous step's position
(:func:`nsopt.flow.interpolate.advance_count`, a bisection of the few records passed in one step)
instead of a binary search over all records: the same numbers, fewer gathers.

Heavy-ball iterates (``traj.y`` set) are compared in the state ``(w, y)`` with
the heavy-ball system ``w' = -r y, y' = field(w) - y``.  Its own time ``u``
is not the iterates' clock: ``nsopt.heavy_ball(proportional(c, alpha),
scale=s)`` moves ``w`` by ``s alpha_k y_k`` and ``y`` by ``c alpha_k (v - y)``
per step, i.e. on ``tau`` (increments ``s alpha_k``) it follows
``dw/dtau = -y, dy/dtau = (c/s)(v - y)``, which is the system above with
``r = s / c`` on the clock ``tau = r u``.  ``apt_distance`` therefore takes
``r`` (required for heavy ball; :func:`heavy_ball_r` computes it) and works
in ``tau`` throughout: ``T``, ``times`` and ``dt`` are ``tau`` durations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt.algorithms.heavy_ball import HeavyBall, Proportional
from nsopt.algorithms.run import Trajectory
from nsopt.flow._util import (
    batch_shape,
    check_trajectory,
    concrete_positive,
    tree_sq_norm,
)
from nsopt.flow.integrate import (
    Scheme,
    as_method,
    gradient_vector_field,
    heavy_ball_vector_field,
)
from nsopt.flow.interpolate import advance_count, interpolate_at, walk_bound
from nsopt.schedules import Constant

PyTree = Any
Field = Callable[[PyTree], PyTree]

__all__ = ["DEFAULT_STEPS_PER_WINDOW", "apt_distance", "default_times", "heavy_ball_r"]

#: default ``dt = T / DEFAULT_STEPS_PER_WINDOW``
DEFAULT_STEPS_PER_WINDOW = 200


def default_times(traj: Trajectory, T: float, num_times: int = 100) -> Array:
    """``num_times`` start times evenly spaced on ``[tau_0, tau_last - T]`` of each trajectory.

    Shape ``batch + (num_times,)`` (trajectories of a batch have their own horizon).
    """
    check_trajectory(traj, "default_times")
    T = concrete_positive(T, "T", "default_times")
    if not (isinstance(num_times, int) and num_times >= 1):
        raise ValueError(f"default_times: num_times must be an int >= 1, got {num_times!r}")
    tau = jnp.asarray(traj.tau)
    _check_horizon(tau, T, "default_times")
    frac = jnp.linspace(0.0, 1.0, num_times, dtype=tau.dtype)
    t0, t1 = tau[..., :1], tau[..., -1:] - T
    return t0 + frac * (t1 - t0)


def _concrete(x: Array) -> np.ndarray | None:
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_horizon(tau: Array, T: float, where: str) -> None:
    tau_np = _concrete(tau)
    if tau_np is None:
        return
    span = tau_np[..., -1] - tau_np[..., 0]
    if np.nanmin(span) < T:
        raise ValueError(
            f"{where}: window T={T!r} is longer than the recorded horizon (shortest "
            f"tau_last - tau_0 = {float(np.nanmin(span))!r}); allowed: T <= that value"
        )


def _check_times(tau: Array, times: Array, T: float) -> None:
    tau_np, t_np = _concrete(tau), _concrete(times)
    if tau_np is None or t_np is None:
        return
    lo, hi = tau_np[..., :1], tau_np[..., -1:] - T
    slack = 1e-9 * np.maximum(1.0, np.abs(tau_np[..., -1:]))
    bad = (t_np < lo - slack) | (t_np > hi + slack)
    if np.any(bad):
        j = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"apt_distance: start time times{list(j)} = {float(t_np[j])!r} does not leave room "
            f"for the window T={T!r}: allowed start times are in [tau_0, tau_last - T] = "
            f"[{float(np.broadcast_to(lo, t_np.shape)[j])!r}, {float(np.broadcast_to(hi, t_np.shape)[j])!r}]"
        )


def heavy_ball_r(algorithm: HeavyBall, scales: Sequence[float] | Array | None = None) -> Array:
    """The ``r`` of the heavy-ball system shadowed by ``algorithm`` on the clock ``tau``.

    For ``beta_k = c alpha_k`` (:func:`nsopt.proportional`) and scale ``s``:
    ``r = s / c``.  With ``scales`` (as given to ``run_batch``) returns one
    ``r`` per scale, shape ``(num_scales,)``, which broadcasts against the
    batch axes ``(seeds, inits, scales)``.  A constant ``alpha`` and
    ``beta`` give ``r = s alpha / beta``.
    """
    if not isinstance(algorithm, HeavyBall):
        raise TypeError(f"heavy_ball_r: expected an nsopt.heavy_ball(...) algorithm, got {algorithm!r}")
    s = algorithm.scale if scales is None else jnp.asarray(scales, jnp.result_type(float))
    beta, alpha = algorithm.beta, algorithm.alpha
    if isinstance(beta, Proportional):
        return s / beta.r
    if isinstance(beta, Constant) and isinstance(alpha, Constant):
        return s * alpha.a / beta.a
    raise ValueError(
        "heavy_ball_r: the heavy-ball ODE needs beta_k / alpha_k constant; allowed: "
        f"beta = nsopt.proportional(c, alpha) or constant alpha and beta, got beta={beta!r}"
    )


def flow_state(traj: Trajectory, r: Any, dtype: Any, where: str) -> tuple[PyTree, Array, bool]:
    """``(x, r, heavy)``: the compared state (``w``, or ``(w, y)`` for heavy ball) in ``dtype``,
    the coupling broadcast to the batch shape (zeros for SGD) and whether it is heavy ball.

    ``r`` defaults to the coupling ``traj.r`` recorded by ``nsopt.heavy_ball`` (its last value).
    """
    batch = batch_shape(traj)
    heavy = traj.y is not None
    if heavy and r is None and getattr(traj, "r", None) is not None:
        r = jnp.asarray(traj.r)[..., -1]  # the coupling recorded by nsopt.heavy_ball (exact for beta = c alpha)
    if heavy and r is None:
        raise ValueError(
            f"{where}: traj.y is set (a heavy-ball trajectory), so the flow is the system "
            "w' = -r y, y' = field(w) - y and r= is required; for nsopt.heavy_ball("
            "nsopt.proportional(c, alpha), scale=s) use r = s / c = nsopt.flow.heavy_ball_r(algorithm)"
        )
    if not heavy and r is not None:
        raise ValueError(
            f"{where}: r={r!r} was given but traj.y is None (an SGD trajectory, whose flow is "
            "g' = -field(g)); pass r only for heavy-ball trajectories"
        )
    if heavy:
        r_np = _concrete(jnp.asarray(r))
        if r_np is not None and not np.all(r_np > 0):
            raise ValueError(f"{where}: r must be > 0, got {r!r}")
        try:
            r = jnp.broadcast_to(jnp.asarray(r, dtype), batch)
        except ValueError:
            raise ValueError(
                f"{where}: r of shape {jnp.shape(r)} does not broadcast to the batch shape "
                f"{batch} (allowed: a number or an array broadcastable to {batch})"
            ) from None
        x = (traj.w, traj.y)
    else:
        r = jnp.zeros(batch, dtype)
        x = traj.w

    x = jax.tree.map(lambda a: jnp.asarray(a, dtype), x)
    return x, r, heavy


@eqx.filter_jit
def _apt(tau, x, field, times, h, r, num_steps, method: Scheme, num_batch, heavy, most: int | None = None,
         runs_at_once: int | None = None):
    """``most``: records per flow step (:func:`walk_bound`) for the merged walk; ``None``: binary search.

    The runs of the batch go through ``lax.map``, ``runs_at_once`` at a time (vmapped inside):
    by default one at a time on CPU, where the batched program is about 2x slower (XLA:CPU hands
    the batched float64 reductions, e.g. the norm, to YNNPACK fusions; one run's program has none,
    experiments/benchmarks/apt_vs_diffrax.py), all at once on accelerators.  One at a time, a
    run's distances do not depend on the batch around it.
    """

    def single(args):
        tau, x, times, r = args
        if heavy:
            vf = heavy_ball_vector_field(field, r, clock=1 / r)
        else:
            vf = gradient_vector_field(field)
        step = jax.vmap(lambda g: method.step(vf, g, h))
        count0 = jnp.searchsorted(tau, times, side="right")
        g0 = interpolate_at(tau, x, times, count0)

        def body(carry, i):
            g, dmax, count = carry
            g = step(g)
            t = times + (i + 1) * h
            # the query times of a window increase: walk on from the last count instead of searching
            count = jnp.searchsorted(tau, t, side="right") if most is None else advance_count(tau, count, t, most)
            xs = interpolate_at(tau, x, t, count)
            diff = jax.tree.map(jnp.subtract, xs, g)
            d = jnp.sqrt(tree_sq_norm(diff, 1))
            return (g, jnp.maximum(dmax, d), count), None

        dmax0 = jnp.zeros(times.shape, tau.dtype)
        (_, dmax, _), _ = jax.lax.scan(body, (g0, dmax0, count0), jnp.arange(num_steps))
        return dmax

    batch = tau.shape[:num_batch]
    runs = math.prod(batch)
    flat = lambda a: a.reshape((runs,) + a.shape[num_batch:])
    if runs_at_once is None:
        runs_at_once = 1 if jax.default_backend() == "cpu" else runs
    args = jax.tree.map(flat, (tau, x, times, r))
    k = min(runs_at_once, runs)
    d = jax.lax.map(single, args) if k == 1 else jax.lax.map(single, args, batch_size=k)
    return d.reshape(batch + d.shape[1:])


def apt_distance(
    traj: Trajectory,
    field: Field,
    T: float,
    times: Array | Sequence[float] | None = None,
    dt: float | None = None,
    *,
    r: float | Array | None = None,
    method: str | Scheme = "euler",
    num_times: int = 100,
) -> Array:
    """APT distance ``d[j] = sup_{s in [0, T]} ||w(times[j] + s) - g_j(s)||``, ``g_j(0) = w(times[j])``.

    ``g_j`` is the fixed-step flow of ``g' = -field(g)`` (SGD) or, when
    ``traj.y`` is set, of the heavy-ball system in ``(w, y)`` on the clock
    ``tau = r u`` (``r`` required then; see the module docstring and
    :func:`heavy_ball_r`).  The sup is over the grid ``s = i h``,
    ``h = T / ceil(T / dt)``.

    Args:
        traj: one run (``tau`` shape ``(R,)``) or a batch (``batch + (R,)``).
        field: ``w -> element of D_F(w)`` (e.g. ``problem.field``).
        T: window length in ``tau`` units (concrete; sets the static step count).
        times: start times, shape ``(J,)`` shared by the batch or ``batch + (J,)``;
            default :func:`default_times` (``num_times`` points on
            ``[tau_0, tau_last - T]`` of each trajectory).
        dt: flow step (concrete), default ``T / 200``.
        r: heavy-ball coupling, a number or an array broadcastable to the batch shape; default:
            the coupling ``traj.r`` recorded by ``nsopt.heavy_ball`` (its last value, ``s / c``
            for ``beta_k = c alpha_k``).
        method: ``"euler"`` (default), ``"heun"`` or ``"rk4"``.

    Returns:
        ``d`` of shape ``batch + (J,)``, one compiled call for all trajectories and
        start times (NaN for trajectories that diverged).
    """
    check_trajectory(traj, "apt_distance")
    T = concrete_positive(T, "T", "apt_distance")
    dt = T / DEFAULT_STEPS_PER_WINDOW if dt is None else concrete_positive(dt, "dt", "apt_distance")
    num_steps = max(1, math.ceil(T / dt - 1e-9))
    batch = batch_shape(traj)
    tau = jnp.asarray(traj.tau)
    dtype = jnp.result_type(tau, *jax.tree.leaves(traj.w), float)
    tau = tau.astype(dtype)

    x, r, heavy = flow_state(traj, r, dtype, "apt_distance")

    if times is None:
        times = default_times(traj, T, num_times)
    else:
        _check_horizon(tau, T, "apt_distance")
        times = jnp.asarray(times, dtype)
        if times.ndim == 1:
            times = jnp.broadcast_to(times, batch + times.shape)
        elif times.shape[:-1] != batch:
            raise ValueError(
                f"apt_distance: times must have shape (J,) or batch + (J,) = {batch} + (J,), got "
                f"{times.shape}"
            )
        _check_times(tau, times, T)
    most = walk_bound(tau, T / num_steps)
    h = jnp.asarray(T / num_steps, dtype)
    return _apt(tau, x, field, times.astype(dtype), h, r, num_steps, as_method(method), len(batch),
                heavy, most)
