"""The ``record_every`` bound on memory: a run's compiled program grows with the number of records
``num_steps / record_every``, not with ``num_steps`` (XLA's own accounting, ``memory_analysis``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt
from nsopt.problems import ring


def _memory(algorithm, num_steps, record_every, batch=False):
    p = ring(noise=0.5)
    if batch:  # a vmapped batch of runs (3 seeds x 2 inits), as run_batch builds it
        keys = jax.random.split(jax.random.key(0), 3)
        one = lambda w0, key: nsopt.run(algorithm, p.oracle(), p.sampler, w0, key, num_steps,  # noqa: E731
                                        record_every)
        fn = jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(None, 0))
        fn = (lambda f: lambda w0: f(w0, keys))(fn)
        arg = jnp.zeros((2, 2))
    else:
        fn = lambda w0: nsopt.run(algorithm, p.oracle(), p.sampler, w0, jax.random.key(0), num_steps,  # noqa: E731
                                  record_every)
        arg = jnp.zeros(2)
    out_shape = jax.eval_shape(fn, arg)
    m = jax.jit(fn).lower(arg).compile().memory_analysis()
    if m is None:
        pytest.skip("this backend gives no memory analysis")
    record_bytes = sum(np.prod(s.shape) * s.dtype.itemsize for s in jax.tree.leaves(out_shape))
    return m.output_size_in_bytes, m.temp_size_in_bytes, record_bytes


ALGORITHMS = {
    "sgd": nsopt.sgd(nsopt.schedules.inverse_power(0.5, 10.0, 0.75)),
    "heavy_ball": nsopt.heavy_ball(nsopt.schedules.inverse_power(0.5, 10.0, 0.75),
                                   nsopt.proportional(1.0, nsopt.schedules.inverse_power(0.5, 10.0, 0.75))),
}


@pytest.mark.parametrize(("name", "batch"), [("sgd", False), ("heavy_ball", True)])
def test_memory_follows_records_not_steps(name, batch):
    alg = ALGORITHMS[name]
    # same number of records (100), 4x the steps: the compiled program does not grow at all
    fixed = [_memory(alg, n, n // 100, batch) for n in (1000, 2000, 4000)]
    assert fixed[0][:2] == fixed[1][:2] == fixed[2][:2], fixed
    # 2x and 4x the records at the same record_every: the output grows by exactly the new records
    grow = [_memory(alg, n, 10, batch) for n in (1000, 2000, 4000)]
    out = np.array([g[0] for g in grow], float)
    rec = np.array([g[2] for g in grow], float)
    assert np.all(np.diff(out) > 0)
    np.testing.assert_allclose(np.diff(out), np.diff(rec))  # the growth is the records' bytes, nothing else
    assert out[2] - out[1] == pytest.approx(2 * (out[1] - out[0]))  # linear in the records
    # the scratch memory is not a per-step buffer: far below the bytes of num_steps records
    per_step = (rec[2] - rec[1]) / 2000 * 10  # bytes of one record
    assert grow[2][1] < 0.5 * 4000 * per_step
