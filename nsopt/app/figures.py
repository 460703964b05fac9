"""The main job's figures, from its arrays: ``{name: Figure}`` (the run folder saves them).

Every figure shows only the runs that stayed finite and says so (``n finite of N``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from nsopt.app import plots
from nsopt.app.config import MainJob

__all__ = ["main_job_figures"]


def _title(job: MainJob) -> str:
    node = dict(job.plain.get("schedule") or {})
    target = str(node.pop("_target_", "schedule")).rsplit(".", 1)[-1]
    sched = target + "(" + ", ".join(f"{k}={v}" for k, v in node.items()) + ")"
    c = job.config
    return (f"{job.problem.name}, alpha = {sched}\n{c.seeds} seeds x {c.inits} inits x "
            f"{len(c.scales)} scales")


def _finite(arrays: Mapping[str, np.ndarray], name: str, key: str) -> tuple[np.ndarray, int]:
    """Runs of ``{name}/{key}`` (batch axes flattened) that did not diverge and stayed finite,
    and the number of runs.  Arrays of the flow hold the first seeds only: matched by shape."""
    x = arrays[f"{name}/{key}"]
    dstep = arrays[f"{name}/diverged_step"][: x.shape[0]]
    n = dstep.size
    x = x.reshape(n, *x.shape[dstep.ndim:])
    keep = (dstep.reshape(-1) < 0) & np.all(np.isfinite(x.reshape(n, -1)), axis=1)
    return x[keep], n


def _on_points(fn: Any) -> Any:
    """``fn(w)`` of a 2-D problem evaluated on NumPy points of shape ``(..., 2)`` (one compiled vmap,
    reused by every job of a sweep: :func:`nsopt.flow.figures.on_points`)."""
    from nsopt.flow.figures import on_points

    return lambda pts: on_points(fn, pts)


def main_job_figures(job: MainJob, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from nsopt import flow

    names = list(job.algorithms)
    k = arrays["k"]
    title = _title(job)
    scales = list(job.config.scales)

    def per_scale(n: str, j: int, key: str) -> np.ndarray:
        x = arrays[f"{n}/{key}"][:, :, j]
        return x.reshape(-1, *x.shape[2:])

    series = [(n, j, n + (f", s={sc:g}" if len(scales) > 1 else "")) for n in names for j, sc in enumerate(scales)]
    out: dict[str, Any] = {
        "objective": plots.plot_objective(
            k, {label: per_scale(n, j, "objective") for n, j, label in series},
            {label: per_scale(n, j, "diverged_step") >= 0 for n, j, label in series}, title),
    }
    problem = job.problem
    if problem.is_2d:
        crit = getattr(problem, "distance_to_critical", None)
        out["iterates"] = plots.plot_iterates_2d({n: _finite(arrays, n, "w")[0] for n in names},
                                                 _on_points(problem.F), title,
                                                 critical=None if crit is None else _on_points(crit),
                                                 totals={n: arrays[f"{n}/diverged_step"].size for n in names})
    apt = {n: _finite(arrays, n, "apt_distance") for n in names if f"{n}/apt_distance" in arrays}
    if apt:
        T = job.flow.T
        curves = {}
        for n in apt:
            for j, sc in enumerate(scales):
                one = {k: v[:, :, j] for k, v in arrays.items() if k.startswith(f"{n}/") and np.ndim(v) >= 3}
                d, total = _finite(one, n, "apt_distance")
                if len(d):
                    label = n + (f", s={sc:g}" if len(scales) > 1 else "") + f" ({len(d)} finite of {total})"
                    curves[label] = (arrays[f"{n}/apt_times"], d)
        if curves:
            fig = flow.apt_figure(curves, T=T)
            fig.axes[0].set_title(f"{problem.name}: APT distance to the flow, window T = {T:g}")
            fig.axes[0].set_xlabel("start time t (interpolation time tau)")
            fig.axes[0].legend(fontsize=7, title="lines: median over runs; bands: 10-90% quantiles",
                               title_fontsize=7)
            out["apt"] = fig
    lyap = {n: _finite(arrays, n, "lyapunov") for n in names if f"{n}/lyapunov" in arrays}
    lyap = {f"{n}: F + r/2 |y|^2 ({len(E)} finite of {total})": (_finite(arrays, n, "lyapunov_tau")[0][: len(E)], E)
            for n, (E, total) in lyap.items() if len(E)}
    if lyap:  # algorithms without a momentum: their Lyapunov function is F itself
        for n in names:
            if f"{n}/lyapunov" not in arrays:
                E, total = _finite(arrays, n, "objective")
                if len(E):
                    lyap[f"{n}: F ({len(E)} finite of {total})"] = (_finite(arrays, n, "tau")[0][: len(E)], E)
        order = {n: i for i, n in enumerate(names)}  # the algorithms' order (and colours) of the other figures
        lyap = dict(sorted(lyap.items(), key=lambda kv: order.get(kv[0].split(":")[0], len(order))))
        fig = flow.lyapunov_figure(lyap, logy=True, ylabel="Lyapunov function E")
        fig.axes[0].set_title(f"{problem.name}: Lyapunov functions along the iterates (median, 10-90% band)")
        out["lyapunov"] = fig
    if problem.is_2d and apt:
        drawn = [n for n in names if f"{n}/w" in arrays and len(_finite(arrays, n, "w")[0])]
        if drawn:
            # no layout engine: the panels keep the data's aspect and write_figure crops the margins
            fig, axes = plt.subplots(1, len(drawn), figsize=(5.5 * len(drawn), 5), squeeze=False)
            for ax, n in zip(axes[0], drawn):
                w, total = _finite(arrays, n, "w")
                flow.phase_portrait(problem.field, w[:6], labels=None, ax=ax,
                                    title=f"{n}: {min(6, len(w))} of {total} runs over the flow's streamlines")
            fig.tight_layout()
            out["phase"] = fig
    return out
