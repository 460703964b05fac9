"""Solution maps of nonsmooth equations, differentiated by the implicit function theorem.

``x_star = root(F, solve)`` returns ``x_star(theta, *args) = solve(theta, *args)``,
a point with ``F(theta, x_star, *args) ~ 0``, whose derivatives are those of the
nonsmooth implicit function theorem (Bolte, Le, Pauwels, Silveti-Falls,
arXiv 2106.04350, Thm. 1; ``docs/theory.md``): with ``[A B]`` the autodiff
(conservative) Jacobian of ``F`` at ``(theta, x*)``,

    J = -B^{-1} A,     forward:  B t = -A dtheta,     reverse:  B^T u = v,  v^T J = -u^T A.

It is a ``jax.custom_jvp``: the JVP rule solves ``B t = -A dtheta`` with a
linear solve that JAX can transpose (``nsopt.implicit.linear``), so forward
mode (``jvp``, ``jacfwd``) and reverse mode (``grad``, ``vjp``, ``jacrev``) both
work, and so do ``jit`` and ``vmap``.  The forward ``solve`` is never
differentiated through.  The rule calls ``x_star`` itself, so higher-order
derivatives (``jax.hessian``) are implicit too when ``F`` is twice
differentiable.

``args`` are extra arguments of ``F`` and ``solve`` (data, warm starts): their
array leaves are traced and differentiated by the same formula
(``-B^{-1} d_args F``; zero when ``F`` ignores them, e.g. a warm start), with no
cost when they are not differentiated; their other leaves (Python numbers,
strings, callables) are static.

Failures (a singular ``B`` with ``singular="raise"``, a failed iterative solve, a residual
above ``residual_tol``) follow :mod:`nsopt.failures`: they are detected when the derivative
is computed and handled by ``on_failure`` (``"raise"``: :class:`~nsopt.failures.SolverError`
eagerly, a runtime error under ``jit``; ``"warn"``: :class:`~nsopt.failures.SolverWarning`;
``"ignore"``).  ``x_star(theta)`` and its derivatives are arrays (a ``custom_jvp``);
:meth:`ImplicitFunction.solve` is the variant returning a :class:`~nsopt.failures.Solution`
(the value, with the residual check and the dense invertibility check of ``B``).

``solve`` may be plain NumPy / scikit-learn code when ``x_star`` runs outside
``jit`` and ``vmap`` (also under eager ``grad``/``jacfwd``: it then receives
concrete arrays).  Inside ``jit`` or ``vmap`` it must be traceable JAX code, or
host code wrapped by :func:`callback_solve` (``jax.pure_callback``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array
from jax.custom_derivatives import SymbolicZero
from jax.flatten_util import ravel_pytree

from nsopt import failures
from nsopt.failures import RESULTS, Solution
from nsopt.implicit.linear import (
    MESSAGES,
    SOLVER,
    LinearSolver,
    as_linear_solver,
    check_singular_policy,
    dense_check,
    dense_solve,
    iterative_solve,
)

PyTree = Any
Residual = Callable[..., PyTree]
Solve = Callable[..., PyTree]

__all__ = ["FixedPointResidual", "ImplicitFunction", "callback_solve", "fixed_point", "root"]

RESIDUAL_MESSAGE = failures.message(
    SOLVER, RESULTS.residual_too_large,
    "solve(theta, *args) returned x with ||F(theta, x, *args)||_2 > residual_tol; the implicit "
    "derivative -B^{-1} A is only valid at a solution of F = 0",
    "Tighten the forward solver or raise residual_tol")


class ImplicitFunction(eqx.Module):
    """``x_star(theta, *args) = solve(theta, *args)`` with implicit derivatives ``-B^{-1} A``.

    Build it with :func:`root` or :func:`fixed_point`.  ``diagnose`` reports the
    conditioning of ``B`` at the solution (see :func:`nsopt.implicit.diagnose`).
    """

    F: Residual
    solve: Solve
    linear_solver: LinearSolver
    singular: str = eqx.field(static=True)
    residual_tol: float | None = eqx.field(static=True, default=None)

    @property
    def on_failure(self) -> str:
        """The failure switch (held by the linear solver: one switch for the whole derivative)."""
        return self.linear_solver.on_failure

    def __call__(self, theta: PyTree, *args: Any) -> PyTree:
        return _implicit_call(self, theta, args)

    def solution(self, theta: PyTree, *args: Any) -> Solution:
        """``x_star(theta, *args)`` as a :class:`~nsopt.failures.Solution` (not differentiated).

        ``result``: ``nonfinite`` (``F(theta, x)`` not finite), ``residual_too_large``
        (``||F|| > residual_tol``, when given), ``singular`` (dense check of ``B = d_x F``, when
        ``singular="raise"``; ``B`` is materialized: meant for small ``x``); ``stats``:
        ``residual = ||F(theta, x)||_2``.  ``on_failure`` is applied.
        """
        theta, args = jax.lax.stop_gradient((theta, args))
        x = _run_solve(self.solve, theta, args)
        return failures.handle(_checked(self, theta, x, args), self.on_failure, SOLVER,
                               {**MESSAGES, RESULTS.residual_too_large: RESIDUAL_MESSAGE})

    def diagnose(self, theta: PyTree, *args: Any, x: PyTree | None = None):
        """:func:`nsopt.implicit.diagnose` at ``(theta, x)``, ``x = x_star(theta, *args)`` by default."""
        from nsopt.implicit.diagnostics import diagnose

        if x is None:
            x = jax.lax.stop_gradient(self(theta, *args))
        return diagnose(self.F, theta, x, *args, rcond=self.linear_solver.rcond)


class FixedPointResidual(eqx.Module):
    """``F(theta, x, *args) = T(theta, x, *args) - x``."""

    T: Callable[..., PyTree]

    def __call__(self, theta: PyTree, x: PyTree, *args: Any) -> PyTree:
        return jax.tree.map(lambda u, v: u - v, self.T(theta, x, *args), x)


def root(
    F: Residual,
    solve: Solve,
    *,
    linear_solve: str | LinearSolver = "auto",
    singular: str = "raise",
    residual_tol: float | None = None,
    on_failure: str | None = None,
) -> ImplicitFunction:
    """The solution map ``theta -> x*`` of ``F(theta, x*, *args) = 0``, differentiable implicitly.

    Args:
        F: residual ``F(theta, x, *args)``, a pytree shaped like ``x``.
        solve: forward solver ``solve(theta, *args) -> x`` (never differentiated).
        linear_solve: ``"auto"``, ``"dense"``, ``"cg"``, ``"gmres"``, ``"bicgstab"`` or a
            :class:`LinearSolver` (tolerances, ``rcond``, ``symmetric``).
        singular: ``"raise"``: a numerically singular ``B`` is a failure
            (``RESULTS.singular``: the invertibility condition of the nonsmooth implicit
            function theorem fails), handled by ``on_failure``.  ``"pinv"``: use the
            least-squares solution ``-B^+ A`` instead, a different derivative (not a
            failure policy); it is *not* a conservative Jacobian in general and is what
            produces pathological gradient dynamics (cycles, Lorenz; ``docs/theory.md``).
        residual_tol: if given, ``||F(theta, x*)||_2 > residual_tol`` is a failure
            (``RESULTS.residual_too_large``) of the derivative.
        on_failure: ``"raise"`` (default), ``"warn"`` or ``"ignore"`` a failure
            (:mod:`nsopt.failures`); ``None`` keeps the one of a given :class:`LinearSolver`.

    Returns:
        ``x_star(theta, *args)``, an :class:`ImplicitFunction`.
    """
    if not callable(F):
        raise TypeError(f"root: F must be callable F(theta, x, *args) -> residual, got {F!r}")
    if not callable(solve):
        raise TypeError(f"root: solve must be callable solve(theta, *args) -> x, got {solve!r}")
    if residual_tol is not None and not residual_tol > 0:
        raise ValueError(f"residual_tol must be > 0 or None, got {residual_tol!r}")
    linear_solver = as_linear_solver(linear_solve)
    if on_failure is not None:
        linear_solver = dataclasses.replace(linear_solver,
                                            on_failure=failures.check_on_failure(on_failure))
    return ImplicitFunction(
        F=F,
        solve=solve,
        linear_solver=linear_solver,
        singular=check_singular_policy(singular),
        residual_tol=residual_tol,
    )


def fixed_point(T: Callable[..., PyTree], solve: Solve, **options: Any) -> ImplicitFunction:
    """``x* = T(theta, x*, *args)`` as :func:`root` of ``F = T - x`` (``B = d_x T - I``); ``options``
    are :func:`root`'s (``linear_solve``, ``singular``, ``residual_tol``, ``on_failure``).

    When ``T`` is a contraction in ``x`` (e.g. a forward-backward step with a
    small enough step, :mod:`nsopt.implicit.forward_backward`), ``B`` is invertible automatically.
    """
    if not callable(T):
        raise TypeError(f"fixed_point: T must be callable T(theta, x, *args) -> x, got {T!r}")
    return root(FixedPointResidual(T), solve, **options)


def callback_solve(
    fn: Callable[..., Any], result_shape: PyTree | Callable[..., PyTree]
) -> Solve:
    """Wrap a host (NumPy / scikit-learn) solver so ``x_star`` works under ``jit``/``vmap``.

    ``result_shape`` is a pytree of ``jax.ShapeDtypeStruct`` (or arrays) shaped
    like ``x``, or a function ``(theta, *args) ->`` such a pytree.  Batches under
    ``vmap`` are solved one after the other (``vmap_method="sequential"``).
    """

    def solve(theta: PyTree, *args: Any) -> PyTree:
        shape = result_shape(theta, *args) if callable(result_shape) else result_shape
        shape = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), shape)
        return jax.pure_callback(fn, shape, theta, *args, vmap_method="sequential")

    return solve


# --------------------------------------------------------------------------- internals


def _is_symbolic_zero(t: Any) -> bool:
    return isinstance(t, SymbolicZero)


def _run_solve(solve: Solve, theta: PyTree, args: tuple) -> PyTree:
    try:
        x = solve(theta, *args)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError) as e:
        raise TypeError(
            "nsopt.implicit: solve(theta, *args) received traced arrays (x_star is called "
            "inside jit, vmap or another transformation) and tried to convert them to NumPy. "
            "Inside transformations solve must be traceable JAX code, or a host function "
            "wrapped with nsopt.implicit.callback_solve(fn, result_shape)."
        ) from e
    return jax.tree.map(jnp.asarray, x)


def _check_residual_shape(F: Residual, theta: PyTree, x: PyTree, args: tuple) -> None:
    out = jax.eval_shape(lambda th, xx: F(th, xx, *args), theta, x)
    xs, os_ = jax.tree.structure(x), jax.tree.structure(out)
    shapes_x = [jnp.shape(a) for a in jax.tree.leaves(x)]
    shapes_o = [o.shape for o in jax.tree.leaves(out)]
    if xs != os_ or shapes_x != shapes_o:
        raise ValueError(
            "nsopt.implicit: F(theta, x, *args) must return a residual shaped like x "
            f"(B = d_x F must be square): x has structure {xs} and shapes {shapes_x}, "
            f"F returned structure {os_} and shapes {shapes_o}"
        )


@eqx.filter_jit
def _checked(fun: ImplicitFunction, theta: PyTree, x: PyTree, args: tuple) -> Solution:
    """The checks of :meth:`ImplicitFunction.solution` at ``x`` (nothing handled here)."""
    x_flat, unravel = ravel_pytree(x)

    def F_x(xf: Array) -> Array:
        return ravel_pytree(fun.F(theta, unravel(xf), *args))[0].astype(x_flat.dtype)

    r = F_x(x_flat)
    res = jnp.linalg.norm(r)
    result = failures.result_where(~jnp.all(jnp.isfinite(r)), RESULTS.nonfinite)
    if fun.residual_tol is not None:
        result = failures.result_where(~(res <= fun.residual_tol), RESULTS.residual_too_large, result)
    stats = {"residual": res}
    if fun.singular == "raise":
        check = dense_check(jax.jacfwd(F_x)(x_flat), "raise", fun.linear_solver.rcond)
        result = failures.result_where(check.result != RESULTS.successful, check.result, result)
        stats.update(check.stats)
    return Solution(x, result, stats)


def _implicit_call(fun: ImplicitFunction, theta: PyTree, args: tuple) -> PyTree:
    dyn, static = eqx.partition(args, eqx.is_array)

    @jax.custom_jvp
    def x_star(theta, dyn):
        return _run_solve(fun.solve, theta, eqx.combine(dyn, static))

    def rule(primals, tangents):
        theta, dyn = primals
        x = x_star(theta, dyn)
        return x, _implicit_tangent(fun, theta, dyn, static, x, tangents)

    x_star.defjvp(rule, symbolic_zeros=True)
    return x_star(theta, dyn)


def _implicit_tangent(
    fun: ImplicitFunction, theta: PyTree, dyn: PyTree, static: PyTree, x: PyTree, tangents
) -> PyTree:
    """``t = -B^{-1} (A_theta dtheta + A_args dargs)`` at the solution ``x``."""
    _check_residual_shape(fun.F, theta, x, eqx.combine(dyn, static))
    leaves_p, treedef = jax.tree.flatten((theta, dyn))
    leaves_t = jax.tree.leaves(tangents, is_leaf=_is_symbolic_zero)
    if len(leaves_t) != len(leaves_p):  # pragma: no cover - JAX guarantees matching trees
        raise RuntimeError("nsopt.implicit: tangent tree does not match the primal tree")
    idx = tuple(i for i, t in enumerate(leaves_t) if not _is_symbolic_zero(t))
    if not idx:  # nothing differentiated (symbolic zeros): no solve at all
        return jax.tree.map(jnp.zeros_like, x)
    leaves_p = [jnp.asarray(a) for a in leaves_p]
    diff_t = [jnp.asarray(leaves_t[i]) for i in idx]
    return _tangent_kernel(fun, treedef, idx, static, leaves_p, x, diff_t)


@eqx.filter_jit
def _tangent_kernel(fun, treedef, idx, static, leaves_p, x, diff_t):
    # One compiled kernel per (F, shapes): eager derivatives (e.g. with a NumPy solve)
    # do not pay one dispatch per primitive; under an outer jit it is inlined.
    x_flat, unravel = ravel_pytree(x)

    def F_flat(xf: Array, *diff: Array) -> Array:
        leaves = list(leaves_p)
        for i, d in zip(idx, diff):
            leaves[i] = d
        th, dy = jax.tree.unflatten(treedef, leaves)
        out = fun.F(th, unravel(xf), *eqx.combine(dy, static))
        return ravel_pytree(out)[0].astype(x_flat.dtype)

    diff_p = [leaves_p[i] for i in idx]
    # A dtheta: one JVP of F in the differentiated inputs, at fixed x.
    _, r = jax.jvp(lambda *d: F_flat(x_flat, *d), diff_p, diff_t)

    def F_x(xf: Array) -> Array:
        return F_flat(xf, *diff_p)

    cfg = fun.linear_solver
    if fun.residual_tol is not None:
        # The check is a primal factor of the right-hand side, gate = 1 (or an error): a primal value
        # the linear (and transposed) map needs, so it runs in forward and reverse mode, eager and
        # under jit.  Attached to x or to the tangent it would be dead code whenever F is affine in x.
        res = jnp.linalg.norm(jax.lax.stop_gradient(F_x(x_flat)))
        gate = Solution(jnp.ones((), r.dtype), failures.result_where(~(res <= fun.residual_tol),
                                                                      RESULTS.residual_too_large), {"residual": res})
        r = r * failures.handle(gate, cfg.on_failure, SOLVER, {RESULTS.residual_too_large: RESIDUAL_MESSAGE}).value
    m = x_flat.shape[0]
    method = cfg.resolve(m)
    if method == "dense":
        B = jax.jacfwd(F_x)(x_flat)
        t = dense_solve(B, -r, fun.singular, cfg.rcond, cfg.on_failure)
    else:
        _, B_mv = jax.linearize(F_x, x_flat)
        t = iterative_solve(B_mv, -r, cfg, method, fun.singular)
    return unravel(t)
