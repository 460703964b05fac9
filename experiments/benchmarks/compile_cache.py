"""JAX's persistent compilation cache for sweeps (``compilation_cache=<folder>``), side by side.

1. Compile time of a second identical job against the first: two ``python -m nsopt`` processes
   with the same fresh cache folder; each job sums JAX's own monitoring events
   (``backend_compile_duration``: XLA compilation, ``cache_retrieval_time_sec``: loading a cached
   executable; tracing and lowering, which no cache skips, are reported apart).
2. 64 one-seed jobs (``-m seed=0..63 seeds=1``, basic launcher) against one 64-seed job,
   without the cache and with it (a fresh folder: the first job fills it), wall time of each
   whole command as in ``sweep_vs_jobs.py`` (its ``measure``; figures off by default: the
   cache does not touch them, ``sweep_vs_jobs.py`` measures both).

Usage::

    python experiments/benchmarks/compile_cache.py [--seeds 64] [--steps 5000] [--figures off]
        [--out results/benchmarks_cache.md]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_vs_jobs import measure, table  # noqa: E402

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


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--figures", choices=("on", "off"), default="off", help="figures of part 2's jobs")
    ap.add_argument("--out", default="results/benchmarks_cache.md")
    args = ap.parse_args(argv)
    common = [f"num_steps={args.steps}", "record_every=10", "inits=1", "logger=none"]
    with tempfile.TemporaryDirectory() as tmp:
        cache = f"compilation_cache={tmp}/cache1"
        first, w1 = job_events(["seeds=1", *common, cache, f"hydra.run.dir={tmp}/a"], tmp)
        second, w2 = job_events(["seeds=1", *common, cache, f"hydra.run.dir={tmp}/b"], tmp)
        rows = {name: measure(args.seeds, args.steps, args.figures == "on", cache, tmp, cache)
                for name, cache in (("without cache", "off"), ("with cache", "fresh"))}
    c1, c2 = first["compile"] + first["retrieve"], second["compile"] + second["retrieve"]
    cmd = "python experiments/benchmarks/compile_cache.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "## JAX's persistent compilation cache for sweeps",
        "",
        f"Main job on the ring toy, SGD and heavy ball, {args.steps} steps, `inits=1`, wandb off (part 1: figures on). "
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
        f"### 2. {args.seeds} one-seed jobs against one {args.seeds}-seed job (basic launcher, "
        f"figures {args.figures})",
        "",
        *table(rows, args.seeds, "cache"),
        "",
        "The cache folder starts empty in each case: the first job compiles and fills it. Columns as in "
        "`results/benchmarks_sweep.md` (`sweep_vs_jobs.py`).",
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3:])
    else:
        main()
