"""Shadowing of the flow by SGD and heavy ball, schedule by schedule (the ODE approach).

docs/theory.md §ODE approach (Benaim 1999; Benaim-Hofbauer-Sorin 2005; Bolte-Pauwels 2020; Le 2023 for
heavy ball).  On the ring ``f(w, xi) = | ||w||^2 - 1 | + <xi, w>`` (``xi ~ N(0, noise^2 I)``,
:func:`nsopt.problems.ring`), run

    SGD:         w_{k+1} = w_k - alpha_k v_k,
    heavy ball:  w_{k+1} = w_k - alpha_k y_k,  y_{k+1} = beta_k v_{k+1} + (1 - beta_k) y_k,  beta_k = c alpha_k,

for ``alpha_k = a_p / (k + b)^p`` with ``a_p = alpha_0 b^p`` (same first step) and
``p in {0.5, 0.6, 0.75, 1}``, and for the constant step ``alpha_k = alpha_0``.  The
interpolated process is an asymptotic pseudo-trajectory (APT) of the flow
``g' in -D_F(g)`` (heavy ball: of ``w' = -r y, y' in D_F(w) - y``, ``r = 1/c`` on the clock
``tau``) when the noise accumulated over a window of length ``T`` vanishes, e.g. for
``alpha in l^2 \\ l^1`` (``p in (1/2, 1]``): the APT distance

    d_T(t) = sup_{s in [0, T]} ||w(t + s) - g(s)||,   g(0) = w(t)   (:func:`nsopt.flow.diagnose`)

tends to ``0``.  With a constant step it stays of order ``noise sqrt(alpha_0 T)``.
``p = 1/2`` is outside ``l^2 \\ l^1`` (``sum alpha_k^2 = inf``) but the noise over a window
still vanishes (Gaussian noise: Benaim 1999, Prop. 4.4), so its APT distance decreases
too, more slowly.  Lyapunov curves: ``F(w_k)`` for SGD, ``F(w_k) + r/2 ||y_k||^2`` for
heavy ball (:func:`nsopt.flow.lyapunov`).

The metric is the median APT distance over runs at early start times (iterations
``k`` in the first fifth of a log-spaced grid) and late ones (the last fifth).
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
from nsopt.flow import apt_figure, diagnose, lyapunov, lyapunov_figure
from nsopt import validate as V
from nsopt.presets.base import PresetResult, new_figure, tuples
from nsopt.problems import Ring, ring
from nsopt.schedules import InversePower, in_l2_minus_l1

__all__ = ["CLAIM", "Params", "early_late", "run", "schedule_table", "start_times"]

CLAIM = ("SGD and heavy ball shadow the flow (APT distance -> 0) for alpha_k = a/(k+b)^p, "
         "p in (1/2, 1], not for a constant step")
log = logging.getLogger("nsopt")


@dataclass(frozen=True)
class Params:
    """Sizes of ``apt_schedules`` (defaults: full size)."""

    noise: float = 0.5              # ring: f(w, xi) = | ||w||^2 - 1 | + <xi, w>, xi ~ N(0, noise^2 I)
    kink: float = 0.0               # abs'(0)
    alpha0: float = 0.1             # first step of every schedule
    b: float = 20.0
    powers: tuple[float, ...] = (0.5, 0.6, 0.75, 1.0)
    constant: bool = True           # also alpha_k = alpha0
    momentum_c: float = 0.25        # heavy ball beta_k = c alpha_k
    seeds: int = 32                 # runs: random inits, each with its own noise sequence
    num_steps: int = 20000
    record_every: int = 5
    T: float = 1.0                  # window of the APT distance (tau units)
    dt: float = 0.001               # step of the flow over a window
    method: str = "heun"            # flow scheme (nsopt.flow.diagnose: error estimate by step doubling)
    k_min: int = 10
    num_times: int = 30
    early_late_fraction: float = 0.2

    def __post_init__(self):
        tuples(self)
        V.number("noise", self.noise, 0)
        V.number("kink", self.kink, -1, 1)
        V.number("alpha0", self.alpha0, 0, open_low=True)
        V.number("b", self.b, 0, open_low=True)
        V.numbers_list("powers", self.powers, 0, 1, open_low=True)
        V.number("momentum_c", self.momentum_c, 0, open_low=True)
        for f in ("seeds", "num_steps", "record_every", "k_min", "num_times"):
            V.positive_int(f, getattr(self, f))
        V.number("T", self.T, 0, open_low=True)
        V.number("dt", self.dt, 0, self.T, open_low=True)
        V.choice("method", self.method, ["euler", "heun", "rk4"])
        V.number("early_late_fraction", self.early_late_fraction, 0, 0.5, open_low=True)


def schedule_table(alpha0: float, b: float, powers: list[float], constant: bool) -> list[tuple[str, float, float, float]]:
    """``(label, a, b, p)`` rows: ``a = alpha0 b^p`` so that ``alpha_0`` is shared; ``p = 0`` is constant."""
    rows = [(f"p = {p:g}", alpha0 * b**p, b, float(p)) for p in powers]
    if constant:
        rows.append((f"constant {alpha0:g}", alpha0, 1.0, 0.0))
    return rows


def start_times(tau: np.ndarray, T: float, k_min: int, record_every: int, num: int) -> np.ndarray:
    """Start times ``tau_{k_j}`` for ``k_j`` log-spaced in ``[k_min, k_max]``, ``tau_{k_max} <= tau_last - T``.

    ``tau`` holds the recorded times of one run (``tau[i] = tau_{i * record_every}``).
    """
    i_max = int(np.searchsorted(tau, tau[-1] - T, side="right")) - 1
    i_min = max(1, k_min // record_every)
    if i_max <= i_min:
        raise ValueError(f"the horizon tau_last = {tau[-1]:.3g} leaves no start time for the window T = {T}")
    idx = np.geomspace(i_min, i_max, num).round().astype(int)
    return tau[idx]


def early_late(d: np.ndarray, fraction: float = 0.2) -> tuple[float, float]:
    """Median over runs of the APT distance at the first / last ``fraction`` of the start times."""
    q = max(1, round(fraction * d.shape[-1]))
    return float(np.nanmedian(d[..., :q])), float(np.nanmedian(d[..., -q:]))


def _build(alg_name: str, problem: Ring):
    def build(config):
        a, b, p, c = config
        alpha = InversePower(a, b, p)
        alg = nsopt.sgd(alpha) if alg_name == "sgd" else nsopt.heavy_ball(alpha, nsopt.proportional(c, alpha))
        return alg, problem.oracle(), problem.sampler, problem.F

    return build


def run(params: Params, key: Array) -> PresetResult:
    """APT distance and Lyapunov curves of SGD and heavy ball for each schedule."""
    prm = params
    problem = ring(noise=prm.noise, kink=prm.kink)
    dtype = problem.noise.dtype
    table = schedule_table(prm.alpha0, prm.b, list(prm.powers), bool(prm.constant))
    labels = [row[0] for row in table]
    a, b, p = (jnp.asarray([row[i] for row in table], dtype) for i in (1, 2, 3))
    k_init, k_runs = jax.random.split(key)
    n_runs = prm.seeds
    w0 = problem.inits(k_init, n_runs)
    keys = jax.random.split(k_runs, n_runs)
    K, every, T = prm.num_steps, prm.record_every, float(prm.T)
    c = float(prm.momentum_c)
    r = 1.0 / c  # scale 1: heavy ball shadows w' = -r y, y' = D_F(w) - y on the clock tau
    configs = (a, b, p, jnp.full_like(a, c))

    metrics: dict[str, Any] = {"schedules": {lab: {"a": float(row[1]), "b": float(row[2]), "p": float(row[3]),
                                                   "in_l2_minus_l1": bool(in_l2_minus_l1(InversePower(*row[1:])))
                                                   if row[3] > 0 else False}
                                             for lab, row in zip(labels, table)},
                               "runs_per_schedule": n_runs, "window": T, "r": r}
    arrays: dict[str, np.ndarray] = {}
    apt_curves: dict[str, dict] = {}
    lyap_curves: dict[str, dict] = {}
    claims: dict[str, bool] = {}
    shadowing = [lab for lab, row in zip(labels, table) if 0.5 < row[3] <= 1]
    for name in ("sgd", "heavy_ball"):
        t0 = time.perf_counter()
        traj = nsopt.run_configs(_build(name, problem), configs, w0, keys, K, every, paired=True)
        traj = jax.tree.map(lambda x: x[:, :, 0], traj)  # (schedules, runs, R, ...): one scale
        tau = np.asarray(traj.tau)  # (schedules, runs, R); scale 1: the same for every run
        times = np.stack([start_times(tau[i, 0], T, prm.k_min, every, prm.num_times)
                          for i in range(len(table))])
        J = times.shape[-1]
        times_b = np.broadcast_to(times[:, None, :], tau.shape[:2] + (J,))
        kw = {"r": r} if name == "heavy_ball" else {}
        reps = [diagnose(jax.tree.map(lambda x, i=i: x[i], traj), problem.field, T, times=jnp.asarray(times_b[i]),
                         method=prm.method, dt=prm.dt, **kw) for i in range(len(table))]  # one horizon each
        d, err, resolved = (np.stack([np.asarray(getattr(rp, f)) for rp in reps])
                            for f in ("distance", "error", "resolved"))
        rep = reps[0]
        E = np.asarray(lyapunov(traj, problem.F, **kw))
        w_rec = np.asarray(traj.w)
        seconds = time.perf_counter() - t0
        log.info("apt_schedules: %s done in %.1f s", name, seconds)
        per = {}
        apt_curves[name], lyap_curves[name] = {}, {}
        for i, lab in enumerate(labels):
            early, late = early_late(d[i], prm.early_late_fraction)
            q = max(1, round(prm.early_late_fraction * J))
            curve = np.median(d[i], axis=0)  # median over runs at each start time
            n_rec = E.shape[-1]
            per[lab] = {
                "apt_early": early,
                "apt_late": late,
                "apt_ratio": late / early,
                "apt_min": float(curve.min()),
                "tau_at_min": float(times[i, int(np.argmin(curve))]),
                "late_over_min": late / float(curve.min()),
                "error_late": float(np.median(err[i, :, -q:])),
                "resolved_early": float(resolved[i, :, :q].mean()),
                "resolved_late": float(resolved[i, :, -q:].mean()),
                **_kink_stats(w_rec[i], tau[i, 0], times[i, -q:], T),
                "k_early": float(np.interp(times[i, 0], tau[i, 0], np.arange(n_rec) * every)),
                "k_late": float(np.interp(times[i, -1], tau[i, 0], np.arange(n_rec) * every)),
                "tau_early": float(times[i, 0]),
                "tau_late": float(times[i, -q]),
                "lyapunov_late_median": float(np.median(E[i, :, -max(1, n_rec // 10):])),
                "alpha_last": float(a[i] / (K + b[i]) ** p[i]),
                "tau_last": float(tau[i, 0, -1]),
                "diverged": int(np.sum(np.asarray(traj.diverged_step[i]) >= 0)),
            }
            apt_curves[name][lab] = (times[i], d[i])
            lyap_curves[name][lab] = (tau[i, 0], E[i])
            arrays[f"{name}/{lab}/apt"] = d[i]
            arrays[f"{name}/{lab}/apt_times"] = times[i]
            arrays[f"{name}/{lab}/lyapunov_median"] = np.median(E[i], axis=0)
            arrays[f"{name}/{lab}/tau"] = tau[i, 0]
        per["seconds"] = seconds
        metrics[name] = per
        claims[f"{name}/shadowing_l2_minus_l1"] = all(
            per[lab]["apt_late"] < 0.5 * per[lab]["apt_early"] for lab in shadowing)
        if prm.constant:
            const = per[labels[-1]]
            claims[f"{name}/no_shadowing_constant_step"] = bool(
                const["apt_late"] > 0.85 * const["apt_early"]
                and all(const["apt_late"] > 2 * per[lab]["apt_late"] for lab in shadowing))

    metrics["flow"] = {"method": prm.method, "dt": float(rep.dt)}
    fig = _figure(apt_curves, lyap_curves, prm, T, r)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"apt_schedules": fig}, claims=claims)


def _kink_stats(w: np.ndarray, tau: np.ndarray, starts: np.ndarray, T: float) -> dict[str, float]:
    """Median over runs and the given windows ``[t, t + T]`` of the crossings of the kink
    ``||w|| = 1`` and of the largest ``| ||w|| - 1 |`` (``w``: runs x records x 2)."""
    rad = np.linalg.norm(w, axis=-1) - 1.0
    cross, dist = [], []
    for t in starts:
        i0, i1 = np.searchsorted(tau, t), np.searchsorted(tau, t + T) + 1
        s = np.sign(rad[:, i0:i1])
        cross.append(np.sum(s[:, 1:] != s[:, :-1], axis=1))
        dist.append(np.max(np.abs(rad[:, i0:i1]), axis=1))
    return {"kink_crossings_late": float(np.median(cross)), "kink_distance_late": float(np.median(dist))}


def _figure(apt_curves, lyap_curves, prm, T, r):
    fig = new_figure(figsize=(14, 9), layout="constrained", dpi=110)
    axes = fig.subplots(2, 2)
    titles = {"sgd": "SGD", "heavy_ball": f"heavy ball ($\\beta_k = {prm.momentum_c:g}\\,\\alpha_k$, r = {r:g})"}
    for j, name in enumerate(("sgd", "heavy_ball")):
        ax = axes[0, j]
        apt_figure(apt_curves[name], T=T, logx=True, ax=ax)
        ax.set_title(f"{titles[name]}:\nAPT distance to the flow (window T = {T:g})")
        ax = axes[1, j]
        ylabel = r"$F(w_k)$" if name == "sgd" else r"$E = F(w_k) + \frac{r}{2}\|y_k\|^2$"
        lyapunov_figure(lyap_curves[name], logy=True, ylabel=ylabel, ax=ax)
        for z, artist in enumerate(ax.lines[::-1] + ax.collections[::-1]):  # first schedules on top
            artist.set_zorder(2 + z / 100)
        for i, (t, e) in enumerate(lyap_curves[name].values()):  # end of each schedule's horizon
            ax.plot(t[-1], np.median(e[..., -1]), "X", color=f"C{i}", ms=10, mec="k", zorder=10)
        ax.set_xscale("log")
        ax.set_xlabel(r"$\tau_k = \sum_{j<k} \alpha_j$")
        ax.set_title(f"{titles[name]}:\nLyapunov function along the iterates (X: end of the run)")
    fig.suptitle(f"ring $|\\,\\|w\\|^2 - 1| + \\langle \\xi, w \\rangle$, noise {prm.noise:g}: "
                 f"$\\alpha_k = a/(k+b)^p$ with $\\alpha_0$ = {prm.alpha0:g}, b = {prm.b:g}; "
                 f"{prm.seeds} runs per schedule, {prm.num_steps} steps")
    return fig
