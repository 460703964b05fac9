"""Settings of the Lasso / elastic-net solver (:class:`LassoConfig`) and their resolved defaults."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jax import Array

__all__ = ["LassoConfig"]


class LassoConfig(eqx.Module):
    """Immutable solver settings (all static: changing one recompiles).

    - ``tol``: stop when ``dist_inf(0, dF(x)) / lam <= tol``; ``None``: ``eps**0.6``
      (``4e-10`` in float64, ``7e-5`` in float32).
    - ``max_steps``: total FISTA iterations.
    - ``max_support``: static cap on the support size (``None``: ``min(n, p)`` for the
      Lasso, ``p`` for the elastic net when ``p <= 4096``, else ``min(n, p)``).
    - ``patience``: FISTA iterations with an unchanged sign pattern before a Newton trial.
    - ``working_set``: number of columns of the inner problems when ``p`` exceeds it
      (``None``: ``max_support``, at least 64; ``0``: always use all columns).
    - ``equicorrelation_rtol``: ``j in E`` iff ``|A_j^T(b - A x)| >= lam (1 - rtol)``;
      ``None``: ``sqrt(eps)``.
    - ``rank_rtol``: ``A_E`` is rank deficient when ``sigma_min / sigma_max <= rank_rtol``
      (estimated from a Cholesky factor of ``A_E^T A_E``); ``None``: ``100 sqrt(eps)``.
    - ``power_iterations``: iterations of the power / inverse power methods.
    """

    tol: float | None = None
    max_steps: int = 20_000
    max_support: int | None = None
    patience: int = 3
    working_set: int | None = None
    equicorrelation_rtol: float | None = None
    rank_rtol: float | None = None
    power_iterations: int = 10

    def __check_init__(self) -> None:
        for name in ("tol", "equicorrelation_rtol", "rank_rtol"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and 0 < v < 1):
                raise ValueError(f"LassoConfig.{name} must be None or a float in (0, 1), got {v!r}")
        for name, low in (("max_steps", 1), ("patience", 0), ("power_iterations", 1)):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= low):
                raise ValueError(f"LassoConfig.{name} must be an int >= {low}, got {v!r}")
        if self.max_support is not None and not (
            isinstance(self.max_support, int) and self.max_support >= 1
        ):
            raise ValueError(
                f"LassoConfig.max_support must be None or an int >= 1, got {self.max_support!r}"
            )
        if self.working_set is not None and not (
            isinstance(self.working_set, int) and self.working_set >= 0
        ):
            raise ValueError(
                f"LassoConfig.working_set must be None or an int >= 0, got {self.working_set!r}"
            )



def resolve(cfg: LassoConfig, A: Array, enet: bool):
    """``(tol, k_max, working_set, equicorrelation_rtol, rank_rtol)`` for ``A`` (static ints/floats)."""
    n, p = A.shape
    eps = float(jnp.finfo(A.dtype).eps)
    tol = cfg.tol if cfg.tol is not None else eps**0.6
    if cfg.max_support is not None:
        k_max = min(cfg.max_support, p)
    elif enet and p <= 4096:
        k_max = p
    else:
        k_max = min(n, p)
    k_max = max(k_max, 1)
    ws = cfg.working_set
    ws = max(k_max, 64) if ws is None else max(ws, k_max) if ws > 0 else 0
    ws = 0 if ws >= p else ws
    etol = cfg.equicorrelation_rtol if cfg.equicorrelation_rtol is not None else math.sqrt(eps)
    rtol = cfg.rank_rtol if cfg.rank_rtol is not None else 100 * math.sqrt(eps)
    return tol, k_max, ws, etol, rtol
