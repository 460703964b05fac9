"""The run folder: one job's results, their layout, integrity and lifecycle.

Layout (every writer and reader goes through :class:`RunFolder`)::

    config.yaml    the resolved config (written first)
    command.sh     the command that reproduces the job
    metrics.npz    arrays
    *.png          figures
    failed.json    only when the job failed: error, traceback, overrides
    summary.json   written LAST, atomically; carries sha256 hashes of config.yaml and of
                   every result file (not of ``*.log``, which Hydra keeps appending to), so
                   completeness is verified, never assumed

A job's lifecycle: :meth:`RunFolder.begin` (sets aside results of another config,
invalidates an old summary atomically *before* anything else is written), writes
(:meth:`write_metrics`, :meth:`write_figure`), then :meth:`complete` or :meth:`fail`.
:meth:`state` tells resume and the report what the folder holds.

Writes are atomic (temporary file in the same folder, fsync, rename) and respect
the process umask (0644 by default), so collaborators on a shared cluster can read them.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["RunFolder", "FolderState", "STATES", "atomic_write_bytes", "write_json", "write_text",
           "jsonable"]

#: What a run folder can hold (:meth:`RunFolder.state`).
STATES = ("complete", "failed", "killed", "corrupt", "other_config", "missing")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, chmod to the umask, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def jsonable(x: Any) -> Any:
    """NumPy scalars and arrays to Python; NaN/inf to ``None`` (JSON has no NaN)."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if np.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class FolderState:
    """What :meth:`RunFolder.state` found: one of :data:`STATES` and why."""

    state: str
    reason: str = ""

    @property
    def complete(self) -> bool:
        return self.state == "complete"


