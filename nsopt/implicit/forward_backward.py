"""Solution maps of composite problems through the forward-backward fixed point (arXiv 2106.04350, §5).

    x^(theta) in argmin_x f_theta(x) + g_theta(x),   f beta-smooth, g with a prox,
    H(theta, x) = prox_{gamma g_theta}(x - gamma grad_x f_theta(x)),   x^ = H(theta, x^).

The forward pass runs proximal gradient (ISTA) or FISTA with adaptive restart
from a warm start and returns a :class:`~nsopt.failures.Solution` (``result`` is
``RESULTS.max_steps_reached`` when ``||H(y) - y|| <= tol (1 + ||x||)`` was not reached,
``RESULTS.nonfinite`` on NaN/inf; ``on_failure`` acts on it); the derivative is the
implicit one of the fixed point, ``-(d_x H - I)^{-1} d_theta H`` with the
conservative Jacobian of ``H`` given by autodiff through the prox (whose kink
choices are those of :mod:`nsopt.nonsmooth.prox`) and ``grad f`` (arXiv 2106.04350, §5).

If ``f`` (or ``g``) is ``alpha``-strongly convex and ``gamma in (0, 2 alpha /
(alpha + beta)^2)``, ``H`` is a contraction in ``x`` and the invertibility
condition holds automatically; :func:`contraction_check` reports this.
Without it the condition may still hold (e.g. the Lasso with ``A_E^T A_E`` of
full rank), which ``singular="raise"`` checks at each derivative.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import failures
from nsopt.failures import RESULTS, Solution
from nsopt.implicit.linear import LinearSolver, as_linear_solver, check_singular_policy
from nsopt.implicit.root import ImplicitFunction, fixed_point

PyTree = Any

__all__ = [
    "ContractionCheck",
    "ForwardBackward",
    "contraction_check",
    "forward_backward",
]

METHODS = ("fista", "ista")


class ContractionCheck(eqx.Module):
    """The sufficient condition ``0 < gamma < 2 alpha / (alpha + beta)^2`` (``docs/theory.md``).

    ``holds`` makes ``H`` a contraction in ``x`` (so ``B = d_x H - I`` invertible).
    """

    step: float = eqx.field(static=True)
    strong_convexity: float = eqx.field(static=True)
    smoothness: float = eqx.field(static=True)
    bound: float = eqx.field(static=True)
    holds: bool = eqx.field(static=True)

    def __str__(self) -> str:
        rel = "<" if self.holds else ">="
        return (
            f"gamma = {self.step:.4g} {rel} 2 alpha / (alpha + beta)^2 = {self.bound:.4g} "
            f"(alpha = {self.strong_convexity:.4g}, beta = {self.smoothness:.4g}): "
            + ("H is a contraction, B is invertible" if self.holds else
               "contraction not guaranteed; invertibility is checked at run time")
        )


def contraction_check(step: float, strong_convexity: float, smoothness: float) -> ContractionCheck:
    """Evaluate ``gamma < 2 alpha / (alpha + beta)^2`` for declared constants."""
    a, b, g = float(strong_convexity), float(smoothness), float(step)
    if not a > 0:
        raise ValueError(f"strong_convexity (alpha) must be > 0, got {strong_convexity!r}")
    if not b >= 0:
        raise ValueError(f"smoothness (beta) must be >= 0, got {smoothness!r}")
    bound = 2.0 * a / (a + b) ** 2
    return ContractionCheck(step=g, strong_convexity=a, smoothness=b, bound=bound,
                            holds=bool(0 < g < bound))


SOLVER = "nsopt.implicit.forward_backward"


def _messages(fb: "ForwardBackward") -> dict[int, str]:
    return {
        RESULTS.max_steps_reached: failures.message(
            SOLVER, RESULTS.max_steps_reached,
            f"{fb.method}: ||H(x) - x|| > tol (1 + ||x||) after max_steps={fb.max_steps}, "
            f"tol={fb.tol}, step={fb.step}",
            "Raise max_steps, warm-start x0, or pass on_failure='ignore' and read Solution.result"),
        RESULTS.nonfinite: failures.message(
            SOLVER, RESULTS.nonfinite, f"{fb.method} iterate", "Check f, prox, theta and x0"),
    }


def _tree_sub(a: PyTree, b: PyTree) -> PyTree:
    return jax.tree.map(lambda u, v: u - v, a, b)


def _tree_axpy(a: Array, x: PyTree, y: PyTree) -> PyTree:
    return jax.tree.map(lambda u, v: (v + a * u).astype(v.dtype), x, y)


def _tree_vdot(a: PyTree, b: PyTree) -> Array:
    terms = [jnp.vdot(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    out = terms[0]
    for term in terms[1:]:
        out = out + term
    return out


def _tree_norm(a: PyTree) -> Array:
    return jnp.sqrt(_tree_vdot(a, a))


class ForwardBackward(eqx.Module):
    """``x^(theta, *args) = argmin f_theta + g_theta`` with implicit derivatives (see :func:`forward_backward`)."""

    f: Callable[..., Array]
    prox: Callable[..., PyTree]
    step: float = eqx.field(static=True)
    method: str = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    tol: float | None = eqx.field(static=True)
    restart: bool = eqx.field(static=True)
    on_failure: str = eqx.field(static=True)
    linear_solver: LinearSolver
    singular: str = eqx.field(static=True)
    x0: PyTree = None
    contraction: ContractionCheck | None = None

    # -- the fixed-point map -------------------------------------------------------------
    def H(self, theta: PyTree, x: PyTree, *args: Any) -> PyTree:
        """``prox_{gamma g_theta}(x - gamma grad_x f_theta(x))``."""
        g = jax.grad(self.f, argnums=1)(theta, x, *args)
        return self.prox(theta, _tree_axpy(-self.step, g, x), self.step, *args)

    # -- the inner solver ----------------------------------------------------------------
    def solve(self, theta: PyTree, *args: Any, x0: PyTree = None) -> Solution:
        """Run ISTA / FISTA (with adaptive restart) from ``x0`` (or the default ``self.x0``).

        Returns a :class:`~nsopt.failures.Solution`: ``value`` the last iterate, ``result``,
        ``stats`` with ``num_steps`` and ``residual = ||H(y) - y||_2`` at the last
        extrapolated point; ``on_failure`` is applied.  Not differentiable (use ``__call__``).
        Compiled once per problem and shapes (``eqx.filter_jit``): array leaves of
        ``theta``, ``args`` and ``x0`` are traced, other leaves are static.
        """
        sol = _solve(self, theta, args, self._init(x0))
        return failures.handle(sol, self.on_failure, SOLVER, _messages(self))

    def _solve(self, theta: PyTree, args: tuple, x0: PyTree) -> Solution:
        theta, args, x0 = jax.lax.stop_gradient((theta, args, x0))
        leaves = jax.tree.leaves(x0)
        dtype = jnp.result_type(*leaves) if leaves else jnp.result_type(float)
        tol = float(np.finfo(dtype).eps) ** 0.75 if self.tol is None else self.tol
        fista = self.method == "fista"

        def cond(state):
            _, _, _, k, res, xnorm = state
            return (k < self.max_steps) & ~(res <= tol * (1.0 + xnorm))

        def body(state):
            x, y, t, k, _, _ = state
            x_new = self.H(theta, y, *args)
            res = _tree_norm(_tree_sub(x_new, y))
            if fista:
                t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
                # O'Donoghue-Candes gradient restart: momentum off when it points uphill.
                uphill = _tree_vdot(_tree_sub(y, x_new), _tree_sub(x_new, x)) > 0
                if self.restart:
                    t_new = jnp.where(uphill, 1.0, t_new)
                beta = jnp.where(uphill & self.restart, 0.0, (t - 1.0) / t_new)
                y_new = _tree_axpy(beta, _tree_sub(x_new, x), x_new)
            else:
                t_new, y_new = t, x_new
            return x_new, y_new, t_new, k + 1, res, _tree_norm(x_new)

        one = jnp.asarray(1.0, dtype)
        state0 = (x0, x0, one, jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, dtype),
                  _tree_norm(x0).astype(dtype))
        x, _, _, k, res, xnorm = jax.lax.while_loop(cond, body, state0)
        finite = jnp.isfinite(res) & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(x)]))
        result = failures.result_where(~finite, RESULTS.nonfinite)
        result = failures.result_where(~(res <= tol * (1.0 + xnorm)), RESULTS.max_steps_reached, result)
        return Solution(x, result, {"num_steps": k, "residual": res})

    # -- the differentiable solution map ---------------------------------------------------
    def implicit(self) -> ImplicitFunction:
        """The :class:`ImplicitFunction` ``(theta, x0, *args) -> x^`` behind ``__call__``."""
        return fixed_point(_FBMap(self), _FBInner(self), linear_solve=self.linear_solver,
                           singular=self.singular)

    def __call__(self, theta: PyTree, *args: Any, x0: PyTree = None) -> PyTree:
        """``x^(theta)``: differentiable in ``theta`` and the array leaves of ``args``."""
        return self.implicit()(theta, self._init(x0), *args)

    def _init(self, x0: PyTree) -> PyTree:
        if x0 is None:
            x0 = self.x0
        if x0 is None:
            raise ValueError(
                "forward_backward: no starting point: pass x0=... to the call (a warm start, "
                "shaped like the solution) or give x0 to forward_backward(...)"
            )
        return jax.tree.map(lambda a: jnp.asarray(a, jnp.result_type(a, float)), x0)


@eqx.filter_jit
def _solve(fb: ForwardBackward, theta: PyTree, args: tuple, x0: PyTree) -> Solution:
    return fb._solve(theta, args, x0)


class _FBMap(eqx.Module):
    """``T(theta, x, x0, *args) = H(theta, x, *args)`` (the warm start does not enter ``H``).

    A module rather than a closure, so equal problems hash equal and compiled
    derivative kernels are reused across calls.
    """

    fb: ForwardBackward

    def __call__(self, theta: PyTree, x: PyTree, x0: PyTree, *args: Any) -> PyTree:
        return self.fb.H(theta, x, *args)


class _FBInner(eqx.Module):
    """``solve(theta, x0, *args)``: the inner solver; its failures are handled by ``on_failure``."""

    fb: ForwardBackward

    def __call__(self, theta: PyTree, x0: PyTree, *args: Any) -> PyTree:
        return self.fb.solve(theta, *args, x0=x0).value


def forward_backward(
    f: Callable[..., Array],
    prox: Callable[..., PyTree],
    *,
    step: float | None = None,
    smoothness: float | None = None,
    strong_convexity: float | None = None,
    method: str = "fista",
    max_steps: int = 10_000,
    tol: float | None = None,
    restart: bool = True,
    x0: PyTree = None,
    on_failure: str = "raise",
    linear_solve: str | LinearSolver = "auto",
    singular: str = "raise",
) -> ForwardBackward:
    """``x^(theta, *args) in argmin_x f(theta, x, *args) + g_theta(x)`` as a differentiable map.

    Args:
        f: smooth part ``f(theta, x, *args) -> scalar`` (``beta``-smooth in ``x``).
        prox: ``prox(theta, v, gamma, *args) = prox_{gamma g_theta}(v)`` (see :mod:`nsopt.nonsmooth.prox`).
        step: ``gamma``; defaults to ``1 / smoothness``.  ISTA needs ``gamma < 2 / beta``,
            FISTA ``gamma <= 1 / beta`` (checked when ``smoothness`` is given).
        smoothness: ``beta``, the Lipschitz constant of ``grad f``.
        strong_convexity: ``alpha``; when given with ``smoothness``, the contraction
            condition ``gamma < 2 alpha / (alpha + beta)^2`` is checked, stored in
            ``.contraction`` and a warning is issued when it fails.
        method: ``"fista"`` (with adaptive restart if ``restart``) or ``"ista"``.
        max_steps, tol: stop when ``||H(y) - y||_2 <= tol (1 + ||x||_2)``; ``tol=None``
            means ``eps^(3/4)`` of the dtype.
        x0: default starting point (a call's ``x0=`` overrides it: warm starts).
        on_failure: ``"raise"`` (default; eagerly and under ``jit``), ``"warn"`` or ``"ignore"``
            when the inner solver fails (:mod:`nsopt.failures`): then the last iterate is used;
            the same switch handles the failures of the implicit derivative.
        linear_solve, singular: as in :func:`nsopt.implicit.root`.

    Returns:
        A :class:`ForwardBackward`: call it as ``x_hat(theta, *args, x0=...)``.
    """
    if not callable(f) or not callable(prox):
        raise TypeError(f"forward_backward: f and prox must be callables, got {f!r}, {prox!r}")
    if method not in METHODS:
        raise ValueError(f"forward_backward method must be one of {METHODS}, got {method!r}")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
    if tol is not None and not tol > 0:
        raise ValueError(f"tol must be > 0 or None, got {tol!r}")
    if smoothness is not None and not smoothness > 0:
        raise ValueError(f"smoothness (beta) must be > 0, got {smoothness!r}")
    if step is None:
        if smoothness is None:
            raise ValueError("forward_backward: give step (gamma) or smoothness (beta; gamma = 1/beta)")
        step = 1.0 / smoothness
    step = float(step)
    if not step > 0:
        raise ValueError(f"step (gamma) must be > 0, got {step!r}")
    if smoothness is not None:
        limit = 2.0 / smoothness if method == "ista" else 1.0 / smoothness
        ok = step < limit if method == "ista" else step <= limit * (1 + 1e-12)
        if not ok:
            raise ValueError(
                f"step gamma = {step:.6g} too large for {method} with smoothness beta = "
                f"{smoothness:.6g}: allowed 0 < gamma {'<' if method == 'ista' else '<='} "
                f"{limit:.6g}"
            )
    check = None
    if strong_convexity is not None:
        if smoothness is None:
            raise ValueError("strong_convexity (alpha) needs smoothness (beta) for the contraction check")
        check = contraction_check(step, strong_convexity, smoothness)
        if not check.holds:
            warnings.warn(f"forward_backward: {check}", stacklevel=2)
    return ForwardBackward(
        f=f,
        prox=prox,
        step=step,
        method=method,
        max_steps=max_steps,
        tol=tol,
        restart=restart,
        on_failure=failures.check_on_failure(on_failure),
        linear_solver=dataclasses.replace(as_linear_solver(linear_solve), on_failure=on_failure),
        singular=check_singular_policy(singular),
        x0=x0,
        contraction=check,
    )
