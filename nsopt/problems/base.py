"""What a problem supplies: ``loss(w, xi)``, ``sampler``, ``F``, ``field``, ``dim``, ``init``.

Problems are data, not code paths: algorithms and the flow never special-case
one.  A problem is an immutable equinox module, so its arrays (datasets) are
pytree leaves, passed to compiled programs as arguments rather than baked in.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
from jax import Array

from nsopt.oracles.autodiff import Autodiff, autodiff

PyTree = Any

__all__ = ["Problem"]


class Problem(eqx.Module):
    """A stochastic objective ``F(w) = E_{xi ~ P} loss(w, xi)``.

    Subclasses define ``loss``, ``sampler``, ``F``, ``init`` and the static
    ``name``/``dim``.  ``field(w)`` defaults to backprop through ``F`` (an
    element of the expected conservative field when ``F`` is the exact
    expectation: integral rule, docs/theory.md §4).
    """

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Number of scalar parameters in ``w``."""

    @abc.abstractmethod
    def loss(self, w: PyTree, xi: Any) -> Array:
        """Sampled loss ``f(w, xi)``."""

    @abc.abstractmethod
    def sampler(self, key: Array) -> Any:
        """Draw ``xi ~ P``."""

    @abc.abstractmethod
    def F(self, w: PyTree) -> Array:
        """Full objective ``E_xi f(w, xi)`` (exact, or on a stated fixed sample)."""

    @abc.abstractmethod
    def init(self, key: Array) -> PyTree:
        """Draw one initialization from the problem's default distribution."""

    def oracle(self) -> Autodiff:
        """The autodiff oracle ``(w, xi) -> backprop of loss(., xi) at w``."""
        return autodiff(self.loss)

    def field(self, w: PyTree) -> PyTree:
        """An element of the mean conservative field ``D_F(w)`` (backprop through ``F``)."""
        return jax.grad(self.F)(w)

    def inits(self, key: Array, num: int) -> PyTree:
        """``num`` default initializations stacked along a leading axis."""
        return jax.vmap(self.init)(jax.random.split(key, num))

    @property
    def is_2d(self) -> bool:
        """Whether iterates can be drawn in the plane (``w`` a single array of shape ``(2,)``)."""
        leaves = jax.tree.leaves(jax.eval_shape(self.init, jax.random.key(0)))
        return len(leaves) == 1 and leaves[0].shape == (2,)
