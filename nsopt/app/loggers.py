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

from nsopt import validate
from nsopt.app.config import WANDB_MODES
from nsopt.app.dashboard import flat

__all__ = ["Logger", "NoLogger", "WandbLogger", "make_logger", "wandb_mode"]

log = logging.getLogger("nsopt")


class Logger(Protocol):
    """What a job hands its logger, as it happens (the local run folder is written regardless)."""

    live: bool  # whether the job should compute and hand over rows and tables (False: it skips that work)

    def start(self, config: Mapping[str, Any], run_dir: Path) -> None: ...
    def define_axes(self, prefixes: Sequence[str]) -> None: ...
    def log_rows(self, rows: Sequence[Mapping[str, float]]) -> None: ...
    def log_table(self, key: str, columns: Sequence[str], data: Sequence[Sequence[Any]],
                  line: tuple[str, str, str] | None = None) -> None: ...
    def log_figures(self, figures: Mapping[str, Path]) -> None: ...
    def log_summary(self, summary: Mapping[str, Any]) -> None: ...
    def log_artifact(self, name: str, files: Sequence[Path]) -> None: ...
    def finish(self, exit_code: int = 0) -> None: ...


class NoLogger:
    """Logs nothing (``logger=none``)."""

    live = False

    def start(self, config, run_dir):
        pass

    def define_axes(self, prefixes):
        pass

    def log_rows(self, rows):
        pass

    def log_table(self, key, columns, data, line=None):
        pass

    def log_figures(self, figures):
        pass

    def log_summary(self, summary):
        pass

    def log_artifact(self, name, files):
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
    validate.choice("logger.mode", mode, WANDB_MODES)
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled"):
        return env
    return "online" if _has_api_key() else "offline"


class WandbLogger:
    """One wandb run per job; figures as images, records as history, summary at the end.

    Never blocks and never loses a run: wandb is started non-interactively (no login
    prompt); ``online`` without an API key, or an online start that fails within
    ``init_timeout`` seconds (no network), falls back to an offline run in the run folder
    (upload later with ``wandb sync``) and says so in one line.  Any wandb error,
    KeyboardInterrupt from its prompt included, only warns: local results are written anyway.
    """

    def __init__(self, project: str = "nsopt", entity: str | None = None, mode: str = "auto",
                 group: str | None = None, tags: Sequence[str] = (), name: str | None = None,
                 init_timeout: float = 10.0):
        self.project, self.entity, self.group, self.name = project, entity, group, name
        self.tags, self.init_timeout = list(tags), float(init_timeout)
        self.mode = wandb_mode(mode)
        self.run = None

    @property
    def live(self) -> bool:
        """Rows are worth computing while the run is open."""
        return self.run is not None

    def _init(self, config, run_dir, mode: str):
        import wandb

        return wandb.init(
            project=self.project, entity=self.entity, group=self.group, name=self.name,
            tags=self.tags or None, config=dict(config), dir=str(run_dir), mode=mode,
            reinit="finish_previous",
            settings=wandb.Settings(init_timeout=self.init_timeout, console="off", silent=True,
                                    x_disable_stats=True),
        )

    def start(self, config, run_dir):
        if self.mode == "disabled":
            return
        mode = self.mode
        if mode == "online" and not _has_api_key():
            log.warning("wandb: mode=online but no API key (WANDB_API_KEY or `wandb login`); logging "
                        "offline instead, upload later with `wandb sync %s/wandb/offline-run-*`", run_dir)
            mode = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            self.run = self._init(config, run_dir, mode)
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - wandb must never lose local results
            if mode != "online":
                log.warning("wandb could not start (%s: %s); continuing with local results only",
                            type(e).__name__, e)
                return
            log.warning("wandb: online start failed within %g s (%s); logging offline instead, upload later "
                        "with `wandb sync %s/wandb/offline-run-*`", self.init_timeout, type(e).__name__, run_dir)
            try:
                self.run = self._init(config, run_dir, "offline")
            except (Exception, KeyboardInterrupt) as e2:  # noqa: BLE001
                log.warning("wandb could not start offline either (%s: %s); local results only",
                            type(e2).__name__, e2)
                return
        where = self.run.dir if self.run.settings.mode == "offline" else self.run.url
        log.info("wandb run %s (%s): %s", self.run.id, self.run.settings.mode, where)

    def _safe(self, what: str, fn) -> None:
        if self.run is None:
            return
        try:
            fn()
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
            log.warning("wandb %s failed (%s: %s); local results are unaffected", what, type(e).__name__, e)

    def define_axes(self, prefixes):
        """Series under each prefix (``sgd/``...) are plotted against ``k``; ``<prefix>tau`` is
        declared too, to be picked as the alternative x-axis."""
        def go():
            self.run.define_metric("k")
            for p in prefixes:
                self.run.define_metric(f"{p}tau", step_metric="k")
                self.run.define_metric(f"{p}*", step_metric="k")

        self._safe("metric definitions", go)

    def log_rows(self, rows):
        def go():
            for row in rows:
                self.run.log(dict(row))

        self._safe("history", go)

    def log_table(self, key, columns, data, line=None):
        def go():
            import wandb

            table = wandb.Table(columns=list(columns), data=[list(r) for r in data])
            out = {key: table}
            if line is not None:
                x, y, title = line
                out[f"{key}_plot"] = wandb.plot.line(table, x, y, title=title)
            self.run.log(out)

        self._safe(f"table {key}", go)

    def log_figures(self, figures):
        def go():
            import wandb

            self.run.log({f"figures/{k}": wandb.Image(str(p)) for k, p in figures.items()})

        self._safe("figures", go)

    def log_summary(self, summary):
        def go():
            for k, v in flat(summary).items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    self.run.summary[k] = v

        self._safe("summary", go)

    def log_artifact(self, name, files):
        def go():
            import wandb

            art = wandb.Artifact(f"{name}-{self.run.id}", type="run-results",
                                 description="the run folder's result files (the local folder is the source of truth)")
            for f in files:
                art.add_file(str(f), name=Path(f).name)
            self.run.log_artifact(art)

        self._safe("artifact", go)

    def finish(self, exit_code=0):
        if self.run is not None:
            run, self.run = self.run, None
            try:
                run.finish(exit_code=exit_code)
            except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
                log.warning("wandb finish failed (%s: %s)", type(e).__name__, e)


def make_logger(cfg: Any, run_name: str | None = None, group: str | None = None,
                tags: Sequence[str] = ()) -> Logger:
    """The logger of a checked :class:`~nsopt.app.config.LoggerConfig` (sweep jobs add name, group, tags)."""
    if cfg.name == "none":
        return NoLogger()
    return WandbLogger(project=cfg.project, entity=cfg.entity, mode=cfg.mode, group=cfg.group or group,
                       tags=list(cfg.tags) + list(tags), name=run_name, init_timeout=cfg.init_timeout)
