"""Forward solver of the QP layer: a primal-dual interior point method, then active-set polishing.

    minimize  1/2 x^T Q x + q^T x   subject to  G x <= h,  A x = b         (Q symmetric PSD)

**Interior point** (Mehrotra predictor-corrector with an infeasible start; Nocedal &
Wright, *Numerical Optimization*, 2nd ed., Alg. 16.4): slacks ``s = h - G x > 0``,
multipliers ``z > 0`` of ``G x <= h`` and ``y`` of ``A x = b``; each step solves the
reduced Newton system

    [Q + G^T diag(z / s) G   A^T] [dx]   [-r_d - G^T ((r_c + z r_i) / s)]
    [A                       0  ] [dy] = [-r_e                           ]

with ``r_d = Q x + q + A^T y + G^T z``, ``r_e = A x - b``, ``r_i = G x + s - h``, once
for the affine (predictor) and once for the centred (corrector) direction, with one LU
factorization.  It stops when the relative KKT residual

    res = max(|r_d|_inf / (1 + |q|_inf), |r_e|_inf / (1 + |b|_inf), |r_i|_inf / (1 + |h|_inf),
              s^T z / (m (1 + |q^T x| + |x^T Q x|)))

is ``<= tol``.

**Polishing** (the QP analogue of the Lasso's Newton step on its support): from the
active-set guess ``I = {i : z_i > s_i}``, solve the equality-constrained KKT system

    [Q          A^T   G^T     ] [x]   [ -q   ]
    [A          0     0       ] [y] = [  b   ]
    [diag(a) G  0    -diag(1-a)] [z]   [ a h  ]        a = 1_I,

(rows of ``I`` held at equality, the other multipliers at zero) and accept it when it is
primal and dual feasible up to ``polish_rtol``: then it is the solution exact to
rounding (the KKT conditions hold with the identified active set).  Otherwise update
``I`` (add violated rows, drop negative multipliers: a primal-dual active-set round) and
solve again, up to ``max_rounds`` times; this settles near-degenerate constraints that
the interior point method cannot separate (``s_i z_i = mu`` with both small).

**Failure detection.**  A run that does not converge is classified by the
normalized final iterates: ``infeasible`` when ``(y, z) / |(y, z)|`` is a Farkas
certificate (``z >= 0``, ``A^T y + G^T z ~ 0``, ``h^T z + b^T y < 0``), ``unbounded``
when ``d = x / |x|`` is a direction of recession (``Q d ~ 0``, ``A d ~ 0``,
``G d <= 0``, ``q^T d < 0``), ``max_steps_reached`` otherwise.  All shapes are static;
everything here is traceable (``jit``, ``vmap``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.linalg import lu_factor, lu_solve

__all__ = ["IPMState", "interior_point", "polish", "kkt_matrix", "certificates"]


class IPMState(NamedTuple):
    x: Array
    s: Array
    z: Array
    y: Array
    steps: Array
    res: Array
    blown: Array  # an iterate left the representable range (divergence: infeasible/unbounded)


def _inf(v: Array) -> Array:
    return jnp.max(jnp.abs(v), initial=0.0)


def _residuals(Q, q, G, h, A, b, x, s, z, y):
    rd = Q @ x + q + A.T @ y + G.T @ z
    re = A @ x - b
    ri = G @ x + s - h
    return rd, re, ri


def _relres(Q, q, G, h, A, b, st: IPMState) -> Array:
    rd, re, ri = _residuals(Q, q, G, h, A, b, st.x, st.s, st.z, st.y)
    m = max(G.shape[0], 1)
    gap = jnp.vdot(st.s, st.z) / (m * (1.0 + jnp.abs(jnp.vdot(q, st.x)) + jnp.abs(st.x @ Q @ st.x)))
    return jnp.max(jnp.stack([_inf(rd) / (1.0 + _inf(q)), _inf(re) / (1.0 + _inf(b)),
                              _inf(ri) / (1.0 + _inf(h)), gap]))


def _max_step(v: Array, dv: Array) -> Array:
    """Largest ``t <= 1`` with ``v + t dv >= 0`` (``v > 0``)."""
    ratio = jnp.where(dv < 0, -v / jnp.where(dv < 0, dv, -1.0), jnp.inf)
    return jnp.minimum(1.0, jnp.min(ratio, initial=jnp.inf))


def _reduced_lu(Q, G, A, W):
    n, p = Q.shape[0], A.shape[0]
    H = Q + (G.T * W) @ G
    # A tiny regularization on the scale of the data (not of H, whose entries grow like z / s):
    # it keeps K nonsingular for rank-deficient A or singular Q without perturbing the steps.
    eps = jnp.finfo(Q.dtype).eps
    delta = eps * (1.0 + _inf(Q) + _inf(A) ** 2)
    K = jnp.block([[H + delta * jnp.eye(n, dtype=Q.dtype), A.T],
                   [A, -delta * jnp.eye(p, dtype=Q.dtype)]])
    return lu_factor(K)


def _direction(lu, G, rd, re, ri, rc, s, z, W, n):
    rhs = jnp.concatenate([-rd - G.T @ ((rc + z * ri) / s), -re])
    d = lu_solve(lu, rhs)
    dx, dy = d[:n], d[n:]
    dz = (rc + z * ri) / s + W * (G @ dx)
    ds = -ri - G @ dx
    return dx, ds, dz, dy


def _ipm_step(Q, q, G, h, A, b, st: IPMState) -> IPMState:
    n, m = Q.shape[0], G.shape[0]
    x, s, z, y = st.x, st.s, st.z, st.y
    rd, re, ri = _residuals(Q, q, G, h, A, b, x, s, z, y)
    W = z / s
    lu = _reduced_lu(Q, G, A, W)
    mu = jnp.vdot(s, z) / max(m, 1)
    # predictor (affine scaling)
    dxa, dsa, dza, _ = _direction(lu, G, rd, re, ri, -s * z, s, z, W, n)
    ta = jnp.minimum(_max_step(s, dsa), _max_step(z, dza))
    mu_aff = jnp.vdot(s + ta * dsa, z + ta * dza) / max(m, 1)
    sigma = jnp.clip(mu_aff / jnp.maximum(mu, jnp.finfo(mu.dtype).tiny), 0.0, 1.0) ** 3
    # corrector (centring + second-order term)
    rc = -s * z - dsa * dza + sigma * mu
    dx, ds, dz, dy = _direction(lu, G, rd, re, ri, rc, s, z, W, n)
    t = 0.99 * jnp.minimum(_max_step(s, ds), _max_step(z, dz))
    tiny = jnp.finfo(Q.dtype).tiny
    new = IPMState(x + t * dx, jnp.maximum(s + t * ds, tiny), jnp.maximum(z + t * dz, tiny),
                   y + t * dy, st.steps + 1, st.res, st.blown)
    big = jnp.sqrt(jnp.finfo(Q.dtype).max) * 1e-3
    blown = ~(jnp.max(jnp.abs(jnp.concatenate([new.x, new.z, new.y, new.s])), initial=0.0) < big)
    # keep the last finite iterate when the step overflowed
    new = jax.tree.map(lambda u, v: jnp.where(blown, v, u), new, st)
    new = new._replace(steps=st.steps + 1, blown=blown)
    return new._replace(res=_relres(Q, q, G, h, A, b, new))


def initial_point(Q, q, G, h, A, b) -> IPMState:
    """CVXOPT's starting point: the least-squares KKT solution with ``W = I``, shifted inside."""
    n, m = Q.shape[0], G.shape[0]
    lu = _reduced_lu(Q, G, A, jnp.ones(m, Q.dtype))
    d = lu_solve(lu, jnp.concatenate([-q + G.T @ h, b]))
    x, y = d[:n], d[n:]
    s = h - G @ x
    z = -s

    def shift(v):
        lo = jnp.min(v, initial=jnp.inf)
        return jnp.where(lo > 0, v, v + (1.0 - lo))

    finite = jnp.all(jnp.isfinite(d))
    x = jnp.where(finite, x, 0.0)
    y = jnp.where(finite, y, 0.0)
    s = jnp.where(finite, shift(s), 1.0)
    z = jnp.where(finite, shift(z), 1.0)
    st = IPMState(x, s, z, y, jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, Q.dtype),
                  jnp.asarray(False))
    return st._replace(res=_relres(Q, q, G, h, A, b, st))


