"""The implicit oracle plugs a solution map into nsopt.run (bilevel hyperparameter learning)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
import nsopt.implicit as ni
import nsopt.nonsmooth.prox as P
from nsopt.oracles.implicit import Implicit, implicit_oracle

RNG = np.random.default_rng(0)
P_DIM = 30
X_TRUE = np.zeros(P_DIM)
X_TRUE[:3] = [1.5, -2.0, 1.0]
A_TR = jnp.asarray(RNG.normal(size=(20, P_DIM)))
B_TR = A_TR @ X_TRUE + jnp.asarray(RNG.normal(size=20))
A_VAL = jnp.asarray(RNG.normal(size=(40, P_DIM)))
B_VAL = A_VAL @ X_TRUE + jnp.asarray(RNG.normal(size=40))


def outer(w, x, xi):
    """Held-out squared error of validation example xi."""
    return 0.5 * (A_VAL[xi] @ x - B_VAL[xi]) ** 2


def ridge_residual(w, x, A, b):
    return A.T @ (A @ x - b) + jnp.exp(w) * x


def ridge_exact(w, A, b):
    return jnp.linalg.solve(A.T @ A + jnp.exp(w) * jnp.eye(A.shape[1]), A.T @ b)


def ridge_bilevel_grad(w, xi, b):
    """Closed form (NumPy): x = (A^T A + e^w I)^{-1} A^T b, dx/dw = -e^w (A^T A + e^w I)^{-1} x."""
    A, a, y = np.asarray(A_TR), np.asarray(A_VAL[xi]), float(B_VAL[xi])
    K = A.T @ A + np.exp(w) * np.eye(P_DIM)
    x = np.linalg.solve(K, A.T @ np.asarray(b))
    dx = -np.exp(w) * np.linalg.solve(K, x)
    return 0.5 * (a @ x - y) ** 2, (a @ x - y) * (a @ dx)


def test_oracle_is_the_bilevel_gradient():
    x_star = ni.root(ridge_residual, ridge_exact)
    oracle = implicit_oracle(outer, x_star, (A_TR, B_TR))
    assert isinstance(oracle, Implicit)
    ws, xis = jnp.array([-1.0, 0.0, 2.0]), jnp.array([0, 5, 7])
    values, grads = jax.jit(jax.vmap(oracle.value_and_grad))(ws, xis)
    for w, xi, v, g in zip(ws, xis, values, grads):
        want_v, want_g = ridge_bilevel_grad(float(w), int(xi), B_TR)
        np.testing.assert_allclose(v, want_v, rtol=1e-10)
        np.testing.assert_allclose(g, want_g, rtol=1e-8)
    # Lower-level data chosen per sample: args as a function of xi.
    per_sample = implicit_oracle(outer, x_star, lambda xi: (A_TR, B_TR * (1.0 + xi)))
    np.testing.assert_allclose(per_sample(0.5, 2), ridge_bilevel_grad(0.5, 2, 3.0 * B_TR)[1], rtol=1e-8)
    with pytest.raises(TypeError, match="outer must be callable"):
        implicit_oracle(None, x_star)


def test_nsopt_run_with_a_lasso_solution_map():
    # w = log of the Lasso penalty; SGD on the held-out error, one validation example per step.
    lasso = ni.forward_backward(
        lambda w, x, A, b: 0.5 * jnp.sum((A @ x - b) ** 2),
        lambda w, v, gamma, A, b: P.soft_threshold(v, gamma * jnp.exp(w)),
        smoothness=float(jnp.linalg.norm(A_TR, 2) ** 2),
        x0=jnp.zeros(P_DIM),
    )
    oracle = implicit_oracle(outer, lasso, (A_TR, B_TR))

    def heldout(w):
        return 0.5 * jnp.mean((A_VAL @ lasso(w, A_TR, B_TR) - B_VAL) ** 2)

    traj = nsopt.run(
        nsopt.sgd(nsopt.schedules.inverse_power(0.2, 10.0, 0.75)),
        oracle,
        lambda key: jax.random.randint(key, (), 0, A_VAL.shape[0]),
        jnp.asarray(3.0),
        jax.random.key(0),
        num_steps=400,
        record_every=100,
        objective=heldout,
    )
    assert not bool(traj.diverged)
    grid = jnp.linspace(1.5, 2.5, 41)
    values = jax.jit(jax.vmap(heldout))(grid)
    w_best, f_best = float(grid[jnp.argmin(values)]), float(values.min())
    assert float(traj.objective[0]) > f_best + 0.5  # it had something to do
    assert abs(float(traj.w[-1]) - w_best) < 0.1
    assert float(traj.objective[-1]) < f_best + 5e-3  # started 0.5 above
