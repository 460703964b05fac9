"""QP layers: ``nsopt.layers.qp`` vs cvxpylayers and qpax, accuracy and time per gradient.

Workload (the issue's): ``min 1/2 x^T x + q^T x  s.t.  G x <= h``, ``n = 50``, ``m = 100``,
float64, built with a known KKT point: 40 constraints strongly active (multipliers in
``[0.5, 2]``), 60 inactive (slacks in ``[0.5, 2]``), none weakly active.  The quantity
is ``grad_q ||x*(q)||^2``, for one QP and for a batch of 128 such QPs (different
``q, G, h``; ``vmap`` for the JAX layers, cvxpylayers' own batching).

**Reference**: an interior point solve by Clarabel (through cvxpy) at tolerance 1e-12,
its active set (``h - G x < 1e-9``) and the exact active-set derivative, NumPy's solve of
``[I G_S^T; G_S 0]``: ``grad = -2 (I - G_S^T (G_S G_S^T)^{-1} G_S) x``.  The script checks
that Clarabel finds the 40 constructed active constraints, none weakly active.

Layers: nsopt (``jax.jit(jax.grad(...))``, default ``QPSolver``); qpax 0.1.4
``solve_qp_primal`` at its default (``solver_tol=1e-5, target_kappa=1e-3``: it
differentiates a relaxed, smoothed KKT system) and at the most accurate of a small
grid of settings (chosen on the single QP, reported); cvxpylayers 1.2 (JAX interface,
its default DIFFCP backend: SCS and diffcp, eager: it is not jittable).  Times are
medians over ``--repeats`` rounds after a warm-up (compilation excluded; one gradient is
the mean of 10 consecutive calls, a batch one call, each after one untimed call), interleaved
so that load from other processes hits all alike.

Usage::

    python experiments/benchmarks/qp_layers.py [--repeats 7] [--batch 128] [--out results/benchmarks_qp.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import statistics
import time
from pathlib import Path

import cvxpy as cp
import jax
import jax.numpy as jnp
import numpy as np
import qpax
from cvxpylayers.jax import CvxpyLayer

from nsopt.layers import qp

N, M, K = 50, 100, 40


def make(seed: int):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((M, N))
    x = rng.standard_normal(N)
    z = np.zeros(M)
    z[:K] = rng.uniform(0.5, 2.0, K)
    slack = np.r_[np.zeros(K), rng.uniform(0.5, 2.0, M - K)]
    perm = rng.permutation(M)
    G, z, slack = G[perm], z[perm], slack[perm]
    h = G @ x + slack
    q = -x - G.T @ z
    return q, G, h


def reference(q, G, h):
    """Clarabel at 1e-12, then the exact active-set gradient of ||x*||^2 in q (NumPy)."""
    x = cp.Variable(N)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x) + q @ x), [G @ x <= h])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12,
               tol_ktratio=1e-10, max_iter=200)
    xs, lam = x.value, prob.constraints[0].dual_value
    s = h - G @ xs
    active = s < 1e-9
    weak = int(np.sum(active & (lam < 1e-9)))
    GS = G[active]
    P = np.eye(N) - GS.T @ np.linalg.solve(GS @ GS.T, GS)
    return -2.0 * P @ xs, int(active.sum()), weak


def rel(g, ref):
    g, ref = np.asarray(g, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(g - ref) / np.linalg.norm(ref))


def timed(fn, repeats):
    out = fn()
    jax.block_until_ready(out)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return out, ts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    q, G, h = make(0)
    g_ref, n_active, n_weak = reference(q, G, h)
    assert n_active == K and n_weak == 0, (n_active, n_weak)
    batch = [make(1 + i) for i in range(args.batch)]
    refs = np.stack([reference(*d)[0] for d in batch])
    qb, Gb, hb = (jnp.asarray(np.stack([d[i] for d in batch])) for i in range(3))
    A0, b0 = jnp.zeros((0, N)), jnp.zeros(0)
    eye = jnp.eye(N)

    # nsopt
    def ns_loss(q, G, h):
        return jnp.sum(qp.solution(eye, q, G, h) ** 2)

    ns_grad = jax.jit(jax.grad(ns_loss))
    ns_batch = jax.jit(jax.vmap(jax.grad(ns_loss)))

    # qpax
    def qpax_grad(**kw):
        def loss(q, G, h):
            return jnp.sum(qpax.solve_qp_primal(eye, q, A0, b0, G, h, **kw) ** 2)
        return jax.jit(jax.grad(loss)), jax.jit(jax.vmap(jax.grad(loss)))

    qpax_default = qpax_grad()
    grid = [dict(solver_tol=t, target_kappa=k, max_iter=100)
            for t in (1e-8, 1e-10, 1e-12) for k in (1e-5, 1e-7, 1e-9, 1e-11)]
    errs = []
    for kw in grid:
        g = np.asarray(qpax_grad(**kw)[0](jnp.asarray(q), jnp.asarray(G), jnp.asarray(h)))
        errs.append(rel(g, g_ref) if np.all(np.isfinite(g)) else np.inf)
    best_kw = grid[int(np.argmin(errs))]
    qpax_best = qpax_grad(**best_kw)

    # cvxpylayers (eager; DIFFCP default backend)
    xv = cp.Variable(N)
    qp_, Gp, hp = cp.Parameter(N), cp.Parameter((M, N)), cp.Parameter(M)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(xv) + qp_ @ xv), [Gp @ xv <= hp])
    layer = CvxpyLayer(prob, parameters=[qp_, Gp, hp], variables=[xv])

    def cvx_loss(q, G, h):
        return jnp.sum(layer(q, G, h)[0] ** 2)

    cvx_grad = jax.grad(cvx_loss)

    def cvx_batch(q, G, h):
        return jax.grad(lambda q: jnp.sum(layer(q, G, h)[0] ** 2))(q)

    single = (jnp.asarray(q), jnp.asarray(G), jnp.asarray(h))
    rows = []
    runs = {
        "nsopt.layers.qp": (lambda: ns_grad(*single), lambda: ns_batch(qb, Gb, hb)),
        "qpax 0.1.4 default": (lambda: qpax_default[0](*single), lambda: qpax_default[1](qb, Gb, hb)),
        "qpax 0.1.4 most accurate": (lambda: qpax_best[0](*single), lambda: qpax_best[1](qb, Gb, hb)),
        "cvxpylayers 1.2 (DIFFCP)": (lambda: cvx_grad(*single), lambda: cvx_batch(qb, Gb, hb)),
    }
    times = {k: ([], []) for k in runs}
    outs = {}
    for name, (f1, fb) in runs.items():  # warm-up (compilation) and outputs
        outs[name] = (np.asarray(f1()), np.asarray(fb()))
    for _ in range(args.repeats):  # interleaved; a single gradient is timed as the mean of 10 calls
        for name, (f1, fb) in runs.items():
            for j, (f, calls) in enumerate(((f1, 10), (fb, 1))):
                jax.block_until_ready(f())  # settle (peers' worker threads from the previous call)
                t0 = time.perf_counter()
                for _ in range(calls):
                    jax.block_until_ready(f())
                times[name][j].append((time.perf_counter() - t0) / calls)
    base = statistics.median(times["cvxpylayers 1.2 (DIFFCP)"][0])
    for name in runs:
        g1, gb = outs[name]
        e1 = rel(g1, g_ref)
        eb = max(rel(gb[i], refs[i]) for i in range(args.batch))
        t1, tb = statistics.median(times[name][0]), statistics.median(times[name][1])
        rows.append((name, e1, 1e3 * t1, base / t1, eb, 1e3 * tb, 1e3 * tb / args.batch))

    cmd = "OPENBLAS_NUM_THREADS=1 python experiments/benchmarks/qp_layers.py " + \
        f"--repeats {args.repeats} --batch {args.batch}"
    lines = [
        "## QP layers: nsopt.layers.qp vs cvxpylayers and qpax",
        "",
        f"Workload: min 1/2 x^T x + q^T x s.t. G x <= h, n = {N}, m = {M}, float64, {K} constraints "
        "strongly active and none weakly active (checked on the reference); quantity: "
        "grad_q ||x*||^2. Reference: Clarabel (cvxpy) at 1e-12 and the exact active-set "
        "derivative (NumPy). Batch: "
        f"{args.batch} such QPs (different q, G, h), vmap for the JAX layers, cvxpylayers' "
        "own batching; batch error = max over the batch.",
        "",
        f"Median of {args.repeats} interleaved rounds after a warm-up (compilation excluded; "
        "1 QP: mean of 10 calls per round), "
        f"{platform.processor() or platform.machine()}, shared 2-core machine (other jobs "
        "running: absolute times are noisy, ratios less so).",
        f"qpax most accurate setting (best of a grid on the single QP): {best_kw}; "
        f"grid errors: {', '.join(f'{e:.1e}' for e in errs)}.",
        "",
        "| layer | rel. error (1 QP) | ms / gradient | speed-up vs cvxpylayers | "
        f"max rel. error (batch {args.batch}) | ms / batch | ms / QP in batch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.1e} | {r[2]:.2f} | {r[3]:.1f}x | {r[4]:.1e} | {r[5]:.1f} | {r[6]:.3f} |")
    lines += ["", f"Command: `{cmd}`", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
