"""Robust phase retrieval: ``ell_i(x) = |<a_i, x>^2 - b_i|`` (weakly convex, sharp).

``a_i ~ N(0, I_d)``, ``b_i = <a_i, x*>^2`` with ``x*`` uniform on the unit sphere; a
fraction ``corruption`` of the ``b_i`` is replaced by an independent draw of the same law
(outliers).  For ``m >= C d`` measurements and ``corruption`` below a constant, the
minimizers of ``F`` are exactly ``{x*, -x*}`` (the signal up to sign) and ``F`` grows
linearly away from them (Duchi-Ruan 2019, arXiv 1705.02356; Davis-Drusvyatskiy-Paquette
2020, arXiv 1711.03247, where SGD converges from a random initialization in practice).
``0`` is Clarke critical (every ``ell_i`` has gradient ``0`` there), a local maximum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import validate
from nsopt.problems.finite_sum import FiniteSum, as_float
from nsopt.problems.samplers import Sampling, iid

__all__ = ["PhaseRetrieval", "phase_retrieval", "phase_data"]


class PhaseRetrieval(FiniteSum):
    """``F(x) = (1/m) sum_i |<a_i, x>^2 - b_i|``; solution set ``{x*, -x*}``.

    Default init: ``N(0, I_d / d)`` (norm about 1, no information on ``x*``).
    """

    A: Array
    b: Array
    x_star: Array

    @property
    def name(self) -> str:
        return "phase_retrieval"

    @property
    def n(self) -> int:
        return self.b.shape[0]

    def losses(self, w: Array, rows: Array | slice) -> Array:
        return jnp.abs((self.A[rows] @ w) ** 2 - self.b[rows])

    def init(self, key: Array) -> Array:
        d = self.x_star.shape[0]
        return jax.random.normal(key, (d,), self.b.dtype) / np.sqrt(d)

    def distance_to_solutions(self, w: Array) -> Array:
        """``min(||w - x*||, ||w + x*||)`` (last axis)."""
        return jnp.minimum(jnp.linalg.norm(w - self.x_star, axis=-1), jnp.linalg.norm(w + self.x_star, axis=-1))


def phase_data(d: int, m: int, corruption: float, data_seed: int) -> tuple[np.ndarray, ...]:
    """``(A, b, x*)`` drawn with NumPy from ``data_seed`` (see :class:`PhaseRetrieval`)."""
    rng = np.random.default_rng(data_seed)
    x = rng.standard_normal(d)
    x /= np.linalg.norm(x)
    A = rng.standard_normal((m, d))
    b = (A @ x) ** 2
    bad = rng.random(m) < corruption
    b[bad] = rng.standard_normal(int(bad.sum())) ** 2
    return A, b, x


def phase_retrieval(d: int = 20, m: int = 400, corruption: float = 0.1, data_seed: int = 0,
                    sampling: Sampling | None = None) -> PhaseRetrieval:
    """Robust phase retrieval with ``m`` Gaussian measurements in dimension ``d`` (see :class:`PhaseRetrieval`)."""
    d = validate.positive_int("d", d)
    m = validate.integer("m", m, 2 * d)
    corruption = validate.number("corruption", corruption, 0.0, 0.5, open_high=True)
    validate.integer("data_seed", data_seed, 0)
    sampling = iid() if sampling is None else sampling
    sampling.check(m)
    A, b, x = as_float(*phase_data(d, m, corruption, data_seed))
    return PhaseRetrieval(sampling, A, b, x)
