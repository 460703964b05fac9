"""The Hydra main job: compose, in-process runs, subprocess runs, bad input, wandb round trip."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import nsopt
from nsopt.app.cli import run_config
from nsopt.app.config import ConfigError, build_main
from nsopt.app.loggers import WandbLogger, wandb_mode
from nsopt.app.main_job import run_keys
from nsopt.app.wandb_records import find_run_file, read_run
from nsopt.problems.inits import draw_many

from app_helpers import REPO, SMALL, cfg_of, cli_env, nsopt_cli


def test_defaults_compose():
    cfg = cfg_of([])
    assert cfg["problem"]["_target_"] == "nsopt.problems.ring"
    assert list(cfg["algorithm"]) == ["sgd", "heavy_ball"]
    assert cfg["schedule"] == {"_target_": "nsopt.schedules.inverse_power", "a": 0.5, "b": 10.0, "p": 0.75}
    assert cfg["logger"]["name"] == "wandb" and cfg["logger"]["mode"] == "auto"
    assert cfg["seeds"] * cfg["inits"] >= 24  # dozens of runs by default


def test_issue_overrides_compose_and_run(tmp_path):
    cfg = cfg_of(["algorithm=heavy_ball", "schedule=inverse_power", "schedule.p=0.75", "seeds=64",
                  "inits=1", "num_steps=100", "record_every=10", "logger=none", "figures=false"])
    assert cfg["schedule"]["p"] == 0.75 and cfg["seeds"] == 64
    summary = run_config(cfg, tmp_path)
    assert list(summary["algorithms"]) == ["heavy_ball"]
    assert summary["algorithms"]["heavy_ball"]["runs"] == 64
    m = np.load(tmp_path / "metrics.npz")
    assert m["heavy_ball/objective"].shape == (64, 1, 1, 11)


def test_run_folder_numbers_match_the_api(tmp_path):
    """The CLI's metrics are exactly what the public API computes for the same keys and inits."""
    cfg = cfg_of(SMALL + ["scales=[0.5,1.0]", "precision=float64"])  # the tests run in float64
    summary = run_config(cfg, tmp_path)
    for f in ("summary.json", "metrics.npz", "config.yaml", "objective.png", "iterates.png"):
        assert (tmp_path / f).is_file(), f
    assert json.loads((tmp_path / "summary.json").read_text())["complete"] is True
    m = np.load(tmp_path / "metrics.npz")
    job = build_main(cfg)
    problem, algs = job.problem, job.algorithms
    w0 = draw_many(job.init, problem, jax.random.fold_in(jax.random.key(cfg["seed"]), 1), 2)
    key = run_keys(cfg["seed"], 3)[2]
    for name, alg in algs.items():
        single = nsopt.run(alg.with_scale(0.5), problem.oracle(), problem.sampler, w0[1], key, 200, 20,
                           objective=problem.F)
        np.testing.assert_allclose(m[f"{name}/objective"][2, 1, 0], single.objective, rtol=1e-12)
        np.testing.assert_allclose(m[f"{name}/w"][2, 1, 0], single.w, rtol=1e-12)
        final = m[f"{name}/objective"][..., -1]
        assert summary["algorithms"][name]["final_objective"]["median"] == pytest.approx(np.median(final))
    assert m["k"].tolist() == list(range(0, 201, 20))

    # flow diagnostics (on by default): the grid sup is that of nsopt.flow.apt_distance at the same
    # start times and steps, the certified bound is above it, and every window has an error estimate
    sgd = algs["sgd"]
    single = nsopt.run(sgd.with_scale(0.5), problem.oracle(), problem.sampler, w0[1], run_keys(cfg["seed"], 3)[0],
                       200, 20)
    times = m["sgd/apt_times"]
    T, dt = cfg["flow"]["T"], cfg["flow"]["T"] / cfg["flow"]["steps"]
    d = nsopt.flow.apt_distance(single, problem.field, T, times=times, dt=dt, method=cfg["flow"]["method"])
    np.testing.assert_allclose(m["sgd/apt_grid_distance"][0, 1, 0], d, rtol=1e-9)
    assert np.all(m["sgd/apt_distance"] >= m["sgd/apt_grid_distance"])
    assert np.all(m["sgd/apt_error"] >= 0)
    assert m["heavy_ball/lyapunov"].shape == m["heavy_ball/objective"].shape
    info = summary["algorithms"]["sgd"]["flow"]
    assert info["apt_last_median"] < info["apt_first_median"]
    assert 0 <= info["resolved_fraction"] <= 1 and info["method"] == cfg["flow"]["method"]
    for f in ("apt.png", "phase.png", "lyapunov.png"):
        assert (tmp_path / f).is_file(), f


