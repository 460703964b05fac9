"""Monotone deep equilibrium (DEQ) layer: forward fixed-point solve, implicit or unrolled backward.

The layer maps an input ``x`` to the fixed point ``z*`` of

    z = sigma(W z + U x + b),     sigma = relu with relu'(0) = kink,

with the monotone parametrization of Winston & Kolter (2020, "Monotone operator
equilibrium networks", NeurIPS):

    W = (1 - m) I - A^T A + B - B^T,      m > 0,

(``A``, ``B`` are free ``h x h`` parameters; this ``B`` is not the ``B`` block
of the implicit function theorem below).  Then ``I - W = m I + A^T A + (B^T - B)``
is ``m``-strongly monotone, and since ``relu = prox`` of the indicator of the
nonnegative orthant, ``z*`` is the unique zero of the strongly monotone inclusion
``0 in (I - W) z - (U x + b) + N_{R^h_+}(z)``: it exists and is unique for every
``x`` and every parameter value.

**Forward solvers** (``DEQSolver.method``), both with a convergence guarantee
from strong monotonicity, both stopping when the fixed-point residual

    r(z) = ||sigma(W z + U x + b) - z||_2 <= tol (1 + ||z||_2)    (per input)

or after ``max_steps`` iterations, and both returning a :class:`~nsopt.failures.Solution`
(``result``: ``max_steps_reached`` when the test failed, ``nonfinite``):

- ``"peaceman_rachford"`` (default; Winston & Kolter, Alg. 2) with ``V = (I + alpha (I - W))^{-1}``::

      u_half = 2 z - u,   z_half = V (u_half + alpha (U x + b)),   u = 2 z_half - u_half,   z = relu(u)

  It converges for every ``alpha > 0`` (linearly: the reflected resolvent of a
  strongly monotone Lipschitz operator is a contraction).
- ``"forward_backward"`` (projected gradient on the monotone operator)::

      z = relu((1 - alpha) z + alpha (W z + U x + b)),

  a contraction for ``0 < alpha < 2 m / L^2``, ``L = ||I - W||_2``; the default
  ``alpha = m / L^2`` (computed from ``W`` at each solve) gives the factor
  ``sqrt(1 - m^2 / L^2)``.  Matrix-free but slow when ``m / L`` is small.

**Backward** (``backward=``):

- ``"implicit"``: the nonsmooth implicit function theorem (Bolte, Le, Pauwels,
  Silveti-Falls, arXiv 2106.04350; ``docs/theory.md``) through
  :func:`nsopt.implicit.fixed_point` on ``T(W, z, v) = relu(W z + v)`` (``v = U x + b``),
  one dense ``h x h`` system per input: with ``D = diag(relu'(W z* + v))`` (the kink
  value on ties),

      B = D W - I,    A = [D (z*^T kron I),  D],    J = -B^{-1} A.

  ``B`` is invertible for every ``D`` with entries in ``[0, 1]`` (any kink value in
  Clarke's ``[0, 1]``): if ``v = D W v`` with ``v != 0``, put ``q = W v``; then
  ``||v||^2 = q^T D^2 q <= q^T D q = v^T W v``, i.e. ``v^T (I - W) v <= 0``,
  contradicting strong monotonicity.  So the invertibility hypothesis holds and
  ``-B^{-1} A`` is a conservative Jacobian of ``x -> z*``; ``singular="raise"``
  still checks it numerically.  The forward solve is not differentiated
  (memory independent of the number of iterations).  ``linear_solve``:
  ``"dense"`` (default: ``B`` materialized, singular values checked, LU; exact and
  robust; on CPU, LAPACK's SVD becomes several times slower per matrix above
  ``h = 25``), ``"gmres"`` (unrestarted) or ``"bicgstab"`` (matrix-free, much faster;
  but in float32 they can fail the residual check of :mod:`nsopt.implicit`, a failure
  handled by ``on_failure``: jax's GMRES treats right-hand sides of norm below ``eps`` as zero and
  BiCGStab's recursive residual drifts from the true one; prefer them in float64).
- ``"unrolled"``: backprop through exactly ``max_steps`` solver iterations
  (``lax.scan``; memory grows linearly with ``max_steps``).  When the iterations
  have converged it agrees with the implicit derivative away from kinks.

**Failures** follow :mod:`nsopt.failures` (``on_failure="raise"|"warn"|"ignore"``, default
``"raise"``: eagerly, under ``jit`` and ``vmap``), with one message naming the solver, the
residual test and ``max_steps``.  :meth:`MonotoneDEQ.__call__` returns the array ``z*``;
:meth:`MonotoneDEQ.solution` returns it as a :class:`~nsopt.failures.Solution` (the value
differentiable, a result code per input) and :meth:`MonotoneDEQ.solve` the forward solve only,
with its statistics.  Turning failed inputs into NaN (to flag a training run as diverged) is
a choice of the stochastic problem (:mod:`nsopt.problems.deq_digits`), not of the layer.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import failures
from nsopt.failures import RESULTS, Solution
from nsopt.implicit import ImplicitFunction, LinearSolver, fixed_point
from nsopt.nonsmooth.kinks import relu

__all__ = [
    "BACKWARDS",
    "LINEAR_SOLVES",
    "SOLVERS",
    "DEQSolver",
    "MonotoneDEQ",
    "deq_implicit",
    "deq_map",
    "monotone_weight",
]

SOLVER = "nsopt.layers.deq"
SOLVERS = ("peaceman_rachford", "forward_backward")
BACKWARDS = ("implicit", "unrolled")
LINEAR_SOLVES = ("dense", "gmres", "bicgstab")


# --------------------------------------------------------------------------- pure pieces


def monotone_weight(A: Array, B: Array, m: float | Array) -> Array:
    """``W = (1 - m) I - A^T A + B - B^T`` (Winston & Kolter 2020): ``I - W`` is ``m``-strongly monotone."""
    h = A.shape[-1]
    eye = jnp.eye(h, dtype=A.dtype)
    return (1.0 - m) * eye - A.T @ A + B - B.T


def deq_map(W: Array, z: Array, v: Array, kink: float | Array = 0.0) -> Array:
    """One application of the layer, ``T(z) = relu(W z + v)`` with ``relu'(0) = kink`` (``z``: ``(..., h)``)."""
    return relu(z @ W.T + v, kink)


