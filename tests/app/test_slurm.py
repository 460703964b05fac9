"""A sweep on a real Slurm cluster (``hydra/launcher=slurm``): start one with ``sudo .ci/slurm-up``.

Skips, with the reason, where no Slurm answers.  Every wait is bounded.
"""

import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from nsopt.report import collect, write_report

from app_helpers import cli_env, nsopt_cli

pytestmark = pytest.mark.slurm

# a few seconds per job (most of it start-up and compilation; the run itself ~ 6 s, the window to cancel it)
SMALL = ["seeds=2", "inits=2", "num_steps=600000", "record_every=6000", "logger=none", "figures=false",
         "algorithm=sgd", "progress=false"]
SLURM = ["hydra/launcher=slurm", "hydra.launcher.poll_s=1", "hydra.launcher.timeout_min=5"]


def _slurm_reason() -> str | None:
    """Why no Slurm test can run here (``None``: a node is up)."""
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (start a local cluster with: sudo .ci/slurm-up)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s (is slurmctld running? sudo .ci/slurm-up)"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return f"no Slurm node up (sinfo: {out.stdout.strip() or out.stderr.strip()}); start one with sudo .ci/slurm-up"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_up():
    reason = _slurm_reason()
    if reason:
        pytest.skip(reason)


def _popen(args, cwd):
    import sys

    return subprocess.Popen([sys.executable, "-m", "nsopt", *args], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_slurm_sweep_killed_job_rerun_and_same_results(tmp_path):
    sweep = tmp_path / "sweep"
    # job 1 is cancelled once it has begun its run folder (mid-run)
    args = ["-m", "seed=0,1,2", *SMALL, *SLURM, f"hydra.sweep.dir={sweep}"]
    proc = _popen(args, tmp_path)
    try:
        deadline = time.monotonic() + 240
        job_id = None
        while time.monotonic() < deadline and job_id is None:
            logs = list((sweep / ".submitit").glob("*_1")) if (sweep / ".submitit").is_dir() else []
            if logs and (sweep / "1" / "config.yaml").is_file():  # job 1 started its run folder
                job_id = logs[0].name
            time.sleep(0.2)
        assert job_id is not None, "job 1 never started"
        # submitit jobs ignore scancel's SIGTERM (as on preemption) until Slurm's SIGKILL KillWait
        # seconds later, by when a short job is done: its task gets the SIGKILL at once, then scancel
        show = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30)
        raw = show.stdout.split("JobId=", 1)[1].split()[0]  # the array element's own job id
        pids = subprocess.run(["scontrol", "listpids", raw], capture_output=True, text=True, timeout=30)
        assert len(pids.stdout.splitlines()) > 1, pids.stdout + pids.stderr
        for row in pids.stdout.splitlines()[1:]:
            pid, _, step, *_ = row.split()
            if step != "batch":
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["scancel", job_id], check=True, timeout=30)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert f"job 1 [" in out and "killed (slurm job" in out, out[-3000:]
    assert "nsopt: report:" in out and str(sweep) in out
    states = [j.status for j in collect(sweep)]
    # job 1 may have been cancelled after its config or during its run: never complete
    assert states[0] == "complete" and states[2] == "complete" and states[1] in ("killed", "never_started"), states

    # relaunching the same command reruns the killed job only
    again = nsopt_cli(args, tmp_path, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("already complete (verified), skipped") == 0  # skipping is in the job logs
    jobs = collect(sweep)
    assert [j.status for j in jobs] == ["complete"] * 3
    rep = write_report(sweep)
    assert len(rep["rows"]) == 3

    # the same numbers as the basic launcher (one process, sequential)
    basic = tmp_path / "basic"
    ref = nsopt_cli(["-m", "seed=0,1,2", *SMALL, f"hydra.sweep.dir={basic}"], tmp_path, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    for n in ("0", "1", "2"):
        a, b = np.load(sweep / n / "metrics.npz"), np.load(basic / n / "metrics.npz")
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"job {n}: {k}")


def test_unrunnable_job_reported_with_slurms_reason(tmp_path):
    sweep = tmp_path / "sweep"
    t0 = time.monotonic()
    out = nsopt_cli(["-m", "seed=0", *SMALL, *SLURM, "hydra.launcher.cpus_per_task=4096",
                     "hydra.launcher.unrunnable_after_s=3", f"hydra.sweep.dir={sweep}"], tmp_path, timeout=180)
    text = out.stdout + out.stderr
    assert time.monotonic() - t0 < 120
    assert out.returncode == 0, text[-3000:]
    assert "cannot start" in text and "reason PartitionConfig" in text and "cpus_per_task=4096" in text, text[-3000:]
    assert "Bypassing sacct error" not in text  # accounting off: states come from squeue, no per-poll warning
    assert [j.status for j in collect(sweep)] == ["never_started"]
