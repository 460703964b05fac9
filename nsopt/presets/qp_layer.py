"""A network with a QP layer (simplex projection) on ``load_digits``: nonsmooth SGD and heavy ball.

The model is ``p*(x) = argmin_p 1/2 ||p - z(x)||^2, p >= 0, 1^T p = 1`` with
``z = V relu(U x + c) + d`` (:mod:`nsopt.problems.qp_digits`), trained on the Brier
score; backprop through the layer is the implicit derivative of
:mod:`nsopt.layers.qp` (nonsmooth implicit function theorem, Bolte, Le, Pauwels,
Silveti-Falls, arXiv 2106.04350), an element of a conservative field of the path
differentiable loss, so nonsmooth SGD ``w_{k+1} = w_k - alpha_k v_k`` and the heavy
ball (``beta_k = r alpha_k``) with ``alpha_k = a0 (b / (k + b))^p`` apply
(``docs/theory.md``).  Every step's minibatch QPs are re-solved at the recorded iterate
to count the steps at which some QP was degenerate (a weakly active constraint
``p_j = 0`` with zero multiplier, where the conservative Jacobian is a set and
``weak_weight`` picks the element).

Claims: the final test accuracy of every run is at least ``min_test_accuracy``; the
degenerate fraction is reported (a number in ``[0, 1]``); every QP solve of every
step succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nsopt
from nsopt import validate
from nsopt.presets.base import Preset, PresetResult
from nsopt.problems.qp_digits import QPDigits, qp_digits

__all__ = ["CLAIM", "PRESET", "Params", "run"]

ALGORITHMS = ("sgd", "heavy_ball")
LABELS = {"sgd": "nonsmooth SGD", "heavy_ball": "stochastic heavy ball"}
COLORS = {"sgd": "tab:blue", "heavy_ball": "tab:orange"}

CLAIM = ("A network whose last layer is a QP (projection onto the probability simplex), "
         "differentiated by the nonsmooth implicit function theorem, trains on load_digits with "
         "nonsmooth SGD and heavy ball to test accuracy >= min_test_accuracy; the fraction of "
         "training steps with a degenerate QP (a weakly active constraint) is reported.")


@dataclass(frozen=True)
class Params:
    """Full-size settings (see ``conf/experiment/qp_layer.yaml``)."""

    hidden: int = 32
    batch_size: int = 32
    weak_weight: float = 0.0
    data_seed: int = 0
    a0: float = 1.0
    b: float = 100.0
    p: float = 0.6
    r: float = 1.0
    init_seed: int = 0
    seeds: int = 2
    num_steps: int = 2000
    eval_every: int = 100
    min_test_accuracy: float = 0.75

    def __post_init__(self):
        for name in ("hidden", "batch_size", "seeds", "num_steps", "eval_every"):
            validate.positive_int(name, getattr(self, name))
        for name in ("data_seed", "init_seed"):
            validate.integer(name, getattr(self, name), low=0)
        validate.number("weak_weight", self.weak_weight, 0.0, 1.0)
        validate.number("a0", self.a0, 0.0, open_low=True)
        validate.number("b", self.b, 0.0, open_low=True)
        validate.number("p", self.p, 0.5, 1.0, open_low=True)
        validate.number("r", self.r, 0.0, open_low=True)
        validate.number("min_test_accuracy", self.min_test_accuracy, 0.0, 1.0)
        if self.num_steps % self.eval_every:
            raise validate.BadValue("eval_every", self.eval_every, f"it must divide num_steps={self.num_steps}")


def _algorithm(name: str, p: Params):
    alpha = nsopt.schedules.inverse_power(p.a0 * p.b**p.p, p.b, p.p)
    if name == "sgd":
        return nsopt.sgd(alpha)
    return nsopt.heavy_ball(alpha, nsopt.proportional(p.r, alpha))


def _train(problem: QPDigits, name: str, p: Params, w0, keys: Array) -> dict[str, np.ndarray]:
    """Runs (one per key) with every iterate recorded, then per-step QP statistics and evaluations.

    One compiled program per stage (run, statistics, evaluation), looped over the keys in
    Python: one vmapped program over the keys was slower here (smoke 39 s against 25 s on a
    2-core CPU; it once hung, on the batched LAPACK kernels that ``nsopt.implicit.linear``
    now calls one matrix at a time).
    """
    alg = _algorithm(name, p)
    ks = jnp.arange(p.num_steps)

    @eqx.filter_jit
    def train(problem, key):
        return nsopt.run(alg, problem.oracle(), problem.sampler, w0, key, p.num_steps, 1)

    @eqx.filter_jit
    def stats(problem, w, key):
        # The oracle ran at (w_k, xi_k), k < num_steps, for both algorithms (heavy ball:
        # v_0 = oracle(w_0, xi_0), v_{k+1} = oracle(w_{k+1}, xi_{k+1})).
        xi = jax.vmap(lambda k: problem.sampler(jax.random.fold_in(key, k)))(ks)
        steps_w = jax.tree.map(lambda a: a[:-1], w)
        return jax.lax.map(lambda a: problem.qp_stats(*a), (steps_w, xi), batch_size=50)

    @eqx.filter_jit
    def evaluate(problem, w):
        ev = jax.tree.map(lambda a: a[::p.eval_every], w)
        return jax.lax.map(problem.F, ev), jax.lax.map(problem.accuracy, ev)

    runs = []
    for key in keys:
        traj = train(problem, key)
        st = stats(problem, traj.w, key)
        loss, acc = evaluate(problem, traj.w)
        runs.append({"loss": loss, "test_accuracy": acc, "degenerate": st["degenerate"],
                     "num_weakly_active": st["num_weakly_active"], "successful": st["successful"],
                     "diverged_step": traj.diverged_step})
    return {k: np.stack([np.asarray(r[k]) for r in runs]) for k in runs[0]}


def run(params: Params, key: Array) -> PresetResult:
    problem = qp_digits(params.hidden, params.batch_size, params.weak_weight, data_seed=params.data_seed)
    w0 = problem.init(jax.random.key(params.init_seed))
    keys = jax.random.split(key, params.seeds)  # the same minibatch sequences for both algorithms
    metrics: dict = {"dim": problem.dim, "n_train": int(problem.y_train.shape[0]),
                     "n_test": int(problem.y_test.shape[0]), "seeds": params.seeds,
                     "num_steps": params.num_steps, "min_test_accuracy": params.min_test_accuracy,
                     "dtype": str(problem.x_train.dtype)}
    arrays: dict[str, np.ndarray] = {"k": np.arange(0, params.num_steps + 1, params.eval_every)}
    out = {}
    for name in ALGORITHMS:
        r = _train(problem, name, params, w0, keys)
        out[name] = r
        metrics[name] = {
            "test_accuracy_min": float(r["test_accuracy"][:, -1].min()),
            "test_accuracy_mean": float(r["test_accuracy"][:, -1].mean()),
            "loss_initial": float(r["loss"][:, 0].mean()),
            "loss_final_mean": float(r["loss"][:, -1].mean()),
            "degenerate_fraction": float(r["degenerate"].mean()),
            "weakly_active_per_step": float(r["num_weakly_active"].mean()),
            "successful_fraction": float(r["successful"].mean()),
            "diverged_runs": int((r["diverged_step"] >= 0).sum()),
        }
        for k in ("loss", "test_accuracy", "degenerate"):
            arrays[f"{name}_{k}"] = r[k]
    claims = {
        "test_accuracy": all(metrics[n]["test_accuracy_min"] >= params.min_test_accuracy
                             and metrics[n]["diverged_runs"] == 0 for n in ALGORITHMS),
        "degenerate_fraction_reported": all(0.0 <= metrics[n]["degenerate_fraction"] <= 1.0
                                            for n in ALGORITHMS),
        "qp_solves_successful": all(metrics[n]["successful_fraction"] == 1.0 for n in ALGORITHMS),
    }
    return PresetResult(metrics, arrays, {"qp_layer": _figure(arrays, out, metrics, params)}, claims)


def _figure(arrays, out, metrics, p: Params):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    k = arrays["k"]
    for name in ALGORITHMS:
        r = out[name]
        ax1.plot(k, r["loss"].mean(0), color=COLORS[name],
                 label=f"{LABELS[name]} (test acc. {100 * metrics[name]['test_accuracy_mean']:.1f}%)")
        window = max(p.num_steps // 50, 1)
        frac = r["degenerate"].reshape(r["degenerate"].shape[0], -1, window).mean((0, 2))
        ax2.step(np.arange(frac.size) * window, frac, where="post", color=COLORS[name],
                 label=f"{LABELS[name]}: {100 * metrics[name]['degenerate_fraction']:.1f}% of steps")
    ax1.set_yscale("log")
    ax1.set_xlabel("iteration k")
    ax1.set_ylabel("training loss F(w_k) (Brier score)")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    ax2.set_xlabel(f"iteration k (windows of {max(p.num_steps // 50, 1)} steps)")
    ax2.set_ylabel("fraction of steps with a degenerate QP")
    ax2.set_ylim(0, 1)
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(f"Simplex-projection QP layer on load_digits ({metrics['dtype']}, {p.seeds} runs, "
                 f"batch {p.batch_size}, weak_weight {p.weak_weight:g})", fontsize=11)
    return fig


PRESET = Preset("qp_layer", Params, run, CLAIM)
