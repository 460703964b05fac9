"""Fault injection and reproducibility: a killed sweep job is completed by resume, nothing lost;
the same config and seed give bitwise-identical results."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from nsopt.report import collect

BASE = ["seeds=8", "inits=8", "record_every=100", "algorithm=sgd", "logger=none", "flow=none", "figures=false"]


def _launch(args, cwd):
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    return subprocess.Popen([sys.executable, "-m", "nsopt", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_killed_job_is_completed_by_resume(tmp_path):
    sweep = tmp_path / "sweep"
    # job 0 is short, job 1 long enough to be killed while it runs, job 2 short
    args = ["-m", "num_steps=1000,3000000,2000", *BASE, f"hydra.sweep.dir={sweep}"]
    proc = _launch(args, tmp_path)
    deadline = time.monotonic() + 300
    while not ((sweep / "0" / "summary.json").is_file() and (sweep / "1" / ".hydra").is_dir()):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "sweep did not reach job 1"
        time.sleep(0.05)
    time.sleep(0.5)  # job 1 is compiling / running
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    jobs = collect(sweep)
    assert jobs[0].status == "complete"
    assert jobs[1].status == "incomplete"  # no half-written file taken as a result
    assert not (sweep / "1" / "summary.json").exists()
    done0 = (sweep / "0" / "metrics.npz").read_bytes()

    out = _launch(args, tmp_path)
    stdout, stderr = out.communicate(timeout=600)
    assert out.returncode == 0, stderr[-3000:]
    assert "job 0 [num_steps=1000" in stdout and "already complete, skipped" in stdout
    assert stdout.count("done in") == 2
    jobs = collect(sweep)
    assert [j.status for j in jobs] == ["complete"] * 3
    assert (sweep / "0" / "metrics.npz").read_bytes() == done0  # finished results untouched
    m = np.load(sweep / "1" / "metrics.npz")
    assert m["sgd/objective"].shape == (8, 8, 1, 30001)
    assert not list(sweep.rglob("*.tmp"))  # no temporary files left behind as results


def test_same_config_and_seed_bitwise_identical(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from nsopt.app.cli import config_dir
    from nsopt.app.experiment import run_experiment

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=[
            "seeds=3", "inits=2", "num_steps=300", "record_every=10", "logger=none", "figures=false",
            "scales=[0.5,2.0]"]), resolve=True)
    run_experiment(cfg, tmp_path / "a")
    run_experiment(cfg, tmp_path / "b")
    cfg2 = dict(cfg, record_every=30, progress=False)
    run_experiment(cfg2, tmp_path / "c")
    a, b, c = (np.load(tmp_path / x / "metrics.npz") for x in "abc")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # another record_every (and no progress chunks): the common records are bitwise equal
    for alg in ("sgd", "heavy_ball"):
        np.testing.assert_array_equal(a[f"{alg}/objective"][..., ::3], c[f"{alg}/objective"])
        np.testing.assert_array_equal(a[f"{alg}/w"][..., ::3, :], c[f"{alg}/w"])
