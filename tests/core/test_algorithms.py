"""SGD and heavy ball against independent NumPy re-implementations of the recursions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
from nsopt.problems import ring


def ring_grad_np(w, xi, kink):
    """d/dw (| ||w||^2 - 1 | + <xi, w>) by hand, abs'(0) = kink."""
    r = np.sum(w**2) - 1.0
    s = np.sign(r) if r != 0 else kink
    return s * 2.0 * w + xi


def noise_np(problem, key, n):
    return np.stack([np.asarray(problem.sampler(jax.random.fold_in(key, k))) for k in range(n)])


def sgd_np(w0, xis, alphas, scale, kink):
    w, ws, taus, tau = np.array(w0, float), [np.array(w0, float)], [0.0], 0.0
    for k in range(len(alphas)):
        w = w - scale * alphas[k] * ring_grad_np(w, xis[k], kink)
        tau += scale * alphas[k]
        ws.append(w.copy())
        taus.append(tau)
    return np.array(ws), np.array(taus)


def heavy_ball_np(w0, xis, alphas, betas, scale, kink):
    w = np.array(w0, float)
    y = ring_grad_np(w, xis[0], kink)
    ws, ys = [w.copy()], [y.copy()]
    for k in range(len(alphas)):
        w = w - scale * alphas[k] * y
        v = ring_grad_np(w, xis[k + 1], kink)
        y = betas[k] * v + (1 - betas[k]) * y
        ws.append(w.copy())
        ys.append(y.copy())
    return np.array(ws), np.array(ys)


@pytest.mark.parametrize("record_every", [1, 5])
def test_sgd_matches_numpy(record_every):
    p = ring(noise=0.7, kink=0.3)
    n, scale, key = 60, 0.8, jax.random.key(3)
    sched = nsopt.schedules.inverse_power(0.3, 2.0, 0.75)
    alphas = 0.3 / (np.arange(n) + 2.0) ** 0.75
    w0 = np.array([1.3, -0.4])
    traj = nsopt.run(nsopt.sgd(sched, scale=scale), p.oracle(), p.sampler, jnp.asarray(w0), key, n, record_every)
    ws, taus = sgd_np(w0, noise_np(p, key, n), alphas, scale, 0.3)
    idx = np.arange(0, n + 1, record_every)
    np.testing.assert_allclose(traj.w, ws[idx], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traj.tau, taus[idx], rtol=1e-12)
    np.testing.assert_array_equal(traj.k, idx)
    assert traj.y is None and int(traj.diverged_step) == -1


def test_heavy_ball_matches_numpy():
    p = ring(noise=0.5, kink=0.0)
    n, scale, key = 50, 1.5, jax.random.key(11)
    alpha = nsopt.schedules.inverse_power(0.1, 1.0, 0.6)
    beta = nsopt.schedules.inverse_power(0.5, 1.0, 0.6)
    k = np.arange(n)
    traj = nsopt.run(nsopt.heavy_ball(alpha, beta, scale=scale), p.oracle(), p.sampler,
                     jnp.array([0.2, 1.9]), key, n, 10)
    ws, ys = heavy_ball_np([0.2, 1.9], noise_np(p, key, n + 1), 0.1 / (k + 1.0) ** 0.6,
                           0.5 / (k + 1.0) ** 0.6, scale, 0.0)
    np.testing.assert_allclose(traj.w, ws[::10], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traj.y, ys[::10], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traj.tau[-1], scale * np.sum(0.1 / (k + 1.0) ** 0.6), rtol=1e-12)


def test_heavy_ball_equals_optax_momentum_for_constant_beta():
    """THEORY §5: constant beta is optax.sgd(beta * alpha_k, momentum=1 - beta) with y_0 = beta v_0."""
    import optax

    p = ring(noise=0.4)
    n, beta, key, w0 = 40, 0.3, jax.random.key(5), jnp.array([0.5, -1.5])
    alpha = nsopt.schedules.inverse_power(0.2, 1.0, 1.0)
    traj = nsopt.run(nsopt.heavy_ball(alpha, beta, init_momentum="scaled"), p.oracle(), p.sampler,
                     w0, key, n)
    opt, g = optax.sgd(lambda k: beta * alpha(k), momentum=1 - beta), p.oracle()
    w, state, ws = w0, opt.init(w0), [w0]
    for k in range(n):
        upd, state = opt.update(g(w, p.sampler(jax.random.fold_in(key, k))), state)
        w = optax.apply_updates(w, upd)
        ws.append(w)
    np.testing.assert_allclose(traj.w, np.stack(ws), rtol=1e-12, atol=1e-14)


