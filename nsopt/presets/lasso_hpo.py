"""Preset ``lasso_hpo``: Lasso hyperparameter tuning by implicit differentiation vs grid search.

Bilevel problem (arXiv 2106.04350; docs/theory.md §Lasso): minimize over ``theta`` the
validation MSE ``C(theta) = mean((A_val x^(theta) - b_val)^2)`` of the Lasso
solution ``x^(theta) = argmin 1/2 ||A x - b||^2 + e^theta ||x||_1``.  The path
``theta -> x^(theta)`` is piecewise linear, ``C`` piecewise smooth, and its
hypergradient is the support-restricted implicit derivative
``dx_S/dtheta = -e^theta (A_S^T A_S)^{-1} sign(x_S)``.

Two problems: scikit-learn's ``load_diabetes`` (442 x 10) and a synthetic
high-dimensional one (``n`` training rows, ``p`` features, 5% of them active
up to 50).  For each: the validation curve on a log grid of penalties, the
gradient-descent path drawn on it, and the two optima compared.  Both searches call one
compiled program per problem (``value_and_grad`` of the held-out criterion; the grid drops
the hypergradient, a solve with the forward pass's Cholesky factor of the support), compiled
before the timings; the test MSE is that of the solution each search ended at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import validate as V
from nsopt.presets.base import PresetResult, new_figure, numpy_seed

__all__ = ["CLAIM", "Params", "run", "diabetes_split", "synthetic_split"]

CLAIM = ("hypergradient descent on the Lasso penalty (implicit differentiation) matches grid search's "
         "validation error with fewer solves (arXiv 2106.04350)")


@dataclass(frozen=True)
class Params:
    """Sizes of ``lasso_hpo`` (defaults: full size)."""

    grid_min_diabetes: float = 1.0e-3   # smallest penalty of the grid, in units of lambda_max
    grid_min_synthetic: float = 1.0e-2
    n: int = 500                        # synthetic problem: training rows
    p: int = 10000                      # synthetic problem: features
    grid: int = 40                      # penalties of the grid search
    num_steps: int = 30                 # hypergradient descent steps

    def __post_init__(self):
        V.number("grid_min_diabetes", self.grid_min_diabetes, 0, 1, open_low=True, open_high=True)
        V.number("grid_min_synthetic", self.grid_min_synthetic, 0, 1, open_low=True, open_high=True)
        for f in ("n", "p", "grid", "num_steps"):
            V.positive_int(f, getattr(self, f))


def diabetes_split(seed: int = 0) -> dict[str, np.ndarray]:
    """``load_diabetes`` shuffled, 60/20/20 train/validation/test, standardized on the training rows."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    X, y = X[perm], y[perm]
    n_tr, n_va = int(0.6 * len(y)), int(0.2 * len(y))
    mu, sd, ym = X[:n_tr].mean(0), X[:n_tr].std(0), y[:n_tr].mean()
    X, y = (X - mu) / sd, y - ym
    return {"A": X[:n_tr], "b": y[:n_tr], "A_val": X[n_tr:n_tr + n_va], "b_val": y[n_tr:n_tr + n_va],
            "A_test": X[n_tr + n_va:], "b_test": y[n_tr + n_va:]}


