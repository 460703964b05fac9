"""The algorithm protocol shared by :mod:`sgd` and :mod:`heavy_ball`.

An algorithm is an immutable equinox module holding its configuration
(schedules, scale).  Its state is a separate pytree with at least a field
``w``.  Two pure functions drive it (the optax init/update pattern):

- ``init(oracle, w0, sample) -> state``
- ``step(oracle, state, k, sample) -> state``  (iteration ``k -> k + 1``)

``sample(j)`` returns ``xi_j = sampler(fold_in(key, j))``: the algorithm asks
for the sample of the point it queries, so the noise of a run depends only on
its key and the iteration counter (not on batching or recording).
``step_size(k) = scale * alpha_k`` is the increment of the interpolation time
``tau`` (docs/theory.md §5).
"""

from __future__ import annotations

import abc
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

PyTree = Any
Sample = Callable[[Array], Any]
Oracle = Callable[[PyTree, Any], PyTree]

__all__ = ["Algorithm", "Sample", "tree_axpy", "check_oracle_output"]


def tree_axpy(a: Array, x: PyTree, y: PyTree) -> PyTree:
    """``a * x + y`` leafwise (``a`` a scalar), keeping the dtype of ``y``."""
    return jax.tree.map(lambda xi, yi: (yi + a * xi).astype(yi.dtype), x, y)


def check_oracle_output(w: PyTree, v: PyTree) -> None:
    """Raise a clear error when ``oracle(w, xi)`` is not shaped like ``w``."""
    ws, vs = jax.tree.structure(w), jax.tree.structure(v)
    if ws != vs:
        raise ValueError(
            f"oracle(w, xi) must return a pytree shaped like w: w has structure {ws}, "
            f"the oracle returned {vs}"
        )
    for i, (a, b) in enumerate(zip(jax.tree.leaves(w), jax.tree.leaves(v))):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(
                f"oracle(w, xi) must return a pytree shaped like w: leaf {i} of w has shape "
                f"{jnp.shape(a)}, the oracle returned shape {jnp.shape(b)}"
            )


class Algorithm(eqx.Module):
    """Abstract stochastic first-order method ``w_{k+1} = w_k - scale * alpha_k * d_k``."""

    @abc.abstractmethod
    def init(self, oracle: Oracle, w0: PyTree, sample: Sample) -> PyTree: ...

    @abc.abstractmethod
    def step(self, oracle: Oracle, state: PyTree, k: Array, sample: Sample) -> PyTree: ...

    @abc.abstractmethod
    def step_size(self, k: Array) -> Array:
        """``scale * alpha_k``: the increment of interpolation time at iteration ``k``."""

    @abc.abstractmethod
    def with_scale(self, scale: Array) -> "Algorithm":
        """The same algorithm with another scale ``s`` (used to vmap over scales)."""

    def records(self, state: PyTree, k: Array) -> dict[str, Any]:
        """What a :class:`~nsopt.Trajectory` records besides ``w``, ``tau``, ``k`` (default: nothing).

        Keys are ``Trajectory`` fields (heavy ball records its momentum ``y`` and coupling ``r``).
        """
        return {}
