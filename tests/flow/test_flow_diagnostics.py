"""Diagnostics: min-norm QP, gradient-sampling criticality, Lyapunov curves, occupation, schedule check."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import nsopt
import nsopt.flow
from nsopt import oracles
from nsopt.problems import ring
from nsopt.schedules import TheoryWarning, constant, inverse_power


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, 7, elements=st.floats(-10, 10)))
def test_project_simplex_is_the_projection(v):
    x = np.asarray(nsopt.flow.project_simplex(jnp.asarray(v)))
    assert np.all(x >= 0) and abs(x.sum() - 1) < 1e-12
    # Optimality (KKT): x = max(v - theta, 0) for one theta, i.e. v - x is constant on the support.
    theta = (v - x)[x > 0]
    assert np.ptp(theta) < 1e-9
    assert np.all(v[x == 0] <= theta.mean() + 1e-9)


def _segment_min_norm(a, b):
    lam = np.clip(a @ (a - b) / max((a - b) @ (a - b), 1e-300), 0, 1)
    return np.linalg.norm((1 - lam) * a + lam * b)


def test_min_norm_on_segments_closed_form():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=3), rng.normal(size=3)
        m = nsopt.flow.min_norm_element(jnp.stack([a, b]))
        np.testing.assert_allclose(m.norm, _segment_min_norm(a, b), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_min_norm_against_scipy_and_certificate(shift):
    rng = np.random.default_rng(1)
    V = rng.normal(size=(30, 5)) + shift  # shift 0: 0 inside the hull (D < m); shift 3: far outside
    m = nsopt.flow.min_norm_element(V, num_iters=2000)
    G = V @ V.T
    res = scipy.optimize.minimize(
        lambda lam: 0.5 * lam @ G @ lam, np.full(30, 1 / 30), jac=lambda lam: G @ lam,
        bounds=[(0, None)] * 30, constraints=[{"type": "eq", "fun": lambda lam: lam.sum() - 1}],
        method="SLSQP", options={"ftol": 1e-16, "maxiter": 2000},
    )
    ref = np.linalg.norm(res.x @ V)
    np.testing.assert_allclose(m.norm, ref, atol=1e-5)
    assert float(m.lower_bound) <= ref + 1e-9 and ref <= float(m.norm) + 1e-6
    np.testing.assert_allclose(m.element, m.weights @ V, rtol=1e-12)
    if shift:
        assert float(m.gap) < 1e-8 and float(m.norm) > 5.0


def test_criticality_separates_clarke_from_artificial_critical_points():
    """relu(w) - relu(-w) = w with relu'(0) = 0 has an artificial critical point at 0; |w| a Clarke one."""
    artificial = jax.grad(lambda w: jnp.sum(oracles.relu(w, 0.0) - oracles.relu(-w, 0.0)))
    clarke = jax.grad(lambda w: jnp.sum(oracles.abs(w, 0.0)))
    zero = jnp.zeros(2)
    np.testing.assert_array_equal(artificial(zero), [0.0, 0.0])  # the field vanishes at 0 ...
    key = jax.random.key(0)
    for radius in (1e-1, 1e-4):
        # ... but nearby gradients are all (1, 1): distance sqrt(2), not 0.
        np.testing.assert_allclose(nsopt.flow.criticality(artificial, zero, key, radius).norm, np.sqrt(2), rtol=1e-12)
        # |w|_1: the sampled signs span [-1, 1]^2, whose hull contains 0.
        assert float(nsopt.flow.criticality(clarke, zero, key, radius).norm) < 1e-3
    # Away from the kinks of |w|_1 nothing is critical: hull of (+-1, 1) near (0, 0.5) has min norm 1.
    np.testing.assert_allclose(nsopt.flow.criticality(clarke, jnp.array([0.0, 0.5]), key, 0.1).norm, 1.0, rtol=1e-6)


def test_criticality_on_ring_circle_and_pytrees():
    p = ring(noise=0.0)
    key = jax.random.key(1)
    # vmapped over points and keys, radius traced.  Unit circle: Clarke critical (minimum).
    # Radius 1.5 (smooth there): the distance is the gradient norm 3 up to O(radius).
    pts = jnp.array([[0.6, 0.8], [1.5, 0.0]])
    out = jax.vmap(lambda w, k: nsopt.flow.criticality(p.field, w, k, 1e-4).norm)(pts, jax.random.split(key, 2))
    assert out[0] < 1e-2
    np.testing.assert_allclose(out[1], 3.0, rtol=1e-3)
    field = lambda w: {"a": jnp.sign(w["a"]), "b": w["b"]}
    c = nsopt.flow.criticality(field, {"a": jnp.zeros(1), "b": jnp.ones(2)}, key, 1e-3)
    assert c.element.shape == (3,)
    np.testing.assert_allclose(c.norm, np.sqrt(2), rtol=1e-2)


