"""Dense implicit solves under ``vmap`` on CPU: one matrix at a time, never waiting forever.

jaxlib's batched LAPACK kernels (LU, triangular solve, SVD) split a large batch into tasks on
XLA:CPU's intra-op pool and block until they finish; with every pool thread holding such a
kernel, the program hangs (see ``nsopt.implicit.linear.one_matrix_at_a_time`` and
``nsopt/cpu_threads.py``).  The hang tests run in a subprocess with a pool of exactly 2 threads
(``NPROC=2``) and a time limit, so they fail the same way on any machine.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsopt.implicit.linear import lu_solve, one_matrix_at_a_time, singular_values


def _batch(n=6, size=8, seed=0):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    A = jax.random.normal(k1, (size, n, n)) + 3.0 * jnp.eye(n)
    b = jax.random.normal(k2, (size, n))
    return A, b


def test_batched_solve_is_the_unbatched_solve_bit_for_bit():
    A, b = _batch()
    batched = jax.jit(jax.vmap(lu_solve))(A, b)
    for i in range(A.shape[0]):
        assert np.array_equal(np.asarray(batched[i]), np.asarray(lu_solve(A[i], b[i])))
    np.testing.assert_allclose(batched, np.linalg.solve(np.asarray(A), np.asarray(b)[..., None])[..., 0],
                               rtol=1e-5, atol=1e-5)
    s = jax.vmap(singular_values)(A)
    np.testing.assert_allclose(s, np.linalg.svd(np.asarray(A), compute_uv=False), rtol=1e-5)
    # nested vmap, an unbatched operand, trailing columns
    nested = jax.vmap(jax.vmap(lu_solve, in_axes=(None, 0)), in_axes=(0, None))(A, b)
    np.testing.assert_allclose(nested[2, 5], np.linalg.solve(np.asarray(A[2]), np.asarray(b[5])), rtol=1e-5)
    X = jnp.stack([b[0], b[1]], axis=1)
    np.testing.assert_allclose(lu_solve(A[0], X), np.linalg.solve(np.asarray(A[0]), np.asarray(X)), rtol=1e-5)


def test_solve_derivatives_match_finite_differences_and_jax():
    A, b = _batch(n=4, size=3, seed=1)
    A = A.astype(jnp.float32)

    def loss(M, v, solve):
        return jnp.sum(jnp.sin(solve(M, v)))

    g = jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(0, 0, None))(A, b, lu_solve)
    ref = jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(0, 0, None))(A, b, jnp.linalg.solve)
    np.testing.assert_allclose(g[0], ref[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g[1], ref[1], rtol=1e-4, atol=1e-5)
    # central differences in float64 of one entry of B and of b
    A64, b64 = np.asarray(A[0], np.float64), np.asarray(b[0], np.float64)
    f = lambda M, v: float(np.sum(np.sin(np.linalg.solve(M, v))))
    h, E = 1e-6, np.zeros_like(A64)
    E[1, 2] = h
    fd = (f(A64 + E, b64) - f(A64 - E, b64)) / (2 * h)
    assert abs(float(g[0][0, 1, 2]) - fd) <= 1e-3 * max(1.0, abs(fd))
    # second order (the implicit oracle differentiates the solve again)
    H = jax.hessian(lambda M: loss(M, b[0], lu_solve))(A[0])
    H_ref = jax.hessian(lambda M: loss(M, b[0], jnp.linalg.solve))(A[0])
    np.testing.assert_allclose(H, H_ref, rtol=1e-3, atol=1e-4)


def test_one_matrix_at_a_time_keeps_other_platforms_batched_semantics():
    f = one_matrix_at_a_time(jnp.linalg.det)
    A, _ = _batch()
    np.testing.assert_allclose(jax.vmap(f)(A), np.linalg.det(np.asarray(A)), rtol=1e-4)


HANG = r"""
import os, sys
import jax, jax.numpy as jnp
from nsopt.implicit.linear import lu_solve, singular_values

n, size = 24, 4096            # 4096 * 24^3 flops: jaxlib splits each batch over the pool
A = jax.random.normal(jax.random.PRNGKey(0), (2, size, n, n)) + 6.0 * jnp.eye(n)
b = jnp.ones((2, size, n))

@jax.jit
def two_at_once(A, b):        # two independent batched solves: XLA runs them at the same time
    return [jnp.sum(jax.vmap(lu_solve)(A[i], b[i])) + jnp.sum(jax.vmap(singular_values)(A[i]))
            for i in range(2)]

for _ in range(int(sys.argv[1])):
    jax.block_until_ready(two_at_once(A, b))
print("done", len(jax.devices()))
"""


@pytest.mark.parametrize("devices", [1, 2])
def test_concurrent_batched_solves_finish_on_a_two_thread_pool(devices):
    """Two batched dense solves at once on a 2-thread pool (one device), and the same split
    over 2 CPU devices: both finish.  With jaxlib's batched kernels both hang."""
    env = dict(os.environ, NPROC="2", JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices))
    try:
        run = subprocess.run([sys.executable, "-c", HANG, "5"], env=env, capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"batched dense solves on {devices} device(s) did not finish in 120 s (deadlock)")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-2:] == ["done", str(devices)]


def test_import_nsopt_gives_several_cpu_devices_a_spare_pool_thread():
    code = "import os, nsopt; print(os.environ.get('NPROC'))"
    env = {k: v for k, v in os.environ.items() if k not in ("NPROC", "XLA_FLAGS")}
    two = subprocess.run([sys.executable, "-c", code], env=dict(env, JAX_NUM_CPU_DEVICES="2"),
                         capture_output=True, text=True, timeout=60)
    assert int(two.stdout.split()[-1]) >= 3, two.stderr[-2000:]
    flag = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    assert int(flag.stdout.split()[-1]) >= 5, flag.stderr[-2000:]
    one = subprocess.run([sys.executable, "-c", code], env=dict(env, JAX_NUM_CPU_DEVICES="1"),
                         capture_output=True, text=True, timeout=60)
    assert one.stdout.split()[-1] == "None"
    user = subprocess.run([sys.executable, "-c", code], env=dict(env, JAX_NUM_CPU_DEVICES="2", NPROC="7"),
                          capture_output=True, text=True, timeout=60)
    assert user.stdout.split()[-1] == "7"
