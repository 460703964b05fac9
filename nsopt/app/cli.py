"""``python -m nsopt`` / ``nsopt``: the Hydra entry point of the main job.

Thin by design: it resolves the config, picks the run folder and the logger,
and calls :func:`nsopt.app.experiment.run_experiment`.  The configs are
found next to the installed package (``nsopt/conf`` in a wheel) or in the
repository's top-level ``conf/`` (editable install), so the command works
from any working directory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

__all__ = ["main", "config_dir", "task"]

log = logging.getLogger("nsopt")


def config_dir() -> str:
    """Absolute path of the Hydra config folder (packaged copy first, then the repo's ``conf/``)."""
    pkg = Path(__file__).resolve().parent.parent
    for cand in (pkg / "conf", pkg.parent / "conf"):
        if (cand / "config.yaml").is_file():
            return str(cand)
    raise FileNotFoundError(f"nsopt's Hydra configs not found in {pkg / 'conf'} or {pkg.parent / 'conf'}")


def task(cfg: DictConfig) -> dict:
    """Run one job; configuration errors are reported in one line and exit with status 2."""
    from hydra.core.hydra_config import HydraConfig

    from nsopt.app.config import ConfigError
    from nsopt.app.experiment import run_experiment
    from nsopt.app.loggers import make_logger

    logging.getLogger("jax").setLevel(logging.WARNING)
    if cfg.get("run_dir"):
        run_dir = Path(cfg.run_dir)
    else:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
    plain = OmegaConf.to_container(cfg, resolve=True)
    try:
        logger = make_logger(plain["logger"])
        yaml = OmegaConf.to_yaml(cfg, resolve=True)
        if plain.get("experiment"):
            from nsopt.papers import run_preset

            summary = run_preset(plain, run_dir, logger, config_yaml=yaml)
        else:
            summary = run_experiment(plain, run_dir, logger, config_yaml=yaml)
    except ConfigError as e:
        print(f"nsopt: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"nsopt: results in {run_dir.resolve()}")
    return summary


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    task(cfg)


if __name__ == "__main__":
    main()
