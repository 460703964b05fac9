"""Blind deconvolution (rank-one bilinear sensing): ``ell_i(x, y) = |<l_i, x><r_i, y> - b_i|``.

``l_i ~ N(0, I_{d1})``, ``r_i ~ N(0, I_{d2})``, ``b_i = <l_i, x*><r_i, y*>`` with ``x*``,
``y*`` uniform on the unit spheres; a fraction ``corruption`` of the ``b_i`` is replaced by
an independent draw of the same law.  For ``m >= C (d1 + d2)`` the minimizers of ``F`` are
the hyperbola ``{(c x*, y*/c) : c != 0}`` and ``F`` is weakly convex and sharp along it
(Charisopoulos-Davis-Diaz-Drusvyatskiy 2019, arXiv 1901.01624).  ``w = (x, y)`` is one
vector of size ``d1 + d2``; ``(0, 0)`` is Clarke critical (a saddle).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import validate
from nsopt.problems.finite_sum import FiniteSum, as_float
from nsopt.problems.samplers import Sampling, iid

__all__ = ["BlindDeconvolution", "blind_deconvolution"]


class BlindDeconvolution(FiniteSum):
    """``F(x, y) = (1/m) sum_i |<l_i, x><r_i, y> - b_i|``; solutions ``{(c x*, y*/c)}``.

    Default init: ``N(0, I / (d1 + d2))`` for the whole ``w = (x, y)``.
    """

    L: Array
    R: Array
    b: Array
    x_star: Array
    y_star: Array
    d1: int = eqx.field(static=True)

    @property
    def name(self) -> str:
        return "blind_deconvolution"

    @property
    def n(self) -> int:
        return self.b.shape[0]

    def split(self, w: Array) -> tuple[Array, Array]:
        """``w -> (x, y)``."""
        return w[..., : self.d1], w[..., self.d1:]

    def losses(self, w: Array, rows: Array | slice) -> Array:
        x, y = self.split(w)
        return jnp.abs((self.L[rows] @ x) * (self.R[rows] @ y) - self.b[rows])

    def init(self, key: Array) -> Array:
        D = self.d1 + self.y_star.shape[0]
        return jax.random.normal(key, (D,), self.b.dtype) / np.sqrt(D)

    def distance_to_solutions(self, w: Array) -> Array:
        """``min_{c != 0} ||(x, y) - (c x*, y*/c)||`` for one ``w`` (roots of the quartic
        ``c^4 - <x, x*> c^3 + <y, y*> c - 1 = 0``, ``|x*| = |y*| = 1``, stationarity in ``c``)."""
        x, y = self.split(w)
        p, q = jnp.dot(x, self.x_star), jnp.dot(y, self.y_star)
        one, zero = jnp.ones_like(p), jnp.zeros_like(p)
        roots = jnp.roots(jnp.stack([one, -p, zero, q, -one]), strip_zeros=False)
        c = jnp.where(jnp.abs(roots.imag) < 1e-6 * (1 + jnp.abs(roots.real)), roots.real, jnp.nan)
        c = jnp.where(c == 0, jnp.nan, c)
        dist = jax.vmap(lambda ci: jnp.sqrt(jnp.sum((x - ci * self.x_star) ** 2) + jnp.sum((y - self.y_star / ci) ** 2)))(c)
        return jnp.nanmin(dist)


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    v = rng.standard_normal(d)
    return v / np.linalg.norm(v)


def blind_deconvolution(d1: int = 10, d2: int = 10, m: int = 400, corruption: float = 0.1, data_seed: int = 0,
                        sampling: Sampling | None = None) -> BlindDeconvolution:
    """Blind deconvolution with ``m`` Gaussian measurements (see :class:`BlindDeconvolution`)."""
    d1, d2 = validate.positive_int("d1", d1), validate.positive_int("d2", d2)
    m = validate.integer("m", m, 2 * (d1 + d2))
    corruption = validate.number("corruption", corruption, 0.0, 0.5, open_high=True)
    validate.integer("data_seed", data_seed, 0)
    sampling = iid() if sampling is None else sampling
    sampling.check(m)
    rng = np.random.default_rng(data_seed)
    x, y = _unit(rng, d1), _unit(rng, d2)
    L, R = rng.standard_normal((m, d1)), rng.standard_normal((m, d2))
    b = (L @ x) * (R @ y)
    bad = rng.random(m) < corruption
    b[bad] = rng.standard_normal(int(bad.sum())) * rng.standard_normal(int(bad.sum()))
    L, R, b, x, y = as_float(L, R, b, x, y)
    return BlindDeconvolution(sampling, L, R, b, x, y, d1)
