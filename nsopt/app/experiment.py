"""The main job as a pure function of its config: ``run_experiment(cfg, run_dir)``.

It turns the config into calls of the public API (problem -> oracle ->
algorithm -> ``compile_batch``), then writes the run folder:

- ``config.yaml``   the resolved config
- ``metrics.npz``   per algorithm: ``{alg}/objective`` (seeds, inits, scales, records),
                    ``{alg}/tau``, ``{alg}/diverged_step``, ``{alg}/w_final``; ``k``;
                    ``{alg}/w`` for 2-D problems
- ``*.png``         objective vs iteration; iterates in the plane for 2-D problems
- ``summary.json``  written last (atomically): statistics over the runs that did not
                    diverge, divergence counts and steps, compile and run times

and hands the same numbers to the logger (wandb or none).
"""

from __future__ import annotations

import contextlib
import os
import logging
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from nsopt.algorithms import compile_batch, progress_chunks
from nsopt.app import io
from nsopt.app.config import (build_algorithms, build_inits, build_problem, build_schedule, run_keys,
                              scales_of, validate)
from nsopt.app.loggers import Logger, NoLogger
from nsopt.app.progress import step_progress

__all__ = ["run_experiment", "set_precision", "environment"]

log = logging.getLogger("nsopt")


@contextlib.contextmanager
def set_precision(precision: str) -> Iterator[None]:
    """``float64`` turns on ``jax_enable_x64`` for the job (before any of its arrays exist).

    The previous setting is restored afterwards, so in-process callers (tests,
    notebooks) keep their own precision.
    """
    old = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", precision == "float64")
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


def environment() -> dict[str, Any]:
    """What is needed to reproduce a run besides its config and seed."""
    versions = {}
    for pkg in ("nsopt", "jax", "jaxlib", "equinox", "flax", "optax", "numpy", "hydra-core", "wandb"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": platform.python_version(),
        "pid": os.getpid(),
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "versions": versions,
    }


def _stats(x: np.ndarray) -> dict[str, float | None]:
    if x.size == 0:
        return {"mean": None, "median": None, "q10": None, "q90": None, "min": None, "max": None}
    q10, med, q90 = np.quantile(x, [0.1, 0.5, 0.9])
    return {"mean": float(x.mean()), "median": float(med), "q10": float(q10), "q90": float(q90),
            "min": float(x.min()), "max": float(x.max())}


def run_experiment(cfg: Mapping[str, Any], run_dir: str | Path, logger: Logger | None = None,
                   config_yaml: str | None = None) -> dict[str, Any]:
    """Run the main job described by ``cfg`` (a plain nested dict) and write ``run_dir``.

    Returns the summary (also written to ``run_dir/summary.json``).
    """
    validate(cfg)
    with set_precision(cfg["precision"]):
        return _run(cfg, Path(run_dir), logger, config_yaml)