def test_lyapunov_curves_match_numpy():
    p = ring(noise=0.3)
    alpha = inverse_power(0.3, 10.0, 0.75)
    hb = nsopt.heavy_ball(alpha, nsopt.proportional(2.0, alpha))
    scales = jnp.array([0.5, 1.0])
    rng = np.random.default_rng(0)
    # a (seeds=2, inits=1, scales=2, records=21) batch, as run_batch lays it out
    w, y = rng.normal(size=(2, 1, 2, 21, 2)), rng.normal(size=(2, 1, 2, 21, 2))
    tau = np.broadcast_to(np.arange(21.0), (2, 1, 2, 21))
    batch = nsopt.Trajectory(w=jnp.asarray(w), tau=jnp.asarray(tau), k=jnp.zeros((2, 1, 2, 21), int), y=jnp.asarray(y))
    r = nsopt.flow.heavy_ball_r(hb, scales)
    E = np.asarray(nsopt.flow.lyapunov(batch, p.F, r))
    F = np.abs(np.sum(w**2, -1) - 1)
    ref = F + 0.5 * np.asarray(r)[None, None, :, None] * np.sum(y**2, -1)
    np.testing.assert_allclose(E, ref, rtol=1e-12)
    np.testing.assert_allclose(nsopt.flow.objective_curve(batch, p.F), F, rtol=1e-12)
    with pytest.raises(ValueError, match="needs r="):
        nsopt.flow.lyapunov(batch, p.F)
    with pytest.raises(ValueError, match="does not broadcast to the batch shape"):
        nsopt.flow.lyapunov(batch, p.F, jnp.ones(3))
    sgd = nsopt.Trajectory(w=jnp.asarray(w[0, 0, 0]), tau=jnp.asarray(tau[0, 0, 0]), k=jnp.arange(21))
    np.testing.assert_allclose(nsopt.flow.lyapunov(sgd, p.F), F[0, 0, 0], rtol=1e-12)
    with pytest.raises(ValueError, match="traj.y is None"):
        nsopt.flow.lyapunov(sgd, p.F, 1.0)
    np.testing.assert_allclose(nsopt.flow.energy(p.F, jnp.array([2.0, 0.0]), jnp.array([1.0, 1.0]), 0.5), 3.5)


def test_occupation_by_hand():
    tau = jnp.array([0.0, 1.0, 3.0, 4.0, 8.0])
    w = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.1, 0.0], [1.05, 0.0], [5.0, 5.0]])
    traj = nsopt.Trajectory(w=w, tau=tau, k=jnp.arange(5))
    centers = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    # weights dtau = 1, 2, 1, 4 for w_0..w_3: near 0 -> w_0, w_2 (1 + 1); near 1 -> w_1, w_3 (2 + 4).
    np.testing.assert_allclose(nsopt.flow.occupation(traj, centers, 0.2), [2 / 8, 6 / 8])
    # from t0 = 2: records with tau_i >= 2 are w_2 (weight 1) and w_3 (weight 4)
    np.testing.assert_allclose(nsopt.flow.occupation(traj, centers, 0.2, t0=2.0), [1 / 5, 4 / 5])
    assert np.all(np.isnan(nsopt.flow.occupation(traj, centers, 0.2, t0=100.0)))
    with pytest.raises(ValueError, match=r"centers must have shape \(C, 2\)"):
        nsopt.flow.occupation(traj, jnp.zeros(2), 0.2)


def test_occupation_of_sgd_on_ring_concentrates_on_the_circle():
    p = ring(noise=0.3)
    batch = nsopt.run_batch(nsopt.sgd(inverse_power(0.5, 10.0, 0.75)), p.oracle(), p.sampler,
                            jnp.array([[2.0, 0.0], [0.0, -2.0]]), 2, 4000, 4)
    w_end = np.asarray(batch.w[..., -1, :]).reshape(-1, 2)
    # essential accumulation points: the late iterates' positions (on the circle) keep most of the time
    occ = np.asarray(nsopt.flow.occupation(batch, jnp.asarray(w_end), 0.3, t0=float(batch.tau.min(axis=-1).max()) / 2))
    own = np.diagonal(occ.reshape(4, 4))
    assert np.all(own > 0.5)
    far = nsopt.flow.occupation(batch, jnp.array([[0.0, 0.0], [3.0, 3.0]]), 0.3, t0=5.0)
    assert np.all(np.asarray(far) == 0)


def test_check_schedule_warns_outside_l2_minus_l1():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nsopt.flow.check_schedule(inverse_power(1.0, 1.0, 0.75)) is True
        assert nsopt.flow.check_schedule(lambda k: 1.0 / (k + 1.0)) is True
    with pytest.warns(TheoryWarning, match=r"not in l\^2 \\ l\^1"):
        assert nsopt.flow.check_schedule(constant(0.1)) is False
    with pytest.warns(TheoryWarning, match=r"not in l\^2"):
        assert nsopt.flow.check_schedule(0.1) is False
    with pytest.warns(TheoryWarning):
        s = inverse_power(1.0, 1.0, 0.4)  # warns at construction too
    with pytest.warns(TheoryWarning, match="alpha"):
        assert nsopt.flow.check_schedule(s) is False
    with pytest.warns(TheoryWarning):
        assert nsopt.flow.check_schedule(lambda k: 1.0 / (k + 1.0) ** 2) is False
