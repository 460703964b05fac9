"""A small ReLU network on scikit-learn's bundled ``load_digits`` (finite sum).

``F(w) = (1/N) sum_i CE(net_w(x_i), y_i)`` over the training split (exact);
``xi`` is a minibatch of indices drawn uniformly with replacement, so
``E_xi loss(w, xi) = F(w)``.  The activation is :func:`nsopt.oracles.relu`
with a chosen ``relu'(0)``; the kink value only matters where a
pre-activation is exactly 0, which happens in low precision (Bertoin et al.
2021; the ``relu_prime`` preset counts the hits per precision).
"""

from __future__ import annotations

from typing import Any, Sequence

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from nsopt.nonsmooth.kinks import relu
from nsopt.problems.base import Problem

__all__ = ["MLP", "DigitsClassification", "ReluDigits", "relu_digits", "load_digits_split"]


class MLP(nn.Module):
    """Dense -> relu -> ... -> Dense logits; ``relu'(0) = kink`` is a call argument (traced)."""

    hidden: Sequence[int]
    num_classes: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, kink: Array | float = 0.0) -> Array:
        for width in self.hidden:
            x = relu(nn.Dense(width, param_dtype=self.param_dtype)(x), kink)
        return nn.Dense(self.num_classes, param_dtype=self.param_dtype)(x)


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``load_digits`` scaled to ``[0, 1]``, shuffled with ``seed`` and split train/test."""
    from sklearn.datasets import load_digits

    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float64)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[perm], y[perm].astype(np.int32)
    n_test = int(round(test_fraction * len(y)))
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


class DigitsClassification(Problem):
    """Cross-entropy of a flax classifier ``module`` on ``load_digits``; minibatch sampling.

    ``F(w) = (1/N) sum_i CE(module_w(x_i), y_i)`` over the training split (exact);
    ``xi`` is a minibatch of indices drawn uniformly with replacement, so
    ``E_xi loss(w, xi) = F(w)``.  Subclasses choose the module and the ``name``.
    """

    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array
    batch_size: int = eqx.field(static=True)
    module: Any = eqx.field(static=True)

    @property
    def dim(self) -> int:
        shapes = jax.eval_shape(self.init, jax.random.key(0))
        return int(sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)))

    def logits(self, w: Any, x: Array) -> Array:
        """The classifier's outputs on inputs ``x``."""
        return self.module.apply({"params": w}, x)

    def _ce(self, w: Any, x: Array, y: Array) -> Array:
        logits = self.logits(w, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def loss(self, w: Any, xi: Array) -> Array:
        return self._ce(w, self.x_train[xi], self.y_train[xi])

    def sampler(self, key: Array) -> Array:
        return jax.random.randint(key, (self.batch_size,), 0, self.y_train.shape[0])

    def F(self, w: Any) -> Array:
        return self._ce(w, self.x_train, self.y_train)

    def init(self, key: Array) -> Any:
        return self.module.init(key, self.x_train[:1])["params"]

    def _split(self, split: str) -> tuple[Array, Array]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)

    def accuracy(self, w: Any, split: str = "test") -> Array:
        """Classification accuracy on ``split`` in ``{"train", "test"}``."""
        x, y = self._split(split)
        return jnp.mean(jnp.argmax(self.logits(w, x), -1) == y)


class ReluDigits(DigitsClassification):
    """Cross-entropy of an :class:`MLP` on ``load_digits``; minibatch sampling.

    ``kink = relu'(0)`` is an array leaf passed to the network at call time, so one
    compiled program serves every kink value (e.g. a sweep over ``kink``).
    """

    kink: Array = eqx.field(kw_only=True)

    def logits(self, w: Any, x: Array) -> Array:
        return self.module.apply({"params": w}, x, self.kink)

    @property
    def name(self) -> str:
        return "relu_digits"


def relu_digits(
    hidden: Sequence[int] = (32,),
    batch_size: int = 32,
    kink: float = 0.0,
    test_fraction: float = 0.2,
    data_seed: int = 0,
) -> ReluDigits:
    """The ReLU-network-on-digits problem (see :class:`ReluDigits`)."""
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"relu_digits hidden must be a non-empty list of positive widths, got {hidden!r}")
    if int(batch_size) < 1:
        raise ValueError(f"relu_digits batch_size must be >= 1, got {batch_size!r}")
    if not 0.0 <= kink <= 1.0:
        raise ValueError(f"relu_digits kink (relu'(0)) must be in [0, 1] (Clarke), got {kink!r}")
    xtr, ytr, xte, yte = load_digits_split(test_fraction, data_seed)
    f = jnp.result_type(float)
    return ReluDigits(
        jnp.asarray(xtr, f), jnp.asarray(ytr), jnp.asarray(xte, f), jnp.asarray(yte),
        int(batch_size), MLP(hidden, 10, param_dtype=f), kink=jnp.asarray(kink, f),
    )
