"""The preset protocol: typed parameters and a key in, numbers, arrays and figures out.

A preset is a pure function ``run(params, key) -> PresetResult``: ``params`` is
the preset's frozen ``Params`` dataclass (defaults = the full size of the
paper's experiment; ``conf/experiment/<name>.yaml`` holds the same values and a
``smoke`` block of reduced sizes), ``key`` is ``jax.random.key(seed)``.  A
preset never writes files, configures loggers or sets the float precision: the
app does (it applies ``experiment.precision`` before calling ``run``, saves
``arrays`` to ``metrics.npz`` and each figure to ``<key>.png``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import numpy as np

__all__ = ["Preset", "PresetResult", "new_figure", "numpy_seed", "tuples"]


@dataclass(frozen=True)
class PresetResult:
    """What a preset returns.

    Attributes:
        metrics: JSON-able scalars and lists: the numbers that carry the claim.
        arrays: arrays saved to ``metrics.npz`` by the app.
        figures: matplotlib Figures; the app saves ``<key>.png`` and closes them.
        claims: each named claim of the preset and whether it held at this size.
    """

    metrics: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """A registered preset: its ``name``, ``Params`` class, ``run`` function and one-line ``claim``."""

    name: str
    params: type
    run: Callable[[Any, jax.Array], PresetResult]
    claim: str


def numpy_seed(key: jax.Array) -> int:
    """The int ``s`` of ``key = jax.random.key(s)`` (for presets drawing with NumPy)."""
    return int(jax.random.key_data(key)[-1])


def tuples(params: Any) -> None:
    """Freeze the list-valued fields of a frozen dataclass into tuples (nested too), in place.

    Call first in ``__post_init__``: the app passes lists from the YAML config.
    """

    def freeze(v: Any) -> Any:
        if isinstance(v, Sequence) and not isinstance(v, (str, bytes)):
            return tuple(freeze(x) for x in v)
        if isinstance(v, Mapping):
            return {k: freeze(x) for k, x in v.items()}
        return v

    for f in dataclasses.fields(params):
        object.__setattr__(params, f.name, freeze(getattr(params, f.name)))


def new_figure(**kwargs: Any):
    """A matplotlib ``Figure`` not registered with pyplot (no global state; the app saves it)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


@dataclass(frozen=True)
class RandomScaleBatch:
    """Sizes of a batch of seeds x inits x random step scales ``s ~ U[scale_range]`` with
    ``alpha_k = a / (k + b)^p`` (the avoidance results hold for almost every scale): a base of
    the presets' ``Params`` that run such batches."""

    seeds: int = 16
    inits: int = 16
    scales: int = 4
    scale_range: tuple[float, float] = (0.5, 2.0)
    a: float = 0.5
    b: float = 10.0
    p: float = 0.75
    num_steps: int = 2000

    def check_batch(self) -> None:
        """The checks of these fields (called by the subclass's ``__post_init__``)."""
        from nsopt import validate as V

        for f in ("seeds", "inits", "scales", "num_steps"):
            V.positive_int(f, getattr(self, f))
        lo, hi = V.numbers_list("scale_range", self.scale_range, 0, open_low=True)
        if lo > hi:
            raise V.BadValue("scale_range", list(self.scale_range), "it must be [low, high] with low <= high")
        V.number("a", self.a, 0, open_low=True)
        V.number("b", self.b, 0, open_low=True)
        V.number("p", self.p, 0, 1, open_low=True)

