"""Influence of ``relu'(0)`` on training a small ReLU network, per floating-point precision.

Network and data: :func:`nsopt.problems.relu_digits` (``load_digits``, one hidden layer,
cross-entropy, minibatch SGD ``w_{k+1} = w_k - alpha_k v_k``).  Backpropagation returns
an element of a conservative field whatever ``relu'(0) = kappa in [0, 1]`` is
(Bolte-Pauwels 2020, arXiv 1909.10300); two choices of ``kappa`` give different oracles only
at inputs where a pre-activation ``z = x . W + b`` is *exactly* ``0``, a Lebesgue-null
set.  In exact arithmetic the set is never hit by SGD from a random start (for almost
every initialization and step scale); in floating point it has a positive
"probability": heuristically, a sum of terms of size ``M`` rounds to exactly ``0`` with
probability at most of order the unit roundoff ``2^-t`` (``t`` = 53, 24, 11 bits for
float64, float32, float16), the numerical bifurcation studied by Bertoin, Bolte,
Gerchinovitz and Pauwels (NeurIPS 2021).  The preset reports the measured rate as a
multiple of ``2^-t`` (``zero_rate_over_unit_roundoff``).

For each precision (``float64``, ``float32`` and, for contrast, ``float16_mixed``:
float32 weights with the forward and backward passes computed in float16) the preset

- trains the same network from the same initial point (drawn once; flax draws float32
  parameters, cast exactly to each precision) with the same minibatches for ``kappa in {0, 1/2, 1}``, one run at a time
  (identical programs, so two runs differ bitwise only if the kink was hit);
- counts exact zeros among the pre-activations of the whole training set at the
  recorded iterates; the hit rate and its 95% bound count each *distinct* recorded iterate
  once (runs that ``kappa`` did not change are bitwise copies, and every run starts at the
  same point), and are compared with the unit roundoff ``2^-t`` of the compute dtype;
- reports the first iteration at which ``kappa`` changed the iterates and how much it
  changed the training curves, against the rounding drift float32 vs float64.

Each precision's runs are built under :func:`_x64` (``jax_enable_x64`` on for float64,
off for the others, restored after), so the preset gives the same numbers whatever the
process default: the index and key dtypes of the minibatch sampler follow that flag.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

import nsopt
from nsopt import validate as V
from nsopt.oracles import autodiff
from nsopt.presets.base import PresetResult, new_figure, tuples
from nsopt.problems import MLP, ReluDigits, relu_digits
from nsopt.schedules import inverse_power

__all__ = ["CLAIM", "PRECISIONS", "Params", "distinct_records", "first_difference", "kinked_loss",
           "preactivations", "run", "zero_count"]

CLAIM = ("relu'(0) changes SGD on a ReLU network only where a pre-activation is exactly 0: never seen in "
         "float64/float32, a positive rate in float16 (Bertoin et al. 2021)")

#: name -> (process precision for ``set_precision``, compute dtype of the forward/backward pass)
PRECISIONS: dict[str, tuple[str, Any]] = {
    "float64": ("float64", jnp.float64),
    "float32": ("float32", jnp.float32),
    "float16_mixed": ("float32", jnp.float16),
}


@dataclass(frozen=True)
class Params:
    """Sizes of ``relu_prime`` (defaults: full size); the initial point is drawn from the run's key."""

    precisions: tuple[str, ...] = ("float64", "float32", "float16_mixed")
    kinks: tuple[float, ...] = (0.0, 0.5, 1.0)
    hidden: tuple[int, ...] = (32,)
    batch_size: int = 32
    seeds: int = 4
    a: float = 0.5
    b: float = 10.0
    p: float = 0.6
    num_steps: int = 3000
    record_every: int = 50

    def __post_init__(self):
        tuples(self)
        for i, name in enumerate(self.precisions):
            V.choice(f"precisions[{i}]", name, list(PRECISIONS))
        V.numbers_list("kinks", self.kinks, 0, 1)
        for i, h in enumerate(self.hidden):
            V.positive_int(f"hidden[{i}]", h)
        for f in ("batch_size", "seeds", "num_steps", "record_every"):
            V.positive_int(f, getattr(self, f))
        V.number("a", self.a, 0, open_low=True)
        V.number("b", self.b, 0, open_low=True)
        V.number("p", self.p, 0, 1, open_low=True)


