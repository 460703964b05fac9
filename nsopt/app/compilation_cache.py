"""JAX's persistent compilation cache for sweeps: jobs of the same shapes reuse compiled programs.

Each Hydra job of a sweep (joblib, submitit, Slurm) is a fresh process that would compile
the same XLA programs again; with the cache on, the first job writes the compiled
executables to a folder and the others load them.  Config key ``compilation_cache``:

- ``null`` (default): a per-user folder, ``$XDG_CACHE_HOME/nsopt/jax`` or ``~/.cache/nsopt/jax``;
- a path: that folder (on a cluster, a folder every node sees, e.g. in ``$HOME``);
- ``false``: off.

Several jobs may write at once: entries are written to a temporary file and renamed into
place (readers never see a partial entry, a job killed while writing leaves none), and two
writers of one key write the same bytes.  The cache key covers the program, the
compile options, the backend and JAX/jaxlib versions, so a stale entry is never used.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["default_dir", "setup", "current_dir"]

_current: str | None = None


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/nsopt/jax``, or ``~/.cache/nsopt/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nsopt" / "jax"


def current_dir() -> str | None:
    """The folder :func:`setup` last turned on (``None``: off)."""
    return _current


def _atomic_file_cache(path: str):
    """JAX's file cache, with each entry written to a temporary file then renamed into place."""
    from jax._src.lru_cache import _CACHE_SUFFIX, LRUCache

    class AtomicLRUCache(LRUCache):
        def put(self, key: str, value: bytes) -> None:
            if self.eviction_enabled or not key:
                return super().put(key, value)
            final = self.path / f"{key}{_CACHE_SUFFIX}"
            if final.exists():
                return
            fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.path)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(value)
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    return AtomicLRUCache(path, max_size=-1)


def _install_atomic_writes() -> None:
    """Make JAX build its file cache with atomic writes (no-op if this JAX has no such hook)."""
    try:
        from jax._src import compilation_cache as cc
    except ImportError:
        return
    if getattr(cc.get_file_cache, "_nsopt_atomic", False) or not hasattr(cc, "get_file_cache"):
        return
    original = cc.get_file_cache

    def get_file_cache(path: str):
        from jax._src import config

        if config.compilation_cache_max_size.value != -1 or config.compilation_cache_check_contents.value:
            return original(path)
        return _atomic_file_cache(path), path

    get_file_cache._nsopt_atomic = True
    cc.get_file_cache = get_file_cache


def setup(folder: str | os.PathLike | bool | None = None) -> str | None:
    """Turn the persistent cache on in ``folder`` (``None``: :func:`default_dir`; ``False``: off).

    Call before the job compiles anything; returns the folder in use (``None`` when off,
    or when the folder cannot be created: the job then runs without the cache).
    """
    global _current
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    if folder is False:
        path = None
    else:
        path = Path(default_dir() if folder in (None, True) else os.path.expanduser(str(folder)))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            path = None
    new = str(path.resolve()) if path is not None else None
    if new == _current:
        return _current
    if new is not None:
        _install_atomic_writes()
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_dir", new)
    cc.reset_cache()  # the cache is initialized once, at the first compilation: start again from here
    _current = new
    return new
