"""A 64-seed sweep as one vmapped job vs 64 one-seed Hydra jobs (basic launcher), figures on and off.

Both run SGD and heavy ball on the ring toy (the main job's defaults) with ``num_steps``
steps; wall time of each whole command (process start, JAX compile, runs, flow
diagnostics, figures, run folders), measured with ``time.perf_counter`` around
``subprocess.run``.  The basic launcher runs every job in one process, so jobs after the
first reuse the compiled programs in memory; what a job still costs is read from the run
folders: each job's own time (``total_s`` of its ``summary.json``: runs, flow, figures,
files) and the rest (Hydra composing the job's config, its ``.hydra`` folder and logging).

Usage::

    python experiments/benchmarks/sweep_vs_jobs.py [--seeds 64] [--steps 5000] [--figures on,off]
        [--cache fresh|off] [--out results/benchmarks_sweep.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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


def job_seconds(sweep: Path) -> list[float]:
    """``total_s`` of every job of a sweep folder, in job order."""
    jobs = sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [json.loads((p / "summary.json").read_text())["total_s"] for p in jobs]


def measure(seeds: int, steps: int, figures: bool, cache: str, tmp: str, tag: str) -> dict:
    """One ``seeds``-seed job and ``seeds`` one-seed jobs (a fresh cache folder each when ``cache``
    is a folder); wall times, and the median job of the sweep after the first (its own time
    and the launcher's share)."""
    common = [f"num_steps={steps}", "record_every=10", "inits=1", "logger=none", f"figures={str(figures).lower()}"]
    load0 = os.getloadavg()[0]
    flag = lambda name: "compilation_cache=false" if cache == "off" else f"compilation_cache={tmp}/cache-{tag}-{name}"
    one = timed([f"seeds={seeds}", *common, flag("one"), f"hydra.run.dir={tmp}/one-{tag}"], tmp)
    sweep = Path(tmp) / f"many-{tag}"
    many = timed(["-m", "seed=" + ",".join(map(str, range(seeds))), "seeds=1", *common, flag("many"),
                  f"hydra.sweep.dir={sweep}"], tmp)
    per = job_seconds(sweep)
    rest = per[1:] or per
    med_job = statistics.median(rest)
    # the process start (imports, Hydra's first composition) is the one job's wall time outside its job
    start = one - json.loads((Path(tmp) / f"one-{tag}" / "summary.json").read_text())["total_s"]
    launcher = (many - start - sum(per)) / len(per)
    return {"one": one, "many": many, "ratio": many / one, "first_job": per[0], "job": med_job,
            "launcher": launcher, "start": start, "load": (load0, os.getloadavg()[0])}


def table(rows: dict[str, dict], seeds: int, first: str = "figures") -> list[str]:
    lines = [
        f"| {first} | one job, `seeds={seeds}` (s) | {seeds} jobs, `-m seed=0..{seeds - 1} seeds=1` (s) | ratio "
        "| process start (s) | first job (s) | later job, median (s) | launcher per job (s) "
        "| load average (start, end) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['one']:.1f} | {r['many']:.1f} | **{r['ratio']:.1f}x** | {r['start']:.1f} | {r['first_job']:.2f} "
                     f"| {r['job']:.3f} | {r['launcher']:.3f} | {r['load'][0]:.1f}, {r['load'][1]:.1f} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--figures", default="on,off", help="comma-separated: on, off")
    ap.add_argument("--cache", choices=("fresh", "off"), default="fresh",
                    help="fresh: a new compilation cache folder per command; off: compilation_cache=false")
    ap.add_argument("--out", default="results/benchmarks_sweep.md")
    args = ap.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for f in args.figures.split(","):
            rows[f] = measure(args.seeds, args.steps, f == "on", args.cache, tmp, f)
    cmd = "python experiments/benchmarks/sweep_vs_jobs.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "## Sweep: one vmapped job vs one Hydra job per seed",
        "",
        f"{args.seeds} seeds x {args.steps} steps of SGD and heavy ball on the ring toy, flow diagnostics on, "
        f"wandb off, compilation cache {'off' if args.cache == 'off' else 'on (a fresh folder per command)'}. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores.",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        *table(rows, args.seeds),
        "",
        "Process start: the one job's wall time outside its own time (imports, Hydra's first composition). "
        "First and later job: a job's own time (`total_s` in its `summary.json`: runs, flow, figures, files); "
        "the first compiles, later ones reuse its programs in the same process. Launcher per job: the "
        "sweep's wall time minus the process start and the jobs' own times, per job (Hydra composing "
        "each job's config, its `.hydra` folder, logging).",
        "",
    ])
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
