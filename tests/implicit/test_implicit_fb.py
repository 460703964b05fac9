"""Forward-backward solution maps (arXiv 2106.04350, §5): closed forms, finite differences away from
kinks, warm starts, convergence flags, the contraction condition."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt.implicit as ni
from nsopt.failures import RESULTS, SolverError
import nsopt.nonsmooth.prox as P

RNG = np.random.default_rng(0)
A = jnp.asarray(RNG.normal(size=(20, 8)))
B = jnp.asarray(RNG.normal(size=20))
BETA = float(jnp.linalg.norm(A, 2) ** 2)
X0 = jnp.zeros(8)


def least_squares(theta, x, A, b):
    return 0.5 * jnp.sum((A @ x - b) ** 2)


def ridge_prox(theta, v, gamma, A, b):
    return v / (1.0 + gamma * jnp.exp(theta))


def lasso_prox(theta, v, gamma, A, b):
    return P.soft_threshold(v, gamma * jnp.exp(theta))


def box_prox(theta, v, gamma, A, b):
    return P.box(v, 0.0, theta)  # 0 <= x <= theta (theta: upper bounds)


RIDGE = ni.forward_backward(least_squares, ridge_prox, smoothness=BETA, x0=X0)
LASSO = ni.forward_backward(least_squares, lasso_prox, smoothness=BETA, x0=X0)
BOX = ni.forward_backward(least_squares, box_prox, smoothness=BETA, x0=X0)


def ridge_exact(theta, A, b):
    return jnp.linalg.solve(A.T @ A + jnp.exp(theta) * jnp.eye(A.shape[1]), A.T @ b)


def test_ridge_matches_closed_form_in_both_modes():
    thetas = jnp.array([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(jax.jit(jax.vmap(RIDGE, (0, None, None)))(thetas, A, B),
                               jax.vmap(ridge_exact, (0, None, None))(thetas, A, B), atol=1e-10)
    jf = jax.jit(jax.vmap(jax.jacfwd(RIDGE, argnums=(0, 2)), (0, None, None)))(thetas, A, B)
    jr = jax.jit(jax.vmap(jax.jacrev(RIDGE, argnums=(0, 2)), (0, None, None)))(thetas, A, B)
    want = jax.jit(jax.vmap(jax.jacfwd(ridge_exact, argnums=(0, 2)), (0, None, None)))(thetas, A, B)
    for got in (jf, jr):
        np.testing.assert_allclose(got[0], want[0], atol=1e-9)
        np.testing.assert_allclose(got[1], want[1], atol=1e-9)


def lasso_value(theta, b):
    return LASSO(theta, A, b)


def test_lasso_matches_support_formula_and_finite_differences():
    grad = jax.jit(jax.grad(lambda th, b: jnp.sum(jnp.sin(lasso_value(th, b))), argnums=(0, 1)))
    jac = jax.jit(jax.jacfwd(lasso_value))
    solve = jax.jit(lasso_value)
    h = 1e-6
    checked = 0
    for theta in (0.0, 1.0, 1.5, 2.0):
        x = np.asarray(solve(theta, B))
        S = np.abs(x) > 0
        if not (np.array_equal(np.asarray(solve(theta + 1e-4, B)) != 0, S)
                and np.array_equal(np.asarray(solve(theta - 1e-4, B)) != 0, S)):
            continue  # too close to a kink of the Lasso path
        assert 0 < S.sum() < 8
        AS = np.asarray(A)[:, S]
        exact = np.zeros(8)
        exact[S] = -np.exp(theta) * np.linalg.solve(AS.T @ AS, np.sign(x[S]))
        np.testing.assert_allclose(jac(theta, B), exact, rtol=1e-8, atol=1e-10)
        fd = (np.asarray(solve(theta + h, B)) - np.asarray(solve(theta - h, B))) / (2 * h)
        np.testing.assert_allclose(fd, exact, rtol=1e-5, atol=1e-7)
        g_theta, g_b = grad(theta, B)
        np.testing.assert_allclose(g_theta, np.cos(x) @ exact, rtol=1e-8)
        e = np.eye(20)[3]
        fd_b = (np.sum(np.sin(np.asarray(solve(theta, B + h * e))))
                - np.sum(np.sin(np.asarray(solve(theta, B - h * e))))) / (2 * h)
        np.testing.assert_allclose(g_b[3], fd_b, rtol=1e-5, atol=1e-8)
        checked += 1
    assert checked >= 3


def test_box_constrained_least_squares_against_finite_differences():
    theta = jnp.full(8, 0.3)
    solve = jax.jit(lambda th: BOX(th, A, B))
    x = np.asarray(solve(theta))
    at_lo, at_hi = x <= 1e-12, x >= 0.3 - 1e-12
    assert at_lo.any() and at_hi.any() and (~at_lo & ~at_hi).any()  # all three pieces present
    J = np.asarray(jax.jit(jax.jacrev(lambda th: BOX(th, A, B)))(theta))
    h = 1e-6
    fd = np.stack([(np.asarray(solve(theta + h * e)) - np.asarray(solve(theta - h * e))) / (2 * h)
                   for e in np.eye(8)], axis=1)
    np.testing.assert_allclose(J, fd, atol=1e-6)
    np.testing.assert_allclose(J[:, ~at_hi], 0.0, atol=1e-12)  # inactive upper bounds do not matter


def test_warm_start_result_and_on_failure():
    sol = jax.jit(lambda th, x0: LASSO.solve(th, A, B, x0=x0))
    cold = sol(1.0, X0)
    assert bool(cold.successful) and int(cold.stats["num_steps"]) > 5
    warm = sol(1.0, cold.value)
    assert bool(warm.successful) and int(warm.stats["num_steps"]) <= 2
    np.testing.assert_allclose(LASSO(1.0, A, B, x0=cold.value), cold.value, atol=1e-10)
    short = ni.forward_backward(least_squares, lasso_prox, smoothness=BETA, max_steps=3, x0=X0)
    msg = "nsopt.implicit.forward_backward: did not converge within max_steps"
    with pytest.raises(SolverError, match=msg):
        short.solve(1.0, A, B)
    with pytest.raises(SolverError, match=msg):
        short(1.0, A, B)
    with pytest.raises(RuntimeError, match=msg):
        jax.block_until_ready(jax.jit(jax.grad(lambda th: short(th, A, B).sum()))(1.0))
    quiet = ni.forward_backward(least_squares, lasso_prox, smoothness=BETA, max_steps=3, x0=X0,
                                on_failure="ignore")
    s = quiet.solve(1.0, A, B)
    assert int(s.result) == RESULTS.max_steps_reached
    assert int(s.stats["num_steps"]) == 3 and float(s.stats["residual"]) > 0
    np.testing.assert_allclose(quiet(1.0, A, B), s.value)


def test_ista_and_fista_agree():
    ista = ni.forward_backward(least_squares, lasso_prox, step=1.5 / BETA, method="ista",
                               smoothness=BETA, max_steps=50_000, x0=X0)
    a, b = jax.jit(lambda th: (ista.solve(th, A, B), LASSO.solve(th, A, B)))(1.0)
    assert bool(a.successful) and bool(b.successful)
    np.testing.assert_allclose(a.value, b.value, atol=1e-9)


def test_contraction_condition_is_checked_and_reported():
    alpha = float(jnp.linalg.eigvalsh(A.T @ A)[0])
    bound = 2 * alpha / (alpha + BETA) ** 2
    c = ni.contraction_check(0.5 * bound, alpha, BETA)
    assert c.holds and c.bound == pytest.approx(bound) and "contraction" in str(c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fb = ni.forward_backward(least_squares, ridge_prox, step=0.5 * bound, smoothness=BETA,
                                 strong_convexity=alpha, x0=X0)
    assert fb.contraction.holds
    with pytest.warns(UserWarning, match="contraction not guaranteed"):
        fb = ni.forward_backward(least_squares, ridge_prox, smoothness=BETA, strong_convexity=alpha,
                                 x0=X0)
    assert not fb.contraction.holds and fb.contraction.step == pytest.approx(1 / BETA)
    # When it holds, H is a contraction: ||d_x H|| < 1 at any point, so B = d_x H - I is invertible.
    H = lambda x: ni.forward_backward(least_squares, ridge_prox, step=0.5 * bound,
                                      smoothness=BETA, x0=X0).H(0.0, x, A, B)
    assert float(jnp.linalg.norm(jax.jacfwd(H)(jnp.ones(8)), 2)) < 1.0


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match=r"too large for fista.*<="):
        ni.forward_backward(least_squares, lasso_prox, step=1.5 / BETA, smoothness=BETA)
    with pytest.raises(ValueError, match=r"too large for ista"):
        ni.forward_backward(least_squares, lasso_prox, step=2.5 / BETA, smoothness=BETA, method="ista")
    with pytest.raises(ValueError, match=r"\('fista', 'ista'\).*'newton'"):
        ni.forward_backward(least_squares, lasso_prox, step=0.1, method="newton")
    with pytest.raises(ValueError, match="give step"):
        ni.forward_backward(least_squares, lasso_prox)
    with pytest.raises(ValueError, match="no starting point"):
        ni.forward_backward(least_squares, lasso_prox, step=0.1)(1.0, A, B)
