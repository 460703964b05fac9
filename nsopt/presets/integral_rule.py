"""Integral rule: SGD follows the expected conservative field, not Clarke's subdifferential of F.

docs/theory.md §4 integral rule (Bolte-Le-Pauwels 2022, "Subgradient sampling for nonsmooth nonconvex
minimization", arXiv 2202.13744): for ``f(w, s) = s |w|`` with ``E[s] = 0``,

    F(w) = E_s f(w, s) = 0,        d^c F(0) = {0},
    E_s[d^c f(0, s)] = E_s[|s| [-1, 1]] = E|s| [-1, 1]   ([-1/2, 1/2] for s ~ U[-1, 1], [-1, 1] for s = +-1),

so Clarke's subdifferential has no integral rule, while conservative fields do:
if ``D(., s)`` is conservative for ``f(., s)`` then ``E_s D(., s)`` is conservative
for ``F``.  Autodiff with ``abs'(0) = kappa(s)`` returns ``D(w, s) = s sign(w)`` for
``w != 0`` and ``s kappa(s)`` at ``0``; its expectation is

    E_s D(w, s) = 0 (w != 0),     E_s D(0, s) = E[s kappa(s)] = c E|s|  for kappa(s) = c sign(s) + d,

and the selections ``c in [-1, 1]`` sweep exactly ``E|s| [-1, 1]``.

What the preset shows:

1. **Oracle means.**  The empirical mean of ``N`` autodiff outputs at ``w = 0`` (for
   several kink selections ``kappa``) and at ``w = +-delta`` matches the expected
   field within the CLT error; the extreme selections ``+-sign(s)`` give the ends
   ``+-E|s|`` of the interval.
2. **SGD follows the flow of** ``E_s D`` (which is ``0`` off the kink: the flow is
   stationary).  SGD ``w_{k+1} = w_k - sigma alpha_k s_k abs'(w_k)`` from random
   inits and random scales ``sigma``: the mean oracle output along the iterates is
   ``0`` (no attraction to the kink, although ``E[d^c f(0, s)] != {0}``),
   ``E (w_K - w_0)^2 = sigma^2 E[s^2] sum_k alpha_k^2`` (a martingale), and the
   APT distance to the stationary flow decreases (:func:`nsopt.flow.apt_distance`).
3. **The value at the kink matters only where the kink is hit.**  With ``s = +-1``,
   a dyadic constant step and a dyadic start the iterates land exactly on ``0``;
   there the drift is ``E_s D(0, s) = c E|s|``: ``abs'(0) = 0`` absorbs the walk at
   ``0``, ``sign(s)`` pushes it to ``w <= 0``, ``-sign(s)`` to ``w >= 0``.  With
   ``s ~ U[-1, 1]`` the kink is never hit and the three choices give identical runs.
"""

from __future__ import annotations

import time
import dataclasses
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nsopt
from nsopt.flow import apt_distance, apt_figure
from nsopt import validate as V
from nsopt.oracles import autodiff
from nsopt.presets.base import PresetResult, RandomScaleBatch, new_figure, tuples
from nsopt.problems.signed_abs import SignedAbs
from nsopt.schedules import InversePower

__all__ = ["CLAIM", "DISTRIBUTIONS", "Params", "Setting", "expected_field_at_kink", "oracle_means", "run"]

CLAIM = ("for f(w, s) = s |w| with E[s] = 0, autodiff's oracle mean at the kink is E[D(0, s)] "
         "(the expected conservative field), not the Clarke subdifferential of F = 0")


