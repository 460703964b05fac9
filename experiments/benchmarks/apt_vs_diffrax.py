"""APT distances: ``nsopt.flow.apt_distance`` vs the same computation with diffrax's Euler solver.

Workload: 256 noisy SGD trajectories on the 2-D ring toy ``| ||w||^2 - 1 | + <xi, w>``
(16 seeds x 16 inits, ``xi ~ N(0, 0.25 I)``, step ``0.5 / (k + 10)^0.75``), each with
10^4 recorded points; APT distances ``sup_{s <= T} ||w(t_j + s) - g_j(s)||`` at 200
start times per trajectory, ``T = 1``, flow step ``dt = 0.01`` (100 Euler steps).

- nsopt: one compiled call; per trajectory, a ``lax.scan`` over flow steps that
  advances all 200 flows together and keeps a running max of the distance to the
  interpolated iterates (memory ``O(start times)``).
- diffrax: ``diffeqsolve(ODETerm(-field), Euler(), dt0=dt, SaveAt(ts=s-grid))`` from
  every start point, vmapped over start times and trajectories in one jitted call,
  then the distance to the interpolated iterates on the saved grid and its max
  (what a user writes with diffrax; memory ``O(start times x steps)``).

Both run in float64 on the same data, the same Euler steps and the same grid; the
script checks that they agree before timing.  Compile time is reported apart;
run times are taken over ``--repeats`` executions, alternating the two
(so that load from other processes hits both alike).

Usage::

    python experiments/benchmarks/apt_vs_diffrax.py [--trajectories 256] [--records 10000] \
        [--times 200] [--T 1.0] [--dt 0.01] [--repeats 5] [--out results/benchmarks_flow.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")

import argparse
import re
import platform
import sys
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import nsopt
import nsopt.flow
from nsopt.flow.interpolate import interpolate_path
from nsopt.problems import ring

sys.path.insert(0, str(Path(__file__).parent))
from _common import timed  # noqa: E402


def timed_interleaved(fns, repeat):
    """Run times of each function, alternating them (load from other processes hits both alike)."""
    ts = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            jax.block_until_ready(fn())
            ts[i].append(time.perf_counter() - t)
    return [np.asarray(x) for x in ts]


def diffrax_apt(field, T, dt, n, one_at_a_time=False):
    """APT distance with diffrax: Euler from each start point, saved on the s-grid, then max over it.

    ``one_at_a_time``: trajectories through ``lax.map`` instead of ``vmap`` (what nsopt does on CPU)."""
    term = diffrax.ODETerm(lambda t, y, args: -field(y))
    solver = diffrax.Euler()
    s_grid = dt * jnp.arange(n + 1)

    def one_start(tau, w, t0):
        g0 = interpolate_path(tau, w, t0)
        sol = diffrax.diffeqsolve(
            term, solver, t0=0.0, t1=T, dt0=dt, y0=g0, saveat=diffrax.SaveAt(ts=s_grid),
            stepsize_controller=diffrax.ConstantStepSize(), max_steps=n + 1,
        )
        wt = interpolate_path(tau, w, t0 + s_grid)
        return jnp.max(jnp.linalg.norm(wt - sol.ys, axis=-1))

    per_traj = jax.vmap(one_start, in_axes=(None, None, 0))
    if one_at_a_time:
        return jax.jit(lambda tau, w, t: jax.lax.map(lambda a: per_traj(*a), (tau, w, t)))
    return jax.jit(jax.vmap(per_traj, in_axes=(0, 0, 0)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trajectories", type=int, default=256)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--times", type=int, default=200)
    ap.add_argument("--T", type=float, default=1.0)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/benchmarks_flow.md")
    args = ap.parse_args(argv)

    n_seeds = round(np.sqrt(args.trajectories))
    if n_seeds * n_seeds != args.trajectories:
        raise SystemExit(f"--trajectories must be a square (seeds x inits grid), got {args.trajectories}")
    load0 = os.getloadavg()

    problem = ring(noise=0.5)
    alg = nsopt.sgd(nsopt.schedules.inverse_power(0.5, 10.0, 0.75))
    w0 = problem.inits(jax.random.key(1), n_seeds)
    t = time.perf_counter()
    batch = jax.block_until_ready(
        nsopt.run_batch(alg, problem.oracle(), problem.sampler, w0, n_seeds, args.records - 1)
    )
    t_gen = time.perf_counter() - t
    flat = jax.tree.map(lambda a: a.reshape((args.trajectories,) + a.shape[3:]), batch)
    assert flat.w.shape == (args.trajectories, args.records, 2), flat.w.shape
    times = nsopt.flow.default_times(flat, args.T, args.times)
    n = int(np.ceil(args.T / args.dt - 1e-9))
    h = args.T / n

    def ours():
        return nsopt.flow.apt_distance(flat, problem.field, args.T, times=times, dt=args.dt)

    from nsopt.flow import apt as _apt_mod

    x_state, r_state, _ = _apt_mod.flow_state(flat, None, flat.tau.dtype, "benchmark")

    def ours_search():  # the same kernel with the binary search (jnp.searchsorted) for every query
        return _apt_mod._apt(flat.tau, x_state, problem.field, times.astype(flat.tau.dtype), jnp.asarray(h),
                             r_state, n, _apt_mod.as_method("euler"), 1, False, None)

    most = _apt_mod.walk_bound(flat.tau, h)
    kernel_args = (flat.tau, x_state, problem.field, times.astype(flat.tau.dtype), jnp.asarray(h), r_state, n,
                   _apt_mod.as_method("euler"), 1, False, most)

    def ours_vmapped():  # the same kernel with all trajectories vmapped at once (the previous layout)
        return _apt_mod._apt(*kernel_args, args.trajectories)

    def ynn_fusions(runs_at_once):  # XLA:CPU's YNNPACK fusions in the compiled kernel
        text = _apt_mod._apt.lower(*kernel_args, runs_at_once).compile().compiled.as_text()
        return len(re.findall(r"%ynn_fusion[.0-9]* = ", text))

    theirs_fn = diffrax_apt(problem.field, args.T, h, n)
    theirs_map_fn = diffrax_apt(problem.field, args.T, h, n, one_at_a_time=True)

    def theirs():
        return theirs_fn(flat.tau, flat.w, times)

    def theirs_map():
        return theirs_map_fn(flat.tau, flat.w, times)

    # first calls: compile + run
    (d_ours, c_ours), (d_theirs, c_theirs), (d_theirs_map, c_theirs_map), (d_search, c_search), \
        (d_vmapped, c_vmapped) = (timed(f) for f in (ours, theirs, theirs_map, ours_search, ours_vmapped))
    same = bool(jnp.array_equal(d_ours, d_search))
    print(f"merged walk (bound {most} records per step) == binary search, bit for bit: {same}")
    if not same:
        raise SystemExit("the merged walk and the binary search disagree; not timing")
    err_layout = float(jnp.max(jnp.abs(d_ours - d_vmapped)))
    err = float(max(jnp.max(jnp.abs(d_ours - d_theirs)), jnp.max(jnp.abs(d_ours - d_theirs_map))))
    print(f"agreement: max |d_nsopt - d_diffrax| = {err:.2e} (max d = {float(d_ours.max()):.3f})")
    if not err < 1e-8:
        raise SystemExit(f"the two computations disagree (max abs difference {err:.3e}); not timing")

    t_ours, t_theirs, t_search, t_map, t_vm = timed_interleaved(
        [ours, theirs, ours_search, theirs_map, ours_vmapped], args.repeats)
    r_map, r_vm = float(np.median(t_map)), float(np.median(t_vm))
    ynn_one, ynn_all = ynn_fusions(1), ynn_fusions(args.trajectories)
    r_search = float(np.median(t_search))
    load1 = os.getloadavg()
    r_ours, r_theirs = float(np.median(t_ours)), float(np.median(t_theirs))
    ratio = r_theirs / r_ours
    ratios = t_theirs / t_ours
    cmd = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    work = args.trajectories * args.times * n
    lines = [
        "# Benchmark: APT distances, nsopt.flow vs diffrax (Euler)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Workload: {args.trajectories} SGD trajectories (ring toy, {n_seeds} seeds x {n_seeds} inits) x {args.records} "
        f"recorded points; APT distance at {args.times} start times per trajectory, window T = {args.T:g}, "
        f"Euler step dt = {h:g} ({n} steps): {work:.3g} flow steps + as many interpolations. "
        f"float64. Both compute the same numbers (max abs difference {err:.1e}).",
        "",
        "| implementation | compile + first run (s) | run (s), median of "
        f"{args.repeats} | run (s), min | flow steps / s (median) |",
        "|---|---|---|---|---|",
        f"| `nsopt.flow.apt_distance` (lax.scan, running max, merged walk) | {c_ours:.2f} | {r_ours:.3f} | "
        f"{t_ours.min():.3f} | {work / r_ours:.3g} |",
        f"| the same kernel with `jnp.searchsorted` per query (the previous lookup) | {c_search:.2f} | "
        f"{r_search:.3f} | {t_search.min():.3f} | {work / r_search:.3g} |",
        f"| the same kernel with all trajectories vmapped at once (the previous layout) | {c_vmapped:.2f} | "
        f"{r_vm:.3f} | {t_vm.min():.3f} | {work / r_vm:.3g} |",
        f"| diffrax `diffeqsolve(Euler, SaveAt(ts))` + max, vmapped | {c_theirs:.2f} | {r_theirs:.3f} | "
        f"{t_theirs.min():.3f} | {work / r_theirs:.3g} |",
        f"| the same diffrax code with `lax.map` over trajectories instead of the outer `vmap` | "
        f"{c_theirs_map:.2f} | {r_map:.3f} | {t_map.min():.3f} | {work / r_map:.3g} |",
        "",
        f"**Ratio (diffrax / nsopt run time, medians): {ratio:.2f}x** (per interleaved repeat: "
        f"{', '.join(f'{x:.2f}' for x in ratios)}; ratio of minima {t_theirs.min() / t_ours.min():.2f}x). "
        f"Against the diffrax code given the same one-trajectory-at-a-time layout: {r_map / r_ours:.2f}x "
        f"(per repeat: {', '.join(f'{x:.2f}' for x in t_map / t_ours)}).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}; "
        f"jax {jax.__version__} ({jax.default_backend()}), diffrax {diffrax.__version__}, "
        f"Python {platform.python_version()}. Generating the trajectories (`nsopt.run_batch`) took "
        f"{t_gen:.2f} s.",
        "",
        "Memory of the distance computation (float64 states): nsopt keeps the current flow points "
        f"of the start times of the trajectory in progress (on CPU one at a time), {args.times} x 2 values "
        f"= {args.times * 2 * 8 / 2**10:.1f} KiB (all {args.trajectories} at once on accelerators: "
        f"{args.trajectories * args.times * 2 * 8 / 2**20:.1f} MiB), whatever the window; the vmapped diffrax "
        f"version saves every step of every flow and the iterates on the same grid, 2 x "
        f"{args.trajectories} x {args.times} x {n + 1} x 2 values = "
        f"{2 * args.trajectories * args.times * (n + 1) * 2 * 8 / 2**20:.0f} MiB ({2 * (n + 1)}x more; it "
        "grows with T / dt and with the dimension).",
        "",
        "Lookup: the query times ``t_j + i h`` of one window increase, so each flow step carries the "
        "count ``#{records <= t}`` of the previous step and advances it by a branchless bisection of the "
        f"next {most} records (the most records any interval of length h holds, rounded up to 2^p - 1, "
        "computed once from the concrete tau): "
        f"{most.bit_length()} unrolled gathers per query instead of the {int(np.ceil(np.log2(args.records)))}-step "
        "`searchsorted` loop; exact by construction (tests/flow/test_flow_apt.py checks bit equality).",
        "",
        f"Layout: on CPU `apt_distance` runs the trajectories one at a time (`lax.map`; each one's "
        f"start times vmapped). With all {args.trajectories} vmapped at once, XLA:CPU turns the batched float64 "
        f"reductions (the norm, the field's inner product) into YNNPACK fusions ({ynn_all} in that program, "
        f"{ynn_one} in the one-trajectory program), and that program ran {r_vm / r_ours:.2f}x slower (medians). "
        f"The two layouts differ only by the rounding of those reductions (max abs difference "
        f"{err_layout:.1e}); one at a time, a trajectory's distances do not depend on the batch.",
        "",
        f"Issue goal (3x diffrax, the vmapped diffrax code a user writes): **{'met' if ratio >= 3 else 'not met'}**, "
        f"{ratio:.2f}x. Given nsopt's one-at-a-time layout, the same diffrax code is closer: nsopt is "
        f"{r_map / r_ours:.2f}x faster than it. The walk is {r_search / r_ours:.2f}x faster than the binary "
        f"search with bit-identical distances, and the one-at-a-time layout {r_vm / r_ours:.2f}x faster than "
        "the vmapped one.",
        "",
        f"Load: 1-minute load average {load0[0]:.2f} at the start and {load1[0]:.2f} at the end; "
        "other agents ran JAX jobs on the same 2-core machine during the measurement, so the absolute "
        "times are noisy and pessimistic; the ratio, from interleaved repeats in one process, is the "
        "number to read.",
        "",
    ]
    out = "\n".join(lines)
    print(out)
    if args.out:  # replace this benchmark's section, keep the others of the file
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text() if path.exists() else ""
        head = lines[0]
        if head in old:
            start = old.index(head)
            nxt = old.find("\n# ", start + len(head))
            rest = old[nxt + 1:] if nxt >= 0 else ""
            path.write_text(old[:start] + out + ("\n" + rest if rest else ""))
        else:
            path.write_text(out + ("\n" + old if old else ""))


if __name__ == "__main__":
    main()
