"""The main job: a checked :class:`~nsopt.app.config.MainJob` -> batch of runs -> run folder.

Calls of the public API only (problem -> oracle -> algorithm -> ``compile_batch`` ->
``Trajectory`` -> ``flow``); nothing here knows a problem or an algorithm by name.
Writes into a :class:`~nsopt.app.run_folder.RunFolder`:

- ``metrics.npz``  per algorithm ``{alg}/objective`` (seeds, inits, scales, records),
                   ``{alg}/tau``, ``{alg}/diverged_step``, ``{alg}/w_final``, ``{alg}/w`` (2-D
                   problems), the flow's ``{alg}/apt_times``, ``{alg}/apt_distance``,
                   ``{alg}/lyapunov``; ``k``
- figures          ``objective.png``, ``iterates.png`` / ``phase.png`` (2-D), ``apt.png``, ``lyapunov.png``
- the summary      statistics over the runs that did not diverge, divergence counts and steps,
                   compile and run times (the caller writes it last, through the folder)
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from nsopt.algorithms import compile_batch, progress_chunks
from nsopt.app.config import MainJob
from nsopt.app.dashboard import flow_tables, record_rows, stats
from nsopt.app.loggers import Logger
from nsopt.app.progress import step_progress
from nsopt.app.run_folder import RunFolder
from nsopt.problems.inits import draw_many

__all__ = ["run_main", "run_keys"]

log = logging.getLogger("nsopt")


def run_keys(seed: int, num: int) -> jax.Array:
    """Run key ``i`` is ``fold_in(fold_in(key(seed), 0), i)``: independent of the batch size."""
    root = jax.random.fold_in(jax.random.key(seed), 0)
    return jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(num, dtype=jnp.uint32))


def run_main(job: MainJob, folder: RunFolder, logger: Logger) -> dict[str, Any]:
    """Run the batch of every algorithm, the flow diagnostics and the figures; returns the summary
    (without the integrity block, which :meth:`RunFolder.complete` adds)."""
    from nsopt.flow import check_schedule

    c, problem = job.config, job.problem
    scales = list(c.scales)
    check_schedule(job.schedule, "alpha")  # warns (TheoryWarning) outside l^2 \ l^1, optax schedules too
    w0 = draw_many(job.init, problem, jax.random.fold_in(jax.random.key(c.seed), 1), c.inits)
    keys = run_keys(c.seed, c.seeds)
    n_runs = c.seeds * c.inits * len(scales)
    log.info("problem %s (dim %d), %d runs x %d steps (record every %d), algorithms %s",
             problem.name, problem.dim, n_runs, c.num_steps, c.record_every, list(job.algorithms))
    arrays: dict[str, np.ndarray] = {}
    per_alg: dict[str, Any] = {}
    trajs = {}
    for name, alg in job.algorithms.items():
        t0 = time.perf_counter()
        batch = compile_batch(alg, problem.oracle(), problem.sampler, w0, keys, c.num_steps, c.record_every,
                              scales=scales, objective=problem.F,
                              chunks=progress_chunks(c.num_steps, c.record_every) if c.progress else 1)
        t1 = time.perf_counter()
        log.info("%s: compiled in %.2f s; running %d x %d steps", name, t1 - t0, n_runs, c.num_steps)
        update, close = step_progress(name, c.progress)
        logger.define_axes([f"{name}/"])

        def live(recs, name=name):  # the chunk's records, logged as soon as it finishes
            logger.log_rows(record_rows(name, recs, scales))

        try:  # records go to the host per chunk only when the logger shows them live
            traj = jax.block_until_ready(batch(progress=update, on_records=live if logger.live else None))
        finally:
            close()
        t2 = time.perf_counter()
        trajs[name] = traj
        arrays.update(_arrays(name, traj, problem.is_2d))
        per_alg[name] = _alg_summary(arrays, name, scales, t1 - t0, t2 - t1, n_runs * c.num_steps)
    arrays["k"] = np.asarray(next(iter(trajs.values())).k).reshape(-1, c.num_steps // c.record_every + 1)[0]
    if job.flow.enabled:
        for name, info in _flow_diagnostics(job, trajs, arrays).items():
            per_alg[name]["flow"] = info
    folder.write_metrics(arrays)
    if logger.live:  # tables are built only for a logger that shows them (not logger=none)
        for key, columns, data, line in flow_tables(arrays, list(job.algorithms), scales):
            logger.log_table(key, columns, data, line)
    figures: list[str] = []
    if c.figures:
        from nsopt.app.figures import main_job_figures

        for fname, fig in main_job_figures(job, arrays).items():
            logger.log_figures({fname: folder.write_figure(fname, fig)})
            figures.append(f"{fname}.png")
    return {
        "problem": problem.name,
        "dim": problem.dim,
        "algorithms": per_alg,
        "runs_per_algorithm": n_runs,
        "diverged_total": int(sum(a["diverged"] for a in per_alg.values())),
        "num_steps": c.num_steps,
        "record_every": c.record_every,
        "seed": c.seed,
        "scales": scales,
        "figures": sorted(figures),
    }


def _arrays(name: str, traj: Any, is_2d: bool) -> dict[str, np.ndarray]:
    n_seeds, n_inits, n_scales = np.shape(traj.tau)[:3]
    out = {
        f"{name}/objective": np.asarray(traj.objective),
        f"{name}/tau": np.asarray(traj.tau),
        f"{name}/diverged_step": np.asarray(traj.diverged_step),
        f"{name}/w_final": np.concatenate(
            [np.asarray(x)[..., -1, :].reshape(n_seeds, n_inits, n_scales, -1) for x in jax.tree.leaves(traj.w)],
            axis=-1),
    }
    if is_2d:
        out[f"{name}/w"] = np.asarray(traj.w)
    return out


def _alg_summary(arrays: Mapping[str, np.ndarray], name: str, scales: list[float], compile_s: float,
                 run_s: float, steps: int) -> dict[str, Any]:
    final = arrays[f"{name}/objective"][..., -1]
    dstep = arrays[f"{name}/diverged_step"]
    bad = dstep >= 0
    ok = np.isfinite(final) & ~bad
    out = {
        "final_objective": stats(final[ok]),
        "per_scale": {f"{s:g}": {"final_objective": stats(final[:, :, j][ok[:, :, j]]),
                                 "diverged": int(bad[:, :, j].sum())} for j, s in enumerate(scales)},
        "runs": int(bad.size),
        "finite": int(ok.sum()),
        "diverged": int(bad.sum()),
        "diverged_runs": [{"seed_index": int(i), "init_index": int(j), "scale": scales[int(s)],
                           "step": int(dstep[i, j, s])} for i, j, s in zip(*np.nonzero(bad))],
        "compile_s": compile_s,
        "run_s": run_s,
        "steps_per_s": steps / max(run_s, 1e-9),
    }
    if bad.any():
        log.warning("%s: %d of %d runs diverged (NaN/inf), first at step %d; they are excluded from the "
                    "statistics and listed in summary.json", name, int(bad.sum()), bad.size, int(dstep[bad].min()))
    st = out["final_objective"]
    log.info("%s: ran in %.2f s (%.3g steps/s); final F median %s [q10 %s, q90 %s]", name, run_s,
             out["steps_per_s"], _fmt(st["median"]), _fmt(st["q10"]), _fmt(st["q90"]))
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _flow_diagnostics(job: MainJob, trajs: Mapping[str, Any], arrays: dict) -> dict[str, Any]:
    """:func:`nsopt.flow.diagnose` on the first ``flow.max_runs`` seeds: APT distances (a certified
    bound for the discretized flow), the flow's own error estimate and whether it is resolved, and
    Lyapunov curves where the trajectory records a coupling ``r`` (docs/theory.md §5)."""
    from nsopt import flow

    fc, problem, c = job.flow, job.problem, job.config
    out: dict[str, Any] = {}
    for name, traj in trajs.items():
        n = max(1, min(fc.max_runs, traj.tau.shape[0]))
        sub = jax.tree.map(lambda x: x[:n], traj)
        ok = np.asarray(sub.diverged_step) < 0
        if not ok.any():
            log.warning("flow: %s skipped: every run diverged", name)
            continue
        tau_end = float(np.min(np.asarray(sub.tau)[..., -1][ok]))
        if tau_end <= fc.T:
            log.warning("flow: %s skipped: its horizon tau_end = %.3g is not longer than T = %g "
                        "(lower flow.T or raise num_steps)", name, tau_end, fc.T)
            continue
        update, close = step_progress(f"flow {name}", c.progress, unit="start times")
        try:
            rep = flow.diagnose(sub, problem.field, fc.T, num_times=fc.num_times, method=fc.method,
                                dt=fc.dt or fc.T / fc.steps,
                                F=problem.F if sub.r is not None else None, rtol=fc.rtol,
                                max_steps=fc.max_steps, progress=update)
        finally:
            close()
        times = np.asarray(rep.times)
        arrays[f"{name}/apt_times"] = times.reshape(-1, times.shape[-1])[0]
        arrays[f"{name}/apt_distance"] = np.asarray(rep.distance)
        arrays[f"{name}/apt_grid_distance"] = np.asarray(rep.grid_distance)
        arrays[f"{name}/apt_error"] = np.asarray(rep.error)
        if rep.lyapunov is not None:
            arrays[f"{name}/lyapunov"] = np.asarray(rep.lyapunov)
            arrays[f"{name}/lyapunov_tau"] = np.asarray(rep.lyapunov_tau)
        info = rep.summary(ok)
        info["finite_runs"] = info.pop("runs")
        info["runs"] = int(ok.size)
        out[name] = info
        log.info("flow: %s APT distance (T=%g, %s, dt=%.3g) median %s at t=0 -> %s at t=%.3g; flow error "
                 "estimate %s, resolved in %.0f%% of the windows (%.1f s)", name, fc.T, info["method"], info["dt"],
                 _fmt(info["apt_first_median"]), _fmt(info["apt_last_median"]), float(times.reshape(-1)[-1]),
                 _fmt(info["error_last_median"]), 100 * (info["resolved_fraction"] or 0), info["seconds"])
        if (info["resolved_fraction"] or 0) < 0.9:
            log.warning("flow: %s: the flow's discretization error is not well below the APT distance in %.0f%% "
                        "of the windows (apt_error in metrics.npz); refine with flow.dt or flow.max_steps, or read "
                        "those distances as unresolved", name, 100 * (1 - (info["resolved_fraction"] or 0)))
    return out
