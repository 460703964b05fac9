"""Fixed-step flows against exact solutions: linear fields, |w|, convergence orders, heavy ball."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import nsopt.flow
from nsopt import oracles

LINEAR = {
    "spd": np.array([[2.0, 0.5], [0.5, 1.0]]),
    "rotation": np.array([[0.3, 2.0], [-2.0, 0.3]]),  # decaying spiral, non-normal flow
    "jordan": np.array([[1.0, 3.0], [0.0, 1.0]]),
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_field_exact_flow(name):
    A = LINEAR[name]
    w0 = np.array([[1.0, -0.5], [0.2, 2.0], [-1.5, 0.7]])
    field = lambda w: jnp.asarray(A) @ w
    traj = nsopt.flow.flow(field, w0, 0.01, 200, method="rk4", save_every=10, batch_axes=1)
    assert traj.w.shape == (3, 21, 2) and traj.tau.shape == (3, 21)
    np.testing.assert_allclose(traj.tau[0], 0.1 * np.arange(21), rtol=1e-14, atol=1e-15)
    exact = np.stack([[scipy.linalg.expm(-A * t) @ w for t in traj.tau[0]] for w in w0])
    # RK4 global error is O(dt^4) = 1e-8 times the field's scale: a wrong stage fails this.
    np.testing.assert_allclose(traj.w, exact, rtol=0, atol=1e-8)
    # Euler is only first order: same points, much larger (but O(dt)) error.
    euler = nsopt.flow.flow(field, w0, 0.01, 200, save_every=10, batch_axes=1)
    err = np.abs(np.asarray(euler.w) - exact).max()
    assert 1e-4 < err < 0.1
    assert int(traj.diverged_step[0]) == -1


def test_batched_flow_matches_single_runs():
    A = LINEAR["rotation"]
    field = lambda w: jnp.asarray(A) @ w
    w0 = np.random.default_rng(0).normal(size=(2, 3, 2))
    batch = nsopt.flow.flow(field, w0, 0.05, 40, method="heun", batch_axes=2)
    assert batch.w.shape == (2, 3, 41, 2)
    for i in range(2):
        for j in range(3):
            single = nsopt.flow.flow(field, w0[i, j], 0.05, 40, method="heun")
            np.testing.assert_allclose(batch.w[i, j], single.w, rtol=1e-14, atol=1e-14)


def test_pytree_state_and_objective():
    field = lambda w: {"a": w["a"], "b": 2.0 * w["b"]}
    F = lambda w: 0.5 * jnp.sum(w["a"] ** 2) + jnp.sum(w["b"] ** 2)
    w0 = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    traj = nsopt.flow.flow(field, w0, 0.001, 1000, method="rk4", save_every=100, objective=F)
    t = np.asarray(traj.tau)
    np.testing.assert_allclose(traj.w["a"][:, 0], np.exp(-t), rtol=1e-10)
    np.testing.assert_allclose(traj.w["b"][:, 1, 1], np.exp(-2 * t), rtol=1e-10)
    np.testing.assert_allclose(traj.objective, 1.5 * np.exp(-2 * t) + 4 * np.exp(-4 * t), rtol=1e-10)


@pytest.mark.parametrize("kink", [0.0, 0.5])
def test_abs_flow_reaches_zero_at_abs_w0_and_chatters_within_dt(kink):
    """F(w) = sum_i |w_i|: the flow reaches 0 at t = |w0_i| and stays (Filippov); Euler chatters in [-dt, dt]."""
    field = jax.grad(lambda w: jnp.sum(oracles.abs(w, kink)))
    w0 = np.array([0.7, -0.3, 1.2345, 0.0])
    dt, n = 0.01, 200
    traj = nsopt.flow.flow(field, w0, dt, n)
    t, g = np.asarray(traj.tau), np.asarray(traj.w)
    exact = np.sign(w0) * np.maximum(np.abs(w0) - t[:, None], 0.0)
    before = t[:, None] <= np.abs(w0) - dt
    # Before the kink Euler is exact on a constant field (up to rounding).
    np.testing.assert_allclose(g[before], exact[before], rtol=0, atol=1e-12)
    # After it: within the chattering band |g| <= dt, for good.
    after = t[:, None] >= np.abs(w0)
    assert np.all(np.abs(g[after]) <= dt + 1e-12)
    # It does not settle before |w0|: until then the flow is still more than dt away.
    assert np.all(np.abs(g[t[:, None] < np.abs(w0) - dt]) > dt - 1e-12)
    # The band is really used: Euler chatters across 0 (both signs) instead of sliding on it.
    tail = g[t >= 1.2345 + dt, 2]
    assert np.any(tail > 0) and np.any(tail < 0) and np.max(np.abs(tail)) > 0.1 * dt


def _smooth_field(w):
    return jnp.array([jnp.sin(w[0]) + 0.5 * w[1], w[1] ** 3 - 0.3 * w[0] + jnp.cos(w[1])])


@pytest.mark.parametrize(
    "method, dts, order", [("euler", (0.02, 0.01, 0.005), 1), ("heun", (0.02, 0.01, 0.005), 2),
                           ("rk4", (0.1, 0.05, 0.025), 4)]
)
def test_convergence_order_on_smooth_field(method, dts, order):
    w0, T = jnp.array([0.8, -0.4]), 1.0
    ref = nsopt.flow.flow(_smooth_field, w0, 1e-4, 10_000, method="rk4").w[-1]
    errs = [
        float(jnp.linalg.norm(nsopt.flow.flow(_smooth_field, w0, dt, round(T / dt), method=method).w[-1] - ref))
        for dt in dts
    ]
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - order) < 0.15), (errs, rates)


def _heavy_ball_energy_setup():
    A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
    F = lambda w: 0.5 * w @ A @ w + 0.25 * jnp.sum(w**2) ** 2
    return F, jax.grad(F)


@pytest.mark.parametrize("r", [0.3, 2.0])
def test_heavy_ball_lyapunov_decreases_along_flow(r):
    F, field = _heavy_ball_energy_setup()
    w0, y0 = jnp.array([1.5, -1.0]), jnp.array([0.5, 2.0])
    traj = nsopt.flow.heavy_ball_flow(field, w0, y0, r, 2e-3, 10_000, method="rk4")
    E = np.asarray(nsopt.flow.lyapunov(traj, F, r))
    assert np.all(np.diff(E) < 0)
    assert E[-1] < 1e-3 * E[0]  # converges to the minimum F = 0 at (0, 0)
    # dE/du = -r ||y||^2 exactly along the system: check the integrated identity.
    u, y2 = np.asarray(traj.tau), np.sum(np.asarray(traj.y) ** 2, axis=-1)
    dissipated = np.concatenate([[0.0], np.cumsum(0.5 * (y2[1:] + y2[:-1]) * np.diff(u))])
    # (trapezoid quadrature of ||y||^2 on the du = 2e-3 grid: error ~1e-6 relative)
    np.testing.assert_allclose(E[0] - E, r * dissipated, rtol=0, atol=1e-5 * E[0])


def test_heavy_ball_lyapunov_nonsmooth_euler():
    """F(w) = ||w||_1 + 0.5 ||w||^2: Euler E may rise only within O(dt) chattering, and decays overall."""
    F = lambda w: jnp.sum(oracles.abs(w)) + 0.5 * jnp.sum(w**2)
    field = jax.grad(F)
    r, dt = 1.0, 1e-3
    traj = nsopt.flow.heavy_ball_flow(field, jnp.array([1.0, -2.0]), jnp.zeros(2), r, dt, 10_000)
    E = np.asarray(nsopt.flow.lyapunov(traj, F, r))
    assert np.max(np.diff(E)) < 2 * dt  # observed 0.54 dt
    assert E[-1] < 0.02 * E[0]
    assert np.all(E[2000:] < 0.5 * E[0])


def test_heavy_ball_flow_batched_and_traced_r():
    _, field = _heavy_ball_energy_setup()
    w0 = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    many = nsopt.flow.heavy_ball_flow(field, w0, jnp.zeros_like(w0), 0.5, 0.01, 50, batch_axes=1)
    one = nsopt.flow.heavy_ball_flow(field, w0[1], jnp.zeros(2), 0.5, 0.01, 50)
    np.testing.assert_allclose(many.y[1], one.y, rtol=1e-14, atol=1e-15)
    over_r = jax.vmap(
        lambda r: nsopt.flow.heavy_ball_flow(field, w0[0], jnp.zeros(2), r, 0.01, 50).w[-1]
    )(jnp.array([0.5, 1.0]))
    np.testing.assert_allclose(over_r[0], many.w[0, -1], rtol=1e-14)


def test_errors_name_the_bad_value():
    field = lambda w: w
    with pytest.raises(ValueError, match="method must be one of .*'dopri'"):
        nsopt.flow.flow(field, jnp.ones(2), 0.1, 10, method="dopri")
    with pytest.raises(ValueError, match="save_every=3 must divide num_steps=10"):
        nsopt.flow.flow(field, jnp.ones(2), 0.1, 10, save_every=3)
    with pytest.raises(TypeError, match="num_steps must be a Python int"):
        nsopt.flow.flow(field, jnp.ones(2), 0.1, 10.0)
    with pytest.raises(ValueError, match="r must be > 0, got -1"):
        nsopt.flow.heavy_ball_flow(field, jnp.ones(2), jnp.ones(2), -1.0, 0.1, 10)


def test_divergence_is_flagged():
    traj = nsopt.flow.flow(lambda w: -(w**3), jnp.array([10.0]), 1.0, 20)
    assert int(traj.diverged_step) > 0
