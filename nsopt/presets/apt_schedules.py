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
``k`` in the first fifth of a log-spaced grid) and late ones (the last fifth).  Each window
is diagnosed on its own (:mod:`nsopt.presets.windows`), with its flow error estimate.

Kink study (heavy ball, ``p = kink_p``): why the distance rises again late.  Per window the
preset counts the iterates' crossings of the kink circle ``||w|| = 1`` (between records) and
the half-range of their radial momentum ``<y, w / ||w||>``; it re-runs the flow of the late
windows with the coarser step ``coarse_dt``, runs the same schedule without noise (same
inits) and once for ``long_steps`` steps (the first ``long_seeds`` runs).
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
from nsopt.flow import apt_figure, lyapunov, lyapunov_figure
from nsopt.presets.base import PresetResult, new_figure, tuples
from nsopt.presets.windows import windowed_diagnose
from nsopt.problems import Ring, ring
from nsopt.schedules import InversePower, in_l2_minus_l1

__all__ = ["CLAIM", "Params", "early_late", "kink_windows", "run", "schedule_table", "start_indices",
           "start_times"]

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
    dt: float = 0.00025             # step of the flow over a window
    method: str = "heun"            # flow scheme (nsopt.flow.diagnose: error estimate by step doubling)
    k_min: int = 10
    num_times: int = 30
    early_late_fraction: float = 0.2
    kink_p: float = 0.6             # kink study: heavy ball with this power (one of powers)
    coarse_dt: float = 0.001        # kink study: the late windows' flow again with this step
    long_steps: int = 100000        # kink study: one long run of the schedule kink_p
    long_seeds: int = 16            # ... with the first long_seeds inits and noise sequences

    def __post_init__(self):
        tuples(self)
        V.number("noise", self.noise, 0)
        V.number("kink", self.kink, -1, 1)
        V.number("alpha0", self.alpha0, 0, open_low=True)
        V.number("b", self.b, 0, open_low=True)
        V.numbers_list("powers", self.powers, 0, 1, open_low=True)
        V.number("momentum_c", self.momentum_c, 0, open_low=True)
        for f in ("seeds", "num_steps", "record_every", "k_min", "num_times", "long_steps", "long_seeds"):
            V.positive_int(f, getattr(self, f))
        V.number("T", self.T, 0, open_low=True)
        V.number("dt", self.dt, 0, self.T, open_low=True)
        V.number("coarse_dt", self.coarse_dt, 0, self.T, open_low=True)
        V.choice("method", self.method, ["euler", "heun", "rk4"])
        V.number("early_late_fraction", self.early_late_fraction, 0, 0.5, open_low=True)
        V.number("kink_p", self.kink_p, 0, 1, open_low=True)
        if self.kink_p not in self.powers:
            raise V.BadValue("kink_p", self.kink_p, f"choose one of powers = {list(self.powers)}")
        V.integer("long_seeds", self.long_seeds, 1, self.seeds)


def schedule_table(alpha0: float, b: float, powers: list[float], constant: bool) -> list[tuple[str, float, float, float]]:
    """``(label, a, b, p)`` rows: ``a = alpha0 b^p`` so that ``alpha_0`` is shared; ``p = 0`` is constant."""
    rows = [(f"p = {p:g}", alpha0 * b**p, b, float(p)) for p in powers]
    if constant:
        rows.append((f"constant {alpha0:g}", alpha0, 1.0, 0.0))
    return rows


