"""flow.diagnose against brute force: the certified bound, the error estimate on an exact flow, apt_distance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
import nsopt.flow
from nsopt.algorithms.run import Trajectory
from nsopt.flow.report import MAX_RECORDS
from nsopt.problems import ring
from nsopt.schedules import inverse_power

LAM = np.array([1.5, 0.4])  # field(w) = diag(LAM) w: the flow g(s) = exp(-LAM s) g(0) exactly


def linear_field(w):
    return jnp.asarray(LAM) * w


def noisy_path(num, seed=0, spacing=0.013):
    """A record path: a decaying curve plus noise, with irregular record times."""
    rng = np.random.default_rng(seed)
    tau = np.concatenate([[0.0], np.cumsum(spacing * (0.3 + rng.random(num - 1)))])
    w = np.stack([np.cos(tau), np.sin(2 * tau)], -1) * np.exp(-0.3 * tau)[:, None]
    w = w + 0.05 * rng.standard_normal(w.shape)
    return tau, w


def interp(tau, w, t):
    return np.stack([np.interp(t, tau, w[:, d]) for d in range(w.shape[1])], -1)


def traj_of(tau, w):
    return Trajectory(w=jnp.asarray(w), tau=jnp.asarray(tau), k=jnp.arange(len(tau)))


def euler_polygon_sup(tau, w, t, T, n, sub=200):
    """Brute force: sup over a fine s-grid (and the records) of ||w(t+s) - g_h(s)||, g_h the Euler polygon."""
    h = T / n
    g = [interp(tau, w, t)]
    for _ in range(n):
        g.append(g[-1] - h * LAM * g[-1])
    g = np.array(g)
    s = np.concatenate([np.linspace(0, T, n * sub + 1), tau[(tau > t) & (tau < t + T)] - t])
    gs = np.stack([np.interp(s, h * np.arange(n + 1), g[:, d]) for d in range(2)], -1)
    return float(np.max(np.linalg.norm(interp(tau, w, t + s) - gs, axis=-1)))


def exact_sup(tau, w, t, T, num=40001):
    s = np.concatenate([np.linspace(0, T, num), tau[(tau > t) & (tau < t + T)] - t])
    g = interp(tau, w, t)[None] * np.exp(-np.outer(s, LAM))
    return float(np.max(np.linalg.norm(interp(tau, w, t + s) - g, axis=-1)))


@pytest.mark.parametrize("spacing,n", [(0.013, 16), (0.013, 64), (0.0015, 4)])
def test_certified_bound_is_at_least_the_brute_force_sup(spacing, n):
    tau, w = noisy_path(800 if spacing > 0.005 else 3000, seed=1, spacing=spacing)
    T = 1.0
    rep = nsopt.flow.diagnose(traj_of(tau, w), linear_field, T, num_times=7, method="euler", dt=T / n)
    for t, d, dg in zip(np.asarray(rep.times), np.asarray(rep.distance), np.asarray(rep.grid_distance)):
        brute = euler_polygon_sup(tau, w, t, T, n)
        assert d >= brute - 1e-12
        assert dg <= brute + 1e-12
        per_interval = np.max(np.diff(np.searchsorted(tau, t + T / n * np.arange(n + 1), "right")))
        if per_interval <= MAX_RECORDS:
            np.testing.assert_allclose(d, brute, rtol=1e-9)  # exact when few records per interval
        else:
            slope = np.linalg.norm(np.diff(w, axis=0), axis=-1) / np.diff(tau)
            assert d <= dg + (T / n) * slope.max() + 1e-12  # the Lipschitz fallback: at most h L above


@pytest.mark.parametrize("method,n", [("euler", 32), ("euler", 128), ("heun", 8), ("heun", 32), ("rk4", 8),
                                      ("rk4", 16)])
def test_error_estimate_bounds_the_true_error_on_an_exact_flow(method, n):
    tau, w = noisy_path(400, seed=2, spacing=0.02)
    T = 1.0
    rep = nsopt.flow.diagnose(traj_of(tau, w), linear_field, T, num_times=6, method=method, dt=T / n)
    for t, d, dg, err in zip(*(np.asarray(a) for a in (rep.times, rep.distance, rep.grid_distance, rep.error))):
        true = exact_sup(tau, w, t, T)
        assert abs(d - true) <= err, (t, d, true, err)  # d is the exact sup of g_h here (few records)
        assert dg - err <= true <= d + err
        assert err <= 0.5 * true  # and it is not vacuous at these steps


def test_error_estimate_shrinks_with_the_order_of_the_method():
    tau, w = noisy_path(400, seed=3, spacing=0.02)
    errs = {}
    for method in ("euler", "heun", "rk4"):
        e = [float(jnp.max(nsopt.flow.diagnose(traj_of(tau, w), linear_field, 1.0, num_times=3,
                                                method=method, dt=1 / n).error)) for n in (8, 32)]
        errs[method] = e[0] / e[1]
    # one halving of h divides a Richardson difference by 2^p; two halvings by 4^p (chord term: 16)
    assert 3 < errs["euler"] < 5.5
    assert 10 < errs["heun"] < 24
    assert errs["rk4"] > 10


@pytest.fixture(scope="module")
def ring_runs():
    problem = ring(noise=0.5)
    alpha = inverse_power(0.5, 10.0, 0.75)
    w0 = problem.inits(jax.random.key(0), 2)
    out = {}
    for name, alg in [("sgd", nsopt.sgd(alpha)), ("heavy_ball", nsopt.heavy_ball(alpha, nsopt.proportional(1.0, alpha)))]:
        out[name] = nsopt.run_batch(alg, problem.oracle(), problem.sampler, w0, 2, 1500, 5)
    return problem, out


@pytest.mark.parametrize("name", ["sgd", "heavy_ball"])
@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_grid_distance_is_apt_distance_at_the_same_times(ring_runs, name, method):
    problem, runs = ring_runs
    traj = runs[name]
    rep = nsopt.flow.diagnose(traj, problem.field, 1.0, num_times=5, method=method, dt=1 / 40)
    ref = nsopt.flow.apt_distance(traj, problem.field, 1.0, times=rep.times, dt=1 / 40, method=method)
    np.testing.assert_allclose(rep.grid_distance, ref, rtol=1e-10, atol=1e-12)
    assert bool(jnp.all(rep.distance >= rep.grid_distance))
    assert rep.distance.shape == traj.tau.shape[:-1] + (5,)
    np.testing.assert_array_equal(rep.resolved, rep.error <= 0.1 * rep.distance)


def test_progress_lyapunov_and_refinement(ring_runs):
    problem, runs = ring_runs
    calls = []
    rep = nsopt.flow.diagnose(runs["heavy_ball"], problem.field, 1.0, num_times=10, method="heun", dt=1 / 8,
                              F=problem.F, chunks=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 10), (6, 10), (9, 10), (10, 10)]
    np.testing.assert_allclose(rep.lyapunov, nsopt.flow.lyapunov(runs["heavy_ball"], problem.F), rtol=1e-12)
    fine = nsopt.flow.diagnose(runs["heavy_ball"], problem.field, 1.0, times=rep.times[0, 0, 0], method="heun",
                               dt=1 / 8, max_steps=64, min_resolved=1.0)
    assert fine.dt == 1 / 64  # the ring's heavy-ball flow is never fully resolved: refined to the cap
    np.testing.assert_allclose(fine.times, rep.times, rtol=1e-12)
    assert float(jnp.median(fine.error)) < float(jnp.median(rep.error))


def test_errors_are_clear(ring_runs):
    problem, runs = ring_runs
    with pytest.raises(ValueError, match="longer than the shortest recorded horizon"):
        nsopt.flow.diagnose(runs["sgd"], problem.field, 1e3)
    with pytest.raises(ValueError, match="start times must be in"):
        nsopt.flow.diagnose(runs["sgd"], problem.field, 1.0, times=[-1.0])
    with pytest.raises(ValueError, match="pass r only for heavy-ball"):
        nsopt.flow.diagnose(runs["sgd"], problem.field, 1.0, r=1.0)
