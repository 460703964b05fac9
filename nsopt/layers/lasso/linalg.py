"""Linear algebra of the Lasso solver: tiered Cholesky factors of ``A_W^T A_W + mu I`` on a
column set ``W`` (static shapes under ``jit``), restricted Newton steps, KKT violation, and
power-method estimates of extreme eigenvalues."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax

__all__ = ["Factor", "cho_solve", "extreme_eigs", "factor", "gather", "kkt", "newton",
           "objective", "scatter", "spectral_sq", "tiers"]


def tiers(k_max: int) -> tuple[int, ...]:
    """Factorization sizes ``64, 128, 256, ...`` below ``k_max``, then ``k_max``."""
    out, k = [], 64
    while k < k_max:
        out.append(k)
        k *= 2
    return tuple(out) + (k_max,)


def spectral_sq(A: Array, iters: int) -> Array:
    """Estimate of ``||A||_2^2`` (power method's Rayleigh quotient, 5% margin).

    Only a starting value: FISTA backtracks (doubles ``L``) whenever the quadratic upper
    bound fails, and convergence is certified by the exact KKT test.
    """
    p = A.shape[1]
    v = 1.0 + 0.5 * jnp.cos(jnp.arange(p, dtype=A.dtype) * 1.618)
    v = v / jnp.linalg.norm(v)

    def body(_, v):
        w = A.T @ (A @ v)
        return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(A.dtype).tiny)

    v = lax.fori_loop(0, iters, body, v)
    return 1.05 * jnp.sum((A @ v) ** 2) + jnp.finfo(A.dtype).tiny


class Factor(NamedTuple):
    """Cholesky factor of ``A_W^T A_W + mu I`` on ``W = idx[valid]``, padded to ``k_max``."""

    chol: Array  # (k_max, k_max), identity off the valid block
    idx: Array  # (k_max,) column indices, ``p`` where invalid
    valid: Array  # (k_max,) bool


def factor(A: Array, mask: Array, mu: Array, k_max: int) -> Factor:
    """Factor the Gram matrix of the columns ``mask`` (``sum(mask) <= k_max`` assumed).

    The Gram matrix and Cholesky factorization run at the smallest size of
    :func:`tiers` that fits (a ``lax.switch``), then are padded with the identity.
    """
    p = A.shape[1]
    sizes = tiers(k_max)
    count = jnp.sum(mask)

    def branch(k: int):
        def f(_):
            # The first k columns of the mask in increasing order (top_k compiles much
            # faster than nonzero(size=k) on CPU); slots past the mask get index p.
            top = lax.top_k(jnp.where(mask, p - jnp.arange(p), -1), k)[1]
            idx = jnp.where(mask[top], top, p).astype(jnp.int32)
            valid = idx < p
            AW = jnp.take(A, idx, axis=1, mode="fill", fill_value=0)
            G = AW.T @ AW + jnp.diag(jnp.where(valid, mu, 1.0))
            chol = jnp.linalg.cholesky(G)
            pad = k_max - k
            chol = jnp.pad(chol, ((0, pad), (0, pad))) + jnp.diag(
                jnp.concatenate([jnp.zeros(k, A.dtype), jnp.ones(pad, A.dtype)])
            )
            idx = jnp.concatenate([idx, jnp.full((pad,), p, idx.dtype)])
            return Factor(chol, idx, idx < p)

        return f

    i = jnp.clip(jnp.searchsorted(jnp.asarray(sizes), count), 0, len(sizes) - 1)
    if len(sizes) == 1:
        return branch(sizes[0])(None)
    return lax.switch(i, [branch(k) for k in sizes], None)


def cho_solve(chol: Array, rhs: Array) -> Array:
    """``(L L^T)^{-1} rhs`` by two triangular solves (linear, transposable)."""
    y = lax.linalg.triangular_solve(chol, rhs[:, None], left_side=True, lower=True)
    return lax.linalg.triangular_solve(
        chol, y, left_side=True, lower=True, transpose_a=True
    )[:, 0]


def gather(v: Array, idx: Array) -> Array:
    return jnp.take(v, idx, mode="fill", fill_value=0)


def scatter(vals: Array, idx: Array, p: int) -> Array:
    # Valid indices are distinct and invalid ones (== p) dropped: add == set, and add transposes.
    return jnp.zeros(p, vals.dtype).at[idx].add(vals, mode="drop")


def kkt(c: Array, x: Array, lam: Array) -> Array:
    """``dist_inf(0, dF(x)) / lam`` with ``c = -grad f(x) = A^T (b - A x) - mu x``."""
    s = jnp.sign(x)
    on = jnp.abs(c - lam * s)
    off = jnp.maximum(jnp.abs(c) - lam, 0.0)
    return jnp.max(jnp.where(s != 0, on, off), initial=0.0) / lam


def objective(fit: Array, b: Array, x: Array, lam: Array, mu: Array) -> Array:
    return 0.5 * jnp.sum((fit - b) ** 2) + lam * jnp.sum(jnp.abs(x)) + 0.5 * mu * jnp.sum(x**2)


def newton(A: Array, b: Array, lam: Array, mu: Array, s: Array, k_max: int):
    """Restricted Newton step on the sign pattern ``s``: ``x_W = (G_WW + mu I)^{-1}(A_W^T b - lam s_W)``."""
    p = A.shape[1]
    fac = factor(A, s != 0, mu, k_max)
    AW = jnp.take(A, fac.idx, axis=1, mode="fill", fill_value=0)
    rhs = jnp.where(fac.valid, AW.T @ b - lam * gather(s, fac.idx), 0.0)
    z = jnp.where(fac.valid, cho_solve(fac.chol, rhs), 0.0)
    return scatter(z, fac.idx, p), AW @ z, fac


def extreme_eigs(fac: Factor, iters: int) -> tuple[Array, Array]:
    """Power / inverse power estimates of the extreme eigenvalues of ``L L^T``.

    The valid slots of a :class:`Factor` come first, so the work runs on the leading
    block of the smallest :func:`tiers` size that holds them.
    """
    k_max = fac.chol.shape[0]
    sizes = tiers(k_max)

    def branch(k: int):
        def f(_):
            chol, valid = fac.chol[:k, :k], fac.valid[:k]
            dt = chol.dtype
            tiny = jnp.finfo(dt).tiny
            v0 = jnp.where(valid, 1.0 + 0.5 * jnp.cos(jnp.arange(k, dtype=dt) * 2.399), 0.0)
            v0 = v0 / jnp.maximum(jnp.linalg.norm(v0), tiny)

            def up(_, v):
                w = jnp.where(valid, chol @ (chol.T @ v), 0.0)
                return w / jnp.maximum(jnp.linalg.norm(w), tiny)

            def down(_, v):
                w = jnp.where(valid, cho_solve(chol, v), 0.0)
                return w / jnp.maximum(jnp.linalg.norm(w), tiny)

            vmax = lax.fori_loop(0, iters, up, v0)
            vmin = lax.fori_loop(0, iters, down, v0)
            return jnp.sum((chol.T @ vmin) ** 2), jnp.sum((chol.T @ vmax) ** 2)

        return f

    if len(sizes) == 1:
        return branch(sizes[0])(None)
    i = jnp.clip(jnp.searchsorted(jnp.asarray(sizes), jnp.sum(fac.valid)), 0, len(sizes) - 1)
    return lax.switch(i, [branch(k) for k in sizes], None)