@contextlib.contextmanager
def _x64(enabled: bool):
    """Build and run one precision's programs with ``jax_enable_x64 = enabled``; restore after."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


def kinked_loss(problem: ReluDigits, compute: Any, kink: Array, w: Any, xi: Array) -> Array:
    """Minibatch cross-entropy of ``problem``'s network with ``relu'(0) = kink`` (a traced value).

    The forward and backward passes run in ``compute`` (weights and inputs cast to it);
    the logits are cast back to the weights' dtype before the softmax cross-entropy.
    """
    param_dtype = jax.tree.leaves(w)[0].dtype
    wc = jax.tree.map(lambda a: a.astype(compute), w)
    logits = problem.module.apply({"params": wc}, problem.x_train[xi].astype(compute), kink)
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(param_dtype), problem.y_train[xi]).mean()


def preactivations(problem: ReluDigits, compute: Any, w: Any, x: Array) -> list[Array]:
    """Pre-activations ``z_l = h_{l-1} W_l + b_l`` of every hidden layer, computed in ``compute``."""
    wc = jax.tree.map(lambda a: a.astype(compute), w)
    _, state = problem.module.apply({"params": wc}, x.astype(compute), capture_intermediates=True)
    inter = state["intermediates"]
    return [inter[f"Dense_{i}"]["__call__"][0] for i in range(len(problem.module.hidden))]


def zero_count(problem: ReluDigits, compute: Any, w_records: Any) -> Array:
    """Number of exactly-zero hidden pre-activations over the training set, per recorded iterate."""

    def one(w):
        return sum(jnp.sum(z == 0) for z in preactivations(problem, compute, w, problem.x_train))

    return jax.lax.map(one, w_records)


def distinct_records(runs: list[np.ndarray]) -> np.ndarray:
    """Mask over ``(run, record)`` (runs: ``(records, ...)`` arrays) of the first occurrence of each
    bitwise-distinct record: a recorded iterate repeated in another run (or record) counts once."""
    seen: set[bytes] = set()
    mask = np.zeros((len(runs), runs[0].shape[0]), dtype=bool)
    for i, w in enumerate(runs):
        for r in range(w.shape[0]):
            b = np.ascontiguousarray(w[r]).tobytes()
            if b not in seen:
                seen.add(b)
                mask[i, r] = True
    return mask


def first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    """Index of the first record where two recorded arrays (record axis 0) differ; ``None`` if never."""
    diff = np.any((a != b).reshape(a.shape[0], -1), axis=1)
    return int(np.argmax(diff)) if diff.any() else None


@eqx.filter_jit
def _train(problem: ReluDigits, compute: Any, a: Array, b: Array, p: Array, kink: Array, key: Array,
           w0: Any, num_steps: int, record_every: int):
    """One SGD run with ``relu'(0) = kink``; returns the trajectory and the zero counts at its records."""
    loss = functools.partial(kinked_loss, problem, compute, kink)
    alg = nsopt.sgd(inverse_power(a, b, p))
    traj = nsopt.run(alg, autodiff(loss), problem.sampler, w0, key, num_steps, record_every,
                     objective=problem.F)
    return traj, zero_count(problem, compute, traj.w), problem.accuracy(jax.tree.map(lambda x: x[-1], traj.w))


def _flat(tree: Any) -> np.ndarray:
    return np.concatenate([np.asarray(x).reshape(np.shape(x)[0], -1) for x in jax.tree.leaves(tree)], axis=1)


