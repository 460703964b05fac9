"""The Lasso forward solver (never differentiated through): FISTA with adaptive restart and
backtracking, interleaved with support-restricted Newton trials, on all columns
(:func:`dense_solve`) or on a growing working set of columns (:func:`working_set_solve`)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax

from nsopt.layers.lasso.config import LassoConfig
from nsopt.layers.lasso.linalg import Factor, kkt, newton, objective, spectral_sq
from nsopt.nonsmooth.prox import soft_threshold

__all__ = ["MAX_ROUNDS", "dense_solve", "working_set_solve"]


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
    fac: Factor
    trials: Array


def dense_solve(
    A: Array, b: Array, lam: Array, mu: Array, x0: Array, L: Array, tol: float,
    k_max: int, cfg: LassoConfig, max_steps: Array,
) -> tuple[Array, Array, Array, Array, Array, Factor]:
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
        x_new = soft_threshold(st.y - g / st.L, lam / st.L)
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
            xn, fit, fac = newton(A, b, lam, mu, s, k_max)
            c = A.T @ (b - fit) - mu * xn
            ok = jnp.all(jnp.isfinite(xn))
            violation = jnp.where(ok, kkt(c, xn, lam), jnp.inf)
            better = ok & (objective(fit, b, xn, lam, mu) < objective(Ax, b, st.x, lam, mu))
            return xn, fit, violation <= tol, better, fac

        def no_trial(_):
            z = jnp.zeros(k_max, jnp.int32)
            fac = Factor(jnp.eye(k_max, dtype=dt), z + p, z > 0)
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
        Factor(jnp.eye(k_max, dtype=dt), z + p, z > 0),
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
    fac: Factor
    c: Array  # A^T (b - A x) - mu x at x, once done


def working_set_solve(
    A: Array, b: Array, lam: Array, mu: Array, x0: Array, lipschitz: Array | None,
    tol: float, k_max: int, ws: int, cfg: LassoConfig,
) -> tuple[Array, Array, Array, Array, Array, Factor]:
    """Solve on ``ws`` columns (the support, then the largest ``|A_j^T (b - A x)|``) with
    FISTA + Newton, check the KKT conditions on all columns, repeat until certified.

    Each round's sub-problem contains the previous support, so the objective decreases;
    a certified sub-solution satisfying ``|A_j^T (b - A x)| <= lam (1 + tol)`` off the
    working set is a solution.  Returns like :func:`dense_solve`.
    """
    p = A.shape[1]
    dt = A.dtype
    max_steps = jnp.asarray(cfg.max_steps, jnp.int32)

    def body(s: _WS) -> _WS:
        c = A.T @ (b - A @ s.x) - mu * s.x
        done = s.checked & (kkt(c, s.x, lam) <= tol)

        def round_(_):
            score = jnp.where(s.x != 0, jnp.inf, jnp.abs(c))
            W = lax.top_k(score, ws)[1].astype(jnp.int32)
            AW = A[:, W]
            L = (spectral_sq(AW, cfg.power_iterations) if lipschitz is None else lipschitz) + mu
            xw, ok, steps, trials, newton_ok, fac = dense_solve(
                AW, b, lam, mu, s.x[W], L, tol, k_max, cfg, max_steps - s.steps
            )
            x = jnp.zeros(p, dt).at[W].set(xw)
            idx = jnp.where(fac.valid, W[jnp.clip(fac.idx, 0, ws - 1)], p)
            fac = Factor(fac.chol, idx, fac.valid)
            return _WS(x, ok, done, s.steps + steps, s.trials + trials, s.rounds + 1,
                       newton_ok, fac, c)

        return lax.cond(done, lambda _: s._replace(done=done, c=c), round_, None)

    def cond(s: _WS) -> Array:
        return ~s.done & (s.steps < max_steps) & (s.rounds < MAX_ROUNDS)

    z = jnp.zeros(k_max, jnp.int32)
    init = _WS(x0, jnp.array(False), jnp.array(False), jnp.zeros((), jnp.int32),
               jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.array(False),
               Factor(jnp.eye(k_max, dtype=dt), z + p, z > 0), jnp.zeros(p, dt))
    s = lax.while_loop(cond, body, init)
    return s.x, s.done, s.steps, s.trials, s.done & s.newton_ok, s.fac, s.c


MAX_ROUNDS = 30
