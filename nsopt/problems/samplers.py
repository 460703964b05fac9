"""Sampling schemes of a finite sum ``F(w) = (1/n) sum_i ell_i(w)``: which indices step ``k`` uses.

Every scheme is a function of the run key and the step ``k`` only (counter based), so
a run depends only on its key, never on ``record_every``, chunking or the batch around it:

- :class:`IID` (``iid``): ``b`` indices uniform with replacement, independent across steps
  (``xi_k = randint(fold_in(key, k))``): the i.i.d. setting of the stochastic
  approximation theory (docs/theory.md §ODE approach), ``E loss(w, xi_k) = F(w)``.
- :class:`Reshuffled` (``reshuffle``): random reshuffling, what practitioners run: epoch
  ``e = k // m`` (``m = n // b`` steps) visits the batches of a fresh permutation
  ``perm_e = permutation(fold_in(fold_in(key, EPOCHS), e))``, without replacement.  The
  ``xi_k`` of one epoch are dependent, so it is outside the i.i.d. theory (each step is
  still marginally a uniform ``b``-subset: ``E loss(w, xi_k) = F(w)``; Mishchenko et al.
  2020, arXiv 2006.05988).  The ``n - m b`` examples left over by each permutation are
  skipped in that epoch.
- :class:`Minibatch` (``minibatch``): the fixed finite dataset seen through minibatches of
  ``b`` distinct indices (uniform ``b``-subsets), independent across steps.

A problem binds a scheme to its dataset size as an :class:`IndexSampler`, which
:func:`nsopt.run` calls as ``sampler(key, k)`` (its ``takes_step`` attribute).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from nsopt import validate

__all__ = ["Sampling", "IID", "Reshuffled", "Minibatch", "IndexSampler", "SCHEMES", "iid", "reshuffle",
           "minibatch", "make"]

#: Tag folded into the run key before the epoch number (a stream apart from ``fold_in(key, k)``).
EPOCHS = 0x7E9C


class Sampling(eqx.Module):
    """A sampling scheme: ``indices(key, k, n)`` -> ``batch_size`` indices in ``[0, n)`` for step ``k``."""

    batch_size: int = eqx.field(static=True)

    @abc.abstractmethod
    def indices(self, key: Array, k: Array, n: int) -> Array:
        """The minibatch of step ``k`` of the run with key ``key`` (shape ``(batch_size,)``)."""

    def check(self, n: int) -> None:
        """Raise :class:`nsopt.validate.BadValue` when the scheme cannot draw from ``n`` examples."""
        validate.integer("sampling.batch_size", self.batch_size, 1, n)


class IID(Sampling):
    """``batch_size`` indices uniform on ``[0, n)`` with replacement, fresh at every step."""

    def indices(self, key: Array, k: Array, n: int) -> Array:
        return jax.random.randint(jax.random.fold_in(key, k), (self.batch_size,), 0, n)

    def check(self, n: int) -> None:
        validate.positive_int("sampling.batch_size", self.batch_size)


class Reshuffled(Sampling):
    """Without replacement in reshuffled epochs of ``n // batch_size`` steps (random reshuffling)."""

    def indices(self, key: Array, k: Array, n: int) -> Array:
        b = self.batch_size
        m = n // b
        perm = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, EPOCHS), k // m), n)
        return jax.lax.dynamic_slice(perm, ((k % m) * b,), (b,))


class Minibatch(Sampling):
    """``batch_size`` distinct indices (a uniform subset), independent across steps."""

    def indices(self, key: Array, k: Array, n: int) -> Array:
        return jax.random.choice(jax.random.fold_in(key, k), n, (self.batch_size,), replace=False)


class IndexSampler(eqx.Module):
    """A scheme bound to a dataset of ``n`` examples: ``sampler(key, k)`` -> indices of step ``k``.

    ``takes_step`` tells :func:`nsopt.run` to pass the run key and ``k`` (not
    ``fold_in(key, k)``).  Called with a key alone, it draws step ``0`` of that key
    (one draw from the scheme's marginal law, e.g. for the flow's sampled fields).
    """

    takes_step: ClassVar[bool] = True
    scheme: Sampling
    n: int = eqx.field(static=True)

    def __call__(self, key: Array, k: Array | int = 0) -> Array:
        return self.scheme.indices(key, jnp.asarray(k, jnp.int32), self.n)


SCHEMES = {"iid": IID, "reshuffle": Reshuffled, "minibatch": Minibatch}


def iid(batch_size: int = 1) -> IID:
    """i.i.d. indices with replacement (``conf/sampling/iid.yaml``)."""
    return IID(validate.positive_int("batch_size", batch_size))


def reshuffle(batch_size: int = 1) -> Reshuffled:
    """Random reshuffling: epochs without replacement (``conf/sampling/reshuffle.yaml``)."""
    return Reshuffled(validate.positive_int("batch_size", batch_size))


def minibatch(batch_size: int = 32) -> Minibatch:
    """Independent minibatches of distinct indices (``conf/sampling/minibatch.yaml``)."""
    return Minibatch(validate.positive_int("batch_size", batch_size))


def make(scheme: str | Sampling, batch_size: int = 1) -> Sampling:
    """A :class:`Sampling` from its name in :data:`SCHEMES` (a :class:`Sampling` is passed through)."""
    if isinstance(scheme, Sampling):
        return scheme
    validate.choice("sampling", scheme, sorted(SCHEMES))
    return SCHEMES[scheme](validate.positive_int("batch_size", batch_size))
