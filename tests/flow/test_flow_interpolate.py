"""The interpolated process: exact at the nodes, linear in between, constant outside, batched."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nsopt
import nsopt.flow
from nsopt.problems import ring


@pytest.fixture(scope="module")
def batch():
    p = ring(noise=0.5)
    alg = nsopt.sgd(nsopt.schedules.inverse_power(0.3, 5.0, 0.75))
    w0 = jnp.array([[1.5, 0.2], [-0.3, 0.4]])
    return nsopt.run_batch(alg, p.oracle(), p.sampler, w0, 2, 300, 3, scales=[0.5, 1.0])


def test_endpoints_exact_single_and_batch(batch):
    one = jax.tree.map(lambda a: a[1, 0, 1], batch)
    np.testing.assert_array_equal(nsopt.flow.interpolate(one, one.tau), one.w)
    # Batched: t shared; at a trajectory's own nodes the values are its records.
    out = nsopt.flow.interpolate(batch, one.tau)
    assert out.shape == (2, 2, 2, 101, 2)
    np.testing.assert_array_equal(out[1, 0, 1], one.w)


def test_linear_between_nodes_and_clamped_outside(batch):
    tr = jax.tree.map(lambda a: a[0, 1, 0], batch)
    tau, w = np.asarray(tr.tau), np.asarray(tr.w)
    lam = np.array([0.25, 0.5, 0.9])
    t = tau[10] + lam * (tau[11] - tau[10])
    np.testing.assert_allclose(
        nsopt.flow.interpolate(tr, t), w[10] + lam[:, None] * (w[11] - w[10]), rtol=1e-13
    )
    np.testing.assert_array_equal(nsopt.flow.interpolate(tr, jnp.array([-1.0, tau[-1] + 5])), w[[0, -1]])
    # t of any shape
    assert nsopt.flow.interpolate(tr, jnp.zeros((4, 3))).shape == (4, 3, 2)


def test_against_numpy_interp(batch):
    tr = jax.tree.map(lambda a: a[1, 1, 1], batch)
    tau, w = np.asarray(tr.tau), np.asarray(tr.w)
    t = np.random.default_rng(0).uniform(-0.5, tau[-1] + 0.5, size=500)
    ref = np.stack([np.interp(t, tau, w[:, d]) for d in range(2)], axis=-1)
    np.testing.assert_allclose(nsopt.flow.interpolate(tr, t), ref, rtol=1e-12, atol=1e-14)


def test_pytree_iterates_and_path_helper():
    tau = jnp.array([0.0, 1.0, 3.0])
    x = {"a": jnp.array([0.0, 2.0, 6.0]), "b": jnp.arange(12.0).reshape(3, 2, 2)}
    out = nsopt.flow.interpolate_path(tau, x, jnp.array([0.5, 2.0]))
    np.testing.assert_allclose(out["a"], [1.0, 4.0])
    np.testing.assert_allclose(out["b"][1], 0.5 * (x["b"][1] + x["b"][2]))
    traj = nsopt.Trajectory(w=x, tau=tau, k=jnp.arange(3))
    np.testing.assert_allclose(nsopt.flow.interpolate(traj, 2.0)["a"], 4.0)


def test_rejects_non_trajectories():
    with pytest.raises(TypeError, match="expected an nsopt.Trajectory"):
        nsopt.flow.interpolate(np.zeros((3, 2)), 0.0)
    traj = nsopt.Trajectory(w=jnp.zeros((1, 2)), tau=jnp.zeros(1), k=jnp.zeros(1, int))
    with pytest.raises(ValueError, match="at least 2 recorded points"):
        nsopt.flow.interpolate(traj, 0.0)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.floats(1e-3, 10.0), min_size=15, max_size=15),
    incs=st.lists(st.floats(0.0, 5.0), min_size=16, max_size=16),
    ts=st.lists(st.floats(-5.0, 160.0), min_size=20, max_size=20),
)
def test_monotone_data_gives_monotone_path(steps, incs, ts):
    """Nondecreasing records give a nondecreasing path, bounded by the neighbouring records."""
    tau = np.concatenate([[0.0], np.cumsum(steps)])
    w = np.cumsum(incs)[:, None]  # fixed sizes: one compiled program for every example
    traj = nsopt.Trajectory(w=jnp.asarray(w), tau=jnp.asarray(tau), k=jnp.arange(len(tau)))
    t = np.sort(np.asarray(ts))
    out = np.asarray(nsopt.flow.interpolate(traj, t))[:, 0]
    assert np.all(np.diff(out) >= -1e-12 * (1 + np.abs(out[1:])))
    assert np.all(out >= w[0, 0] - 1e-12) and np.all(out <= w[-1, 0] + 1e-12)
    np.testing.assert_allclose(out, np.interp(t, tau, w[:, 0]), rtol=1e-12, atol=1e-12)
