import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nsopt
from nsopt.schedules import TheoryWarning, in_l2_minus_l1


def test_constant_and_inverse_power_values():
    k = jnp.arange(6)
    np.testing.assert_allclose(nsopt.schedules.constant(0.3)(k), 0.3)
    np.testing.assert_allclose(nsopt.schedules.inverse_power(2.0, 3.0, 0.5)(k), 2.0 / np.sqrt(np.arange(6) + 3.0))
    np.testing.assert_allclose(nsopt.schedules.inverse_power(1.0)(k), 1.0 / (np.arange(6) + 1.0))


def test_schedules_are_jit_vmap_friendly():
    s = nsopt.schedules.inverse_power(1.0, 2.0, 0.75)
    f = jax.jit(lambda sch, k: sch(k))
    np.testing.assert_allclose(f(s, 3), 1.0 / 5.0**0.75)
    # vmap over the parameter a: one compiled program for several schedules
    a = jnp.array([0.1, 0.2])
    out = jax.vmap(lambda a: nsopt.schedules.InversePower(a, s.b, s.p)(jnp.asarray(0)))(a)
    np.testing.assert_allclose(out, a / 2.0**0.75)


def test_optax_schedule_works_as_alpha():
    from nsopt.problems import ring

    sched = optax.exponential_decay(0.1, 10, 0.5)
    p = ring(noise=0.0)
    traj = nsopt.run(nsopt.sgd(sched), p.oracle(), p.sampler, jnp.array([1.5, 0.0]), jax.random.key(0), 20)
    np.testing.assert_allclose(traj.tau[-1], sum(float(sched(k)) for k in range(20)), rtol=1e-6)


def test_validation_and_theory_warnings():
    with pytest.raises(ValueError, match=r"a=-0.1 is not allowed; it must be a finite number > 0"):
        nsopt.schedules.inverse_power(-0.1)
    with pytest.raises(ValueError, match=r"b=0 is not allowed; it must be a finite number > 0"):
        nsopt.schedules.inverse_power(1.0, b=0)
    with pytest.raises(ValueError, match=r"a=nan is not allowed; it must be a finite number > 0"):
        nsopt.schedules.constant(float("nan"))
    with pytest.warns(TheoryWarning, match=r"p=0.5 is outside \(1/2, 1\]"):
        nsopt.schedules.inverse_power(1.0, p=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nsopt.schedules.inverse_power(1.0, p=0.75)


def test_l2_minus_l1_check():
    assert in_l2_minus_l1(nsopt.schedules.inverse_power(1.0, 1.0, 0.75))
    assert not in_l2_minus_l1(nsopt.schedules.constant(0.1))
    assert in_l2_minus_l1(lambda k: 1.0 / (k + 1.0))
    assert not in_l2_minus_l1(lambda k: 1.0 / (k + 1.0) ** 2)
    assert not in_l2_minus_l1(lambda k: 1.0 / (k + 1.0) ** 0.3)
