"""APT distances at a few start times of long runs, window by window (docs/theory.md §5).

:func:`nsopt.flow.diagnose` builds its flow grid ``q_m = tau_0 + m h`` over a run's whole
horizon, so a run with a long horizon in ``tau`` costs ``tau_last / h`` grid points per call
even when only a few windows ``[t_j, t_j + T]`` are diagnosed (the constant step of
``apt_schedules``: ``tau_last = 2000``, ``h = 1e-3``: 2 million points per run).
:func:`window_runs` cuts each window out of its run as a run of its own: the records of
``[t_j, t_j + T + pad]`` starting at a record ``t_j``, the interpolated process at
``t_j + T + pad`` (the same piecewise-linear path), then that point repeated (zero-length
segments) up to a common length, on the clock ``tau - t_j`` (the flow is autonomous).  Its flow
grid starts at the start time itself.
:func:`windowed_diagnose` runs ``diagnose`` on these window-runs in chunks of equal shape (one
compilation; small batches run faster than one large one on CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from nsopt.algorithms.run import Trajectory
from nsopt.flow import diagnose

__all__ = ["WindowReport", "window_length", "window_runs", "windowed_diagnose"]


def _ends(tau: np.ndarray, idx: np.ndarray, span: float) -> tuple[np.ndarray, np.ndarray]:
    """Each window's end time ``tau[idx] + span`` and the first record after it."""
    end_t = (np.take_along_axis(tau, idx, axis=1) + np.asarray(span, tau.dtype)).astype(tau.dtype)
    e = np.stack([np.searchsorted(tau[b], end_t[b], side="right") for b in range(tau.shape[0])])
    return end_t, e


def window_length(tau: np.ndarray, idx: np.ndarray, span: float) -> int:
    """Records per window-run that hold every window of :func:`window_runs` (and its end point)."""
    tau = np.asarray(tau)
    return int(np.max(_ends(tau, idx, span)[1] - idx)) + 1


def window_runs(tau: np.ndarray, x: Any, idx: np.ndarray, span: float, length: int | None = None
                ) -> tuple[np.ndarray, Any]:
    """The windows ``[tau[b, idx[b, j]], + span]`` of runs ``b`` as runs of their own.

    Args:
        tau: ``(B, R)`` recorded times (nondecreasing).
        x: pytree of ``(B, R, ...)`` recorded states.
        idx: ``(B, J)`` record index of each window's start.
        span: window length in ``tau`` (the last point is the interpolated process at
            ``tau[idx] + span``, or the run's last record beyond its horizon).
        length: records per window-run, at least :func:`window_length` (its default).

    Returns:
        ``(tau_w, x_w)`` with leading axis ``B * J`` (window ``(b, j)`` at ``b * J + j``) and
        ``length`` records; ``tau_w`` starts at ``0`` in every window.
    """
    tau = np.asarray(tau)
    R = tau.shape[1]
    end_t, e = _ends(tau, idx, span)
    need = int(np.max(e - idx)) + 1
    if length is None:
        length = need
    elif length < need:
        raise ValueError(f"window_runs: length={length} is too short; the windows need {need} records")
    B, J = idx.shape
    lo = np.clip(e - 1, 0, R - 1)
    hi = np.clip(e, 0, R - 1)
    t0, t1 = np.take_along_axis(tau, lo, 1), np.take_along_axis(tau, hi, 1)
    width = (t1 - t0).astype(np.float64)
    lam = np.clip(np.where(width > 0, (end_t - t0) / np.where(width > 0, width, 1), 1.0), 0, 1).reshape(-1)
    # one gather per leaf from [records of every run; the end point of every window]
    base = (idx + R * np.arange(B)[:, None]).astype(np.int64)[..., None]
    endp = (B * R + np.arange(B * J, dtype=np.int64)).reshape(B, J, 1)
    pos = np.arange(length, dtype=np.int64)
    flat = np.where(pos < (e - idx)[..., None], base + pos, endp).reshape(B * J, length)
    lo_f, hi_f = (lo + (R * np.arange(B))[:, None]).reshape(-1), (hi + (R * np.arange(B))[:, None]).reshape(-1)

    def leaf(a):
        a = np.asarray(a)
        a = a.reshape((B * R,) + a.shape[2:])
        lm = lam.reshape((-1,) + (1,) * (a.ndim - 1)).astype(a.dtype)
        point = a[lo_f] + lm * (a[hi_f] - a[lo_f])
        return np.concatenate([a, point])[flat]

    tau_w = np.concatenate([tau.reshape(-1), end_t.reshape(-1)]).astype(np.float64)[flat]
    tau_w -= tau_w[:, :1].copy()  # the flow is autonomous: each window on its own clock from 0 (precision)
    return tau_w.astype(tau.dtype), jax.tree.map(leaf, x)


