"""Hydra multiruns really launched: basic and submitit_local launchers, report, resume, failures, wandb groups."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nsopt.app.wandb_records import read_run
from nsopt.report import collect, write_report

from app_helpers import cli_env
from app_helpers import nsopt_cli as _cli

SMALL = ["seeds=2", "inits=2", "num_steps=200", "record_every=20", "logger=none", "figures=false"]


def nsopt_cli(args, cwd, timeout=600, **env_extra):
    return _cli(args, cwd, timeout=timeout, env=cli_env(**env_extra))


def test_basic_multirun_report_and_resume(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "schedule=constant,inverse_power", "seed=0,1", *SMALL, f"hydra.sweep.dir={sweep}"]
    out = nsopt_cli(args, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("done in") == 4
    jobs = collect(sweep)
    assert [j.status for j in jobs] == ["complete"] * 4
    pids = {json.loads((j.folder / "summary.json").read_text())["environment"]["pid"] for j in jobs}
    assert len(pids) == 1  # basic launcher: sequential, one process

    rep = write_report(sweep)
    rows = {(r["overrides"], r["algorithm"]): r for r in rep["rows"]}
    assert len(rows) == 8  # 4 jobs x 2 algorithms
    m = np.load(sweep / "0" / "metrics.npz")
    r = rows[("schedule=constant,seed=0", "sgd")]
    assert r["F_median"] == pytest.approx(float(np.median(m["sgd/objective"][..., -1])))
    # the APT distance comes with the flow's error and the share of windows it resolves
    err, dist = m["sgd/apt_error"], m["sgd/apt_distance"]
    assert r["apt_end_error_median"] == pytest.approx(float(np.median(err[..., -1])), rel=1e-6)
    assert r["apt_resolved_fraction"] == pytest.approx(float(np.mean(err <= 0.1 * dist)), abs=1e-3)
    assert (sweep / "report.csv").is_file() and (sweep / "report_objective.png").is_file()
    assert "4 jobs: 4 complete, 0 failed" in (sweep / "report.md").read_text()

    # resume: nothing to redo; then a lost result is recomputed, the others are skipped
    out = nsopt_cli(args, tmp_path)
    assert out.returncode == 0 and out.stdout.count("already complete (verified), skipped") == 4
    (sweep / "2" / "summary.json").unlink()
    before = (sweep / "0" / "metrics.npz").stat().st_mtime_ns
    out = nsopt_cli(args, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("already complete (verified), skipped") == 3 and out.stdout.count("done in") == 1
    assert (sweep / "2" / "summary.json").is_file()
    assert (sweep / "0" / "metrics.npz").stat().st_mtime_ns == before


def test_failed_job_does_not_stop_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    out = nsopt_cli(["-m", "schedule=constant", "schedule.a=-1.0,0.01", *SMALL, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "job 0 [schedule=constant,schedule.a=-1.0," in out.stdout and "FAILED" in out.stdout
    jobs = collect(sweep)
    assert [j.status for j in jobs] == ["failed", "complete"]
    assert "schedule.a=-1.0 is not allowed" in jobs[0].error
    rep = write_report(sweep)
    text = (sweep / "report.md").read_text()
    assert "1 complete, 1 failed" in text and "schedule.a=-1.0 is not allowed" in text
    assert [r["status"] for r in rep["rows"]] == ["failed", "complete", "complete"]


def test_report_cli_tolerates_incomplete_and_missing(tmp_path):
    sweep = tmp_path / "sweep"
    out = nsopt_cli(["-m", "seed=0,1,2", *SMALL, "algorithm=sgd", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep / "1" / "summary.json").unlink()          # a killed job
    os.rename(sweep / "2", tmp_path / "elsewhere")    # a job whose folder is gone
    (sweep / "3" / ".hydra").mkdir(parents=True)      # a job that started but wrote nothing
    rep = _cli([str(sweep)], tmp_path, module="nsopt.report", timeout=120)
    assert rep.returncode == 0, rep.stderr
    # job 2's folder is gone: multirun.yaml still lists it (never started); job 3 is not in the sweep
    assert "4 jobs (1 complete)" in rep.stdout and "missing job numbers: [2]" in rep.stdout
    assert "job 1 [seed=1]: killed" in rep.stdout and "job 2 [seed=2]: never_started" in rep.stdout
    bad = _cli([str(tmp_path / "nope")], tmp_path, module="nsopt.report", timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_submitit_local_launcher(tmp_path):
    sweep = tmp_path / "sweep"
    out = nsopt_cli(["-m", "hydra/launcher=submitit_local", "schedule=constant,inverse_power", *SMALL,
                     "algorithm=sgd", f"hydra.sweep.dir={sweep}", "hydra.launcher.timeout_min=10"],
                    tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = collect(sweep)
    assert [j.status for j in jobs] == ["complete", "complete"]
    pids = {j.summary["environment"]["pid"] for j in jobs}
    assert len(pids) == 2  # each job its own process
    assert os.getpid() not in pids
    write_report(sweep)
    assert "2 complete" in (sweep / "report.md").read_text()


def test_wandb_runs_grouped_by_sweep(tmp_path):
    sweep = tmp_path / "my-sweep"
    env = {"HOME": str(tmp_path), "NETRC": str(tmp_path / "none")}
    out = nsopt_cli(["-m", "schedule=constant,inverse_power", "seeds=2", "inits=1", "num_steps=100",
                     "record_every=10", "algorithm=sgd", "logger=wandb", "figures=false",
                     f"hydra.sweep.dir={sweep}"], tmp_path, **env)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = {}
    for job in ("0", "1"):
        files = list((sweep / job / "wandb").rglob("run-*.wandb"))
        assert len(files) == 1, files  # one run per job, never merged
        runs[job] = read_run(files[0], wait_s=30)
    assert {r["run"]["group"] for r in runs.values()} == {"my-sweep"}
    assert runs["0"]["run"]["name"].startswith("schedule=constant")
    assert runs["1"]["run"]["name"].startswith("schedule=inverse_power")
    assert "schedule:constant" in runs["0"]["run"]["tags"] and "schedule:inverse_power" in runs["1"]["run"]["tags"]
    assert runs["0"]["run"]["id"] != runs["1"]["run"]["id"]
    assert all(r["complete"] for r in runs.values())
