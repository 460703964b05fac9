"""Least-absolute-deviation regression on scikit-learn's bundled ``load_diabetes``.

``ell_i(w) = |<x_i, beta> + c - y_i|`` with ``w = (beta, c)`` (the 10 features whitened, or
standardized, and an intercept; ``y`` standardized): a convex piecewise-linear (polyhedral) objective, so its
minimizer (generically unique, the median regression of Koenker-Bassett 1978) is sharp and
is the solution of a linear program, the reference the tests compare with.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import validate
from nsopt.problems.finite_sum import FiniteSum, as_float, standardize, whiten
from nsopt.problems.samplers import Sampling, iid

__all__ = ["LAD", "lad", "load_regression"]

DATASETS = ("diabetes",)


class LAD(FiniteSum):
    """``F(w) = (1/n) sum_i |<x_i, beta> + c - y_i|``, ``w = (beta, c)``; default init ``N(0, I)``."""

    X: Array
    y: Array

    @property
    def name(self) -> str:
        return "lad"

    @property
    def n(self) -> int:
        return self.y.shape[0]

    def losses(self, w: Array, rows: Array | slice) -> Array:
        return jnp.abs(self.X[rows] @ w[:-1] + w[-1] - self.y[rows])

    def init(self, key: Array) -> Array:
        return jax.random.normal(key, (self.X.shape[1] + 1,), self.y.dtype)


def load_regression(dataset: str = "diabetes", num_examples: int | None = None,
                    whitened: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a bundled scikit-learn regression dataset, the first ``num_examples`` rows
    (all when ``None``): ``y`` standardized, ``X`` whitened (identity sample covariance; the fit
    is equivariant, so this is a change of basis of ``beta`` that makes subgradient steps
    well conditioned) or only standardized."""
    from sklearn.datasets import load_diabetes

    validate.choice("dataset", dataset, DATASETS)
    X, y = load_diabetes(return_X_y=True)
    if num_examples is not None:
        num_examples = validate.integer("num_examples", num_examples, X.shape[1] + 1, len(y))
        X, y = X[:num_examples], y[:num_examples]
    return (whiten(X) if whitened else standardize(X)), standardize(y[:, None])[:, 0]


def lad(dataset: str = "diabetes", num_examples: int | None = None, whitened: bool = True,
        sampling: Sampling | None = None) -> LAD:
    """LAD regression on a bundled dataset (see :class:`LAD`)."""
    X, y = load_regression(dataset, num_examples, whitened)
    sampling = iid(32) if sampling is None else sampling
    sampling.check(len(y))
    return LAD(sampling, *as_float(X, y))
