"""Artificial critical points created by autodiff, and why SGD / heavy ball avoid them.

Objective (Bolte-Pauwels 2020, arXiv 1909.10300; docs/theory.md §artificial critical points), with ``g(u) = relu(u) - relu(-u)`` (``= u``):

    f(w, xi) = 1/2 (g(w_1) - 1)^2 + |w_2| + <xi, w>,    xi ~ N(0, noise^2 I_2),
    F(w)     = 1/2 (w_1 - 1)^2 + |w_2|.

``F`` has one Clarke-critical point, its minimizer ``w* = (1, 0)`` (``0 in {0} x [-1, 1]``).
Backpropagation with ``relu'(0) = 0`` and ``abs'(0) = 0`` returns
``D(w) = ((g(w_1) - 1) g'(w_1), abs'(w_2))`` with ``g'(0) = 2 relu'(0) = 0``, so
``D(0, 0) = 0`` although ``d^c F(0, 0) = {-1} x [-1, 1]`` does not contain ``0``:
``(0, 0)`` is an *artificial* critical point of the conservative field
(Bolte-Pauwels 2020).  A flow line from ``w_1(0) < 0`` passes through it exactly when
``|w_2(0)| <= log(1 - w_1(0))``: ``w_1(t) = 1 - (1 - w_1(0)) e^{-t}`` reaches 0 at
``t = log(1 - w_1(0))``, ``|w_2|`` at ``t = |w_2(0)|``, and only if ``w_2`` gets there first
does the flow slide along ``w_2 = 0`` into ``(0, 0)``.  The constant curve
at ``(0, 0)`` solves the differential inclusion ``w' in -D_F(w)``.

What the preset shows:

- one ``run_batch`` call per algorithm (SGD; heavy ball with ``beta_k = c alpha_k``)
  over seeds x random initializations (``w_1 < 0``) x random step scales ``s``:
  the share of runs ending near ``w*`` and the share ending near the artificial
  point (for almost every ``w_0`` and ``s`` the limit points are Clarke
  critical: Bolte-Pauwels 2020; Bolte-Le-Pauwels 2022; heavy ball: Le 2023);
- the contrived run started exactly at ``(0, 0)`` without noise stays there forever
  (``relu'(0) = 0``) and leaves with ``relu'(0) = 1/2`` (the kink value that makes
  ``g'(0) = 1``, so no artificial point);
- gradient-sampling criticality (:func:`nsopt.flow.criticality`): the distance of
  ``0`` to the convex hull of field values sampled in a ball of radius ``rho``
  stays near ``1`` at the artificial point for every ``rho`` and tends to ``0``
  at the Clarke-critical ``w*``, whatever the kink values.
"""

from __future__ import annotations

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
from nsopt.flow import criticality, phase_portrait
from nsopt import validate as V
from nsopt.presets.base import PresetResult, RandomScaleBatch, new_figure, tuples
from nsopt.problems.kinked_line import KinkedLine, kinked_line
from nsopt.schedules import inverse_power

__all__ = ["CLAIM", "Params", "avoidance", "criticality_table", "run"]

CLAIM = ("autodiff with relu'(0) = 0 creates an artificial critical point (0, 0); SGD and heavy ball "
         "from random inits and step scales avoid it")


@dataclass(frozen=True)
class Params(RandomScaleBatch):
    """Sizes of ``artificial_critical`` (defaults: full size; the batch fields of
    :class:`~nsopt.presets.base.RandomScaleBatch`)."""

    noise: float = 0.3
    kink_relu: float = 0.0
    kink_abs: float = 0.0
    init_box: tuple[float, float, float, float] = (-2.0, -0.25, -1.0, 1.0)
    momentum_c: float = 1.0
    record_every: int = 1
    radius: float = 0.1
    crit_radii: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    crit_samples: int = 64

    def __post_init__(self):
        tuples(self)
        V.number("noise", self.noise, 0)
        V.number("kink_relu", self.kink_relu, 0, 1)
        V.number("kink_abs", self.kink_abs, -1, 1)
        box = V.numbers_list("init_box", self.init_box)
        if len(box) != 4 or box[0] >= box[1] or box[2] >= box[3]:
            raise V.BadValue("init_box", list(self.init_box), "it must be [lo_1, hi_1, lo_2, hi_2] with lo < hi")
        self.check_batch()
        for f in ("record_every", "crit_samples"):
            V.positive_int(f, getattr(self, f))
        V.number("momentum_c", self.momentum_c, 0, open_low=True)
        V.number("radius", self.radius, 0, open_low=True)
        V.numbers_list("crit_radii", self.crit_radii, 0, open_low=True)

