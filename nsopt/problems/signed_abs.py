"""The integral-rule counterexample ``f(w, s) = s |w|`` with ``E[s] = 0`` (so ``F = 0``).

``d^c F(0) = {0}`` but ``E[d^c f(0, s)] = E|s| [-1, 1]``: the expected conservative
field of autodiff is ``E_s D(w, s)``, which at the kink depends on the selection
``abs'(0) = kink_const + kink_sign * sign(s)`` (Bolte-Le-Pauwels 2022, arXiv 2202.13744;
docs/theory.md §integral rule).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from nsopt.nonsmooth import kinks
from nsopt.problems.base import Problem

__all__ = ["SignedAbs", "signed_abs"]


class SignedAbs(Problem):
    """``f(w, s) = s |w|`` (``w`` of shape ``(1,)``) with ``abs'(0) = kink_const + kink_sign * sign(s)``.

    ``s ~ U[-1, 1]`` (``pm1 = False``) or ``s = +-1`` with probability 1/2
    (``pm1 = True``).  Every field is an array leaf, so a batch of settings is
    vmapped through one compiled program.
    """

    pm1: Array
    kink_const: Array
    kink_sign: Array

    @property
    def name(self) -> str:
        return "signed_abs"

    @property
    def dim(self) -> int:
        return 1

    def loss(self, w: Array, s: Array) -> Array:
        kink = self.kink_const + self.kink_sign * jnp.sign(s)
        return s * kinks.abs(w[0], kink)

    def sampler(self, key: Array) -> Array:
        dtype = self.kink_const.dtype
        u = jax.random.uniform(key, (), dtype, -1.0, 1.0)
        return jnp.where(self.pm1, jnp.where(u >= 0, 1.0, -1.0).astype(dtype), u)

    def F(self, w: Array) -> Array:
        """``E_s s |w| = 0``."""
        return jnp.zeros((), w.dtype)

    def init(self, key: Array) -> Array:
        """Uniform on ``[-1, 1]``."""
        return jax.random.uniform(key, (1,), self.kink_const.dtype, -1.0, 1.0)


def signed_abs(pm1: bool = False, kink_const: float = 0.0, kink_sign: float = 0.0) -> SignedAbs:
    """Build :class:`SignedAbs` in the current default float precision."""
    f = jnp.result_type(float)
    return SignedAbs(jnp.asarray(bool(pm1)), jnp.asarray(kink_const, f), jnp.asarray(kink_sign, f))