def _run(cfg: Mapping[str, Any], run_dir: Path, logger: Logger | None, config_yaml: str | None) -> dict:
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = logger or NoLogger()
    if config_yaml is not None:
        io.write_text(run_dir / io.CONFIG, config_yaml)

    problem = build_problem(cfg["problem"])
    if cfg["precision"] == "float32" and "kink" in dict(cfg["problem"]) and problem.name != "ring":
        log.warning("precision=float32 with %s: in low precision pre-activations can hit the kink exactly, and "
                    "then problem.kink (relu'(0)) changes the iterates (Bertoin et al. 2021); precision=float64 "
                    "makes this rarer, experiment=relu_prime counts the hits", problem.name)
    alpha = build_schedule(cfg["schedule"])
    algorithms = build_algorithms(cfg["algorithm"], alpha)
    scales = scales_of(cfg)
    n_seeds, n_inits, n_steps, every = cfg["seeds"], cfg["inits"], cfg["num_steps"], cfg["record_every"]
    w0 = build_inits(cfg["init"], problem, cfg["seed"], n_inits)
    keys = run_keys(cfg["seed"], n_seeds)
    n_runs = n_seeds * n_inits * len(scales)
    log.info("problem %s (dim %d), %d runs x %d steps (record every %d), algorithms %s",
             problem.name, problem.dim, n_runs, n_steps, every, list(algorithms))
    logger.start(cfg, run_dir)
    exit_code = 1
    try:
        arrays: dict[str, np.ndarray] = {}
        per_alg: dict[str, Any] = {}
        trajs = {}
        for name, alg in algorithms.items():
            t0 = time.perf_counter()
            go = compile_batch(alg, problem.oracle(), problem.sampler, w0, keys, n_steps, every,
                               scales=scales, objective=problem.F,
                               chunks=progress_chunks(n_steps, every) if cfg.get("progress", True) else 1)
            t1 = time.perf_counter()
            log.info("%s: compiled in %.2f s; running %d x %d steps", name, t1 - t0, n_runs, n_steps)
            update, close = step_progress(name, cfg.get("progress", True))
            try:
                traj = jax.block_until_ready(go(progress=update))
            finally:
                close()
            t2 = time.perf_counter()
            trajs[name] = traj
            obj = np.asarray(traj.objective)
            dstep = np.asarray(traj.diverged_step)
            bad = dstep >= 0
            final = obj[..., -1]
            finite_final = np.isfinite(final) & ~bad
            arrays[f"{name}/objective"] = obj
            arrays[f"{name}/tau"] = np.asarray(traj.tau)
            arrays[f"{name}/diverged_step"] = dstep
            arrays[f"{name}/w_final"] = np.concatenate(
                [np.asarray(x)[..., -1, :].reshape(n_seeds, n_inits, len(scales), -1)
                 for x in jax.tree.leaves(traj.w)], axis=-1)
            if problem.is_2d:
                arrays[f"{name}/w"] = np.asarray(traj.w)
            per_alg[name] = {
                "final_objective": _stats(final[finite_final]),
                "runs": int(bad.size),
                "diverged": int(bad.sum()),
                "diverged_runs": [
                    {"seed_index": int(i), "init_index": int(j), "scale": scales[int(s)],
                     "step": int(dstep[i, j, s])} for i, j, s in zip(*np.nonzero(bad))
                ],
                "compile_s": t1 - t0,
                "run_s": t2 - t1,
                "steps_per_s": n_runs * n_steps / max(t2 - t1, 1e-9),
            }
            if bad.any():
                log.warning("%s: %d of %d runs diverged (NaN/inf), first at step %d; they are excluded "
                            "from the statistics and listed in summary.json", name, int(bad.sum()),
                            bad.size, int(dstep[bad].min()))
            st = per_alg[name]["final_objective"]
            log.info("%s: ran in %.2f s (%.3g steps/s); final F median %s [q10 %s, q90 %s]", name,
                     t2 - t1, per_alg[name]["steps_per_s"], _fmt(st["median"]), _fmt(st["q10"]),
                     _fmt(st["q90"]))
        k = np.asarray(next(iter(trajs.values())).k).reshape(-1, n_steps // every + 1)[0]
        arrays["k"] = k
        flow_cfg = cfg.get("flow") or {"enabled": False}
        flow_info: dict[str, Any] = {}
        if flow_cfg.get("enabled", False):
            flow_info = _flow_diagnostics(problem, algorithms, trajs, scales, flow_cfg, arrays)
            for name, info in flow_info.items():
                per_alg[name]["flow"] = info
        io.write_npz(run_dir / io.METRICS, **arrays)

        rows = _history_rows(arrays, list(algorithms), k)
        logger.log_history(rows, k.tolist())

        figures: dict[str, Path] = {}
        if cfg.get("figures", True):
            figures = _figures(problem, arrays, list(algorithms), k, cfg, run_dir)
            if flow_info:
                figures.update(_flow_figures(problem, arrays, flow_info, run_dir))
            logger.log_figures(figures)

        summary = {
            "complete": True,
            "problem": problem.name,
            "dim": problem.dim,
            "algorithms": per_alg,
            "runs_per_algorithm": n_runs,
            "diverged_total": int(sum(a["diverged"] for a in per_alg.values())),
            "num_steps": n_steps,
            "record_every": every,
            "seed": cfg["seed"],
            "figures": sorted(p.name for p in figures.values()),
            "total_s": time.perf_counter() - t_start,
            "environment": environment(),
        }
        logger.log_summary({k_: v for k_, v in summary.items() if k_ != "environment"})
        io.write_json(run_dir / io.SUMMARY, summary)
        exit_code = 0
        return summary
    finally:
        logger.finish(exit_code)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _history_rows(arrays: Mapping[str, np.ndarray], names: list[str], k: np.ndarray) -> list[dict]:
    rows = [dict() for _ in k]
    for name in names:
        obj = arrays[f"{name}/objective"]
        ok = arrays[f"{name}/diverged_step"] < 0
        flat = obj[ok]  # (runs, records)
        tau = arrays[f"{name}/tau"][ok]
        if flat.size == 0:
            continue
        q10, med, q90 = np.quantile(flat, [0.1, 0.5, 0.9], axis=0)
        mean = flat.mean(0)
        tau_med = np.median(tau, axis=0)
        for i, row in enumerate(rows):
            row[f"{name}/objective_median"] = float(med[i])
            row[f"{name}/objective_q10"] = float(q10[i])
            row[f"{name}/objective_q90"] = float(q90[i])
            row[f"{name}/objective_mean"] = float(mean[i])
            row[f"{name}/tau"] = float(tau_med[i])
    return rows


def _figures(problem, arrays, names, k, cfg, run_dir: Path) -> dict[str, Path]:
    from nsopt.app import plots

    sched = dict(cfg["schedule"])
    sched_txt = sched.pop("name") + "(" + ", ".join(f"{key}={v:g}" for key, v in sched.items()) + ")"
    title = (f"{problem.name}, alpha = {sched_txt}\n{cfg['seeds']} seeds x {cfg['inits']} inits x "
             f"{len(scales_of(cfg))} scales")
    out = {
        "objective": plots.plot_objective(
            k,
            {n: arrays[f"{n}/objective"].reshape(-1, len(k)) for n in names},
            {n: (arrays[f"{n}/diverged_step"] >= 0).reshape(-1) for n in names},
            title, run_dir / "objective.png"),
    }
    if problem.is_2d:
        F = jax.jit(jax.vmap(problem.F))

        def F_np(pts: np.ndarray) -> np.ndarray:
            shape = pts.shape[:-1]
            return np.asarray(F(jnp.asarray(pts.reshape(-1, 2)))).reshape(shape)

        out["iterates"] = plots.plot_iterates_2d(
            {n: arrays[f"{n}/w"].reshape(-1, len(k), 2)[arrays[f"{n}/diverged_step"].reshape(-1) < 0]
             for n in names}, F_np, title,
            run_dir / "iterates.png")
    return out


def _flow_diagnostics(problem, algorithms, trajs, scales, fcfg, arrays) -> dict[str, Any]:
    """APT distances and Lyapunov curves of the first ``max_runs`` seeds (THEORY.md §5)."""
    from nsopt import flow

    T = float(fcfg.get("T", 1.0))
    out: dict[str, Any] = {}
    for name, traj in trajs.items():
        n = max(1, min(int(fcfg.get("max_runs", 16)), traj.tau.shape[0]))
        sub = jax.tree.map(lambda x: x[:n], traj)
        r = None
        if name == "heavy_ball":
            try:
                r = flow.heavy_ball_r(algorithms[name], scales)
            except (TypeError, ValueError) as e:
                log.warning("flow: heavy ball skipped (%s)", e)
                continue
        tau_end = float(np.min(np.asarray(sub.tau)[..., -1]))
        if tau_end <= T:
            log.warning("flow: %s skipped: its horizon tau_end = %.3g is not longer than T = %g "
                        "(lower flow.T or raise num_steps)", name, tau_end, T)
            continue
        t0 = time.perf_counter()
        times = jnp.linspace(0.0, tau_end - T, int(fcfg.get("num_times", 40)))
        d = flow.apt_distance(sub, problem.field, T, times=times, dt=fcfg.get("dt"), r=r,
                              method=fcfg.get("method", "euler"))
        d = np.asarray(d)
        arrays[f"{name}/apt_times"] = np.asarray(times)
        arrays[f"{name}/apt_distance"] = d
        ok = np.asarray(sub.diverged_step).reshape(-1) < 0
        dd = d.reshape(-1, d.shape[-1])[ok]
        info = {"T": T, "runs": int(n * d.shape[1] * d.shape[2]), "seconds": time.perf_counter() - t0,
                "apt_first_median": float(np.median(dd[:, 0])) if len(dd) else None,
                "apt_last_median": float(np.median(dd[:, -1])) if len(dd) else None}
        if r is not None:
            E = np.asarray(flow.lyapunov(sub, problem.F, r))
            arrays[f"{name}/lyapunov"] = E
            arrays[f"{name}/lyapunov_tau"] = np.asarray(sub.tau)
        out[name] = info
        log.info("flow: %s APT distance (T=%g) median %.3g at t=0 -> %.3g at t=%.3g (%.1f s)", name, T,
                 info["apt_first_median"] or float("nan"), info["apt_last_median"] or float("nan"),
                 tau_end - T, info["seconds"])
    return out


def _flow_figures(problem, arrays, flow_info, run_dir: Path) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    from nsopt import flow

    out: dict[str, Path] = {}
    curves = {n: (arrays[f"{n}/apt_times"], arrays[f"{n}/apt_distance"]) for n in flow_info}
    T = next(iter(flow_info.values()))["T"]
    fig = flow.apt_figure(curves, T=T)
    fig.axes[0].set_title(f"{problem.name}: APT distance, window T = {T:g}")
    out["apt"] = run_dir / "apt.png"
    fig.savefig(out["apt"], dpi=120, bbox_inches="tight")
    plt.close(fig)
    lyap = {n: (arrays[f"{n}/lyapunov_tau"], arrays[f"{n}/lyapunov"]) for n in flow_info
            if f"{n}/lyapunov" in arrays}
    if lyap:
        fig = flow.lyapunov_figure(lyap)
        fig.axes[0].set_title(f"{problem.name}: heavy-ball Lyapunov function along the iterates")
        out["lyapunov"] = run_dir / "lyapunov.png"
        fig.savefig(out["lyapunov"], dpi=120, bbox_inches="tight")
        plt.close(fig)
    if problem.is_2d:
        names = [n for n in flow_info if f"{n}/w" in arrays]
        fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 5), squeeze=False)
        for ax, n in zip(axes[0], names):
            w = arrays[f"{n}/w"]
            paths = w[arrays[f"{n}/diverged_step"] < 0][:6]
            flow.phase_portrait(problem.field, paths, labels=None, ax=ax,
                                title=f"{n}: iterates over the flow's streamlines")
        out["phase"] = run_dir / "phase.png"
        fig.tight_layout()
        fig.savefig(out["phase"], dpi=120)
        plt.close(fig)
    return out
