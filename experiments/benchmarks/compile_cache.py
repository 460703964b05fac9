"""JAX's persistent compilation cache for sweeps (``compilation_cache=<folder>``), side by side.

1. Compile time of a second identical job against the first: two ``python -m nsopt`` processes
   with the same fresh cache folder; each job sums JAX's own monitoring events
   (``backend_compile_duration``: XLA compilation, ``cache_retrieval_time_sec``: loading a cached
   executable; tracing and lowering, which no cache skips, are reported apart).
2. 64 one-seed jobs (``-m seed=0..63 seeds=1``, basic launcher) against one 64-seed job,
   without the cache and with it (a fresh folder: the first job fills it), wall time of each
   whole command as in ``sweep_vs_jobs.py`` (the 16.8x of ``results/benchmarks_sweep.md``).

Usage::

    python experiments/benchmarks/compile_cache.py [--seeds 64] [--steps 5000] [--out results/benchmarks_cache.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENTS = {"compile": "/jax/core/compile/backend_compile_duration",
          "retrieve": "/jax/compilation_cache/cache_retrieval_time_sec",
          "trace": "/jax/core/compile/jaxpr_trace_duration",
          "lower": "/jax/core/compile/jaxpr_to_mlir_module_duration"}


def _child(out: str, argv: list[str]) -> None:
    """Run ``python -m nsopt <argv>`` in this process, summing JAX's compile events into ``out``."""
    from jax import monitoring

    sums = {k: 0.0 for k in EVENTS}
    names = {v: k for k, v in EVENTS.items()}

    def listen(name, secs, **kw):
        if name in names:
            sums[names[name]] += secs

    monitoring.register_event_duration_secs_listener(listen)
    from nsopt.app.cli import main

    sys.argv = ["nsopt", *argv]
    try:
        main()
    finally:
        Path(out).write_text(json.dumps(sums))


def job_events(args: list[str], cwd: str) -> tuple[dict, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    t = time.perf_counter()
    run = subprocess.run([sys.executable, __file__, "--child", out, *args], cwd=cwd,
                         env=dict(os.environ, WANDB_MODE="disabled"), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if run.returncode != 0:
        raise SystemExit(f"job failed: {args}\n{run.stderr[-2000:]}")
    return json.loads(Path(out).read_text()), wall


def timed(args: list[str], cwd: str) -> float:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "nsopt", *args], cwd=cwd, env=dict(os.environ, WANDB_MODE="disabled"),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"command failed: {args}\n{out.stderr[-2000:]}")
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--out", default="results/benchmarks_cache.md")
    args = ap.parse_args(argv)
    common = [f"num_steps={args.steps}", "record_every=10", "inits=1", "logger=none"]
    with tempfile.TemporaryDirectory() as tmp:
        cache = f"compilation_cache={tmp}/cache1"
        first, w1 = job_events(["seeds=1", *common, cache, f"hydra.run.dir={tmp}/a"], tmp)
        second, w2 = job_events(["seeds=1", *common, cache, f"hydra.run.dir={tmp}/b"], tmp)
        seeds = ",".join(str(s) for s in range(args.seeds))
        rows = {}
        for name, flag in (("without cache", "compilation_cache=false"), ("with cache", f"compilation_cache={tmp}/cache2")):
            one = timed([f"seeds={args.seeds}", *common, flag, f"hydra.run.dir={tmp}/one-{len(rows)}"], tmp)
            many = timed(["-m", f"seed={seeds}", "seeds=1", *common, flag, f"hydra.sweep.dir={tmp}/many-{len(rows)}"], tmp)
            rows[name] = (one, many)
    c1, c2 = first["compile"] + first["retrieve"], second["compile"] + second["retrieve"]
    cmd = "python experiments/benchmarks/compile_cache.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "## JAX's persistent compilation cache for sweeps",
        "",
        f"Main job on the ring toy, SGD and heavy ball, {args.steps} steps, `inits=1`, figures on, wandb off. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other work).",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        "### 1. A second identical job against the first (same fresh cache folder, separate processes)",
        "",
        "| job | XLA compile + cache load (s) | tracing + lowering (s) | process wall time (s) |",
        "|---|---|---|---|",
        f"| first (cache empty) | {c1:.2f} | {first['trace'] + first['lower']:.2f} | {w1:.1f} |",
        f"| second (cache hit) | {c2:.2f} | {second['trace'] + second['lower']:.2f} | {w2:.1f} |",
        "",
        f"Compile time ratio second / first: **{c2 / c1:.3f}** (goal 0.2 or less); with tracing and lowering, "
        f"which the cache does not skip: {(c2 + second['trace'] + second['lower']) / (c1 + first['trace'] + first['lower']):.3f}.",
        "",
        f"### 2. {args.seeds} one-seed jobs against one {args.seeds}-seed job (basic launcher)",
        "",
        f"| cache | one job, `seeds={args.seeds}` (s) | {args.seeds} jobs, `-m seed=0..{args.seeds - 1} seeds=1` (s) | ratio |",
        "|---|---|---|---|",
    ]
    for name, (one, many) in rows.items():
        lines.append(f"| {name} | {one:.1f} | {many:.1f} | **{many / one:.1f}x** |")
    lines += ["", "The cache folder starts empty in each case: the first job compiles and fills it. "
              "The vmapped job stays the recommended way; the cache makes one job per point bearable.", ""]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3:])
    else:
        main()
