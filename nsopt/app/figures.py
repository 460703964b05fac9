"""The main job's figures, from its arrays: ``{name: Figure}`` (the run folder saves them).

Every figure shows only the runs that stayed finite and says so (``n finite of N``).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
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


def main_job_figures(job: MainJob, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from nsopt import flow

    names = list(job.algorithms)
    k = arrays["k"]
    title = _title(job)
    out: dict[str, Any] = {
        "objective": plots.plot_objective(
            k, {n: arrays[f"{n}/objective"].reshape(-1, len(k)) for n in names},
            {n: (arrays[f"{n}/diverged_step"] >= 0).reshape(-1) for n in names}, title),
    }
    problem = job.problem
    if problem.is_2d:
        F = jax.jit(jax.vmap(problem.F))

        def F_np(pts: np.ndarray) -> np.ndarray:
            return np.asarray(F(jnp.asarray(pts.reshape(-1, 2)))).reshape(pts.shape[:-1])

        out["iterates"] = plots.plot_iterates_2d({n: _finite(arrays, n, "w")[0] for n in names}, F_np, title)
    apt = {n: _finite(arrays, n, "apt_distance") for n in names if f"{n}/apt_distance" in arrays}
    if apt:
        T = job.flow.T
        curves = {f"{n} ({len(d)} finite of {total})": (arrays[f"{n}/apt_times"], d)
                  for n, (d, total) in apt.items() if len(d)}
        if curves:
            fig = flow.apt_figure(curves, T=T)
            fig.axes[0].set_title(f"{problem.name}: APT distance, window T = {T:g} (median, 10-90% band)")
            out["apt"] = fig
    lyap = {n: _finite(arrays, n, "lyapunov") for n in names if f"{n}/lyapunov" in arrays}
    lyap = {f"{n} ({len(E)} finite of {total})": (_finite(arrays, n, "lyapunov_tau")[0][: len(E)], E)
            for n, (E, total) in lyap.items() if len(E)}
    if lyap:
        fig = flow.lyapunov_figure(lyap)
        fig.axes[0].set_title(f"{problem.name}: heavy-ball Lyapunov function along the iterates")
        out["lyapunov"] = fig
    if problem.is_2d and apt:
        drawn = [n for n in names if f"{n}/w" in arrays and len(_finite(arrays, n, "w")[0])]
        if drawn:
            fig, axes = plt.subplots(1, len(drawn), figsize=(5.5 * len(drawn), 5), squeeze=False)
            for ax, n in zip(axes[0], drawn):
                flow.phase_portrait(problem.field, _finite(arrays, n, "w")[0][:6], labels=None, ax=ax,
                                    title=f"{n}: iterates over the flow's streamlines")
            fig.tight_layout()
            out["phase"] = fig
    return out
