"""Sampling schemes: laws (with / without replacement, epochs), unbiasedness, counter-based
reproducibility through nsopt.run, and the unchanged i.i.d. numbers of the old protocol."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
from nsopt import problems as P
from nsopt.problems.samplers import IndexSampler, iid, minibatch, reshuffle

KEY = jax.random.key(7)


def draws(scheme, n, steps, key=KEY):
    s = IndexSampler(scheme, n)
    return np.asarray(jax.vmap(lambda k: s(key, k))(jnp.arange(steps)))


def test_reshuffle_epochs_are_permutations_and_change_between_epochs():
    n, b = 12, 3                       # m = 4 steps per epoch
    idx = draws(reshuffle(b), n, 4 * 5).reshape(5, 4 * b)
    for epoch in idx:
        assert sorted(epoch) == list(range(n))          # every example once per epoch
    assert len({tuple(e) for e in idx}) == 5            # a fresh permutation each epoch
    left = draws(reshuffle(5), 12, 6).reshape(3, 10)    # m = 2: the 2 left-over examples are skipped
    assert all(len(set(e)) == 10 for e in left)


def test_minibatch_indices_are_distinct_and_uniform():
    n, b, steps = 10, 4, 4000
    idx = draws(minibatch(b), n, steps)
    assert all(len(set(r)) == b for r in idx)
    counts = np.bincount(idx.ravel(), minlength=n)
    p = b / n                                           # each index is in a batch w.p. b/n
    assert np.all(np.abs(counts - steps * p) < 5 * np.sqrt(steps * p * (1 - p)))


def test_iid_is_fold_in_randint_as_before():
    """The i.i.d. scheme draws exactly what the old protocol drew: randint(fold_in(key, k))."""
    n, b = 50, 4
    old = np.stack([np.asarray(jax.random.randint(jax.random.fold_in(KEY, k), (b,), 0, n)) for k in range(20)])
    assert np.array_equal(draws(iid(b), n, 20), old)


@pytest.mark.parametrize("scheme", [iid(4), reshuffle(4), minibatch(4)])
def test_runs_depend_only_on_the_key(scheme):
    """nsopt.run passes (run key, k): the trajectory equals a hand-written loop over sampler(key, k),
    and does not depend on record_every."""
    p = P.lad(num_examples=40, sampling=scheme)
    alg = nsopt.sgd(0.05)
    w0 = p.init(jax.random.key(0))
    t1 = nsopt.run(alg, p.oracle(), p.sampler, w0, KEY, 24, 1)
    t8 = nsopt.run(alg, p.oracle(), p.sampler, w0, KEY, 24, 8)
    assert np.array_equal(np.asarray(t1.w)[::8], np.asarray(t8.w))
    grad = jax.grad(p.loss)
    w = w0
    for k in range(24):
        w = w - 0.05 * grad(w, p.sampler(KEY, k))
    np.testing.assert_allclose(np.asarray(t1.w[-1]), np.asarray(w), rtol=1e-12, atol=1e-12)


def test_old_sampler_protocol_gives_the_same_numbers():
    """A plain ``sampler(key)`` (old protocol, fold_in by the runner) and the i.i.d. scheme agree bitwise."""
    p = P.lad(num_examples=40, sampling=iid(4))
    plain = lambda key: jax.random.randint(key, (4,), 0, 40)
    w0 = p.inits(jax.random.key(0), 2)
    a = nsopt.run_batch(nsopt.sgd(0.05), p.oracle(), p.sampler, w0, 3, 50, 10)
    b = nsopt.run_batch(nsopt.sgd(0.05), p.oracle(), plain, w0, 3, 50, 10)
    assert np.array_equal(np.asarray(a.w), np.asarray(b.w))


def test_one_reshuffled_epoch_averages_to_F():
    """Without replacement, the losses of one epoch average to F exactly (n divisible by b)."""
    p = P.phase_retrieval(d=3, m=24, sampling=reshuffle(6))
    w = jnp.asarray([0.3, -0.2, 0.9])
    for epoch in range(3):
        mean = np.mean([float(p.loss(w, p.sampler(KEY, 4 * epoch + j))) for j in range(4)])
        assert mean == pytest.approx(float(p.F(w)), rel=1e-12)


def test_heavy_ball_with_a_step_sampler():
    p = P.relu_regression(d=3, m=12, sampling=reshuffle(2))
    alg = nsopt.heavy_ball(0.05, nsopt.proportional(1.0, 0.05))
    t = nsopt.run(alg, p.oracle(), p.sampler, p.init(jax.random.key(0)), KEY, 30, 10)
    assert bool(t.finite) and not bool(t.diverged)


def test_trajectory_finite_is_not_diverged():
    p = P.ring(noise=0.0)
    big = nsopt.sgd(1e6)                                 # |w|^2 explodes -> inf
    w0 = jnp.asarray([[3.0, 0.0], [0.5, 0.0]])
    t = nsopt.run_batch(big, p.oracle(), p.sampler, w0, 1, 200, 100)
    assert np.array_equal(np.asarray(t.finite), ~np.asarray(t.diverged))
    assert bool(t.diverged[0, 0, 0]) and not bool(np.all(t.finite))
