"""Shadowing of the flow by SGD and heavy ball, schedule by schedule (the ODE approach).

THEORY.md §5 (Benaim 1999; Benaim-Hofbauer-Sorin 2005; Bolte-Pauwels 2020; Le 2023 for
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

    d_T(t) = sup_{s in [0, T]} ||w(t + s) - g(s)||,   g(0) = w(t)   (:func:`nsopt.flow.apt_distance`)

tends to ``0``.  With a constant step it stays of order ``noise sqrt(alpha_0 T)``.
``p = 1/2`` is outside ``l^2 \\ l^1`` (``sum alpha_k^2 = inf``) but the noise over a window
still vanishes (Gaussian noise: Benaim 1999, Prop. 4.4), so its APT distance decreases
too, more slowly.  Lyapunov curves: ``F(w_k)`` for SGD, ``F(w_k) + r/2 ||y_k||^2`` for
heavy ball (:func:`nsopt.flow.lyapunov`).

The metric is the median APT distance over runs at early start times (iterations
``k`` in the first fifth of a log-spaced grid) and late ones (the last fifth).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nsopt
from nsopt.flow import apt_distance, apt_figure, lyapunov, lyapunov_figure
from nsopt.papers import PresetResult
from nsopt.problems import ring
from nsopt.schedules import InversePower, in_l2_minus_l1

__all__ = ["early_late", "run", "schedule_table", "start_times"]


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


@eqx.filter_jit
def _runs(alg_name: str, problem, a: Array, b: Array, p: Array, c: Array, keys: Array, w0: Array,
          num_steps: int, record_every: int) -> nsopt.Trajectory:
    """Runs over schedules (axis 0) x runs (axis 1); per-schedule floats are traced arguments."""

    def one(a_, b_, p_, key, w):
        alpha = InversePower(a_, b_, p_)
        if alg_name == "sgd":
            alg = nsopt.sgd(alpha)
        else:
            alg = nsopt.heavy_ball(alpha, nsopt.proportional(c, alpha))
        return nsopt.run(alg, problem.oracle(), problem.sampler, w, key, num_steps, record_every,
                         objective=problem.F)

    over_runs = jax.vmap(one, in_axes=(None, None, None, 0, 0))
    return jax.vmap(over_runs, in_axes=(0, 0, 0, None, None))(a, b, p, keys, w0)


def _merged(params: Mapping[str, Any], smoke: bool) -> dict[str, Any]:
    out = {k: v for k, v in params.items() if k != "smoke_overrides"}
    if smoke:
        out.update(params.get("smoke_overrides") or {})
    return out


def run(params: Mapping[str, Any], *, smoke: bool, run_dir: Path) -> PresetResult:
    """APT distance and Lyapunov curves of SGD and heavy ball for each schedule."""
    prm = _merged(params, smoke)
    run_dir = Path(run_dir)
    problem = ring(noise=prm["noise"], kink=prm["kink"])
    dtype = problem.noise.dtype
    table = schedule_table(prm["alpha0"], prm["b"], list(prm["powers"]), bool(prm["constant"]))
    labels = [row[0] for row in table]
    a, b, p = (jnp.asarray([row[i] for row in table], dtype) for i in (1, 2, 3))
    key = jax.random.key(int(prm["seed"]))
    k_init, k_runs = jax.random.split(key)
    n_runs = int(prm["runs"])
    w0 = problem.inits(k_init, n_runs)
    keys = jax.random.split(k_runs, n_runs)
    K, every, T = int(prm["num_steps"]), int(prm["record_every"]), float(prm["window"])
    c = float(prm["momentum_c"])
    r = 1.0 / c  # scale 1: heavy ball shadows w' = -r y, y' = D_F(w) - y on the clock tau

    metrics: dict[str, Any] = {"schedules": {lab: {"a": float(row[1]), "b": float(row[2]), "p": float(row[3]),
                                                   "in_l2_minus_l1": bool(in_l2_minus_l1(InversePower(*row[1:])))
                                                   if row[3] > 0 else False}
                                             for lab, row in zip(labels, table)},
                               "runs_per_schedule": n_runs, "window": T, "r": r}
    arrays: dict[str, np.ndarray] = {}
    apt_curves: dict[str, dict] = {}
    lyap_curves: dict[str, dict] = {}
    for name in ("sgd", "heavy_ball"):
        t0 = time.perf_counter()
        traj = _runs(name, problem, a, b, p, jnp.asarray(c, dtype), keys, w0, K, every)
        tau = np.asarray(traj.tau)  # (schedules, runs, R); scale 1: the same for every run
        times = np.stack([start_times(tau[i, 0], T, int(prm["k_min"]), every, int(prm["num_times"]))
                          for i in range(len(table))])
        J = times.shape[-1]
        times_b = np.broadcast_to(times[:, None, :], tau.shape[:2] + (J,))
        kw = {"r": r} if name == "heavy_ball" else {}
        d = np.asarray(apt_distance(traj, problem.field, T, jnp.asarray(times_b), dt=T / int(prm["flow_steps"]),
                                    **kw))
        E = np.asarray(lyapunov(traj, problem.F, **kw))
        seconds = time.perf_counter() - t0
        per = {}
        apt_curves[name], lyap_curves[name] = {}, {}
        for i, lab in enumerate(labels):
            early, late = early_late(d[i], float(prm["early_late_fraction"]))
            n_rec = E.shape[-1]
            per[lab] = {
                "apt_early": early,
                "apt_late": late,
                "apt_ratio": late / early,
                "k_early": float(np.interp(times[i, 0], tau[i, 0], np.arange(n_rec) * every)),
                "k_late": float(np.interp(times[i, -1], tau[i, 0], np.arange(n_rec) * every)),
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

    fig_path = run_dir / "apt_schedules.png"
    _figure(apt_curves, lyap_curves, prm, T, r).savefig(fig_path, dpi=110)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"apt_schedules": fig_path})


def _figure(apt_curves, lyap_curves, prm, T, r):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 9), layout="constrained")
    axes = fig.subplots(2, 2)
    titles = {"sgd": "SGD", "heavy_ball": f"heavy ball ($\\beta_k = {prm['momentum_c']:g}\\,\\alpha_k$, r = {r:g})"}
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
    fig.suptitle(f"ring $|\\,\\|w\\|^2 - 1| + \\langle \\xi, w \\rangle$, noise {prm['noise']:g}: "
                 f"$\\alpha_k = a/(k+b)^p$ with $\\alpha_0$ = {prm['alpha0']:g}, b = {prm['b']:g}; "
                 f"{prm['runs']} runs per schedule, {prm['num_steps']} steps")
    return fig
