"""Nonsmooth primitives whose derivative at the kink is a parameter.

Backpropagation through a program built from these returns an element of a
*conservative* field (arXiv 1909.10300; `docs/theory.md`).  The value chosen at the kink changes the
field on a null set only, but it can create *artificial critical points*:
``relu(w) - relu(-w) = w`` has derivative ``2 * relu'(0)`` at ``w = 0``, which is
``0`` for ``relu'(0) = 0`` although ``w -> w`` has no critical point.

Each primitive takes the kink value as an ordinary argument (not a static
constant), so it can be traced, vmapped over or swept in one compiled program.
Its own derivative with respect to the kink value is zero.

JAX's own choices, for reference: ``jax.nn.relu'(0) = 0``, ``jnp.abs'(0) = 0``
(``sign(0)``) and ``jnp.maximum`` splits ties ``1/2, 1/2``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = ["relu", "abs", "maximum", "minimum", "max_elementwise"]


@jax.custom_jvp
def _relu(x: Array, kink: Array) -> Array:
    return jnp.maximum(x, 0).astype(x.dtype)


@_relu.defjvp
def _relu_jvp(primals, tangents):
    x, kink = primals
    dx, _ = tangents
    slope = jnp.where(x > 0, 1.0, jnp.where(x < 0, 0.0, kink)).astype(x.dtype)
    return _relu(x, kink), slope * dx


def relu(x: ArrayLike, kink: ArrayLike = 0.0) -> Array:
    """``max(x, 0)`` with ``relu'(0) = kink`` (Clarke's subdifferential at 0 is ``[0, 1]``)."""
    x = jnp.asarray(x, dtype=jnp.result_type(x, float))
    return _relu(x, jnp.asarray(kink, x.dtype))


@jax.custom_jvp
def _abs(x: Array, kink: Array) -> Array:
    return jnp.abs(x)


@_abs.defjvp
def _abs_jvp(primals, tangents):
    x, kink = primals
    dx, _ = tangents
    slope = jnp.where(x > 0, 1.0, jnp.where(x < 0, -1.0, kink)).astype(x.dtype)
    return _abs(x, kink), slope * dx


def abs(x: ArrayLike, kink: ArrayLike = 0.0) -> Array:  # noqa: A001 - mirrors jnp.abs
    """``|x|`` with ``abs'(0) = kink`` (Clarke's subdifferential at 0 is ``[-1, 1]``)."""
    x = jnp.asarray(x, dtype=jnp.result_type(x, float))
    return _abs(x, jnp.asarray(kink, x.dtype))


@jax.custom_jvp
def _maximum(x: Array, y: Array, kink: Array) -> Array:
    return jnp.maximum(x, y)


@_maximum.defjvp
def _maximum_jvp(primals, tangents):
    x, y, kink = primals
    dx, dy, _ = tangents
    wx = jnp.where(x > y, 1.0, jnp.where(x < y, 0.0, kink)).astype(x.dtype)
    return _maximum(x, y, kink), wx * dx + (1 - wx) * dy


def maximum(x: ArrayLike, y: ArrayLike, kink: ArrayLike = 0.5) -> Array:
    """``max(x, y)`` elementwise; at ties the derivative is ``kink * dx + (1 - kink) * dy``.

    ``kink`` in ``[0, 1]`` gives an element of Clarke's Jacobian.
    """
    dtype = jnp.result_type(x, y, float)
    x, y = jnp.broadcast_arrays(jnp.asarray(x, dtype), jnp.asarray(y, dtype))
    return _maximum(x, y, jnp.asarray(kink, dtype))


def minimum(x: ArrayLike, y: ArrayLike, kink: ArrayLike = 0.5) -> Array:
    """``min(x, y) = -max(-x, -y)``; at ties the derivative is ``kink * dx + (1 - kink) * dy``."""
    return -maximum(-jnp.asarray(x), -jnp.asarray(y), kink)


def max_elementwise(x: ArrayLike, kink: ArrayLike = 0.0) -> Array:
    """``max_i x_i`` along the last axis through a chain of :func:`maximum` (ties use ``kink``).

    With ``kink = 0`` the derivative at a tie goes to the *last* maximiser,
    with ``kink = 1`` to the first.
    """
    x = jnp.asarray(x, dtype=jnp.result_type(x, float))

    def step(m, xi):
        return maximum(m, xi, kink), None

    m, _ = jax.lax.scan(step, x[..., 0], jnp.moveaxis(x[..., 1:], -1, 0))
    return m