@dataclass(frozen=True)
class Params(RandomScaleBatch):
    """Sizes of ``integral_rule`` (defaults: full size; the batch fields of
    :class:`~nsopt.presets.base.RandomScaleBatch`)."""

    seeds: int = 32
    num_samples: int = 200000
    delta: float = 1.0e-3
    const_kinks: tuple[float, ...] = (-1.0, 0.0, 1.0)
    sign_kinks: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    near_radius: float = 0.05
    T: float = 1.0
    num_times: int = 60
    paths_shown: int = 12
    lattice_step: float = 0.0625
    lattice_start: float = 0.25
    lattice_kinks: tuple[float, ...] = (0.0, 1.0, -1.0)
    lattice_seeds: int = 256

    def __post_init__(self):
        tuples(self)
        self.check_batch()
        for f in ("num_samples", "num_times", "paths_shown", "lattice_seeds"):
            V.positive_int(f, getattr(self, f))
        V.number("delta", self.delta, 0, open_low=True)
        V.numbers_list("const_kinks", self.const_kinks, -1, 1)
        V.numbers_list("sign_kinks", self.sign_kinks, -1, 1)
        V.numbers_list("lattice_kinks", self.lattice_kinks, -1, 1)
        for f in ("near_radius", "T", "lattice_step"):
            V.number(f, getattr(self, f), 0, open_low=True)
        V.number("lattice_start", self.lattice_start)

#: ``name -> (E|s|, E[s^2])``
DISTRIBUTIONS = {"uniform": (0.5, 1.0 / 3.0), "pm1": (1.0, 1.0)}
#: a mean agrees with its expectation when within this many standard errors (oracle means, SGD drift)
Z_TOL = 4.0
#: APT distance: medians over the first and the last ``1 / APT_PARTS`` of the start times
APT_PARTS = 5


class Setting(eqx.Module):
    """One run's parameters: the problem, ``alpha_k = a / (k + b)^p`` (``p = 0``: constant ``a``), scale."""

    problem: SignedAbs
    a: Array
    b: Array
    p: Array
    scale: Array


def expected_field(w: Array) -> Array:
    """``E_s D(w, s) = E[s] sign(w) = 0`` for ``w != 0``: the flow ``g' = -E_s D(g)`` is stationary."""
    return jnp.zeros_like(w)


def expected_field_at_kink(dist: str, kink_const: float, kink_sign: float) -> float:
    """``E_s D(0, s) = E[s (d + c sign(s))] = c E|s|`` (``E[s] = 0``)."""
    return kink_sign * DISTRIBUTIONS[dist][0]


def oracle_means(dist: str, selections: np.ndarray, points: np.ndarray, num_samples: int,
                 key: Array) -> tuple[np.ndarray, np.ndarray]:
    """Empirical mean and standard error of ``N`` autodiff outputs ``D(w, s_i)``.

    ``selections`` has rows ``(kink_const, kink_sign)``; result shapes
    ``(num_selections, num_points)``.
    """
    dtype = jnp.result_type(float)
    s = jax.vmap(SignedAbs(jnp.asarray(dist == "pm1"), jnp.zeros((), dtype), jnp.zeros((), dtype)).sampler)(
        jax.random.split(key, num_samples))
    sel = nsopt.algorithms.shard_leading(jnp.asarray(selections, dtype))  # split over the devices
    mean, se = _oracle_stats(sel, jnp.asarray(points, dtype), s,
                             jnp.asarray(dist == "pm1"))
    return np.asarray(mean), np.asarray(se)


@jax.jit
def _oracle_stats(selections: Array, points: Array, s: Array, pm1: Array) -> tuple[Array, Array]:
    def stats(sel, w):
        oracle = autodiff(SignedAbs(pm1, sel[0], sel[1]).loss)
        v = jax.vmap(lambda si: oracle(w[None], si)[0])(s)
        return jnp.mean(v), jnp.std(v) / jnp.sqrt(v.shape[0])

    return jax.vmap(jax.vmap(stats, (None, 0)), (0, None))(selections, points)


def _build(st: Setting):
    alg = nsopt.sgd(InversePower(st.a, st.b, st.p), st.scale)
    return alg, autodiff(st.problem.loss), st.problem.sampler, None


