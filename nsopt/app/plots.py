"""Figures of the main job: objective vs iteration (spread over runs), iterates in 2-D."""

from __future__ import annotations

from typing import Callable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_objective", "plot_iterates_2d", "COLORS"]

COLORS = {"sgd": "tab:blue", "heavy_ball": "tab:orange"}


def plot_objective(k: np.ndarray, objectives: Mapping[str, np.ndarray], diverged: Mapping[str, np.ndarray],
                   title: str) -> Figure:
    """``F(w_k)`` vs ``k``: median and 10-90% band over the runs that did not diverge.

    ``objectives[name]`` has shape ``(runs, records)``; ``diverged[name]`` is a ``(runs,)`` mask.
    The legend says how many runs are finite; a batch with no finite run says so in the panel.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120, layout="tight")
    notes, positive = [], True
    for name, obj in objectives.items():
        ok = obj[~diverged[name]]
        ok = ok[np.all(np.isfinite(ok), axis=1)]
        color = COLORS.get(name)
        n_all = len(obj)
        if not len(ok):
            notes.append(f"{name}: all {n_all} runs diverged (NaN/inf), nothing to plot")
            continue
        positive &= bool(np.all(ok > 0))
        lo, med, hi = np.quantile(ok, [0.1, 0.5, 0.9], axis=0)
        line, = ax.plot(k, med, color=color, lw=2, label=f"{name}: median of {len(ok)} finite of {n_all} runs")
        ax.fill_between(k, lo, hi, color=line.get_color(), alpha=0.15, label=f"{name}: 10-90% quantile band")
    if notes:
        ax.text(0.5, 0.5, "\n".join(notes), transform=ax.transAxes, ha="center", va="center", color="red")
    ax.set_yscale("log" if positive and not notes else "linear")
    ax.set_xlabel("iteration k")
    ax.set_ylabel("objective F(w_k)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return fig


def plot_iterates_2d(w: Mapping[str, np.ndarray], F: Callable[[np.ndarray], np.ndarray], title: str,
                     max_runs: int = 12, critical: Callable[[np.ndarray], np.ndarray] | None = None,
                     totals: Mapping[str, int] | None = None) -> Figure:
    """Iterates ``w_k`` of a few runs over the filled contours of ``F``, one panel per algorithm.

    ``w[name]`` has shape ``(runs, records, 2)``; ``F`` maps ``(..., 2)`` points to values;
    ``critical`` (the distance to the problem's Clarke-critical set) draws that set in red.
    """
    names = list(w)
    fig, axes = plt.subplots(1, len(names), figsize=(5.6 * len(names), 5), dpi=120, squeeze=False,
                             layout="tight")
    pts = np.concatenate([np.asarray(v).reshape(-1, 2) for v in w.values()])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) == 0:
        pts = np.array([[-1.0, -1.0], [1.0, 1.0]])
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.15 * (hi - lo + 1e-9)
    gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 200),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], 200))
    grid = np.stack([gx, gy], -1)
    gz = np.asarray(F(grid))
    crit = None if critical is None else np.asarray(critical(grid))
    for ax, name in zip(axes[0], names):
        cf = ax.contourf(gx, gy, gz, levels=20, cmap="Greys", alpha=0.6)
        fig.colorbar(cf, ax=ax, shrink=0.8, label="F(w)")
        if crit is not None:
            step = float(np.max(hi - lo + 2 * pad)) / 200
            ax.contourf(gx, gy, crit, levels=[-1.0, step], colors="red", alpha=0.6, zorder=1)
            ax.plot([], [], color="red", lw=1.2, label="Clarke-critical set")
        runs = np.asarray(w[name])[:max_runs]
        cmap = plt.get_cmap("viridis")
        for i, traj in enumerate(runs):
            c = cmap(i / max(len(runs) - 1, 1))
            ax.plot(traj[:, 0], traj[:, 1], "-", color=c, lw=0.8, alpha=0.8, zorder=2)
            ax.plot(traj[0, 0], traj[0, 1], "o", color=c, ms=4, zorder=3)
            ax.plot(traj[-1, 0], traj[-1, 1], "*", color="black", ms=7, zorder=3)
        ax.plot([], [], "ko", ms=4, label="start")
        ax.plot([], [], "k*", ms=7, label="end")
        total = (totals or {}).get(name, len(np.asarray(w[name])))
        ax.set_title(f"{name}: {len(runs)} of {total} runs shown")
        ax.set_xlabel("w[0]")
        ax.set_ylabel("w[1]")
        ax.set_aspect("equal", adjustable="box")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=11)
    return fig
