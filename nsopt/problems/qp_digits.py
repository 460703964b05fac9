"""A network with a QP output layer on ``load_digits``: the projection onto the probability simplex.

    z = V relu(U x + c) + d,      p*(z) = argmin_p 1/2 ||p - z||^2  s.t.  p >= 0,  1^T p = 1,

an OptNet-style layer (Amos & Kolter 2017) solved and differentiated by
:mod:`nsopt.layers.qp` (``Q = I, q = -z, G = -I, h = 0, A = 1^T, b = 1``; the
derivative by the nonsmooth implicit function theorem, arXiv 2106.04350).  The loss
is the Brier score ``1/2 ||p* - e_y||^2`` (``p*`` has zeros, so no log-loss), averaged
over a minibatch of indices drawn uniformly with replacement, so ``E_xi loss(w, xi)
= F(w)``.  A constraint ``p_j >= 0`` is *weakly active* when ``p_j = 0`` with a zero
multiplier (``z_j`` exactly at the simplex threshold); the layer's ``weak_weight``
chooses the element of the conservative Jacobian there (a traced array leaf).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from nsopt import validate
from nsopt.layers import qp
from nsopt.nonsmooth.kinks import relu
from nsopt.problems.relu_net import DigitsClassification, load_digits_split

__all__ = ["SimplexNet", "QPDigits", "qp_digits", "simplex_projection"]


def simplex_projection(z: Array, weak_weight: Array | float = 0.0):
    """``Solution`` of ``argmin_p 1/2 ||p - z||^2, p >= 0, 1^T p = 1`` (one vector ``z``)."""
    k = z.shape[-1]
    eye = jnp.eye(k, dtype=z.dtype)
    return qp.solve(eye, -z, -eye, jnp.zeros(k, z.dtype), jnp.ones((1, k), z.dtype),
                    jnp.ones(1, z.dtype), weak_weight=weak_weight, on_failure="ignore")


class SimplexNet(nn.Module):
    """Dense -> relu -> Dense -> simplex projection (a QP layer); returns ``(p, solution stats)``."""

    hidden: int
    num_classes: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, weak_weight: Array) -> tuple[Array, Any]:
        h = relu(nn.Dense(self.hidden, param_dtype=self.param_dtype)(x), 0.0)
        z = nn.Dense(self.num_classes, param_dtype=self.param_dtype)(h)
        sol = jax.vmap(simplex_projection, in_axes=(0, None))(z, weak_weight)
        return sol.value.x, sol


class QPDigits(DigitsClassification):
    """Brier score of :class:`SimplexNet` on ``load_digits``; minibatch sampling."""

    weak_weight: Array = eqx.field(default_factory=lambda: jnp.asarray(0.0))

    @property
    def name(self) -> str:
        return "qp_digits"

    def _apply(self, w: Any, x: Array):
        return self.module.apply({"params": w}, x, self.weak_weight.astype(x.dtype))

    def _ce(self, w: Any, x: Array, y: Array) -> Array:
        """The Brier score ``mean 1/2 ||p*(x) - e_y||^2`` (named like the parent's loss hook)."""
        p, _ = self._apply(w, x)
        return 0.5 * jnp.mean(jnp.sum((p - jax.nn.one_hot(y, p.shape[-1], dtype=p.dtype)) ** 2, -1))

    def init(self, key: Array) -> Any:
        return self.module.init(key, self.x_train[:1], self.weak_weight.astype(self.x_train.dtype))["params"]

    def accuracy(self, w: Any, split: str = "test") -> Array:
        x, y = self._split(split)
        return jnp.mean(jnp.argmax(self._apply(w, x)[0], -1) == y)

    def qp_stats(self, w: Any, xi: Array) -> dict[str, Array]:
        """Per minibatch ``xi``: any weakly active constraint (degenerate), all solves successful."""
        _, sol = self._apply(w, self.x_train[xi])
        return {"degenerate": jnp.any(sol.stats["num_weakly_active"] > 0),
                "num_weakly_active": jnp.sum(sol.stats["num_weakly_active"]),
                "successful": jnp.all(sol.result == 0)}


def qp_digits(hidden: int = 32, batch_size: int = 32, weak_weight: float = 0.0,
              test_fraction: float = 0.2, data_seed: int = 0) -> QPDigits:
    """The simplex-layer network on digits (see :class:`QPDigits`)."""
    hidden = validate.positive_int("hidden", hidden)
    batch_size = validate.positive_int("batch_size", batch_size)
    weak_weight = validate.number("weak_weight", weak_weight, 0.0, 1.0)
    xtr, ytr, xte, yte = load_digits_split(test_fraction, data_seed)
    f = jnp.result_type(float)
    return QPDigits(jnp.asarray(xtr, f), jnp.asarray(ytr), jnp.asarray(xte, f), jnp.asarray(yte),
                    batch_size, SimplexNet(hidden, 10, param_dtype=f), jnp.asarray(weak_weight, f))
