"""A monotone deep equilibrium network on ``load_digits``: nonsmooth SGD vs stochastic heavy ball.

The model is ``logits = V z*(x) + c`` with ``z*`` the unique fixed point of the
monotone DEQ layer (Winston & Kolter 2020; :mod:`nsopt.problems.deq`)

    z* = relu(W z* + U x + b),     W = (1 - m) I - P^T P + R - R^T,   m > 0,

(``P``, ``R``: free ``h x h`` matrices, the parameters ``A``, ``B`` of :mod:`nsopt.layers.deq`)
found by Peaceman-Rachford splitting and differentiated by the nonsmooth implicit
function theorem (Bolte, Le, Pauwels, Silveti-Falls, arXiv 2106.04350;
docs/theory.md §3 "Deep equilibrium networks"): the ``z``-block ``B = D W - I`` is
invertible for every ``D = diag(relu')`` in ``[0, 1]``,
so backprop through the layer returns an element of a conservative field of the
(path differentiable, definable) training loss.  Training with implicit
semialgebraic layers (arXiv 2106.04350 §6): nonsmooth SGD ``w_{k+1} = w_k - alpha_k v_k`` and
the heavy ball ``w_{k+1} = w_k - alpha_k y_k, y_{k+1} = beta_k v_{k+1} + (1 - beta_k) y_k``
with ``alpha in l^2 \\ l^1`` make the loss converge.

The preset runs both algorithms on the same initialization and the same
minibatch sequences (``seeds`` runs each, one vmapped program per algorithm with
:func:`nsopt.compile_batch`), with ``alpha_k = a0 (b / (k + b))^p`` and
``beta_k = r alpha_k``, records the exact training loss ``F(w_k)`` and the test
accuracy, and checks the claim: for every run ``F(w_K) <= F(w_0) / loss_factor``
and test accuracy ``>= min_test_accuracy``, with every forward solve converged.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nsopt
from nsopt import validate as V
from nsopt.algorithms.devices import is_split, per_device
from nsopt.presets.base import PresetResult, new_figure
from nsopt.problems.deq_digits import DEQDigits, deq_digits

__all__ = ["ALGORITHMS", "CLAIM", "Params", "run"]

CLAIM = ("nonsmooth SGD and stochastic heavy ball train a monotone DEQ on load_digits with implicit "
         "gradients: every run divides the loss by loss_factor and reaches min_test_accuracy")

ALGORITHMS = ("sgd", "heavy_ball")
LABELS = {"sgd": "nonsmooth SGD", "heavy_ball": "stochastic heavy ball"}
COLORS = {"sgd": "tab:blue", "heavy_ball": "tab:orange"}
PROBLEM_KEYS = ("hidden", "m", "kink", "batch_size", "solver", "tol", "max_steps", "backward",
                "linear_solve", "data_seed")


@dataclass(frozen=True)
class Params:
    """Sizes of ``deq_digits`` (defaults: full size); the init is drawn from the run's key."""

    hidden: int = 24
    m: float = 0.5
    kink: float = 0.0
    batch_size: int = 32
    solver: str = "peaceman_rachford"
    tol: float | None = None
    max_steps: int = 100
    backward: str = "implicit"
    linear_solve: str = "dense"
    data_seed: int = 0
    a0: float = 0.5
    b: float = 100.0
    p: float = 0.6
    r: float = 1.0
    seeds: int = 4
    num_steps: int = 1000
    record_every: int = 50
    loss_factor: float = 20.0
    min_test_accuracy: float = 0.93

    def __post_init__(self):
        for f in ("hidden", "batch_size", "max_steps", "seeds", "num_steps", "record_every"):
            V.positive_int(f, getattr(self, f))
        V.integer("data_seed", self.data_seed, 0)
        V.number("m", self.m, 0, 1, open_low=True)
        V.number("kink", self.kink, 0, 1)
        if self.tol is not None:
            V.number("tol", self.tol, 0, open_low=True)
        for f in ("a0", "b", "p", "r"):
            V.number(f, getattr(self, f), 0, open_low=True)
        V.number("loss_factor", self.loss_factor, 1)
        V.number("min_test_accuracy", self.min_test_accuracy, 0, 1)


