"""Launchers without Slurm: joblib job numbers on log lines, submitit_local log paths and summary,
the end-of-multirun report command, and JAX's persistent compilation cache across processes."""

import logging
import re
import subprocess
import sys

import pytest

from nsopt.app import compilation_cache
from nsopt.app.callbacks import JobNumberFilter
from nsopt.report import collect

from app_helpers import cli_env, nsopt_cli

SMALL = ["seeds=2", "inits=2", "num_steps=200", "record_every=20", "logger=none", "figures=false",
         "algorithm=sgd", "progress=false"]


def test_job_number_filter_prefixes_once():
    rec = logging.LogRecord("nsopt", logging.INFO, __file__, 1, "sgd: compiled", None, None)
    f0 = JobNumberFilter(0)
    assert f0.filter(rec) and f0.filter(rec)  # two handlers: one prefix
    assert rec.getMessage() == "[job 0] sgd: compiled"


def test_joblib_log_lines_carry_job_numbers_and_report_command(tmp_path):
    sweep = tmp_path / "sweep"
    out = nsopt_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", *SMALL,
                     f"hydra.sweep.dir={sweep}"], tmp_path, timeout=300, env=cli_env())
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    nsopt_lines = [line for line in text.splitlines() if "[nsopt]" in line]
    assert nsopt_lines and all(re.search(r"- \[job [01]\] ", line) for line in nsopt_lines), nsopt_lines
    assert {re.search(r"\[job (\d)\]", line).group(1) for line in nsopt_lines} == {"0", "1"}
    assert f"nsopt: sweep folder {sweep.resolve()}" in out.stdout
    assert f"-m nsopt.report {sweep.resolve()}" in out.stdout
    assert [j.status for j in collect(sweep)] == ["complete", "complete"]


def test_submitit_local_prints_logs_and_summary(tmp_path):
    sweep = tmp_path / "sweep"
    out = nsopt_cli(["-m", "hydra/launcher=submitit_local", "seed=0,1", *SMALL, f"hydra.sweep.dir={sweep}",
                     "hydra.launcher.timeout_min=10"], tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    logs = re.findall(r"nsopt: job (\d) \[.*\] submitted as local job \S+; log: (\S+)", out.stdout)
    assert [n for n, _ in logs] == ["0", "1"]
    for n, path in logs:
        assert f"job {n} [seed={n}," in open(path).read()  # the job's own output is in that file
    assert "nsopt: all 2 jobs ended after" in out.stdout and ": 2 finished;" in out.stdout
    assert "validated against ConfigStore schema" not in out.stderr
    assert [j.status for j in collect(sweep)] == ["complete", "complete"]


_PROBE = """
import sys, jax, jax.numpy as jnp
from jax import monitoring
from nsopt.app import compilation_cache
events = []
monitoring.register_event_listener(lambda name, **kw: events.append(name))
compilation_cache.setup(sys.argv[1])
f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + 1.0)
print(float(f(jnp.ones((8, 8))).sum()))
print("hits", events.count("/jax/compilation_cache/cache_hits"),
      "misses", events.count("/jax/compilation_cache/cache_misses"))
"""


def _probe(folder):
    out = subprocess.run([sys.executable, "-c", _PROBE, str(folder)], env=cli_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    value, counts = out.stdout.split("\n")[:2]
    _, hits, _, misses = counts.split()
    return float(value), int(hits), int(misses)


def test_compilation_cache_hits_across_processes(tmp_path):
    cache = tmp_path / "jax-cache"
    v1, hits1, misses1 = _probe(cache)
    assert hits1 == 0 and misses1 >= 1
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert entries and not list(cache.glob(".*.tmp"))  # entries in place, no temporary file left
    v2, hits2, misses2 = _probe(cache)
    assert hits2 >= 1 and misses2 == 0 and v2 == v1


def test_compilation_cache_default_dir_and_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache.default_dir() == tmp_path / "xdg" / "nsopt" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilation_cache.default_dir() == tmp_path / "home" / ".cache" / "nsopt" / "jax"


def test_compilation_cache_bad_value_is_a_config_error(tmp_path):
    out = nsopt_cli(["compilation_cache=3", *SMALL, f"hydra.run.dir={tmp_path / 'r'}"], tmp_path, timeout=120)
    assert out.returncode == 2 and "compilation_cache=3 is not allowed" in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize("value", ["false"])
def test_compilation_cache_off_writes_nothing(tmp_path, value):
    env = cli_env(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    out = nsopt_cli([f"compilation_cache={value}", *SMALL, f"hydra.run.dir={tmp_path / 'r'}"], tmp_path,
                    timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (tmp_path / "xdg" / "nsopt" / "jax").exists()
    out = nsopt_cli([*SMALL, f"hydra.run.dir={tmp_path / 'r2'}"], tmp_path, timeout=300, env=env)
    assert out.returncode == 0 and any((tmp_path / "xdg" / "nsopt" / "jax").iterdir())  # default: on
