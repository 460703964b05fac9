"""Peak memory (resident set high-water mark, ``VmHWM``) of the main job and of a 1024-run batch.

Each configuration runs in its own subprocess, which prints its ``VmHWM`` from ``/proc/self/status``
at exit; ``baseline`` is a process that only imports nsopt and initialises JAX, so the difference
is the memory the workload adds.  Also reported: the bytes of the recorded trajectory, the part that
grows like ``num_steps / record_every`` (tests/core/test_memory.py checks the bound).

Usage::

    python experiments/benchmarks/memory.py [--out results/benchmarks_core.md] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from _common import emit  # noqa: E402

HWM = ("import atexit\n"
       "def _hwm():\n"
       "    for line in open('/proc/self/status'):\n"
       "        if line.startswith('VmHWM'): print('VMHWM_KB', int(line.split()[1]), flush=True)\n"
       "atexit.register(_hwm)\n")

BASELINE = HWM + "import jax, jax.numpy as jnp, nsopt\njax.block_until_ready(jnp.ones(3) + 1)\n"

BATCH = HWM + """
import jax, numpy as np, nsopt
from nsopt.problems import ring, relu_digits
name, seeds, inits, steps, every = {args!r}
p = ring(noise=0.5) if name == "ring" else relu_digits(kink=1.0)
alg = nsopt.sgd(nsopt.schedules.inverse_power(0.5, 10.0, 0.75))
w0 = p.inits(jax.random.key(1), inits)
go = nsopt.compile_batch(alg, p.oracle(), p.sampler, w0, seeds, steps, every, objective=p.F)
traj = jax.block_until_ready(go())
nbytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(traj))
print("TRAJ_BYTES", nbytes, "RUNS", int(np.prod(traj.tau.shape[:-1])), flush=True)
"""

JOB = HWM + """
import sys, runpy
sys.argv = ["nsopt"] + {args!r}
try:
    runpy.run_module("nsopt", run_name="__main__")
except SystemExit as e:
    if e.code not in (0, None):
        raise
"""


def run(code: str) -> tuple[dict, float]:
    t = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"failed:\n{code}\n{out.stderr[-3000:]}")
    info = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("VMHWM_KB", "TRAJ_BYTES"):
            info.update({parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)})
    return info, time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="nsopt_mem_")
    relu = ["problem=relu_digits", "problem.kink=1.0", "num_steps=2000", "record_every=100"]
    common = ["logger=none", "figures=false", "progress=false"]
    configs = [
        ("baseline: import nsopt, initialise JAX", BASELINE),
        ("main job, defaults (ring, 16 seeds x 4 inits x 5000 steps, record_every 10, flow.steps 1024)",
         JOB.format(args=common + [f"run_dir={tmp}/ring"])),
        ("main job, README relu_digits, flow=none", JOB.format(args=relu + common + ["flow=none", f"run_dir={tmp}/r0"])),
        ("main job, README relu_digits, flow.steps=8 flow.max_runs=4",
         JOB.format(args=relu + common + ["flow.steps=8", "flow.max_runs=4", f"run_dir={tmp}/r1"])),
        ("batch of 1024 runs: ring, 256 seeds x 4 inits x 5000 steps, record_every 10",
         BATCH.format(args=("ring", 256, 4, 5000, 10))),
        ("batch of 1024 runs: relu_digits, 256 seeds x 4 inits x 2000 steps, record_every 100",
         BATCH.format(args=("relu", 256, 4, 2000, 100))),
    ]
    rows, stages = [], []
    for name, code in configs:
        info, secs = run(code)
        rows.append((name, info, secs))
        print(name, info, f"{secs:.1f} s", flush=True)
        m = re.search(r"run_dir=(\S+?)'", code)
        summary = Path(m.group(1)) / "summary.json" if m else None
        if summary is not None and summary.exists():  # the job's own stage timings
            algs = json.loads(summary.read_text())["algorithms"]
            runs = sum(a["compile_s"] + a["run_s"] for a in algs.values())
            flow = sum(a["flow"]["seconds"] for a in algs.values() if "flow" in a)
            stages.append(f"{name}: runs stage {runs:.1f} s (compile + run, all algorithms), flow stage {flow:.1f} s")
            print(stages[-1], flush=True)
    base = rows[0][1]["VMHWM_KB"]
    lines = [f"## Peak memory (`python {' '.join(sys.argv)}`)", "",
             "VmHWM (peak resident set) of one subprocess per configuration, float32, CPU; `added` = minus the "
             "baseline process (import nsopt + JAX initialised).", "",
             "| configuration | peak RSS (MiB) | added (MiB) | recorded trajectory (MiB) | wall (s) |", "|---|---|---|---|---|"]
    for name, info, secs in rows:
        kb = info["VMHWM_KB"]
        tb = f"{info['TRAJ_BYTES'] / 2**20:.1f}" if "TRAJ_BYTES" in info else "-"
        lines.append(f"| {name} | {kb / 1024:.0f} | {(kb - base) / 1024:.0f} | {tb} | {secs:.0f} |")
    lines += ["", "Stage timings from the jobs' summary.json:", ""] + [f"- {x}" for x in stages]
    out = "\n".join(lines) + "\n"
    emit(out, args.out)


if __name__ == "__main__":
    main()