def _algorithm(name: str, p: Mapping[str, Any]):
    """``alpha_k = a0 (b / (k + b))^p = a / (k + b)^p`` with ``a = a0 b^p``; heavy ball ``beta_k = r alpha_k``."""
    a0, b, pw = float(p["a0"]), float(p["b"]), float(p["p"])
    alpha = nsopt.schedules.inverse_power(a0 * b**pw, b, pw)
    if name == "sgd":
        return nsopt.sgd(alpha)
    if name == "heavy_ball":
        return nsopt.heavy_ball(alpha, nsopt.proportional(float(p["r"]), alpha))
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {name!r}")


@eqx.filter_jit
def _evaluate(problem: DEQDigits, w: Any, split: bool = False) -> dict[str, Array]:
    """Test accuracy at every recorded ``w`` (runs x records) and, at the last one, train accuracy
    and forward-solver statistics on the test inputs (compiled once per problem); with the runs
    split over the devices, each device evaluates its own (the forward solves stop per device)."""
    return per_device(lambda w: _evaluate_here(problem, w), (0,), 0, split)(w)


def _evaluate_here(problem: DEQDigits, w: Any) -> dict[str, Array]:
    acc = jax.vmap(jax.vmap(problem.accuracy))(w)
    last = jax.tree.map(lambda a: a[:, -1], w)
    stats = jax.vmap(problem.solve_stats)(last)
    return {
        "test_accuracy": acc,
        "train_accuracy": jax.vmap(lambda v: problem.accuracy(v, "train"))(last),
        "solver_converged": jnp.mean(stats.successful, axis=-1),
        "solver_steps_max": jnp.max(stats.stats["num_steps"], axis=-1),
        "solver_steps_mean": jnp.mean(stats.stats["num_steps"], axis=-1),
        "solver_residual_max": jnp.max(stats.stats["residual"], axis=-1),
    }


def run(params: Params, key: Array) -> PresetResult:
    """Train with both algorithms from one initialization on the same minibatch sequences."""
    p = dataclasses.asdict(params)
    problem = deq_digits(**{k: p[k] for k in PROBLEM_KEYS})
    w0 = problem.inits(key, 1)
    seeds, steps, every = int(p["seeds"]), int(p["num_steps"]), int(p["record_every"])
    metrics: dict[str, Any] = {
        "dim": problem.dim,
        "n_train": int(problem.y_train.shape[0]),
        "n_test": int(problem.y_test.shape[0]),
        "seeds": seeds,
        "num_steps": steps,
        "loss_factor": float(p["loss_factor"]),
        "min_test_accuracy": float(p["min_test_accuracy"]),
    }
    arrays: dict[str, np.ndarray] = {}
    curves: dict[str, dict[str, np.ndarray]] = {}
    for name in ALGORITHMS:
        t0 = time.perf_counter()
        go = nsopt.compile_batch(_algorithm(name, p), problem.oracle(), problem.sampler, w0, seeds,
                                 steps, every, objective=problem.F)
        t1 = time.perf_counter()
        traj = go()
        jax.block_until_ready(traj.objective)
        t2 = time.perf_counter()
        loss = np.asarray(traj.objective)[:, 0, 0]  # (seeds, records)
        w = jax.tree.map(lambda a: a[:, 0, 0], traj.w)
        ev = {k: np.asarray(v) for k, v in _evaluate(problem, w, is_split(jax.tree.leaves(w)[0])).items()}
        t3 = time.perf_counter()
        diverged = np.asarray(traj.diverged).reshape(seeds)
        ratio = loss[:, -1] / loss[:, 0]
        acc = ev["test_accuracy"][:, -1]
        ok = (~diverged) & (ratio <= 1.0 / p["loss_factor"]) & (acc >= p["min_test_accuracy"])
        ok &= ev["solver_converged"] == 1.0
        metrics[name] = {
            "loss_initial": float(np.median(loss[:, 0])),
            "loss_final_median": float(np.median(loss[:, -1])),
            "loss_final_max": float(np.max(loss[:, -1])),
            "loss_ratio_max": float(np.max(ratio)),
            "test_accuracy_initial": float(np.median(ev["test_accuracy"][:, 0])),
            "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_min": float(acc.min()),
            "train_accuracy_mean": float(ev["train_accuracy"].mean()),
            "diverged_runs": int(diverged.sum()),
            "solver_converged_share": float(ev["solver_converged"].min()),
            "solver_steps_max": int(ev["solver_steps_max"].max()),
            "solver_steps_mean": float(ev["solver_steps_mean"].mean()),
            "compile_s": t1 - t0,
            "run_s": t2 - t1,
            "evaluate_s": t3 - t2,
            "claim_holds": bool(ok.all()),
        }
        curves[name] = {"loss": loss, "test_accuracy": ev["test_accuracy"]}
        arrays[f"{name}_loss"] = loss
        arrays[f"{name}_test_accuracy"] = ev["test_accuracy"]
        arrays[f"{name}_diverged"] = diverged
    k = np.asarray(traj.k).reshape(-1, traj.k.shape[-1])[0]
    arrays["k"] = k
    metrics["claim_holds"] = all(metrics[n]["claim_holds"] for n in ALGORITHMS)
    title = (f"Monotone DEQ (h = {p['hidden']}, m = {p['m']}) on load_digits: "
             f"{seeds} runs per algorithm, batch {p['batch_size']}")
    claims = {f"{n}/loss_and_accuracy": metrics[n]["claim_holds"] for n in ALGORITHMS}
    fig = _figure(k, curves, metrics, title, p)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"deq_digits": fig}, claims=claims)


