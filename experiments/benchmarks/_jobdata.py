"""Trajectories of the main job (``python -m nsopt problem=...``) rebuilt with the app's own builders.

Shared by the flow benchmarks: ``job_trajectories(problem, num_steps, record_every, seeds, inits)``
returns ``(problem, algorithms, scales, trajs, run_seconds)`` exactly as ``nsopt.app.experiment``
builds them (same keys, inits, schedule and algorithms; default config values), so that the flow
stage can be measured against the runs of the same job.
"""

from __future__ import annotations

import time

import jax

from nsopt.algorithms import compile_batch
from nsopt.app.config import build_algorithms, build_inits, build_problem, build_schedule, run_keys

DEFAULT_SCHEDULE = {"name": "inverse_power", "a": 0.5, "b": 10.0, "p": 0.75}
DEFAULT_ALGORITHM = {"name": "sgd_and_heavy_ball", "beta": {"kind": "proportional", "value": 1.0},
                     "init_momentum": "oracle"}


def job_trajectories(problem_cfg: dict, num_steps: int, record_every: int, seeds: int = 16,
                     inits: int = 4, seed: int = 0, schedule: dict | None = None):
    problem = build_problem(problem_cfg)
    algorithms = build_algorithms(DEFAULT_ALGORITHM, build_schedule(schedule or DEFAULT_SCHEDULE))
    scales = [1.0]
    w0 = build_inits({"name": "default"}, problem, seed, inits)
    keys = run_keys(seed, seeds)
    trajs, run_s = {}, {}
    for name, alg in algorithms.items():
        go = compile_batch(alg, problem.oracle(), problem.sampler, w0, keys, num_steps, record_every,
                           scales=scales, objective=problem.F)
        t = time.perf_counter()
        trajs[name] = jax.block_until_ready(go())
        run_s[name] = time.perf_counter() - t
    return problem, algorithms, scales, trajs, run_s
