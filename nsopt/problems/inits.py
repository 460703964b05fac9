"""Initialization distributions: ``draw(problem, key) -> w0`` (the CLI's ``init`` group).

``default`` is the problem's own ``init``; ``gaussian`` and ``uniform`` draw every
coordinate of every leaf independently (shapes from ``problem.init``).  Each is an
immutable module whose numbers are array leaves, built from config through
``_target_`` (``conf/init/*.yaml``).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from nsopt import validate

__all__ = ["InitDistribution", "Default", "Gaussian", "Uniform", "default", "gaussian", "uniform"]

PyTree = Any


class InitDistribution(eqx.Module):
    """A distribution of initial points for a problem."""

    def draw(self, problem: Any, key: Array) -> PyTree:
        raise NotImplementedError

    def _leafwise(self, problem: Any, key: Array, sample) -> PyTree:
        shapes = jax.eval_shape(problem.init, key)
        leaves, tree = jax.tree.flatten(shapes)
        keys = jax.random.split(key, len(leaves))
        return jax.tree.unflatten(tree, [sample(k, s) for k, s in zip(keys, leaves)])


class Default(InitDistribution):
    """The problem's own ``init(key)``."""

    def draw(self, problem: Any, key: Array) -> PyTree:
        return problem.init(key)


class Gaussian(InitDistribution):
    """Every coordinate ``~ N(mean, std^2)``."""

    mean: float
    std: float

    def draw(self, problem: Any, key: Array) -> PyTree:
        return self._leafwise(problem, key,
                              lambda k, s: self.mean + self.std * jax.random.normal(k, s.shape, s.dtype))


class Uniform(InitDistribution):
    """Every coordinate ``~ U[low, high]``."""

    low: float
    high: float

    def draw(self, problem: Any, key: Array) -> PyTree:
        return self._leafwise(problem, key,
                              lambda k, s: jax.random.uniform(k, s.shape, s.dtype, self.low, self.high))


def default() -> Default:
    return Default()


def gaussian(mean: float = 0.0, std: float = 1.0) -> Gaussian:
    """``N(mean, std^2)`` per coordinate; ``std >= 0``."""
    return Gaussian(validate.number("mean", mean), validate.number("std", std, low=0.0))


def uniform(low: float = -1.0, high: float = 1.0) -> Uniform:
    """``U[low, high]`` per coordinate; ``low < high``."""
    low, high = validate.number("low", low), validate.number("high", high)
    if not low < high:
        raise validate.BadValue("high", high, f"it must be greater than low={low!r}")
    return Uniform(low, high)


def draw_many(dist: InitDistribution, problem: Any, key: Array, num: int) -> PyTree:
    """``num`` draws stacked on a leading axis; draw ``j`` uses ``fold_in(key, j)``."""
    keys = jax.vmap(lambda j: jax.random.fold_in(key, j))(jnp.arange(num, dtype=jnp.uint32))
    return jax.vmap(lambda k: dist.draw(problem, k))(keys)
