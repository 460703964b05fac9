"""Several devices on every batched path: run_configs, the flow diagnostics, the helper itself.

Runs in a subprocess with 2 forced host devices (``XLA_FLAGS`` set before JAX starts).
Every batched call is made twice in that process, split over the 2 devices (the default)
and with ``shard=False`` (everything on one device): the flow diagnostics give bitwise the
same arrays; ``run_configs`` the same up to rounding (the partitioned program of a batched
schedule parameter may round its last bit differently: 1e-16 here, float64); the split
arrays must really be split (their ``.sharding``), a batch that does not divide evenly is
replicated, and ``shard=True`` refuses it naming both numbers.
"""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np
import nsopt
from nsopt.algorithms.devices import shard_leading
from nsopt.problems import ring

assert len(jax.devices()) == 2
out = {}

def split(x):  # really split over both devices (not a copy on each)
    return len(x.sharding.device_set) == 2 and not x.sharding.is_fully_replicated

def replicated(x):
    return len(x.sharding.device_set) == 2 and x.sharding.is_fully_replicated

def same(a, b):  # the largest relative difference (0.0: bitwise equal)
    d = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and np.array_equal(np.isfinite(x), np.isfinite(y))
        d = max(d, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-300), initial=0.0)))
    return d

# the helper
a = shard_leading({"runs": jnp.zeros((4, 3)), "scalar": jnp.zeros(()), "number": 1.5})
out["helper"] = [split(a["runs"]), replicated(a["scalar"]), a["number"] == 1.5]
out["helper_uneven"] = replicated(shard_leading(jnp.zeros((3, 2))))
try:
    shard_leading(jnp.zeros((3, 2)), True)
    out["helper_strict"] = "no error"
except ValueError as e:
    out["helper_strict"] = str(e)
out["helper_off"] = shard_leading(np.zeros((4, 2)), False).__class__.__name__

# run_configs: 4 schedule parameters over 2 devices
p = ring(noise=0.3)
build = lambda a: (nsopt.sgd(nsopt.schedules.inverse_power(a, 10.0, 0.75)), p.oracle(), p.sampler, p.F)
w0 = jnp.array([[1.5, 0.3], [0.1, -0.4]])
configs = jnp.array([0.1, 0.2, 0.3, 0.4])
two = nsopt.run_configs(build, configs, w0, 2, 100, 10)
one = nsopt.run_configs(build, configs, w0, 2, 100, 10, shard=False)
out["run_configs"] = [split(two.w), split(two.objective), same(one, two)]

# the flow diagnostics of heavy ball (Lyapunov curves too): 4 runs split, 3 replicated,
# from a batch on one device and from a batch already split by run_batch
hb = nsopt.heavy_ball(nsopt.schedules.inverse_power(0.3, 10.0, 0.75), nsopt.proportional(1.0))
for where, shard in (("one", False), ("split", None)):
    traj = nsopt.run_batch(hb, p.oracle(), p.sampler, w0, 4, 400, 4, objective=p.F, shard=shard)
    for n in (4, 3):
        sub = jax.tree.map(lambda x: x[:n], traj)
        two = nsopt.flow.diagnose(sub, p.field, 1.0, F=p.F)
        one = nsopt.flow.diagnose(sub, p.field, 1.0, F=p.F, shard=False)
        d = same((one.distance, one.grid_distance, one.error, one.lyapunov),
                 (two.distance, two.grid_distance, two.error, two.lyapunov))
        check = split if n == 4 else replicated
        out[f"diagnose_{where}_{n}"] = [check(two.distance), check(two.error), check(two.lyapunov), d]

# presets that vmap their own batches: the same arrays as their kernels on unsplit inputs
from nsopt.presets import artificial_critical as ac, clarke_inverse as ci, integral_rule as ir, lorenz as lz
kl = nsopt.problems.kinked_line()
pts = {"a": (-1.0, 0.0), "b": (-0.5, 0.3), "c": (-1.5, -0.2), "d": (-0.3, 0.5)}
rho, key = np.array([0.1, 0.01]), jax.random.key(0)
table = ac.criticality_table(kl, pts, rho, key, 8)
keys = jax.random.split(key, 8).reshape(4, 2)
norm, lower = ac._criticality_grid(kl, jnp.asarray(list(pts.values())), jnp.asarray(rho), keys, 8)
out["artificial_critical"] = same([t for t in table.values()], list(np.stack([norm, lower], -1)))
sel, at = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, -0.5]]), np.array([0.0, 0.5, -1.0])
mean, se = ir.oracle_means("pm1", sel, at, 64, key)
s = jax.vmap(ir.SignedAbs(jnp.asarray(True), jnp.zeros(()), jnp.zeros(())).sampler)(
    jax.random.split(key, 64))
out["integral_rule"] = same((mean, se), ir._oracle_stats(jnp.asarray(sel), jnp.asarray(at), s, jnp.asarray(True)))
u = np.random.default_rng(0).uniform(-1, 1, (4, 3))
ref = lz._lower_level_arrays(jnp.asarray(u), jnp.asarray(0.1))
r = lz.lower_level_check(u, 0.1)
out["lorenz"] = same([r["dz_du_max_abs"], r["direction_minus_L_max_abs"]],
                    [np.max(np.abs(ref["jac"])), np.max(np.abs(ref["direction"] - ref["v"]))])
theta = np.random.default_rng(1).uniform(-1, 1, (6, 2))
split_j = ci._jacobians(nsopt.algorithms.shard_leading(jnp.asarray(theta)))
whole_j = ci._jacobians(jax.device_put(jnp.asarray(theta), jax.devices()[0]))
# one shard_map computes all four outputs per device; XLA hands the Jacobians back replicated,
# Psi's values and the finite differences split
out["clarke_inverse"] = [split(split_j[3]) and split(split_j[2]), same(list(split_j), list(whole_j))]
print(json.dumps(out))
"""


def test_two_devices_split_batches_and_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               JAX_ENABLE_X64="1")
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["helper"] == [True, True, True]
    assert out["helper_uneven"] is True
    assert "cannot shard 3 runs" in out["helper_strict"] and "multiple of 2" in out["helper_strict"]
    assert out["helper_off"] == "ndarray"
    assert out["run_configs"][:2] == [True, True] and out["run_configs"][2] < 1e-12, out
    for where in ("one", "split"):
        assert out[f"diagnose_{where}_4"] == [True, True, True, 0.0], out
        assert out[f"diagnose_{where}_3"] == [True, True, True, 0.0], out
    assert out["artificial_critical"] < 1e-12 and out["integral_rule"] < 1e-12 and out["lorenz"] < 1e-12, out
    assert out["clarke_inverse"][0] is True and out["clarke_inverse"][1] < 1e-12, out