def _stack(rows: list[dict[str, float]], dtype) -> Setting:
    col = {k: jnp.asarray([r[k] for r in rows], dtype) for k in rows[0] if k != "pm1"}
    return Setting(SignedAbs(jnp.asarray([r["pm1"] for r in rows]), col["kink_const"], col["kink_sign"]),
                   col["a"], col["b"], col["p"], col["scale"])


def run(params: Params, key: Array) -> PresetResult:
    """Oracle means at and near the kink, SGD against the expected field, kink hits on a lattice."""
    p = dataclasses.asdict(params)
    dtype = jnp.result_type(float)
    k_mean, k_init, k_scale, k_runs = jax.random.split(key, 4)
    metrics: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}

    # 1. oracle means at 0 and at +-delta
    sel = np.asarray([[c, 0.0] for c in p["const_kinks"]] + [[0.0, c] for c in p["sign_kinks"]])
    delta = float(p["delta"])
    pts = np.asarray([0.0, -delta, delta])
    means = {}
    for i, dist in enumerate(DISTRIBUTIONS):
        mean, se = oracle_means(dist, sel, pts, int(p["num_samples"]), jax.random.fold_in(k_mean, i))
        expected = np.asarray([expected_field_at_kink(dist, *row) for row in sel])
        tol = Z_TOL * se + 1e-6
        e_abs = DISTRIBUTIONS[dist][0]
        signs = sel[:, 0] == 0
        means[dist] = (mean, se)
        metrics[f"oracle_{dist}"] = {
            "E_abs_s": e_abs,
            "expected_clarke_interval": [-e_abs, e_abs],
            "empirical_interval": [float(mean[signs, 0].min()), float(mean[signs, 0].max())],
            "max_z_at_0": float(np.max(np.abs(mean[:, 0] - expected) / np.maximum(se[:, 0], 1e-12))),
            "at_0_within_4se": bool(np.all(np.abs(mean[:, 0] - expected) <= tol[:, 0])),
            "max_abs_mean_near_0": float(np.max(np.abs(mean[:, 1:]))),
            "near_0_within_4se": bool(np.all(np.abs(mean[:, 1:]) <= tol[:, 1:])),
            "clarke_F_at_0": [0.0, 0.0],
        }
        arrays[f"oracle/{dist}/mean"] = mean
        arrays[f"oracle/{dist}/se"] = se
    arrays["oracle/selections"] = sel
    arrays["oracle/points"] = pts

    # 2 + 3. one flat vmapped batch of SGD runs: random inits/scales (decreasing steps) and the lattice
    n_seeds, n_inits, n_scales = int(p["seeds"]), int(p["inits"]), int(p["scales"])
    scales = np.asarray(jax.random.uniform(k_scale, (n_scales,), dtype, *p["scale_range"]))
    inits = np.asarray(jax.random.uniform(k_init, (n_inits,), dtype, -1.0, 1.0))
    rows, w0, tags = [], [], []
    for dist in DISTRIBUTIONS:
        for sc in scales:
            for x0 in inits:
                rows += [{"pm1": dist == "pm1", "kink_const": 0.0, "kink_sign": 0.0, "a": p["a"], "b": p["b"],
                          "p": p["p"], "scale": float(sc)}] * n_seeds
                w0 += [float(x0)] * n_seeds
                tags += [("decreasing", dist, 0.0)] * n_seeds
    n_lat = int(p["lattice_seeds"])
    for dist in DISTRIBUTIONS:
        for c in p["lattice_kinks"]:
            rows += [{"pm1": dist == "pm1", "kink_const": 0.0, "kink_sign": float(c), "a": p["lattice_step"],
                      "b": 1.0, "p": 0.0, "scale": 1.0}] * n_lat
            w0 += [float(p["lattice_start"])] * n_lat
            tags += [("lattice", dist, float(c))] * n_lat
    # independent noise for every run (the statistics below assume it), except that the lattice
    # runs of one distribution share their noise across kink values (common random numbers)
    n_dec = len(rows) - len(DISTRIBUTIONS) * len(p["lattice_kinks"]) * n_lat
    keys = jax.random.split(k_runs, n_dec + len(DISTRIBUTIONS) * n_lat)
    lat_idx = np.concatenate([n_dec + d * n_lat + np.arange(n_lat)
                              for d in range(len(DISTRIBUTIONS)) for _ in p["lattice_kinks"]])
    keys = keys[np.concatenate([np.arange(n_dec), lat_idx])]
    settings = _stack(rows, dtype)
    t0 = time.perf_counter()
    w0 = jnp.asarray(w0, dtype)[:, None, None]  # (runs, inits = 1, 1): one flat batch, a setting per run
    traj = nsopt.run_configs(_build, settings, w0, keys[:, None], int(p["num_steps"]), per_config=True)
    traj = jax.tree.map(lambda x: x[:, 0, 0, 0], traj)
    W = np.asarray(traj.w)[..., 0]  # (runs, K + 1)
    tau = np.asarray(traj.tau)
    metrics["sgd_seconds"] = time.perf_counter() - t0
    kind = np.asarray([t[0] for t in tags])
    dists = np.asarray([t[1] for t in tags])
    kinks = np.asarray([t[2] for t in tags])
    sc_arr = np.asarray([r["scale"] for r in rows])

    T = float(p["T"])
    apt_curves = {}
    for dist in DISTRIBUTIONS:
        m = (kind == "decreasing") & (dists == dist)
        Wd = W[m]
        V = -(np.diff(Wd, axis=1)) / np.diff(tau[m], axis=1)  # oracle outputs v_k = s_k abs'(w_k)
        e_s2 = DISTRIBUTIONS[dist][1]
        n = V.size
        near = np.abs(Wd[:, :-1]) < float(p["near_radius"])
        radial = (V * np.sign(Wd[:, :-1]))[near]
        sum_a2 = np.sum(np.diff(tau[m], axis=1) ** 2, axis=1)
        ratio_terms = (Wd[:, -1] - Wd[:, 0]) ** 2 / (sum_a2 * e_s2)
        idx = np.nonzero(m)[0]
        sub = jax.tree.map(lambda x, idx=idx: x[idx], traj)
        d = np.asarray(apt_distance(sub, expected_field, T, num_times=int(p["num_times"])))
        times = np.asarray(nsopt.flow.default_times(sub, T, int(p["num_times"])))
        q = max(1, d.shape[-1] // APT_PARTS)
        early, late = np.median(d[:, :q]), np.median(d[:, -q:])
        apt_curves[f"s {'= +-1' if dist == 'pm1' else '~ U[-1, 1]'}"] = (times, d)
        metrics[f"sgd_{dist}"] = {
            "runs": int(Wd.shape[0]),
            "steps": int(V.shape[1]),
            "kink_hits": int(np.sum(Wd == 0)),
            "mean_oracle_along_iterates": float(V.mean()),
            "mean_oracle_z": float(V.mean() / np.sqrt(e_s2 / n)),
            "near_kink_steps": int(near.sum()),
            "near_kink_radial_drift": float(radial.mean()) if radial.size else None,
            "near_kink_radial_drift_z": float(radial.mean() / np.sqrt(e_s2 / radial.size)) if radial.size else None,
            "variance_ratio": float(ratio_terms.mean()),
            "variance_ratio_se": float(ratio_terms.std() / np.sqrt(ratio_terms.size)),
            "apt_early": float(early),
            "apt_late": float(late),
            "apt_window": T,
            "apt_early_late_times": int(q),
            "apt_start_times": int(d.shape[-1]),
        }
        arrays[f"apt/{dist}/d"] = d
        arrays[f"apt/{dist}/times"] = times

    lattice = {}
    for dist in DISTRIBUTIONS:
        finals = {}
        for c in p["lattice_kinks"]:
            m = (kind == "lattice") & (dists == dist) & (kinks == float(c))
            Wl = W[m]
            hit = Wl == 0
            visited = hit.any(axis=1)
            at0 = hit[:, :-1]
            v_at0 = -(np.diff(Wl, axis=1)[at0]) / float(p["lattice_step"])
            after = np.asarray([Wl[r, np.argmax(hit[r]):] for r in range(Wl.shape[0]) if visited[r]], dtype=object)
            lattice[f"{dist}/kink_sign={c:g}"] = {
                "runs": int(Wl.shape[0]),
                "share_visited_0": float(visited.mean()),
                "visits_to_0": int(at0.sum()),
                "mean_oracle_at_0": float(v_at0.mean()) if v_at0.size else None,
                "expected_field_at_0": expected_field_at_kink(dist, 0.0, float(c)),
                "share_final_exactly_0": float(np.mean(Wl[:, -1] == 0)),
                "share_final_le_0": float(np.mean(Wl[:, -1] <= 0)),
                "share_final_ge_0": float(np.mean(Wl[:, -1] >= 0)),
                "after_first_visit_max": float(max((a.max() for a in after), default=np.nan)),
                "after_first_visit_min": float(min((a.min() for a in after), default=np.nan)),
            }
            finals[float(c)] = Wl
            arrays[f"lattice/{dist}/kink_sign={c:g}/w_final"] = Wl[:, -1]
        ref = finals[float(p["lattice_kinks"][0])]
        lattice[f"{dist}/max_diff_between_kinks"] = float(max(np.max(np.abs(v - ref)) for v in finals.values()))
    metrics["lattice"] = lattice
    metrics["z_tolerance"] = Z_TOL

    claims = {
        "oracle_mean_is_expected_field": all(metrics[f"oracle_{d}"]["at_0_within_4se"]
                                             and metrics[f"oracle_{d}"]["near_0_within_4se"] for d in DISTRIBUTIONS),
        "sgd_follows_expected_field": all(abs(metrics[f"sgd_{d}"]["mean_oracle_z"]) < Z_TOL for d in DISTRIBUTIONS),
        "lattice_kink_value_matters": lattice["pm1/max_diff_between_kinks"] > 0,
    }
    fig = _figure(p, metrics, sel, means, W, tau, kind, dists, kinks, sc_arr, apt_curves, T)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"integral_rule": fig}, claims=claims)


