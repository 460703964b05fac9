"""APT distance against an independent NumPy computation, its limit behaviour, batching and errors."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
import nsopt.flow
from nsopt.problems import ring
from nsopt.schedules import TheoryWarning, constant, inverse_power

NOISE = 0.5


def ring_field_np(w):
    """Mean field of the ring, d/dw | ||w||^2 - 1 | by hand (abs'(0) = 0)."""
    return 2.0 * np.sign(w @ w - 1.0) * w


def interp_np(tau, x, t):
    return np.array([np.interp(t, tau, x[:, d]) for d in range(x.shape[1])])


def apt_np(tau, w, T, times, n, y=None, r=None):
    """sup_i ||w(t + i h) - g(i h)||, explicit Euler in plain NumPy (heavy ball on the clock tau = r u)."""
    tau, w, h = np.asarray(tau), np.asarray(w), T / n
    out = []
    for t in np.asarray(times):
        g = interp_np(tau, w, t)
        m = None if y is None else interp_np(tau, np.asarray(y), t)
        dmax = 0.0
        for i in range(n):
            if y is None:
                g = g - h * ring_field_np(g)
            else:
                g, m = g - h * m, m + (h / r) * (ring_field_np(g) - m)
            s = t + (i + 1) * h
            diff = interp_np(tau, w, s) - g
            if y is not None:
                diff = np.concatenate([diff, interp_np(tau, np.asarray(y), s) - m])
            dmax = max(dmax, float(np.linalg.norm(diff)))
        out.append(dmax)
    return np.array(out)


@pytest.fixture(scope="module")
def problem():
    return ring(noise=NOISE)


def test_single_sgd_run_matches_numpy(problem):
    alg = nsopt.sgd(inverse_power(0.3, 10.0, 0.75))
    traj = nsopt.run(alg, problem.oracle(), problem.sampler, jnp.array([1.4, -0.6]), jax.random.key(3), 3000, 5)
    T, dt = 0.8, 0.01
    d = nsopt.flow.apt_distance(traj, problem.field, T, dt=dt, num_times=8)
    times = nsopt.flow.default_times(traj, T, 8)
    np.testing.assert_allclose(times, np.linspace(0.0, float(traj.tau[-1]) - T, 8), rtol=1e-13)
    ref = apt_np(traj.tau, traj.w, T, times, 80)
    assert d.shape == (8,) and np.all(ref > 1e-3)
    np.testing.assert_allclose(d, ref, rtol=1e-9, atol=1e-12)


def test_batch_matches_numpy_per_trajectory(problem):
    alg = nsopt.sgd(inverse_power(0.3, 10.0, 0.75))
    w0 = jnp.array([[1.4, -0.6], [0.2, 0.3]])
    batch = nsopt.run_batch(alg, problem.oracle(), problem.sampler, w0, 2, 1000, 4, scales=[0.5, 1.0])
    times = jnp.array([0.0, 0.7, 1.2])
    d = nsopt.flow.apt_distance(batch, problem.field, 0.5, times=times, dt=0.01)
    assert d.shape == (2, 2, 2, 3)
    for idx in np.ndindex(2, 2, 2):
        ref = apt_np(batch.tau[idx], batch.w[idx], 0.5, times, 50)
        np.testing.assert_allclose(d[idx], ref, rtol=1e-9, atol=1e-12)
    # Per-trajectory start times (shape batch + (J,)) agree with the shared ones.
    d2 = nsopt.flow.apt_distance(batch, problem.field, 0.5, times=jnp.broadcast_to(times, (2, 2, 2, 3)), dt=0.01)
    np.testing.assert_array_equal(d, d2)


def test_heavy_ball_matches_numpy_on_the_tau_clock(problem):
    alpha = inverse_power(0.3, 10.0, 0.75)
    alg = nsopt.heavy_ball(alpha, nsopt.proportional(2.0, alpha))
    scales = jnp.array([0.5, 1.0])
    batch = nsopt.run_batch(alg, problem.oracle(), problem.sampler, jnp.array([[1.4, -0.6]]), 1, 1200, 4,
                            scales=scales)
    r = nsopt.flow.heavy_ball_r(alg, scales)
    np.testing.assert_allclose(r, [0.25, 0.5])
    d = nsopt.flow.apt_distance(batch, problem.field, 0.5, times=jnp.array([0.1, 1.3]), dt=0.01, r=r)
    for c in range(2):
        ref = apt_np(batch.tau[0, 0, c], batch.w[0, 0, c], 0.5, [0.1, 1.3], 50, y=batch.y[0, 0, c], r=float(r[c]))
        np.testing.assert_allclose(d[0, 0, c], ref, rtol=1e-9, atol=1e-12)


def test_heavy_ball_iterates_shadow_the_system_with_r_equal_scale_over_c():
    """Deterministic heavy ball, small steps: distance O(step) with r = s/c, O(1) with the inverse."""
    A = jnp.array([[1.0, 0.3], [0.3, 2.0]])
    s, c = 0.5, 2.0
    alg = nsopt.heavy_ball(1e-3, nsopt.proportional(c, 1e-3), scale=s)
    traj = nsopt.run(alg, lambda w, xi: A @ w, lambda k: jnp.zeros(()), jnp.array([1.0, -1.0]), jax.random.key(0), 4000)
    field = lambda w: A @ w
    kw = {"times": jnp.array([0.0, 0.5]), "dt": s * 1e-3}
    good = nsopt.flow.apt_distance(traj, field, 1.0, r=nsopt.flow.heavy_ball_r(alg), **kw)
    assert float(nsopt.flow.heavy_ball_r(alg)) == s / c
    assert np.all(good < 5e-3)
    for wrong in (c, c / s, 1.0):
        assert np.all(nsopt.flow.apt_distance(traj, field, 1.0, r=wrong, **kw) > 0.1)


SCHEDULES = {  # 10^5 steps: every schedule reaches tau of a few tens
    "p=0.6": inverse_power(0.5, 100.0, 0.6),
    "p=0.8": inverse_power(1.0, 100.0, 0.8),
    "p=1": inverse_power(5.0, 100.0, 1.0),
}


def _thirds(problem, schedule, T=1.0, J=24):
    # Same shapes for every schedule (constant included): one compiled run and one APT program.
    w0 = jnp.array([[1.6, 0.4], [0.3, -0.5]])
    batch = nsopt.run_batch(nsopt.sgd(schedule), problem.oracle(), problem.sampler, w0, 8, 100_000, 20)
    d = np.asarray(nsopt.flow.apt_distance(batch, problem.field, T, dt=T / 1000, num_times=J))
    med = np.median(d.reshape(-1, J), axis=0)
    # Skip j = 0 (transient from the initial point); compare the early and late thirds.
    return med[1 : J // 3].mean(), med[-J // 3 :].mean()


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_distance_decreases_for_l2_minus_l1_schedules(problem, name):
    early, late = _thirds(problem, SCHEDULES[name])
    # The noise contribution is ~ NOISE * sqrt(alpha(t) T): at least a factor 2 over the horizon.
    assert late < 0.5 * early, (early, late)
    assert late < 0.02


def test_distance_does_not_decrease_for_a_constant_step(problem):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TheoryWarning)
        early, late = _thirds(problem, constant(1e-3))  # tau up to 100
    assert 0.7 * early < late < 1.4 * early, (early, late)
    # ~ NOISE * sqrt(1e-3) / 2: flat at the noise level, far above the Euler floor (~2 dt = 2e-3)
    assert late > 0.01


def _spiral(num=500, y=False):
    """A hand-made trajectory (no run to compile): tau = 0.01 k, w on a decaying spiral."""
    tau = 0.01 * jnp.arange(num, dtype=jnp.float64)
    w = jnp.stack([jnp.exp(-tau) * jnp.cos(3 * tau), jnp.exp(-tau) * jnp.sin(3 * tau)], -1) + 1.0
    return nsopt.Trajectory(w=w, tau=tau, k=jnp.arange(num), y=(w if y else None))


def test_same_step_count_reuses_the_compiled_program(problem):
    """T, dt and times are arguments, not constants: a new T with the same step count does not retrace
    (as long as the merged walk keeps its length: the same ``bit_length`` of the records per step)."""
    traces = []

    def field(w):
        traces.append(1)
        return problem.field(w)

    traj = _spiral()
    nsopt.flow.apt_distance(traj, field, 1.0, dt=0.1, num_times=4)
    n = len(traces)
    nsopt.flow.apt_distance(traj, field, 1.2, dt=0.12, num_times=4)  # 11 -> 13 records per step: 4 levels
    nsopt.flow.apt_distance(traj, field, 1.0, times=jnp.array([0.5, 1.0, 2.0, 3.0]), dt=0.1)
    assert len(traces) == n
    nsopt.flow.apt_distance(traj, field, 1.0, dt=0.05, num_times=4)  # 20 steps: a new program
    assert len(traces) > n


def test_errors_are_clear(problem):
    alpha = inverse_power(0.3, 10.0, 0.75)
    hb_traj, sgd_traj = _spiral(200, y=True), _spiral(200)
    with pytest.raises(ValueError, match="heavy-ball trajectory.*r= is required.*heavy_ball_r"):
        nsopt.flow.apt_distance(hb_traj, problem.field, 1.0)
    with pytest.raises(ValueError, match="r=0.5 was given but traj.y is None"):
        nsopt.flow.apt_distance(sgd_traj, problem.field, 1.0, r=0.5)
    with pytest.raises(ValueError, match="r must be > 0"):
        nsopt.flow.apt_distance(hb_traj, problem.field, 1.0, r=-1.0)
    with pytest.raises(ValueError, match="longer than the recorded horizon"):
        nsopt.flow.apt_distance(sgd_traj, problem.field, 1e3)
    with pytest.raises(ValueError, match=r"does not leave room for the window T=1.0.*allowed start times"):
        nsopt.flow.apt_distance(sgd_traj, problem.field, 1.0, times=[0.0, float(sgd_traj.tau[-1])])
    with pytest.raises(ValueError, match="times must have shape"):
        nsopt.flow.apt_distance(sgd_traj, problem.field, 1.0, times=jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="T must be a finite number > 0"):
        nsopt.flow.apt_distance(sgd_traj, problem.field, 0.0)
    with pytest.raises(TypeError, match="T must be a concrete number"):
        jax.jit(lambda T: nsopt.flow.apt_distance(sgd_traj, problem.field, T))(1.0)
    with pytest.raises(ValueError, match="does not broadcast to the batch shape"):
        nsopt.flow.apt_distance(hb_traj, problem.field, 1.0, r=jnp.ones(3))
    with pytest.raises(ValueError, match="method must be one of"):
        nsopt.flow.apt_distance(sgd_traj, problem.field, 1.0, method="midpoint")
    with pytest.raises(ValueError, match="beta_k / alpha_k constant"):
        nsopt.flow.heavy_ball_r(nsopt.heavy_ball(alpha, 0.5))


def test_diverged_runs_give_nan_not_garbage(problem):
    traj = _spiral(300)
    w = traj.w.at[200:].set(jnp.nan)
    bad = nsopt.Trajectory(w=w, tau=traj.tau, k=traj.k)
    d = nsopt.flow.apt_distance(bad, problem.field, 0.5, times=jnp.array([0.1, 1.9]), dt=0.05)
    assert np.isfinite(d[0]) and np.isnan(d[1])


def test_heavy_ball_r_defaults_to_the_recorded_coupling():
    """nsopt.heavy_ball records r_k = s alpha_k / beta_k; apt_distance and lyapunov use it when r is omitted."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import nsopt
    from nsopt.problems import ring

    p = ring(noise=0.3)
    a = nsopt.schedules.inverse_power(0.2, 5.0, 0.75)
    alg = nsopt.heavy_ball(a, nsopt.proportional(0.5, a), scale=2.0)
    traj = nsopt.run(alg, p.oracle(), p.sampler, jnp.array([1.5, 0.2]), jax.random.key(0), 400, 4)
    np.testing.assert_allclose(traj.r, 2.0 / 0.5, rtol=1e-12)  # r = s / c
    d_default = nsopt.flow.apt_distance(traj, p.field, 1.0)
    d_given = nsopt.flow.apt_distance(traj, p.field, 1.0, r=nsopt.flow.heavy_ball_r(alg))
    np.testing.assert_array_equal(d_default, d_given)
    np.testing.assert_array_equal(nsopt.flow.lyapunov(traj, p.F), nsopt.flow.lyapunov(traj, p.F, 4.0))
    sgd = nsopt.run(nsopt.sgd(a), p.oracle(), p.sampler, jnp.array([1.5, 0.2]), jax.random.key(0), 40, 4)
    assert sgd.r is None


def _apt_binary_search(traj, field, T, times, n):
    """The pre-walk implementation: every query located by ``jnp.searchsorted`` (interpolate_path)."""
    from nsopt.flow.interpolate import interpolate_path

    h = T / n

    def single(tau, w, ts):
        def body(carry, i):
            g, dmax = carry
            g = g - h * jax.vmap(field)(g)
            d = jnp.linalg.norm(interpolate_path(tau, w, ts + (i + 1) * h) - g, axis=-1)
            return (g, jnp.maximum(dmax, d)), None

        (_, dmax), _ = jax.lax.scan(body, (interpolate_path(tau, w, ts), jnp.zeros(ts.shape, tau.dtype)),
                                    jnp.arange(n))
        return dmax

    return jax.jit(jax.vmap(single))(traj.tau, traj.w, times)


@pytest.mark.parametrize("dt", [0.01, 0.002])
def test_merged_walk_gives_the_numbers_of_the_binary_search(problem, dt):
    """Many records per flow step (dense late records) and few: bit-identical distances."""
    from nsopt.flow.interpolate import walk_bound

    alg = nsopt.sgd(inverse_power(0.5, 10.0, 0.75))
    w0 = problem.inits(jax.random.key(1), 3)
    b = nsopt.run_batch(alg, problem.oracle(), problem.sampler, w0, 3, 4000)
    flat = jax.tree.map(lambda a: a.reshape((9,) + a.shape[3:]), b)
    T = 0.5
    most = walk_bound(flat.tau, dt)
    assert most is not None and most >= 2  # the walk path is the one tested, over several records per step
    times = nsopt.flow.default_times(flat, T, 37)
    d = nsopt.flow.apt_distance(flat, problem.field, T, times=times, dt=dt)
    ref = _apt_binary_search(flat, problem.field, T, times.astype(flat.tau.dtype), round(T / dt))
    np.testing.assert_array_equal(np.asarray(d), np.asarray(ref))


def test_advance_count_equals_searchsorted_with_ties_and_nan_tail():
    from nsopt.flow.interpolate import advance_count, records_per_step

    rng = np.random.default_rng(0)
    steps = rng.exponential(1.0, 400) * (rng.random(400) < 0.7)  # 30% zero-length segments (tied records)
    tau = np.concatenate([[0.0], np.cumsum(steps)])
    tau[350:] = np.nan  # a diverged run: NaN records count as +inf, as in searchsorted
    h = 0.8
    most = records_per_step(tau, h)
    t = np.linspace(-0.5, np.nanmax(tau) + 2.0, 700)  # increments < h, also below tau_0 and past the end
    assert np.max(np.diff(t)) < h
    tau_j, t_j = jnp.asarray(tau), jnp.asarray(t)
    count = jnp.searchsorted(tau_j, t_j[:1], side="right")
    got = [int(count[0])]
    for k in range(1, len(t)):
        count = advance_count(tau_j, count, t_j[k:k + 1], most)
        got.append(int(count[0]))
    ref = np.asarray(jnp.searchsorted(tau_j, t_j, side="right"))
    assert np.max(np.diff(ref)) >= 3  # some steps pass several records at once
    np.testing.assert_array_equal(got, ref)


def _records_per_step_by_rows(tau, h):
    """Independent reference: per row, ``searchsorted`` of every record's window end (finite records)."""
    flat = np.asarray(tau, np.float64).reshape(-1, np.shape(tau)[-1])
    fin = flat[np.isfinite(flat)]
    top = float(np.max(np.abs(fin))) if fin.size else 0.0
    reach = h * (1 + 1e-6) + 16 * np.finfo(np.float32).eps * top
    most = 0
    for row in flat:
        row = row[np.isfinite(row)]
        if row.size:
            most = max(most, int(np.max(np.searchsorted(row, row + reach, side="right") - np.arange(row.size))))
    return most


def test_records_per_step_and_walk_bound_equal_a_per_row_search():
    """Ties, NaN/inf tails, all-NaN batches, windows wider than the run: the vectorized count is exact."""
    from nsopt.flow.interpolate import records_per_step, walk_bound

    rng = np.random.default_rng(1)
    seen = set()
    for trial in range(300):
        b, n = int(rng.integers(1, 5)), int(rng.integers(2, 200))
        steps = rng.exponential(1.0, (b, n)) * (rng.random((b, n)) < rng.random())  # tied records
        tau = np.cumsum(steps, -1) - 5 * rng.random()
        if trial % 3 == 0:  # diverged runs: a non-finite tail from a random record on
            for row, cut in zip(tau, rng.integers(0, n + 1, b)):
                row[cut:] = (np.nan, np.inf)[trial % 2]
        if trial % 29 == 0:
            tau[:] = np.nan
        h = float(rng.exponential(3.0))
        ref = _records_per_step_by_rows(tau, h)
        seen.add(ref)
        assert records_per_step(tau, h) == ref, (trial, h)
        levels = ref.bit_length()
        expect = (1 << levels) - 1 if levels < np.log2(max(n, 2)) else None
        assert walk_bound(tau, h) == expect, trial
    assert 0 in seen and max(seen) > 20  # the cases cover empty and long windows


def test_a_run_gets_the_same_distances_alone_and_in_a_batch(problem):
    """One trajectory at a time (the CPU layout): a run's distances do not depend on the batch around it."""
    alg = nsopt.sgd(inverse_power(0.5, 10.0, 0.75))
    b = nsopt.run_batch(alg, problem.oracle(), problem.sampler, problem.inits(jax.random.key(4), 3), 2, 1500)
    times = jnp.linspace(0.2, 2.0, 11)
    d = nsopt.flow.apt_distance(b, problem.field, 0.5, times=times, dt=0.01)
    one = jax.tree.map(lambda a: a[1, 2, 0], b)
    d_one = nsopt.flow.apt_distance(one, problem.field, 0.5, times=times, dt=0.01)
    np.testing.assert_array_equal(np.asarray(d[1, 2, 0]), np.asarray(d_one))
