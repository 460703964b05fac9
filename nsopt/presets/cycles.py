"""Preset ``cycles``: implicit differentiation of a degenerate LP makes gradient descent cycle.

Bilevel problem (Bolte, Le, Pauwels, Silveti-Falls, arXiv 2106.04350, §6 and
slides; docs/theory.md §implicit differentiation)::

    min_{x, y}  l(x, y) = (x - s_1)^2 + 4 (y - s_2)^2,
    s = s(x, y) in argmax { (a + b) t(x, y) : a in [0, 3], b in [0, 5] },
    t(x, y) = c . (x, y, 1),

with ``c = (-2, 1, 2)`` (NeurIPS poster) or ``c = (-3, 1, 2)`` (thesis slides).
The LP solution is ``s = u = (3, 5)`` where ``t > 0``, ``s = 0`` where ``t < 0``;
on the *degenerate line* ``t = 0`` the whole box is optimal and the solver's
choice decides (interior-point methods return the analytic centre ``u / 2``).

**Lower level as a nonsmooth equation.**  ``s`` solves the fixed-point equation
of projected gradient ascent with unit step,

    s = T(w, s) = proj_[0, u](s + t(w) (1, 1)),

whose fixed points are exactly the LP solutions (KKT).  It is differentiated
with :func:`nsopt.implicit.fixed_point` (``B = d_s T - I``, ``A = d_w T``) and
``singular="pinv"``, i.e. *without* the invertibility hypothesis of the
nonsmooth implicit function theorem:

- off the line, ``s`` is a vertex and ``s + t (1, 1)`` lies strictly outside the
  box: ``d_s T = 0``, ``B = -I``, ``A = 0``, so ``ds/dw = 0`` (the true derivative
  of the locally constant ``s``);
- on the line with the centre choice, ``s + 0`` is interior: ``d_s T = I``,
  ``B = 0`` (singular), ``A = (1, 1) c_{xy}^T != 0``; the pseudo-inverse gives
  ``ds/dw = -B^+ A = 0``.  With a vertex choice autodiff's kink value
  (``nsopt.nonsmooth.prox.box``, ``tie = 0``) gives ``B = -I`` and again ``0``, although the
  Clarke Jacobian of the projection at that kink contains ``B = 0``: the
  hypothesis fails for every choice.

So the implicit "gradient" is ``v(w) = (2 (x - s_1), 8 (y - s_2))`` with ``s``
frozen: descent on the quadratic piece of the current side, blind to the jump
of ``l`` across the line.  Its zeros are the points with ``w = s(w)``: ``u`` if
``t(u) > 0``, ``0`` if ``t(0) < 0``, and ``s_0`` if the solver returns ``s_0`` on
the line and ``t(s_0) = 0``.

- ``c = (-2, 1, 2)``: ``t(u) = 1 > 0``; ``u`` is a zero of its own side and
  every trajectory converges to it.
- ``c = (-3, 1, 2)``: ``t(u) = -2 < 0`` and ``t(0) = 2 > 0``: each side's
  minimiser lies on the other side, the field pushes the iterates across the
  line from both sides and gradient descent *cycles*.  The only zero of the
  field is the analytic centre ``u / 2 = (1.5, 2.5)``, which lies on the line
  (``t(u / 2) = 0``) and solves the bilevel problem (``l = 0``) -- but it exists
  only through the solver's choice on a null set, and the cycle winds around it.
  The continuous-time cycle is symmetric about ``u / 2``; it crosses the line at
  ``p`` and ``u - p`` with ``e^{-2h} = p_1 / (u_1 - p_1)``, ``e^{-8h} = p_2 / (u_2 - p_2)``,
  period ``2 h`` (:func:`flow_period`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nsopt
import nsopt.implicit as ni
from nsopt.oracles import implicit_oracle
from nsopt import validate as V
from nsopt.presets.base import PresetResult, new_figure, numpy_seed, tuples
from nsopt.problems.cycles_lp import (READINGS, UPPER, WEIGHTS, bilevel_loss, field_zeros, flow_period, level,
                                      lp_fixed_point_map, lp_solution, lp_solution_map, make_oracle,
                                      outer_loss, predict)

__all__ = [
    "DEGENERATE",
    "UPPER",
    "bilevel_loss",
    "cycle_stats",
    "derivative_on_line",
    "field_zeros",
    "flow_period",
    "gradient_descent",
    "level",
    "lp_fixed_point_map",
    "lp_solution",
    "lp_solution_map",
    "make_oracle",
    "outer_loss",
    "run",
    "CLAIM",
    "Params",
]

CLAIM = ("gradient descent with the pseudo-inverse implicit derivative of a degenerate LP cycles exactly where "
         "the flow's analysis predicts a cycle (c = (-3, 1, 2) with s = (a, b) in [0, 3] x [0, 5]; c = (-2, 1, 2) "
         "with the swapped box) and converges elsewhere (arXiv 2106.04350 §6)")

DEGENERATE = {"lower": 0.0, "center": 0.5, "upper": 1.0}  # s on the line t = 0: h0 * u
#: the box centre (the field's zero on the line) is also started from moved by this along x
CENTRE_PERTURBATION = 1e-6


@dataclass(frozen=True)
class Params:
    """Sizes of ``cycles`` (defaults: full size)."""

    versions: dict[str, tuple[float, float, float]] | None = None  # c per version; None: c2 and c3
    reading: str = "ab"  # s = (a, b) in [0, 3] x [0, 5] ("ab") or s = (b, a) in [0, 5] x [0, 3] ("ba")
    degenerate: str = "center"
    alpha: float = 0.005
    num_steps: int = 8000
    inits: int = 12
    init_low: tuple[float, float] = (-1.0, -1.0)
    init_high: tuple[float, float] = (4.0, 6.0)

    def __post_init__(self):
        if self.versions is None:
            object.__setattr__(self, "versions", {"c2": (-2.0, 1.0, 2.0), "c3": (-3.0, 1.0, 2.0)})
        tuples(self)
        for name, c in self.versions.items():
            if len(V.numbers_list(f"versions.{name}", c)) != 3:
                raise V.BadValue(f"versions.{name}", list(c), "it must be 3 numbers (c_x, c_y, c_0)")
        V.choice("reading", self.reading, list(READINGS))
        V.choice("degenerate", self.degenerate, list(DEGENERATE))
        V.number("alpha", self.alpha, 0, open_low=True)
        V.positive_int("num_steps", self.num_steps)
        V.positive_int("inits", self.inits)
        V.numbers_list("init_low", self.init_low)
        V.numbers_list("init_high", self.init_high)


# ----------------------------------------------------------------------------- analysis


def cycle_stats(w: np.ndarray, c: Any, h0: float, alpha: float, tail: float = 0.5,
                upper: Any = UPPER) -> dict[str, np.ndarray]:
    """Convergence vs cycling of trajectories ``w`` of shape ``(runs, records, 2)`` (every step).

    On the last ``tail`` fraction of each run:

    - ``crossings``: sign changes of ``t(w_k)`` (crossings of the degenerate line);
    - ``on_line``: iterates with ``t(w_k) = 0`` exactly (where the solver's choice is used);
    - ``period_steps``: mean number of steps between every other crossing (``nan`` with < 3);
    - ``recurrence``: ``max_k ||w_k - w_{k - P}||`` at the best lag ``P`` within 2 of the period
      (small: the iterates revisit the same neighbourhood every period);
    - ``dist_min`` / ``dist_final``: distance to the nearest zero of the field, minimum
      over the tail / at the last iterate (``inf`` when the field has no zero).
    """
    w = np.asarray(w, float)
    c = np.asarray(c, float)
    n, m, _ = w.shape
    start = int(m * (1 - tail))
    t = c[0] * w[..., 0] + c[1] * w[..., 1] + c[2]
    kind, point = predict(c, upper)
    zeros = field_zeros(c, h0, upper)
    if kind == "slides":  # the Filippov rest point on the line
        zeros = np.concatenate([zeros, point[None]])
    if len(zeros):
        dist = np.min(np.linalg.norm(w[:, :, None, :] - zeros[None, None], axis=-1), axis=-1)
    else:
        dist = np.full((n, m), np.inf)
    out = {k: np.zeros(n) for k in ("crossings", "on_line", "period_steps", "period_tau",
                                     "recurrence", "dist_min", "dist_final")}
    for i in range(n):
        tt = t[i, start:]
        sgn = np.sign(tt)
        nz = np.nonzero(sgn)[0]
        flips = np.nonzero(np.diff(sgn[nz]) != 0)[0]
        idx = nz[flips]
        out["crossings"][i] = len(idx)
        out["on_line"][i] = np.sum(tt == 0)
        if len(idx) >= 3:
            period = float(np.mean(idx[2:] - idx[:-2]))
            seg = w[i, start:]
            best = np.inf
            for lag in range(max(1, round(period) - 2), round(period) + 3):
                if lag < len(seg):
                    best = min(best, float(np.max(np.linalg.norm(seg[lag:] - seg[:-lag], axis=-1))))
            out["period_steps"][i], out["recurrence"][i] = period, best
        else:
            out["period_steps"][i], out["recurrence"][i] = np.nan, np.nan
        out["period_tau"][i] = out["period_steps"][i] * alpha
        out["dist_min"][i] = np.min(dist[i, start:])
        out["dist_final"][i] = dist[i, -1]
    return out


# ----------------------------------------------------------------------------- running


def _sampler(key: Array) -> Array:
    """Deterministic oracle: the sample is ignored."""
    del key
    return jnp.zeros(())


def _build(config):
    c, h0, alpha, u = config
    oracle = implicit_oracle(outer_loss, lp_solution_map(), (c, h0, u))
    return nsopt.sgd(alpha), oracle, _sampler, lambda w: bilevel_loss(w, c, h0, u)


def gradient_descent(c: Any, h0: Any, alpha: Any, w0: np.ndarray, num_steps: int, upper: Any = UPPER):
    """``w_{k+1} = w_k - alpha v(w_k)`` (:func:`nsopt.run_configs` with the implicit oracle, every
    step recorded) for each configuration ``(c (n, 3), h0 (n,), alpha (n,))`` from each start ``w0 (m, 2)``.

    One compiled program.  Returns ``(w, loss)``: iterates ``(n, m, num_steps + 1, 2)`` and the
    true bilevel loss ``l(w_k, s(w_k))`` along them.
    """
    w0 = np.atleast_2d(np.asarray(w0, float))
    c = np.atleast_2d(np.asarray(c, float))
    n = len(c)
    h0 = np.broadcast_to(np.asarray(h0, float), (n,))
    alpha = np.broadcast_to(np.asarray(alpha, float), (n,))
    u = np.broadcast_to(np.asarray(upper, float), (n, 2))
    configs = tuple(jnp.asarray(x) for x in (c, h0, alpha, u))
    traj = nsopt.run_configs(_build, configs, jnp.asarray(w0), [0], num_steps, 1)
    return np.asarray(traj.w[:, 0, :, 0]), np.asarray(traj.objective[:, 0, :, 0])


def derivative_on_line(c: Any, h0: float, upper: Any = UPPER) -> dict[str, float]:
    """At a point of the line ``t = 0``: ``sigma_min(B)``, the pinv derivative ``ds/dw``, and
    whether ``singular="raise"`` refuses it."""
    c = np.asarray(c, float)
    w = np.array([0.0, -c[2] / c[1]]) if c[1] != 0 else np.array([-c[2] / c[0], 0.0])
    args = (jnp.asarray(c), jnp.asarray(h0, jnp.result_type(float)), jnp.asarray(upper, jnp.result_type(float)))
    s_map = lp_solution_map()
    wj = jnp.asarray(w)
    diag = s_map.diagnose(wj, *args)
    jac = np.asarray(jax.jacrev(s_map)(wj, *args))
    strict = ni.fixed_point(lp_fixed_point_map, lp_solution, singular="raise")
    try:
        jax.block_until_ready(jax.jacrev(strict)(wj, *args))
        raised = False
    except RuntimeError:
        raised = True
    return {"sigma_min_B": float(diag.sigma_min), "max_abs_ds_dw": float(np.max(np.abs(jac))),
            "raise_policy_refuses": raised}


def _version_metrics(c: list, h0: float, w: np.ndarray, loss: np.ndarray, st: dict,
                     steps: int, upper: Any, alpha: float) -> dict[str, Any]:
    """The numbers that carry the claim for one ``c`` (``st`` from :func:`cycle_stats`)."""
    kind, point = predict(c, upper)
    cyc = (st["crossings"] >= 4) & (st["dist_min"] > 0.1)  # crossing the line and staying away from rest points
    u = np.asarray(upper)
    # sliding: Euler zigzags across the line, one step of the field (at most alpha |D (p - s)|) from p
    D = 2 * np.asarray(WEIGHTS)
    tol = 1e-6 if kind != "slides" else float(alpha * max(np.linalg.norm(D * point), np.linalg.norm(D * (u - point))))

    def agg(f, key):
        return float(f(st[key][cyc])) if cyc.any() else None

    return {
        "c": c,
        "predicted": kind,
        "predicted_point": point.tolist(),
        "level_at_u": c[0] * u[0] + c[1] * u[1] + c[2],
        "level_at_0": c[2],
        "field_zeros": field_zeros(c, h0, upper).tolist(),
        "runs_cycling": int(cyc.sum()),
        "runs_converged": int(np.sum(st["dist_final"] < tol)),
        "converged_tolerance": tol,
        "crossings_tail_median": float(np.median(st["crossings"])),
        "iterates_on_line": int(np.sum(st["on_line"])),
        "period_steps_median": agg(np.median, "period_steps"),
        "period_tau_median": agg(np.median, "period_tau"),
        "period_tau_spread": float(np.ptp(st["period_tau"][cyc])) if cyc.any() else None,
        "recurrence_max": agg(np.max, "recurrence"),
        "dist_to_zero_min_tail": float(np.min(st["dist_min"])),
        "dist_to_zero_final_max": float(np.max(st["dist_final"])),
        "loss_final_max": float(np.max(loss[:, -1])),
        "loss_tail_range": [float(np.min(loss[:, steps // 2:])), float(np.max(loss[:, steps // 2:]))],
        "flow_period": flow_period(c, upper),
        "on_line_derivative": derivative_on_line(c, h0, upper),
    }


def _inits(n: int, seed: int, low: Any, high: Any) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(n, 2))


def run(params: Params, key: Array) -> PresetResult:
    """Gradient descent with the pinv implicit oracle for each ``c``, several starts; figure + metrics."""
    p = params
    alpha, steps = float(p.alpha), int(p.num_steps)
    versions = {str(k): [float(x) for x in v] for k, v in p.versions.items()}
    upper = READINGS[p.reading]
    h0 = DEGENERATE[p.degenerate]
    w0 = _inits(p.inits, numpy_seed(key), list(p.init_low), list(p.init_high))

    metrics: dict[str, Any] = {"alpha": alpha, "num_steps": steps, "inits": len(w0), "degenerate": p.degenerate,
                               "reading": p.reading, "upper": list(upper)}
    arrays: dict[str, np.ndarray] = {"w0": w0}

    # One program over configurations (c, h0, alpha) x starts: every version; for the (first)
    # version predicted to cycle also the other degenerate choices and half the step; the
    # starts are w0 and the box centre (exactly, and perturbed by CENTRE_PERTURBATION along x).
    n = len(w0)
    names = list(versions)
    predicted = {k: predict(versions[k], upper)[0] for k in names}
    probe = next((k for k in names if predicted[k] == "cycles"), names[-1])
    last = versions[probe]
    others = [h for h in DEGENERATE.values() if h != h0]
    centre = np.asarray(upper) / 2
    configs = [(versions[name], h0, alpha) for name in names]
    configs += [(last, h, alpha) for h in others] + [(last, h0, alpha / 2)]
    starts = np.concatenate([w0, centre[None], (centre + np.array([CENTRE_PERTURBATION, 0.0]))[None]])
    cols = [np.stack([np.asarray(r[i], float) for r in configs]) for i in range(3)]
    w_all, loss_all = gradient_descent(*cols, starts, steps, upper)

    runs = {}
    for j, name in enumerate(names):
        c = versions[name]
        w, loss = w_all[j, :n], loss_all[j, :n]
        st = cycle_stats(w, c, h0, alpha, upper=upper)
        runs[name] = (c, w, loss, st)
        arrays[f"{name}/w"], arrays[f"{name}/loss"] = w, loss
        metrics[name] = _version_metrics(c, h0, w, loss, st, steps, upper, alpha)

    off = len(names)
    m = metrics[probe]
    m["max_diff_other_degenerate_choices"] = {
        k: float(np.max(np.abs(w_all[off + i, :n] - runs[probe][1])))
        for i, k in enumerate(k for k, h in DEGENERATE.items() if h != h0)}
    off += len(others)
    st_half = cycle_stats(w_all[off, :1], last, h0, alpha / 2, upper=upper)
    m["period_tau_half_step"] = float(st_half["period_tau"][0])
    j = names.index(probe)
    w_c, loss_c = w_all[j, n:], loss_all[j, n:]
    st_c = cycle_stats(w_c, last, h0, alpha, upper=upper)
    m["centre_start"] = {
        "on_line": bool(abs(float(level(centre, np.asarray(last)))) < 1e-12),
        "moved": float(np.max(np.abs(w_c[0] - centre))),
        "loss": float(loss_c[0, -1]),
        "perturbation": CENTRE_PERTURBATION,
        "perturbed_crossings_tail": int(st_c["crossings"][1]),
        "perturbed_dist_min_tail": float(st_c["dist_min"][1]),
    }
    arrays[f"{probe}/w_centre_perturbed"] = w_c[1]
    metrics["predicted"] = predicted
    metrics["cycling_versions"] = [k for k in names if metrics[k]["runs_cycling"] == n]
    metrics["converging_versions"] = [k for k in names if metrics[k]["runs_converged"] == n]

    claims = {"cycling_versions": metrics["cycling_versions"] == [k for k in names if predicted[k] == "cycles"],
              "converging_versions": metrics["converging_versions"] == [k for k in names if predicted[k] != "cycles"],
              # Euler's period is the flow's up to O(alpha): within 10 alpha, and closer with alpha / 2
              "cycle_period_matches_flow": all(
                  abs(metrics[k]["period_tau_median"] - metrics[k]["flow_period"]) <= 10 * alpha
                  for k in metrics["cycling_versions"]) and (probe not in metrics["cycling_versions"] or (
                  abs(m["period_tau_half_step"] - m["flow_period"])
                  <= abs(m["period_tau_median"] - m["flow_period"]) + 1e-12))}
    if m["centre_start"]["on_line"]:  # the centre is a zero of the field only on the line
        claims["centre_start_stays"] = m["centre_start"]["moved"] == 0.0
    fig = plot_cycles(runs, h0, alpha, upper)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"cycles": fig}, claims=claims)


# ----------------------------------------------------------------------------- figure


def plot_cycles(runs: Mapping[str, tuple], h0: float, alpha: float, upper: Any = UPPER):
    """Trajectories in the (x, y) plane (one panel per ``c``), distance to the field's zeros, loss."""
    import matplotlib

    names = list(runs)
    fig = new_figure(figsize=(14, 13), dpi=110)
    axes = fig.subplots(2, 2, gridspec_kw={"height_ratios": [1.35, 1]})
    xs = np.linspace(-1.5, 4.5, 301)
    ys = np.linspace(-1.5, 6.5, 301)
    gx, gy = np.meshgrid(xs, ys)
    u = np.asarray(upper)
    colors = {names[0]: "tab:blue", names[-1]: "tab:red"} if names else {}
    for ax, name in zip(axes[0], names):
        c, w, loss, st = runs[name]
        t = c[0] * gx + c[1] * gy + c[2]
        ax.contourf(gx, gy, t > 0, levels=[-0.5, 0.5, 1.5], colors=["#fde7c8", "#d7e8f7"], alpha=0.9)
        ax.plot(xs, -(c[0] * xs + c[2]) / c[1], "k--", lw=1.8, label="degenerate line c.(x, y, 1) = 0")
        cmap = matplotlib.colormaps["viridis"]
        n = len(w)
        for i in range(n):
            col = cmap(i / max(n - 1, 1))
            ax.plot(w[i, :, 0], w[i, :, 1], "-", color=col, lw=0.9, alpha=0.8)
            ax.plot(w[i, 0, 0], w[i, 0, 1], "o", color=col, ms=5)
        cycling = st["crossings"] >= 4
        if cycling.any():
            i = int(np.argmax(cycling))
            per = round(st["period_steps"][i])
            ax.plot(w[i, -per - 1:, 0], w[i, -per - 1:, 1], "-", color="crimson", lw=3,
                    label=f"last period ({per} steps, tau = {per * alpha:.3f})")
        ax.plot(*u, "s", color="navy", ms=9, label=f"s = ({u[0]:g}, {u[1]:g}): minimiser of the t > 0 piece")
        ax.plot(0, 0, "D", color="darkorange", ms=8, label="s = (0, 0): minimiser of the t < 0 piece")
        ax.plot(*(h0 * u), "*", color="k", ms=13, label=f"solver's s on the line: ({h0 * u[0]:g}, {h0 * u[1]:g})")
        ax.text(0.02, 0.02, "t > 0: s = (3, 5)", color="navy", transform=ax.transAxes, fontsize=10)
        ax.text(0.98, 0.02, "t < 0: s = (0, 0)", color="saddlebrown", transform=ax.transAxes,
                fontsize=10, ha="right")
        kind, point = predict(c, upper)
        verdict = (f"cycles ({int(cycling.sum())}/{n} runs)" if cycling.any()
                   else f"{'slides' if kind == 'slides' else 'converges'} to ({point[0]:.3g}, {point[1]:.3g})")
        ax.set_title(f"c = {tuple(int(v) for v in c)}: {verdict}", fontsize=12)
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_aspect("equal")
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, framealpha=0.9)
    ax_d, ax_l = axes[1]
    for name in names:
        c, w, loss, st = runs[name]
        zeros = cycle_zeros = field_zeros(c, h0, upper)
        kind, point = predict(c, upper)
        zeros = np.concatenate([cycle_zeros, point[None]]) if kind == "slides" or not len(cycle_zeros) else cycle_zeros
        d = np.min(np.linalg.norm(w[:, :, None] - zeros[None, None], axis=-1), axis=-1)
        tau = alpha * np.arange(w.shape[1])
        lab = f"c = {tuple(int(v) for v in c)}"
        for i in range(len(w)):
            ax_d.plot(tau, np.maximum(d[i], 1e-17), color=colors.get(name), lw=0.8, alpha=0.6,
                      label=lab if i == 0 else None)
            ax_l.plot(tau, loss[i], color=colors.get(name), lw=0.8, alpha=0.6,
                      label=lab if i == 0 else None)
    ax_d.set_yscale("log")
    ax_d.set_xlabel(r"$\tau_k = \alpha k$")
    ax_d.set_ylabel("distance to the field's zeros (else the rest point on the line)")
    ax_d.set_title("non-convergence: distance to the nearest critical point", fontsize=12)
    ax_d.grid(True, which="both", alpha=0.3)
    ax_d.legend(fontsize=9)
    ax_l.set_yscale("symlog", linthresh=1e-3)
    ax_l.set_xlabel(r"$\tau_k = \alpha k$")
    ax_l.set_ylabel("bilevel loss l(w_k, s(w_k))")
    ax_l.set_title("true loss: jumps at every crossing (not a descent method)", fontsize=12)
    ax_l.grid(True, which="both", alpha=0.3)
    ax_l.legend(fontsize=9)
    fig.suptitle("Gradient descent with the pseudo-inverse implicit derivative of a degenerate LP, "
                 f"s in [0, {u[0]:g}] x [0, {u[1]:g}] "
                 f"(alpha = {alpha})", fontsize=13)
    fig.tight_layout()
    return fig
