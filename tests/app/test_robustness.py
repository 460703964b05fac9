"""Runs that go wrong still leave honest results: all-diverged batches, wandb without network or key,
several devices through the CLI."""

import json
import os
import pty
import subprocess
import sys
import time

import numpy as np

from app_helpers import REPO, SMALL, cli_env, nsopt_cli


def test_all_runs_diverged_gives_a_summary_and_figures_that_say_so(tmp_path):
    out = nsopt_cli([*SMALL, "schedule=constant", "schedule.a=1.0", "scales=[1000.0]", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for alg in ("sgd", "heavy_ball"):
        a = summary["algorithms"][alg]
        assert a["diverged"] == a["runs"] == 6 and a["finite"] == 0
        assert a["final_objective"]["median"] is None  # never an average of NaNs
    assert summary["diverged_total"] == 12
    assert "objective.png" in summary["figures"] and (tmp_path / "run" / "objective.png").stat().st_size > 0
    assert "no finite run" in out.stdout


def test_diverged_runs_are_left_out_of_the_flow_figures(tmp_path):
    """Half the scales blow up: the APT statistics and curves use the finite runs only."""
    out = nsopt_cli([*SMALL, "algorithm=sgd", "schedule=constant", "schedule.a=0.05", "scales=[0.1,40.0]",
                     "flow.T=0.5", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    flow = summary["algorithms"]["sgd"]["flow"]
    assert flow["runs"] == 12 and flow["finite_runs"] == 6
    m = np.load(tmp_path / "run" / "metrics.npz")
    d = m["sgd/apt_distance"][:, :, 0]  # the finite scale
    assert flow["apt_last_median"] == np.median(d.reshape(-1, d.shape[-1])[:, -1])


def _wandb_env(tmp_path, **extra):
    env = cli_env(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), WANDB_CONFIG_DIR=str(tmp_path / "wb"))
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        env.pop(var, None)
    env.update(extra)
    return env


def test_wandb_online_without_key_on_a_terminal_never_prompts(tmp_path):
    """On a terminal with no API key, mode=online falls back to offline instead of wandb's login prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "nsopt", *SMALL[:-1], "logger=wandb", "logger.mode=online",
                             "figures=false", f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=tmp_path, env=_wandb_env(tmp_path), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            chunks.append(os.read(master, 65536))
        except OSError:
            break
    rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
    text = b"".join(chunks).decode(errors="replace")
    assert rc == 0, text[-3000:]
    assert "no API key" in text and "logging offline" in text
    assert (tmp_path / "run" / "summary.json").is_file()
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_wandb_with_key_but_no_network_falls_back_to_offline_within_the_timeout(tmp_path):
    env = _wandb_env(tmp_path, WANDB_API_KEY="x" * 40, WANDB_BASE_URL="http://127.0.0.1:9")
    t0 = time.monotonic()
    out = nsopt_cli([*SMALL[:-1], "logger=wandb", "logger.mode=online", "logger.init_timeout=5", "figures=false",
                     f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env=env)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "logging offline instead" in text
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*")), "no offline run to sync later"
    assert (tmp_path / "run" / "summary.json").is_file()
    assert elapsed < 120


def test_two_devices_through_the_cli_equal_one_device(tmp_path):
    """XLA_FLAGS=--xla_force_host_platform_device_count=2: progress chunks, sharded batch, same numbers."""
    args = ["seeds=4", "inits=2", "num_steps=200", "record_every=10", "logger=none", "figures=false"]
    one = nsopt_cli([*args, f"hydra.run.dir={tmp_path / 'one'}"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    env = cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    two = nsopt_cli([*args, f"hydra.run.dir={tmp_path / 'two'}"], tmp_path, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "100%" in two.stdout + two.stderr  # progress lines in a log
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert len(s2["environment"]["devices"]) == 2
    a, b = np.load(tmp_path / "one" / "metrics.npz"), np.load(tmp_path / "two" / "metrics.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # on a terminal too (rich progress bar)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "nsopt", *args, f"hydra.run.dir={tmp_path / 'tty'}"],
                            cwd=tmp_path, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    while proc.poll() is None:
        try:
            os.read(master, 65536)
        except OSError:
            break
    assert proc.wait(timeout=300) == 0
    c = np.load(tmp_path / "tty" / "metrics.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], c[key], err_msg=key)
