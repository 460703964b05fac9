"""Experiment loggers: ``none`` and ``wandb`` (offline unless an API key is configured).

A logger never decides whether results survive: the local run folder is
written first and in every case; a failing wandb (no network, bad mode) only
produces a warning.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

__all__ = ["Logger", "NoLogger", "WandbLogger", "make_logger", "wandb_mode"]

log = logging.getLogger("nsopt")
WANDB_MODES = ("auto", "online", "offline", "disabled")


class Logger(Protocol):
    def start(self, config: Mapping[str, Any], run_dir: Path) -> None: ...
    def log_history(self, rows: Sequence[Mapping[str, float]], steps: Sequence[int]) -> None: ...
    def log_figures(self, figures: Mapping[str, Path]) -> None: ...
    def log_summary(self, summary: Mapping[str, Any]) -> None: ...
    def finish(self, exit_code: int = 0) -> None: ...


class NoLogger:
    """Logs nothing (``logger=none``)."""

    def start(self, config, run_dir):
        pass

    def log_history(self, rows, steps):
        pass

    def log_figures(self, figures):
        pass

    def log_summary(self, summary):
        pass

    def finish(self, exit_code=0):
        pass


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode(mode: str) -> str:
    """Resolve ``auto``: ``WANDB_MODE`` if set, else online with an API key, else offline."""
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.mode={mode!r} is not allowed; choose one of {list(WANDB_MODES)}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled"):
        return env
    return "online" if _has_api_key() else "offline"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


class WandbLogger:
    """One wandb run per job; figures as images, records as history, summary at the end."""

    def __init__(self, project: str = "nsopt", entity: str | None = None, mode: str = "auto",
                 group: str | None = None, tags: Sequence[str] = (), name: str | None = None,
                 init_timeout: float = 30.0):
        self.project, self.entity, self.group, self.name = project, entity, group, name
        self.tags, self.init_timeout = list(tags), float(init_timeout)
        self.mode = wandb_mode(mode)
        self.run = None

    def start(self, config, run_dir):
        if self.mode == "disabled":
            return
        try:
            import wandb

            self.run = wandb.init(
                project=self.project, entity=self.entity, group=self.group, name=self.name,
                tags=self.tags or None, config=dict(config), dir=str(run_dir), mode=self.mode,
                reinit="finish_previous",
                settings=wandb.Settings(init_timeout=self.init_timeout, console="off",
                                        silent=True, x_disable_stats=True),
            )
            where = self.run.dir if self.mode == "offline" else self.run.url
            log.info("wandb run %s (%s): %s", self.run.id, self.mode, where)
        except Exception as e:  # noqa: BLE001 - wandb failures must never lose local results
            log.warning("wandb could not start (%s: %s); continuing with local results only",
                        type(e).__name__, e)
            self.run = None

    def _safe(self, what: str, fn) -> None:
        if self.run is None:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            log.warning("wandb %s failed (%s: %s); local results are unaffected", what, type(e).__name__, e)

    def log_history(self, rows, steps):
        def go():
            for row, step in zip(rows, steps):
                self.run.log(dict(row), step=int(step))

        self._safe("history", go)

    def log_figures(self, figures):
        def go():
            import wandb

            self.run.log({f"figures/{k}": wandb.Image(str(p)) for k, p in figures.items()})

        self._safe("figures", go)

    def log_summary(self, summary):
        def go():
            for k, v in _flatten(summary).items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    self.run.summary[k] = v

        self._safe("summary", go)

    def finish(self, exit_code=0):
        if self.run is not None:
            try:
                self.run.finish(exit_code=exit_code)
            except Exception as e:  # noqa: BLE001
                log.warning("wandb finish failed (%s: %s)", type(e).__name__, e)
            self.run = None


def make_logger(cfg_l: Mapping[str, Any]) -> Logger:
    name = cfg_l.get("name", "none")
    if name == "none":
        return NoLogger()
    if name == "wandb":
        return WandbLogger(
            project=cfg_l.get("project", "nsopt"), entity=cfg_l.get("entity"),
            mode=cfg_l.get("mode", "auto"), group=cfg_l.get("group"), tags=list(cfg_l.get("tags") or []),
            name=cfg_l.get("run_name"), init_timeout=cfg_l.get("init_timeout", 30),
        )
    from nsopt.app.config import ConfigError

    raise ConfigError(f"logger.name={name!r} is not allowed; choose one of ['none', 'wandb']")