@dataclass(frozen=True)
class WindowReport:
    """:func:`windowed_diagnose`'s result for one batch of runs: arrays ``(B, J)`` and the flow settings."""

    distance: np.ndarray
    error: np.ndarray
    resolved: np.ndarray
    dt: float
    method: str


def windowed_diagnose(parts: Sequence[tuple[Trajectory, np.ndarray]], field: Callable, T: float, *,
                      dt: float, method: str, r: float | None = None, chunk: int = 512
                      ) -> tuple[list[WindowReport], dict[str, float]]:
    """:func:`nsopt.flow.diagnose` at the start records ``idx`` (``(B, J)``) of each ``(traj, idx)``.

    ``traj`` is a batch ``(B,)`` of runs of one algorithm (all SGD, or all heavy ball with the
    coupling ``r``).  The windows of every part are diagnosed together, in chunks of ``chunk``
    window-runs of one shape (one compilation).  The numbers are those of
    ``diagnose(traj, field, T, times=tau[idx], ...)`` up to the grid: here every window starts at
    ``tau[idx]`` exactly (``diagnose`` rounds start times to ``tau_0 + m h``).

    Returns:
        one :class:`WindowReport` per part, and ``{"compile_s", "flow_s"}`` summed over chunks.
    """
    n = 2 * max(1, math.ceil(T / (2 * dt) - 1e-9))
    h = T / n
    heavy = {traj.y is not None for traj, _ in parts}
    if len(heavy) != 1:
        raise ValueError("windowed_diagnose: parts mix SGD and heavy-ball runs; allowed: one algorithm per call")
    heavy = heavy.pop()
    span = T + 1.5 * h  # a grid point past the window: every window-run has the same grid
    length = max(window_length(np.asarray(traj.tau), idx, span) for traj, idx in parts)
    cut = [window_runs(np.asarray(traj.tau), jax.tree.map(np.asarray, (traj.w, traj.y) if heavy else traj.w),
                       idx, span, length) for traj, idx in parts]
    tau_w = np.concatenate([c[0] for c in cut])
    x_w = jax.tree.map(lambda *a: np.concatenate(a), *[c[1] for c in cut])
    bad = np.concatenate([np.repeat(np.broadcast_to(np.asarray(traj.diverged_step), idx.shape[:1]), idx.shape[1])
                          for traj, idx in parts])
    total = tau_w.shape[0]
    size = min(chunk, total)
    num = math.ceil(total / size)
    lanes_all = np.concatenate([np.arange(total), np.zeros(num * size - total, int)])  # pad with lane 0
    dist, err, res = (np.empty(num * size) for _ in range(3))
    timing = {"compile_s": 0.0, "flow_s": 0.0}
    for c in range(num):
        lanes = lanes_all[c * size:(c + 1) * size]
        xs = jax.tree.map(lambda a: a[lanes], x_w)
        w, y = xs if heavy else (xs, None)
        run = Trajectory(w=w, tau=tau_w[lanes], k=np.zeros(tau_w[lanes].shape, np.int32), y=y,
                         diverged_step=bad[lanes])
        rep = diagnose(run, field, T, times=tau_w[lanes, :1], method=method, dt=dt, r=r, chunks=1)
        sl = slice(c * size, (c + 1) * size)
        dist[sl], err[sl] = np.asarray(rep.distance)[:, 0], np.asarray(rep.error)[:, 0]
        res[sl] = np.asarray(rep.resolved)[:, 0]
        timing["compile_s"] += rep.compile_s
        timing["flow_s"] += rep.flow_s
    out, start = [], 0
    for _, idx in parts:
        stop = start + idx.size
        out.append(WindowReport(distance=dist[start:stop].reshape(idx.shape), error=err[start:stop].reshape(idx.shape),
                                resolved=res[start:stop].reshape(idx.shape).astype(bool), dt=float(rep.dt),
                                method=rep.method))
        start = stop
    return out, timing
