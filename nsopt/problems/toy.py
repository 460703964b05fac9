"""Nonsmooth 2-D toy problems with known Clarke-critical sets."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from nsopt import validate
from nsopt.nonsmooth import kinks
from nsopt.problems.base import Problem

__all__ = ["Ring", "ring"]


class Ring(Problem):
    """``f(w, xi) = | ||w||^2 - 1 | + <xi, w>``, ``xi ~ N(0, noise^2 I_2)``.

    ``F(w) = | ||w||^2 - 1 |`` (exact: the noise has mean zero).  The function
    is nonsmooth on the whole unit circle, which is its set of minimizers.
    Clarke-critical set: the unit circle (minima, ``0 in [-1, 1] * 2w``) and
    the origin (a smooth local maximum, gradient ``-2w = 0``).  Autodiff uses
    ``abs'(0) = kink``, so on the circle it returns ``2 * kink * w``.
    """

    noise: Array
    kink: Array
    init_radius: float = eqx.field(static=True, default=2.0)

    @property
    def name(self) -> str:
        return "ring"

    @property
    def dim(self) -> int:
        return 2

    def loss(self, w: Array, xi: Array) -> Array:
        return kinks.abs(jnp.sum(w**2) - 1.0, self.kink) + jnp.dot(xi, w)

    def sampler(self, key: Array) -> Array:
        return self.noise * jax.random.normal(key, (2,), dtype=self.noise.dtype)

    def F(self, w: Array) -> Array:
        return kinks.abs(jnp.sum(w**2) - 1.0, self.kink)

    def init(self, key: Array) -> Array:
        r = self.init_radius
        return jax.random.uniform(key, (2,), self.noise.dtype, minval=-r, maxval=r)

    def distance_to_critical(self, w: Array) -> Array:
        """Euclidean distance to the Clarke-critical set ``{||w|| = 1} u {0}``."""
        r = jnp.linalg.norm(w, axis=-1)
        return jnp.minimum(jnp.abs(r - 1.0), r)


def ring(noise: float = 0.5, kink: float = 0.0, init_radius: float = 2.0) -> Ring:
    """The ring toy ``| ||w||^2 - 1 | + <xi, w>`` (see :class:`Ring`)."""
    validate.number("noise", noise, low=0.0)
    validate.number("kink", kink, -1.0, 1.0)  # abs'(0) in the Clarke subdifferential [-1, 1]
    validate.number("init_radius", init_radius, low=0.0, open_low=True)
    f = jnp.result_type(float)
    return Ring(jnp.asarray(noise, f), jnp.asarray(kink, f), float(init_radius))
