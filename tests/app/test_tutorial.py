"""The README tutorial "Your own problem", run exactly as written from a folder outside the
repository: its module and yaml are the code blocks of experiments/tutorial/README.md (the
README section), the sweep gives run folders, figures, flow diagnostics, a report and wandb runs."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app_helpers import REPO, cli_env

TUTORIAL = REPO / "experiments" / "tutorial"
SMALL = ["seeds=2", "inits=2", "num_steps=400", "record_every=20", "progress=false"]


def blocks(lang: str) -> list[str]:
    text = (TUTORIAL / "README.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_blocks_are_the_tutorial_files():
    assert blocks("python")[0] == (TUTORIAL / "mymodule.py").read_text()
    assert blocks("yaml")[0] == (TUTORIAL / "conf" / "problem" / "mine.yaml").read_text()
    main_readme = (REPO / "README.md").read_text()
    if "problem=mine" in main_readme:                # once the section is in the README: same text
        assert (TUTORIAL / "README.md").read_text().strip() in main_readme


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder outside the repository holding the tutorial's two files, written from the README."""
    d = tmp_path_factory.mktemp("mine")
    assert REPO not in d.parents
    (d / "conf" / "problem").mkdir(parents=True)
    (d / "mymodule.py").write_text(blocks("python")[0])
    (d / "conf" / "problem" / "mine.yaml").write_text(blocks("yaml")[0])
    return d


def command() -> list[str]:
    line = blocks("bash")[0].splitlines()[0]
    env, rest = line.split(" ", 1)
    assert env == "PYTHONPATH=." and rest.startswith("python -m nsopt ")
    return shlex.split(rest)[1:]


def run(workdir, args, sweep):
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([".", env["PYTHONPATH"]])   # the README's PYTHONPATH=. (and this checkout)
    return subprocess.run([sys.executable, *args, *SMALL, f"hydra.sweep.dir={sweep}"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


def test_tutorial_sweep(workdir):
    args = command()                                  # -m nsopt --config-dir ./conf problem=mine -m schedule.p=...
    assert args[:4] == ["-m", "nsopt", "--config-dir", "./conf"] and "problem=mine" in args
    multirun = args.index("-m", 2)
    args = args[:2] + ["-m"] + args[2:multirun] + args[multirun + 1:]   # Hydra wants -m before the overrides
    out = run(workdir, args, "sweep")
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = workdir / "sweep"
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert len(jobs) == 3
    ps = []
    for job in jobs:
        s = json.loads((job / "summary.json").read_text())
        assert s["problem"] == "hinge" and s["dim"] == 10
        for alg in ("sgd", "heavy_ball"):
            a = s["algorithms"][alg]
            assert a["finite"] == a["runs"] == 4
            assert a["flow"]["apt_last_median"] < a["flow"]["apt_first_median"]
            assert a["final_objective"]["median"] < 0.5      # hinge at the init is about 1
        for fig in ("objective.png", "apt.png", "lyapunov.png"):
            assert (job / fig).stat().st_size > 0
        m = np.load(job / "metrics.npz")
        assert m["sgd/apt_distance"].shape[-1] == len(m["sgd/apt_times"]) >= 2
        assert list((job / "wandb").glob("offline-run-*"))
        ps.append((job / "config.yaml").read_text().split("p: ")[1].split()[0])
    assert sorted(ps) == ["0.6", "0.75", "1"]
    rep = subprocess.run([sys.executable, "-m", "nsopt.report", str(sweep)], cwd=workdir, env=cli_env(),
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert (sweep / "report.md").read_text().count("complete") >= 6 and (sweep / "report_apt.png").is_file()


def test_tutorial_command_exactly_as_written(workdir):
    out = run(workdir, command(), "sweep_exact")
    assert out.returncode == 0, out.stderr[-2000:]


def test_python_snippet(workdir):
    code = blocks("python")[1].replace("num_steps=5000", "num_steps=500")
    code += "\nassert bool(good.all()) and d.shape == (8, 4, 1, 100)\nprint('ok')\n"
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([".", env["PYTHONPATH"]])
    out = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_malformed_problem_is_rejected_naming_the_field(workdir, tmp_path):
    from nsopt.app import config

    if not re.search(r"(?<![_\w])check_problem\(", Path(config.__file__).read_text()):
        pytest.skip("lead: call nsopt.problems.check_problem from nsopt.app.config._check_problem")
    good = (workdir / "mymodule.py").read_text()
    bad = good.replace("return jnp.mean(jnp.maximum(0.0, 1.0 - self.y * (self.X @ w)))",
                       "return jnp.maximum(0.0, 1.0 - self.y * (self.X @ w))")   # F forgets the mean
    assert bad != good
    (tmp_path / "conf" / "problem").mkdir(parents=True)
    (tmp_path / "mymodule.py").write_text(bad)
    (tmp_path / "conf" / "problem" / "mine.yaml").write_text(blocks("yaml")[0])
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([".", env["PYTHONPATH"]])
    out = subprocess.run([sys.executable, "-m", "nsopt", "--config-dir", "./conf", "problem=mine", *SMALL],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert re.search(r"problem.F returns \['float32\[569\]'\]; it must return one float scalar", out.stderr), \
        out.stderr[-2000:]