ARTIFICIAL = (0.0, 0.0)
MINIMIZER = (1.0, 0.0)


def avoidance(w_final: np.ndarray, radius: float) -> dict[str, float]:
    """Shares of final iterates within ``radius`` of the minimizer / of the artificial point.

    ``w_final`` has shape ``(..., 2)``; runs with non-finite iterates count in neither.
    """
    w = np.asarray(w_final).reshape(-1, 2)
    ok = np.all(np.isfinite(w), axis=1)
    d_min = np.linalg.norm(w - np.asarray(MINIMIZER), axis=1)
    d_art = np.linalg.norm(w - np.asarray(ARTIFICIAL), axis=1)
    return {
        "runs": int(w.shape[0]),
        "share_at_minimizer": float(np.mean(ok & (d_min < radius))),
        "share_at_artificial": float(np.mean(ok & (d_art < radius))),
        "diverged": int(np.sum(~ok)),
    }


def criticality_table(problem: KinkedLine, points: Mapping[str, tuple[float, float]],
                      radii: np.ndarray, key: Array, num_samples: int) -> dict[str, np.ndarray]:
    """``dist(0, conv{D(w + rho u_i)})`` at each point and radius ``rho`` (gradient sampling).

    One vmapped call over points x radii.  Returns ``{label: array (num_radii, 2)}``:
    column 0 the min-norm element's norm (an upper bound on the distance), column 1
    the Frank-Wolfe certified lower bound (:class:`nsopt.flow.MinNorm`).
    """
    dtype = problem.noise.dtype
    pts = jnp.asarray(list(points.values()), dtype)
    rho = jnp.asarray(radii, dtype)
    keys = jax.random.split(key, pts.shape[0] * rho.shape[0]).reshape(pts.shape[0], rho.shape[0])
    pts, keys = nsopt.algorithms.shard_leading((pts, keys))  # the points split over the devices
    norm, lower = _criticality_grid(problem, pts, rho, keys, num_samples)
    return {label: np.stack([np.asarray(norm[i]), np.asarray(lower[i])], axis=-1)
            for i, label in enumerate(points)}


@eqx.filter_jit
def _criticality_grid(problem: KinkedLine, pts: Array, rho: Array, keys: Array, num_samples: int):
    def one(w, r, k):
        m = criticality(problem.field, w, k, r, num_samples)
        return m.norm, m.lower_bound

    over_radii = jax.vmap(one, in_axes=(None, 0, 0))
    return jax.vmap(over_radii, in_axes=(0, None, 0))(pts, rho, keys)


@eqx.filter_jit
def _field_norms(problem: KinkedLine, pts: Array) -> Array:
    return jax.vmap(lambda w: jnp.linalg.norm(problem.field(w)))(pts)


def _contrived_finals(alg, kinks_relu: Array, kink_abs: Array, w0: Array, num_steps: int) -> Array:
    """Final iterates from ``w0`` without noise, one per ``relu'(0)`` in ``kinks_relu`` (one program)."""

    def build(kink):
        quiet = KinkedLine(jnp.zeros((), w0.dtype), kink, kink_abs)
        return alg, quiet.oracle(), quiet.sampler, None

    traj = nsopt.run_configs(build, kinks_relu, w0[None], [0], num_steps, num_steps)
    return traj.w[:, 0, 0, 0, -1]


def _algorithms(p: Params) -> dict[str, nsopt.algorithms.Algorithm]:
    alpha = inverse_power(p.a, p.b, p.p)
    return {
        "sgd": nsopt.sgd(alpha),
        "heavy_ball": nsopt.heavy_ball(alpha, nsopt.proportional(p.momentum_c, alpha)),
    }


