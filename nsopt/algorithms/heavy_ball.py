"""Nonsmooth stochastic heavy ball (Le 2023; THEORY.md §5).

    w_{k+1} = w_k - s * alpha_k * y_k
    y_{k+1} = beta_k * v_{k+1} + (1 - beta_k) * y_k,   v_{k+1} = oracle(w_{k+1}, xi_{k+1})
    y_0 = v_0 = oracle(w_0, xi_0)   (``init_momentum="oracle"``, the default)
    y_0 = beta_0 * v_0              (``"scaled"``: optax's convention, see below)
    y_0 = 0                         (``"zero"``)

With ``beta_k = c * alpha_k`` and scale ``s`` the iterates shadow, on the clock
``tau_k = sum_{j<k} s alpha_j``, the limit system ``w' = -r y, y' in D_F(w) - y``
with ``r = s / c`` (and time ``tau = r u``); Lyapunov function ``F(w) + r/2 ||y||^2``
(``nsopt.flow.heavy_ball_r`` computes ``r``).  THEORY.md §5 writes this as
``beta_k = r alpha_k``, which holds in the time of ``beta`` rather than of ``alpha``.
For a constant ``beta`` this is ``optax.sgd(lambda k: beta * alpha_k, momentum=1 - beta)``
with ``y_k = beta * m_{k+1}``: optax starts its trace from ``m = 0``, so it is the
``init_momentum="scaled"`` variant (``y_0 = beta v_0``) step for step.
"""

from __future__ import annotations

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from nsopt.algorithms.base import Algorithm, Oracle, PyTree, Sample, check_oracle_output, tree_axpy
from nsopt.algorithms.sgd import _check_scale
from nsopt.schedules import Schedule, ScheduleLike, as_schedule

__all__ = ["HeavyBall", "HeavyBallState", "heavy_ball", "Proportional", "proportional"]

_MOMENTUM_INITS = ("oracle", "scaled", "zero")


class HeavyBallState(eqx.Module):
    w: PyTree
    y: PyTree


class Proportional(eqx.Module):
    """``beta_k = r * alpha_k``: the coupling under which heavy ball shadows its ODE
    (the ODE's own ``r`` is then ``scale / r``, see the module docstring)."""

    r: Array
    alpha: Schedule

    def __call__(self, k: Array) -> Array:
        return self.r * self.alpha(k)


class HeavyBall(Algorithm):
    """Configuration of the stochastic heavy ball: ``alpha``, ``beta`` schedules and scale."""

    alpha: Schedule
    beta: Schedule
    scale: Array
    init_momentum: str = eqx.field(static=True, default="oracle")

    def init(self, oracle: Oracle, w0: PyTree, sample: Sample) -> HeavyBallState:
        v0 = oracle(w0, sample(jnp.asarray(0, jnp.int32)))
        check_oracle_output(w0, v0)
        if self.init_momentum == "zero":
            v0 = jax.tree.map(jnp.zeros_like, v0)
        elif self.init_momentum == "scaled":
            b0 = self.beta(jnp.asarray(0, jnp.int32))
            v0 = jax.tree.map(lambda v: b0 * v, v0)
        y0 = jax.tree.map(lambda v, w: v.astype(w.dtype), v0, w0)
        return HeavyBallState(w=w0, y=y0)

    def step(self, oracle: Oracle, state: HeavyBallState, k: Array, sample: Sample) -> HeavyBallState:
        w = tree_axpy(-self.step_size(k), state.y, state.w)
        v = oracle(w, sample(k + 1))
        b = self.beta(k)
        y = jax.tree.map(lambda vi, yi: (b * vi + (1 - b) * yi).astype(yi.dtype), v, state.y)
        return HeavyBallState(w=w, y=y)

    def step_size(self, k: Array) -> Array:
        return self.scale * self.alpha(k)

    def coupling(self, k: Array) -> Array:
        """``r_k = scale * alpha_k / beta_k``: the ``r`` of the limit system (constant for ``beta = c alpha``)."""
        return self.step_size(k) / self.beta(k)

    def with_scale(self, scale: Array) -> "HeavyBall":
        return HeavyBall(
            self.alpha, self.beta, jnp.asarray(scale, jnp.result_type(scale, float)), self.init_momentum
        )


def heavy_ball(
    alpha: ScheduleLike,
    beta: ScheduleLike,
    scale: float | Array = 1.0,
    *,
    init_momentum: Literal["oracle", "scaled", "zero"] = "oracle",
) -> HeavyBall:
    """Stochastic heavy ball; ``alpha``, ``beta`` schedules or numbers (``beta`` in ``(0, 1]``).

    Use :func:`proportional` for ``beta_k = r * alpha_k``.
    """
    _check_scale(scale)
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        if not (math.isfinite(beta) and 0 < beta <= 1):
            raise ValueError(f"heavy_ball beta must be in (0, 1], got {beta!r}")
    if init_momentum not in _MOMENTUM_INITS:
        raise ValueError(
            f"heavy_ball init_momentum must be one of {_MOMENTUM_INITS}, got {init_momentum!r}"
        )
    alpha_s = as_schedule(alpha, "alpha")
    beta_s = as_schedule(beta, "beta")
    b0 = beta_s(jnp.asarray(0))
    if not isinstance(b0, jax.core.Tracer):
        b0 = float(b0)
        if not (0 < b0 <= 1):
            raise ValueError(f"heavy_ball beta_0 must be in (0, 1], got beta_0 = {b0!r}")
    return HeavyBall(
        alpha_s, beta_s, jnp.asarray(scale, jnp.result_type(scale, float)), init_momentum
    )


def proportional(r: float, alpha: ScheduleLike) -> Proportional:
    """``beta_k = r * alpha_k`` (heavy ball's ODE regime, THEORY.md §5)."""
    if isinstance(r, (int, float)) and not (math.isfinite(r) and r > 0):
        raise ValueError(f"proportional r must be a finite number > 0, got {r!r}")
    return Proportional(jnp.asarray(r, jnp.result_type(float)), as_schedule(alpha, "alpha"))
