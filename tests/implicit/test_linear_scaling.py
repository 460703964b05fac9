"""Iterative linear solves are scale invariant: a tiny right-hand side is solved, not taken for zero."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt


@pytest.mark.parametrize("method", ["gmres", "bicgstab", "cg"])
def test_tiny_cotangent_float32(method):
    M = jnp.array([[3.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 5.0]], jnp.float32)

    def F(theta, x):
        return M @ x - theta

    x_star = nsopt.implicit.root(F, lambda theta: jnp.linalg.solve(M, theta), linear_solve=method)
    theta = jnp.array([1.0, -2.0, 0.5], jnp.float32)
    v = jnp.array([1e-8, -3e-8, 2e-8], jnp.float32)  # below float32 eps in norm
    _, vjp = jax.vjp(x_star, theta)
    (g,) = vjp(v)
    expected = np.linalg.solve(np.asarray(M, np.float64).T, np.asarray(v, np.float64))
    np.testing.assert_allclose(np.asarray(g, np.float64), expected, rtol=1e-3)