def run(params: Params, key: Array) -> PresetResult:
    """Avoidance shares (one ``run_batch`` per algorithm), contrived runs, criticality table."""
    p = params
    k_init, k_scale, k_crit = jax.random.split(key, 3)
    problem = kinked_line(p.noise, p.kink_relu, p.kink_abs, tuple(p.init_box))
    w0 = problem.inits(k_init, p.inits)
    scales = jax.random.uniform(k_scale, (p.scales,), w0.dtype, p.scale_range[0], p.scale_range[1])
    n_steps, every = p.num_steps, p.record_every
    algs = _algorithms(p)

    metrics: dict[str, Any] = {"runs_per_algorithm": p.seeds * p.inits * p.scales,
                               "scales": [float(s) for s in scales], "radius": float(p.radius)}
    arrays: dict[str, np.ndarray] = {}
    trajs = {}
    for name, alg in algs.items():
        t0 = time.perf_counter()
        traj = nsopt.run_batch(alg, problem.oracle(), problem.sampler, w0, p.seeds, n_steps,
                               every, scales=scales, objective=problem.F)
        w = np.asarray(traj.w)  # (seeds, inits, scales, R, 2)
        trajs[name] = w
        share = avoidance(w[..., -1, :], p.radius)
        d_art = np.linalg.norm(w, axis=-1)
        share["recorded_iterates"] = int(np.prod(w.shape[:-1]))
        share["iterates_with_w1_exactly_0"] = int(np.sum(w[..., 0] == 0))
        share["closest_approach_median"] = float(np.median(d_art.min(axis=-1)))
        share["final_F_median"] = float(np.median(np.asarray(traj.objective)[..., -1]))
        share["seconds"] = time.perf_counter() - t0
        metrics[name] = share
        arrays[f"{name}/w_final"] = w[..., -1, :]
        arrays[f"{name}/closest_approach"] = d_art.min(axis=-1)

    # contrived start exactly at the artificial point: no noise, relu'(0) = 0 (stays) or 1/2 (leaves)
    kinks = jnp.asarray([p.kink_relu, 0.5], w0.dtype)
    contrived = {}
    for name, alg in algs.items():
        wf = np.asarray(_contrived_finals(alg, kinks, jnp.asarray(p.kink_abs, w0.dtype),
                                          jnp.asarray(ARTIFICIAL, w0.dtype), n_steps))
        for kink, w_end in zip(np.asarray(kinks), wf):
            contrived[f"{name}/relu_kink={float(kink):g}"] = {
                "w_final": [float(x) for x in w_end],
                "stayed_exactly": bool(np.all(w_end == 0)),
                "distance_to_minimizer": float(np.linalg.norm(w_end - np.asarray(MINIMIZER))),
            }
    metrics["contrived_no_noise"] = contrived

    radii = np.asarray(p.crit_radii, dtype=float)
    points = {"artificial (0, 0)": ARTIFICIAL, "minimizer (1, 0)": MINIMIZER}
    table = criticality_table(problem, points, radii, k_crit, p.crit_samples)
    norms = _field_norms(problem, jnp.asarray(list(points.values()), w0.dtype))
    field_norms = {label: float(norms[i]) for i, label in enumerate(points)}
    metrics["criticality"] = {
        "radii": radii.tolist(),
        "artificial_distance": table["artificial (0, 0)"][:, 0].tolist(),
        "artificial_lower_bound": table["artificial (0, 0)"][:, 1].tolist(),
        "minimizer_distance": table["minimizer (1, 0)"][:, 0].tolist(),
        "field_norm_artificial": field_norms["artificial (0, 0)"],
        "field_norm_minimizer": field_norms["minimizer (1, 0)"],
    }
    arrays["criticality/radii"] = radii
    for label, v in table.items():
        arrays[f"criticality/{label.split()[0]}"] = v

    claims = {
        f"{name}/avoids_artificial_point": metrics[name]["share_at_artificial"] == 0.0
        and metrics[name]["share_at_minimizer"] >= 0.99 for name in algs}
    for name in algs:
        claims[f"{name}/contrived_start_stays"] = contrived[f"{name}/relu_kink={p.kink_relu:g}"]["stayed_exactly"]
    crit = metrics["criticality"]
    claims["artificial_point_not_clarke_critical"] = min(crit["artificial_lower_bound"]) > 0.5
    claims["minimizer_clarke_critical"] = max(crit["minimizer_distance"]) < 2e-3
    fig = _figure(problem, trajs, metrics, table, radii, p)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"artificial_critical": fig}, claims=claims)


