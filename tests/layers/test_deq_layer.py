"""Monotone DEQ layer (nsopt.layers.deq): fixed point, uniqueness, implicit gradients, failures.

float64 throughout (tests/conftest.py sets JAX_ENABLE_X64=1).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import nsopt
from nsopt.implicit import diagnose
from nsopt.failures import RESULTS, SolverError
from nsopt.layers.deq import DEQSolver, MonotoneDEQ, deq_map, monotone_weight

H, D, N = 6, 4, 5
TIGHT = DEQSolver(tol=1e-13, max_steps=2000)


def _layer(**kw):
    kw = {"solver": TIGHT, "m": 0.3, "init_scale": 1.0, **kw}
    return MonotoneDEQ(H, **kw)


def _data(seed=0):
    kx, kc = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kx, (N, D)), jax.random.normal(kc, (N, H))


def _params(layer, x, seed=1):
    return layer.init(jax.random.key(seed), x)["params"]


def _objective(layer, x, c):
    """A smooth functional of the fixed points: sum(c * z*) + 0.5 ||z*||^2."""

    def f(params):
        z = layer.apply({"params": params}, x)
        return jnp.sum(c * z) + 0.5 * jnp.sum(z**2)

    return f


def _residual(W, z, v, kink):
    return deq_map(W, z, v, kink) - z


def _fixed_point_parts(layer, params, x):
    W = monotone_weight(params["A"], params["B"], layer.m)
    v = x @ params["U"]["kernel"] + params["U"]["bias"]
    return W, v


def test_monotone_parametrization_and_fixed_point_residual():
    layer = _layer()
    x, _ = _data()
    p = _params(layer, x)
    W, v = _fixed_point_parts(layer, p, x)
    # symmetric part of I - W is m I + A^T A >= m I (strong monotonicity)
    S = 0.5 * ((np.eye(H) - W) + (np.eye(H) - W).T)
    assert np.linalg.eigvalsh(np.asarray(S)).min() >= layer.m - 1e-12
    z = layer.apply({"params": p}, x)
    assert z.shape == (N, H) and bool(jnp.all(z >= 0))
    np.testing.assert_allclose(deq_map(W, z, v), z, atol=1e-12)
    sol = layer.apply({"params": p}, x, method=MonotoneDEQ.solve)
    assert bool(jnp.all(sol.successful)) and float(sol.stats["residual"].max()) <= 1e-12 * (1 + 10)
    assert int(sol.stats["num_steps"].max()) < TIGHT.max_steps
    # the forward-backward splitting reaches the same point
    fb = _layer(solver=DEQSolver(method="forward_backward", tol=1e-13, max_steps=50_000))
    np.testing.assert_allclose(fb.apply({"params": p}, x), z, atol=1e-10)


def test_fixed_point_is_unique_from_two_starts():
    layer = _layer()
    x, _ = _data()
    p = _params(layer, x)
    z_a = layer.apply({"params": p}, x)
    z0 = 3.0 * jax.random.normal(jax.random.key(7), (N, H))  # far away, negative entries too
    z_b = layer.apply({"params": p}, x, z0)
    np.testing.assert_allclose(z_a, z_b, atol=1e-11)
    assert float(jnp.abs(z0 - z_a).max()) > 1.0


def _away_from_kinks(layer, p, x, margin=1e-4):
    z = layer.apply({"params": p}, x)
    pre = layer.apply({"params": p}, x, z, method=MonotoneDEQ.preactivation)
    assert float(jnp.abs(pre).min()) > margin, "test point too close to a relu kink"


def test_implicit_gradient_matches_finite_differences():
    layer = _layer()
    x, c = _data()
    p = _params(layer, x)
    _away_from_kinks(layer, p, x)
    f = _objective(layer, x, c)
    g = jax.grad(f)(p)
    flat, unravel = ravel_pytree(p)
    gflat = ravel_pytree(g)[0]
    eps = 1e-6
    for seed in range(3):
        d = jax.random.normal(jax.random.key(100 + seed), flat.shape)
        fd = (f(unravel(flat + eps * d)) - f(unravel(flat - eps * d))) / (2 * eps)
        np.testing.assert_allclose(float(gflat @ d), float(fd), rtol=1e-6, atol=1e-8)
    # gradient in the input x as well (d z*/dx through U)
    gx = jax.grad(lambda xx: _objective(layer, xx, c)(p))(x)
    dx = jax.random.normal(jax.random.key(9), x.shape)
    fdx = (_objective(layer, x + eps * dx, c)(p) - _objective(layer, x - eps * dx, c)(p)) / (2 * eps)
    np.testing.assert_allclose(float(jnp.vdot(gx, dx)), float(fdx), rtol=1e-6, atol=1e-8)


def test_implicit_and_unrolled_gradients_agree_when_converged():
    imp = _layer()
    unr = _layer(backward="unrolled", solver=DEQSolver(tol=1e-12, max_steps=400))
    x, c = _data(3)
    p = _params(imp, x, seed=4)
    _away_from_kinks(imp, p, x)
    assert bool(jnp.all(unr.apply({"params": p}, x, method=MonotoneDEQ.solve).successful))
    gi = jax.grad(_objective(imp, x, c))(p)
    gu = jax.grad(_objective(unr, x, c))(p)
    for a, b in zip(jax.tree.leaves(gi), jax.tree.leaves(gu)):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    # a truncated unrolled solve is *not* the fixed point's derivative: it is flagged
    short = _layer(backward="unrolled", solver=DEQSolver(tol=1e-12, max_steps=3), on_failure="ignore")
    assert not bool(jnp.all(short.apply({"params": p}, x, method=MonotoneDEQ.solve).successful))


def test_invertibility_at_the_solution_for_both_kink_values():
    """B = D W - I is invertible for every D in [0, 1]^h (strong monotonicity of I - W)."""
    layer = _layer()
    x, _ = _data()
    p = _params(layer, x)
    W, v = _fixed_point_parts(layer, p, x)
    z = layer.apply({"params": p}, x)
    for kink in (0.0, 0.5, 1.0):
        k = jnp.asarray(kink)
        dg = jax.vmap(lambda zi, vi, k=k: diagnose(_residual, W, zi, vi, k))(z, v)
        assert bool(jnp.all(dg.invertible)) and float(dg.sigma_min.min()) > 1e-3


def test_kink_value_selects_the_derivative_at_a_kink():
    """h = 1, v = 0: z* = 0 sits on the kink; dz*/dv = D / (1 - D W) with D = relu'(0)."""
    p = {"A": jnp.array([[0.5]]), "B": jnp.zeros((1, 1)),
         "U": {"kernel": jnp.array([[1.0]]), "bias": jnp.array([0.0])}}
    x = jnp.zeros((1, 1))
    for kink, expected in ((0.0, 0.0), (1.0, 1.0 / (0.3 + 0.25))):
        layer = MonotoneDEQ(1, m=0.3, kink=kink, solver=TIGHT)
        g = jax.grad(lambda xx, layer=layer: layer.apply({"params": p}, xx).sum())(x)
        np.testing.assert_allclose(g, [[expected]], rtol=1e-12)


