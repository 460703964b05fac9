"""nsopt.run_configs: run_batch over a stacked batch of configurations, one compiled program."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
from nsopt.problems import Ring, ring
from nsopt.schedules import InversePower

TRACES = []


def _build(config):
    TRACES.append(1)  # a Python side effect: counts traces, not calls
    a, kink = config
    problem = Ring(jnp.asarray(0.5), kink, 2.0)
    return nsopt.sgd(InversePower(a, 10.0, 0.75)), problem.oracle(), problem.sampler, problem.F


CONFIGS = (jnp.asarray([0.5, 1.0, 2.0]), jnp.asarray([0.0, 1.0, -1.0]))


def test_each_config_equals_run_batch_and_one_trace():
    w0 = ring().inits(jax.random.key(1), 3)
    TRACES.clear()
    traj = nsopt.run_configs(_build, CONFIGS, w0, 2, 60, 10, scales=[1.0, 0.5])
    assert len(TRACES) == 1  # every configuration through one traced program
    assert traj.w.shape == (3, 2, 3, 2, 7, 2) and traj.objective.shape == (3, 2, 3, 2, 7)
    for c in range(3):
        alg, oracle, sampler, obj = _build((CONFIGS[0][c], CONFIGS[1][c]))
        ref = nsopt.run_batch(alg, oracle, sampler, w0, 2, 60, 10, scales=[1.0, 0.5], objective=obj)
        np.testing.assert_allclose(traj.w[c], ref.w, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(traj.tau[c], ref.tau, rtol=1e-6)
        np.testing.assert_allclose(traj.objective[c], ref.objective, rtol=1e-6, atol=1e-7)
    # different configurations give different runs (the config is not ignored)
    assert not np.allclose(traj.w[0], traj.w[2])


def test_paired_seeds_and_inits_equal_single_runs():
    w0 = ring().inits(jax.random.key(2), 4)
    keys = jax.random.split(jax.random.key(3), 4)
    traj = nsopt.run_configs(_build, CONFIGS, w0, keys, 40, 4, paired=True)
    assert traj.w.shape == (3, 4, 1, 11, 2)
    for c in (0, 2):
        alg, oracle, sampler, obj = _build((CONFIGS[0][c], CONFIGS[1][c]))
        for i in range(4):
            ref = nsopt.run(alg, oracle, sampler, w0[i], keys[i], 40, 4, objective=obj)
            np.testing.assert_allclose(traj.w[c, i, 0], ref.w, rtol=1e-6, atol=1e-7)
            assert int(traj.diverged_step[c, i, 0]) == int(ref.diverged_step)


def test_per_config_inits_and_keys():
    w0 = ring().inits(jax.random.key(4), 3)
    keys = jax.random.split(jax.random.key(5), 3)
    traj = nsopt.run_configs(_build, CONFIGS, w0[:, None], keys[:, None], 30, 3, per_config=True)
    assert traj.w.shape == (3, 1, 1, 1, 11, 2)
    for c in range(3):
        alg, oracle, sampler, obj = _build((CONFIGS[0][c], CONFIGS[1][c]))
        ref = nsopt.run(alg, oracle, sampler, w0[c], keys[c], 30, 3)
        np.testing.assert_allclose(traj.w[c, 0, 0, 0], ref.w, rtol=1e-6, atol=1e-7)


def test_bad_shapes_are_rejected():
    w0 = ring().inits(jax.random.key(2), 4)
    with pytest.raises(ValueError, match="configs"):
        nsopt.run_configs(_build, (jnp.ones(2), jnp.ones(3)), w0, 2, 10)
    with pytest.raises(ValueError, match="one seed per initialization"):
        nsopt.run_configs(_build, CONFIGS, w0, 3, 10, paired=True)
