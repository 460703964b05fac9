"""Helpers shared by the benchmark scripts: time a first call, print a result and append it to ``--out``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``, waiting for JAX's asynchronous results (a first call: compile + run)."""
    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t


def emit(text: str, out: str | None) -> None:
    """Print ``text`` and append it to the file ``out`` (when given)."""
    print(text)
    if out:
        with open(out, "a") as f:
            f.write("\n" + text)
