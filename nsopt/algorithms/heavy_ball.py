"""Nonsmooth stochastic heavy ball (Le 2023; docs/theory.md §5).

    w_{k+1} = w_k - s * alpha_k * y_k
    y_{k+1} = beta_k * v_{k+1} + (1 - beta_k) * y_k,   v_{k+1} = oracle(w_{k+1}, xi_{k+1})
    y_0 = v_0 = oracle(w_0, xi_0)   (``init_momentum="oracle"``, the default)
    y_0 = beta_0 * v_0              (``"scaled"``: optax's convention, see below)
    y_0 = 0                         (``"zero"``)

With ``beta_k = c * alpha_k`` and scale ``s``, put ``r = s / c``, i.e.
``beta_k = s alpha_k / r``.  On the clock ``u_k = sum_{j<k} beta_j`` the iterates
shadow the limit system ``w' = -r y, y' in D_F(w) - y`` (Le 2023); on the clock
``tau_k = sum_{j<k} s alpha_j = r u_k`` of the interpolated process the same
system reads ``w' = -y, y' in (D_F(w) - y) / r``.  Lyapunov function
``F(w) + r/2 ||y||^2``; ``nsopt.flow.heavy_ball_r`` computes ``r`` and the
trajectory records ``r_k = s alpha_k / beta_k`` (docs/theory.md §5).
For a constant ``beta`` this is ``optax.sgd(lambda k: beta * alpha_k, momentum=1 - beta)``
with ``y_k = beta * m_{k+1}``: optax starts its trace from ``m = 0``, so it is the
``init_momentum="scaled"`` variant (``y_0 = beta v_0``) step for step.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from nsopt.algorithms.base import Algorithm, Oracle, PyTree, Sample, check_oracle_output, tree_axpy
from nsopt.algorithms.sgd import _check_scale
from nsopt import validate
from nsopt.schedules import Schedule, ScheduleLike, as_schedule

__all__ = ["HeavyBall", "HeavyBallState", "heavy_ball", "Proportional", "proportional"]

MOMENTUM_INITS = ("oracle", "scaled", "zero")


class HeavyBallState(eqx.Module):
    w: PyTree
    y: PyTree


class Proportional(eqx.Module):
    """``beta_k = r * alpha_k``: the coupling under which heavy ball shadows its ODE
    (the ODE's own ``r`` is then ``scale / r``, see the module docstring)."""

    r: Array
    alpha: Schedule | None = None

    def __call__(self, k: Array) -> Array:
        if self.alpha is None:
            raise TypeError("proportional(r) without alpha is bound by heavy_ball(alpha, beta=proportional(r))")
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

    def records(self, state: HeavyBallState, k: Array) -> dict[str, Array]:
        """The momentum ``y_k`` and the coupling ``r_k`` (the flow functions read ``traj.r``)."""
        return {"y": state.y, "r": self.coupling(k)}

    def with_scale(self, scale: Array) -> "HeavyBall":
        return HeavyBall(
            self.alpha, self.beta, jnp.asarray(scale, jnp.result_type(scale, float)), self.init_momentum
        )


def heavy_ball(
    alpha: ScheduleLike,
    beta: ScheduleLike | "Proportional",
    scale: float | Array = 1.0,
    *,
    init_momentum: Literal["oracle", "scaled", "zero"] = "oracle",
) -> HeavyBall:
    """Stochastic heavy ball; ``alpha``, ``beta`` schedules or numbers (``beta_k`` in ``(0, 1]``).

    ``beta = proportional(c)`` gives ``beta_k = c * alpha_k`` with this ``alpha``
    (the ODE regime, limit system with ``r = scale / c``).
    """
    _check_scale(scale)
    validate.choice("init_momentum", init_momentum, MOMENTUM_INITS)
    alpha_s = as_schedule(alpha, "alpha")
    if isinstance(beta, Proportional) and beta.alpha is None:
        beta = Proportional(beta.r, alpha_s)
    if not callable(beta):
        beta = validate.number("beta", beta, 0.0, 1.0, open_low=True)
    beta_s = as_schedule(beta, "beta")
    b0 = beta_s(jnp.asarray(0))
    if not validate.is_traced(b0):
        validate.number("beta_0", float(b0), 0.0, 1.0, open_low=True)
    return HeavyBall(
        alpha_s, beta_s, jnp.asarray(scale, jnp.result_type(scale, float)), init_momentum
    )


def proportional(r: float, alpha: ScheduleLike | None = None) -> Proportional:
    """``beta_k = r * alpha_k`` (heavy ball's ODE regime, docs/theory.md §5).

    Without ``alpha``, :func:`heavy_ball` binds its own step schedule.
    """
    r = validate.number("r", r, low=0.0, open_low=True)
    return Proportional(jnp.asarray(r, jnp.result_type(float)),
                        None if alpha is None else as_schedule(alpha, "alpha"))
