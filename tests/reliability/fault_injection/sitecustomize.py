"""Fault injection for the crash tests: kill this process (``os._exit(137)``, like SIGKILL: no
cleanup, no ``finally``) at a write boundary of a run folder.  Active only when the test puts
this folder on PYTHONPATH and sets:

- ``NSOPT_FAULT_FILE``: the result file name (``config.yaml``, ``metrics.npz``, ``summary.json``);
- ``NSOPT_FAULT_POINT``: ``mid_write`` (half of the bytes reach the file being written, whatever
  file that is: a temporary one or the result itself) or ``after_write`` (right after the result
  file appears under its final name, by rename or by a direct write).

It patches the standard library (``open``, ``os.fdopen``, ``os.replace``, ``Path.write_bytes``),
not nsopt, so it catches the moment whatever way nsopt writes.
"""

import builtins
import os
import pathlib

FILE = os.environ.get("NSOPT_FAULT_FILE")
POINT = os.environ.get("NSOPT_FAULT_POINT", "mid_write")


def _die() -> None:
    os._exit(137)


def _concerns(name: str) -> bool:
    """A run-folder file (Hydra's own ``.hydra/config.yaml`` is not one)."""
    return bool(FILE) and FILE in os.path.basename(str(name)) and ".hydra" not in str(name)


class _HalfWriter:
    """Writes half of the first write's bytes, syncs them to disk, then kills the process."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: max(1, len(data) // 2)])
        self._f.flush()
        os.fsync(self._f.fileno())
        _die()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._f, name)


class _AfterWriter(_HalfWriter):
    """Writes everything, closes the file, then kills the process (a direct, non-renamed write)."""

    def write(self, data):
        n = self._f.write(data)
        self._f.flush()
        os.fsync(self._f.fileno())
        return n

    def __exit__(self, *exc):
        self._f.__exit__(*exc)
        _die()


if FILE:
    _open, _fdopen, _replace = builtins.open, os.fdopen, os.replace
    _write_bytes = pathlib.Path.write_bytes

    def _wrap(f, name, mode):
        if "w" not in str(mode) or not _concerns(name):
            return f
        if POINT == "mid_write":
            return _HalfWriter(f)
        if POINT == "after_write" and os.path.basename(str(name)) == FILE:
            return _AfterWriter(f)
        return f

    def open_(file, mode="r", *args, **kwargs):
        return _wrap(_open(file, mode, *args, **kwargs), file, mode)

    def fdopen(fd, mode="r", *args, **kwargs):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        return _wrap(_fdopen(fd, mode, *args, **kwargs), name, mode)

    def replace(src, dst, *args, **kwargs):
        _replace(src, dst, *args, **kwargs)
        if POINT == "after_write" and os.path.basename(str(dst)) == FILE and _concerns(dst):
            _die()

    def write_bytes(self, data):
        with open_(self, "wb") as f:
            return f.write(data)

    builtins.open, os.fdopen, os.replace = open_, fdopen, replace
    pathlib.Path.write_bytes = write_bytes
