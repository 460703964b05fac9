"""The QP layer: the solution map of a convex quadratic program, differentiated by the nonsmooth IFT.

    x*(Q, q, G, h, A, b) = argmin_x 1/2 x^T Q x + q^T x   s.t.   G x <= h,   A x = b,

with ``Q`` symmetric positive semidefinite (a non-symmetric ``Q`` is replaced by
``(Q + Q^T) / 2``, which defines the same objective).  :func:`solve` returns the
primal-dual solution ``(x, y, z)`` (``y`` for ``A x = b``, ``z >= 0`` for ``G x <= h``) in
a :class:`nsopt.failures.Solution`; :func:`solution` returns ``x``.

**Forward** (:mod:`nsopt.layers.qp_ipm`): a Mehrotra interior point method followed by an
active-set polishing step, so the returned point is exact to rounding (the KKT conditions
hold on the identified active set); ``jit``, ``vmap``, float32 and float64.

**Derivatives** in every argument, forward (``jvp``, ``jacfwd``) and reverse (``grad``,
``vjp``), come from the nonsmooth implicit function theorem (Bolte, Le, Pauwels,
Silveti-Falls, arXiv 2106.04350, Thm. 1; ``docs/theory.md``) applied to the path
differentiable KKT map

    F(x, y, z) = (Q x + q + A^T y + G^T z,   A x - b,   min(z, h - G x)).

At the solution let ``s = h - G x``.  The constraints split into *strongly active*
``S = {s_i = 0 < z_i}``, *weakly active* ``W = {s_i = 0 = z_i}`` (degenerate
complementarity) and inactive ones.  On ``W`` the Clarke Jacobian of ``min`` is the
segment between the two branches, so the conservative Jacobian of ``x*`` is a set; the
element returned is fixed by the **weak weight** ``w in [0, 1]`` (``weak_weight``, the
analogue of the Lasso's ``q`` on ``E \\ S``, arXiv 2106.04350 Prop. 5): with
``a_i = 1`` on ``S``, ``w`` on ``W``, ``0`` off the active set, the tangent solves

    [Q          A^T   G^T       ] [dx]   [-(dQ x + dq + dA^T y + dG^T z)]
    [A          0     0         ] [dy] = [  db - dA x                   ]
    [diag(a) G  0    -diag(1 - a)] [dz]   [  a (dh - dG x)               ]

``w = 1`` treats weakly active constraints as active (``x`` stays on their face; the
one-sided derivative in directions that tighten them), ``w = 0`` (default, like the
Lasso's ``q = 0`` off the support) as inactive (``z_i`` stays 0; the one-sided
derivative in directions that loosen them).  Reverse mode transposes the LU solve
(:func:`nsopt.implicit.linear.lu_solve`).

**Invertibility** (the hypothesis of the theorem, for every ``w``): the rows
``[A; G_{S u W}]`` have full row rank, and ``Q`` is positive definite on the null space
of ``[A; G_S]``.  :func:`solve` checks both at the solution (singular values and the
smallest eigenvalue of the projected ``Q``); a failure gives ``RESULTS.rank_deficient``
or ``RESULTS.singular`` and goes through ``on_failure`` (:mod:`nsopt.failures`).
``stats["num_weakly_active"]`` counts ``W`` (tolerance ``QPSolver.active_rtol``).

**Bad input** is never silent: mismatched shapes raise ``ValueError`` when the program
is built; NaN/inf data (``nonfinite``), a ``Q`` that is not PSD
(``not_positive_semidefinite``), an infeasible or unbounded QP, and a solve that did
not converge (``max_steps_reached``) give a result code, raised eagerly as
:class:`nsopt.failures.SolverError` with ``on_failure="raise"``, as a runtime error
under ``jit``, a warning with ``"warn"``, or only the code with ``"ignore"``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import validate
from nsopt.failures import RESULTS, Solution, check_on_failure, handle, message, result_where
import nsopt.layers.qp_ipm as qp_ipm
from nsopt.implicit.linear import lu_solve, one_matrix_at_a_time

# LAPACK one matrix at a time under vmap on CPU (a batched kernel can wait forever on XLA:CPU's
# pool: nsopt.implicit.linear.one_matrix_at_a_time); the checks are never differentiated
_svdvals = one_matrix_at_a_time(lambda a: jnp.linalg.svdvals(a))
_eigh = one_matrix_at_a_time(lambda a: tuple(jnp.linalg.eigh(a)))
_eigvalsh = one_matrix_at_a_time(lambda a: jnp.linalg.eigvalsh(a))

__all__ = ["QPSolver", "QPPoint", "solve", "solution", "MESSAGES"]

SOLVER = "nsopt.layers.qp"

#: One message per failure code (the wording of :func:`nsopt.failures.message`).
MESSAGES: dict[int, str] = {
    int(RESULTS.nonfinite): message(SOLVER, RESULTS.nonfinite, "in Q, q, G, h, A or b, or in the iterates"),
    int(RESULTS.not_positive_semidefinite): message(
        SOLVER, RESULTS.not_positive_semidefinite,
        "Q: the smallest eigenvalue of (Q + Q^T) / 2 is below -psd_rtol ||Q||_F",
        "The QP layer solves convex QPs only"),
    int(RESULTS.infeasible): message(
        SOLVER, RESULTS.infeasible,
        "no x satisfies G x <= h, A x = b: z >= 0, A^T y + G^T z = 0, h^T z + b^T y < 0 holds "
        "for the normalized multipliers", "Check h and b"),
    int(RESULTS.unbounded): message(
        SOLVER, RESULTS.unbounded,
        "a direction d with Q d = 0, A d = 0, G d <= 0, q^T d < 0 exists",
        "Add constraints or make Q positive definite"),
    int(RESULTS.max_steps_reached): message(
        SOLVER, RESULTS.max_steps_reached, "the interior point method did not reach its tolerance",
        "Increase QPSolver.max_steps or tol"),
    int(RESULTS.rank_deficient): message(
        SOLVER, RESULTS.rank_deficient,
        "invertibility condition: the active rows [A; G_E], E = {i : G_i x* = h_i} with weakly "
        "active constraints included, do not have full row rank",
        "The multipliers are not unique and the implicit function theorem does not apply; "
        "remove redundant constraints"),
    int(RESULTS.singular): message(
        SOLVER, RESULTS.singular,
        "invertibility condition: Q is not positive definite on the null space of the strongly "
        "active rows [A; G_S], S = {i : G_i x* = h_i, z_i > 0}",
        "The solution is not unique and the implicit function theorem does not apply; add a "
        "proximal term eps ||x||^2 or constraints"),
}
MESSAGES[int(RESULTS.residual_too_large)] = message(SOLVER, RESULTS.residual_too_large)


class QPPoint(NamedTuple):
    """The primal-dual solution: ``x``, ``y`` (multipliers of ``A x = b``), ``z >= 0`` (of ``G x <= h``)."""

    x: Array
    y: Array
    z: Array


def _eps_power(dtype, power: float) -> float:
    return float(np.finfo(dtype).eps ** power)


class QPSolver(eqx.Module):
    """Settings of :func:`solve` (all static; ``None`` means a power of the dtype's ``eps``).

    - ``tol``: interior point stop on the relative KKT residual (``eps**0.5``), then polish.
    - ``max_steps``: interior point steps.
    - ``polish_rounds``: active-set polishing rounds (``0``: return the interior point iterate).
    - ``polish_rtol``: a polished point is accepted when primal/dual feasible up to it (``eps**0.6``).
    - ``active_rtol``: ``i`` is active when ``h_i - G_i x <= active_rtol (1 + |h_i| + |G_i| |x|)``;
      strongly active when also ``z_i > active_rtol (1 + |z|_inf)``, else weakly active (``eps**0.5``).
    - ``rank_rtol``: rows are rank deficient when ``sigma_min / sigma_max <= rank_rtol``, and ``Q``
      is not positive definite on a null space when its smallest eigenvalue there is
      ``<= rank_rtol ||Q||_F`` (``eps**0.5``).
    - ``psd_rtol``: ``Q`` is not PSD when ``lambda_min((Q + Q^T) / 2) < -psd_rtol ||Q||_F`` (``eps**0.5``).
    - ``check``: run the invertibility check (two SVDs and one eigendecomposition per QP).
    """

    tol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=100)
    polish_rounds: int = eqx.field(static=True, default=8)
    polish_rtol: float | None = eqx.field(static=True, default=None)
    active_rtol: float | None = eqx.field(static=True, default=None)
    rank_rtol: float | None = eqx.field(static=True, default=None)
    psd_rtol: float | None = eqx.field(static=True, default=None)
    check: bool = eqx.field(static=True, default=True)

    def __check_init__(self) -> None:
        for name in ("tol", "polish_rtol", "active_rtol", "rank_rtol", "psd_rtol"):
            v = getattr(self, name)
            if v is not None:
                validate.number(f"QPSolver.{name}", v, 0.0, 1.0, open_low=True, open_high=True)
        validate.positive_int("QPSolver.max_steps", self.max_steps)
        validate.integer("QPSolver.polish_rounds", self.polish_rounds, low=0)
        if not isinstance(self.check, bool):
            raise validate.BadValue("QPSolver.check", self.check, "it must be True or False")

    def resolved(self, dtype) -> dict[str, float]:
        """The tolerances for ``dtype`` (``None`` replaced by the default power of ``eps``)."""
        defaults = {"tol": 0.5, "polish_rtol": 0.6, "active_rtol": 0.5,
                    "rank_rtol": 0.5, "psd_rtol": 0.5}
        return {k: (_eps_power(dtype, p) if getattr(self, k) is None else float(getattr(self, k)))
                for k, p in defaults.items()}


# --------------------------------------------------------------------------- input handling


def _prepare(Q, q, G, h, A, b):
    """Arrays in one float dtype; ``G, h`` / ``A, b`` may be ``None`` (no such constraints)."""
    q = jnp.asarray(q)
    if q.ndim != 1:
        raise validate.BadValue("q.shape", tuple(q.shape), "it must be (n,)")
    n = q.shape[0]
    arrays = {"Q": Q, "q": q, "G": G, "h": h, "A": A, "b": b}
    for name, partner in (("G", "h"), ("A", "b")):
        if (arrays[name] is None) != (arrays[partner] is None):
            raise ValueError(f"{SOLVER}: give both {name} and {partner} or neither")
        if arrays[name] is None:
            arrays[name], arrays[partner] = np.zeros((0, n)), np.zeros((0,))
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    dtype = jnp.result_type(*arrays.values(), jnp.float32)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise validate.BadValue("dtype", str(dtype), "Q, q, G, h, A, b must be real")
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    m, p = arrays["h"].shape[0] if arrays["h"].ndim == 1 else -1, arrays["b"].shape[0] if arrays["b"].ndim == 1 else -1
    want = {"Q": (n, n), "G": (m, n), "h": (m,), "A": (p, n), "b": (p,)}
    for name, shape in want.items():
        if tuple(arrays[name].shape) != shape or -1 in shape:
            raise validate.BadValue(
                f"{name}.shape", tuple(arrays[name].shape),
                f"it must be {shape} for n = len(q) = {n}, m = len(h), p = len(b) "
                "(Q: (n, n), G: (m, n), h: (m,), A: (p, n), b: (p,))")
    return tuple(arrays[k] for k in ("Q", "q", "G", "h", "A", "b"))


# --------------------------------------------------------------------------- the solution map


def _classify(G, h, x, z, w, rtol):
    """Active-set weights ``a`` (1 on ``S``, ``w`` on ``W``, 0 off) and the masks ``E = S u W``, ``S``."""
    s = h - G @ x
    row = 1.0 + jnp.abs(h) + jnp.abs(G) @ jnp.abs(x)
    E = s <= rtol * row
    S = E & (z > rtol * (1.0 + jnp.max(jnp.abs(z), initial=0.0)))
    a = jnp.where(S, 1.0, jnp.where(E, w, 0.0)).astype(x.dtype)
    return a, E, S


def _invertibility(Q, G, A, E, S, rtol):
    """``(rank_ok, pd_ok, sigma_ratio, hessian_ratio)`` of the implicit function theorem's hypothesis.

    ``sigma_ratio = sigma_k / sigma_1`` of ``[A; G_E]`` (``k`` its number of rows; 0 when ``k > n``)
    and ``hessian_ratio = lambda_min(N^T Q N) / ||Q||_F`` with ``N`` an orthonormal basis of the
    null space of ``[A; G_S]`` (from the eigenvectors of ``C_S^T C_S`` with the ``n - rank``
    smallest eigenvalues; the rank is ``p + |S|`` once ``[A; G_E]`` passed, ``S`` being in ``E``).
    """
    n, p = Q.shape[0], A.shape[0]
    dt = Q.dtype
    tiny = jnp.finfo(dt).tiny
    if p + G.shape[0] == 0:
        sigma_ratio, rank_ok = jnp.asarray(1.0, dt), jnp.asarray(True)
        Z = jnp.eye(n, dtype=dt)
        keep = jnp.ones(n, dt)
    else:
        C_E = jnp.concatenate([A, jnp.where(E[:, None], G, 0.0)])
        sig = _svdvals(C_E)
        k = p + jnp.sum(E)
        kth = sig[jnp.clip(k - 1, 0, sig.shape[0] - 1)]
        sigma_ratio = jnp.where(k == 0, 1.0, jnp.where(k > n, 0.0, kth / jnp.maximum(sig[0], tiny)))
        rank_ok = sigma_ratio > rtol
        C_S = jnp.concatenate([A, jnp.where(S[:, None], G, 0.0)])
        _, V = _eigh(C_S.T @ C_S)  # ascending: the null space comes first
        keep = (jnp.arange(n) < n - (p + jnp.sum(S))).astype(dt)
        Z = V * keep
    nq = jnp.linalg.norm(Q)
    c = jnp.where(nq > 0, nq, 1.0)
    M = Z.T @ Q @ Z + c * jnp.diag(1.0 - keep)
    hessian_ratio = _eigvalsh(0.5 * (M + M.T))[0] / c
    return rank_ok, hessian_ratio > rtol, sigma_ratio, hessian_ratio


def _qp_primal(Q, q, G, h, A, b, w, cfg: QPSolver):
    dt = q.dtype
    tols = cfg.resolved(dt)
    Q = 0.5 * (Q + Q.T)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in (Q, q, G, h, A, b)]))
    # Non-finite data: solve a harmless QP instead and report the code (no NaN propagation into while loops).
    Q, q, G, h, A, b = (jnp.where(finite, v, 0.0) for v in (Q, q, G, h, A, b))
    lam_min = _eigvalsh(Q)[0] if Q.shape[0] else jnp.asarray(0.0, dt)
    psd = lam_min >= -tols["psd_rtol"] * jnp.linalg.norm(Q)

    st = qp_ipm.initial_point(Q, q, G, h, A, b)
    st = qp_ipm.interior_point(Q, q, G, h, A, b, st, tols["tol"], cfg.max_steps)
    xp, yp, zp, polished, rounds = qp_ipm.polish(Q, q, G, h, A, b, st.z > st.s, tols["polish_rtol"],
                                                 cfg.polish_rounds)
    x, y, z = (jnp.where(polished, u, v) for u, v in ((xp, st.x), (yp, st.y), (zp, st.z)))
    converged = polished | (st.res <= tols["tol"])
    infeasible, unbounded = qp_ipm.certificates(Q, q, G, h, A, b, st, tols["polish_rtol"] ** 0.5)

    a, E, S = _classify(G, h, x, z, w, tols["active_rtol"])
    result = result_where(~finite, RESULTS.nonfinite)
    result = result_where(~psd, RESULTS.not_positive_semidefinite, result)
    result = result_where(~converged & infeasible, RESULTS.infeasible, result)
    result = result_where(~converged & unbounded, RESULTS.unbounded, result)
    result = result_where(~converged, RESULTS.max_steps_reached, result)
    result = result_where(~jnp.all(jnp.isfinite(x)), RESULTS.nonfinite, result)
    stats: dict[str, Any] = {
        "num_steps": st.steps,
        "residual": st.res,
        "polished": polished,
        "polish_rounds": rounds,
        "num_active": jnp.sum(E).astype(jnp.int32),
        "num_weakly_active": jnp.sum(E & ~S).astype(jnp.int32),
    }
    if cfg.check:
        rank_ok, pd_ok, sig, hess = _invertibility(Q, G, A, E, S, tols["rank_rtol"])
        result = result_where(~rank_ok, RESULTS.rank_deficient, result)
        result = result_where(~pd_ok, RESULTS.singular, result)
        stats["active_sigma_ratio"] = sig
        stats["reduced_hessian_ratio"] = hess
    return x, y, z, a, result, stats


def _zero_tangent(v: Array):
    if jnp.issubdtype(v.dtype, jnp.inexact):
        return jnp.zeros_like(v)
    return np.zeros(np.shape(v), dtype=jax.dtypes.float0)


_qp_map = jax.custom_jvp(_qp_primal, nondiff_argnums=(7,))


@_qp_map.defjvp
def _qp_jvp(cfg, primals, tangents):
    Q, q, G, h, A, b, w = primals
    dQ, dq, dG, dh, dA, db, _ = tangents
    out = _qp_map(Q, q, G, h, A, b, w, cfg)
    x, y, z, a = out[:4]
    n, p = x.shape[0], y.shape[0]
    Qs = 0.5 * (Q + Q.T)
    dQs = 0.5 * (dQ + dQ.T)
    rhs = jnp.concatenate([
        -(dQs @ x + dq + dA.T @ y + dG.T @ z),
        db - dA @ x,
        a * (dh - dG @ x),
    ])
    d = lu_solve(qp_ipm.kkt_matrix(Qs, G, A, a), rhs)
    tangent_out = (d[:n], d[n:n + p], d[n + p:]) + tuple(jax.tree.map(_zero_tangent, out[3:]))
    return out, tangent_out


@eqx.filter_jit
def _core(Q, q, G, h, A, b, w, cfg):
    return _qp_map(Q, q, G, h, A, b, w, cfg)


def solve(Q, q, G=None, h=None, A=None, b=None, *, weak_weight: float | Array = 0.0,
          solver: QPSolver = QPSolver(), on_failure: str = "raise") -> Solution:
    """Solve the QP; differentiable (implicitly) in ``Q, q, G, h, A, b``.

    Args:
        Q, q: objective ``1/2 x^T Q x + q^T x`` (``(n, n)``, ``(n,)``).
        G, h: ``G x <= h`` (``(m, n)``, ``(m,)``), or ``None``.
        A, b: ``A x = b`` (``(p, n)``, ``(p,)``), or ``None``.
        weak_weight: ``w in [0, 1]``, the selection on weakly active constraints (module docstring).
        solver: :class:`QPSolver` settings.
        on_failure: ``"raise"``, ``"warn"`` or ``"ignore"`` (:mod:`nsopt.failures`).

    Returns:
        ``Solution(value=QPPoint(x, y, z), result, stats)`` with ``stats``: ``num_steps``,
        ``residual`` (interior point), ``polished``, ``num_active``, ``num_weakly_active``,
        ``active_sigma_ratio``, ``reduced_hessian_ratio``.
    """
    check_on_failure(on_failure)
    if not isinstance(solver, QPSolver):
        raise validate.BadValue("solver", solver, "it must be a QPSolver")
    validate.number("weak_weight", weak_weight, 0.0, 1.0)
    Q, q, G, h, A, b = _prepare(Q, q, G, h, A, b)
    w = jnp.asarray(weak_weight, q.dtype)
    x, y, z, _, result, stats = _core(Q, q, G, h, A, b, w, solver)
    sol = Solution(QPPoint(x, y, z), result, stats)
    return handle(sol, on_failure, SOLVER, MESSAGES)


def solution(Q, q, G=None, h=None, A=None, b=None, *, weak_weight: float | Array = 0.0,
             solver: QPSolver = QPSolver(), on_failure: str = "raise") -> Array:
    """``x*`` of :func:`solve` (the primal solution only)."""
    return solve(Q, q, G, h, A, b, weak_weight=weak_weight, solver=solver,
                 on_failure=on_failure).value.x
