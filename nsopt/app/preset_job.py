"""A paper preset as a job: ``Params`` + key -> :class:`~nsopt.presets.base.PresetResult` -> run folder.

The preset itself is a pure function (no files, loggers or precision); this module
saves its arrays and figures through the :class:`~nsopt.app.run_folder.RunFolder`,
hands them to the logger, prints its claims and whether they held, and returns
the summary (claims are data: ``experiments/make_report.py`` renders REPORT.md from it).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax

from nsopt import presets
from nsopt.app.config import PresetJob
from nsopt.app.dashboard import array_tables
from nsopt.app.loggers import Logger
from nsopt.app.run_folder import RunFolder

__all__ = ["run_preset_job"]

log = logging.getLogger("nsopt")


def run_preset_job(job: PresetJob, folder: RunFolder, logger: Logger) -> dict[str, Any]:
    preset = presets.get(job.name)
    log.info("experiment %s%s: %s", job.name, " (smoke)" if job.config.smoke else "", preset.claim)
    result = preset.run(job.params, jax.random.key(job.config.seed))
    if result.arrays:
        folder.write_metrics(result.arrays)
        for key, columns, data in array_tables(result.arrays):
            logger.log_table(key, columns, data)
    figures = []
    for name, fig in result.figures.items():
        logger.log_figures({name: folder.write_figure(name, fig, dpi=110)})
        figures.append(f"{name}.png")
    claims = {k: bool(v) for k, v in result.claims.items()}
    for name, holds in claims.items():
        print(f"nsopt: claim {name}: {'HOLDS' if holds else 'DOES NOT HOLD'}", flush=True)
    return {
        "experiment": job.name,
        "smoke": job.config.smoke,
        "claim": preset.claim,
        "claims": claims,
        "claims_hold": all(claims.values()),
        "params": dataclasses.asdict(job.params),
        "metrics": result.metrics,
        "figures": sorted(figures),
    }
