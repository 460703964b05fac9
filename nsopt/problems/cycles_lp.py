"""The bilevel problem with a degenerate LP of ``experiment=cycles`` (arXiv 2106.04350 §6; docs/theory.md §6).

::

    min_{x, y}  l(x, y) = (x - s_1)^2 + 4 (y - s_2)^2,
    s = s(x, y) in argmax { (a + b) t(x, y) : (a, b) in [0, u_1] x [0, u_2] },
    t(x, y) = c . (x, y, 1).

The sources differ (docs/theory.md §6): ``c = (-2, 1, 2)`` in the NeurIPS 2021 poster and
the ISMP 2024 talk, ``c = (-3, 1, 2)`` in the thesis, and none says which of ``s_1, s_2`` is
``a``: the box is ``u = (3, 5)`` (``s = (a, b)``) or ``u = (5, 3)`` (``s = (b, a)``); every
function here takes ``u`` (``upper``).  The LP solution is ``u`` where ``t > 0``, ``0`` where
``t < 0`` and the solver's choice ``h0 u`` on the degenerate line ``t = 0``; it solves
the fixed-point equation ``s = T(w, s) = proj_[0, u](s + t(w) (1, 1))``, differentiated with
:func:`nsopt.implicit.fixed_point` and ``singular="pinv"``: ``ds/dw = 0`` everywhere, so the
implicit "gradient" is ``v(w) = D (w - s(w))``, ``D = diag(2, 8)``, descent on the quadratic
of the current side.

:func:`predict` classifies the flow ``w' = -v(w)``: it converges to ``u`` if ``t(u) > 0``, to
``0`` if ``t(0) < 0``; otherwise each side's target lies across the line and the candidate
rest point is ``p = lam u`` with ``t(p) = 0``.  Both fields are parallel to ``p`` there, so
``p`` is a Filippov equilibrium; if ``n . D p < 0`` (``n = (c_0, c_1)``) both fields point into
the line near ``p`` and the flow *slides* to ``p``; otherwise trajectories cross the line
transversally and wind around ``p`` on a *cycle* whose period :func:`flow_period` finds from
the exact piecewise-exponential flow (a fixed point of the return map on the line).
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import Array
from scipy.optimize import brentq

import nsopt.implicit as ni
from nsopt.nonsmooth.prox import box
from nsopt.oracles import Implicit, implicit_oracle

__all__ = ["READINGS", "UPPER", "WEIGHTS", "bilevel_loss", "field_zeros", "flow_period", "level",
           "lp_fixed_point_map", "lp_solution", "lp_solution_map", "make_oracle", "outer_loss", "predict"]

UPPER = (3.0, 5.0)  # the box [0, 3] x [0, 5] of s = (a, b)
WEIGHTS = (1.0, 4.0)  # l = (x - s_1)^2 + 4 (y - s_2)^2
#: the two readings of the box: s = (a, b) in [0, 3] x [0, 5], or s = (b, a) in [0, 5] x [0, 3]
READINGS = {"ab": (3.0, 5.0), "ba": (5.0, 3.0)}


def level(w: Array, c: Array) -> Array:
    """``t(w) = c_0 x + c_1 y + c_2``: the LP's objective is ``(a + b) t(w)``."""
    return c[0] * w[0] + c[1] * w[1] + c[2]


def lp_fixed_point_map(w: Array, s: Array, c: Array, h0: Array, upper: Any = UPPER) -> Array:
    """``T(w, s) = proj_[0, u](s + t(w) (1, 1))``: its fixed points are the LP solutions.

    ``h0`` (the solver's choice on the line) is not used by ``T``; it is an argument so
    that ``T`` and :func:`lp_solution` share their signature.
    """
    del h0
    u = jnp.asarray(upper, s.dtype)
    return box(s + level(w, c) * jnp.ones_like(s), jnp.zeros_like(s), u)


def lp_solution(w: Array, c: Array, h0: Array, upper: Any = UPPER) -> Array:
    """The exact LP solution: ``u`` if ``t > 0``, ``0`` if ``t < 0``, ``h0 * u`` on the line.

    ``h0 = 1/2`` is the analytic centre of the optimal face (what interior-point methods
    return), ``0`` / ``1`` a vertex.
    """
    t = level(w, c)
    u = jnp.asarray(upper, jnp.result_type(w, float))
    frac = jnp.where(t > 0, 1.0, jnp.where(t < 0, 0.0, h0))
    return frac * u


def lp_solution_map() -> ni.ImplicitFunction:
    """``w -> s(w)`` through :func:`nsopt.implicit.fixed_point` with ``singular="pinv"``."""
    return ni.fixed_point(lp_fixed_point_map, lp_solution, singular="pinv")


def outer_loss(w: Array, s: Array, xi: Any = None) -> Array:
    """``l(w, s) = (x - s_1)^2 + 4 (y - s_2)^2``."""
    del xi
    return WEIGHTS[0] * (w[0] - s[0]) ** 2 + WEIGHTS[1] * (w[1] - s[1]) ** 2