def _norm(x: Array) -> Array:
    return jnp.sqrt(jnp.sum(x * x, axis=-1))


class DEQSolver(eqx.Module):
    """Forward solver of ``z = relu(W z + v)`` for a monotone ``W`` (configuration, all static).

    Attributes:
        method: ``"peaceman_rachford"`` or ``"forward_backward"`` (see the module docstring).
        step: ``alpha``; ``None``: ``1`` for Peaceman-Rachford, ``m / ||I - W||_2^2`` for
            forward-backward (``m`` is then needed: pass it to :meth:`solve`).
        tol: stop when ``||relu(W z + v) - z||_2 <= tol (1 + ||z||_2)``; ``None``: ``sqrt(eps)``
            of the dtype (``3.5e-4`` in float32, ``1.5e-8`` in float64).
        max_steps: iteration cap (the exact depth of the unrolled solver).
    """

    method: str = eqx.field(static=True, default="peaceman_rachford")
    step: float | None = eqx.field(static=True, default=None)
    tol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=200)

    def __check_init__(self):
        if self.method not in SOLVERS:
            raise ValueError(f"DEQSolver method must be one of {SOLVERS}, got {self.method!r}")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"DEQSolver step (alpha) must be > 0 or None, got {self.step!r}")
        if self.tol is not None and not self.tol > 0:
            raise ValueError(f"DEQSolver tol must be > 0 or None, got {self.tol!r}")
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"DEQSolver max_steps must be an int >= 1, got {self.max_steps!r}")

    def tolerance(self, dtype) -> float:
        return float(np.sqrt(np.finfo(dtype).eps)) if self.tol is None else float(self.tol)

    def residual(self, W: Array, z: Array, v: Array, kink: float | Array = 0.0) -> Array:
        """``||relu(W z + v) - z||_2`` along the last axis."""
        return _norm(deq_map(W, z, v, kink) - z)

    def check(self, W: Array, z: Array, v: Array, kink: float | Array = 0.0,
              num_steps: Array | None = None) -> Solution:
        """``z`` as a :class:`~nsopt.failures.Solution`: ``max_steps_reached`` where the test
        ``residual <= tol (1 + ||z||_2)`` fails, ``nonfinite`` where ``z`` is not finite
        (the test is not differentiated; ``z`` is passed through)."""
        Wc, zc, vc = jax.lax.stop_gradient((W, z, v))
        res = self.residual(Wc, zc, vc, kink)
        result = failures.result_where(~jnp.all(jnp.isfinite(zc), axis=-1), RESULTS.nonfinite)
        ok = res <= self.tolerance(zc.dtype) * (1.0 + _norm(zc))
        result = failures.result_where(~ok, RESULTS.max_steps_reached, result)
        stats = {"residual": res}
        if num_steps is not None:
            stats["num_steps"] = num_steps
        return Solution(z, result, stats)

    def messages(self, backward: str) -> dict[int, str]:
        """The failure messages of this solver (:func:`nsopt.failures.message`)."""
        detail = (f"{self.method}: ||relu(W z + U x + b) - z|| > tol (1 + ||z||) after "
                  f"max_steps={self.max_steps}, tol={self.tol!r} (None = sqrt(eps)), "
                  f"step={self.step!r}, backward={backward!r}")
        hint = ("The derivative would not be that of the fixed point. Raise max_steps, loosen "
                "tol, or raise the monotonicity m")
        return {RESULTS.max_steps_reached: failures.message(SOLVER, RESULTS.max_steps_reached, detail, hint),
                RESULTS.nonfinite: failures.message(SOLVER, RESULTS.nonfinite, detail, hint)}

    def _alpha(self, W: Array, m: float | Array | None) -> Array:
        if self.step is not None:
            return jnp.asarray(self.step, W.dtype)
        if self.method == "peaceman_rachford":
            return jnp.asarray(1.0, W.dtype)
        if m is None:
            raise ValueError("DEQSolver: forward_backward with step=None needs the monotonicity m")
        L = jnp.linalg.norm(jnp.eye(W.shape[0], dtype=W.dtype) - W, ord=2)
        return (m / L**2).astype(W.dtype)

    def _step_fn(self, W: Array, v: Array, m: float | Array | None, kink: float | Array):
        """``(z, u) -> (z, u)`` one iteration on a single input (``z, v``: ``(h,)``)."""
        alpha = self._alpha(W, m)
        if self.method == "peaceman_rachford":
            eye = jnp.eye(W.shape[0], dtype=W.dtype)
            V = jnp.linalg.inv(eye + alpha * (eye - W))
            av = alpha * v

            def step(z, u):
                u_half = 2.0 * z - u
                z_half = V @ (u_half + av)
                u = 2.0 * z_half - u_half
                return relu(u, kink), u
        else:

            def step(z, u):
                z = relu((1.0 - alpha) * z + alpha * (W @ z + v), kink)
                return z, z

        return step

    def solve(self, W: Array, v: Array, z0: Array | None = None, *, m: float | Array | None = None,
              kink: float | Array = 0.0) -> Solution:
        """Iterate from ``z0`` (default 0) until the residual test or ``max_steps`` (``lax.while_loop``).

        One input: ``v`` and ``z0`` of shape ``(h,)`` (``vmap`` for a batch).  Returns a
        :class:`~nsopt.failures.Solution` (``stats``: ``residual``, ``num_steps``); a building
        block: nothing is handled here (:class:`MonotoneDEQ` applies ``on_failure``).  Not
        reverse-differentiable (use the implicit or unrolled backward of :class:`MonotoneDEQ`).
        """
        z0 = jnp.zeros_like(v) if z0 is None else z0
        tol = self.tolerance(v.dtype)
        step = self._step_fn(W, v, m, kink)

        def residual(z):
            return self.residual(W, z, v, kink)

        def cond(s):
            z, _, k, res = s
            return (k < self.max_steps) & ~(res <= tol * (1.0 + _norm(z)))

        def body(s):
            z, u, k, _ = s
            z, u = step(z, u)
            return z, u, k + 1, residual(z)

        s0 = (z0, z0, jnp.asarray(0, jnp.int32), residual(z0))
        z, _, k, _ = jax.lax.while_loop(cond, body, s0)
        return self.check(W, z, v, kink, k)

    def unrolled(self, W: Array, v: Array, z0: Array | None = None, *, m: float | Array | None = None,
                 kink: float | Array = 0.0) -> Solution:
        """Exactly ``max_steps`` iterations (``lax.scan``), differentiable by backprop through them
        (a :class:`~nsopt.failures.Solution`, nothing handled, as :meth:`solve`)."""
        z0 = jnp.zeros_like(v) if z0 is None else z0
        step = self._step_fn(W, v, m, kink)

        def body(c, _):
            return step(*c), None

        (z, _), _ = jax.lax.scan(body, (z0, z0), None, length=self.max_steps)
        return self.check(W, z, v, kink, jnp.asarray(self.max_steps, jnp.int32))