def test_record_every_does_not_change_numbers():
    p = ring()
    alg = nsopt.sgd(nsopt.schedules.inverse_power(0.5, 5.0, 0.75))
    w0, key = jnp.array([1.7, 0.1]), jax.random.key(0)
    a = nsopt.run(alg, p.oracle(), p.sampler, w0, key, 200, 1)
    b = nsopt.run(alg, p.oracle(), p.sampler, w0, key, 200, 20)
    np.testing.assert_array_equal(np.asarray(a.w)[::20], np.asarray(b.w))
    np.testing.assert_array_equal(np.asarray(a.tau)[::20], np.asarray(b.tau))


@pytest.mark.parametrize("make", ["sgd", "heavy_ball"])
def test_batch_equals_single_runs(make):
    p = ring(noise=0.6)
    sched = nsopt.schedules.inverse_power(0.4, 3.0, 0.8)
    alg = nsopt.sgd(sched) if make == "sgd" else nsopt.heavy_ball(sched, nsopt.proportional(1.0, sched))
    w0s = p.inits(jax.random.key(9), 3)
    seeds, scales = [4, 17], [0.5, 1.0, 2.0]
    batch = nsopt.run_batch(alg, p.oracle(), p.sampler, w0s, seeds, 100, 10, scales=scales, objective=p.F)
    assert batch.w.shape == (2, 3, 3, 11, 2)
    for i, seed in enumerate(seeds):
        for j in range(3):
            for l, s in enumerate(scales):
                single = nsopt.run(alg.with_scale(s), p.oracle(), p.sampler, w0s[j],
                                   jax.random.key(seed), 100, 10, objective=p.F)
                np.testing.assert_array_equal(batch.w[i, j, l], single.w)
                np.testing.assert_array_equal(batch.objective[i, j, l], single.objective)


def test_vmap_over_w0_key_scale_by_hand():
    p = ring()
    sched = nsopt.schedules.constant(0.01)

    def one(w0, key, s):
        return nsopt.run(nsopt.sgd(sched, scale=s), p.oracle(), p.sampler, w0, key, 50, 10)

    keys = jax.vmap(jax.random.key)(jnp.arange(4))
    out = jax.jit(jax.vmap(one))(p.inits(keys[0], 4), keys, jnp.array([0.5, 1.0, 1.5, 2.0]))
    ref = one(p.inits(keys[0], 4)[2], keys[2], 1.5)
    np.testing.assert_allclose(out.w[2], ref.w, rtol=1e-12)
    np.testing.assert_allclose(out.tau[:, -1], 50 * 0.01 * np.array([0.5, 1.0, 1.5, 2.0]), rtol=1e-12)


def test_divergence_is_isolated_and_located():
    """A run that blows up is flagged at its step; the other runs of the batch are untouched."""

    def loss(w, xi):  # exponential growth w_{k+1} = w_k (1 + a) -> inf for big steps
        return -0.5 * jnp.sum(w**2) * xi

    oracle = nsopt.oracles.autodiff(loss)
    sampler = lambda key: jnp.asarray(1.0)  # noqa: E731
    alg = nsopt.sgd(1.0)
    w0 = jnp.array([[1.0], [0.0]])  # the second run stays at 0 forever
    traj = nsopt.run_batch(alg, oracle, sampler, w0, 1, 2000, 100, scales=[1.0])
    # w_k = 2^k overflows float64 at k = 1024 (2^1024 = inf)
    assert int(traj.diverged_step[0, 0, 0]) == 1024
    assert int(traj.diverged_step[0, 1, 0]) == -1
    np.testing.assert_array_equal(traj.w[0, 1, 0], 0.0)
    assert bool(traj.diverged[0, 0, 0]) and not bool(traj.diverged[0, 1, 0])