class RunFolder:
    """One job's folder (see the module docstring for the layout)."""

    CONFIG = "config.yaml"
    COMMAND = "command.sh"
    METRICS = "metrics.npz"
    SUMMARY = "summary.json"
    FAILED = "failed.json"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- reading ---------------------------------------------------------------------------
    def read_config(self) -> str | None:
        try:
            return (self.path / self.CONFIG).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def read_summary(self) -> dict | None:
        """The summary if it is a readable JSON object, else ``None`` (never raises)."""
        try:
            data = json.loads((self.path / self.SUMMARY).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def read_failure(self) -> dict | None:
        try:
            data = json.loads((self.path / self.FAILED).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else {"error": "unreadable failed.json"}

    def read_metrics(self) -> dict[str, np.ndarray]:
        with np.load(self.path / self.METRICS) as data:
            return {k: data[k] for k in data.files}

    def verify(self) -> tuple[bool, str]:
        """Whether ``summary.json`` is complete and every hashed file is intact."""
        summary = self.read_summary()
        if summary is None:
            return False, "summary.json missing or not a JSON object"
        integrity = summary.get("integrity")
        if not summary.get("complete") or not isinstance(integrity, dict):
            return False, "summary.json does not mark a complete, hashed result"
        files = integrity.get("files")
        if not isinstance(files, dict) or self.CONFIG not in files:
            return False, "summary.json lists no hashes"
        for name, digest in files.items():
            p = self.path / name
            if not p.is_file():
                return False, f"{name} is missing"
            if _sha256(p) != digest:
                return False, f"{name} does not match its hash in summary.json (corrupt or changed)"
        return True, "verified"

    def state(self, config_yaml: str | None = None) -> FolderState:
        """What the folder holds, for ``config_yaml`` if given (see :data:`STATES`)."""
        if not self.path.is_dir() or not any(self.path.iterdir()):
            return FolderState("missing", "no folder" if not self.path.is_dir() else "empty folder")
        config = self.read_config()
        if config_yaml is not None and config is not None and config != config_yaml:
            return FolderState("other_config", "config.yaml is for another config")
        failure = self.read_failure()
        if failure is not None:
            return FolderState("failed", str(failure.get("error", "")))
        if (self.path / self.SUMMARY).exists():
            ok, why = self.verify()
            return FolderState("complete", why) if ok else FolderState("corrupt", why)
        if config is None:
            return FolderState("missing", "no config.yaml")
        return FolderState("killed", "started (config.yaml written) but no summary.json")

    def config_diff(self, config_yaml: str) -> list[str]:
        """The changed lines between the folder's config and ``config_yaml`` (for messages)."""
        old = (self.read_config() or "").splitlines()
        new = config_yaml.splitlines()
        return [line for line in difflib.unified_diff(old, new, lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]

    # -- writing ---------------------------------------------------------------------------
    def set_aside(self) -> Path:
        """Move the folder's results to a sibling ``<name>.replaced-<time>`` folder (Hydra's
        ``.hydra/`` metadata, which already describes the job now starting, stays)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = self.path.with_name(f"{self.path.name}.replaced-{stamp}")
        n = 1
        while dest.exists():
            dest = self.path.with_name(f"{self.path.name}.replaced-{stamp}-{n}")
            n += 1
        dest.mkdir(parents=True)
        for entry in self.path.iterdir():
            if entry.name != ".hydra":
                os.replace(entry, dest / entry.name)
        return dest

    def begin(self, config_yaml: str, command: str) -> Path | None:
        """Start a job in this folder.

        Results of another config are set aside first (returns where they went); an old
        summary is invalidated atomically (removed) before anything else is written, so a
        job killed from here on can never pass as complete.
        """
        moved = None
        if self.state(config_yaml).state == "other_config":
            moved = self.set_aside()
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / self.SUMMARY).unlink(missing_ok=True)
        for tmp in self.path.glob(".*.tmp"):  # temporary files of a killed write
            tmp.unlink(missing_ok=True)
        (self.path / self.FAILED).unlink(missing_ok=True)
        write_text(self.path / self.CONFIG, config_yaml)
        write_text(self.path / self.COMMAND, command + "\n")
        return moved

    def write_metrics(self, arrays: Mapping[str, Any]) -> Path:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        return atomic_write_bytes(self.path / self.METRICS, buf.getvalue())

    def write_figure(self, name: str, figure: Any, dpi: int = 120) -> Path:
        """Save a matplotlib Figure as ``<name>.png`` (atomically) and close it.

        A figure with a layout engine (``layout="tight"`` or ``"constrained"``) already fits its
        artists inside itself and is drawn once; any other is cropped to its artists
        (``bbox_inches="tight"``, which costs a second drawing pass).
        """
        import matplotlib.pyplot as plt
        from matplotlib.layout_engine import ConstrainedLayoutEngine, TightLayoutEngine

        buf = io.BytesIO()
        fits = isinstance(figure.get_layout_engine(), (ConstrainedLayoutEngine, TightLayoutEngine))
        figure.savefig(buf, format="png", dpi=dpi, bbox_inches=None if fits else "tight")
        plt.close(figure)
        return atomic_write_bytes(self.path / f"{name}.png", buf.getvalue())

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path / name, obj)

    def complete(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``summary.json`` last, with the hashes of config.yaml and every result file."""
        names = sorted(p.name for p in self.path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".log")
                       and p.name not in (self.SUMMARY, self.FAILED))
        out = dict(summary)
        out["complete"] = True
        out["integrity"] = {"files": {n: _sha256(self.path / n) for n in names}}
        write_json(self.path / self.SUMMARY, out)
        return out

    def fail(self, error: BaseException | str, overrides: list[str] | None = None,
             traceback_text: str = "") -> None:
        """Record a failure (``failed.json``); finished results elsewhere are untouched."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        try:
            (self.path / self.SUMMARY).unlink(missing_ok=True)
            write_json(self.path / self.FAILED, {"error": text, "overrides": overrides or [],
                                                  "traceback": traceback_text})
        except OSError:
            pass  # an unwritable folder: the caller reports the error on the console
