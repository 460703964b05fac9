"""Linear solves ``B t = b`` for implicit derivatives, with the invertibility check.

``B = d_x F(theta, x*)`` is given as a linear map on flat vectors.  Two families:

- **dense** (small systems): ``B`` is materialized (``m`` Jacobian-vector
  products), its singular values are checked, then ``t = B^{-1} b`` by LU
  (``singular="raise"``) or ``t = B^+ b`` (``singular="pinv"``).  Everything is
  plain linear algebra with constant matrices, so JAX transposes it (reverse
  mode) and differentiates it (higher order) by itself.
- **iterative** (large systems, matrix-free): CG when ``B`` is declared
  symmetric (definite, either sign), GMRES or BiCGStab otherwise (``jax.scipy``),
  wrapped in ``jax.lax.custom_linear_solve`` so reverse mode solves ``B^T u = v``
  with the same method.  ``singular="pinv"`` runs CG on the normal equations
  ``B^T B t = B^T b`` from ``t = 0``, which converges to the least-squares
  solution of minimal norm, ``B^+ b``.  A solve whose true residual
  ``||B t - b||`` exceeds ``check_factor * max(rtol ||b||, atol)`` (or is not
  finite) is a failure.

Failures follow :mod:`nsopt.failures`: ``on_failure="raise"`` (default) raises
:class:`~nsopt.failures.SolverError` eagerly and a runtime error under ``jit``
(:func:`equinox.error_if`), ``"warn"`` emits a :class:`~nsopt.failures.SolverWarning`,
``"ignore"`` returns the (then meaningless) solve.  Codes: ``RESULTS.singular`` (dense
check), ``RESULTS.nonfinite`` (``B`` or ``t`` not finite), ``RESULTS.max_steps_reached``
(an iterative solve above its residual bound).  The solves return arrays (they sit inside
derivative rules); :func:`dense_check` returns the dense check as a
:class:`~nsopt.failures.Solution`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.sparse.linalg as jsl
import numpy as np
from jax import Array
from jax.custom_batching import custom_vmap

from nsopt import failures
from nsopt.failures import RESULTS, Solution

__all__ = [
    "MESSAGES",
    "METHODS",
    "SINGULAR_POLICIES",
    "LinearSolver",
    "as_linear_solver",
    "default_rcond",
    "dense_check",
    "dense_solve",
    "iterative_solve",
    "lu_solve",
    "materialize",
    "one_matrix_at_a_time",
]

METHODS = ("auto", "dense", "cg", "gmres", "bicgstab")
SINGULAR_POLICIES = ("raise", "pinv")

SOLVER = "nsopt.implicit"

#: The one message of each failure of the linear solves (shape of :func:`nsopt.failures.message`).
MESSAGES: dict[int, str] = {
    RESULTS.singular: failures.message(
        SOLVER, RESULTS.singular,
        "B = d_x F(theta, x*) has sigma_min(B) <= rcond * sigma_max(B): the invertibility "
        "condition of the nonsmooth implicit function theorem fails, arXiv 2106.04350, Thm. 1, "
        "so -B^{-1} A is not a conservative Jacobian of the solution map",
        "Inspect B with nsopt.implicit.diagnose(F, theta, x); singular='pinv' gives the "
        "least-squares derivative, whose gradient dynamics can be pathological (cycles, Lorenz)"),
    RESULTS.nonfinite: failures.message(
        SOLVER, RESULTS.nonfinite,
        "B = d_x F(theta, x*) or the solution t of B t = b; a Krylov method breaks down when "
        "the invertibility condition of the nonsmooth implicit function theorem fails, "
        "arXiv 2106.04350, Thm. 1",
        "Check the forward solution x* and F for NaN/inf, or B with nsopt.implicit.diagnose"),
    RESULTS.max_steps_reached: failures.message(
        SOLVER, RESULTS.max_steps_reached,
        "iterative solve of B t = b: ||B t - b|| > check_factor * max(rtol ||b||, atol); the "
        "invertibility condition of the nonsmooth implicit function theorem, arXiv 2106.04350, "
        "Thm. 1, may fail",
        "Raise LinearSolver.max_steps or restart, loosen rtol, or check B with "
        "nsopt.implicit.diagnose(F, theta, x)"),
}


class LinearSolver(eqx.Module):
    """How implicit derivatives solve ``B t = b`` (immutable configuration).

    Attributes:
        method: ``"auto"`` (dense when ``m <= dense_max_size``, else CG if
            ``symmetric`` else GMRES), ``"dense"``, ``"cg"``, ``"gmres"``, ``"bicgstab"``.
        rtol, atol: iterative tolerances ``||B t - b|| <= max(rtol ||b||, atol)``;
            ``rtol=None`` means ``sqrt(eps)`` of the dtype.
        max_steps: iteration cap of the iterative methods (``None``: ``10 m``).
        restart: GMRES restart length.
        dense_max_size: largest ``m`` solved densely by ``"auto"``.
        rcond: ``B`` is numerically singular when ``sigma_min <= rcond * sigma_max``
            (dense check, and the pseudo-inverse cut-off); ``None`` means ``10 m eps``.
        symmetric: declare ``B`` symmetric definite (positive or negative): ``"auto"``
            then picks CG for large systems (``"cg"`` always assumes it).
        check_factor: slack of the iterative residual check.
        on_failure: ``"raise"``, ``"warn"`` or ``"ignore"`` a failed solve (:mod:`nsopt.failures`).
    """

    method: str = eqx.field(static=True, default="auto")
    rtol: float | None = eqx.field(static=True, default=None)
    atol: float = eqx.field(static=True, default=0.0)
    max_steps: int | None = eqx.field(static=True, default=None)
    restart: int = eqx.field(static=True, default=20)
    dense_max_size: int = eqx.field(static=True, default=256)
    rcond: float | None = eqx.field(static=True, default=None)
    symmetric: bool = eqx.field(static=True, default=False)
    check_factor: float = eqx.field(static=True, default=10.0)
    on_failure: str = eqx.field(static=True, default="raise")

    def __check_init__(self):
        failures.check_on_failure(self.on_failure)
        if self.method not in METHODS:
            raise ValueError(
                f"linear_solve method must be one of {METHODS}, got {self.method!r}"
            )
        for name in ("rtol", "rcond"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"LinearSolver.{name} must be > 0 or None, got {v!r}")
        if not self.atol >= 0:
            raise ValueError(f"LinearSolver.atol must be >= 0, got {self.atol!r}")
        if self.max_steps is not None and not self.max_steps >= 1:
            raise ValueError(f"LinearSolver.max_steps must be >= 1 or None, got {self.max_steps!r}")
        if not self.restart >= 1:
            raise ValueError(f"LinearSolver.restart must be >= 1, got {self.restart!r}")
        if not self.dense_max_size >= 0:
            raise ValueError(
                f"LinearSolver.dense_max_size must be >= 0, got {self.dense_max_size!r}"
            )
        if not self.check_factor >= 1:
            raise ValueError(
                f"LinearSolver.check_factor must be >= 1, got {self.check_factor!r}"
            )

    def resolve(self, m: int) -> str:
        """The concrete method for an ``m x m`` system."""
        if self.method != "auto":
            return self.method
        if m <= self.dense_max_size:
            return "dense"
        return "cg" if self.symmetric else "gmres"


def as_linear_solver(linear_solve: str | LinearSolver) -> LinearSolver:
    """Accept a method name or a :class:`LinearSolver`."""
    if isinstance(linear_solve, LinearSolver):
        return linear_solve
    if isinstance(linear_solve, str):
        return LinearSolver(method=linear_solve)
    raise TypeError(
        f"linear_solve must be one of {METHODS} or an nsopt.implicit.LinearSolver, "
        f"got {linear_solve!r}"
    )


def check_singular_policy(singular: str) -> Literal["raise", "pinv"]:
    if singular not in SINGULAR_POLICIES:
        raise ValueError(f"singular must be one of {SINGULAR_POLICIES}, got {singular!r}")
    return singular  # type: ignore[return-value]


def default_rcond(m: int, dtype) -> float:
    """``10 m eps``: the relative singular-value threshold of the dense check."""
    return 10.0 * max(m, 1) * float(np.finfo(dtype).eps)


def materialize(matvec: Callable[[Array], Array], m: int, dtype) -> Array:
    """The ``m x m`` matrix of a linear map on flat vectors (one JVP per column)."""
    return jax.vmap(matvec, out_axes=1)(jnp.eye(m, dtype=dtype))


def one_matrix_at_a_time(f: Callable[..., Array]) -> Callable[..., Array]:
    """``f`` (a LAPACK-backed function of single matrices, array arguments only) mapped over a batch one matrix at a
    time on CPU, instead of jaxlib's batched kernel (not differentiable: use it for primal values).

    jaxlib's batched LAPACK kernels split a large batch into tasks on XLA:CPU's intra-op thread
    pool and block until those finish.  When every pool thread holds such a blocked kernel (two
    solves running at once on a 2-core machine, or a batch split over as many CPU devices as
    cores) nothing runs the tasks and the program never returns.  A single matrix runs inline.
    The result is also the one of the unbatched call, bit for bit, whatever the batch; the time
    is the batched kernel's (LAPACK's work dominates; measured on 2048 24x24 solves).  Other
    platforms keep the batched kernel.
    """
    mapped = custom_vmap(f)

    @mapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        if jax.default_backend() != "cpu":
            out = jax.vmap(f, in_axes=[0 if b else None for b in in_batched])(*args)
            return out, jax.tree.map(lambda _: True, out)
        args = tuple(a if b else jnp.broadcast_to(a, (axis_size, *jnp.shape(a)))
                     for a, b in zip(args, in_batched))
        out = jax.lax.map(lambda xs: mapped(*xs), args)
        return out, jax.tree.map(lambda _: True, out)

    return mapped


_svdvals = one_matrix_at_a_time(lambda a: jnp.linalg.svdvals(a))
_lapack_solve = one_matrix_at_a_time(lambda a, b: jnp.linalg.solve(a, b))


def singular_values(B: Array) -> Array:
    """Singular values of ``B`` (descending), never differentiated."""
    return _svdvals(jax.lax.stop_gradient(B))


def lu_solve(B: Array, b: Array) -> Array:
    """``B^{-1} b`` by LU (``b`` may have trailing columns), one matrix at a time under ``vmap`` on
    CPU (:func:`one_matrix_at_a_time`); differentiable in ``B`` and ``b`` to any order and
    transposable, through ``lax.custom_linear_solve`` (``dt = B^{-1}(db - dB t)``)."""
    return jax.lax.custom_linear_solve(
        lambda x: B @ x, b,
        solve=lambda _, r: _lapack_solve(B, r),
        transpose_solve=lambda _, r: _lapack_solve(B.T, r),
    )


def dense_check(B: Array, singular: str, rcond: float | None) -> Solution:
    """The dense check of ``B``: ``RESULTS.nonfinite``, or ``RESULTS.singular`` when
    ``sigma_min(B) <= rcond * sigma_max(B)`` and ``singular="raise"`` (``"pinv"`` accepts it).

    ``value`` is ``B``; ``stats`` holds ``sigma_min`` and ``sigma_max`` (``"raise"`` only).
    """
    m = B.shape[0]
    rc = default_rcond(m, B.dtype) if rcond is None else rcond
    result = failures.result_where(~jnp.all(jnp.isfinite(jax.lax.stop_gradient(B))), RESULTS.nonfinite)
    stats = {}
    if singular != "pinv":
        s = singular_values(jnp.where(result == RESULTS.successful, B, jnp.zeros_like(B)))
        stats = {"sigma_min": s[-1], "sigma_max": s[0]}
        result = failures.result_where(~(s[-1] > rc * s[0]), RESULTS.singular, result)
    return Solution(B, result, stats)


@functools.partial(jax.jit, static_argnames=("singular", "rcond", "on_failure"))
def dense_solve(B: Array, b: Array, singular: str, rcond: float | None,
                on_failure: str = "raise") -> Array:
    """``B^{-1} b`` after the invertibility check, or ``B^+ b`` (``singular="pinv"``).

    ``b`` may have trailing columns.  Linear in ``b`` with constant matrices, so
    transposable (reverse mode) and differentiable in ``B`` (higher order).  The check
    (:func:`dense_check`) acts on ``B`` by ``on_failure``.  Jitted, so eager callers compile
    one kernel per shape instead of one per primitive.
    """
    m = B.shape[0]
    rc = default_rcond(m, B.dtype) if rcond is None else rcond
    B = failures.handle(dense_check(B, singular, rcond), on_failure, SOLVER, MESSAGES).value
    if singular == "pinv":
        return jnp.linalg.pinv(B, rtol=rc) @ b
    return lu_solve(B, b)


def _rtol(cfg: LinearSolver, dtype) -> float:
    return float(np.sqrt(np.finfo(dtype).eps)) if cfg.rtol is None else cfg.rtol


def _krylov(cfg: LinearSolver, method: str, singular: str, m: int):
    """A ``solve(matvec, b)`` for ``custom_linear_solve`` (also used for the transpose)."""
    maxiter = 10 * m if cfg.max_steps is None else cfg.max_steps

    def solve(matvec: Callable[[Array], Array], b: Array) -> Array:
        # The solve is linear in b: run the Krylov method on b / ||b|| and rescale, so a tiny
        # right-hand side (e.g. 1e-8 in float32, below the methods' absolute floors) is not
        # mistaken for zero.
        norm = jnp.linalg.norm(b)
        unit = jnp.where(norm > 0, norm, jnp.ones_like(norm))
        return _unit_solve(matvec, b / unit) * unit

    def _unit_solve(matvec: Callable[[Array], Array], b: Array) -> Array:
        rtol = _rtol(cfg, b.dtype)
        if singular == "pinv":
            rmatvec = jax.linear_transpose(matvec, b)

            def normal(v):
                return rmatvec(matvec(v))[0]

            rhs = rmatvec(b)[0]
            t, _ = jsl.cg(normal, rhs, tol=rtol, atol=cfg.atol, maxiter=maxiter)
            # Least-squares: the residual of the normal equations is what must vanish.
            res = jnp.linalg.norm(normal(t) - rhs)
            bound = cfg.check_factor * jnp.maximum(rtol * jnp.linalg.norm(rhs), cfg.atol)
        else:
            if method == "cg":
                t, _ = jsl.cg(matvec, b, tol=rtol, atol=cfg.atol, maxiter=maxiter)
            elif method == "gmres":
                t, _ = jsl.gmres(
                    matvec, b, tol=rtol, atol=cfg.atol, restart=min(cfg.restart, m),
                    maxiter=max(1, maxiter // max(1, min(cfg.restart, m))),
                )
            else:  # bicgstab
                t, _ = jsl.bicgstab(matvec, b, tol=rtol, atol=cfg.atol, maxiter=maxiter)
            res = jnp.linalg.norm(matvec(t) - b)
            bound = cfg.check_factor * jnp.maximum(rtol * jnp.linalg.norm(b), cfg.atol)
        result = failures.result_where(~jnp.all(jnp.isfinite(t)), RESULTS.nonfinite)
        result = failures.result_where(~(res <= bound), RESULTS.max_steps_reached, result)
        sol = Solution(t, result, {"residual": res})
        return failures.handle(sol, cfg.on_failure, SOLVER, MESSAGES).value

    return solve


def iterative_solve(
    matvec: Callable[[Array], Array], b: Array, cfg: LinearSolver, method: str, singular: str
) -> Array:
    """``B^{-1} b`` (or ``B^+ b``) matrix-free; transposable through ``custom_linear_solve``."""
    m = b.shape[0]
    solve = _krylov(cfg, method, singular, m)
    symmetric = method == "cg" and singular != "pinv"
    return jax.lax.custom_linear_solve(
        matvec, b, solve=solve, transpose_solve=None if symmetric else solve, symmetric=symmetric
    )