def interior_point(Q, q, G, h, A, b, st: IPMState, tol: float | Array, max_steps: int) -> IPMState:
    """Mehrotra steps from ``st`` until ``res <= tol``, ``max_steps`` total steps, or divergence."""

    def cond(st):
        return (st.res > tol) & (st.steps < max_steps) & ~st.blown & jnp.isfinite(st.res)

    return lax.while_loop(cond, lambda st: _ipm_step(Q, q, G, h, A, b, st), st)


def kkt_matrix(Q: Array, G: Array, A: Array, a: Array) -> Array:
    """``[[Q, A^T, G^T], [A, 0, 0], [diag(a) G, 0, -diag(1 - a)]]`` (``a`` in ``[0, 1]^m``)."""
    n, p, m = Q.shape[0], A.shape[0], G.shape[0]
    dt = Q.dtype
    return jnp.block([
        [Q, A.T, G.T],
        [A, jnp.zeros((p, p), dt), jnp.zeros((p, m), dt)],
        [a[:, None] * G, jnp.zeros((m, p), dt), -jnp.diag(1.0 - a)],
    ])


def _polish_once(Q, q, G, h, A, b, active: Array, rtol):
    n, p = Q.shape[0], A.shape[0]
    a = active.astype(Q.dtype)
    K = kkt_matrix(Q, G, A, a)
    sol = lu_solve(lu_factor(K), jnp.concatenate([-q, b, a * h]))
    x, y, z = sol[:n], sol[n:n + p], sol[n + p:]
    viol = G @ x - h
    row = 1.0 + jnp.abs(h) + jnp.abs(G) @ jnp.abs(x)
    zscale = 1.0 + _inf(z)
    eq = jnp.abs(A @ x - b) <= rtol * (1.0 + jnp.abs(b) + jnp.abs(A) @ jnp.abs(x))
    rd = Q @ x + q + A.T @ y + G.T @ z
    stat = _inf(rd) <= rtol * (1.0 + _inf(q) + _inf(Q @ x) + _inf(G.T @ z) + _inf(A.T @ y))
    bad_primal = viol > rtol * row  # violated rows: add them
    bad_dual = active & (z < -rtol * zscale)  # negative multipliers: drop them
    ok = ~jnp.any(bad_primal) & ~jnp.any(bad_dual) & jnp.all(eq) & stat & jnp.all(jnp.isfinite(sol))
    z = jnp.where(active, jnp.maximum(z, 0.0), 0.0)
    new_active = (active & ~bad_dual) | bad_primal
    return x, y, z, ok, new_active


