import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
from nsopt import problems


def test_ring_objective_field_and_critical_set():
    p = problems.ring(noise=0.5, kink=0.0)
    w = jnp.array([0.6, 0.8])  # on the circle: abs kink -> field 0 (with kink 0)
    assert float(p.F(w)) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(p.field(w), 0.0, atol=1e-12)
    w = jnp.array([2.0, 0.0])
    np.testing.assert_allclose(p.field(w), [4.0, 0.0])
    np.testing.assert_allclose(p.distance_to_critical(jnp.array([[3.0, 4.0], [0.1, 0.0]])), [4.0, 0.1])
    # the mean of the oracle over many samples is the field (integral rule; linear noise)
    keys = jax.random.split(jax.random.key(0), 20000)
    v = jax.vmap(lambda k: p.oracle()(w, p.sampler(k)))(keys).mean(0)
    np.testing.assert_allclose(v, p.field(w), atol=0.02)
    assert p.dim == 2 and p.is_2d


def test_relu_digits_finite_sum():
    p = problems.relu_digits(hidden=(8,), batch_size=16)
    w = p.init(jax.random.key(0))
    assert p.dim == 64 * 8 + 8 + 8 * 10 + 10
    assert not p.is_2d
    n = p.y_train.shape[0]
    # the full objective is the mean of per-example losses (xi = a single index)
    per = jax.vmap(lambda i: p.loss(w, jnp.array([i])))(jnp.arange(n))
    np.testing.assert_allclose(per.mean(), p.F(w), rtol=1e-10)
    xi = p.sampler(jax.random.key(1))
    assert xi.shape == (16,) and int(xi.min()) >= 0 and int(xi.max()) < n
    traj = nsopt.run(nsopt.sgd(0.2), p.oracle(), p.sampler, w, jax.random.key(0), 300, 300, objective=p.F)
    assert float(traj.objective[-1]) < 0.6 * float(traj.objective[0])
    assert float(p.accuracy(jax.tree.map(lambda x: x[-1], traj.w))) > 0.6


def test_make_registry_errors():
    with pytest.raises(ValueError, match=r"unknown problem 'nope'; allowed: \['blind_deconvolution', 'deq_digits', 'kinked_line', 'lad', 'max_line', 'phase_retrieval', "
                       r"'relu_digits', 'relu_regression', 'ring', 'signed_abs', 'svm'\]"):
        problems.make("nope")
    with pytest.raises(TypeError, match="allowed parameters"):
        problems.make("ring", radius=3)
    with pytest.raises(ValueError, match=r"kink=2.0 is not allowed; it must be a finite number in \[-1, 1\]"):
        problems.ring(kink=2.0)
