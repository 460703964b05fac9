"""Kink-value primitives: the chosen value changes the derivative at the kink only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsopt import nonsmooth, oracles

XS = jnp.array([-2.0, -1e-3, 0.0, 1e-3, 2.0])


@pytest.mark.parametrize("kink", [0.0, 0.25, 1.0])
def test_relu(kink):
    d = jax.vmap(jax.grad(lambda x: nonsmooth.relu(x, kink)))(XS)
    np.testing.assert_array_equal(d, [0.0, 0.0, kink, 1.0, 1.0])
    np.testing.assert_array_equal(nonsmooth.relu(XS, kink), jax.nn.relu(XS))


@pytest.mark.parametrize("kink", [-1.0, 0.0, 0.5])
def test_abs(kink):
    d = jax.vmap(jax.grad(lambda x: nonsmooth.abs(x, kink)))(XS)
    np.testing.assert_array_equal(d, [-1.0, -1.0, kink, 1.0, 1.0])
    np.testing.assert_array_equal(nonsmooth.abs(XS, kink), jnp.abs(XS))


@pytest.mark.parametrize("kink", [0.0, 0.3, 1.0])
def test_maximum_minimum(kink):
    gx, gy = jax.grad(lambda x, y: nonsmooth.maximum(x, y, kink), argnums=(0, 1))(1.0, 1.0)
    assert (float(gx), float(gy)) == pytest.approx((kink, 1 - kink))
    gx, gy = jax.grad(lambda x, y: nonsmooth.maximum(x, y, kink), argnums=(0, 1))(2.0, 1.0)
    assert (float(gx), float(gy)) == (1.0, 0.0)
    gx, gy = jax.grad(lambda x, y: nonsmooth.minimum(x, y, kink), argnums=(0, 1))(1.0, 1.0)
    assert (float(gx), float(gy)) == pytest.approx((kink, 1 - kink))
    gx, gy = jax.grad(lambda x, y: nonsmooth.minimum(x, y, kink), argnums=(0, 1))(2.0, 1.0)
    assert (float(gx), float(gy)) == (0.0, 1.0)


def test_max_elementwise_ties():
    x = jnp.array([1.0, 3.0, 3.0, 2.0])
    np.testing.assert_array_equal(jax.grad(lambda x: nonsmooth.max_elementwise(x, 0.0))(x), [0, 0, 1, 0])
    np.testing.assert_array_equal(jax.grad(lambda x: nonsmooth.max_elementwise(x, 1.0))(x), [0, 1, 0, 0])
    assert float(nonsmooth.max_elementwise(x)) == 3.0


def test_kink_value_is_traceable_and_vmappable():
    kinks = jnp.linspace(0.0, 1.0, 5)
    d = jax.jit(jax.vmap(jax.grad(nonsmooth.relu), in_axes=(None, 0)))(0.0, kinks)
    np.testing.assert_allclose(d, kinks)
    # the derivative with respect to the kink value itself is zero
    assert float(jax.grad(nonsmooth.relu, argnums=1)(0.0, 0.5)) == 0.0


def test_artificial_critical_point():
    """relu(w) - relu(-w) = w, yet autodiff with relu'(0) = 0 returns 0 at w = 0 (THEORY §1)."""
    f = lambda w, kink: nonsmooth.relu(w, kink) - nonsmooth.relu(-w, kink)  # noqa: E731
    assert float(jax.grad(f)(0.0, 0.0)) == 0.0  # artificial critical point
    assert float(jax.grad(f)(0.0, 0.5)) == 1.0  # Clarke: d f(0) = {1}
    assert float(jax.grad(f)(0.3, 0.0)) == 1.0
    oracle = oracles.autodiff(lambda w, xi: f(w, 0.0) * xi)
    assert float(oracle(0.0, 1.0)) == 0.0


def test_oracles_reexports_the_primitives():
    """The README's public path ``nsopt.oracles.relu`` is the same function as ``nsopt.nonsmooth.relu``."""
    for name in ("relu", "abs", "maximum", "minimum", "max_elementwise"):
        assert getattr(oracles, name) is getattr(nonsmooth.kinks, name)
