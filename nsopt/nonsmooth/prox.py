"""Proximal operators and projections with a declared Clarke-Jacobian choice at kinks.

Each map is piecewise smooth.  Away from kinks its derivative is the classical
one; on a kink (where two pieces *tie*) its Clarke Jacobian is the convex hull of
the derivatives of the pieces that meet there.  Every function takes a weight
``tie`` in ``[0, 1]`` and returns (through a ``jax.custom_jvp``) the element

    tie * (derivative of the "free" piece) + (1 - tie) * (derivative of the "active" piece),

where the *active* piece is the thresholded / clamped / projected one (the
output sits on the boundary of the constraint, or at zero) and the *free* piece
is the one that lets ``x`` through.  ``tie`` is a convex weight between two
Jacobians, not a derivative value: the name ``kink`` is reserved for the
derivative value chosen at a kink of a scalar primitive
(:mod:`nsopt.nonsmooth.kinks`, e.g. ``relu'(0) = kink``).  The default
``tie = 0`` selects the active piece: for soft-thresholding at ``|x_i| = tau``
it gives ``0``, i.e. the Lasso derivative restricted to the support, ``q_i = 0``
on the equicorrelation set minus the support (arXiv 2106.04350, Prop. 5;
``docs/theory.md``).  ``jnp``'s own derivatives would give ``1/2`` at the kinks
of ``max``/``clip`` and ``NaN`` at the origin of a norm, hence the custom rules.
``tie`` is an ordinary (traceable) argument and gets zero derivative.

All derivatives are also given with respect to the parameters (``tau``,
bounds, radius), so the maps can sit inside an implicit solution map
``H(theta, x) = prox_{gamma g_theta}(x - gamma grad f_theta(x))``
(:func:`nsopt.implicit.forward_backward`).  Vector maps (group lasso, l2 ball,
simplex) act on the last axis; leading axes are batch axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = ["box", "elastic_net", "group_lasso", "l2_ball", "simplex", "soft_threshold"]


def _float(x: ArrayLike) -> Array:
    return jnp.asarray(x, dtype=jnp.result_type(x, float))


def _pick(free: Array, active: Array, at_tie: Array, tie: Array) -> Array:
    """``1`` where ``free``, ``0`` where ``active``, ``tie`` on a tie."""
    return jnp.where(free, 1.0, jnp.where(at_tie, tie, 0.0))


# ----------------------------------------------------------------------------- soft threshold


@jax.custom_jvp
def _soft_threshold(x: Array, tau: Array, tie: Array) -> Array:
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - tau, 0.0)


@_soft_threshold.defjvp
def _soft_threshold_jvp(primals, tangents):
    x, tau, tie = primals
    dx, dtau, _ = tangents
    a = _pick(jnp.abs(x) > tau, jnp.abs(x) < tau, jnp.abs(x) == tau, tie).astype(x.dtype)
    return _soft_threshold(x, tau, tie), a * (dx - jnp.sign(x) * dtau)


def soft_threshold(x: ArrayLike, tau: ArrayLike, tie: ArrayLike = 0.0) -> Array:
    """``prox_{tau ||.||_1}(x) = sign(x) max(|x| - tau, 0)`` (``tau >= 0``, broadcast to ``x``).

    Derivative ``d out_i = a_i (dx_i - sign(x_i) dtau_i)`` with ``a_i = 1`` if
    ``|x_i| > tau``, ``0`` if ``|x_i| < tau``, ``tie`` if ``|x_i| = tau``
    (Clarke: ``a_i in [0, 1]``).
    """
    x = _float(x)
    tau = jnp.broadcast_to(jnp.asarray(tau, x.dtype), x.shape)
    return _soft_threshold(x, tau, jnp.asarray(tie, x.dtype))


def elastic_net(x: ArrayLike, tau1: ArrayLike, tau2: ArrayLike, tie: ArrayLike = 0.0) -> Array:
    """``prox`` of ``tau1 ||.||_1 + tau2 / 2 ||.||^2``: ``soft_threshold(x, tau1) / (1 + tau2)``.

    Kinks (``|x_i| = tau1``) follow :func:`soft_threshold`; smooth in ``tau2 >= 0``.
    """
    x = _float(x)
    return soft_threshold(x, tau1, tie) / (1.0 + jnp.asarray(tau2, x.dtype))


# ----------------------------------------------------------------------------- group lasso


def _safe_norm(x: Array) -> tuple[Array, Array]:
    n = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return n, jnp.where(n > 0, n, 1.0)


@jax.custom_jvp
def _group_lasso(x: Array, tau: Array, tie: Array) -> Array:
    n, sn = _safe_norm(x)
    return jnp.maximum(1.0 - tau / sn, 0.0) * jnp.where(n > 0, x, 0.0)


@_group_lasso.defjvp
def _group_lasso_jvp(primals, tangents):
    x, tau, tie = primals
    dx, dtau, _ = tangents
    n, sn = _safe_norm(x)
    a = _pick(n > tau, n < tau, n == tau, tie).astype(x.dtype)
    u = x / sn
    xdx = jnp.sum(u * dx, axis=-1, keepdims=True)
    d = (1.0 - tau / sn) * dx + (tau / sn) * u * xdx - dtau * u
    return _group_lasso(x, tau, tie), a * d


def group_lasso(x: ArrayLike, tau: ArrayLike, tie: ArrayLike = 0.0) -> Array:
    """Block soft-thresholding ``prox_{tau ||.||_2}(x) = max(1 - tau / ||x||, 0) x``, groups = last axis.

    ``tau`` has one entry per group (shape ``x.shape[:-1]``, or broadcastable).
    Derivative ``a [(1 - tau/n) dx + tau x x^T dx / n^3 - dtau x / n]`` with
    ``n = ||x||``, ``a = 1`` if ``n > tau``, ``0`` if ``n < tau``, ``tie`` if ``n = tau``
    (Clarke at ``n = tau``: ``conv{0, x x^T / n^2}``).
    """
    x = _float(x)
    if x.ndim == 0:
        raise ValueError("group_lasso: x must have at least one axis (the group axis, last)")
    tau = jnp.broadcast_to(jnp.asarray(tau, x.dtype), x.shape[:-1])[..., None]
    return _group_lasso(x, tau, jnp.asarray(tie, x.dtype))


# ----------------------------------------------------------------------------- box


@jax.custom_jvp
def _box(x: Array, lower: Array, upper: Array, tie: Array) -> Array:
    return jnp.minimum(jnp.maximum(x, lower), upper)


@_box.defjvp
def _box_jvp(primals, tangents):
    x, lower, upper, tie = primals
    dx, dlo, dhi, _ = tangents
    at_lo = x <= lower
    at_hi = (x >= upper) & ~at_lo
    a = _pick((x > lower) & (x < upper), (x < lower) | (x > upper), (x == lower) | (x == upper), tie)
    a = a.astype(x.dtype)
    d = a * dx + (1.0 - a) * jnp.where(at_lo, dlo, jnp.where(at_hi, dhi, 0.0))
    return _box(x, lower, upper, tie), d


def box(x: ArrayLike, lower: ArrayLike, upper: ArrayLike, tie: ArrayLike = 0.0) -> Array:
    """Projection onto ``[lower, upper]`` (elementwise, ``lower <= upper``): ``clip(x, lower, upper)``.

    Derivative ``dx`` inside, ``dlower`` below, ``dupper`` above; on a bound
    ``tie * dx + (1 - tie) * dbound`` (Clarke: any weight in ``[0, 1]``).
    """
    x = _float(x)
    lower = jnp.broadcast_to(jnp.asarray(lower, x.dtype), x.shape)
    upper = jnp.broadcast_to(jnp.asarray(upper, x.dtype), x.shape)
    return _box(x, lower, upper, jnp.asarray(tie, x.dtype))


# ----------------------------------------------------------------------------- l2 ball


@jax.custom_jvp
def _l2_ball(x: Array, radius: Array, tie: Array) -> Array:
    _, sn = _safe_norm(x)
    return x * jnp.minimum(1.0, radius / sn)


@_l2_ball.defjvp
def _l2_ball_jvp(primals, tangents):
    x, radius, tie = primals
    dx, dr, _ = tangents
    n, sn = _safe_norm(x)
    a = _pick(n < radius, n > radius, n == radius, tie).astype(x.dtype)
    u = x / sn
    outside = (radius / sn) * (dx - u * jnp.sum(u * dx, axis=-1, keepdims=True)) + dr * u
    return _l2_ball(x, radius, tie), a * dx + (1.0 - a) * outside


def l2_ball(x: ArrayLike, radius: ArrayLike = 1.0, tie: ArrayLike = 0.0) -> Array:
    """Projection onto ``{||y||_2 <= radius}`` along the last axis: ``x min(1, radius / ||x||)``.

    Derivative ``dx`` inside; outside ``(r/n)(I - u u^T) dx + dr u`` with
    ``n = ||x||``, ``u = x / n``; on the sphere ``tie * dx + (1 - tie) * outside``
    (Clarke: ``conv{I, I - u u^T}``).
    """
    x = _float(x)
    if x.ndim == 0:
        raise ValueError("l2_ball: x must have at least one axis (the vector axis, last)")
    radius = jnp.broadcast_to(jnp.asarray(radius, x.dtype), x.shape[:-1])[..., None]
    return _l2_ball(x, radius, jnp.asarray(tie, x.dtype))


# ----------------------------------------------------------------------------- simplex


def _simplex_threshold(x: Array, radius: Array) -> Array:
    """``nu`` with ``sum_i max(x_i - nu, 0) = radius`` (sort-based, last axis, keepdims)."""
    u = jnp.flip(jnp.sort(x, axis=-1), axis=-1)
    css = jnp.cumsum(u, axis=-1) - radius
    k = jnp.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    ok = u - css / k > 0
    rho = jnp.sum(ok, axis=-1, keepdims=True)  # ok is a prefix of True: rho = last index + 1
    rho = jnp.maximum(rho, 1)
    return jnp.take_along_axis(css, rho - 1, axis=-1) / rho.astype(x.dtype)


@jax.custom_jvp
def _simplex(x: Array, radius: Array, tie: Array) -> Array:
    return jnp.maximum(x - _simplex_threshold(x, radius), 0.0)


def _simplex_tangent(mask: Array, dx: Array, dr: Array) -> Array:
    m = mask.astype(dx.dtype)
    size = jnp.maximum(jnp.sum(m, axis=-1, keepdims=True), 1.0)
    return m * (dx - jnp.sum(m * dx, axis=-1, keepdims=True) / size + dr / size)


@_simplex.defjvp
def _simplex_jvp(primals, tangents):
    x, radius, tie = primals
    dx, dr, _ = tangents
    nu = _simplex_threshold(x, radius)
    active = _simplex_tangent(x > nu, dx, dr)  # ties are treated as off the support
    free = _simplex_tangent(x >= nu, dx, dr)  # ties are treated as on the support
    return jnp.maximum(x - nu, 0.0), tie * free + (1.0 - tie) * active


def simplex(x: ArrayLike, radius: ArrayLike = 1.0, tie: ArrayLike = 0.0) -> Array:
    """Projection onto ``{y >= 0, sum y = radius}`` (``radius > 0``) along the last axis.

    ``out = max(x - nu, 0)`` with ``nu`` the threshold making the sum ``radius``.
    On the support ``S = {x_i > nu}``: ``d out_S = (I - 1 1^T / |S|) dx_S + dr / |S|``,
    zero off it.  Ties ``x_i = nu`` (kinks): ``tie * P_{S u T} + (1 - tie) * P_S``,
    ``T`` the tied coordinates (Clarke: the convex hull over supports between
    ``S`` and ``S u T``; both extremes are in it).
    """
    x = _float(x)
    if x.ndim == 0:
        raise ValueError("simplex: x must have at least one axis (the vector axis, last)")
    radius = jnp.broadcast_to(jnp.asarray(radius, x.dtype), x.shape[:-1])[..., None]
    return _simplex(x, radius, jnp.asarray(tie, x.dtype))
