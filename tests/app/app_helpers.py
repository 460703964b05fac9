"""Shared helpers of the app tests: composing configs and running the CLI of THIS checkout."""

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nsopt.app.cli import config_dir

REPO = Path(__file__).resolve().parents[2]
SMALL = ["seeds=3", "inits=2", "num_steps=200", "record_every=20", "logger=none"]


def cfg_of(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def cli_env(**extra):
    """The environment of a CLI subprocess: the checkout first on PYTHONPATH (not an installed copy)."""
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    env["WANDB_MODE"] = "offline"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def nsopt_cli(args, cwd, timeout=600, env=None, module="nsopt"):
    """``python -m nsopt <args>`` from ``cwd`` on this checkout."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)
