"""Figures of the ODE approach: data in, ``matplotlib.figure.Figure`` out (no I/O, no CLI).

- :func:`phase_portrait`: 2-D iterates over the streamlines of ``-field``.
- :func:`apt_figure`: APT distance vs start time (log scale), one curve per schedule.
- :func:`lyapunov_figure`: Lyapunov (or objective) curves along iterates or flows.

Batched curves (leading batch axes) are drawn as a median with a 10-90%
quantile band over the batch, against the median of their times: give one
label per schedule and scale (trajectories of different scales have different
``tau`` clocks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

PyTree = Any
Field = Callable[[Any], Any]

__all__ = ["apt_figure", "lyapunov_figure", "on_points", "phase_portrait"]


def on_points(fn: Callable[[Any], Any], pts: np.ndarray) -> np.ndarray:
    """``fn(p)`` for every point ``p`` of ``pts`` (shape ``(..., d)``), as one vmapped program.

    Compiled once per structure of ``fn`` and shape of ``pts``: a problem's bound method
    (``problem.F``) is a pytree whose arrays are arguments, so every figure of a sweep whose
    problems differ only in array values reuses the same program (a new ``jax.jit`` per call
    would trace and compile again).
    """
    pts = np.asarray(pts)
    flat = jnp.asarray(pts.reshape(-1, pts.shape[-1]))
    out = np.asarray(_vmapped(fn, flat))
    return out.reshape(pts.shape[:-1] + out.shape[1:])


@eqx.filter_jit
def _vmapped(fn, pts):
    return jax.vmap(fn)(pts)


def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def phase_portrait(
    field: Field,
    iterates: np.ndarray | Sequence[np.ndarray] | None = None,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    grid: int = 41,
    labels: Sequence[str] | None = None,
    flows: np.ndarray | None = None,
    title: str | None = None,
    ax=None,
) -> Figure:
    """Streamlines of the flow ``g' = -field(g)`` on a 2-D box, with iterate paths on top.

    Args:
        field: ``w -> field(w)`` for ``w`` of shape ``(2,)``.
        iterates: array ``(..., R, 2)`` (e.g. ``traj.w`` of a batch; every leading
            index is one path) or a list of ``(R, 2)`` arrays.
        bounds: ``(xmin, xmax, ymin, ymax)``; default: the paths' box padded by 10%
            (``[-2, 2]^2`` without paths).
        grid: streamline grid size per axis.
        labels: one legend label per path (default: none).
        flows: optional flow paths ``(..., S, 2)`` (e.g. ``nsopt.flow.flow(...).w``),
            drawn dashed.
    """
    paths = _paths(iterates)
    flow_paths = _paths(flows)
    fig, ax = _new_axes(ax, (5.5, 5))
    if bounds is None:
        pts = [p for p in paths + flow_paths if np.isfinite(p).all()]
        if pts:
            allp = np.concatenate(pts)
            lo, hi = allp.min(0), allp.max(0)
            pad = 0.1 * np.maximum(hi - lo, 1e-3)
            bounds = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
        else:
            bounds = (-2.0, 2.0, -2.0, 2.0)
    x0, x1, y0, y1 = map(float, bounds)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"phase_portrait: bounds must satisfy xmin < xmax, ymin < ymax, got {bounds}")
    xs, ys = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
    X, Y = np.meshgrid(xs, ys)
    V = -on_points(field, np.stack([X.ravel(), Y.ravel()], axis=-1))
    U, W = V[:, 0].reshape(X.shape), V[:, 1].reshape(X.shape)
    speed = np.hypot(U, W)
    ax.streamplot(xs, ys, U, W, color=np.log1p(speed), cmap="Greys", density=1.2, linewidth=0.7,
                  arrowsize=0.8)
    colors = [f"C{i % 10}" for i in range(len(paths))]
    for i, p in enumerate(paths):
        label = labels[i] if labels is not None and i < len(labels) else None
        ax.plot(p[:, 0], p[:, 1], "-", lw=0.8, alpha=0.8, color=colors[i], label=label)
        ax.plot(p[:1, 0], p[:1, 1], "o", ms=4, color=colors[i])
        ax.plot(p[-1:, 0], p[-1:, 1], "x", ms=6, color=colors[i])
    for p in flow_paths:
        ax.plot(p[:, 0], p[:, 1], "--", lw=1.2, color="k", alpha=0.8)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="$w_1$", ylabel="$w_2$", aspect="equal")
    ax.set_title(title or "iterates over the flow $g' = -D_F(g)$")
    if labels is not None:
        ax.legend(loc="best", fontsize="small")
    return fig


def _paths(x) -> list[np.ndarray]:
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        out = [np.asarray(p) for p in x]
    else:
        a = np.asarray(x)
        if a.ndim < 2:
            raise ValueError(f"phase_portrait: paths need shape (..., R, 2), got {a.shape}")
        out = list(a.reshape((-1,) + a.shape[-2:]))
    for p in out:
        if p.ndim != 2 or p.shape[-1] != 2:
            raise ValueError(f"phase_portrait: each path must have shape (R, 2), got {p.shape}")
    return out


def _band(ax, t, y, label, color, logy):
    t, y = np.asarray(t), np.asarray(y)
    if y.shape[-1] != t.shape[-1]:
        raise ValueError(f"curve {label!r}: last axis of values {y.shape} must match times {t.shape}")
    t = np.broadcast_to(t, y.shape).reshape((-1, y.shape[-1]))
    y = y.reshape((-1, y.shape[-1]))
    tm = np.median(t, axis=0)
    if y.shape[0] == 1:
        ax.plot(tm, y[0], color=color, label=label)
        return
    with np.errstate(all="ignore"):
        med = np.nanmedian(y, axis=0)
        lo, hi = np.nanquantile(y, 0.1, axis=0), np.nanquantile(y, 0.9, axis=0)
    ax.plot(tm, med, color=color, label=f"{label} (median, n={y.shape[0]})")
    ax.fill_between(tm, lo, hi, color=color, alpha=0.2, lw=0)


def apt_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    T: float | None = None,
    logx: bool = False,
    ax=None,
) -> Figure:
    """APT distance ``d_T(t)`` against the start time ``t`` (log ``y``), one curve per label.

    ``curves[label] = (times, d)`` with ``d`` of shape ``batch + (J,)`` (as
    returned by :func:`nsopt.flow.apt_distance`) and ``times`` of shape
    ``(J,)`` or ``batch + (J,)``; batches show a median and a 10-90% band.
    An asymptotic pseudo-trajectory has ``d_T(t) -> 0`` (step schedules in
    ``l^2 \\ l^1``); a constant step levels off.
    """
    if not curves:
        raise ValueError("apt_figure: curves is empty; pass {label: (times, distances)}")
    fig, ax = _new_axes(ax, (6, 4))
    for i, (label, (t, d)) in enumerate(curves.items()):
        _band(ax, t, d, label, f"C{i % 10}", True)
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    win = f" (window T = {T:g})" if T is not None else ""
    ax.set(xlabel=r"start time $t$ ($\tau$ units)", ylabel=r"$\sup_{s\leq T}\|w(t+s) - g(s)\|$")
    ax.set_title("distance to the flow" + win)
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def lyapunov_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    shift_to_min: bool = False,
    logy: bool = False,
    ylabel: str = r"$E(w, y) = F(w) + \frac{r}{2}\|y\|^2$",
    ax=None,
) -> Figure:
    """Lyapunov curves ``E`` against ``tau``: ``curves[label] = (tau, E)``, batches banded.

    ``shift_to_min`` plots ``E - min E`` (with ``logy`` it shows the decay rate).
    """
    if not curves:
        raise ValueError("lyapunov_figure: curves is empty; pass {label: (tau, E)}")
    fig, ax = _new_axes(ax, (6, 4))
    for i, (label, (t, e)) in enumerate(curves.items()):
        e = np.asarray(e, dtype=float)
        if shift_to_min:
            e = e - np.nanmin(e, axis=-1, keepdims=True)
        _band(ax, t, e, label, f"C{i % 10}", logy)
    if logy:
        ax.set_yscale("symlog" if shift_to_min else "log", **({"linthresh": 1e-8} if shift_to_min else {}))
    ax.set(xlabel=r"$\tau$", ylabel=ylabel, title="Lyapunov function along the trajectories")
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    return fig
