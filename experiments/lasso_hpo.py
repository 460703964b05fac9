"""Lasso hyperparameter optimization: hypergradient descent on theta vs grid search.

Criterion: the held-out mean squared error of ``x^(theta) = argmin 1/2 ||A x - b||^2 +
e^theta ||x||_1`` (fit on the training rows, scored on validation rows), or the K-fold
cross-validation MSE (:func:`nsopt.problems.hpo.kfold_criterion`).  Two problems:

- ``diabetes``: scikit-learn's bundled ``load_diabetes`` (442 x 10), features standardized
  and target centred with training statistics; rows split 60/20/20 train/val/test
  (K-fold: 5 folds over train + val).
- ``synthetic``: ``n = 1000`` training rows, ``p = 10000`` iid N(0, 1) features, 50 nonzero
  true coefficients (N(0, 1)), noise chosen for a signal-to-noise ratio of 2 (in standard
  deviations); 1000 validation and 1000 test rows from the same model (K-fold: 5 folds
  over the training rows).

Methods: ``gd``, :func:`nsopt.problems.hpo.hypergradient_descent` from
``theta0 = log(lambda_max / 2)`` (warm starts, bold-driver steps, at most ``--steps``
evaluations, each a solve and a hypergradient); ``grid``, :func:`grid_search` over
``--grid`` log-spaced penalties from ``lambda_max`` down to ``--grid-min`` lambda_max (warm
starts, solves only).  Times exclude compilation (each compiled function is run once
before timing; compile times are listed).  The test MSE is that of the solution fitted on
the training rows (held-out) or on all the cross-validation rows (K-fold).

Usage::

    python experiments/lasso_hpo.py [--problems diabetes synthetic] [--steps 40] [--grid 50] \
        [--out results/lasso_hpo.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
# Small LAPACK factorizations: one OpenBLAS thread (spinning workers stall on a loaded box).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nsopt.layers.lasso as lasso
import nsopt.layers.lasso_hpo as hpo


def diabetes(seed: int = 0):
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    X, y = X[perm], y[perm]
    n = len(y)
    n_tr, n_va = int(0.6 * n), int(0.2 * n)
    tr, va, te = slice(0, n_tr), slice(n_tr, n_tr + n_va), slice(n_tr + n_va, n)
    mu, sd, ym = X[tr].mean(0), X[tr].std(0), y[tr].mean()
    X, y = (X - mu) / sd, y - ym
    return dict(A=X[tr], b=y[tr], A_val=X[va], b_val=y[va], A_test=X[te], b_test=y[te],
                A_cv=X[: n_tr + n_va], b_cv=y[: n_tr + n_va],
                grid_min=1e-3, info=f"load_diabetes: {n_tr} train / {n_va} val / {n - n_tr - n_va} "
                f"test rows, 10 features")


def synthetic(seed: int = 0, n: int = 1000, p: int = 10_000, k: int = 50, snr: float = 2.0):
    rng = np.random.default_rng(seed)
    x_true = np.zeros(p)
    x_true[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    sigma = np.linalg.norm(x_true) / snr  # std of <a, x_true> over the noise std
    rows = lambda m: rng.standard_normal((m, p))
    A, A_val, A_test = rows(n), rows(n), rows(n)
    b, b_val, b_test = (M @ x_true + sigma * rng.standard_normal(n) for M in (A, A_val, A_test))
    return dict(A=A, b=b, A_val=A_val, b_val=b_val, A_test=A_test, b_test=b_test, A_cv=A,
                b_cv=b, grid_min=1e-2,
                info=f"synthetic: {n} train / {n} val / {n} test rows, p = {p}, {k} nonzeros, "
                f"SNR {snr:g}, noise std {sigma:.3g}")


def run_problem(name, data, args):
    A, b = jnp.asarray(data["A"]), jnp.asarray(data["b"])
    A_val, b_val = jnp.asarray(data["A_val"]), jnp.asarray(data["b_val"])
    A_cv, b_cv = jnp.asarray(data["A_cv"]), jnp.asarray(data["b_cv"])
    masks = jnp.asarray(hpo.kfold_masks(A_cv.shape[0], args.folds, seed=args.seed))
    p = A.shape[1]
    rows = []
    for crit in ("held-out", f"{args.folds}-fold"):
        if crit == "held-out":
            lmax = float(lasso.lambda_max(A, b))
            f = hpo.held_out_criterion
            data_args = (A, b, A_val, b_val)
            x0 = jnp.zeros(p)
            fit_A, fit_b = A, b
        else:
            lmax = max(float(lasso.lambda_max(A_cv * (~m)[:, None], b_cv * ~m)) for m in masks)
            f = hpo.kfold_criterion
            data_args = (A_cv, b_cv, masks)
            x0 = jnp.zeros((args.folds, p))
            fit_A, fit_b = A_cv, b_cv
        vg_jit = jax.jit(jax.value_and_grad(f, has_aux=True))
        v_jit = jax.jit(f)
        vg = lambda t, x, _j=vg_jit, _d=data_args: _j(t, x, *_d)
        v = lambda t, x, _j=v_jit, _d=data_args: _j(t, x, *_d)
        theta0 = float(np.log(lmax / 2))
        t = time.perf_counter()
        jax.block_until_ready(vg(jnp.asarray(theta0, jnp.float64), x0))
        c_gd = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(v(jnp.asarray(theta0, jnp.float64), x0))
        c_grid = time.perf_counter() - t
        gd = hpo.hypergradient_descent(vg, theta0, x0, steps=args.steps)
        grid = hpo.grid_search(v, np.log(lmax * np.geomspace(1.0, data["grid_min"], args.grid)), x0)
        for method, res, comp in (("gd", gd, c_gd), ("grid", grid, c_grid)):
            x = lasso.solution(fit_A, fit_b, res.theta)
            test = float(hpo.held_out_mse(x, data["A_test"], data["b_test"]))
            rows.append(dict(
                problem=name, criterion=crit, method=method, theta=res.theta,
                frac=float(np.exp(res.theta) / lmax), value=res.value, test=test,
                support=int(jnp.sum(x != 0)), evals=res.evaluations, time=float(res.times[-1]),
                compile=comp,
                # time for the grid to first reach the value gd ended at (or inf)
                reach=_time_to_reach(res, gd.value) if method == "grid" else float(res.times[-1]),
            ))
            print({k: (f"{val:.5g}" if isinstance(val, float) else val) for k, val in rows[-1].items()})
    return rows


def _time_to_reach(res, target):
    hit = np.nonzero(res.values <= target * (1 + 1e-9))[0]
    return float(res.times[hit[0]]) if len(hit) else float("inf")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", nargs="*", default=["diabetes", "synthetic"])
    ap.add_argument("--steps", type=int, default=40, help="max evaluations of gradient descent")
    ap.add_argument("--grid", type=int, default=50, help="grid points")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/lasso_hpo.md")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    makers = {"diabetes": diabetes, "synthetic": synthetic}
    bad = [p for p in args.problems if p not in makers]
    if bad:
        raise SystemExit(f"unknown problems {bad}; allowed: {sorted(makers)}")
    rows, infos = [], []
    for name in args.problems:
        data = makers[name](args.seed)
        infos.append(data["info"])
        rows += run_problem(name, data, args)
    load1 = os.getloadavg()

    cmd = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    lines = [
        "# Lasso hyperparameter optimization: hypergradient descent vs grid search",
        "",
        f"Command: `{cmd}`",
        "",
        "Objective `1/2 ||A x - b||^2 + e^theta ||x||_1`; criterion: validation MSE (held-out) "
        f"or {args.folds}-fold cross-validation MSE. `gd`: hypergradient descent from "
        f"theta0 = log(lambda_max / 2), at most {args.steps} evaluations (solve + implicit "
        f"hypergradient, warm starts); `grid`: {args.grid} log-spaced penalties from lambda_max "
        "down (warm starts, solves only). Times in seconds, compilation excluded (listed apart). "
        "`grid time to gd's value`: when the grid first matched the criterion value gd ended at "
        "(inf: never). Test MSE: the solution refit at the chosen theta on the training rows "
        "(held-out) or on all CV rows (K-fold), scored on the test rows.",
        "",
    ]
    for info in infos:
        lines.append(f"- {info}")
    lines += [
        "",
        "| problem | criterion | method | lam / lambda_max | criterion reached | test MSE | "
        "support | evaluations | time (s) | grid time to gd's value (s) | compile (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        reach = "" if r["method"] == "gd" else f"{r['reach']:.2f}"
        lines.append(
            f"| {r['problem']} | {r['criterion']} | {r['method']} | {r['frac']:.4g} | "
            f"{r['value']:.6g} | {r['test']:.6g} | {r['support']} | {r['evals']} | "
            f"{r['time']:.2f} | {reach} | {r['compile']:.1f} |"
        )
    lines += ["", "Summary (gd vs grid on the same criterion):", ""]
    for i in range(0, len(rows), 2):
        gd, grid = rows[i], rows[i + 1]
        gap = (gd["value"] - grid["value"]) / grid["value"]
        lines.append(
            f"- {gd['problem']}, {gd['criterion']}: gd's criterion minus the grid's best, "
            f"relative: {gap:+.2e}; time gd {gd['time']:.2f} s vs grid {grid['time']:.2f} s "
            f"(grid / gd = {grid['time'] / max(gd['time'], 1e-9):.2g}); {gd['evals']} vs "
            f"{grid['evals']} evaluations."
        )
    lines += [
        "",
        "The criterion is piecewise smooth and not convex in theta: gradient descent finds a "
        "local minimum near its start (theta0 = log(lambda_max / 2)), a grid searches globally "
        "but only at its points; on p >> n problems each small-penalty grid point is an "
        "expensive solve (supports near n), which is where gd saves most.",
    ]
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; jax {jax.__version__} "
        f"({jax.default_backend()}), float64. Load: 1-minute load average {load0[0]:.2f} at the "
        f"start, {load1[0]:.2f} at the end (other agents share the 2 cores; times are noisy).",
        "",
    ]
    out = "\n".join(lines)
    print(out)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(out)


if __name__ == "__main__":
    main()