def test_pytree_parameters():
    def loss(w, xi):
        return jnp.sum(jnp.abs(w["a"] - xi)) + jnp.sum(w["b"] ** 2)

    w0 = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    traj = nsopt.run(nsopt.sgd(0.1), nsopt.oracles.autodiff(loss), lambda k: jnp.zeros(3), w0,
                     jax.random.key(0), 10, 5)
    assert traj.w["a"].shape == (3, 3) and traj.w["b"].shape == (3, 2, 2)
    np.testing.assert_allclose(traj.w["b"][-1], 0.8**10, rtol=1e-12)
    np.testing.assert_allclose(traj.w["a"][-1], 0.0, atol=1e-12)  # 1 - 10 * 0.1 = 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_steps=10, record_every=3), r"record_every=3 is not allowed; it must divide num_steps=10"),
        (dict(num_steps=10, record_every=20), r"record_every=20 is not allowed; it must divide num_steps=10"),
        (dict(num_steps=0, record_every=1), r"num_steps=0 is not allowed; it must be an integer >= 1"),
        (dict(num_steps=10, record_every=0), r"record_every=0 is not allowed; it must be an integer >= 1"),
        (dict(num_steps=10.0, record_every=1), r"num_steps=10.0 is not allowed; it must be an integer"),
    ],
)
def test_bad_loop_sizes(kwargs, match):
    p = ring()
    with pytest.raises(ValueError, match=match):
        nsopt.run(nsopt.sgd(0.1), p.oracle(), p.sampler, jnp.zeros(2), jax.random.key(0), **kwargs)


def test_bad_algorithm_inputs():
    with pytest.raises(ValueError, match=r"scale=-1.0 is not allowed; it must be a finite number > 0"):
        nsopt.sgd(0.1, scale=-1.0)
    with pytest.raises(ValueError, match=r"scale=-1.0 is not allowed"):
        nsopt.sgd(0.1, scale=np.float32(-1))
    with pytest.raises(ValueError, match=r"scale=-1.0 is not allowed"):
        nsopt.sgd(0.1, scale=jnp.asarray(-1.0))
    with pytest.raises(ValueError, match=r"alpha=0.0 is not allowed; it must be a finite number > 0"):
        nsopt.sgd(0.0)
    with pytest.raises(ValueError, match=r"alpha=None is not allowed; it must be a schedule"):
        nsopt.sgd(None)
    with pytest.raises(ValueError, match=r"beta=1.5 is not allowed; it must be a finite number in \(0, 1\]"):
        nsopt.heavy_ball(0.1, 1.5)
    with pytest.raises(ValueError, match=r"beta_0=2.0\d* is not allowed; it must be a finite number in \(0, 1\]"):
        nsopt.heavy_ball(0.1, nsopt.proportional(20.0))
    with pytest.raises(ValueError, match=r"init_momentum='ones' is not allowed; choose one of \['oracle'"):
        nsopt.heavy_ball(0.1, 0.5, init_momentum="ones")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scales=[1.0, -1.0]), r"scales\[1\]=-1.0 is not allowed; it must be a finite number > 0"),
        (dict(scales=[float("nan")]), r"scales\[0\]=nan is not allowed"),
        (dict(scales=[0.0]), r"scales\[0\]=0.0 is not allowed"),
        (dict(scales="abc"), r"scales='abc' is not allowed; it must be a non-empty list of numbers"),
        (dict(scales=[]), r"scales=\[\] is not allowed"),
        (dict(seeds=[-1]), r"seeds\[0\]=-1 is not allowed; it must be an integer in \[0, 4.29\d*e\+09\]"),
        (dict(seeds=0), r"seeds=0 is not allowed; it must be an integer >= 1"),
        (dict(seeds=[]), r"seeds=\[\] is not allowed"),
    ],
)
def test_run_batch_rejects_bad_concrete_arguments(kwargs, match):
    p = ring()
    args = dict(seeds=2, num_steps=10, record_every=5) | kwargs
    with pytest.raises(ValueError, match=match):
        nsopt.run_batch(nsopt.sgd(0.1), p.oracle(), p.sampler, jnp.zeros((1, 2)), **args)


def test_numpy_integer_sizes_are_accepted():
    p = ring()
    a = nsopt.run_batch(nsopt.sgd(0.1), p.oracle(), p.sampler, jnp.ones((1, 2)), seeds=np.int64(2),
                        num_steps=np.int64(10), record_every=np.int32(5))
    b = nsopt.run_batch(nsopt.sgd(0.1), p.oracle(), p.sampler, jnp.ones((1, 2)), seeds=2, num_steps=10,
                        record_every=5)
    np.testing.assert_array_equal(a.w, b.w)


def test_mismatched_oracle_shape_is_reported():
    oracle = lambda w, xi: jnp.zeros(3)  # noqa: E731
    with pytest.raises(ValueError, match=r"shape \(2,\).*shape \(3,\)"):
        nsopt.run(nsopt.sgd(0.1), oracle, lambda k: 0.0, jnp.zeros(2), jax.random.key(0), 10)
