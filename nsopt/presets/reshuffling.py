"""Random reshuffling next to i.i.d. sampling: APT distance to the flow, side by side.

docs/theory.md §ODE approach.  The stochastic-approximation results (Benaim 1999; Bolte-Pauwels
2020, arXiv 1909.10300) assume i.i.d. noise: ``xi_k`` independent of the past.  Practitioners
run random reshuffling instead (epochs without replacement: the ``xi_k`` of an epoch are
dependent), which is outside that theory; within an epoch the sampled losses average to
``F`` exactly, so its noise cancels over each epoch, but only approximately: the sampled
gradients are taken at the moving iterates ``x_k``, so ``sum_k alpha_k (v_k - D_F(x_k))`` over an
epoch vanishes only up to the drift of ``x_k`` within it, and less so where the sampled losses
have kinks (Mishchenko-Khaled-Richtarik 2020, arXiv 2006.05988).  On robust phase retrieval
``F(x) = (1/m) sum_i |<a_i, x>^2 - b_i|``
(:func:`nsopt.problems.phase_retrieval`) run SGD ``x_{k+1} = x_k - alpha_k v_k`` with the same
step ``alpha_k = a / (k + b)^p``, the same inits and the same run keys under both schemes
(minibatches of ``batch_size``), and measure the APT distance

    d_T(t) = sup_{s in [0, T]} ||x(t + s) - g(s)||,   g' = -D_F(g), g(0) = x(t)

(:func:`nsopt.flow.diagnose`: a certified bound for the discretized flow and the flow's own
error estimate by step doubling) at log-spaced start times.  The metrics are the medians over
runs at the early and late start times, per scheme, with the flow's error and the fraction of
resolved windows (``error <= 0.1 distance``), the late ratio reshuffle / i.i.d. and the number
of paired runs (same init and key) in which reshuffling ends closer to the flow (measured, not
claimed).  At this sharp minimum the discretized flow chatters around ``{x*, -x*}`` in a band of
the order of its step, so a coarse ``dt`` puts the late distances at the flow's error floor
(unresolved) and can hide a difference between the schemes; the default ``dt`` resolves them
at full size, and the flow at ``coarse_dt`` is measured next to it (results/REPORT.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nsopt
from nsopt import validate as V
from nsopt.flow import apt_figure, diagnose
from nsopt.presets.apt_schedules import early_late, start_times
from nsopt.presets.base import PresetResult, new_figure
from nsopt.problems import phase_retrieval
from nsopt.problems.samplers import iid, reshuffle
from nsopt.schedules import inverse_power

__all__ = ["CLAIM", "MIN_RESOLVED", "Params", "flow_stats", "run"]

CLAIM = ("SGD shadows the flow (APT distance -> 0, resolved: above the flow's error) with random reshuffling "
         "as with i.i.d. sampling")
#: the claim's late windows must be resolved in at least this fraction
MIN_RESOLVED = 0.9
log = logging.getLogger("nsopt")
SCHEMES = {"iid": iid, "reshuffle": reshuffle}


@dataclass(frozen=True)
class Params:
    """Sizes of ``reshuffling`` (defaults: full size)."""

    d: int = 10                  # phase retrieval: dimension
    m: int = 200                 # measurements
    corruption: float = 0.1      # fraction of outliers
    data_seed: int = 0
    batch_size: int = 4          # minibatch size of both schemes
    a: float = 0.5               # alpha_k = a / (k + b)^p
    b: float = 10.0
    p: float = 0.75
    seeds: int = 16              # runs: random inits, each with its own run key (shared by the schemes)
    num_steps: int = 20000
    record_every: int = 5
    T: float = 1.0               # window of the APT distance (tau units)
    dt: float = 1e-4             # step of the flow over a window (nsopt.flow.diagnose)
    method: str = "heun"         # flow scheme (error estimate by step doubling)
    coarse_dt: float = 0.005     # a coarser flow step, measured for comparison (its error floor)
    k_min: int = 10
    num_times: int = 30
    early_late_fraction: float = 0.2

    def __post_init__(self):
        for f in ("d", "seeds", "num_steps", "record_every", "k_min", "num_times", "batch_size"):
            V.positive_int(f, getattr(self, f))
        V.integer("m", self.m, 2 * self.d)
        V.integer("batch_size", self.batch_size, 1, self.m)
        V.number("corruption", self.corruption, 0, 0.5, open_high=True)
        V.integer("data_seed", self.data_seed, 0)
        V.number("a", self.a, 0, open_low=True)
        V.number("b", self.b, 0, open_low=True)
        V.number("p", self.p, 0.5, 1, open_low=True)
        V.number("T", self.T, 0, open_low=True)
        V.number("dt", self.dt, 0, self.T, open_low=True)
        V.number("coarse_dt", self.coarse_dt, 0, self.T, open_low=True)
        V.choice("method", self.method, ["euler", "heun", "rk4"])
        V.number("early_late_fraction", self.early_late_fraction, 0, 0.5, open_low=True)


def run(params: Params, key: Array) -> PresetResult:
    """APT distance of SGD under i.i.d. and reshuffled minibatches (same inits, keys, steps)."""
    prm = params
    k_init, k_runs = jax.random.split(key)
    alg = nsopt.sgd(inverse_power(prm.a, prm.b, prm.p))
    T = float(prm.T)
    metrics: dict[str, Any] = {"runs": prm.seeds, "window": T, "epoch_steps": prm.m // prm.batch_size}
    arrays: dict[str, np.ndarray] = {}
    curves: dict[str, tuple] = {}
    w0 = keys = None
    late_runs: dict[str, np.ndarray] = {}   # per run: median late APT distance
    for name, scheme in SCHEMES.items():
        problem = phase_retrieval(prm.d, prm.m, prm.corruption, prm.data_seed, sampling=scheme(prm.batch_size))
        if w0 is None:
            w0, keys = problem.inits(k_init, prm.seeds), jax.random.split(k_runs, prm.seeds)
        t0 = time.perf_counter()
        traj = nsopt.run_configs(lambda _: (alg, problem.oracle(), problem.sampler, problem.F), jnp.zeros(1),
                                 w0, keys, prm.num_steps, prm.record_every, paired=True)
        traj = jax.tree.map(lambda x: x[0, :, 0], traj)        # (runs, records, ...)
        tau = np.asarray(traj.tau)
        times = start_times(tau[0], T, prm.k_min, prm.record_every, prm.num_times)
        flow, d, err, rep = flow_stats(traj, problem.field, T, times, prm.method, prm.dt, prm.early_late_fraction)
        coarse = flow_stats(traj, problem.field, T, times, prm.method, prm.coarse_dt, prm.early_late_fraction)[0]
        early, late = flow["apt_early"], flow["apt_late"]
        q = max(1, round(prm.early_late_fraction * d.shape[-1]))
        dist = np.asarray(problem.distance_to_solutions(traj.w[:, -1]))
        metrics[name] = {**flow, "coarse": coarse,
                         "final_distance_median": float(np.median(dist)),
                         "finite": int(np.sum(np.asarray(traj.finite))),
                         "seconds": time.perf_counter() - t0}
        log.info("reshuffling: %s APT %.3g -> %.3g (flow error %.2g, resolved late %.0f%%; %.1f s)", name, early,
                 late, metrics[name]["error_late"], 100 * metrics[name]["resolved_late"], metrics[name]["seconds"])
        curves[name] = (times, d)
        late_runs[name] = np.median(d[:, -q:], axis=-1)
        arrays[f"{name}/apt"], arrays[f"{name}/apt_times"] = d, times
        arrays[f"{name}/apt_error"] = err
        arrays[f"{name}/objective_median"] = np.median(np.asarray(traj.objective), axis=0)
        arrays[f"{name}/tau"] = tau[0]
    metrics["late_ratio_reshuffle_over_iid"] = metrics["reshuffle"]["apt_late"] / metrics["iid"]["apt_late"]
    # paired runs (same init and key): in how many is reshuffling's late distance the smaller one
    metrics["late_runs_reshuffle_below_iid"] = int(np.sum(late_runs["reshuffle"] < late_runs["iid"]))
    metrics["flow"] = {"method": rep.method, "dt": float(rep.dt), "rtol": float(rep.rtol),
                       "min_resolved": MIN_RESOLVED, "coarse_dt": float(prm.coarse_dt),
                       "coarse_over_dt": float(prm.coarse_dt) / float(rep.dt)}
    metrics["coarse_late_ratio_reshuffle_over_iid"] = (metrics["reshuffle"]["coarse"]["apt_late"]
                                                       / metrics["iid"]["coarse"]["apt_late"])
    claims = {f"{n}/shadowing": metrics[n]["apt_late"] < 0.5 * metrics[n]["apt_early"]
              and metrics[n]["resolved_late"] >= MIN_RESOLVED and metrics[n]["finite"] == prm.seeds for n in SCHEMES}
    return PresetResult(metrics=metrics, arrays=arrays, figures={"reshuffling": _figure(curves, arrays, prm, T)},
                        claims=claims)


def flow_stats(traj: Any, field: Any, T: float, times: np.ndarray, method: str, dt: float,
               fraction: float) -> tuple[dict[str, float], np.ndarray, np.ndarray, Any]:
    """:func:`nsopt.flow.diagnose` at the shared start ``times``: medians over runs of the APT distance,
    of the flow's error estimate and the resolved fraction at the first / last ``fraction`` of the
    start times; also the distances and errors ``(runs, J)`` and the report."""
    runs = traj.tau.shape[0]
    rep = diagnose(traj, field, T, times=jnp.asarray(np.broadcast_to(times, (runs, len(times)))), method=method,
                   dt=dt)
    d, err, resolved = (np.asarray(getattr(rep, f)) for f in ("distance", "error", "resolved"))
    early, late = early_late(d, fraction)
    q = max(1, round(fraction * d.shape[-1]))
    stats = {"apt_early": early, "apt_late": late, "apt_ratio": late / early,
             "error_early": float(np.median(err[:, :q])), "error_late": float(np.median(err[:, -q:])),
             "resolved_early": float(resolved[:, :q].mean()), "resolved_late": float(resolved[:, -q:].mean())}
    return stats, d, err, rep


def _figure(curves, arrays, prm, T):
    fig = new_figure(figsize=(13, 5), layout="constrained", dpi=110)
    ax, ax2 = fig.subplots(1, 2)
    apt_figure({"i.i.d.": curves["iid"], "reshuffled epochs": curves["reshuffle"]}, T=T, logx=True, ax=ax)
    for i, name in enumerate(("iid", "reshuffle")):
        ax.plot(curves[name][0], np.median(arrays[f"{name}/apt_error"], axis=0), ":", color=f"C{i}", lw=1.2,
                label=f"{'i.i.d.' if name == 'iid' else 'reshuffled'}: flow error estimate (median)")
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"APT distance to the flow (window T = {T:g}, {prm.method}, dt = {prm.dt:g})")
    ax.set_xlabel(r"start time t (interpolation time $\tau$)")
    for name, label in (("iid", "i.i.d."), ("reshuffle", "reshuffled epochs")):
        ax2.loglog(arrays[f"{name}/tau"][1:], arrays[f"{name}/objective_median"][1:], label=label)
    ax2.set_xlabel(r"$\tau_k = \sum_{j<k} \alpha_j$")
    ax2.set_ylabel(r"median $F(x_k)$")
    ax2.legend()
    ax2.set_title("objective along the iterates")
    fig.suptitle(f"robust phase retrieval d = {prm.d}, m = {prm.m}: SGD, minibatches of {prm.batch_size}, "
                 f"$\\alpha_k = {prm.a:g}/(k+{prm.b:g})^{{{prm.p:g}}}$, {prm.seeds} runs per scheme")
    return fig
