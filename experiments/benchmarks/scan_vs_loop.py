"""Why a Python loop of a jitted vmapped step beats ``lax.scan`` on XLA:CPU: small experiments.

The same SGD step on ``relu_digits`` (MLP 64-32-10, minibatch 32, ``--seeds`` seeds, float32),
``--steps`` steps, written as

- ``loop``: ``jit(vmap(step))`` called from Python once per step (the training benchmark's (b));
- ``scan unroll=k``: ``jit(lax.scan(vmap(step)))`` (the benchmark's (c)) with ``unroll=k``;
- ``scan, g independent groups``: the seeds split into ``g`` independent scans in one program;
- ``scan, g async calls``: one program on ``S / g`` seeds called ``g`` times without waiting;
- with several JAX devices (``JAX_NUM_CPU_DEVICES=2``): the scan and the loop with the seeds
  split over the devices.

Every variant computes the loop's numbers (checked, max |diff| printed).  Columns: minimum
(least disturbed by other processes on a shared machine) and median over ``--repeats``
interleaved rounds; ``CPU/wall`` = process CPU time / wall time (2 = both cores busy);
``sleeps/step`` = voluntary context switches of all the process's threads per step
(``getrusage``): a thread blocking to wait for another.

Usage::

    [JAX_NUM_CPU_DEVICES=2] [taskset -c 0] python experiments/benchmarks/scan_vs_loop.py --steps 200
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _jobdata import compose_job  # noqa: E402

from nsopt.schedules import inverse_power  # noqa: E402

PROBLEMS = {"relu": ["problem=relu_digits", "problem.kink=1.0"], "deq": ["problem=deq_digits", "flow=none"]}


def make_step(problem, sched):
    grad = jax.grad(problem.loss)

    def step(w, key, k):
        g = grad(w, problem.sampler(jax.random.fold_in(key, k)))
        a = sched(k)
        return jax.tree.map(lambda x, y: x - a * y, w, g)

    return step


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--problem", default="relu", choices=sorted(PROBLEMS))
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--unroll", default="1,2,8")
    ap.add_argument("--groups", default="2", help="seeds split into this many independent scans")
    ap.add_argument("--hlo", default="", help="folder to write the compiled HLO of the scan and of one step to")
    args = ap.parse_args(argv)
    problem = compose_job(PROBLEMS[args.problem]).problem
    sched = inverse_power(0.5, 10.0, 0.75)
    S, N = args.seeds, args.steps
    w0 = problem.init(jax.random.key(1))
    W = jax.tree.map(lambda a: jnp.broadcast_to(a, (S, *a.shape)) + 0, w0)
    keys = jax.random.split(jax.random.key(0), S)
    step = make_step(problem, sched)
    vstep = jax.vmap(step, in_axes=(0, 0, None))

    one = jax.jit(vstep).lower(W, keys, jnp.int32(0)).compile()

    def loop():
        w = W
        for k in range(N):
            w = one(w, keys, jnp.int32(k))
        return w

    ks = [jnp.int32(k) for k in range(N)]

    def loop_prebuilt():
        w = W
        for k in ks:
            w = one(w, keys, k)
        return w

    runners = {"loop jit(vmap(step))": loop_prebuilt}

    def scanned_on(W, keys, unroll=1):
        def f(w, keys):
            def body(w, k):
                return vstep(w, keys, k), None
            return jax.lax.scan(body, w, jnp.arange(N, dtype=jnp.int32), unroll=unroll)[0]
        return jax.jit(f).lower(W, keys).compile()

    def scanned(unroll):
        return scanned_on(W, keys, unroll)

    def split_scan(groups):
        def f(w, keys):
            outs = []
            for g in range(groups):  # independent while loops: the thunk executor may run them at once
                sl = lambda a: a[g * S // groups:(g + 1) * S // groups]
                wg, kg = jax.tree.map(sl, w), sl(keys)
                outs.append(jax.lax.scan(lambda w, k: (vstep(w, kg, k), None), wg,
                                         jnp.arange(N, dtype=jnp.int32))[0])
            return jax.tree.map(lambda *a: jnp.concatenate(a), *outs)
        return jax.jit(f).lower(W, keys).compile()

    for g in [int(x) for x in args.groups.split(",") if x]:
        c = split_scan(g)
        runners[f"scan, {g} independent groups"] = (lambda c: lambda: c(W, keys))(c)
    for g in [int(x) for x in args.groups.split(",") if x]:  # g calls of one program on S/g seeds
        parts = [jax.tree.map(lambda a: a[i * S // g:(i + 1) * S // g], (W, keys)) for i in range(g)]
        c = scanned_on(*parts[0])
        runners[f"scan, {g} async calls on S/{g} seeds"] = (
            lambda c, parts: lambda: jax.tree.map(lambda *a: jnp.concatenate(a), *[c(*p) for p in parts]))(c, parts)
    if jax.device_count() > 1:  # --xla_force_host_platform_device_count=n: seeds split over n devices
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        split = NamedSharding(Mesh(np.array(jax.devices()), ("s",)), PartitionSpec("s"))
        Ws, keys_s = jax.device_put((W, keys), split)
        cs = jax.jit(lambda w, keys: jax.lax.scan(lambda w, k: (vstep(w, keys, k), None), w,
                                                   jnp.arange(N, dtype=jnp.int32))[0]).lower(Ws, keys_s).compile()
        runners[f"scan sharded over {jax.device_count()} devices"] = lambda: cs(Ws, keys_s)
        ones = jax.jit(vstep).lower(Ws, keys_s, jnp.int32(0)).compile()

        def loop_sharded():
            w = Ws
            for k in ks:
                w = ones(w, keys_s, k)
            return w

        runners[f"loop sharded over {jax.device_count()} devices"] = loop_sharded
    for u in [int(x) for x in args.unroll.split(",") if x]:
        c = scanned(u)
        runners[f"scan unroll={u}"] = (lambda c: lambda: c(W, keys))(c)
    if args.hlo:
        Path(args.hlo).mkdir(parents=True, exist_ok=True)
        Path(args.hlo, "scan.txt").write_text(scanned(1).as_text())
        Path(args.hlo, "step.txt").write_text(one.as_text())
    ref = np.asarray(jax.tree.leaves(loop())[0])
    for name, fn in runners.items():
        got = np.asarray(jax.tree.leaves(fn())[0])
        print(f"{name}: max |diff| to loop {np.max(np.abs(got - ref)):.2e}", flush=True)
    times, cpu, csw = {k: [] for k in runners}, {k: [] for k in runners}, {k: [] for k in runners}
    for _ in range(args.repeats):
        for name, fn in runners.items():
            t, p, r = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - p)
            csw[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - r.ru_nvcsw)
    base = np.min(times["loop jit(vmap(step))"])
    print(f"{args.problem}, {S} seeds x {N} steps, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
          f"affinity {sorted(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.1f}")
    for name, v in times.items():
        m, i = float(np.min(v)), int(np.argmin(v))
        print(f"  {name:32s} {m * 1e3 / N:8.3f} ms/step (min; median {np.median(v) * 1e3 / N:.3f})  "
              f"{m / base:5.2f}x loop   CPU/wall {cpu[name][i] / m:4.2f}  "
              f"sleeps/step {np.median(csw[name]) / N:5.1f}")


if __name__ == "__main__":
    main()
