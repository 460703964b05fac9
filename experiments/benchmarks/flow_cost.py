"""Cost of the main job's flow stage vs its runs: today's apt_distance call vs flow.diagnose.

Workload: the README job ``python -m nsopt problem=relu_digits problem.kink=1.0 num_steps=2000
record_every=100`` (16 seeds x 4 inits, float32), or ``--problem ring`` (main-job defaults:
5000 steps, record_every 10).  Runs are rebuilt with the app's builders (``_jobdata.py``) and timed
(compile + run).  The old flow stage (``apt_distance``, Euler, dt = T/200, 40 start times) is timed
on ``--old-seeds`` of the 16 seeds and scaled linearly to 16 (its cost is linear in the runs);
``flow.diagnose`` (defaults below) runs on all 16 seeds.

Usage::

    python experiments/benchmarks/flow_cost.py [--problem relu] [--old-seeds 2] [--out results/benchmarks_flow_cost.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _jobdata import job_trajectories  # noqa: E402

from nsopt import flow  # noqa: E402

RELU_JOB = ["problem=relu_digits", "problem.kink=1.0", "num_steps=2000", "record_every=100"]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--problem", default="relu", choices=["relu", "ring"])
    ap.add_argument("--old-seeds", type=int, default=2)
    ap.add_argument("--method", default=flow.DEFAULT_METHOD)
    ap.add_argument("--steps", type=int, default=flow.DEFAULT_STEPS)
    ap.add_argument("--max-steps", type=int, default=256)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if args.problem == "relu":
        job, trajs, run_s, runs_total = job_trajectories(RELU_JOB)
    else:
        job, trajs, run_s, runs_total = job_trajectories(["problem=ring"])
    problem = job.problem
    rows = []
    for name, traj in trajs.items():
        tau_end = float(np.min(np.asarray(traj.tau)[..., -1]))
        old = jax.tree.map(lambda x: x[: args.old_seeds], traj)
        times = jnp.linspace(0.0, tau_end - 1.0, 40)
        t = time.perf_counter()
        d_old = jax.block_until_ready(flow.apt_distance(old, problem.field, 1.0, times=times, method="euler"))
        t_old = (time.perf_counter() - t) * 16 / args.old_seeds
        prog = []
        rep = flow.diagnose(traj, problem.field, 1.0, method=args.method, dt=1.0 / args.steps,
                            max_steps=args.max_steps, F=problem.F,
                            progress=lambda d, tot: prog.append(time.perf_counter()))
        s = rep.summary(np.asarray(traj.diverged_step) < 0)
        rows.append((name, run_s[name], t_old, rep, s, np.median(np.asarray(d_old)[..., [0, -1]].reshape(-1, 2), 0)))
        print(name, f"runs {run_s[name]:.1f}s old flow (scaled) {t_old:.1f}s new flow compile {rep.compile_s:.1f}s "
              f"run {rep.flow_s:.1f}s dt={rep.dt:g} J={rep.times.shape[-1]}", s, "old first/last median", rows[-1][-1])
    lines = [f"## flow stage vs runs: {args.problem} (`python {' '.join(sys.argv)}`)", "",
             f"Runs of both algorithms (build, compile and run): {runs_total:.1f} s.", "",
             "| algorithm | runs: run only (s) | old flow stage (s, scaled from "
             f"{args.old_seeds}/16 seeds) | diagnose compile (s) | diagnose run (s) | method, dt, start times | "
             "APT first -> last (median) | error first -> last (median) | resolved | old APT first -> last |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, rs, to, rep, s, od in rows:
        lines.append(f"| {name} | {rs:.1f} | {to:.1f} | {rep.compile_s:.1f} | {rep.flow_s:.1f} | {rep.method}, "
                     f"T/{round(rep.T / rep.dt)}, {rep.times.shape[-1]} | {s['apt_first_median']:.3g} -> "
                     f"{s['apt_last_median']:.3g} | {s['error_first_median']:.2g} -> {s['error_last_median']:.2g} | "
                     f"{s['resolved_fraction']:.2f} | {od[0]:.3g} -> {od[1]:.3g} |")
    out = "\n".join(lines) + "\n"
    print(out)
    if args.out:
        with open(args.out, "a") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
