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
from matplotlib.collections import LineCollection
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

    A streamline stops where it leaves the box, where the field vanishes, or where the field
    turns back on it (a kink of ``F``, where the flow of the differential inclusion slides or
    stops): it ends on the critical set instead of drawing stubs along the jump of the field.

    Args:
        field: ``w -> field(w)`` for ``w`` of shape ``(2,)``.
        iterates: array ``(..., R, 2)`` (e.g. ``traj.w`` of a batch; every leading
            index is one path) or a list of ``(R, 2)`` arrays.
        bounds: ``(xmin, xmax, ymin, ymax)``; default: the paths' box padded by 10%
            (``[-2, 2]^2`` without paths).
        grid: streamlines start on a ``grid // 3`` x ``grid // 3`` lattice of the box.
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
    lines, stops = _streamlines(field, (x0, x1, y0, y1), grid)
    if lines:  # one collection for the lines, one arrow per line at its middle (the flow's direction)
        ax.add_collection(LineCollection(lines, colors="0.6", linewidths=0.6, zorder=0))
        mid = np.asarray([line[len(line) // 2] for line in lines])
        step = np.asarray([line[len(line) // 2 + 1] - line[len(line) // 2] for line in lines])
        step /= np.maximum(np.linalg.norm(step, axis=-1, keepdims=True), 1e-300)
        ax.quiver(mid[:, 0], mid[:, 1], step[:, 0], step[:, 1], color="0.45", pivot="mid", angles="xy",
                  scale=40, width=0.004, headwidth=4, headlength=5, zorder=0)
    if len(stops):
        ax.plot(stops[:, 0], stops[:, 1], ".", ms=2.5, color="0.25", zorder=0,
                label="streamline stops (field jumps or vanishes)")
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
    if paths:  # what the markers mean (proxies in black: one colour per path)
        ax.plot([], [], "o", ms=4, color="k", label="start $w_0$")
        ax.plot([], [], "x", ms=6, color="k", label="end $w_K$")
    if flow_paths:
        ax.plot([], [], "--", lw=1.2, color="k", label="flow")
    if paths or flow_paths or labels is not None:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize="small", frameon=False)
    return fig


def _streamlines(field: Field, bounds: tuple[float, float, float, float], grid: int,
                 steps: int = 400) -> tuple[list[np.ndarray], np.ndarray]:
    """Forward lines of ``-field`` from a lattice of the box, normalised speed, step 1/150 of the box.

    Midpoint rule on the unit direction ``d = -field / |field|``; a line ends at the first step that
    leaves the box, meets ``|field| = 0`` or turns by more than 90 degrees (the field jumps there).
    Returns the lines and the points where a line stopped inside the box (on the critical set or
    a jump of the field).
    """
    x0, x1, y0, y1 = bounds
    n = max(grid // 3, 2)
    gx, gy = np.meshgrid(np.linspace(x0, x1, n + 2)[1:-1], np.linspace(y0, y1, n + 2)[1:-1])
    start = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=-1))
    h = max(x1 - x0, y1 - y0) / 150.0
    box = jnp.asarray([[x0, y0], [x1, y1]], dtype=start.dtype)
    pts, alive = (np.asarray(a) for a in _streamline_scan(field, start, jnp.asarray(h, start.dtype), box, steps))
    m = alive.sum(axis=1)  # alive is True on a prefix of each line
    lines = [np.concatenate([w0[None], p[:k]]) for w0, p, k in zip(np.asarray(start), pts, m) if k >= 8]
    ends = pts[np.arange(len(pts)), np.maximum(m - 1, 0)]
    d = -on_points(field, ends)  # every line's end (a fixed shape: one program per sweep)
    nxt = ends + h * d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-300)
    inside = (nxt[:, 0] >= x0) & (nxt[:, 0] <= x1) & (nxt[:, 1] >= y0) & (nxt[:, 1] <= y1)
    inside &= (m > 0) & (m < steps)
    return lines, ends[inside]  # stopped inside, not at the box's edge


@eqx.filter_jit
def _streamline_scan(field: Field, start: Any, h: Any, box: Any, steps: int):
    """``(points, alive)`` of shape ``(lines, steps, 2)`` / ``(lines, steps)`` (see :func:`_streamlines`);
    one program per structure of ``field`` and shape, reused across the figures of a sweep."""
    lo, hi = box[0], box[1]

    def direction(w):
        v = -jnp.asarray(field(w), dtype=w.dtype)
        norm = jnp.linalg.norm(v)
        return jnp.where(norm > 1e-12, v / jnp.where(norm > 0, norm, 1.0), 0.0), norm > 1e-12

    def step(carry, _):
        w, alive = carry
        d0, ok0 = direction(w)
        d1, ok1 = direction(w + 0.5 * h * d0)
        nxt = w + h * d1
        keep = alive & ok0 & ok1 & (d0 @ d1 > 0.0) & jnp.all((nxt >= lo) & (nxt <= hi))
        nxt = jnp.where(keep, nxt, w)
        return (nxt, keep), (nxt, keep)

    return jax.vmap(lambda w: jax.lax.scan(step, (w, jnp.bool_(True)), None, length=steps)[1])(start)


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
    ax.set(xlabel=r"start time $t$ (interpolation time $\tau$)", ylabel=r"$\sup_{s\leq T}\|w(t+s) - g(s)\|$")
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