def run(params: Params, key: Array) -> PresetResult:
    """Train with each ``relu'(0)`` in each precision; count kink hits and curve differences."""
    prm = dataclasses.asdict(params)
    kinks = [float(k) for k in prm["kinks"]]
    seeds = list(range(int(prm["seeds"])))
    K, every = int(prm["num_steps"]), int(prm["record_every"])
    hidden = tuple(int(h) for h in prm["hidden"])
    with _x64(True):  # one initial point (float32 flax parameters) cast to every precision
        w0_64 = jax.tree.map(np.asarray, relu_digits(hidden, int(prm["batch_size"])).init(key))

    curves: dict[str, np.ndarray] = {}   # precision -> (kinks, seeds, R) objective
    metrics: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    k_axis = None
    for name in prm["precisions"]:
        process, compute = PRECISIONS[name]
        t0 = time.perf_counter()
        with _x64(process == "float64"):
            problem = relu_digits(hidden, int(prm["batch_size"]))
            dt = jnp.result_type(float)
            w0 = jax.tree.map(lambda a, dt=dt: jnp.asarray(a, dt), w0_64)
            sched = [jnp.asarray(prm[k], dt) for k in ("a", "b", "p")]
            obj = np.zeros((len(kinks), len(seeds), K // every + 1))
            zeros = np.zeros((len(kinks), len(seeds)), dtype=np.int64)
            per_record: list[np.ndarray] = []   # zero counts per record, run by run
            records: list[np.ndarray] = []       # flat recorded iterates, run by run
            acc = np.zeros((len(kinks), len(seeds)))
            finals, first = {}, []
            for s in seeds:
                ref = None
                for i, kink in enumerate(kinks):
                    traj, z, a = _train(problem, compute, *sched, jnp.asarray(kink, dt), jax.random.key(s), w0, K,
                                        every)
                    obj[i, s] = np.asarray(traj.objective)
                    zeros[i, s] = int(np.sum(np.asarray(z)))
                    per_record.append(np.asarray(z, dtype=np.int64))
                    acc[i, s] = float(a)
                    w = _flat(traj.w)
                    records.append(w)
                    if ref is None:
                        ref = w
                        k_axis = np.asarray(traj.k)
                    else:
                        j = first_difference(ref, w)
                        first.append(None if j is None else int(k_axis[j]))
                    finals[(i, s)] = w[-1]
            n_hidden = sum(hidden)
            per_iterate = problem.x_train.shape[0] * n_hidden   # pre-activations per recorded iterate
            evaluated = len(kinks) * len(seeds) * (K // every + 1) * per_iterate
            distinct = distinct_records(records)
            zeros_distinct = int(np.sum(np.stack(per_record)[distinct]))
            runs_distinct = len({w.tobytes() for w in records})
        changed = [f for f in first if f is not None]
        n_distinct = int(distinct.sum()) * per_iterate
        unit = float(jnp.finfo(compute).eps) / 2   # unit roundoff 2^-t, t = 53, 24, 11
        upper = float(max(3.0, zeros_distinct + 2 * np.sqrt(zeros_distinct)) / n_distinct)
        curves[name] = obj
        metrics[name] = {
            "compute_dtype": jnp.dtype(compute).name,
            "weights_dtype": process,
            "preactivations_evaluated": int(evaluated),
            "zero_preactivations": int(zeros.sum()),
            "runs": len(records),
            "runs_distinct": runs_distinct,
            "iterates_recorded": int(distinct.size),
            "iterates_distinct": int(distinct.sum()),
            "preactivations_distinct": int(n_distinct),
            "zero_preactivations_distinct": zeros_distinct,
            # rates over the distinct recorded iterates (a bitwise copy is not a new trial)
            "zero_rate": zeros_distinct / n_distinct,
            # rule of three: with no zero seen in n trials, the rate is below 3 / n at 95% confidence
            # (each distinct pre-activation taken as an independent trial)
            "zero_rate_upper_95": upper,
            "unit_roundoff": unit,
            "zero_rate_over_unit_roundoff": zeros_distinct / n_distinct / unit,
            "zero_rate_upper_95_over_unit_roundoff": upper / unit,
            "runs_changed_by_kink": len(changed),
            "runs_compared": len(first),
            "first_kink_effect_k": min(changed) if changed else None,
            "max_kink_curve_diff": float(np.max(np.abs(obj - obj[:1]))),
            "max_kink_weight_diff": float(max(np.max(np.abs(finals[(i, s)] - finals[(0, s)]))
                                              for i in range(len(kinks)) for s in seeds)),
            "final_loss_median": {f"{k:g}": float(np.median(obj[i, :, -1])) for i, k in enumerate(kinks)},
            "test_accuracy_median": {f"{k:g}": float(np.median(acc[i])) for i, k in enumerate(kinks)},
            "seconds": time.perf_counter() - t0,
        }
        arrays[f"{name}/objective"] = obj
        arrays[f"{name}/zero_preactivations"] = zeros
    arrays["k"] = k_axis
    if "float32" in curves and "float64" in curves:
        metrics["max_curve_diff_float32_vs_float64"] = float(np.max(np.abs(curves["float32"] - curves["float64"])))
    metrics["steps"], metrics["kinks"], metrics["seeds"] = K, kinks, len(seeds)
    metrics["minibatch_preactivations_per_run"] = K * int(prm["batch_size"]) * sum(hidden)

    claims = {f"{n}/kink_never_hit": metrics[n]["zero_preactivations"] == 0
              and metrics[n]["max_kink_curve_diff"] == 0.0 for n in curves if n != "float16_mixed"}
    if "float16_mixed" in curves:
        claims["float16_mixed/kink_hit"] = metrics["float16_mixed"]["zero_preactivations"] > 0
    fig = _figure(curves, metrics, k_axis, kinks, prm)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"relu_prime": fig}, claims=claims)


def _figure(curves, metrics, k, kinks, prm):
    fig = new_figure(figsize=(16, 4.8), layout="constrained", dpi=110)
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[1.1, 1.1, 0.8])
    styles = ["-", "--", ":"]
    for c, (name, obj) in enumerate(curves.items()):
        for i, kink in enumerate(kinks):
            ax1.plot(k, np.median(obj[i], axis=0), styles[i % 3], color=f"C{c}", lw=1.3,
                     label=f"{name}, relu'(0) = {kink:g}")
    ax1.set(yscale="log", xlabel="iteration k", ylabel="training loss F(w_k) (median over seeds)",
            title=f"training curves ({len(curves) * len(kinks)} curves, overlapping)")
    ax1.legend(fontsize=7, ncol=1)
    ax1.grid(True, which="both", alpha=0.3)

    floor = 1e-12
    for c, (name, obj) in enumerate(curves.items()):
        for i, kink in enumerate(kinks[1:], start=1):
            d = np.max(np.abs(obj[i] - obj[0]), axis=0)
            tag = "" if d.max() > 0 else " (identical: 0)"
            ax2.plot(k, np.maximum(d, floor), styles[i % 3], color=f"C{c}", lw=1.3,
                     label=f"{name}: relu'(0) = {kink:g} vs 0{tag}")
    if "float32" in curves and "float64" in curves:
        d = np.max(np.abs(curves["float32"][0] - curves["float64"][0]), axis=0)
        ax2.plot(k, np.maximum(d, floor), color="k", lw=1, alpha=0.6, label="float32 vs float64, relu'(0) = 0")
    ax2.set(yscale="log", ylim=(floor / 3, 1.0), xlabel="iteration k",
            ylabel=r"$\max_{seeds} |F_\kappa(w_k) - F_0(w_k)|$",
            title=f"effect of relu'(0) on the curves (zero drawn at {floor:g})")
    ax2.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 0.06))
    ax2.grid(True, which="both", alpha=0.3)

    names = list(curves)
    rates = [metrics[n]["zero_rate"] for n in names]
    shown = [max(r, 1e-12) for r in rates]
    ax3.bar(range(len(names)), shown, color=[f"C{c}" for c in range(len(names))], log=True)
    labels = {"bound": "95% upper bound when no zero is seen", "unit": "unit roundoff 2^-t of the passes"}
    for j, n in enumerate(names):
        m = metrics[n]
        if m["zero_preactivations"] == 0:
            ax3.plot([j], [m["zero_rate_upper_95"]], "v", color=f"C{j}", ms=9, label=labels.pop("bound", None))
        if 1e-12 < m["unit_roundoff"] < 1e-1:   # float64's 2^-53 is below the axis
            ax3.plot([j - 0.4, j + 0.4], [m["unit_roundoff"]] * 2, color="k", lw=1.5, label=labels.pop("unit", None))
        ax3.text(j, shown[j] * 1.5, f"{m['zero_preactivations_distinct']} / {m['preactivations_distinct']:.2g}\n"
                 f"changed runs: {m['runs_changed_by_kink']}/{m['runs_compared']}", ha="center", fontsize=8)
    ax3.set_xticks(range(len(names)), names)
    ax3.set(ylim=(1e-12, 1e-1), ylabel="exact zeros / distinct pre-activations evaluated",
            title="how often the kink is hit (0 drawn at 1e-12)")
    ax3.grid(True, axis="y", which="both", alpha=0.3)
    ax3.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"relu'(0) in {{{', '.join(f'{x:g}' for x in kinks)}}} on load_digits, MLP hidden "
                 f"{list(prm['hidden'])}, batch {prm['batch_size']}, {prm['num_steps']} SGD steps, "
                 f"{prm['seeds']} seeds; same start point and minibatches for every run")
    return fig