def start_indices(tau: np.ndarray, T: float, k_min: int, record_every: int, num: int) -> np.ndarray:
    """Records ``i_j`` (``k_j = i_j * record_every``) log-spaced in ``[k_min, k_max]``, ``tau_{k_max} <= tau_last - T``.

    ``tau`` holds the recorded times of one run (``tau[i] = tau_{i * record_every}``).
    """
    i_max = int(np.searchsorted(tau, tau[-1] - T, side="right")) - 1
    i_min = max(1, k_min // record_every)
    if i_max <= i_min:
        raise ValueError(f"the horizon tau_last = {tau[-1]:.3g} leaves no start time for the window T = {T}")
    return np.geomspace(i_min, i_max, num).round().astype(int)


def start_times(tau: np.ndarray, T: float, k_min: int, record_every: int, num: int) -> np.ndarray:
    """``tau`` at :func:`start_indices`: start times ``tau_{k_j}``."""
    return tau[start_indices(tau, T, k_min, record_every, num)]


def early_late(d: np.ndarray, fraction: float = 0.2) -> tuple[float, float]:
    """Median over runs of the APT distance at the first / last ``fraction`` of the start times."""
    q = max(1, round(fraction * d.shape[-1]))
    return float(np.nanmedian(d[..., :q])), float(np.nanmedian(d[..., -q:]))


def kink_windows(w: np.ndarray, y: np.ndarray | None, tau: np.ndarray, starts: np.ndarray, T: float
                 ) -> dict[str, np.ndarray]:
    """Per run and window ``[t_j, t_j + T]`` (``runs x J``), from the records ``w`` (runs x R x 2):

    ``crossings`` of the kink circle ``||w|| = 1`` (sign changes of ``||w|| - 1`` between records),
    ``kink_distance`` ``max | ||w|| - 1 |`` and, for heavy ball, ``momentum_range``: the half-range
    ``(max - min) / 2`` of the radial momentum ``<y, w / ||w||>``.
    """
    norm = np.linalg.norm(w, axis=-1)
    rad = norm - 1.0
    yr = None if y is None else np.sum(y * w, axis=-1) / np.where(norm > 0, norm, 1)
    out: dict[str, list] = {"crossings": [], "kink_distance": [], "momentum_range": []}
    for t in starts:
        i0, i1 = np.searchsorted(tau, t), np.searchsorted(tau, t + T, side="right")
        s = np.sign(rad[:, i0:i1])
        out["crossings"].append(np.sum(s[:, 1:] != s[:, :-1], axis=1))
        out["kink_distance"].append(np.max(np.abs(rad[:, i0:i1]), axis=1))
        if yr is not None:
            out["momentum_range"].append(0.5 * np.ptp(yr[:, i0:i1], axis=1))
    return {k: np.stack(v, axis=1) for k, v in out.items() if v}


def _build(alg_name: str, problem: Ring):
    def build(config):
        a, b, p, c, noise = config
        alpha = InversePower(a, b, p)
        prob = Ring(noise.astype(problem.noise.dtype), problem.kink, problem.init_radius)
        alg = nsopt.sgd(alpha) if alg_name == "sgd" else nsopt.heavy_ball(alpha, nsopt.proportional(c, alpha))
        return alg, prob.oracle(), prob.sampler, prob.F

    return build


def _runs(name: str, problem: Ring, rows: list[tuple], w0: Array, keys: Array, K: int, every: int):
    """``(configs, runs, R, ...)`` trajectories of the rows ``(a, b, p, c, noise)``, one program."""
    configs = tuple(jnp.asarray([row[i] for row in rows], problem.noise.dtype) for i in range(5))
    traj = nsopt.run_configs(_build(name, problem), configs, w0, keys, K, every, paired=True)
    return jax.tree.map(lambda x: x[:, :, 0], traj)  # one scale


def _flat(traj, rows: slice | list):
    """Rows ``rows`` of a ``(configs, runs, R, ...)`` trajectory as one batch ``(configs * runs, R, ...)``."""
    return jax.tree.map(lambda x: np.asarray(x)[rows].reshape((-1,) + np.shape(x)[2:]), traj)


def _curve_stats(times: np.ndarray, d: np.ndarray, err: np.ndarray, win: dict, q: int) -> dict[str, float]:
    """Median-over-runs curves of one batch (``runs x J``): the minimum, the peak after it, the last ``q`` windows."""
    med = lambda a: np.median(a, axis=0)  # noqa: E731
    curve = med(d)
    j_min = int(np.argmin(curve))
    j_peak = j_min + int(np.argmax(curve[j_min:]))
    out = {"apt_min": float(curve[j_min]), "tau_at_min": float(times[j_min]),
           "apt_peak": float(curve[j_peak]), "tau_at_peak": float(times[j_peak]),
           "apt_last": float(np.median(d[:, -q:])), "tau_last": float(times[-q]),
           "error_at_peak": float(med(err)[j_peak]), "error_last": float(np.median(err[:, -q:])),
           "resolved_last": float(np.mean(err[:, -q:] <= 0.1 * d[:, -q:]))}
    out["fall_over_error_last"] = (out["apt_peak"] - out["apt_last"]) / out["error_last"]
    for key, arr in (("crossings", win["crossings"]), ("momentum", win["momentum_range"])):
        c = med(arr)
        out.update({f"{key}_at_min": float(c[j_min]), f"{key}_at_peak": float(c[j_peak]),
                    f"{key}_last": float(np.median(arr[:, -q:]))})
    ratio = d / np.maximum(win["momentum_range"], np.finfo(float).tiny)
    out.update({"apt_over_momentum_at_min": float(med(ratio)[j_min]),
                "apt_over_momentum_last": float(np.median(ratio[:, -q:]))})
    return out


def run(params: Params, key: Array) -> PresetResult:
    """APT distance and Lyapunov curves of SGD and heavy ball for each schedule, and the kink study."""
    prm = params
    problem = ring(noise=prm.noise, kink=prm.kink)
    table = schedule_table(prm.alpha0, prm.b, list(prm.powers), bool(prm.constant))
    labels = [row[0] for row in table]
    S, n_runs = len(table), prm.seeds
    k_init, k_runs = jax.random.split(key)
    w0 = problem.inits(k_init, n_runs)
    keys = jax.random.split(k_runs, n_runs)
    K, every, T = prm.num_steps, prm.record_every, float(prm.T)
    c = float(prm.momentum_c)
    r = 1.0 / c  # scale 1: heavy ball shadows w' = -r y, y' = D_F(w) - y on the clock tau
    rows = [(row[1], row[2], row[3], c, prm.noise) for row in table]
    ik = labels.index(f"p = {prm.kink_p:g}")
    control = rows[ik][:4] + (0.0,)  # the kink study's schedule without noise, same inits
    q = max(1, round(prm.early_late_fraction * prm.num_times))

    metrics: dict[str, Any] = {"schedules": {lab: {"a": float(row[1]), "b": float(row[2]), "p": float(row[3]),
                                                   "in_l2_minus_l1": bool(in_l2_minus_l1(InversePower(*row[1:])))
                                                   if row[3] > 0 else False}
                                             for lab, row in zip(labels, table)},
                               "runs_per_schedule": n_runs, "window": T, "r": r}
    arrays: dict[str, np.ndarray] = {}
    apt_curves: dict[str, dict] = {}
    lyap_curves: dict[str, dict] = {}
    study_curves: dict[str, tuple] = {}
    claims: dict[str, bool] = {}
    shadowing = [lab for lab, row in zip(labels, table) if 0.5 < row[3] <= 1]
    for name in ("sgd", "heavy_ball"):
        heavy = name == "heavy_ball"
        t0 = time.perf_counter()
        traj = _runs(name, problem, rows + ([control] if heavy else []), w0, keys, K, every)
        tau = np.asarray(traj.tau)  # (configs, runs, R); scale 1: the same for every run
        idx = np.stack([start_indices(tau[i, 0], T, prm.k_min, every, prm.num_times) for i in range(tau.shape[0])])
        times = np.take_along_axis(tau[:, 0], idx, axis=1)
        J = idx.shape[-1]
        parts = [(_flat(traj, slice(None)), np.repeat(idx, n_runs, axis=0))]
        if heavy:  # the kink study's long run
            long = _runs(name, problem, [rows[ik]], w0[:prm.long_seeds], keys[:prm.long_seeds],
                         prm.long_steps, every)
            tau_long = np.asarray(long.tau)[0, 0]
            idx_long = start_indices(tau_long, T, prm.k_min, every, prm.num_times)
            parts.append((_flat(long, slice(None)), np.tile(idx_long, (prm.long_seeds, 1))))
        run_s = time.perf_counter() - t0
        reps, timing = windowed_diagnose(parts, problem.field, T, dt=prm.dt, method=prm.method,
                                         r=r if heavy else None)
        d, err, resolved = (getattr(reps[0], f).reshape(-1, n_runs, J) for f in ("distance", "error", "resolved"))
        kw = {"r": r} if heavy else {}
        E = np.asarray(lyapunov(jax.tree.map(lambda x: x[:S], traj), problem.F, **kw))
        w_rec = np.asarray(traj.w)
        y_rec = np.asarray(traj.y) if heavy else None
        per: dict[str, Any] = {}
        apt_curves[name], lyap_curves[name] = {}, {}
        sub = np.unique(np.geomspace(1, E.shape[-1] - 1, 500).round().astype(int))  # drawn on a log axis
        wins = [kink_windows(w_rec[i], None if y_rec is None else y_rec[i], tau[i, 0], times[i], T)
                for i in range(tau.shape[0])]
        for i, lab in enumerate(labels):
            early, late = early_late(d[i], prm.early_late_fraction)
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
                "error_over_apt_late": float(np.median(err[i, :, -q:] / d[i, :, -q:])),
                "resolved_early": float(resolved[i, :, :q].mean()),
                "resolved_late": float(resolved[i, :, -q:].mean()),
                "kink_crossings_late": float(np.median(wins[i]["crossings"][:, -q:])),
                "kink_distance_late": float(np.median(wins[i]["kink_distance"][:, -q:])),
                "k_early": float(idx[i, 0] * every),
                "k_late": float(idx[i, -1] * every),
                "tau_early": float(times[i, 0]),
                "tau_late": float(times[i, -q]),
                "lyapunov_late_median": float(np.median(E[i, :, -max(1, n_rec // 10):])),
                "alpha_last": float(table[i][1] / (K + table[i][2]) ** table[i][3]),
                "tau_last": float(tau[i, 0, -1]),
                "diverged": int(np.sum(np.asarray(traj.diverged_step[i]) >= 0)),
            }
            if heavy:
                mom = wins[i]["momentum_range"]
                per[lab]["momentum_late"] = float(np.median(mom[:, -q:]))
                per[lab]["apt_over_momentum_late"] = float(np.median(d[i, :, -q:] / mom[:, -q:]))
            apt_curves[name][lab] = (times[i], d[i])
            lyap_curves[name][lab] = (tau[i, 0, sub], E[i][:, sub])
            arrays[f"{name}/{lab}/apt"] = d[i]
            arrays[f"{name}/{lab}/apt_error"] = err[i]
            arrays[f"{name}/{lab}/apt_times"] = times[i]
            arrays[f"{name}/{lab}/lyapunov_median"] = np.median(E[i], axis=0)
            arrays[f"{name}/{lab}/tau"] = tau[i, 0]
        if heavy:  # the kink study: the noisy runs of kink_p, the noise-0 control (last row), the long run
            times_long = tau_long[idx_long]
            series = {"noisy": (times[ik], d[ik], err[ik], wins[ik]),
                      "noise_0": (times[-1], d[-1], err[-1], wins[-1]),
                      "long": (times_long, reps[1].distance, reps[1].error,
                               kink_windows(np.asarray(long.w)[0], np.asarray(long.y)[0], tau_long, times_long, T))}
            (coarse,), _ = windowed_diagnose([(_flat(traj, [ik]), np.tile(idx[ik][-q:], (n_runs, 1)))],
                                             problem.field, T, dt=prm.coarse_dt, method=prm.method, r=r)
            metrics["kink_study"], study_arrays, study_curves = _kink_study(prm, series, idx[-1], coarse,
                                                                           d[ik][:, -q:], reps[0].dt, q)
            arrays.update(study_arrays)
        per.update(seconds=time.perf_counter() - t0, run_s=run_s, compile_s=timing["compile_s"],
                   flow_s=timing["flow_s"])
        log.info("apt_schedules: %s done in %.1f s", name, per["seconds"])
        metrics[name] = per
        claims[f"{name}/shadowing_l2_minus_l1"] = all(
            per[lab]["apt_late"] < 0.5 * per[lab]["apt_early"] for lab in shadowing)
        if prm.constant:
            const = per[labels[-1]]
            claims[f"{name}/no_shadowing_constant_step"] = bool(
                const["apt_late"] > 0.85 * const["apt_early"]
                and all(const["apt_late"] > 2 * per[lab]["apt_late"] for lab in shadowing))

    metrics["flow"] = {"method": prm.method, "dt": reps[0].dt, "error_over_apt_late_max": max(
        metrics[name][lab]["error_over_apt_late"] for name in ("sgd", "heavy_ball") for lab in labels)}
    fig = _figure(apt_curves, lyap_curves, study_curves, prm, T, r)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"apt_schedules": fig}, claims=claims)


def _kink_study(prm, series: dict, idx_noise0: np.ndarray, coarse, late_fine: np.ndarray, dt: float, q: int):
    """Heavy ball at ``p = kink_p``: ``series[key] = (times, distance, error, kink_windows)`` of the
    noisy runs, the noise-0 control and the long run, each summarized by :func:`_curve_stats`;
    ``coarse``: the noisy runs' late windows again at ``coarse_dt`` (``late_fine``: at ``dt``).

    Returns ``(metrics, arrays, curves)``.
    """
    out: dict[str, Any] = {"p": prm.kink_p, "long_steps": prm.long_steps, "long_seeds": prm.long_seeds,
                           "dt": dt, "coarse_dt": prm.coarse_dt}
    arrays, curves = {}, {}
    for key, (t, dd, ee, ww) in series.items():
        out[key] = _curve_stats(t, dd, ee, ww, q)
        curves[key] = (t, dd, ee, ww["crossings"], ww["momentum_range"])
        arrays.update({f"kink_study/{key}/apt": dd, f"kink_study/{key}/apt_error": ee,
                       f"kink_study/{key}/apt_times": t, f"kink_study/{key}/crossings": ww["crossings"],
                       f"kink_study/{key}/momentum_range": ww["momentum_range"]})
    j0 = int(np.argmin(np.median(series["noise_0"][1], axis=0)))  # the noise-0 control's closest window
    k0 = idx_noise0[j0] * prm.record_every
    out["noise_0"]["alpha_at_min"] = float(prm.alpha0 * prm.b ** prm.kink_p / (k0 + prm.b) ** prm.kink_p)
    # does the late distance depend on the flow's step?
    out["coarse"] = {"dt": coarse.dt, "apt_last": float(np.median(coarse.distance)),
                     "error_last": float(np.median(coarse.error)),
                     "resolved_last": float(np.mean(coarse.resolved)),
                     "apt_change_over_error": float(np.median(np.abs(coarse.distance - late_fine) / coarse.error))}
    return out, arrays, curves


def _figure(apt_curves, lyap_curves, study_curves, prm, T, r):
    fig = new_figure(figsize=(14, 13), layout="constrained", dpi=110)
    axes = fig.subplots(3, 2)
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
    names = {"noisy": f"noise {prm.noise:g}, {prm.num_steps} steps",
             "noise_0": f"noise 0, {prm.num_steps} steps",
             "long": f"noise {prm.noise:g}, {prm.long_steps} steps ({prm.long_seeds} runs)"}
    ax, axc = axes[2]
    for i, (key, (t, dd, ee, cr, mom)) in enumerate(study_curves.items()):
        col = ("C1", "k", "C3")[i]
        ax.plot(t, np.median(dd, axis=0), "-", color=col, label=names[key])
        ax.plot(t, np.median(mom, axis=0), "--", color=col, lw=1)
        ax.plot(t, np.median(ee, axis=0), ":", color=col)
        axc.plot(t, np.median(cr, axis=0), "-", color=col, label=names[key])
    first = ax.legend(loc="lower left", fontsize="small")
    ax.add_artist(first)
    styles = [ax.plot([], [], ls, color="gray")[0] for ls in ("-", "--", ":")]
    ax.legend(styles, ["APT distance", r"half-range of $\langle y, w/\|w\| \rangle$ in the window",
                       "flow error estimate"], loc="upper right", fontsize="small")
    ax.set(xscale="log", yscale="log", ylim=(1e-4, None), xlabel=r"start time $t$ ($\tau$ units)",
           ylabel="median over runs", title=f"heavy ball p = {prm.kink_p:g}: distance, radial momentum, flow error "
                                              f"(step {prm.dt:g})")
    axc.set(xscale="log", xlabel=r"start time $t$ ($\tau$ units)", ylabel="median over runs",
            title=f"heavy ball p = {prm.kink_p:g}: crossings of the kink $\\|w\\| = 1$ per window")
    axc.legend(loc="upper left", fontsize="small")
    for a in (ax, axc):
        a.grid(True, alpha=0.3)
    fig.suptitle(f"ring $|\\,\\|w\\|^2 - 1| + \\langle \\xi, w \\rangle$, noise {prm.noise:g}: "
                 f"$\\alpha_k = a/(k+b)^p$ with $\\alpha_0$ = {prm.alpha0:g}, b = {prm.b:g}; "
                 f"{prm.seeds} runs per schedule, {prm.num_steps} steps")
    return fig
