"""Diagnostics of the invertibility hypothesis at a solution ``F(theta, x) = 0``.

The nonsmooth implicit function theorem (arXiv 2106.04350, Thm. 1; docs/theory.md §2)
needs every ``B`` in the ``x``-block of the conservative Jacobian to be
invertible.  :func:`diagnose` materializes the autodiff ``[A B]`` at one point
(dense: meant for inspection, ``O(m^2 + m n)`` memory) and reports how far
``B`` is from singular and how well ``B J = -A`` is solved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array
from jax.flatten_util import ravel_pytree

from nsopt.implicit.linear import default_rcond

PyTree = Any

__all__ = ["Diagnostics", "diagnose"]


class Diagnostics(eqx.Module):
    """What :func:`diagnose` found (all arrays; ``theta`` and ``x`` flattened).

    Attributes:
        residual: ``||F(theta, x)||_2`` (``x`` should be a solution).
        sigma_min, sigma_max: extreme singular values of ``B = d_x F``.
        cond: ``sigma_max / sigma_min`` (``inf`` when ``B`` is singular).
        invertible: ``sigma_min > rcond * sigma_max`` (the test of ``singular="raise"``).
        rcond: the threshold used.
        A, B: the dense blocks ``d_theta F`` (``m x n``) and ``d_x F`` (``m x m``).
        jacobian: ``-B^{-1} A`` if invertible, else the least-squares ``-B^+ A``.
        linear_residual: ``||B J + A||_F / ||A||_F`` for that ``J`` (0 when ``A = 0``).
    """

    residual: Array
    sigma_min: Array
    sigma_max: Array
    cond: Array
    invertible: Array
    rcond: Array
    A: Array
    B: Array
    jacobian: Array
    linear_residual: Array

    def summary(self) -> str:
        """A one-line human-readable report."""
        return (
            f"||F|| = {float(self.residual):.3e}, sigma_min(B) = {float(self.sigma_min):.3e}, "
            f"sigma_max(B) = {float(self.sigma_max):.3e}, cond(B) = {float(self.cond):.3e}, "
            f"invertible = {bool(self.invertible)} (rcond = {float(self.rcond):.1e}), "
            f"||B J + A|| / ||A|| = {float(self.linear_residual):.3e}"
        )


def diagnose(
    F: Callable[..., PyTree],
    theta: PyTree,
    x: PyTree,
    *args: Any,
    rcond: float | None = None,
) -> Diagnostics:
    """Conditioning of ``B = d_x F(theta, x, *args)`` and the implicit Jacobian at ``(theta, x)``.

    ``rcond`` defaults to ``10 m eps`` as in ``singular="raise"``.  Pure JAX (compiled
    once per ``F`` and shapes): jit-able and vmap-able over points; the array leaves of
    ``args`` are traced, the others static.
    """
    return _diagnose(F, theta, x, args, rcond)


@eqx.filter_jit
def _diagnose(F, theta, x, args, rcond) -> Diagnostics:
    x_flat, unravel_x = ravel_pytree(x)
    th_flat, unravel_th = ravel_pytree(theta)
    dtype = jnp.result_type(x_flat.dtype, float)
    x_flat = x_flat.astype(dtype)

    def F_flat(th: Array, xf: Array) -> Array:
        return ravel_pytree(F(unravel_th(th), unravel_x(xf), *args))[0].astype(dtype)

    r = F_flat(th_flat, x_flat)
    if r.shape != x_flat.shape:
        raise ValueError(
            f"diagnose: F(theta, x, *args) must be shaped like x (B square): x has {x_flat.size} "
            f"entries, F returned {r.size}"
        )
    m = x_flat.shape[0]
    rc = jnp.asarray(default_rcond(m, dtype) if rcond is None else rcond, dtype)
    A = jax.jacfwd(F_flat, argnums=0)(th_flat, x_flat).reshape(m, -1)
    B = jax.jacfwd(F_flat, argnums=1)(th_flat, x_flat)
    s = jnp.linalg.svdvals(B)
    s_min, s_max = s[-1], s[0]
    invertible = s_min > rc * s_max
    safe_B = jnp.where(invertible, B, jnp.eye(m, dtype=dtype))
    J = jnp.where(
        invertible,
        -jnp.linalg.solve(safe_B, A),
        -jnp.linalg.pinv(B, rtol=rc) @ A,
    )
    nA = jnp.linalg.norm(A)
    lin_res = jnp.where(nA > 0, jnp.linalg.norm(B @ J + A) / jnp.where(nA > 0, nA, 1.0), 0.0)
    cond = jnp.where(s_min > 0, s_max / jnp.where(s_min > 0, s_min, 1.0), jnp.inf)
    return Diagnostics(
        residual=jnp.linalg.norm(r),
        sigma_min=s_min,
        sigma_max=s_max,
        cond=cond,
        invertible=invertible,
        rcond=rc,
        A=A,
        B=B,
        jacobian=J,
        linear_residual=lin_res,
    )
