"""Chunked execution, progress, and sharding over several devices give the same numbers."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import nsopt
from nsopt.problems import ring


def _setup():
    p = ring(noise=0.5)
    a = nsopt.schedules.inverse_power(0.5, 10.0, 0.75)
    return p, nsopt.heavy_ball(a, nsopt.proportional(1.0, a)), p.inits(jax.random.key(2), 3)


def test_chunks_and_progress_give_identical_numbers():
    p, alg, w0 = _setup()
    whole = nsopt.run_batch(alg, p.oracle(), p.sampler, w0, 4, 600, 20, scales=[0.5, 1.0], objective=p.F)
    calls = []
    go = nsopt.compile_batch(alg, p.oracle(), p.sampler, w0, 4, 600, 20, scales=[0.5, 1.0],
                             objective=p.F, chunks=6)
    chunked = go(progress=lambda done, total: calls.append((done, total)))
    assert calls == [(100 * i, 600) for i in range(1, 7)]
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert nsopt.algorithms.progress_chunks(600, 20) == 15 and nsopt.algorithms.progress_chunks(70, 10) == 7
    with pytest.raises(ValueError, match="chunks=7 must be a positive divisor"):
        nsopt.compile_batch(alg, p.oracle(), p.sampler, w0, 4, 600, 20, chunks=7)


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    import nsopt
    from nsopt.problems import ring
    p = ring(noise=0.5)
    a = nsopt.schedules.inverse_power(0.5, 10.0, 0.75)
    alg = nsopt.sgd(a)
    w0 = p.inits(jax.random.key(2), 3)
    seeds = int(sys.argv[1])
    t = nsopt.run_batch(alg, p.oracle(), p.sampler, w0, seeds, 400, 40, scales=[1.0, 2.0], objective=p.F)
    shards = len(t.w.sharding.device_set) if hasattr(t.w, "sharding") else 1
    print(json.dumps({"devices": jax.device_count(), "shards": shards,
                      "w": np.asarray(t.w).tolist(), "obj": np.asarray(t.objective).tolist()}))
    """
)


def _run(devices, seeds):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(seeds)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("seeds", [4, 3])  # 3 seeds x 3 inits: no even split, runs unsharded
def test_sharded_batch_equals_single_device(seeds):
    one = _run(1, seeds)
    two = _run(2, seeds)
    assert one["devices"] == 1 and two["devices"] == 2
    assert two["shards"] == (2 if seeds % 2 == 0 else 1)
    np.testing.assert_array_equal(np.array(one["w"]), np.array(two["w"]))
    np.testing.assert_array_equal(np.array(one["obj"]), np.array(two["obj"]))
