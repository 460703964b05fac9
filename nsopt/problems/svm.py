"""Hinge-loss linear SVM on scikit-learn's bundled ``load_breast_cancer``.

``ell_i(w) = max(0, 1 - y_i <x_i, w>) + lam/2 ||w||^2`` with ``y_i in {-1, +1}``, ``x_i`` the
30 features (whitened, or standardized) and a constant 1 (the intercept, regularized like the rest):
``F`` is ``lam``-strongly convex, nonsmooth where a margin equals 1 (support vectors), with
a unique minimizer, that of ``LinearSVC(loss="hinge", C=1/(lam n), fit_intercept=False)``
(the tests' reference; Shalev-Shwartz et al. 2011, Pegasos, for SGD on this objective).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import validate
from nsopt.nonsmooth.kinks import relu
from nsopt.problems.finite_sum import FiniteSum, as_float, standardize, whiten
from nsopt.problems.samplers import Sampling, iid

__all__ = ["SVM", "svm", "load_classification"]

DATASETS = ("breast_cancer",)


class SVM(FiniteSum):
    """``F(w) = (1/n) sum_i max(0, 1 - y_i <x_i, w>) + lam/2 ||w||^2``; default init ``N(0, I/dim)``.

    ``kink`` is the autodiff derivative of ``max(0, .)`` at 0 (in ``[0, 1]``).
    """

    X: Array
    y: Array
    lam: Array
    kink: Array

    @property
    def name(self) -> str:
        return "svm"

    @property
    def n(self) -> int:
        return self.y.shape[0]

    def losses(self, w: Array, rows: Array | slice) -> Array:
        margin = self.y[rows] * (self.X[rows] @ w)
        return relu(1.0 - margin, self.kink) + 0.5 * self.lam * jnp.sum(w**2)

    def init(self, key: Array) -> Array:
        D = self.X.shape[1]
        return jax.random.normal(key, (D,), self.y.dtype) / np.sqrt(D)

    def accuracy(self, w: Array) -> Array:
        """Fraction of the examples on the right side of the hyperplane."""
        return jnp.mean(self.y * (self.X @ w) > 0)


def load_classification(dataset: str = "breast_cancer", num_features: int | None = None,
                        whitened: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: the first ``num_features`` features (all when ``None``), whitened (identity
    sample covariance: well-conditioned subgradient steps) or standardized, with a last column
    of ones; labels in ``{-1, +1}``."""
    from sklearn.datasets import load_breast_cancer

    validate.choice("dataset", dataset, DATASETS)
    X, y = load_breast_cancer(return_X_y=True)
    if num_features is not None:
        X = X[:, : validate.integer("num_features", num_features, 1, X.shape[1])]
    X = np.concatenate([whiten(X) if whitened else standardize(X), np.ones((len(y), 1))], axis=1)
    return X, np.where(y > 0, 1.0, -1.0)


def svm(dataset: str = "breast_cancer", num_features: int | None = None, whitened: bool = True,
        lam: float = 0.05, kink: float = 0.0, sampling: Sampling | None = None) -> SVM:
    """The hinge-loss SVM on a bundled dataset (see :class:`SVM`)."""
    lam = validate.number("lam", lam, 0.0, open_low=True)
    kink = validate.number("kink", kink, 0.0, 1.0)
    X, y = load_classification(dataset, num_features, whitened)
    sampling = iid(32) if sampling is None else sampling
    sampling.check(len(y))
    return SVM(sampling, *as_float(X, y, lam, kink))