def _figure(p, metrics, sel, means, W, tau, kind, dists, kinks, scales, apt_curves, T):
    fig = new_figure(figsize=(13, 9), layout="constrained", dpi=110)
    (ax1, ax2), (ax3, ax4) = fig.subplots(2, 2)
    signs = sel[:, 0] == 0
    for i, (dist, (mean, se)) in enumerate(means.items()):
        e_abs = DISTRIBUTIONS[dist][0]
        lab = "s ~ U[-1, 1]" if dist == "uniform" else "s = +-1"
        ax1.axhspan(-e_abs, e_abs, color=f"C{i}", alpha=0.12,
                    label=f"{lab}: $E[\\partial^c f(0,s)] = E|s|[-1,1]$, $E|s|$ = {e_abs:g}")
        c = sel[signs, 1]
        ax1.errorbar(c, mean[signs, 0], yerr=Z_TOL * se[signs, 0], fmt="o", color=f"C{i}", capsize=3,
                     label=f"{lab}: abs'(0) = c sign(s) (±{Z_TOL:g} s.e.)")
        ax1.plot(c, c * e_abs, "--", color=f"C{i}", lw=1)
        ax1.errorbar(sel[~signs, 0] + 0.03 * (i - 0.5), mean[~signs, 0], yerr=Z_TOL * se[~signs, 0], fmt="s",
                     mfc="none", color=f"C{i}", capsize=3, label=f"{lab}: abs'(0) = c (constant)")
    ax1.axhline(0, color="k", lw=1.5, label=r"$\partial^c F(0) = \{0\}$ ($F \equiv 0$)")
    ax1.set(xlabel="kink selection c", ylabel=r"$\frac{1}{N}\sum_i D(0, s_i)$", ylim=(-1.6, 1.6),
            title=f"oracle means at the kink (N = {p['num_samples']})")
    ax1.legend(fontsize=7, loc="upper left")
    ax1.grid(True, alpha=0.3)

    m = np.nonzero((kind == "decreasing") & (dists == "uniform"))[0]
    m = m[scales[m] == scales[m].max()]
    n_seeds = int(p["seeds"])
    shown = [m[j * n_seeds + i] for j in range(min(len(m) // n_seeds, p["paths_shown"] // 2)) for i in range(2)]
    for j, r in enumerate(shown):
        ax2.plot(tau[r], W[r], lw=0.8, color=f"C{(j // 2) % 10}")
    ax2.axhline(0, color="k", lw=0.8, ls=":")
    ax2.set(xlabel=r"$\tau_k = \sigma \sum_{j<k} \alpha_j$", ylabel="$w_k$",
            title=f"SGD on s|w|, s ~ U[-1,1], scale {scales[shown[0]]:.2f}: paths level off\n"
                  r"(the flow of $E_s D$ is stationary: $E_s D(w, s) = 0$ for $w \neq 0$)")
    ax2.grid(True, alpha=0.3)

    apt_figure(apt_curves, T=T, ax=ax3)
    ax3.set_title(f"APT distance to the flow of $E_s D$ (window T = {T:g}, all runs)")
    ax3.set_xlabel(r"start time t (interpolation time $\tau$)")

    step = float(p["lattice_step"])
    lat = metrics["lattice"]
    for i, c in enumerate(p["lattice_kinks"]):
        mm = (kind == "lattice") & (dists == "pm1") & (kinks == float(c))
        final = W[mm, -1]
        bins = np.arange(final.min() - 1.5 * step, final.max() + 2.5 * step, 2 * step)
        r = lat[f"pm1/kink_sign={c:g}"]
        name = {0.0: "abs'(0) = 0", 1.0: "abs'(0) = sign(s)", -1.0: "abs'(0) = -sign(s)"}.get(float(c), f"c = {c}")
        ax4.hist(final, bins=bins, histtype="step", lw=1.8, color=f"C{i + 2}",
                 label=f"{name}: drift at 0 = {c:g}·E|s|; $w_K$ = 0: {r['share_final_exactly_0']:.0%}, "
                       f"< 0: {r['share_final_le_0'] - r['share_final_exactly_0']:.0%}, "
                       f"> 0: {r['share_final_ge_0'] - r['share_final_exactly_0']:.0%}")
    ax4.axvline(0, color="k", lw=0.8)
    ax4.set_yscale("log")
    ax4.set(xlabel=f"$w_K$ (K = {p['num_steps']})", ylabel="runs (log scale)",
            title=f"s = ±1, constant step {step:g}, $w_0$ = {p['lattice_start']:g}: the kink is hit\n"
                  "and its value sets the drift there")
    ax4.legend(fontsize=7, loc="upper left")
    u = lat["uniform/kink_sign=0"]
    ax4.text(0.02, 0.62, f"same start, s ~ U[-1, 1]: {u['visits_to_0']} kink hits,\nthe three kink choices give "
             f"identical runs\n(max difference {lat['uniform/max_diff_between_kinks']:g})",
             transform=ax4.transAxes, fontsize=8, va="top")
    fig.suptitle(r"Integral rule on $f(w, s) = s|w|$, $E[s] = 0$: $F = 0$, $\partial^c F(0) = \{0\}$, "
                 r"yet $E[\partial^c f(0,s)] = E|s|[-1,1]$; SGD follows $E_s D(w, s)$")
    return fig
