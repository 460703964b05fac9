"""Crash safety of the run folder, by fault injection at each write boundary.

A sweep job is killed (``os._exit(137)``: no cleanup) by ``fault_injection/sitecustomize.py``
right after ``config.yaml``, right after ``metrics.npz``, half-way through ``metrics.npz`` or
``summary.json``, then the same command is relaunched.  Each test checks what the mechanisms
guarantee, so it fails when one of them is broken:

- atomic writes: after a kill every result file visible in the folder is whole (a half-written
  ``metrics.npz`` or ``summary.json`` is never visible) and the job reads as ``killed``;
- verified completeness: a killed, stale or corrupt job is rerun, never skipped, and its rerun
  gives the numbers of an undisturbed run; finished jobs are left byte-identical.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nsopt.app.run_folder import RunFolder
from nsopt.report import collect, write_report

REPO = Path(__file__).resolve().parents[2]
INJECT = Path(__file__).parent / "fault_injection"
JOB = ["seeds=2", "inits=1", "num_steps=40", "record_every=10", "algorithm=sgd", "logger=none", "flow=none",
       "figures=false"]


def _cli(args, cwd, fault_file=None, point="mid_write"):
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    paths = [str(REPO)] + ([str(INJECT)] if fault_file else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if fault_file:
        env.update(NSOPT_FAULT_FILE=fault_file, NSOPT_FAULT_POINT=point)
    return subprocess.run([sys.executable, "-m", "nsopt", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _sweep_args(sweep, seeds="0,1"):
    return ["-m", f"seed={seeds}", *JOB, f"hydra.sweep.dir={sweep}"]


def _assert_visible_files_whole(folder: Path) -> None:
    """Every result file present under its final name parses completely."""
    if (folder / "summary.json").exists():
        assert isinstance(json.loads((folder / "summary.json").read_text()), dict)
    if (folder / "metrics.npz").exists():
        with np.load(folder / "metrics.npz") as m:
            [m[k] for k in m.files]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undisturbed 2-job sweep: the numbers every recovered run must reproduce."""
    tmp = tmp_path_factory.mktemp("reference")
    out = _cli(_sweep_args(tmp / "sweep"), tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    return {j: np.load(tmp / "sweep" / j / "metrics.npz")["sgd/objective"] for j in ("0", "1")}


@pytest.mark.parametrize("fault_file, point", [
    ("config.yaml", "after_write"),
    ("metrics.npz", "mid_write"),
    ("metrics.npz", "after_write"),
    ("summary.json", "mid_write"),
])
def test_kill_at_each_write_boundary_then_resume(tmp_path, reference, fault_file, point):
    sweep = tmp_path / "sweep"
    out = _cli(_sweep_args(sweep), tmp_path, fault_file, point)
    assert out.returncode == 137, (out.returncode, out.stderr[-2000:])
    job0 = sweep / "0"
    _assert_visible_files_whole(job0)
    assert RunFolder(job0).state().state == "killed"
    jobs = collect(sweep)
    assert [j.status for j in jobs] == ["killed", "never_started"]  # job 1 listed from multirun.yaml
    write_report(sweep)
    assert "1 killed" in (sweep / "report.md").read_text()

    out = _cli(_sweep_args(sweep), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "job 0 [seed=0" in out.stdout and "killed" in out.stdout and "rerunning" in out.stdout
    assert [j.status for j in collect(sweep)] == ["complete", "complete"]
    for j in ("0", "1"):
        np.testing.assert_array_equal(np.load(sweep / j / "metrics.npz")["sgd/objective"], reference[j])
    assert not list(job0.glob(".*.tmp"))  # the killed write's temporary file is cleaned by the rerun


def test_finished_jobs_skipped_and_untouched(tmp_path):
    sweep = tmp_path / "sweep"
    assert _cli(_sweep_args(sweep), tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in (sweep / "0").iterdir() if p.is_file()}
    out = _cli(_sweep_args(sweep), tmp_path)
    assert out.returncode == 0 and out.stdout.count("already complete (verified), skipped") == 2
    assert {p.name: p.read_bytes() for p in (sweep / "0").iterdir() if p.is_file()} == before


@pytest.mark.parametrize("damage", ["summary_not_a_dict", "metrics_truncated", "summary_says_other_hash"])
def test_corrupt_results_are_detected_and_rerun(tmp_path, reference, damage):
    sweep = tmp_path / "sweep"
    assert _cli(_sweep_args(sweep), tmp_path).returncode == 0
    job = sweep / "1"
    if damage == "summary_not_a_dict":
        (job / "summary.json").write_text("[]")
    elif damage == "metrics_truncated":
        data = (job / "metrics.npz").read_bytes()
        (job / "metrics.npz").write_bytes(data[: len(data) // 2])
    else:
        s = json.loads((job / "summary.json").read_text())
        s["integrity"]["files"]["metrics.npz"] = "0" * 64
        (job / "summary.json").write_text(json.dumps(s))
    assert RunFolder(job).state().state == "corrupt"
    write_report(sweep)  # never crashes on a corrupt job
    assert "1 corrupt" in (sweep / "report.md").read_text()
    out = _cli(_sweep_args(sweep), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "job 1 [seed=1" in out.stdout and "corrupt" in out.stdout and "rerunning" in out.stdout
    assert out.stdout.count("already complete (verified), skipped") == 1
    np.testing.assert_array_equal(np.load(job / "metrics.npz")["sgd/objective"], reference["1"])
    assert RunFolder(job).state().complete


def test_relaunch_with_another_config_never_passes_stale_results(tmp_path, reference):
    """A complete sweep relaunched with another config that then fails: the old results are kept
    (set aside, byte-identical), never reported or skipped as the new config's; relaunching the
    original config reruns it and gives its numbers."""
    sweep = tmp_path / "sweep"
    assert _cli(_sweep_args(sweep), tmp_path).returncode == 0
    old = (sweep / "0" / "metrics.npz").read_bytes()
    # another config, killed mid-run (after its config was written)
    out = _cli(_sweep_args(sweep) + ["num_steps=80"], tmp_path, "metrics.npz", "mid_write")
    assert out.returncode == 137
    moved = sorted(sweep.glob("0.replaced-*"))
    assert len(moved) == 1 and (moved[0] / "metrics.npz").read_bytes() == old
    assert "num_steps: 80" in (sweep / "0" / "config.yaml").read_text()
    assert RunFolder(sweep / "0").state().state == "killed"
    # the same other config with a bad value: every job fails, none is complete
    out = _cli(_sweep_args(sweep) + ["num_steps=80", "schedule.a=-1"], tmp_path)
    assert out.returncode == 0 and out.stdout.count("FAILED") == 2
    assert [j.status for j in collect(sweep)] == ["failed", "failed"]
    # the original config again: rerun (not skipped), with its own numbers
    out = _cli(_sweep_args(sweep), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "skipped" not in out.stdout and out.stdout.count("done in") == 2
    for j in ("0", "1"):
        np.testing.assert_array_equal(np.load(sweep / j / "metrics.npz")["sgd/objective"], reference[j])
    assert [j.status for j in collect(sweep)] == ["complete", "complete"]


def test_result_files_respect_the_umask(tmp_path):
    out = _cli(["seed=0", *JOB, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("config.yaml", "command.sh", "metrics.npz", "summary.json"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_unwritable_run_dir_is_a_one_line_error(tmp_path):
    if os.geteuid() == 0:
        blocked = tmp_path / "file-not-dir"
        blocked.write_text("x")
        target = blocked / "run"  # a path under a regular file can never be created, even by root
    else:
        blocked = tmp_path / "ro"
        blocked.mkdir(mode=0o500)
        target = blocked / "run"
    out = _cli(["seed=0", *JOB, f"run_dir={target}", f"hydra.run.dir={tmp_path / 'h'}"], tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "cannot be written" in out.stderr and "Traceback" not in out.stderr
    sweep = tmp_path / "sweep"
    out = _cli(["-m", "seed=0", *JOB, f"run_dir={target}", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert out.returncode == 0 and "FAILED" in out.stdout
    assert "cannot be written" in json.loads((sweep / "0" / "failed.json").read_text())["error"]
    shutil.rmtree(tmp_path / "h", ignore_errors=True)


def test_same_config_and_seed_bitwise_identical(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from nsopt.app.cli import config_dir, run_config

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=[
            "seeds=3", "inits=2", "num_steps=300", "record_every=10", "logger=none", "figures=false",
            "scales=[0.5,2.0]"]), resolve=True)
    run_config(cfg, tmp_path / "a")
    run_config(cfg, tmp_path / "b")
    run_config(dict(cfg, record_every=30, progress=False), tmp_path / "c")
    a, b, c = (np.load(tmp_path / x / "metrics.npz") for x in "abc")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # another record_every (and no progress chunks): the common records are bitwise equal
    for alg in ("sgd", "heavy_ball"):
        np.testing.assert_array_equal(a[f"{alg}/objective"][..., ::3], c[f"{alg}/objective"])
        np.testing.assert_array_equal(a[f"{alg}/w"][..., ::3, :], c[f"{alg}/w"])