class _Layer(eqx.Module):
    """``T(W, z, v, z0) = relu(W z + v)``: the fixed-point map (``z0``, a warm start, is ignored)."""

    kink: float = eqx.field(static=True)

    def __call__(self, W: Array, z: Array, v: Array, z0: Array) -> Array:
        return deq_map(W, z, v, self.kink)


class _Solve(eqx.Module):
    """``solve(W, v, z0) -> z`` for :func:`nsopt.implicit.fixed_point`: the last iterate.

    The failure switch is applied by the caller on the returned point (so that a caller that
    ignores failures still gets the derivative assembled at a finite point).
    """

    solver: DEQSolver
    m: float = eqx.field(static=True)
    kink: float = eqx.field(static=True)

    def __call__(self, W: Array, v: Array, z0: Array) -> Array:
        return self.solver.solve(W, v, z0, m=self.m, kink=self.kink).value


def deq_implicit(
    solver: DEQSolver,
    *,
    m: float,
    kink: float = 0.0,
    linear_solve: str | LinearSolver = "dense",
    singular: str = "raise",
    on_failure: str = "raise",
) -> ImplicitFunction:
    """``z_star(W, v, z0)``: the layer's fixed point for one input, differentiated implicitly.

    ``z_star(W, v, z0) = solver.solve(W, v, z0).value`` (the last iterate; the forward
    result is not handled here: check ``solver.check`` or use :class:`MonotoneDEQ`), and its
    derivatives in ``W`` and ``v`` are ``-B^{-1} A`` with ``B = D W - I`` (arXiv 2106.04350):
    :func:`nsopt.implicit.fixed_point` on ``T(W, z, v) = relu(W z + v)``.  ``vmap`` it
    over inputs (``in_axes=(None, 0, 0)``).  ``linear_solve`` is a method name
    (``"dense"``, ``"gmres"`` (unrestarted), ``"bicgstab"``) or a :class:`LinearSolver`;
    ``on_failure`` handles the failures of the derivative (:func:`nsopt.implicit.root`).
    """
    if not m > 0:
        raise ValueError(f"deq_implicit m (monotonicity) must be > 0, got {m!r}")
    if not isinstance(linear_solve, LinearSolver):
        _check_choice("linear_solve", linear_solve, LINEAR_SOLVES)
    return fixed_point(
        _Layer(float(kink)),
        _Solve(solver, float(m), float(kink)),
        linear_solve=linear_solve,
        singular=singular,
        on_failure=on_failure,
    )