def polish(Q, q, G, h, A, b, active: Array, rtol: float | Array, max_rounds: int):
    """Primal-dual active-set rounds from the guess ``active`` until the KKT check passes.

    Each round solves :func:`kkt_matrix` with ``a = 1_active`` (one semismooth Newton step
    on ``min(z, h - G x)``: Hintermueller, Ito & Kunisch, SIAM J. Optim. 13, 2002), then
    adds the violated rows and drops the negative multipliers.  Returns ``(x, y, z, ok,
    rounds)``; ``ok`` when primal and dual feasible and stationary up to ``rtol``, with
    ``z = 0`` off the active set (so the point is exact to rounding).
    """
    n, p, m = Q.shape[0], A.shape[0], G.shape[0]
    dt = Q.dtype
    init = (jnp.zeros(n, dt), jnp.zeros(p, dt), jnp.zeros(m, dt), jnp.asarray(False), active,
            jnp.asarray(False), jnp.asarray(0, jnp.int32))

    def cond(c):
        return ~c[3] & ~c[5] & (c[6] < max_rounds)

    def body(c):
        x, y, z, ok, new = _polish_once(Q, q, G, h, A, b, c[4], rtol)
        return x, y, z, ok, new, jnp.all(new == c[4]), c[6] + 1

    x, y, z, ok, _, _, rounds = lax.while_loop(cond, body, init)
    return x, y, z, ok, rounds


def certificates(Q, q, G, h, A, b, st: IPMState, rtol: float | Array) -> tuple[Array, Array]:
    """``(infeasible, unbounded)``: whether the normalized final iterates certify either."""
    tiny = jnp.finfo(Q.dtype).tiny
    yz = jnp.concatenate([st.y, st.z])
    nyz = jnp.linalg.norm(yz)
    y, z = st.y / jnp.maximum(nyz, tiny), st.z / jnp.maximum(nyz, tiny)
    dual_ray = _inf(A.T @ y + G.T @ z) <= rtol * (_inf(A) + _inf(G))
    infeasible = (nyz > 0) & dual_ray & (jnp.vdot(h, z) + jnp.vdot(b, y) < -rtol * (1.0 + _inf(h) + _inf(b))) \
        & jnp.all(z >= 0)
    nx = jnp.linalg.norm(st.x)
    d = st.x / jnp.maximum(nx, tiny)
    ray = (_inf(Q @ d) <= rtol * (1.0 + _inf(Q))) & (_inf(A @ d) <= rtol * (1.0 + _inf(A))) \
        & jnp.all(G @ d <= rtol * (1.0 + _inf(G)))
    unbounded = (nx > 0) & ray & (jnp.vdot(q, d) < -rtol * (1.0 + _inf(q)))
    return infeasible, unbounded & ~infeasible
