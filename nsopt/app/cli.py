"""``python -m nsopt`` / ``nsopt``: the Hydra entry point of the main job and the presets.

Thin by design: it resolves the config, picks the run folder and the logger,
and calls :func:`nsopt.app.experiment.run_experiment` (or a paper preset).
The configs are found next to the installed package (``nsopt/conf`` in a
wheel) or in the repository's top-level ``conf/`` (editable install), so the
command works from any working directory.

In a multirun (``-m``) each job:

- is skipped when its folder already holds complete results for the same
  config (``resume=true``), so re-launching a sweep finishes only what is missing;
- never takes the sweep down when it fails: the error goes to ``failed.json``
  in its folder and to the log, the other jobs go on;
- logs to wandb with ``group`` = the sweep folder's name, ``name`` = its
  overrides, and one tag per config choice (``schedule:constant``...);
- prints one line when it finishes.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

__all__ = ["main", "config_dir", "task", "is_complete"]

log = logging.getLogger("nsopt")
FAILED = "failed.json"


def config_dir() -> str:
    """Absolute path of the Hydra config folder (packaged copy first, then the repo's ``conf/``)."""
    pkg = Path(__file__).resolve().parent.parent
    for cand in (pkg / "conf", pkg.parent / "conf"):
        if (cand / "config.yaml").is_file():
            return str(cand)
    raise FileNotFoundError(f"nsopt's Hydra configs not found in {pkg / 'conf'} or {pkg.parent / 'conf'}")


def is_complete(run_dir: Path, config_yaml: str | None = None) -> bool:
    """Whether ``run_dir`` holds a complete result (and, if given, for exactly this config)."""
    from nsopt.app import io

    try:
        summary = json.loads((run_dir / io.SUMMARY).read_text())
    except (OSError, ValueError):
        return False
    if not summary.get("complete"):
        return False
    if config_yaml is not None:
        try:
            return (run_dir / io.CONFIG).read_text() == config_yaml
        except OSError:
            return False
    return True


def _job_info() -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = [o for o in hc.overrides.task if not o.startswith("hydra")]
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    return {
        "multirun": multirun,
        "output_dir": Path(hc.runtime.output_dir),
        "overrides": overrides,
        "name": ",".join(overrides) or "defaults",
        "group": Path(hc.sweep.dir).name if multirun else None,
        "tags": [f"{k}:{v}" for k, v in sorted(choices.items())],
        "num": hc.job.num if multirun else None,
    }


def task(cfg: DictConfig) -> dict | None:
    """Run one job; configuration errors are reported in one line (exit status 2 for a single run)."""
    from nsopt.app import io
    from nsopt.app.config import ConfigError
    from nsopt.app.experiment import run_experiment
    from nsopt.app.loggers import make_logger

    logging.getLogger("jax").setLevel(logging.WARNING)
    job = _job_info()
    run_dir = Path(cfg.run_dir) if cfg.get("run_dir") else job["output_dir"]
    yaml = OmegaConf.to_yaml(cfg, resolve=True)
    label = f"job {job['num']} [{job['name']}]" if job["multirun"] else "run"
    if job["multirun"] and cfg.get("resume", True) and is_complete(run_dir, yaml):
        print(f"nsopt: {label} already complete, skipped: {run_dir.resolve()}", flush=True)
        return json.loads((run_dir / io.SUMMARY).read_text())
    (run_dir / FAILED).unlink(missing_ok=True)
    io.write_text(run_dir / "command.sh", "python -m nsopt " + shlex.join(job["overrides"]) + "\n")
    plain = OmegaConf.to_container(cfg, resolve=True)
    t0 = time.perf_counter()
    try:
        lcfg = dict(plain["logger"])
        if job["multirun"]:
            lcfg["group"] = lcfg.get("group") or job["group"]
            lcfg.setdefault("run_name", job["name"])
            lcfg["tags"] = list(lcfg.get("tags") or []) + job["tags"]
        logger = make_logger(lcfg)
        if plain.get("experiment"):
            from nsopt.papers import run_preset

            summary = run_preset(plain, run_dir, logger, config_yaml=yaml)
        else:
            summary = run_experiment(plain, run_dir, logger, config_yaml=yaml)
    except Exception as e:  # noqa: BLE001 - reported, and fatal only for a single run
        if not job["multirun"]:
            if isinstance(e, ConfigError):
                print(f"nsopt: configuration error: {e}", file=sys.stderr)
                raise SystemExit(2) from None
            raise
        io.write_json(run_dir / FAILED, {"error": f"{type(e).__name__}: {e}", "overrides": job["overrides"],
                                         "traceback": traceback.format_exc()})
        log.error("%s failed: %s: %s", label, type(e).__name__, e)
        print(f"nsopt: {label} FAILED ({type(e).__name__}: {e}); other jobs continue", flush=True)
        return None
    print(f"nsopt: {label} done in {time.perf_counter() - t0:.1f} s{_headline(summary)}; "
          f"results in {run_dir.resolve()}", flush=True)
    return summary


def _headline(summary: dict) -> str:
    algs = summary.get("algorithms")
    if not algs:
        return ""
    parts = []
    for name, a in algs.items():
        med = a["final_objective"]["median"]
        parts.append(f"{name} final F median {med:.3g}" if med is not None else f"{name} no finite run")
        if a["diverged"]:
            parts[-1] += f" ({a['diverged']} diverged)"
    return ": " + ", ".join(parts)


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    task(cfg)


if __name__ == "__main__":
    main()
