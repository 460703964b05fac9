"""ReLU regression, teacher-student: ``ell_i(w) = 1/2 (relu(<x_i, w>) - y_i)^2``, ``y_i = relu(<x_i, w*>)``.

``x_i ~ N(0, I_d)``, ``w*`` uniform on the unit sphere (the teacher), optional label noise
``y_i += noise * N(0, 1)``.  Noiseless, the global minimizer is ``w*`` (generically unique for
``m >= 2 d``); every ``w`` with ``<x_i, w> <= 0`` for all ``i`` is a spurious Clarke-critical
point (all units dead).  From ``<w_0, w*> > 0`` gradient methods converge to ``w*``
(Yehudai-Shamir 2020, arXiv 2001.05205): the default init is a Gaussian draw reflected into
that half-space.  ``kink = relu'(0)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import validate
from nsopt.nonsmooth.kinks import relu
from nsopt.problems.finite_sum import FiniteSum, as_float
from nsopt.problems.samplers import Sampling, iid

__all__ = ["ReluRegression", "relu_regression"]


class ReluRegression(FiniteSum):
    """``F(w) = (1/2m) sum_i (relu(<x_i, w>) - y_i)^2``; solution ``w*`` (noiseless)."""

    X: Array
    y: Array
    w_star: Array
    kink: Array

    @property
    def name(self) -> str:
        return "relu_regression"

    @property
    def n(self) -> int:
        return self.y.shape[0]

    def losses(self, w: Array, rows: Array | slice) -> Array:
        return 0.5 * (relu(self.X[rows] @ w, self.kink) - self.y[rows]) ** 2

    def init(self, key: Array) -> Array:
        g = jax.random.normal(key, self.w_star.shape, self.y.dtype) / np.sqrt(self.w_star.shape[0])
        return jnp.where(jnp.dot(g, self.w_star) < 0, -g, g)

    def distance_to_solutions(self, w: Array) -> Array:
        """``||w - w*||`` (last axis)."""
        return jnp.linalg.norm(w - self.w_star, axis=-1)


def relu_regression(d: int = 20, m: int = 400, noise: float = 0.0, kink: float = 0.0, data_seed: int = 0,
                    sampling: Sampling | None = None) -> ReluRegression:
    """Teacher-student ReLU regression (see :class:`ReluRegression`)."""
    d = validate.positive_int("d", d)
    m = validate.integer("m", m, 2 * d)
    noise = validate.number("noise", noise, 0.0)
    kink = validate.number("kink", kink, 0.0, 1.0)
    validate.integer("data_seed", data_seed, 0)
    sampling = iid() if sampling is None else sampling
    sampling.check(m)
    rng = np.random.default_rng(data_seed)
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    X = rng.standard_normal((m, d))
    y = np.maximum(X @ w, 0.0) + noise * rng.standard_normal(m)
    return ReluRegression(sampling, *as_float(X, y, w, kink))