def synthetic_split(n: int, p: int, seed: int = 0, snr: float = 2.0) -> dict[str, np.ndarray]:
    """Gaussian design, ``min(50, p // 20)`` active N(0, 1) coefficients, noise for a signal-to-noise ratio ``snr``."""
    rng = np.random.default_rng(seed)
    k = max(1, min(50, p // 20))
    x_true = np.zeros(p)
    x_true[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    sigma = np.linalg.norm(x_true) / snr
    out = {}
    for name in ("", "_val", "_test"):
        A = rng.standard_normal((n, p))
        out["A" + name], out["b" + name] = A, A @ x_true + sigma * rng.standard_normal(n)
    return out


def _tune(data: dict[str, np.ndarray], grid: int, steps: int, grid_min: float) -> dict[str, Any]:
    from nsopt.layers import lasso, lasso_hpo

    A, b = jnp.asarray(data["A"]), jnp.asarray(data["b"])
    args = (A, b, jnp.asarray(data["A_val"]), jnp.asarray(data["b_val"]))
    lmax = float(lasso.lambda_max(A, b))
    vg_jit = jax.jit(jax.value_and_grad(lasso_hpo.held_out_criterion, has_aux=True))

    def vg(t, x):
        return vg_jit(t, x, *args)

    def v(t, x):  # the grid calls the same compiled program (one compilation) and drops the hypergradient
        (value, x_new), _ = vg(t, x)
        return value, x_new

    x0 = jnp.zeros(A.shape[1])
    theta0 = float(np.log(lmax / 2))
    # compile outside the timings, with the argument types of the searches (a strongly typed theta)
    t_strong = jnp.asarray(theta0, jnp.result_type(float))
    jax.block_until_ready(vg(t_strong, x0))
    thetas = np.log(lmax * np.geomspace(1.0, grid_min, grid))
    gd = lasso_hpo.hypergradient_descent(vg, theta0, x0, steps=steps)
    gs = lasso_hpo.grid_search(v, thetas, x0)
    test = {name: float(lasso_hpo.held_out_mse(res.x, data["A_test"], data["b_test"]))
            for name, res in (("gd", gd), ("grid", gs))}  # the solutions the searches ended at
    return {"lmax": lmax, "gd": gd, "grid": gs, "test": test, "thetas": thetas}


def run(params: Params, key: Array) -> PresetResult:
    """Tune theta on each problem; figure of validation curves with the gradient paths."""
    seed = numpy_seed(key)
    problems = {"diabetes": diabetes_split(seed), "synthetic": synthetic_split(params.n, params.p, seed)}
    grid_min = {"diabetes": params.grid_min_diabetes, "synthetic": params.grid_min_synthetic}
    metrics: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    fig = new_figure(figsize=(12, 4.6), dpi=120)
    axes = fig.subplots(1, 2)
    for ax, (name, data) in zip(axes, problems.items()):
        t0 = time.perf_counter()
        res = _tune(data, params.grid, params.num_steps, grid_min[name])
        gd, gs, lmax = res["gd"], res["grid"], res["lmax"]
        metrics[f"{name}/theta_gd"] = gd.theta
        metrics[f"{name}/theta_grid"] = gs.theta
        metrics[f"{name}/criterion_gd"] = gd.value
        metrics[f"{name}/criterion_grid"] = gs.value
        metrics[f"{name}/relative_gap"] = (gd.value - gs.value) / gs.value
        metrics[f"{name}/evaluations_gd"] = gd.evaluations
        metrics[f"{name}/evaluations_grid"] = gs.evaluations
        metrics[f"{name}/time_gd_s"] = float(gd.times[-1])
        metrics[f"{name}/time_grid_s"] = float(gs.times[-1])
        metrics[f"{name}/test_mse_gd"] = res["test"]["gd"]
        metrics[f"{name}/test_mse_grid"] = res["test"]["grid"]
        metrics[f"{name}/shape"] = list(np.shape(data["A"]))
        metrics[f"{name}/seconds"] = time.perf_counter() - t0
        arrays[f"{name}/grid_theta"], arrays[f"{name}/grid_value"] = gs.thetas, gs.values
        arrays[f"{name}/gd_theta"], arrays[f"{name}/gd_value"] = gd.thetas, gd.values
        lt = np.log(lmax)
        ax.plot(gs.thetas - lt, gs.values, "-", color="0.4", lw=1.5, label=f"grid ({gs.evaluations} solves)")
        ax.plot(gd.thetas - lt, gd.values, "o-", color="tab:red", ms=4, lw=1,
                label=f"hypergradient descent ({gd.evaluations} steps)")
        ax.plot([gd.theta - lt], [gd.value], "*", color="tab:red", ms=14, label="gradient optimum")
        ax.plot([gs.theta - lt], [gs.value], "s", color="k", mfc="none", ms=10, label="grid optimum")
        ax.set_xlabel(r"$\theta - \log\lambda_{max}$  (penalty $e^\theta$)")
        ax.set_ylabel("validation MSE")
        n, p = np.shape(data["A"])
        ax.set_title(f"{name} (n={n}, p={p}): gap {100 * metrics[f'{name}/relative_gap']:+.3f}%")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Lasso hyperparameter tuning: implicit hypergradient vs grid search")
    fig.tight_layout()
    claims = {f"{name}/matches_grid_search": metrics[f"{name}/relative_gap"] < 0.01 for name in problems}
    return PresetResult(metrics=metrics, arrays=arrays, figures={"lasso_hpo": fig}, claims=claims)