def _band(ax, k, values, name, label):
    lo, med, hi = np.min(values, 0), np.median(values, 0), np.max(values, 0)
    ax.plot(k, med, color=COLORS[name], lw=2, label=f"{label} (median)")
    ax.fill_between(k, lo, hi, color=COLORS[name], alpha=0.2, label=f"{label} (min-max)")


def _figure(k, curves, metrics, title, p):
    fig = new_figure(figsize=(11, 4.4), layout="constrained", dpi=120)
    ax1, ax2 = fig.subplots(1, 2)
    for name in ALGORITHMS:
        _band(ax1, k, curves[name]["loss"], name, LABELS[name])
        _band(ax2, k, 100 * curves[name]["test_accuracy"], name, LABELS[name])
    ax1.set_yscale("log")
    ax1.set_xlabel("iteration k")
    ax1.set_ylabel(r"training loss $F(w_k)$ (cross-entropy, full train set)")
    ax1.set_title("Training loss", fontsize=11)
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    loss_txt = ", ".join(f"{LABELS[n]} {metrics[n]['loss_final_median']:.3f}" for n in ALGORITHMS)
    ax1.text(0.02, 0.04, f"final median: {loss_txt}", transform=ax1.transAxes, ha="left", va="bottom",
             fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
    ax2.set_xlabel("iteration k")
    ax2.set_ylabel("test accuracy (%)")
    lo = max(0.0, 100 * min(c["test_accuracy"][:, 1:].min() for c in curves.values()) - 5)
    ax2.set_ylim(lo, 100)
    start = 100 * np.median([c["test_accuracy"][:, 0] for c in curves.values()])
    ax2.set_title(f"Test accuracy (k = 0: {start:.0f}%" + (", below the axis)" if start < lo else ")"),
                  fontsize=11)
    ax2.grid(True, alpha=0.3)
    final = ", ".join(f"{LABELS[n]} {100 * metrics[n]['test_accuracy_mean']:.1f}%" for n in ALGORITHMS)
    ax2.text(0.98, 0.04, f"final mean: {final}", transform=ax2.transAxes, ha="right", va="bottom",
             fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
    ax2.legend(fontsize=8, loc="center right")
    sched = (rf"$\alpha_k = {p['a0']:g}\,({p['b']:g} / (k + {p['b']:g}))^{{{p['p']:g}}}$, "
             rf"heavy ball $\beta_k = {p['r']:g}\,\alpha_k$; implicit gradients through $z^*$")
    fig.suptitle(f"{title}\n{sched}", fontsize=11)
    return fig
