"""Progress of long jobs: a rich progress bar on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
from typing import Callable

__all__ = ["step_progress"]

log = logging.getLogger("nsopt")


def step_progress(label: str, enabled: bool = True,
                  unit: str = "steps") -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """``(update, close)``: ``update(done, total)`` after each chunk of steps, ``close()`` at the end.

    On a terminal this draws a rich progress bar; elsewhere (CI, Slurm logs) it
    logs a line at each quarter of the run.
    """
    if not enabled:
        return (lambda done, total: None), (lambda: None)
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.completed}/{task.total} " + unit),
                       TimeRemainingColumn(), transient=True)
        task = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                bar.start()
                task = bar.add_task(label, total=total)
            bar.update(task, completed=done)

        def close() -> None:
            if task is not None:
                bar.stop()

        return update, close

    state = {"next": 0.25}

    def update_log(done: int, total: int) -> None:
        if done >= state["next"] * total:
            log.info("%s: %d/%d %s (%d%%)", label, done, total, unit, round(100 * done / total))
            while state["next"] * total <= done:
                state["next"] += 0.25

    return update_log, (lambda: None)
