"""Trajectories of the main job (``python -m nsopt <overrides>``) rebuilt as the app builds them.

Shared by the flow and memory benchmarks: ``compose_job(overrides)`` composes ``conf/`` with Hydra
and builds the :class:`nsopt.app.config.MainJob`; ``job_trajectories(overrides)`` runs its batches
(same keys, inits, schedule and algorithms as ``nsopt.app.main_job.run_main``) and returns
``(job, trajs, run_seconds, total_seconds)``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax

from nsopt.algorithms import compile_batch
from nsopt.app.config import build_main
from nsopt.app.main_job import run_keys
from nsopt.problems.inits import draw_many

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def compose_job(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("config", overrides=["logger=none", *overrides])
    return build_main(OmegaConf.to_container(cfg, resolve=True))


def job_trajectories(overrides: list[str]):
    t0 = time.perf_counter()
    job = compose_job(overrides)
    c, problem = job.config, job.problem
    w0 = draw_many(job.init, problem, jax.random.fold_in(jax.random.key(c.seed), 1), c.inits)
    keys = run_keys(c.seed, c.seeds)
    trajs, run_s = {}, {}
    for name, alg in job.algorithms.items():
        go = compile_batch(alg, problem.oracle(), problem.sampler, w0, keys, c.num_steps, c.record_every,
                           scales=list(c.scales), objective=problem.F)
        t = time.perf_counter()
        trajs[name] = jax.block_until_ready(go())
        run_s[name] = time.perf_counter() - t
    return job, trajs, run_s, time.perf_counter() - t0
