"""Hydra callbacks of every nsopt run (registered in ``conf/config.yaml`` under ``hydra.callbacks``).

- in a multirun, every log line of a job carries its job number (``[job 3] ...``), so the
  interleaved lines of parallel launchers (joblib, submitit_local) can be told apart;
- at the end of a multirun, whatever the launcher, the sweep folder and the
  ``nsopt.report`` command to run on it are printed.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

__all__ = ["SweepCallback", "JobNumberFilter"]


class JobNumberFilter(logging.Filter):
    """Prefix each record's message with ``[job N]`` (once, whatever the number of handlers)."""

    def __init__(self, num: int) -> None:
        super().__init__()
        self.num = num

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "nsopt_job"):
            record.msg = f"[job {self.num}] {record.msg}"
            record.nsopt_job = self.num
        return True


def _multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    try:
        return config.hydra.mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - no hydra node: not a Hydra job
        return False


class SweepCallback(Callback):
    """See the module docstring."""

    def __init__(self) -> None:
        self._filter: JobNumberFilter | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _multirun(config):
            return
        self._filter = JobNumberFilter(int(config.hydra.job.num))
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._filter)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self._filter is not None:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self._filter)
            self._filter = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir)).resolve()
        print(f"nsopt: sweep folder {sweep}\n"
              f"nsopt: report: {shlex.quote(sys.executable)} -m nsopt.report {shlex.quote(str(sweep))}",
              flush=True)
