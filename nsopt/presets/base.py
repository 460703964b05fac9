"""The preset protocol: a frozen ``Params`` dataclass, ``run(params, key) -> PresetResult`` and a claim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import matplotlib.figure
import numpy as np

__all__ = ["Preset", "PresetResult"]


@dataclass(frozen=True)
class PresetResult:
    metrics: dict[str, Any]
    arrays: dict[str, np.ndarray]
    figures: dict[str, matplotlib.figure.Figure]
    claims: dict[str, bool]


@dataclass(frozen=True)
class Preset:
    name: str
    params: type
    run: Callable[[Any, jax.Array], PresetResult]
    claim: str
