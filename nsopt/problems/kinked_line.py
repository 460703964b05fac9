"""A 2-D problem where autodiff with ``relu'(0) = 0`` creates an artificial critical point.

``f(w, xi) = 1/2 (relu(w_1) - relu(-w_1) - 1)^2 + |w_2| + <xi, w>``, ``xi ~ N(0, noise^2 I_2)``;
``F(w) = 1/2 (w_1 - 1)^2 + |w_2|`` has one Clarke-critical point ``(1, 0)``, but backprop
with ``relu'(0) = 0`` returns ``D(0, 0) = 0`` (Bolte-Pauwels 2020, arXiv 1909.10300).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from nsopt import validate
from nsopt.nonsmooth import kinks
from nsopt.oracles import relu
from nsopt.problems.base import Problem

__all__ = ["KinkedLine", "kinked_line"]


class KinkedLine(Problem):
    """``f(w, xi) = 1/2 (relu(w_1) - relu(-w_1) - 1)^2 + |w_2| + <xi, w>`` (arXiv 1909.10300: ``(0, 0)`` is an artificial critical point of autodiff with ``relu'(0) = 0``).

    ``kink_relu = relu'(0)``, ``kink_abs = abs'(0)`` (array leaves: one compiled program
    serves every value); inits uniform on
    ``[lo_1, hi_1] x [lo_2, hi_2]`` (``w_1 < 0``: every flow line crosses ``w_1 = 0``).
    """

    noise: Array
    kink_relu: Array
    kink_abs: Array
    box: tuple[float, float, float, float] = eqx.field(static=True, default=(-2.0, -0.25, -1.0, 1.0))

    @property
    def name(self) -> str:
        return "kinked_line"

    @property
    def dim(self) -> int:
        return 2

    def g(self, u: Array) -> Array:
        """``relu(u) - relu(-u) = u``, with autodiff derivative ``2 relu'(0)`` at ``u = 0``."""
        return relu(u, self.kink_relu) - relu(-u, self.kink_relu)

    def F(self, w: Array) -> Array:
        return 0.5 * (self.g(w[0]) - 1.0) ** 2 + kinks.abs(w[1], self.kink_abs)

    def loss(self, w: Array, xi: Array) -> Array:
        return self.F(w) + jnp.dot(xi, w)

    def sampler(self, key: Array) -> Array:
        return self.noise * jax.random.normal(key, (2,), self.noise.dtype)

    def init(self, key: Array) -> Array:
        lo1, hi1, lo2, hi2 = self.box
        lo = jnp.asarray([lo1, lo2], self.noise.dtype)
        hi = jnp.asarray([hi1, hi2], self.noise.dtype)
        return jax.random.uniform(key, (2,), self.noise.dtype, lo, hi)


def kinked_line(noise: float = 0.3, kink_relu: float = 0.0, kink_abs: float = 0.0,
                box: tuple[float, float, float, float] = (-2.0, -0.25, -1.0, 1.0)) -> KinkedLine:
    """Build :class:`KinkedLine` in the current default float precision."""
    validate.number("noise", noise, low=0.0)
    f = jnp.result_type(float)
    return KinkedLine(jnp.asarray(noise, f), jnp.asarray(kink_relu, f), jnp.asarray(kink_abs, f),
                      tuple(float(b) for b in box))
