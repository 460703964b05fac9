"""A 64-seed sweep as one vmapped job vs 64 one-seed Hydra jobs (basic launcher).

Both run SGD and heavy ball on the ring toy (the main job's defaults) with
``num_steps`` steps; wall time of each whole command (process start, JAX
compile, runs, figures, run folders), measured with ``time.perf_counter``
around ``subprocess.run``.

Usage::

    python experiments/benchmarks/sweep_vs_jobs.py [--seeds 64] [--steps 5000] [--out results/benchmarks_sweep.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str], cwd: str) -> float:
    env = dict(os.environ, WANDB_MODE="disabled")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "nsopt", *args], cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"command failed: {args}\n{out.stderr[-2000:]}")
    return dt


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--out", default="results/benchmarks_sweep.md")
    args = ap.parse_args(argv)
    common = [f"num_steps={args.steps}", "record_every=10", "inits=1", "logger=none"]
    with tempfile.TemporaryDirectory() as tmp:
        one = timed([f"seeds={args.seeds}", *common, f"hydra.run.dir={tmp}/one"], tmp)
        seeds = ",".join(str(s) for s in range(args.seeds))
        many = timed(["-m", f"seed={seeds}", "seeds=1", *common, f"hydra.sweep.dir={tmp}/many"], tmp)
    cmd = "python experiments/benchmarks/sweep_vs_jobs.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "## Sweep: one vmapped job vs one Hydra job per seed",
        "",
        f"{args.seeds} seeds x {args.steps} steps of SGD and heavy ball on the ring toy (figures on, wandb off). "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores.",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        "| how | wall time (s) |",
        "|---|---|",
        f"| one job, `seeds={args.seeds}` (vmapped batch) | {one:.1f} |",
        f"| {args.seeds} jobs, `-m seed=0..{args.seeds - 1} seeds=1` (basic launcher) | {many:.1f} |",
        "",
        f"Ratio: {many / one:.1f}x in favour of the vmapped batch.",
        "",
    ])
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