def test_divergence_counted_not_averaged(tmp_path):
    cfg = cfg_of(SMALL + ["schedule=constant", "schedule.a=0.05", "scales=[0.1,40.0]", "figures=true",
                          "algorithm=sgd"])
    summary = run_config(cfg, tmp_path)
    s = summary["algorithms"]["sgd"]
    m = np.load(tmp_path / "metrics.npz")
    dstep = m["sgd/diverged_step"]
    assert (dstep[:, :, 1] > 0).all() and (dstep[:, :, 0] == -1).all()  # the big scale blows up, only it
    assert s["diverged"] == 6 and summary["diverged_total"] == 6
    assert {r["scale"] for r in s["diverged_runs"]} == {40.0}
    good = m["sgd/objective"][:, :, 0, -1]
    assert s["final_objective"]["mean"] == pytest.approx(good.mean())
    assert np.isfinite(s["final_objective"]["max"])


@pytest.mark.parametrize(
    "override, message",
    [
        (["schedule.a=-1"], "schedule.a=-1 is not allowed; it must be a finite number > 0"),
        (["schedule.p=1.5"], "schedule.p=1.5 is not allowed; it must be a finite number in (0, 1]"),
        (["schedule.p=abc"], "schedule.p='abc' is not allowed; it must be a finite number in (0, 1]"),
        (["record_every=7"], "record_every=7 is not allowed; it must divide num_steps=200"),
        (["seeds=0"], "seeds=0 is not allowed; it must be an integer >= 1"),
        (["seed=18446744073709551616"], "seed=18446744073709551616 is not allowed; it must be an integer in"),
        (["scales=[1.0,-2.0]"], "scales[1]=-2.0 is not allowed"),
        (["scales=abc"], "scales='abc' is not allowed; it must be a non-empty list of numbers"),
        (["precision=float16"], "precision='float16' is not allowed; choose one of ['float32', 'float64']"),
        (["problem.kink=3.0"], "problem.kink=3.0 is not allowed"),
        (["algorithm=heavy_ball", "algorithm.heavy_ball.beta=2.0"],
         "algorithm.heavy_ball.beta=2.0 is not allowed; it must be a finite number in (0, 1]"),
        (["algorithm=heavy_ball", "algorithm.heavy_ball.beta.r=100.0"],
         "algorithm.heavy_ball.beta_0=8.89"),
        (["algorithm=heavy_ball", "algorithm.heavy_ball.init_momentum=ones"],
         "algorithm.heavy_ball.init_momentum='ones' is not allowed; choose one of ['oracle', 'scaled', 'zero']"),
        (["init=gaussian", "init.std=-1"], "init.std=-1 is not allowed; it must be a finite number >= 0"),
        (["init=uniform", "init.low=abc"], "init.low='abc' is not allowed; it must be a finite number"),
        (["logger=wandb", "logger.mode=garbage"], "logger.mode='garbage' is not allowed; choose one of"),
        (["logger=wandb", "logger.init_timeout=abc"], "logger.init_timeout='abc' is not allowed"),
        (["flow.T=-1"], "flow.T=-1 is not allowed; it must be a finite number > 0"),
        (["flow.T=0"], "flow.T=0 is not allowed"),
        (["flow.method=bogus"], "flow.method='bogus' is not allowed; choose one of ['euler', 'heun', 'rk4']"),
        (["flow.num_times=0"], "flow.num_times=0 is not allowed; it must be an integer >= 1"),
        (["flow.max_runs=-3"], "flow.max_runs=-3 is not allowed; it must be an integer >= 1"),
        (["+foo=1"], "foo is not a known key"),
        (["+schedul.a=1"], "schedul is not a known key (did you mean 'schedule'?)"),
        (["+schedule.c=1"], "schedule.c is not a known key"),
        (["progress=abc"], "progress='abc' is not allowed; it must be true or false"),
        (["seeds=100000000"], "the batch needs about"),
    ],
)
def test_bad_config_values(tmp_path, override, message):
    """Every bad value stops the job before any work or write, with one line naming it."""
    with pytest.raises(ConfigError) as e:
        run_config(cfg_of(SMALL + override), tmp_path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert not any(tmp_path.iterdir())


def test_unknown_group_choice_lists_options():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="inverse_power"):
        cfg_of(["schedule=cosine"])


