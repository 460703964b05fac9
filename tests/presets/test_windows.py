"""Window-runs (nsopt.presets.windows): the same path, and diagnose's numbers at start times on its grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
from nsopt.flow import diagnose
from nsopt.flow.interpolate import interpolate_path
from nsopt.presets.windows import window_length, window_runs, windowed_diagnose
from nsopt.problems import ring


def _runs(algorithm, num_runs=6, num_steps=640):
    prob = ring(noise=0.5)
    k0, k1 = jax.random.split(jax.random.key(3))
    traj = nsopt.run_batch(algorithm, prob.oracle(), prob.sampler, prob.inits(k0, num_runs),
                           jax.random.split(k1, 1), num_steps, record_every=2)
    traj = jax.tree.map(lambda a: a[0, :, 0], traj)  # (runs, R, ...)
    return prob, traj


def test_window_runs_follow_the_interpolated_path_and_end_at_the_span():
    tau = np.cumsum(np.random.default_rng(0).uniform(0.01, 0.3, size=(3, 80)), axis=1)
    x = np.random.default_rng(1).normal(size=(3, 80, 2))
    idx = np.array([[0, 5, 40], [3, 10, 60], [1, 2, 30]])
    span = 1.7
    tau_w, x_w = window_runs(tau, x, idx, span)
    L = window_length(tau, idx, span)
    assert tau_w.shape == (9, L) and x_w.shape == (9, L, 2)
    assert np.all(np.diff(tau_w, axis=1) >= 0) and np.allclose(tau_w[:, 0], 0) and np.allclose(tau_w[:, -1], span)
    s = np.linspace(0, span, 57)
    for b in range(3):
        for j in range(3):
            t0 = tau[b, idx[b, j]]
            want = interpolate_path(jnp.asarray(tau[b]), jnp.asarray(x[b]), jnp.asarray(t0 + s))
            got = interpolate_path(jnp.asarray(tau_w[3 * b + j]), jnp.asarray(x_w[3 * b + j]), jnp.asarray(s))
            np.testing.assert_allclose(got, want, atol=1e-9)
    with pytest.raises(ValueError, match="length=2 is too short"):
        window_runs(tau, x, idx, span, length=2)


@pytest.mark.parametrize("name", ["sgd", "heavy_ball"])
def test_windowed_diagnose_equals_diagnose_when_start_times_are_on_its_grid(name):
    a = nsopt.schedules.constant(1 / 64)  # records every 2 steps: 1/32 apart, on the grid h = 1/16
    alg = nsopt.sgd(a) if name == "sgd" else nsopt.heavy_ball(a, nsopt.proportional(0.5, a))
    prob, traj = _runs(alg)
    kw = {"r": 2.0} if name == "heavy_ball" else {}
    idx = np.tile(np.array([0, 8, 30, 64, 150, 256]), (traj.tau.shape[0], 1))  # even: on the grid
    T, dt = 1.0, 1 / 16
    full = diagnose(traj, prob.field, T, times=np.asarray(traj.tau)[0, idx[0]], dt=dt, method="heun", **kw)
    (win, half), _ = windowed_diagnose([(traj, idx), (jax.tree.map(lambda a: a[:3], traj), idx[:3, ::2])], prob.field, T, dt=dt,
                                       method="heun", chunk=8, **kw)
    np.testing.assert_array_equal(half.distance, win.distance[:3, ::2])
    assert win.dt == full.dt
    np.testing.assert_allclose(win.distance, full.distance, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(win.error, full.error, rtol=1e-4, atol=1e-6)
    assert np.array_equal(win.resolved, np.asarray(full.resolved))
