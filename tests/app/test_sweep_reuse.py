"""Jobs of a basic-launcher sweep run in one process and reuse compiled programs: safely.

A job that differs from an earlier one only in traced values (seed, schedule parameters)
compiles no program of its runs (JAX's in-memory caches are keyed by everything static:
the pytree structure of the problem, algorithm and oracle with their static fields, shapes,
dtypes and the loop sizes); a job that differs in a static field (heavy ball's
``init_momentum``, a string that changes the program but no shape) compiles its own; and
the numbers of a job that reused programs are bitwise those of a fresh process.  (Another
schedule changes the horizon ``tau``, hence the number of flow windows, a shape: the flow
diagnostics then compile their kernel again, the runs do not.)
"""

import re
import subprocess
import sys

import numpy as np

from app_helpers import cli_env, nsopt_cli

# python -m nsopt, counting XLA compilations per job (JAX's monitoring events)
COUNTING = r"""
import sys
from jax import monitoring

count = [0, 0]  # all XLA compilations, those of the runs' programs

def listen(name, secs, fun_name="", **kw):
    if name == "/jax/core/compile/backend_compile_duration":
        count[0] += 1
        count[1] += fun_name.startswith(("jit(_grid_", "jit(_assemble"))

monitoring.register_event_duration_secs_listener(listen)
import nsopt.app.cli as cli

run_task = cli.task

def task(cfg):
    before = list(count)
    out = run_task(cfg)
    print(f"COMPILES {count[0] - before[0]} RUNS {count[1] - before[1]}", flush=True)
    return out

cli.task = task
sys.argv = ["nsopt", *sys.argv[1:]]
cli.main()
"""

SMALL = ["seeds=2", "inits=1", "num_steps=200", "record_every=20", "logger=none", "figures=false",
         "compilation_cache=false"]


def test_sweep_jobs_reuse_programs_only_when_static_fields_agree(tmp_path):
    script = tmp_path / "counting.py"
    script.write_text(COUNTING)
    sweep = tmp_path / "sweep"
    # Hydra's basic sweeper: the first override varies slowest -> jobs 0-3 oracle, 4-7 zero
    grid = ["algorithm.heavy_ball.init_momentum=oracle,zero", "schedule.a=0.5,0.3", "seed=0,1"]
    out = subprocess.run([sys.executable, str(script), "-m", *grid, *SMALL, f"hydra.sweep.dir={sweep}"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = [tuple(map(int, c)) for c in re.findall(r"COMPILES (\d+) RUNS (\d+)", out.stdout)]
    assert len(jobs) == 8, out.stdout[-2000:]
    total, runs = zip(*jobs)
    assert runs[0] >= 2 and runs[4] >= 2, jobs  # the first job, a new static field: the runs compiled
    assert runs[1:4] == (0, 0, 0) and runs[5:] == (0, 0, 0), jobs  # traced values only: reused
    assert [total[i] for i in (1, 3, 5, 6, 7)] == [0] * 5, jobs  # seed only (or seen before): nothing at all

    # the static difference is real: heavy ball starts from y_0 = 0 instead of y_0 = v_0
    first, zero = np.load(sweep / "0" / "metrics.npz"), np.load(sweep / "4" / "metrics.npz")
    np.testing.assert_array_equal(first["sgd/objective"], zero["sgd/objective"])
    assert not np.array_equal(first["heavy_ball/objective"], zero["heavy_ball/objective"])

    # a job that reused programs (after a static switch) gives bitwise a fresh process's numbers
    fresh = tmp_path / "fresh"
    one = nsopt_cli(["algorithm.heavy_ball.init_momentum=zero", "schedule.a=0.3", "seed=1", *SMALL,
                     f"hydra.run.dir={fresh}"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = np.load(sweep / "7" / "metrics.npz"), np.load(fresh / "metrics.npz")
    assert sorted(a.files) == sorted(b.files) and "heavy_ball/apt_distance" in a.files
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # and the traced values did reach the program: another seed, other numbers
    assert not np.array_equal(a["sgd/objective"], np.load(sweep / "6" / "metrics.npz")["sgd/objective"])