def test_subprocess_from_another_directory(tmp_path):
    """``python -m nsopt`` works from any folder and writes its run folder there."""
    out = subprocess.run(
        [sys.executable, "-m", "nsopt", *SMALL, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"results in {tmp_path / 'run'}" in out.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["environment"]["x64"] is False  # default precision float32
    assert summary["algorithms"]["sgd"]["runs"] == 6


def test_subprocess_bad_value_exits_with_clear_message(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "nsopt", *SMALL, "schedule.a=0", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2
    assert "configuration error: schedule.a=0 is not allowed; it must be a finite number > 0" in out.stderr
    assert "Traceback" not in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "nsopt", "algorithm=adam"], cwd=tmp_path, env=cli_env(),
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode != 0
    assert "Could not find 'algorithm/adam'" in out.stderr and "heavy_ball" in out.stderr


@pytest.mark.skipif(shutil.which("nsopt") is None, reason="console script not on PATH")
def test_console_script(tmp_path):
    out = subprocess.run(["nsopt", "--cfg", "job"], cwd=tmp_path, env=cli_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "inverse_power" in out.stdout


def test_wandb_offline_round_trip(tmp_path):
    """``logger=wandb`` without an API key writes an offline run holding the same numbers."""
    env = cli_env()
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        env.pop(var, None)
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"))
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "nsopt", *SMALL[:-1], "logger=wandb", "logger.project=nsopt-test",
         "logger.tags=[test]", f"hydra.run.dir={run}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rec = read_run(find_run_file(run / "wandb"), wait_s=30)
    assert rec["complete"], "wandb run file has no exit record"
    m = np.load(run / "metrics.npz")
    assert rec["config"]["seeds"] == 3 and rec["config"]["schedule"]["p"] == 0.75, rec["config"]
    assert rec["run"]["tags"] == ["test"] and rec["run"]["project"] == "nsopt-test"
    hist = [h for h in rec["history"] if "sgd/objective_median" in h]
    assert [h["k"] for h in hist] == m["k"].tolist()
    med = np.median(m["sgd/objective"].reshape(-1, len(m["k"])), axis=0)
    np.testing.assert_allclose([h["sgd/objective_median"] for h in hist], med, rtol=1e-6)
    assert rec["summary"]["heavy_ball/runs"] == 6
    assert any(f.endswith(".png") and "objective" in f for f in rec["files"])


def test_wandb_mode_auto_without_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("auto") == "disabled"
    assert wandb_mode("offline") == "offline"


def test_wandb_failure_keeps_local_results(tmp_path, monkeypatch):
    """A broken wandb never loses the local run folder."""
    import wandb

    def boom(*a, **k):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(wandb, "init", boom)
    cfg = cfg_of(SMALL[:-1] + ["figures=false", "logger=wandb", "logger.mode=online"])
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    summary = run_config(cfg, tmp_path)
    assert summary["complete"] and (tmp_path / "summary.json").is_file()
    with pytest.raises(ValueError, match=r"logger.mode='sometimes' is not allowed"):
        WandbLogger(mode="sometimes")


def test_precision_float64_flag(tmp_path):
    cfg = cfg_of(SMALL + ["precision=float64", "figures=false"])
    summary = run_config(cfg, tmp_path)
    assert summary["environment"]["x64"] is True
    assert np.load(tmp_path / "metrics.npz")["sgd/objective"].dtype == np.float64
    x64 = bool(jax.config.jax_enable_x64)
    summary = run_config(cfg_of(SMALL + ["precision=float32", "figures=false"]), tmp_path)
    assert summary["environment"]["x64"] is False
    assert np.load(tmp_path / "metrics.npz")["sgd/objective"].dtype == np.float32
    assert bool(jax.config.jax_enable_x64) == x64  # the caller's setting is restored


def test_preset_through_the_cli(tmp_path):
    """``python -m nsopt experiment=<name> smoke=true`` runs a paper preset into its run folder."""
    out = subprocess.run(
        [sys.executable, "-m", "nsopt", "experiment=clarke_inverse", "smoke=true", "logger=none",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["complete"] and summary["experiment"] == "clarke_inverse" and summary["smoke"] is True
    assert summary["figures"] and all((tmp_path / "run" / f).is_file() for f in summary["figures"])
    assert summary["claims"] and summary["claims_hold"] is True
    assert all(f"claim {k}: HOLDS" in out.stdout for k in summary["claims"])
    assert set(summary["integrity"]["files"]) >= {"config.yaml", "command.sh", *summary["figures"]}
    # main-job sizes have no effect on a preset: an error, not a silent no-op
    bad = subprocess.run([sys.executable, "-m", "nsopt", "experiment=clarke_inverse", "num_steps=10"], cwd=tmp_path,
                         env=cli_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "num_steps=10 has no effect under experiment=clarke_inverse" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "nsopt", "experiment=clarke_inverse", "+experiment.bogus=1"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "experiment.bogus is not a known key" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "nsopt", "experiment=nope"], cwd=tmp_path, env=cli_env(),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "Could not find 'experiment/nope'" in bad.stderr