def bilevel_loss(w: Array, c: Array, h0: Array, upper: Any = UPPER) -> Array:
    """``l(w, s(w))`` with the exact LP solution (discontinuous across the line)."""
    return outer_loss(w, lp_solution(w, c, h0, upper))


def make_oracle(c: Any, h0: float, upper: Any = UPPER) -> Implicit:
    """The implicit oracle ``w -> grad_w l(w, s(w))`` (``ds/dw`` by ``-B^+ A``)."""
    dtype = jnp.result_type(float)
    args = (jnp.asarray(c, dtype), jnp.asarray(h0, dtype), jnp.asarray(upper, dtype))
    return implicit_oracle(outer_loss, lp_solution_map(), args)


def _t(c: np.ndarray, p: np.ndarray) -> float:
    return float(c[0] * p[0] + c[1] * p[1] + c[2])


def field_zeros(c: Any, h0: float, upper: Any = UPPER) -> np.ndarray:
    """Zeros of the implicit field ``v(w) = D (w - s(w))``: points with ``w = s(w)``.

    Returns an array ``(n, 2)`` (possibly empty): ``u`` if ``t(u) > 0``, ``0`` if
    ``t(0) < 0``, ``h0 u`` if ``t(h0 u) = 0``.
    """
    c, u = np.asarray(c, float), np.asarray(upper, float)
    pts = []
    if _t(c, u) > 0:
        pts.append(u)
    if _t(c, np.zeros(2)) < 0:
        pts.append(np.zeros(2))
    if abs(_t(c, h0 * u)) < 1e-12:
        pts.append(h0 * u)
    return np.array(pts).reshape(-1, 2)


def predict(c: Any, upper: Any = UPPER) -> tuple[str, np.ndarray]:
    """``(behaviour, point)`` of the flow ``w' = -v(w)``: ``("converges", u or 0)``,
    ``("slides", p)`` (Filippov sliding to ``p`` on the line) or ``("cycles", p)`` (around ``p``)."""
    c, u = np.asarray(c, float), np.asarray(upper, float)
    if _t(c, u) > 0:
        return "converges", u
    if _t(c, np.zeros(2)) < 0:
        return "converges", np.zeros(2)
    lam = c[2] / (c[2] - _t(c, u))  # t(lam u) = (1 - lam) c_2 + lam t(u) = 0
    p = lam * u
    D = 2 * np.asarray(WEIGHTS)
    return ("slides" if float(np.dot(c[:2], D * p)) < 0 else "cycles"), p


def _first_zero(g, h_max: float = 50.0, step: float = 1e-3) -> float:
    """Smallest ``h > 0`` with ``g(h) = 0`` (scan, then Brent); ``nan`` if none below ``h_max``."""
    hs = np.arange(step, h_max, step)
    vals = g(hs)
    sign = np.nonzero(np.sign(vals[1:]) != np.sign(vals[:-1]))[0]
    if len(sign) == 0:
        return math.nan
    i = sign[0]
    return brentq(g, hs[i], hs[i + 1], xtol=1e-15)


def flow_period(c: Any, upper: Any = UPPER, iterations: int = 400) -> float:
    """Period of the limit cycle of the exact flow ``w' = -v(w)`` (``nan`` if it has none).

    On the ``t > 0`` side ``w(h) = u + (q - u) e^{-D h}``, on the ``t < 0`` side
    ``w(h) = q e^{-D h}`` (``D = diag(2, 8)``): the return map on the line is iterated from
    a point of the line until the crossings repeat; the period is the sum of the two
    half-times.  (For a line through ``u / 2`` the cycle is symmetric and the closed form
    ``e^{-2h} = p_1 / (u_1 - p_1)``, ``e^{-8h} = p_2 / (u_2 - p_2)`` gives the same number.)
    """
    c, u = np.asarray(c, float), np.asarray(upper, float)
    kind, p = predict(c, u)
    if kind != "cycles":
        return math.nan
    D = 2 * np.asarray(WEIGHTS)
    n = c[:2]
    along = np.array([-n[1], n[0]]) / np.linalg.norm(n)
    q = p + 0.5 * along
    side = 1.0 if float(np.dot(n, D * (u - q))) > 0 else -1.0
    period, last = math.nan, None
    for _ in range(iterations):
        halves = []
        for _half in range(2):
            # t along the current side's exponential: t(w(h)) = t(target) + n . ((q - target) e^{-D h})
            target = u if side > 0 else np.zeros(2)
            t_target, gap = _t(c, target), n * (q - target)
            h = _first_zero(lambda s: t_target + np.exp(-np.multiply.outer(np.atleast_1d(s), D)) @ gap
                            if np.ndim(s) else float(t_target + np.exp(-D * s) @ gap))
            q = target + (q - target) * np.exp(-D * h)
            if not np.isfinite(h):
                return math.nan
            halves.append(h)
            side = -side
        period = sum(halves)
        if last is not None and abs(period - last) < 1e-13:
            break
        last = period
    return float(period)
