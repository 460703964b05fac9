"""The maximum toy: the kinked line with ``u = max(u, 0) + min(u, 0)`` in place of ``relu(u) - relu(-u)``.

``f(w, xi) = 1/2 (max(w_1, 0) + min(w_1, 0) - 1)^2 + |w_2| + <xi, w>``, ``F(w) = 1/2 (w_1 - 1)^2
+ |w_2|``: one Clarke-critical point ``(1, 0)``.  Autodiff with the tie rule
``max'(u, 0) = min'(u, 0) = kink_max`` at ``u = 0`` returns ``2 kink_max`` for the derivative
of ``u``, so ``kink_max = 0`` makes ``(0, 0)`` an artificial critical point, as
``relu'(0) = 0`` does in :mod:`nsopt.problems.kinked_line` (Bolte-Pauwels 2020, arXiv 1909.10300).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from nsopt import validate
from nsopt.nonsmooth import kinks
from nsopt.problems.kinked_line import KinkedLine

__all__ = ["MaxLine", "max_line"]


class MaxLine(KinkedLine):
    """:class:`KinkedLine` with ``g(u) = max(u, 0) + min(u, 0)`` (tie weight ``kink_relu``)."""

    @property
    def name(self) -> str:
        return "max_line"

    def g(self, u: Array) -> Array:
        """``max(u, 0) + min(u, 0) = u``, with autodiff derivative ``2 kink`` at ``u = 0``."""
        zero = jnp.zeros_like(u)
        return kinks.maximum(u, zero, self.kink_relu) + kinks.minimum(u, zero, self.kink_relu)


def max_line(noise: float = 0.3, kink_max: float = 0.0, kink_abs: float = 0.0,
             box: tuple[float, float, float, float] = (-2.0, -0.25, -1.0, 1.0)) -> MaxLine:
    """Build :class:`MaxLine`; ``kink_max`` in ``[0, 1]`` is the tie weight of ``max``/``min`` at 0."""
    validate.number("noise", noise, low=0.0)
    validate.number("kink_max", kink_max, 0.0, 1.0)
    validate.number("kink_abs", kink_abs, -1.0, 1.0)
    f = jnp.result_type(float)
    return MaxLine(jnp.asarray(noise, f), jnp.asarray(kink_max, f), jnp.asarray(kink_abs, f),
                   tuple(float(b) for b in box))