def _figure(problem, trajs, metrics, table, radii, p):
    fig = new_figure(figsize=(15, 4.8), layout="constrained", dpi=110)
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[1.15, 1, 1])
    paths = trajs["sgd"][0, :6, 0]  # seed 0, six inits, first scale
    phase_portrait(problem.field, paths, bounds=(-2.2, 1.5, -1.1, 1.1), ax=ax1,
                   title=f"SGD paths over the flow of $-D_F$ (relu'(0) = {p.kink_relu:g})")
    ax1.plot(*ARTIFICIAL, "rX", ms=12, label="artificial critical (0, 0)")
    ax1.plot(*MINIMIZER, "g*", ms=14, label="minimizer (1, 0)")
    ax1.legend(loc="lower right", fontsize="small")

    labels, at_min, at_art = [], [], []
    short = {"sgd": "SGD", "heavy_ball": "heavy ball"}
    for name in ("sgd", "heavy_ball"):
        labels.append(f"{short[name]}\nrandom $w_0$, $s$")
        at_min.append(metrics[name]["share_at_minimizer"])
        at_art.append(metrics[name]["share_at_artificial"])
    for name in ("sgd", "heavy_ball"):
        c = metrics["contrived_no_noise"][f"{name}/relu_kink={p.kink_relu:g}"]
        labels.append(f"{short[name]}\n$w_0 = (0,0)$\nno noise")
        at_min.append(float(c["distance_to_minimizer"] < p.radius))
        at_art.append(float(np.linalg.norm(c["w_final"]) < p.radius))
    x = np.arange(len(labels))
    ax2.bar(x - 0.2, at_min, 0.4, label="ends near minimizer (1, 0)", color="tab:green")
    ax2.bar(x + 0.2, at_art, 0.4, label="ends near artificial (0, 0)", color="tab:red")
    for xi, (a, b) in enumerate(zip(at_min, at_art)):
        ax2.text(xi - 0.2, a + 0.02, f"{a:.3g}", ha="center", fontsize=8)
        ax2.text(xi + 0.2, b + 0.02, f"{b:.3g}", ha="center", fontsize=8)
    ax2.set_xticks(x, labels, fontsize=8)
    ax2.set(ylim=(0, 1.35), ylabel=f"share of runs (final distance < {p.radius:g})",
            title=f"{metrics['runs_per_algorithm']} runs per algorithm (one run_batch each)")
    ax2.legend(loc="upper center", ncol=2, fontsize="small")

    for i, (label, v) in enumerate(table.items()):
        ax3.plot(radii, v[:, 0], "o-", color=f"C{i}", label=f"{label}: min-norm element")
        ax3.plot(radii, v[:, 1], "v:", color=f"C{i}", label=f"{label}: certified lower bound")
    ax3.set_xscale("log")
    ax3.set_yscale("symlog", linthresh=1e-4)
    ax3.set(ylim=(0, 2), xlabel=r"sampling radius $\rho$",
            ylabel=r"dist$(0, \mathrm{conv}\{D(w + \rho u_i)\})$",
            title=f"gradient-sampling criticality ({p.crit_samples} samples)")
    ax3.legend(loc="center right", fontsize="small")
    ax3.grid(True, which="both", alpha=0.3)
    fig.suptitle(r"$F(w) = \frac{1}{2}(\mathrm{relu}(w_1) - \mathrm{relu}(-w_1) - 1)^2 + |w_2|$, "
                 r"autodiff with relu'(0) = abs'(0) = 0: $D(0,0) = 0 \notin \partial^c F(0,0)$")
    return fig
