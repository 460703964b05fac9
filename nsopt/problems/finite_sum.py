"""Finite-sum problems ``F(w) = (1/n) sum_i ell_i(w)`` over a fixed dataset, with a sampling scheme.

``xi`` is a minibatch of indices drawn by the problem's ``sampling``
(:mod:`nsopt.problems.samplers`: ``iid``, ``reshuffle``, ``minibatch``) and
``loss(w, xi) = mean_{i in xi} ell_i(w)``, so ``E loss(w, xi_k) = F(w)`` for each scheme.
A subclass gives the per-example losses ``losses(w, rows)`` on a set of rows of its data
(an index array, or ``slice(None)`` for the whole dataset) and the number ``n`` of examples.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt.problems.base import Problem
from nsopt.problems.samplers import IndexSampler, Sampling

__all__ = ["FiniteSum", "standardize", "whiten", "as_float"]


class FiniteSum(Problem):
    """``F(w) = (1/n) sum_i ell_i(w)``; ``xi_k`` = the indices that ``sampling`` draws at step ``k``."""

    sampling: Sampling

    @property
    @abc.abstractmethod
    def n(self) -> int:
        """Number of examples."""

    @abc.abstractmethod
    def losses(self, w: Any, rows: Array | slice) -> Array:
        """Per-example losses ``ell_i(w)`` for the rows ``rows`` of the data."""

    def loss(self, w: Any, xi: Array) -> Array:
        return jnp.mean(self.losses(w, xi))

    def F(self, w: Any) -> Array:
        return jnp.mean(self.losses(w, slice(None)))

    @property
    def sampler(self) -> IndexSampler:  # type: ignore[override]
        """The scheme bound to the ``n`` examples: ``sampler(key, k)`` (counter based)."""
        return IndexSampler(self.sampling, self.n)

    @property
    def dim(self) -> int:
        shapes = jax.eval_shape(self.init, jax.random.key(0))
        return int(sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)))


def standardize(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit variance (constant columns only centred)."""
    x = np.asarray(x, np.float64)
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)


def whiten(x: np.ndarray) -> np.ndarray:
    """Centred columns in the orthonormal basis of their principal axes, scaled to unit variance
    (``x V diag(s)^-1``: identity sample covariance; directions of zero variance dropped)."""
    x = np.asarray(x, np.float64) - np.mean(x, 0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > 1e-10 * s[0]
    return x @ vt[keep].T / (s[keep] / np.sqrt(len(x)))


def as_float(*arrays: Any) -> tuple[Array, ...]:
    """The arrays in the current default float precision (float64 under ``jax_enable_x64``)."""
    f = jnp.result_type(float)
    return tuple(jnp.asarray(a, f) for a in arrays)