def test_jit_and_vmap():
    layer = _layer()
    x, c = _data()
    p = _params(layer, x)
    f = _objective(layer, x, c)
    g_eager = jax.grad(f)(p)
    g_jit = jax.jit(jax.grad(f))(p)
    for a, b in zip(jax.tree.leaves(g_eager), jax.tree.leaves(g_jit)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    ps = jax.vmap(lambda k: layer.init(k, x)["params"])(jax.random.split(jax.random.key(5), 2))
    gv = jax.jit(jax.vmap(jax.grad(f)))(ps)
    for i in range(2):
        gi = jax.grad(f)(jax.tree.map(lambda a, i=i: a[i], ps))
        for a, b in zip(jax.tree.leaves(gv), jax.tree.leaves(gi)):
            np.testing.assert_allclose(a[i], b, rtol=1e-9, atol=1e-11)


def test_non_convergence_is_reported():
    x, c = _data()
    bad = DEQSolver(tol=1e-14, max_steps=2)
    layer = _layer(solver=bad)
    p = _params(_layer(), x)  # (init runs the forward solve, which would raise here)
    f = _objective(layer, x, c)
    msg = "nsopt.layers.deq: did not converge within max_steps"
    with pytest.raises(SolverError, match=msg):
        jax.block_until_ready(f(p))
    with pytest.raises(RuntimeError, match=msg):
        jax.block_until_ready(jax.jit(jax.grad(f))(p))
    unrolled = _layer(solver=bad, backward="unrolled")
    with pytest.raises(RuntimeError, match="backward='unrolled'"):
        jax.block_until_ready(eqx.filter_jit(_objective(unrolled, x, c))(p))
    # "ignore": the last iterate comes back; the result code says what happened
    quiet = _layer(solver=bad, on_failure="ignore")
    sol = quiet.apply({"params": p}, x, method=MonotoneDEQ.solution)
    assert sol.result.shape == (N,) and bool(jnp.all(sol.result == RESULTS.max_steps_reached))
    np.testing.assert_array_equal(quiet.apply({"params": p}, x), sol.value)
    stats = quiet.apply({"params": p}, x, method=MonotoneDEQ.solve)
    assert not bool(jnp.any(stats.successful)) and int(stats.stats["num_steps"].max()) == 2


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match=r"method must be one of \('peaceman_rachford', 'forward_backward'\)"):
        DEQSolver(method="anderson")
    with pytest.raises(ValueError, match="max_steps must be an int >= 1"):
        DEQSolver(max_steps=0)
    x, _ = _data()
    with pytest.raises(ValueError, match=r"backward must be one of \('implicit', 'unrolled'\), got 'adjoint'"):
        MonotoneDEQ(H, backward="adjoint").init(jax.random.key(0), x)