def param_dtype(dtype: Any) -> Any:
    """``None``: JAX's default float (float64 under ``jax_enable_x64``; flax's default is float32)."""
    return jnp.result_type(float) if dtype is None else dtype


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")



# --------------------------------------------------------------------------- flax modules


class MonotoneDEQ(nn.Module):
    """Monotone DEQ layer ``x -> z*(x)``, ``z* = relu(W z* + U x + b)`` (see the module docstring).

    Attributes:
        features: ``h``, the width of ``z``.
        m: monotonicity ``m > 0`` of ``I - W``.
        kink: ``relu'(0)`` in ``[0, 1]`` used by the backward pass.
        solver: the forward :class:`DEQSolver`.
        backward: ``"implicit"`` or ``"unrolled"``.
        on_failure: ``"raise"``, ``"warn"`` or ``"ignore"`` a failed forward solve (or a failed
            implicit derivative): :mod:`nsopt.failures`.
        singular: policy of the implicit linear solve (``"raise"``; see :func:`nsopt.implicit.root`).
        init_scale: ``A`` and ``B`` start as ``N(0, init_scale^2 / h)``.
    """

    features: int
    m: float = 0.5
    kink: float = 0.0
    solver: DEQSolver = DEQSolver()
    backward: str = "implicit"
    on_failure: str = "raise"
    singular: str = "raise"
    init_scale: float = 0.5
    linear_solve: str | LinearSolver = "dense"
    param_dtype: Any = None

    def setup(self):
        _check_choice("MonotoneDEQ backward", self.backward, BACKWARDS)
        failures.check_on_failure(self.on_failure)
        if not self.m > 0:
            raise ValueError(f"MonotoneDEQ m (monotonicity) must be > 0, got {self.m!r}")
        if not 0.0 <= self.kink <= 1.0:
            raise ValueError(f"MonotoneDEQ kink (relu'(0)) must be in [0, 1] (Clarke), got {self.kink!r}")
        h = self.features
        dtype = param_dtype(self.param_dtype)
        init = nn.initializers.normal(stddev=self.init_scale / np.sqrt(h))
        self.A = self.param("A", init, (h, h), dtype)
        self.B = self.param("B", init, (h, h), dtype)
        self.inject = nn.Dense(h, param_dtype=dtype, name="U")

    def _linear_solver(self) -> LinearSolver:
        if isinstance(self.linear_solve, LinearSolver):
            return self.linear_solve
        _check_choice("MonotoneDEQ linear_solve", self.linear_solve, LINEAR_SOLVES)
        # full (unrestarted) GMRES: exact after at most h iterations
        return LinearSolver(method=self.linear_solve, restart=self.features)

    def weight(self) -> Array:
        """``W = (1 - m) I - A^T A + B - B^T``."""
        return monotone_weight(self.A, self.B, self.m)

    def _batch(self, x: Array, z0: Array | None):
        v = self.inject(x)
        batch = v.shape[:-1]
        v = v.reshape(-1, self.features)
        z0 = jnp.zeros_like(v) if z0 is None else jnp.broadcast_to(z0, batch + (self.features,))
        return v, z0.reshape(-1, self.features).astype(v.dtype), batch

    def solution(self, x: Array, z0: Array | None = None) -> Solution:
        """``z*(x)`` as a :class:`~nsopt.failures.Solution`: ``value`` differentiable (implicit
        or unrolled backward), ``result`` per input (leading axes of ``x``); ``on_failure`` applied."""
        W = self.weight()
        v, z0, batch = self._batch(x, z0)
        if self.backward == "implicit":
            x_star = deq_implicit(self.solver, m=self.m, kink=self.kink,
                                  linear_solve=self._linear_solver(), singular=self.singular,
                                  on_failure=self.on_failure)
            z = jax.vmap(x_star, in_axes=(None, 0, 0))(W, v, z0)
            sol = self.solver.check(W, z, v, self.kink)
        else:
            sol = jax.vmap(lambda vi, zi: self.solver.unrolled(W, vi, zi, m=self.m, kink=self.kink))(v, z0)
        sol = failures.handle(sol, self.on_failure, SOLVER, self.solver.messages(self.backward))
        return _reshape(sol, batch)

    def __call__(self, x: Array, z0: Array | None = None) -> Array:
        """``z*(x)`` for ``x`` of shape ``(..., d)``; ``z0`` a warm start (default 0)."""
        return self.solution(x, z0).value

    def solve(self, x: Array, z0: Array | None = None) -> Solution:
        """Forward solve only, with its statistics per input (``residual``, ``num_steps``);
        not differentiated; ``on_failure`` applied."""
        W = jax.lax.stop_gradient(self.weight())
        v, z0, batch = self._batch(x, z0)
        v = jax.lax.stop_gradient(v)
        if self.backward == "implicit":
            sol = jax.vmap(lambda vi, zi: self.solver.solve(W, vi, zi, m=self.m, kink=self.kink))(v, z0)
        else:
            sol = jax.vmap(lambda vi, zi: self.solver.unrolled(W, vi, zi, m=self.m, kink=self.kink))(v, z0)
        sol = failures.handle(sol, self.on_failure, SOLVER, self.solver.messages(self.backward))
        return _reshape(sol, batch)

    def preactivation(self, x: Array, z: Array) -> Array:
        """``W z + U x + b`` (its zeros are the kinks of the layer)."""
        return z @ self.weight().T + self.inject(x)



def _reshape(sol: Solution, batch: tuple[int, ...]) -> Solution:
    """Restore the leading (batch) axes of the inputs on every leaf."""
    return jax.tree.map(lambda a: a.reshape(batch + a.shape[1:]), sol)
