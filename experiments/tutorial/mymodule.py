"""A 10-D hinge loss on scikit-learn's load_breast_cancer with minibatches: an nsopt problem."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_breast_cancer

from nsopt.problems import Problem


class Hinge(Problem):
    """F(w) = (1/n) sum_i max(0, 1 - y_i <x_i, w>), xi = a minibatch of example indices."""

    X: jax.Array          # (n, 10) standardized features
    y: jax.Array          # (n,) labels in {-1, +1}
    batch_size: int = eqx.field(static=True, default=32)   # static: a shape, not data

    @property
    def name(self):
        return "hinge"

    @property
    def dim(self):
        return self.X.shape[1]

    def loss(self, w, xi):            # the sampled loss f(w, xi): mean hinge on the minibatch
        return jnp.mean(jnp.maximum(0.0, 1.0 - self.y[xi] * (self.X[xi] @ w)))

    def sampler(self, key):           # xi ~ P: batch_size indices, uniform with replacement
        return jax.random.randint(key, (self.batch_size,), 0, self.y.shape[0])

    def F(self, w):                   # the objective E_xi f(w, xi): the mean over all examples
        return jnp.mean(jnp.maximum(0.0, 1.0 - self.y * (self.X @ w)))

    def init(self, key):              # the default initial point
        return 0.1 * jax.random.normal(key, (self.dim,), self.X.dtype)


def make_problem(num_features: int = 10, batch_size: int = 32) -> Hinge:
    """The factory that conf/problem/mine.yaml names with _target_."""
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :num_features]
    X = (X - X.mean(0)) / X.std(0)
    f = jnp.result_type(float)        # float32, or float64 under precision=float64
    return Hinge(jnp.asarray(X, f), jnp.asarray(np.where(y > 0, 1.0, -1.0), f), batch_size)
