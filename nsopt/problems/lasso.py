"""Lasso and elastic-net solution maps, differentiable in the penalty and the data.

    Lasso:        x^(theta) = argmin_x 1/2 ||A x - b||^2 + e^theta ||x||_1
    Elastic net:  x^(theta) = argmin_x 1/2 ||A x - b||^2 + e^theta1 ||x||_1 + e^theta2 / 2 ||x||^2

(THEORY.md §3; Bolte, Le, Pauwels, Silveti-Falls, arXiv 2106.04350, Prop. 5.)
Writing ``lam = e^theta1``, ``mu = e^theta2`` (``mu = 0`` for the Lasso), the
solution solves the forward-backward fixed point
``x = prox_{gamma lam ||.||_1}(x - gamma (A^T (A x - b) + mu x))``; its
conservative Jacobian with ``q = 1`` on the support ``S`` and ``q = 0`` off it
is the support-restricted linear system used here:

    (A_S^T A_S + mu I) dx_S = -(dlam sign(x_S) + dmu x_S + dA_S^T r + A_S^T (dA x - db)),
    dx = 0 off S,      r = A x - b,

so ``dx_S/dtheta = -e^theta (A_S^T A_S)^{-1} sign(x_S)`` for the Lasso.  The
Lasso solution is unique and this is a conservative Jacobian when ``A_E^T A_E``
has full rank, ``E = {j : |A_j^T (b - A x^)| = lam}`` the equicorrelation set
(independent of the solution, ``S ⊆ E``); :func:`solution` checks it and acts by
the ``on_rank_deficient`` policy.  The elastic net is strongly convex, hence
always uniquely solvable and invertible.

Forward solver (never differentiated through): FISTA with adaptive restart,
interleaved with support-restricted Newton trials (once the sign pattern has
been stable for ``patience`` steps, solve the restricted system on it; accept
the Newton point when it satisfies the KKT conditions, or when it lowers the
objective), on a working set of columns (the support, then the largest
``|A_j^T (b - A x)|``) that is enlarged until the KKT conditions hold on all
columns.  Shapes are static under ``jit``: the support is capped by
``LassoConfig.max_support`` (``min(n, p)`` by default for the Lasso, a bound for
every solution when Prop. 5 holds), and restricted factorizations run at sizes
``64, 128, 256, ...`` up to the cap, chosen at run time (``lax.switch``).
Convergence means ``kkt_violation = dist_inf(0, dF(x)) / lam <= tol``; a Newton
point that passes it is exact up to rounding.

Everything is traceable: ``jit``, ``vmap`` (over ``theta``, the data, or both),
``grad``/``vjp``/``jacrev`` and ``jvp``/``jacfwd`` compose; reverse mode works
because the tangent is a triangular solve with the Cholesky factor of
``A_S^T A_S + mu I``, which JAX transposes.  Arrays are ordinary arguments: pass
data as arguments of a jitted function, not as closure constants.

Held-out criteria, K-fold cross-validation and the hyperparameter loops
(:func:`held_out_criterion`, :func:`kfold_criterion`, :func:`hypergradient_descent`,
:func:`grid_search`) are defined in ``_lasso_hpo.py`` and re-exported here.

Performance note: the restricted Cholesky factorizations call LAPACK through
scipy's OpenBLAS; on a loaded machine its multi-threaded kernels can stall (a
300 x 300 factorization taking 200 ms instead of 0.5 ms).  Set
``OPENBLAS_NUM_THREADS=1`` before importing numpy/JAX when timing.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

__all__ = [
    "RESULTS",
    "HPOResult",
    "LassoConfig",
    "LassoSolution",
    "Policy",
    "enet_solution",
    "enet_solve",
    "grid_search",
    "held_out_criterion",
    "held_out_mse",
    "hypergradient_descent",
    "kfold_criterion",
    "kfold_masks",
    "lambda_max",
    "solution",
    "solve",
]

Policy = Literal["raise", "warn", "ignore"]
_POLICIES = ("raise", "warn", "ignore")


class RESULTS:
    """Status codes of :class:`LassoSolution` (``status`` field)."""

    successful = 0
    max_steps_reached = 1
    support_overflow = 2
    nonfinite = 3

    messages = (
        "successful",
        "the Lasso solver did not reach kkt_violation <= tol within max_steps (or the "
        "working-set round limit); increase LassoConfig.max_steps or tol",
        "the support (or the equicorrelation set) of the Lasso solution has more elements "
        "than LassoConfig.max_support; increase max_support",
        "the Lasso solver produced a non-finite iterate (non-finite data or penalty?)",
    )


class LassoConfig(eqx.Module):
    """Immutable solver settings (all static: changing one recompiles).

    - ``tol``: stop when ``dist_inf(0, dF(x)) / lam <= tol``; ``None``: ``eps**0.6``
      (``4e-10`` in float64, ``7e-5`` in float32).
    - ``max_steps``: total FISTA iterations.
    - ``max_support``: static cap on the support size (``None``: ``min(n, p)`` for the
      Lasso, ``p`` for the elastic net when ``p <= 4096``, else ``min(n, p)``).
    - ``patience``: FISTA iterations with an unchanged sign pattern before a Newton trial.
    - ``working_set``: number of columns of the inner problems when ``p`` exceeds it
      (``None``: ``max_support``, at least 64; ``0``: always use all columns).
    - ``equicorrelation_rtol``: ``j in E`` iff ``|A_j^T(b - A x)| >= lam (1 - rtol)``;
      ``None``: ``sqrt(eps)``.
    - ``rank_rtol``: ``A_E`` is rank deficient when ``sigma_min / sigma_max <= rank_rtol``
      (estimated from a Cholesky factor of ``A_E^T A_E``); ``None``: ``100 sqrt(eps)``.
    - ``power_iterations``: iterations of the power / inverse power methods.
    """

    tol: float | None = None
    max_steps: int = 20_000
    max_support: int | None = None
    patience: int = 3
    working_set: int | None = None
    equicorrelation_rtol: float | None = None
    rank_rtol: float | None = None
    power_iterations: int = 10

    def __check_init__(self) -> None:
        for name in ("tol", "equicorrelation_rtol", "rank_rtol"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and 0 < v < 1):
                raise ValueError(f"LassoConfig.{name} must be None or a float in (0, 1), got {v!r}")
        for name, low in (("max_steps", 1), ("patience", 0), ("power_iterations", 1)):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= low):
                raise ValueError(f"LassoConfig.{name} must be an int >= {low}, got {v!r}")
        if self.max_support is not None and not (
            isinstance(self.max_support, int) and self.max_support >= 1
        ):
            raise ValueError(
                f"LassoConfig.max_support must be None or an int >= 1, got {self.max_support!r}"
            )
        if self.working_set is not None and not (
            isinstance(self.working_set, int) and self.working_set >= 0
        ):
            raise ValueError(
                f"LassoConfig.working_set must be None or an int >= 0, got {self.working_set!r}"
            )


class LassoSolution(eqx.Module):
    """A solve's result and diagnostics (all arrays; batched under ``vmap``).

    ``x``: the solution; ``status``: a :class:`RESULTS` code (0 = successful);
    ``num_steps``: FISTA iterations; ``num_newton``: restricted Newton trials;
    ``kkt_violation``: ``dist_inf(0, dF(x)) / lam``; ``support_size``: ``|S|``;
    ``equicorrelation_size``: ``|E|``; ``sigma_ratio``: estimated
    ``sigma_min / sigma_max`` of ``A_E`` (1 when ``E`` is empty; 0 when the factor
    broke down); ``rank_deficient``: at a converged solution, ``sigma_ratio <= rank_rtol`` or
    ``|E| > min(n, max_support)`` (Prop. 5 fails: the solution may be non-unique and the
    derivative is not defined).
    """

    x: Array
    status: Array
    num_steps: Array
    num_newton: Array
    kkt_violation: Array
    support_size: Array
    equicorrelation_size: Array
    sigma_ratio: Array
    rank_deficient: Array

    @property
    def converged(self) -> Array:
        return self.status == RESULTS.successful


# --------------------------------------------------------------------------- helpers


def _soft(z: Array, t: Array) -> Array:
    """Soft thresholding ``sign(z) max(|z| - t, 0)`` (prox of ``t ||.||_1``)."""
    return jnp.sign(z) * jnp.maximum(jnp.abs(z) - t, 0.0)


def lambda_max(A: ArrayLike, b: ArrayLike) -> Array:
    """``||A^T b||_inf``: the Lasso solution is 0 iff ``e^theta >= lambda_max``."""
    A = jnp.asarray(A)
    return jnp.max(jnp.abs(A.T @ jnp.asarray(b, A.dtype)))


def _tiers(k_max: int) -> tuple[int, ...]:
    """Factorization sizes ``64, 128, 256, ...`` below ``k_max``, then ``k_max``."""
    out, k = [], 64
    while k < k_max:
        out.append(k)
        k *= 2
    return tuple(out) + (k_max,)


def _spectral_sq(A: Array, iters: int) -> Array:
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


class _Factor(NamedTuple):
    """Cholesky factor of ``A_W^T A_W + mu I`` on ``W = idx[valid]``, padded to ``k_max``."""

    chol: Array  # (k_max, k_max), identity off the valid block
    idx: Array  # (k_max,) column indices, ``p`` where invalid
    valid: Array  # (k_max,) bool


def _factor(A: Array, mask: Array, mu: Array, k_max: int) -> _Factor:
    """Factor the Gram matrix of the columns ``mask`` (``sum(mask) <= k_max`` assumed).

    The Gram matrix and Cholesky factorization run at the smallest size of
    :func:`_tiers` that fits (a ``lax.switch``), then are padded with the identity.
    """
    p = A.shape[1]
    tiers = _tiers(k_max)
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
            return _Factor(chol, idx, idx < p)

        return f

    i = jnp.clip(jnp.searchsorted(jnp.asarray(tiers), count), 0, len(tiers) - 1)
    if len(tiers) == 1:
        return branch(tiers[0])(None)
    return lax.switch(i, [branch(k) for k in tiers], None)


def _cho_solve(chol: Array, rhs: Array) -> Array:
    """``(L L^T)^{-1} rhs`` by two triangular solves (linear, transposable)."""
    y = lax.linalg.triangular_solve(chol, rhs[:, None], left_side=True, lower=True)
    return lax.linalg.triangular_solve(
        chol, y, left_side=True, lower=True, transpose_a=True
    )[:, 0]


def _gather(v: Array, idx: Array) -> Array:
    return jnp.take(v, idx, mode="fill", fill_value=0)


def _scatter(vals: Array, idx: Array, p: int) -> Array:
    # Valid indices are distinct and invalid ones (== p) dropped: add == set, and add transposes.
    return jnp.zeros(p, vals.dtype).at[idx].add(vals, mode="drop")


def _kkt(c: Array, x: Array, lam: Array) -> Array:
    """``dist_inf(0, dF(x)) / lam`` with ``c = -grad f(x) = A^T (b - A x) - mu x``."""
    s = jnp.sign(x)
    on = jnp.abs(c - lam * s)
    off = jnp.maximum(jnp.abs(c) - lam, 0.0)
    return jnp.max(jnp.where(s != 0, on, off), initial=0.0) / lam


def _objective(fit: Array, b: Array, x: Array, lam: Array, mu: Array) -> Array:
    return 0.5 * jnp.sum((fit - b) ** 2) + lam * jnp.sum(jnp.abs(x)) + 0.5 * mu * jnp.sum(x**2)


def _newton(A: Array, b: Array, lam: Array, mu: Array, s: Array, k_max: int):
    """Restricted Newton step on the sign pattern ``s``: ``x_W = (G_WW + mu I)^{-1}(A_W^T b - lam s_W)``."""
    p = A.shape[1]
    fac = _factor(A, s != 0, mu, k_max)
    AW = jnp.take(A, fac.idx, axis=1, mode="fill", fill_value=0)
    rhs = jnp.where(fac.valid, AW.T @ b - lam * _gather(s, fac.idx), 0.0)
    z = jnp.where(fac.valid, _cho_solve(fac.chol, rhs), 0.0)
    return _scatter(z, fac.idx, p), AW @ z, fac


# --------------------------------------------------------------------------- solver


class _Inner(NamedTuple):
    x: Array
    y: Array
    Ax: Array
    Ay: Array
    t: Array
    L: Array  # current step 1 / L (nondecreasing: backtracking)
    steps: Array
    stable: Array
    prev_sign: Array
    fista_done: Array


class _Outer(NamedTuple):
    inner: _Inner
    tried: Array  # sign pattern of the last Newton trial
    done: Array  # KKT certified
    newton_ok: Array  # the last accepted point is a Newton point (fac is its factor)
    fac: _Factor
    trials: Array


def _dense_solve(
    A: Array, b: Array, lam: Array, mu: Array, x0: Array, L: Array, tol: float,
    k_max: int, cfg: LassoConfig, max_steps: Array,
) -> tuple[Array, Array, Array, Array, Array, _Factor]:
    """FISTA (adaptive restart, backtracking on ``L``) + restricted Newton on all columns of ``A``.

    ``L`` is the initial estimate of the Lipschitz constant; a step is accepted when the
    quadratic upper bound holds, ``||A d||^2 + mu ||d||^2 <= L ||d||^2`` (``d`` the step),
    else ``L`` doubles.  ``A x`` and ``A y`` are carried (two products per step: ``A^T r``
    and ``A d``) and recomputed exactly at every Newton trial.  Returns ``(x, done, steps,
    trials, newton_ok, fac)``; ``fac`` factors the support of ``x`` when ``newton_ok``.
    """
    p = A.shape[1]
    dt = A.dtype

    def fista(st: _Inner) -> _Inner:
        r = st.Ay - b
        g = A.T @ r + mu * st.y
        x_new = _soft(st.y - g / st.L, lam / st.L)
        d = x_new - st.y
        Ad = A @ d
        dd = jnp.vdot(d, d)
        ok = jnp.vdot(Ad, Ad) + mu * dd <= st.L * dd * (1.0 + 1e-6)
        Ax_new = st.Ay + Ad
        conv = ok & (2.0 * st.L * jnp.sqrt(dd) <= tol * lam)
        restart = jnp.vdot(-d, x_new - st.x) > 0
        t = jnp.where(restart, 1.0, st.t)
        t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t**2))
        beta = (t - 1.0) / t_new
        y_new = x_new + beta * (x_new - st.x)
        Ay_new = Ax_new + beta * (Ax_new - st.Ax)
        sign = jnp.sign(x_new).astype(jnp.int8)
        same = jnp.all(sign == st.prev_sign)
        moved = _Inner(x_new, y_new, Ax_new, Ay_new, t_new, st.L, st.steps + 1,
                       jnp.where(same, st.stable + 1, 0), sign, conv)
        stay = st._replace(L=2.0 * st.L, steps=st.steps + 1)
        return jax.tree.map(lambda u, v: jnp.where(ok, u, v), moved, stay)

    def outer_body(o: _Outer) -> _Outer:
        def inner_cond(st: _Inner) -> Array:
            trigger = (st.stable >= cfg.patience) & jnp.any(st.prev_sign != o.tried)
            return ~(trigger | st.fista_done | (st.steps >= max_steps))

        st = lax.while_loop(inner_cond, fista, o.inner._replace(fista_done=jnp.array(False)))
        s = st.prev_sign.astype(dt)
        fits = jnp.sum(s != 0) <= k_max
        Ax = A @ st.x  # exact (the carried products drift by rounding)

        def trial(_):
            xn, fit, fac = _newton(A, b, lam, mu, s, k_max)
            c = A.T @ (b - fit) - mu * xn
            ok = jnp.all(jnp.isfinite(xn))
            kkt = jnp.where(ok, _kkt(c, xn, lam), jnp.inf)
            better = ok & (_objective(fit, b, xn, lam, mu) < _objective(Ax, b, st.x, lam, mu))
            return xn, fit, kkt <= tol, better, fac

        def no_trial(_):
            z = jnp.zeros(k_max, jnp.int32)
            fac = _Factor(jnp.eye(k_max, dtype=dt), z + p, z > 0)
            return st.x, Ax, jnp.array(False), jnp.array(False), fac

        xn, fit, certified, better, fac = lax.cond(fits, trial, no_trial, None)
        accept = certified | better
        x = jnp.where(accept, xn, st.x)
        Ax = jnp.where(accept, fit, Ax)
        # Restart the momentum from x (exact products) after every trial.
        inner = st._replace(
            x=x, y=x, Ax=Ax, Ay=Ax, t=jnp.ones((), dt),
            prev_sign=jnp.where(accept, jnp.sign(xn).astype(jnp.int8), st.prev_sign),
        )
        # FISTA's own certificate: dist(0, dF(x)) <= 2 L ||y - x|| <= tol lam (checked
        # exactly afterwards).
        done = certified | st.fista_done
        return _Outer(
            inner,
            st.prev_sign,
            done,
            certified,
            jax.tree.map(lambda a, b_: jnp.where(certified, a, b_), fac, o.fac),
            o.trials + fits.astype(jnp.int32),
        )

    def outer_cond(o: _Outer) -> Array:
        return ~o.done & (o.inner.steps < max_steps)

    sign0 = jnp.sign(x0).astype(jnp.int8)
    z = jnp.zeros(k_max, jnp.int32)
    Ax0 = A @ x0
    init = _Outer(
        _Inner(x0, x0, Ax0, Ax0, jnp.ones((), dt), jnp.asarray(L, dt), jnp.zeros((), jnp.int32),
               jnp.asarray(cfg.patience - 1, jnp.int32), sign0, jnp.array(False)),
        jnp.full((p,), 2, jnp.int8),
        jnp.array(False),
        jnp.array(False),
        _Factor(jnp.eye(k_max, dtype=dt), z + p, z > 0),
        jnp.zeros((), jnp.int32),
    )
    o = lax.while_loop(outer_cond, outer_body, init)
    return o.inner.x, o.done, o.inner.steps, o.trials, o.newton_ok, o.fac


class _WS(NamedTuple):
    x: Array
    checked: Array  # the last sub-solve was certified on its working set
    done: Array
    steps: Array
    trials: Array
    rounds: Array
    newton_ok: Array
    fac: _Factor
    c: Array  # A^T (b - A x) - mu x at x, once done


def _working_set_solve(
    A: Array, b: Array, lam: Array, mu: Array, x0: Array, lipschitz: Array | None,
    tol: float, k_max: int, ws: int, cfg: LassoConfig,
) -> tuple[Array, Array, Array, Array, Array, _Factor]:
    """Solve on ``ws`` columns (the support, then the largest ``|A_j^T (b - A x)|``) with
    FISTA + Newton, check the KKT conditions on all columns, repeat until certified.

    Each round's sub-problem contains the previous support, so the objective decreases;
    a certified sub-solution satisfying ``|A_j^T (b - A x)| <= lam (1 + tol)`` off the
    working set is a solution.  Returns like :func:`_dense_solve`.
    """
    p = A.shape[1]
    dt = A.dtype
    max_steps = jnp.asarray(cfg.max_steps, jnp.int32)

    def body(s: _WS) -> _WS:
        c = A.T @ (b - A @ s.x) - mu * s.x
        done = s.checked & (_kkt(c, s.x, lam) <= tol)

        def round_(_):
            score = jnp.where(s.x != 0, jnp.inf, jnp.abs(c))
            W = lax.top_k(score, ws)[1].astype(jnp.int32)
            AW = A[:, W]
            L = (_spectral_sq(AW, cfg.power_iterations) if lipschitz is None else lipschitz) + mu
            xw, ok, steps, trials, newton_ok, fac = _dense_solve(
                AW, b, lam, mu, s.x[W], L, tol, k_max, cfg, max_steps - s.steps
            )
            x = jnp.zeros(p, dt).at[W].set(xw)
            idx = jnp.where(fac.valid, W[jnp.clip(fac.idx, 0, ws - 1)], p)
            fac = _Factor(fac.chol, idx, fac.valid)
            return _WS(x, ok, done, s.steps + steps, s.trials + trials, s.rounds + 1,
                       newton_ok, fac, c)

        return lax.cond(done, lambda _: s._replace(done=done, c=c), round_, None)

    def cond(s: _WS) -> Array:
        return ~s.done & (s.steps < max_steps) & (s.rounds < _MAX_ROUNDS)

    z = jnp.zeros(k_max, jnp.int32)
    init = _WS(x0, jnp.array(False), jnp.array(False), jnp.zeros((), jnp.int32),
               jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.array(False),
               _Factor(jnp.eye(k_max, dtype=dt), z + p, z > 0), jnp.zeros(p, dt))
    s = lax.while_loop(cond, body, init)
    return s.x, s.done, s.steps, s.trials, s.done & s.newton_ok, s.fac, s.c


_MAX_ROUNDS = 30


def _extreme_eigs(fac: _Factor, iters: int) -> tuple[Array, Array]:
    """Power / inverse power estimates of the extreme eigenvalues of ``L L^T``.

    The valid slots of a :class:`_Factor` come first, so the work runs on the leading
    block of the smallest :func:`_tiers` size that holds them.
    """
    k_max = fac.chol.shape[0]
    tiers = _tiers(k_max)

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
                w = jnp.where(valid, _cho_solve(chol, v), 0.0)
                return w / jnp.maximum(jnp.linalg.norm(w), tiny)

            vmax = lax.fori_loop(0, iters, up, v0)
            vmin = lax.fori_loop(0, iters, down, v0)
            return jnp.sum((chol.T @ vmin) ** 2), jnp.sum((chol.T @ vmax) ** 2)

        return f

    if len(tiers) == 1:
        return branch(tiers[0])(None)
    i = jnp.clip(jnp.searchsorted(jnp.asarray(tiers), jnp.sum(fac.valid)), 0, len(tiers) - 1)
    return lax.switch(i, [branch(k) for k in tiers], None)


class _Forward(NamedTuple):
    sol: LassoSolution
    fac: _Factor
    residual: Array  # A x - b


def _defaults(cfg: LassoConfig, A: Array, enet: bool):
    n, p = A.shape
    eps = float(jnp.finfo(A.dtype).eps)
    tol = cfg.tol if cfg.tol is not None else eps**0.6
    if cfg.max_support is not None:
        k_max = min(cfg.max_support, p)
    elif enet and p <= 4096:
        k_max = p
    else:
        k_max = min(n, p)
    k_max = max(k_max, 1)
    ws = cfg.working_set
    ws = max(k_max, 64) if ws is None else max(ws, k_max) if ws > 0 else 0
    ws = 0 if ws >= p else ws
    etol = cfg.equicorrelation_rtol if cfg.equicorrelation_rtol is not None else math.sqrt(eps)
    rtol = cfg.rank_rtol if cfg.rank_rtol is not None else 100 * math.sqrt(eps)
    return tol, k_max, ws, etol, rtol


@functools.partial(jax.jit, static_argnames=("cfg", "enet"))
def _forward(
    A: Array, b: Array, lam: Array, mu: Array, x0: Array, lipschitz: Array | None,
    cfg: LassoConfig, enet: bool,
) -> _Forward:
    """Solve, then factor the support and check Prop. 5 on the equicorrelation set."""
    n = A.shape[0]
    dt = A.dtype
    tol, k_max, ws, etol, rtol = _defaults(cfg, A, enet)

    if ws == 0:
        L = (_spectral_sq(A, cfg.power_iterations) if lipschitz is None else lipschitz) + mu
        x, done, steps, trials, newton_ok, fac = _dense_solve(
            A, b, lam, mu, x0, L, tol, k_max, cfg, jnp.asarray(cfg.max_steps, jnp.int32)
        )
        c = None
    else:
        x, done, steps, trials, newton_ok, fac, c = _working_set_solve(
            A, b, lam, mu, x0, lipschitz, tol, k_max, ws, cfg
        )
        # c was computed at x by the last round when it certified x; otherwise recompute.
        c = lax.cond(done, lambda _: c, lambda _: A.T @ (b - A @ x) - mu * x, None)

    # Final factor of the support when the last point is not a Newton point.
    S = x != 0
    nS = jnp.sum(S)

    def refactor(_):
        return _factor(A, S & (nS <= k_max), mu, k_max)

    fac = lax.cond(newton_ok, lambda _: fac, refactor, None)
    residual = A @ x - b
    if c is None:
        c = -(A.T @ residual) - mu * x
    kkt = _kkt(c, x, lam)
    finite = jnp.all(jnp.isfinite(x)) & jnp.isfinite(kkt)
    converged = done & (kkt <= tol)
    status = jnp.where(
        ~finite, RESULTS.nonfinite,
        jnp.where(~converged, RESULTS.max_steps_reached,
                  jnp.where(nS > k_max, RESULTS.support_overflow, RESULTS.successful)),
    )

    # Equicorrelation set and the rank condition of Prop. 5 (Lasso only).
    E = (jnp.abs(c) >= lam * (1.0 - etol)) | S
    nE = jnp.sum(E)
    if enet:
        ratio = jnp.ones((), dt)
        deficient = jnp.array(False)
    else:
        efac = lax.cond(
            (nE == nS) | (nE > k_max),
            lambda _: fac,
            lambda _: _factor(A, E, mu, k_max),
            None,
        )
        finite_fac = jnp.all(jnp.isfinite(efac.chol))
        safe = _Factor(jnp.where(finite_fac, efac.chol, jnp.eye(k_max, dtype=dt)), efac.idx,
                       efac.valid)
        lmin, lmax = _extreme_eigs(safe, cfg.power_iterations)
        ratio = jnp.sqrt(jnp.maximum(lmin, 0.0) / jnp.maximum(lmax, jnp.finfo(dt).tiny))
        ratio = jnp.where(finite_fac, ratio, 0.0)
        ratio = jnp.where(nE == 0, 1.0, ratio)
        ratio = jnp.where(nE > jnp.minimum(k_max, n), 0.0, ratio)
        # Only meaningful at a solution: an unconverged point reports its own failure.
        deficient = converged & (ratio <= rtol)
    sol = LassoSolution(
        x=x,
        status=status.astype(jnp.int32),
        num_steps=steps,
        num_newton=trials,
        kkt_violation=kkt,
        support_size=nS.astype(jnp.int32),
        equicorrelation_size=nE.astype(jnp.int32),
        sigma_ratio=ratio,
        rank_deficient=deficient,
    )
    return _Forward(sol, fac, residual)


# --------------------------------------------------------------------------- tangents


def _tangent(A: Array, x: Array, residual: Array, fac: _Factor, dA: Array | None,
             db: Array | None, dlam: Array | None, dmu: Array | None) -> Array:
    """``dx`` from ``(A_S^T A_S + mu I) dx_S = -(dlam s_S + dmu x_S + dA_S^T r + A_S^T (dA x - db))``.

    ``None`` marks a zero tangent (its terms are skipped: no dense zero ``dA``).
    """
    p = A.shape[1]
    xs = _gather(x, fac.idx)
    rhs = jnp.zeros_like(xs)
    if dlam is not None:
        rhs = rhs + dlam * jnp.sign(xs)
    if dmu is not None:
        rhs = rhs + dmu * xs
    if dA is not None:
        dAS = jnp.take(dA, fac.idx, axis=1, mode="fill", fill_value=0)
        rhs = rhs + dAS.T @ residual
    if dA is not None or db is not None:
        AS = jnp.take(A, fac.idx, axis=1, mode="fill", fill_value=0)
        dfit = (dA @ x if dA is not None else 0.0) - (db if db is not None else 0.0)
        rhs = rhs + AS.T @ dfit
    dz = -_cho_solve(fac.chol, jnp.where(fac.valid, rhs, 0.0))
    return _scatter(jnp.where(fac.valid, dz, 0.0), fac.idx, p)


def _check(x: Array, sol: LassoSolution, on_rank_deficient: str, on_not_converged: str,
           enet: bool) -> Array:
    """Apply the policies: raise (``eqx.error_if``, works under ``jit``), warn, or ignore."""
    name = "elastic net" if enet else "Lasso"
    bad_status = sol.status != RESULTS.successful
    if on_not_converged == "raise":
        x = eqx.branched_error_if(
            x, bad_status, sol.status,
            tuple(f"{name}: {m}" for m in RESULTS.messages),
        )
    elif on_not_converged == "warn":
        jax.debug.callback(_warn_status, sol.status, sol.kkt_violation, name)
    if not enet:
        msg = (
            "Lasso: A_E^T A_E is rank deficient on the equicorrelation set E = "
            "{j : |A_j^T (b - A x)| = e^theta} (Prop. 5 of arXiv 2106.04350 fails): the "
            "solution may be non-unique and its derivative is undefined. Check for duplicated "
            "or collinear columns, or use the elastic net."
        )
        if on_rank_deficient == "raise":
            x = eqx.error_if(x, sol.rank_deficient, msg)
        elif on_rank_deficient == "warn":
            jax.debug.callback(_warn_rank, sol.rank_deficient, sol.sigma_ratio, msg)
    return x


def _warn_status(status, kkt, name):
    status, kkt = np.asarray(status), np.asarray(kkt)
    for s in np.unique(status[status != 0]):
        warnings.warn(f"{name}: {RESULTS.messages[int(s)]} (kkt_violation {np.max(kkt):.3g})",
                      RuntimeWarning, stacklevel=2)


def _warn_rank(flag, ratio, msg):
    flag = np.asarray(flag)
    if np.any(flag):
        warnings.warn(f"{msg} (sigma_min/sigma_max ~ {np.min(np.asarray(ratio)):.3g})",
                      RuntimeWarning, stacklevel=2)


def _make_map(enet: bool):
    # cfg and the policies are static (hashable) nondiff arguments.
    @functools.partial(jax.custom_jvp, nondiff_argnums=(6, 7, 8))
    def smap(A, b, lam, mu, x0, lipschitz, cfg, on_rank, on_conv):
        fwd = _forward(A, b, lam, mu, x0, lipschitz, cfg, enet)
        return _check(fwd.sol.x, fwd.sol, on_rank, on_conv, enet)

    def smap_jvp(cfg, on_rank, on_conv, primals, tangents):
        A, b, lam, mu, x0, lipschitz = primals
        dA, db, dlam, dmu = (None if isinstance(t, SymbolicZero) else t for t in tangents[:4])
        fwd = _forward(A, b, lam, mu, x0, lipschitz, cfg, enet)
        x = _check(fwd.sol.x, fwd.sol, on_rank, on_conv, enet)
        dx = _tangent(A, x, fwd.residual, fwd.fac, dA, db, dlam, dmu)
        return x, dx

    # Symbolic zeros: differentiating in theta alone never builds a dense zero dA.
    smap.defjvp(smap_jvp, symbolic_zeros=True)

    return smap


_lasso_map = _make_map(False)
_enet_map = _make_map(True)


# --------------------------------------------------------------------------- public API


def _prepare(A, b, x0, lipschitz):
    A = jnp.asarray(A)
    if not jnp.issubdtype(A.dtype, jnp.floating):
        A = A.astype(jnp.result_type(float))
    if A.ndim != 2:
        raise ValueError(f"A must be a matrix (n, p), got shape {A.shape}")
    b = jnp.asarray(b, A.dtype)
    if b.shape != (A.shape[0],):
        raise ValueError(f"b must have shape ({A.shape[0]},) to match A {A.shape}, got {b.shape}")
    p = A.shape[1]
    x0 = jnp.zeros(p, A.dtype) if x0 is None else lax.stop_gradient(jnp.asarray(x0, A.dtype))
    if x0.shape != (p,):
        raise ValueError(f"x0 must have shape ({p},), got {x0.shape}")
    if lipschitz is not None:
        lipschitz = lax.stop_gradient(jnp.asarray(lipschitz, A.dtype))
    return A, b, x0, lipschitz


def _policy(name: str, value: str) -> str:
    if value not in _POLICIES:
        raise ValueError(f"{name} must be one of {_POLICIES}, got {value!r}")
    return value


def solve(
    A: ArrayLike, b: ArrayLike, theta: ArrayLike, *, x0: ArrayLike | None = None,
    lipschitz: ArrayLike | None = None, config: LassoConfig = LassoConfig(),
) -> LassoSolution:
    """Solve the Lasso ``1/2||Ax - b||^2 + e^theta ||x||_1`` with diagnostics (not differentiable).

    ``x0`` warm-starts; ``lipschitz`` (an estimate of ``||A||_2^2``, the initial FISTA
    constant, raised by backtracking if too small) skips the power method.
    """
    A, b, x0, lipschitz = _prepare(A, b, x0, lipschitz)
    theta = jnp.asarray(theta, A.dtype)
    if theta.shape != ():
        raise ValueError(f"theta must be a scalar (vmap for several), got shape {theta.shape}")
    A, b, theta = (lax.stop_gradient(v) for v in (A, b, theta))
    return _forward(A, b, jnp.exp(theta), jnp.zeros((), A.dtype), x0, lipschitz, config,
                    False).sol


def solution(
    A: ArrayLike, b: ArrayLike, theta: ArrayLike, *, x0: ArrayLike | None = None,
    lipschitz: ArrayLike | None = None, config: LassoConfig = LassoConfig(),
    on_rank_deficient: Policy = "raise", on_not_converged: Policy = "raise",
) -> Array:
    """``x^(theta) = argmin_x 1/2 ||A x - b||^2 + e^theta ||x||_1``, differentiable in ``theta, A, b``.

    Derivative: ``dx_S = -(A_S^T A_S)^{-1} (e^theta sign(x_S) dtheta + dA_S^T r +
    A_S^T (dA x - db))``, zero off the support (arXiv 2106.04350, THEORY.md §3).
    ``on_rank_deficient``: what to do when ``A_E^T A_E`` is singular (Prop. 5 fails);
    ``on_not_converged``: when the solver did not certify ``kkt_violation <= tol``.
    ``"raise"`` works under ``jit`` (``eqx.error_if``); ``"warn"`` via a host callback.
    ``x0`` warm-starts (not differentiated).  ``theta`` is a scalar; ``vmap`` for several.
    """
    _policy("on_rank_deficient", on_rank_deficient)
    _policy("on_not_converged", on_not_converged)
    A, b, x0, lipschitz = _prepare(A, b, x0, lipschitz)
    theta = jnp.asarray(theta, A.dtype)
    if theta.shape != ():
        raise ValueError(f"theta must be a scalar (vmap for several), got shape {theta.shape}")
    return _lasso_map(A, b, jnp.exp(theta), jnp.zeros((), A.dtype), x0, lipschitz, config,
                      on_rank_deficient, on_not_converged)


def _enet_theta(theta, dtype):
    theta = jnp.asarray(theta, dtype)
    if theta.shape != (2,):
        raise ValueError(
            f"elastic-net theta must have shape (2,) = (log l1 weight, log l2 weight), "
            f"got shape {theta.shape}"
        )
    return jnp.exp(theta[0]), jnp.exp(theta[1])


def enet_solve(
    A: ArrayLike, b: ArrayLike, theta: ArrayLike, *, x0: ArrayLike | None = None,
    lipschitz: ArrayLike | None = None, config: LassoConfig = LassoConfig(),
) -> LassoSolution:
    """Solve ``1/2||Ax - b||^2 + e^theta[0] ||x||_1 + e^theta[1]/2 ||x||^2`` (diagnostics)."""
    A, b, x0, lipschitz = _prepare(A, b, x0, lipschitz)
    lam, mu = _enet_theta(lax.stop_gradient(jnp.asarray(theta)), A.dtype)
    A, b = lax.stop_gradient(A), lax.stop_gradient(b)
    return _forward(A, b, lam, mu, x0, lipschitz, config, True).sol


def enet_solution(
    A: ArrayLike, b: ArrayLike, theta: ArrayLike, *, x0: ArrayLike | None = None,
    lipschitz: ArrayLike | None = None, config: LassoConfig = LassoConfig(),
    on_not_converged: Policy = "raise",
) -> Array:
    """Elastic net ``argmin 1/2||Ax - b||^2 + e^theta[0] ||x||_1 + e^theta[1]/2 ||x||^2``.

    Differentiable in ``theta`` (shape ``(2,)``), ``A`` and ``b``:
    ``(A_S^T A_S + mu I) dx_S = -(dlam sign(x_S) + dmu x_S + dA_S^T r + A_S^T(dA x - db))``.
    Strongly convex, so always unique and invertible (no rank policy).  The support may
    exceed ``n``: ``LassoConfig.max_support`` defaults to ``p`` when ``p <= 4096``.
    """
    _policy("on_not_converged", on_not_converged)
    A, b, x0, lipschitz = _prepare(A, b, x0, lipschitz)
    lam, mu = _enet_theta(theta, A.dtype)
    return _enet_map(A, b, lam, mu, x0, lipschitz, config, "ignore", on_not_converged)


# Held-out criteria and the hyperparameter loops live in a sibling module (imported last:
# it uses ``solution`` and ``LassoConfig`` from here).
from nsopt.problems._lasso_hpo import (
    HPOResult,
    grid_search,
    held_out_criterion,
    held_out_mse,
    hypergradient_descent,
    kfold_criterion,
    kfold_masks,
)
