"""Property tests (hypothesis): schedules, the recursions, the interpolated process, implicit Jacobians."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import nsopt
from nsopt.schedules import InversePower

SETTINGS = settings(max_examples=25, deadline=None)
pos = st.floats(1e-3, 10.0, allow_nan=False)


@SETTINGS
@given(a=pos, b=st.floats(0.1, 100.0), p=st.floats(0.01, 1.0), k=st.integers(0, 10**6))
def test_inverse_power_positive_decreasing_and_exact(a, b, p, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = nsopt.schedules.inverse_power(a, b, p)
    v0, v1 = float(s(k)), float(s(k + 1))
    assert v0 > 0 and v1 <= v0
    np.testing.assert_allclose(v0, a / (k + b) ** p, rtol=1e-12)


def _loss(w, xi):  # nonsmooth: |w_0 - xi_0| + max(w_1, xi_1) + 0.5 ||w||^2
    return jnp.abs(w[0] - xi[0]) + jnp.maximum(w[1], xi[1]) + 0.5 * jnp.sum(w**2)


def _grad_np(w, xi):
    g0 = np.sign(w[0] - xi[0]) + w[0]
    g1 = (1.0 if w[1] > xi[1] else (0.5 if w[1] == xi[1] else 0.0)) + w[1]
    return np.array([g0, g1])


def _sampler(key):
    return jax.random.normal(key, (2,))


@jax.jit
def _sgd(a, b, p, scale, w0, key):
    alg = nsopt.sgd(InversePower(a, b, p), scale=scale)
    return nsopt.run(alg, nsopt.oracles.autodiff(_loss), _sampler, w0, key, 30, 3)


@jax.jit
def _hb(a, b, p, beta, scale, w0, key):
    alg = nsopt.heavy_ball(InversePower(a, b, p), beta, scale=scale)
    return nsopt.run(alg, nsopt.oracles.autodiff(_loss), _sampler, w0, key, 30, 3)


vec2 = st.lists(st.floats(-3, 3, allow_nan=False), min_size=2, max_size=2)


@SETTINGS
@given(a=st.floats(0.01, 1.0), b=st.floats(1.0, 10.0), p=st.floats(0.51, 1.0), scale=st.floats(0.1, 3.0),
       w0=vec2, seed=st.integers(0, 2**31 - 1))
def test_sgd_recursion_property(a, b, p, scale, w0, seed):
    key = jax.random.key(seed)
    traj = _sgd(a, b, p, scale, jnp.array(w0), key)
    w, tau = np.array(w0, float), 0.0
    for k in range(30):
        alpha = a / (k + b) ** p
        w = w - scale * alpha * _grad_np(w, np.asarray(_sampler(jax.random.fold_in(key, k))))
        tau += scale * alpha
    np.testing.assert_allclose(traj.w[-1], w, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(traj.tau[-1], tau, rtol=1e-12)
    assert np.all(np.diff(np.asarray(traj.tau)) > 0)


@SETTINGS
@given(a=st.floats(0.01, 1.0), b=st.floats(1.0, 10.0), p=st.floats(0.51, 1.0), beta=st.floats(0.01, 1.0),
       scale=st.floats(0.1, 3.0), w0=vec2, seed=st.integers(0, 2**31 - 1))
def test_heavy_ball_recursion_property(a, b, p, beta, scale, w0, seed):
    key = jax.random.key(seed)
    traj = _hb(a, b, p, beta, scale, jnp.array(w0), key)
    xi = lambda k: np.asarray(_sampler(jax.random.fold_in(key, k)))  # noqa: E731
    w = np.array(w0, float)
    y = _grad_np(w, xi(0))
    for k in range(30):
        w = w - scale * a / (k + b) ** p * y
        y = beta * _grad_np(w, xi(k + 1)) + (1 - beta) * y
    np.testing.assert_allclose(traj.w[-1], w, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(traj.y[-1], y, rtol=1e-9, atol=1e-11)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), ts=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8))
def test_interpolated_process_endpoints_and_linearity(seed, ts):
    traj = _sgd(0.3, 2.0, 0.75, 1.0, jnp.array([1.0, -1.0]), jax.random.key(seed))
    tau, w = np.asarray(traj.tau), np.asarray(traj.w)
    # at the recorded times the process is the iterate itself
    np.testing.assert_allclose(nsopt.flow.interpolate(traj, jnp.asarray(tau)), w, rtol=1e-10, atol=1e-12)
    # in between: the chord, evaluated at any t
    t = np.sort(np.asarray(ts)) * tau[-1]
    i = np.clip(np.searchsorted(tau, t, side="right") - 1, 0, len(tau) - 2)
    lam = ((t - tau[i]) / (tau[i + 1] - tau[i]))[:, None]
    np.testing.assert_allclose(nsopt.flow.interpolate(traj, jnp.asarray(t)), (1 - lam) * w[i] + lam * w[i + 1],
                               rtol=1e-9, atol=1e-12)


def _phi(x):
    return jnp.stack([jnp.abs(x[0]) + x[1], 2 * x[0] + jnp.abs(x[1])])


def _phi_inv(theta):
    """Phi is piecewise linear: try the four regions' inverses, keep the consistent one."""
    theta = np.asarray(theta)
    for s0 in (1, -1):
        for s1 in (1, -1):
            M = np.array([[s0, 1.0], [2.0, s1]])
            x = np.linalg.solve(M, theta)
            if (s0 * x[0] >= 0) and (s1 * x[1] >= 0):
                return jnp.asarray(x)
    raise AssertionError("no region matched")


x_star = nsopt.implicit.root(lambda theta, x: _phi(x) - theta, _phi_inv)


@SETTINGS
@given(x=st.tuples(st.floats(-2, 2), st.floats(-2, 2)).filter(lambda v: min(abs(v[0]), abs(v[1])) > 0.05))
def test_implicit_jacobian_matches_finite_differences(x):
    theta = _phi(jnp.asarray(x))
    J = jax.jacobian(x_star)(theta)
    h = 1e-6
    fd = np.stack([(np.asarray(x_star(theta + h * e)) - np.asarray(x_star(theta - h * e))) / (2 * h)
                   for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)
