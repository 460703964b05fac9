"""Nonsmooth SGD (Bolte-Pauwels 2020; Bolte-Le-Pauwels 2022; docs/theory.md §5).

    w_{k+1} = w_k - s * alpha_k * v_k,   v_k = oracle(w_k, xi_k),   xi_k = sample(k).

``s`` is the step *scale*: for almost every ``s`` (and almost every ``w_0``)
the limit points are Clarke critical, i.e. artificial critical points created
by the kink values of autodiff are avoided.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jax import Array

from nsopt.algorithms.base import Algorithm, Oracle, PyTree, Sample, check_oracle_output, tree_axpy
from nsopt import validate
from nsopt.schedules import Schedule, ScheduleLike, as_schedule

__all__ = ["SGD", "SGDState", "sgd"]


class SGDState(eqx.Module):
    w: PyTree


class SGD(Algorithm):
    """Configuration of nonsmooth SGD: step schedule ``alpha`` and scale ``s``."""

    alpha: Schedule
    scale: Array

    def init(self, oracle: Oracle, w0: PyTree, sample: Sample) -> SGDState:
        check_oracle_output(w0, _abstract_call(oracle, w0, sample))
        return SGDState(w=w0)

    def step(self, oracle: Oracle, state: SGDState, k: Array, sample: Sample) -> SGDState:
        v = oracle(state.w, sample(k))
        return SGDState(w=tree_axpy(-self.step_size(k), v, state.w))

    def step_size(self, k: Array) -> Array:
        return self.scale * self.alpha(k)

    def with_scale(self, scale: Array) -> "SGD":
        return SGD(self.alpha, jnp.asarray(scale, jnp.result_type(scale, float)))


def _abstract_call(oracle: Oracle, w: PyTree, sample: Sample) -> Any:
    """Shape-only evaluation of ``oracle(w, sample(0))`` (no FLOPs)."""
    import jax

    return jax.eval_shape(lambda w_: oracle(w_, sample(jnp.asarray(0, jnp.int32))), w)


def sgd(alpha: ScheduleLike, scale: float | Array = 1.0) -> SGD:
    """Nonsmooth SGD ``w_{k+1} = w_k - scale * alpha_k * v_k``.

    ``alpha`` is a schedule (any callable ``k -> alpha_k``, optax schedules too)
    or a positive number (a constant step).  ``scale`` may be a traced array,
    so ``jax.vmap`` over scales works.
    """
    _check_scale(scale)
    return SGD(as_schedule(alpha, "alpha"), jnp.asarray(scale, jnp.result_type(scale, float)))


def _check_scale(scale: Any) -> None:
    """``scale`` is a finite number > 0 when concrete (traced scales pass unchecked)."""
    validate.number("scale", scale, low=0.0, open_low=True)
