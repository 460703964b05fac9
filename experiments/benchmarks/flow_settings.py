"""Flow stage settings for the README relu_digits job: cost against the runs, accuracy against a fine reference.

Workload: ``python -m nsopt problem=relu_digits problem.kink=1.0 num_steps=2000 record_every=100``
(16 seeds x 4 inits, float32, SGD and heavy ball), runs rebuilt with the app's builders
(``_jobdata.py``) and timed as the job does (build + compile + run of both algorithms).
For each setting ``method:steps:seeds`` the flow stage (``flow.diagnose`` on the first ``seeds``
seeds, window ``T = 1``, start times every ``T / 2`` as the job's default) is timed, compile apart.

Accuracy: on the first seed (4 runs) of each algorithm, the certified distances of every setting
are compared with a reference (``rk4``, ``dt = T / --ref-steps``) at the same start times (multiples
of ``T / 2``, on every grid): ``|d - d_ref|`` against the setting's error estimate plus the
reference's (``bounded``: the estimate covers the observed error in every window).

Usage::

    python experiments/benchmarks/flow_settings.py [--settings heun:8:16 rk4:4:16 heun:8:4] \
        [--ref-steps 32] [--out results/benchmarks_flow.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit  # noqa: E402
from _jobdata import job_trajectories  # noqa: E402

from nsopt import flow  # noqa: E402

RELU_JOB = ["problem=relu_digits", "problem.kink=1.0", "num_steps=2000", "record_every=100"]
T = 1.0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", nargs="+", default=["heun:8:16", "rk4:4:16", "heun:8:4"])
    ap.add_argument("--ref-steps", type=int, default=32)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    job, trajs, run_s, runs_total = job_trajectories(RELU_JOB)
    problem = job.problem
    print(f"runs (build + compile + run, both algorithms): {runs_total:.1f} s; run only {run_s}")
    span = min(float(np.min(np.asarray(tr.tau)[..., -1] - np.asarray(tr.tau)[..., 0])) for tr in trajs.values())
    starts = 0.5 * T * np.arange(int(np.floor((span - T) / (0.5 * T))) + 1)  # on every grid T / 2^k
    ref = {}
    for name, traj in trajs.items():
        sub = jax.tree.map(lambda x: x[:1], traj)
        times = np.asarray(sub.tau)[..., :1] + starts
        t = time.perf_counter()
        ref[name] = flow.diagnose(sub, problem.field, T, times=times, method="rk4", dt=T / args.ref_steps)
        print(f"reference {name}: rk4 T/{args.ref_steps}, {time.perf_counter() - t:.1f} s")
    rows = []
    for setting in args.settings:
        method, steps, seeds = setting.split(":")
        steps, seeds = int(steps), int(seeds)
        stage, acc = 0.0, []
        res, meds = [], []
        for name, traj in trajs.items():
            sub = jax.tree.map(lambda x: x[:seeds], traj)
            times = np.asarray(sub.tau)[..., :1] + starts
            t = time.perf_counter()
            rep = flow.diagnose(sub, problem.field, T, times=times, method=method, dt=T / steps,
                                F=problem.F if sub.r is not None else None)
            stage += time.perf_counter() - t
            rf = ref[name]
            d, e = np.asarray(rep.distance)[:1], np.asarray(rep.error)[:1]
            obs = np.abs(d - np.asarray(rf.distance))
            bound = e + np.asarray(rf.error)
            acc.append((float(obs.max()), float((obs / d).max()), float((e / d).max()), bool(np.all(obs <= bound)),
                        float(np.max(obs / bound))))
            ok = np.asarray(sub.diverged_step) < 0
            res.append(float(np.asarray(rep.resolved)[ok].mean()))
            meds.append((float(np.median(np.asarray(rep.distance)[..., -1])), rep.compile_s, rep.flow_s))
            print(setting, name, f"stage {time.perf_counter() - t:.1f} s (compile {rep.compile_s:.1f}, flow "
                  f"{rep.flow_s:.1f}), max |d - ref| {acc[-1][0]:.2e} = {acc[-1][1]:.1%} of d, estimate <= "
                  f"{acc[-1][2]:.1%} of d, bounded {acc[-1][3]} (obs / bound max {acc[-1][4]:.2f}), resolved {res[-1]:.2f}")
        rows.append((setting, method, steps, seeds, stage, acc, res, meds))
    load1 = os.getloadavg()[0]
    lines = [f"## relu_digits flow stage: settings (`python {' '.join(sys.argv)}`)", "",
             f"Runs stage (build + compile + run, SGD and heavy ball, 64 runs each): **{runs_total:.1f} s** "
             f"(run only: {', '.join(f'{k} {v:.1f} s' for k, v in run_s.items())}). {len(starts)} start times "
             f"(every T/2, T = {T:g}). Accuracy on the first seed (4 runs) against rk4 T/{args.ref_steps} at the "
             "same start times; `bounded`: |d - d_ref| <= error + error_ref in every window.", "",
             "| method, dt, seeds (runs) | flow stage, both algorithms (s) | stage / runs | compile (s) | "
             "max abs(d - d_ref) / d (sgd, hb) | max error estimate / d (sgd, hb) | bounded | max obs / bound | "
             "resolved (sgd, hb) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for setting, method, steps, seeds, stage, acc, res, meds in rows:
        lines.append(
            f"| {method}, T/{steps}, {seeds} ({seeds * 4}) | {stage:.1f} | {stage / runs_total:.2f} | "
            f"{sum(m[1] for m in meds):.1f} | {acc[0][1]:.1%}, {acc[1][1]:.1%} | {acc[0][2]:.1%}, {acc[1][2]:.1%} | "
            f"{acc[0][3] and acc[1][3]} | {max(a[4] for a in acc):.2f} | {res[0]:.2f}, {res[1]:.2f} |")
    lines += ["", f"1-minute load average {load0:.1f} at the start, {load1:.1f} at the end (shared 2-core box; "
              "runs and flow measured in the same process, so the ratio is the number to read).", ""]
    out = "\n".join(lines)
    emit(out, args.out)


if __name__ == "__main__":
    main()
