"""Presets reproducing the papers' experiments: ``python -m nsopt experiment=<name>``.

Each preset is a module ``nsopt.papers.<name>`` with one function::

    def run(params: dict, *, smoke: bool, run_dir: Path) -> PresetResult

``params`` is the ``experiment`` node of the config (``conf/experiment/<name>.yaml``);
``smoke=True`` asks for a reduced size that still carries the claim (used in CI).
The preset draws its figures into ``run_dir`` and returns the numbers that
carry its claim; :func:`run_preset` writes them (``metrics.npz``, then
``summary.json`` last, atomically) and hands them to the logger.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["PRESETS", "PresetResult", "run_preset"]

log = logging.getLogger("nsopt")

PRESETS = (
    "cycles",
    "lorenz",
    "integral_rule",
    "clarke_inverse",
    "artificial_critical",
    "lasso_hpo",
    "deq_digits",
    "relu_prime",
    "apt_schedules",
)


@dataclass
class PresetResult:
    """What a preset returns: scalar ``metrics`` (JSON), ``arrays`` (npz), ``figures`` (PNG paths)."""

    metrics: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)


def run_preset(cfg: Mapping[str, Any], run_dir: str | Path, logger=None,
               config_yaml: str | None = None) -> dict[str, Any]:
    """Run the preset named ``cfg["experiment"]["name"]`` and write its run folder."""
    from nsopt.app import io
    from nsopt.app.config import ConfigError
    from nsopt.app.experiment import environment, set_precision
    from nsopt.app.loggers import NoLogger

    params = dict(cfg["experiment"])
    name = params.get("name")
    if name not in PRESETS:
        raise ConfigError(f"experiment.name={name!r} is not allowed; choose one of {list(PRESETS)}")
    smoke = bool(cfg.get("smoke", False))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config_yaml is not None:
        io.write_text(run_dir / io.CONFIG, config_yaml)
    logger = logger or NoLogger()
    module = importlib.import_module(f"nsopt.papers.{name}")
    with set_precision(params.get("precision", cfg.get("precision", "float32"))):
        logger.start(cfg, run_dir)
        exit_code = 1
        try:
            t0 = time.perf_counter()
            log.info("experiment %s%s", name, " (smoke)" if smoke else "")
            result: PresetResult = module.run(params, smoke=smoke, run_dir=run_dir)
            seconds = time.perf_counter() - t0
            if result.arrays:
                io.write_npz(run_dir / io.METRICS, **result.arrays)
            logger.log_figures(result.figures)
            summary = {
                "complete": True,
                "experiment": name,
                "smoke": smoke,
                "metrics": result.metrics,
                "figures": sorted(Path(p).name for p in result.figures.values()),
                "total_s": seconds,
                "environment": environment(),
            }
            logger.log_summary({"experiment": name, "smoke": smoke, "total_s": seconds, **result.metrics})
            io.write_json(run_dir / io.SUMMARY, summary)
            log.info("experiment %s done in %.1f s", name, seconds)
            exit_code = 0
            return summary
        finally:
            logger.finish(exit_code)
