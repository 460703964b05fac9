"""Network training throughput: one nsopt job against the loops a user would write, side by side.

Workload: SGD, ``alpha_k = 0.5 / (k + 10)^0.75`` (the main job's default schedule), minibatch of 32
indices drawn with replacement, ``--seeds`` noise sequences from one initialization, ``--steps``
steps, on the README problems ``relu_digits`` (an MLP, ``problem.kink=1.0``) and ``deq_digits``
(a monotone DEQ, conf defaults).  Every implementation uses the same loss (``problem.loss``: the
flax module and the optax cross-entropy) and the same sampler; each draws its own keys.

- nsopt: ``nsopt.compile_batch(nsopt.sgd(schedule), ...)`` (vmap over seeds, ``lax.scan`` over
  steps, divergence flags, records every ``--record-every`` steps), compile apart.
- (a) per seed, a jitted flax + optax train step (``optax.sgd(schedule)``) in a Python loop; timed on
  ``--per-seed`` seeds and scaled linearly to ``--seeds`` (its cost is linear in the seeds).
- (b) a jitted ``jax.vmap`` of the same optax train step over the seeds, in a Python loop.
- (c) hand-written ``jax.jit(jax.vmap(lax.scan(step)))`` of the same network and update.

With several JAX devices (on CPU: ``JAX_NUM_CPU_DEVICES=2``, one per core) nsopt splits the seeds
over them; (b) and (c) are then also timed with the seeds split by hand.

Usage::

    [JAX_NUM_CPU_DEVICES=2] python experiments/benchmarks/training_throughput.py [--problem relu] [--seeds 64] [--steps 2000] \
        [--per-seed 2] [--out results/benchmarks_core.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, timed  # noqa: E402
from _jobdata import compose_job  # noqa: E402

import nsopt  # noqa: E402
from nsopt.schedules import inverse_power  # noqa: E402

PROBLEMS = {"relu": ["problem=relu_digits", "problem.kink=1.0"], "deq": ["problem=deq_digits", "flow=none"]}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--problem", default="relu", choices=sorted(PROBLEMS))
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--record-every", type=int, default=100)
    ap.add_argument("--per-seed", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    problem = compose_job(PROBLEMS[args.problem]).problem
    sched = inverse_power(0.5, 10.0, 0.75)
    S, N = args.seeds, args.steps
    w0 = problem.init(jax.random.key(1))
    keys = jax.random.split(jax.random.key(0), S)
    grad = jax.grad(problem.loss)
    rows = {}

    # nsopt: one job
    t = time.perf_counter()
    go = nsopt.compile_batch(nsopt.sgd(sched), problem.oracle(), problem.sampler,
                             jax.tree.map(lambda a: a[None], w0), S, N, args.record_every)
    c = time.perf_counter() - t
    traj, _ = timed(go)
    compiles = {"nsopt": c}
    runners = {"nsopt": go}

    # (a) per seed: jitted flax + optax step in a Python loop
    opt = optax.sgd(sched)

    def train_step(params, opt_state, key):
        key, sub = jax.random.split(key)
        g = grad(params, problem.sampler(sub))
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key

    step_a = jax.jit(train_step)
    t = time.perf_counter()
    p, s, k = jax.block_until_ready(step_a(w0, opt.init(w0), keys[0]))
    c = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(args.per_seed):
        p, s, k = w0, opt.init(w0), keys[i]
        for _ in range(N):
            p, s, k = step_a(p, s, k)
        jax.block_until_ready(p)
    r = (time.perf_counter() - t) * S / args.per_seed
    rows[f"(a) per-seed jitted flax + optax step, Python loop (timed on {args.per_seed} seeds, x{S / args.per_seed:g})"] = (c, r)
    print("a", c, r, flush=True)

    # (b) vmapped optax step in a Python loop
    step_b = jax.jit(jax.vmap(train_step, in_axes=(None, None, 0)), donate_argnums=())
    step_b2 = jax.jit(jax.vmap(train_step))
    t = time.perf_counter()
    p, s, k = jax.block_until_ready(step_b(w0, opt.init(w0), keys))
    jax.block_until_ready(step_b2(p, s, k))
    c = time.perf_counter() - t
    compiles["b"] = c

    def loop_b(keys, first=step_b, then=step_b2):
        """(b): the jitted vmapped step in a Python loop, from the seeds' keys."""
        def run():
            p, s, k = first(w0, opt.init(w0), keys)
            for _ in range(N - 1):
                p, s, k = then(p, s, k)
            return p
        return run

    runners["b"] = loop_b(keys)

    # (c) hand-written vmap + lax.scan
    def train(params, key):
        def body(carry, kk):
            w, key = carry
            key, sub = jax.random.split(key)
            g = grad(w, problem.sampler(sub))
            a = sched(kk)
            return (jax.tree.map(lambda x, y: x - a * y, w, g), key), None

        (w, _), _ = jax.lax.scan(body, (params, key), jnp.arange(N))
        return w

    t = time.perf_counter()
    fc = jax.jit(jax.vmap(train, in_axes=(None, 0))).lower(w0, keys).compile()
    c = time.perf_counter() - t
    compiles["c"] = c
    runners["c"] = lambda: fc(w0, keys)

    if jax.device_count() > 1:  # (b) and (c) with the seeds split over the devices by hand, as nsopt does:
        # each device runs its own seeds (shard_map; a program split by XLA's partitioner instead
        # all-reduces the DEQ's vmapped while_loop test at every iteration, and on XLA:CPU that
        # rendezvous timed out and aborted the process)
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        mesh = Mesh(np.array(jax.devices()), ("seeds",))
        keys_s = jax.device_put(keys, NamedSharding(mesh, P("seeds")))

        def per_device(f, *specs):
            return jax.jit(jax.shard_map(f, mesh=mesh, in_specs=specs, out_specs=P("seeds"), check_vma=False))

        step_bs = per_device(jax.vmap(train_step, in_axes=(None, None, 0)), P(), P(), P("seeds"))
        step_b2s = per_device(jax.vmap(train_step), P("seeds"), P("seeds"), P("seeds"))
        t = time.perf_counter()
        p, s_, k = jax.block_until_ready(step_bs(w0, opt.init(w0), keys_s))
        jax.block_until_ready(step_b2s(p, s_, k))
        compiles["b2"] = time.perf_counter() - t

        runners["b2"] = loop_b(keys_s, step_bs, step_b2s)
        t = time.perf_counter()
        fc2 = per_device(jax.vmap(train, in_axes=(None, 0)), P(), P("seeds")).lower(w0, keys_s).compile()
        compiles["c2"] = time.perf_counter() - t
        runners["c2"] = lambda: fc2(w0, keys_s)
    times = {k: [] for k in runners}
    for _ in range(args.repeats):  # interleaved, so that load from other processes hits all alike
        for k, fn in runners.items():
            times[k].append(timed(fn)[1])
    print(times, flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    rows = {"nsopt job (`compile_batch`)": (compiles["nsopt"], med["nsopt"]), **rows,
            "(b) jitted vmap of the optax step over seeds, Python loop": (compiles["b"], med["b"]),
            "(c) hand-written `jit(vmap(lax.scan(step)))`": (compiles["c"], med["c"])}
    if "b2" in med:
        rows[f"(b) with the seeds split over the {jax.device_count()} devices by hand"] = (compiles["b2"], med["b2"])
        rows[f"(c) with the seeds split over the {jax.device_count()} devices by hand"] = (compiles["c2"], med["c2"])

    load1 = os.getloadavg()[0]
    ref = rows["nsopt job (`compile_batch`)"][1]
    F_final = np.asarray(traj.objective)[..., -1] if traj.objective is not None else None
    env = "".join(f"{k}={os.environ[k]} " for k in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS") if k in os.environ)
    lines = [f"## Training throughput: {problem.name}, {S} seeds x {N} steps (`{env}python {' '.join(sys.argv)}`)", "",
             f"SGD, minibatch {problem.batch_size}, float32, one init; run times exclude compile (nsopt, (b), (c): "
             f"median of {args.repeats} interleaved repeats; (a) once). 1-minute load "
             f"average {load0:.1f} -> {load1:.1f} (shared 2-core CPU box: absolute times are pessimistic).", "",
             "| implementation | compile (s) | run (s) | steps x seeds / s | nsopt speed-up (run) |",
             "|---|---|---|---|---|"]
    for name, (c, r) in rows.items():
        lines.append(f"| {name} | {c:.2f} | {r:.2f} | {S * N / r:.3g} | {r / ref:.2f}x |")
    lines += ["", f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; jax {jax.__version__} "
              f"({jax.default_backend()}, {jax.device_count()} device(s): JAX_NUM_CPU_DEVICES="
              f"{os.environ.get('JAX_NUM_CPU_DEVICES', 'unset')}; nsopt splits its seeds over them, (a), (b), "
              f"(c) run on the first), optax {optax.__version__}.", ""]
    if F_final is not None:
        lines.insert(-2, f"nsopt final objective (median over seeds): {float(np.nanmedian(F_final)):.4g}.")
    out = "\n".join(lines)
    emit(out, args.out)


if __name__ == "__main__":
    main()
