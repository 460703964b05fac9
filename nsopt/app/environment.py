"""The process around a job: numeric precision and what is needed to reproduce a run."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from typing import Any, Iterator

import jax

__all__ = ["set_precision", "environment"]


@contextlib.contextmanager
def set_precision(precision: str) -> Iterator[None]:
    """``float64`` turns on ``jax_enable_x64`` for the job (before any of its arrays exist).

    The previous setting is restored afterwards, so in-process callers (tests,
    notebooks) keep their own precision.
    """
    old = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", precision == "float64")
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


def environment() -> dict[str, Any]:
    """Package versions, platform, JAX backend and devices, precision."""
    versions = {}
    for pkg in ("nsopt", "jax", "jaxlib", "equinox", "flax", "optax", "numpy", "hydra-core", "wandb"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": platform.python_version(),
        "pid": os.getpid(),
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "versions": versions,
    }
