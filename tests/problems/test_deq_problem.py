"""The deq_digits stochastic problem (nsopt.problems.deq_digits): a finite sum, trains with SGD,
and marks a failed forward solve NaN so the run is flagged diverged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
from nsopt.problems.deq_digits import deq_digits


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="m \\(monotonicity\\) must be > 0"):
        deq_digits(m=0.0)
    with pytest.raises(ValueError, match=r"kink \(relu'\(0\)\) must be in \[0, 1\]"):
        deq_digits(kink=2.0)

    with pytest.raises(ValueError, match=r"on_failure='zero' is not allowed; choose one of \['nan', 'raise', 'warn', 'ignore'\]"):
        deq_digits(on_failure="zero")


def test_deq_digits_problem_is_a_finite_sum_and_trains_with_sgd():
    p = deq_digits(hidden=8, batch_size=16)
    w = p.init(jax.random.key(0))
    assert p.dim == 2 * 8 * 8 + 64 * 8 + 8 + 8 * 10 + 10
    n = p.y_train.shape[0]
    idx = jnp.arange(40)
    per = jax.vmap(lambda i: p.loss(w, jnp.array([i])))(idx)
    np.testing.assert_allclose(per.mean(), p.loss(w, idx), rtol=1e-10)
    xi = p.sampler(jax.random.key(1))
    assert xi.shape == (16,) and int(xi.min()) >= 0 and int(xi.max()) < n
    traj = nsopt.run(nsopt.sgd(0.5), p.oracle(), p.sampler, w, jax.random.key(0), 400, 400)
    assert not bool(traj.diverged)
    w_end = jax.tree.map(lambda a: a[-1], traj.w)
    F = jax.jit(type(p).F)
    assert float(F(p, w_end)) < 0.5 * float(F(p, w)), (F(p, w), F(p, w_end))
    assert bool(jnp.all(p.solve_stats(w_end).successful))


@pytest.mark.slow
def test_deq_digits_trains_with_run_batch_sgd_and_heavy_ball():
    p = deq_digits(hidden=16, batch_size=16)
    w0 = p.inits(jax.random.key(0), 1)
    for alg in (nsopt.sgd(0.5), nsopt.heavy_ball(0.5, 0.5)):
        traj = nsopt.run_batch(alg, p.oracle(), p.sampler, w0, 2, 200, 200, objective=p.F)
        assert not bool(jnp.any(traj.diverged))
        obj = np.asarray(traj.objective)[:, 0, 0]
        assert np.all(obj[:, -1] < 0.5 * obj[:, 0]), obj


def test_unconverged_training_run_is_flagged_diverged():
    """on_failure='nan' (the problem's default): a failed forward solve is a value, not a crash."""
    p = deq_digits(hidden=8, batch_size=8, max_steps=1, tol=1e-12)
    w = deq_digits(hidden=8).init(jax.random.key(0))
    traj = nsopt.run(nsopt.sgd(0.1), p.oracle(), p.sampler, w, jax.random.key(0), 4, 4)
    assert bool(traj.diverged) and int(traj.diverged_step) == 1
