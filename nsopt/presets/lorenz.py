"""Preset ``lorenz``: a pseudo-inverse implicit derivative turns gradient ascent into the Lorenz system.

Problem (Bolte, Le, Pauwels, Silveti-Falls, arXiv 2106.04350, §6 and slides;
docs/theory.md §implicit differentiation), with the Lorenz field
``L(x, y, z) = (10 (y - x), x (28 - z) - y, x y - 8 z / 3)``:

- implicit:  ``max_u u^T z(u)``,  ``z(u) in argmin_s ||s - L(u)||^4``;
- explicit:  ``max_u u^T L(u) = 38 x y - 10 x^2 - y^2 - 8 z^2 / 3`` (autodiff).

Both objectives are the same function of ``u`` (``z(u) = L(u)``).  The lower
level's optimality condition ``F(u, s) = ||s - L(u)||^2 (s - L(u)) = 0`` is
cubic in ``s - L(u)``: at the solution ``s = L(u)`` both blocks of its Jacobian
vanish, ``B = d_s F = 0`` and ``A = d_u F = 0``.  The invertibility hypothesis of
the nonsmooth implicit function theorem fails; ``singular="pinv"`` returns
``dz/du = -B^+ A = 0``, so the implicit "gradient" of ``u^T z(u)`` is

    z(u) + (dz/du)^T u = L(u),

and gradient ascent ``u_{k+1} = u_k + alpha L(u_k)`` is the explicit Euler scheme
of the Lorenz system ``u' = L(u)``: the iterates stay bounded on (the Euler
approximation of) the Lorenz attractor, chaotic (largest Lyapunov exponent
about 0.9 for the true flow), and ``u^T L(u)`` does not increase.  The explicit
gradient is ``H u`` with ``H = [[-20, 38, 0], [38, -2, 0], [0, 0, -16/3]]``,
indefinite with top eigenvalue ``lambda = (-22 + sqrt(6100)) / 2 = 28.05``: ascent
``u_{k+1} = (I + alpha H) u_k`` leaves every bounded set at the rate
``log(1 + alpha lambda) / alpha`` per unit of ``tau = alpha k`` along the top
eigenvector, and ``u^T L(u) -> +inf`` (the quadratic is unbounded above).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from scipy.spatial import cKDTree

import nsopt
import nsopt.implicit as ni
from nsopt.flow import integrate
from nsopt import validate as V
from nsopt.presets.base import PresetResult, new_figure, numpy_seed, tuples
from nsopt.problems.lorenz import (  # the problem (re-exported: the preset's public names)
    EXPLICIT_HESSIAN, LORENZ_LYAPUNOV, explicit_loss, implicit_loss, implicit_outer, lorenz,
    lower_residual, lower_solve, oracle, sampler, solution_map)

__all__ = [
    "EXPLICIT_HESSIAN",
    "LORENZ_LYAPUNOV",
    "ascent",
    "explicit_loss",
    "implicit_loss",
    "implicit_outer",
    "lorenz",
    "lower_residual",
    "lower_solve",
    "lyapunov_estimate",
    "run",
    "solution_map",
    "CLAIM",
    "Params",
]

CLAIM = ("gradient ascent with the pseudo-inverse implicit derivative follows the Lorenz attractor "
         "(an Euler scheme of the Lorenz flow), explicit ascent escapes (arXiv 2106.04350 §6)")


#: below this a difference is rounding: the claims and the report compare with it, not with digits
ROUNDING_TOL = 1.0e-10


@dataclass(frozen=True)
class Params:
    """Sizes of ``lorenz`` (defaults: full size)."""

    alpha: float = 0.005
    num_steps: int = 8000
    explicit_steps: int = 300
    inits: int = 4
    perturbation: float = 1.0e-10
    init_low: tuple[float, float, float] = (-15.0, -15.0, 5.0)
    init_high: tuple[float, float, float] = (15.0, 15.0, 40.0)
    transient_tau: float = 5.0
    inexact_offset: float = 1.0e-12
    reference_tau: float = 100.0

    def __post_init__(self):
        tuples(self)
        V.number("alpha", self.alpha, 0, open_low=True)
        for f in ("num_steps", "explicit_steps", "inits"):
            V.positive_int(f, getattr(self, f))
        for f in ("perturbation", "transient_tau", "inexact_offset", "reference_tau"):
            V.number(f, getattr(self, f), 0, open_low=True)
        for f in ("init_low", "init_high"):
            if len(V.numbers_list(f, getattr(self, f))) != 3:
                raise V.BadValue(f, list(getattr(self, f)), "it must be 3 numbers")
        if self.transient_tau >= self.alpha * self.num_steps:
            raise V.BadValue("transient_tau", self.transient_tau,
                             f"it must be below alpha * num_steps = {self.alpha * self.num_steps:g}")

def ascent(kind: str, u0: np.ndarray, alpha: float, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradient ascent (``nsopt.run_batch``, SGD with a deterministic oracle) from each row of ``u0``.

    ``kind="implicit"``: the pinv implicit oracle (direction ``L(u)``);
    ``kind="explicit"``: autodiff of ``u^T L(u)``.  Returns the iterates
    ``(n, num_steps + 1, 3)`` and ``u_k^T L(u_k)`` along them.
    """
    traj = nsopt.run_batch(nsopt.sgd(jnp.asarray(alpha, float)), oracle(kind), sampler,
                           jnp.asarray(u0, float), [0], num_steps, 1, objective=lambda w: -explicit_loss(w))
    return np.asarray(traj.w[0, :, 0]), np.asarray(traj.objective[0, :, 0])


# ----------------------------------------------------------------------------- analysis


def lyapunov_estimate(d: np.ndarray, tau: np.ndarray, low: float, high: float) -> float:
    """Slope of ``log d(tau)`` (least squares) where ``low < d < high``: the growth rate of the
    separation of two nearby starts, before it saturates at the attractor's size."""
    keep = (d > low) & (d < high)
    if keep.sum() < 10:
        return float("nan")
    return float(np.polyfit(tau[keep], np.log(d[keep]), 1)[0])


def _growth_rate(r: np.ndarray, tau: np.ndarray) -> float:
    """Slope of ``log ||u||`` vs ``tau`` on the second half (exponential escape rate)."""
    h = len(tau) // 2
    return float(np.polyfit(tau[h:], np.log(r[h:]), 1)[0])


def _step_check(w: np.ndarray, alpha: float) -> float:
    """``max_k ||u_{k+1} - u_k - alpha L(u_k)|| / max_k ||alpha L(u_k)||`` over whole trajectories:
    every implicit ascent step went along ``L(u_k)`` (rounding level), not along ``H u_k``."""
    step = alpha * np.asarray(lorenz(jnp.asarray(w[:, :-1])))
    return float(np.max(np.abs(np.diff(w, axis=1) - step)) / np.max(np.abs(step)))


def _ceil_to(x: float, step: float) -> float:
    """``x`` rounded up to a multiple of ``step``: a bound of a chaotic orbit's statistic that does
    not move with the rounding noise the chaos amplifies (unlike its digits)."""
    return float(step * np.ceil(x / step))


def _inits(n: int, seed: int, low: list, high: list) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=(n, 3))


@jax.jit
def _lower_level_arrays(u: Array, offset: Array) -> dict[str, Array]:
    v = lorenz(u)
    diag = jax.vmap(lambda x: ni.diagnose(lower_residual, x, x))(v)
    off = jnp.full(3, offset)
    diag_inexact = jax.vmap(lambda x: ni.diagnose(lower_residual, x, x + off))(v)
    return {
        "inexact_cond": diag_inexact.cond, "inexact_sigma_max": diag_inexact.sigma_max,
        "inexact_invertible": diag_inexact.invertible,
        "B": diag.B, "A": diag.A, "invertible": diag.invertible,
        "jac": jax.vmap(jax.jacrev(lambda x: solution_map("pinv")(lorenz(x))))(u),
        "direction": -jax.vmap(jax.grad(implicit_loss))(u),
        "explicit": -jax.vmap(jax.grad(explicit_loss))(u),
        "inexact": -jax.vmap(jax.grad(lambda x: implicit_loss(x, None, off)))(u),
        "jac_l": jax.vmap(jax.jacfwd(lorenz))(u),
        "jac_inexact": jax.vmap(jax.jacrev(lambda x: solution_map("pinv")(lorenz(x), off)))(u),
        "v": v,
    }


def lower_level_check(u: np.ndarray, offset: float) -> dict[str, Any]:
    """At points ``u``: ``B``, ``A`` and the pinv Jacobian ``dz/du`` of the exact lower level, the
    implicit direction vs ``L(u)``, whether ``singular="raise"`` refuses the derivative; and the
    same derivative with an inexact forward solve (``s = L(u) + offset``): there
    ``B = ||r||^2 I + 2 r r^T`` with ``r = offset (1, 1, 1)``, tiny but of condition number 3."""
    u_all = nsopt.algorithms.shard_leading(jnp.asarray(u))  # the points split over the devices
    r = jax.tree.map(np.asarray, _lower_level_arrays(u_all, jnp.asarray(offset)))
    try:
        jax.block_until_ready(jax.grad(lambda x: implicit_loss(x, singular="raise"))(jnp.asarray(u[0])))
        raised = False
    except RuntimeError:
        raised = True
    scale = float(np.max(np.abs(r["explicit"])))
    return {
        "points": len(u),
        "B_max_abs": float(np.max(np.abs(r["B"]))),
        "A_max_abs": float(np.max(np.abs(r["A"]))),
        "invertible_any": bool(np.any(r["invertible"])),
        "dz_du_max_abs": float(np.max(np.abs(r["jac"]))),
        "direction_minus_L_max_abs": float(np.max(np.abs(r["direction"] - r["v"]))),
        "raise_policy_refuses": raised,
        "inexact_offset": offset,
        "inexact_B_sigma_max_max": float(np.max(r["inexact_sigma_max"])),
        "inexact_B_cond_max": float(np.max(r["inexact_cond"])),
        "inexact_invertible_all": bool(np.all(r["inexact_invertible"])),
        "rounding_tol": ROUNDING_TOL,
        "inexact_dz_du_is_J_L": bool(np.max(np.abs(r["jac_inexact"] - r["jac_l"])) < ROUNDING_TOL),
        "inexact_dz_du_minus_J_L_max_abs": float(np.max(np.abs(r["jac_inexact"] - r["jac_l"]))),
        "inexact_direction_minus_explicit_max_rel": float(np.max(np.abs(r["inexact"] - r["explicit"]))
                                                          / scale),
    }


def run(params: Params, key: Array) -> PresetResult:
    """Implicit (pinv) vs explicit gradient ascent; reference attractor by RK4; figure + metrics."""
    p = dataclasses.asdict(params)
    p["seed"] = numpy_seed(key)
    alpha, steps = float(p["alpha"]), int(p["num_steps"])
    ex_steps = int(p["explicit_steps"])
    n, eps = int(p["inits"]), float(p["perturbation"])
    u0 = _inits(n, int(p["seed"]), p["init_low"], p["init_high"])
    twins = u0 + np.array([eps, 0.0, 0.0])
    tau = alpha * np.arange(steps + 1)
    burn = int(float(p["transient_tau"]) / alpha)

    w_imp, obj_imp = ascent("implicit", np.concatenate([u0, twins]), alpha, steps)
    w_imp, w_twin, obj_imp = w_imp[:n], w_imp[n:], obj_imp[:n]
    w_exp, obj_exp = ascent("explicit", u0, alpha, ex_steps)

    # Reference: the Lorenz flow by RK4 (step alpha / 2), after a transient.
    ref_steps = int(float(p["reference_tau"]) / (alpha / 2))
    _, ref = integrate(lorenz, jnp.asarray(u0[0]), alpha / 2, ref_steps, method="rk4")
    ref = np.asarray(ref)[int(float(p["transient_tau"]) / (alpha / 2)):]
    # Implicit ascent = explicit Euler on L: the same iterates (before chaos amplifies rounding).
    k5 = min(steps, int(5.0 / alpha))
    _, eul = jax.vmap(lambda x: integrate(lorenz, x, alpha, k5, method="euler"))(jnp.asarray(u0))

    post = w_imp[:, burn:]
    radius = np.linalg.norm(post, axis=-1)
    xs = post[..., 0]
    switches = np.sum(np.diff(np.sign(xs), axis=1) != 0, axis=1)
    tree = cKDTree(ref)
    nn = tree.query(post.reshape(-1, 3))[0]
    rng = np.random.default_rng(int(p["seed"]))
    nn_box = tree.query(rng.uniform(ref.min(0), ref.max(0), size=(4096, 3)))[0]
    sep = np.linalg.norm(w_imp - w_twin, axis=-1)
    lyap = np.array([lyapunov_estimate(s, tau, 1e3 * eps, 1e-1) for s in sep])
    r_exp = np.linalg.norm(w_exp, axis=-1)
    tau_ex = alpha * np.arange(ex_steps + 1)
    lam = float(np.max(np.linalg.eigvalsh(EXPLICIT_HESSIAN)))
    top = np.linalg.eigh(EXPLICIT_HESSIAN)[1][:, -1]
    cos_top = np.abs(w_exp[:, -1] @ top) / r_exp[:, -1]
    d_imp = np.diff(obj_imp[:, burn:], axis=1)
    d_exp = np.diff(obj_exp[:, ex_steps // 2:], axis=1)
    ref_mean_z = float(np.mean(ref[:, 2]))

    metrics: dict[str, Any] = {
        "alpha": alpha, "num_steps": steps, "explicit_steps": ex_steps, "inits": n,
        "tau_end": float(alpha * steps), "explicit_tau_end": float(alpha * ex_steps),
        "lower_level": lower_level_check(w_imp[:, burn::max(1, (steps - burn) // 8)].reshape(-1, 3),
                                         float(p["inexact_offset"])),
        "implicit": {
            "euler_match_tau": float(k5 * alpha),
            "euler_match_max_abs_tau5": float(np.max(np.abs(np.asarray(eul) - w_imp[:, :k5 + 1]))),
            "step_minus_alpha_L_max_rel": _step_check(w_imp, alpha),
            "radius_max": float(radius.max()),
            "radius_min": float(radius.min()),
            "reference_radius_max": float(np.linalg.norm(ref, axis=-1).max()),
            "radius_bound": _ceil_to(float(radius.max()), 10.0),
            "reference_radius_bound": _ceil_to(float(np.linalg.norm(ref, axis=-1).max()), 10.0),
            "x_positive_fraction": float(np.mean(xs > 0)),
            "lobe_switches_per_tau_min": float(switches.min() / (tau[-1] - tau[burn])),
            "mean_z": float(np.mean(post[..., 2])),
            "reference_mean_z": ref_mean_z,
            "mean_z_rel_diff": float(abs(np.mean(post[..., 2]) - ref_mean_z) / ref_mean_z),
            "dist_to_reference_attractor_median": float(np.median(nn)),
            "dist_to_reference_attractor_q99": float(np.quantile(nn, 0.99)),
            "dist_uniform_box_points_median": float(np.median(nn_box)),
            "dist_median_over_uniform_median": float(np.median(nn) / np.median(nn_box)),
            "lyapunov_per_run": lyap.tolist(),
            "lyapunov_median": float(np.nanmedian(lyap)),
            "lyapunov_reference": LORENZ_LYAPUNOV,
            "objective_decreasing_step_share": float(np.mean(d_imp < 0)),
            "objective_range": [float(obj_imp[:, burn:].min()), float(obj_imp[:, burn:].max())],
            "diverged": int(np.sum(~np.all(np.isfinite(w_imp), axis=(1, 2)))),
        },
        "explicit": {
            "hessian_top_eigenvalue": lam,
            "predicted_rate": float(np.log1p(alpha * lam) / alpha),
            "growth_rate_per_run": [_growth_rate(r, tau_ex) for r in r_exp],
            "radius_final_min": float(r_exp[:, -1].min()),
            "cos_top_eigenvector_min": float(cos_top.min()),
            "objective_increasing_step_share_tail": float(np.mean(d_exp > 0)),
            "objective_final_min": float(obj_exp[:, -1].min()),
        },
    }
    arrays = {"implicit/w": w_imp, "implicit/w_twin": w_twin, "implicit/objective": obj_imp,
              "explicit/w": w_exp, "explicit/objective": obj_exp, "reference": ref[::4], "tau": tau}
    imp, ll = metrics["implicit"], metrics["lower_level"]
    claims = {
        "lower_level_degenerate": ll["B_max_abs"] == 0.0 and ll["raise_policy_refuses"],
        "implicit_ascent_is_euler_on_lorenz": imp["step_minus_alpha_L_max_rel"] < ROUNDING_TOL,
        "implicit_stays_on_attractor": imp["diverged"] == 0 and imp["dist_to_reference_attractor_median"] < 1.0,
        "explicit_escapes": min(metrics["explicit"]["growth_rate_per_run"]) > 0,
    }
    fig = plot_lorenz(w_imp, w_exp, ref, sep, tau, tau_ex, alpha, metrics)
    return PresetResult(metrics=metrics, arrays=arrays, figures={"lorenz": fig}, claims=claims)


# ----------------------------------------------------------------------------- figure


def plot_lorenz(w_imp: np.ndarray, w_exp: np.ndarray, ref: np.ndarray, sep: np.ndarray,
                tau: np.ndarray, tau_ex: np.ndarray, alpha: float, metrics: Mapping[str, Any],
                view_radius: float = 120.0):
    """3-D trajectories (implicit, explicit), ``||u||`` vs ``tau``, separation of nearby starts."""
    import matplotlib

    mi, me = metrics["implicit"], metrics["explicit"]
    fig = new_figure(figsize=(14, 12), dpi=110)
    cols = matplotlib.colormaps["tab10"]
    ax = fig.add_subplot(2, 2, 1, projection="3d")
    ax.plot(*ref[::2].T, color="0.75", lw=0.4, label="Lorenz flow (RK4 reference)")
    for i in range(min(3, len(w_imp))):
        ax.plot(*w_imp[i].T, color=cols(i), lw=0.6, alpha=0.85, label=f"start {i}")
        ax.scatter(*w_imp[i, 0], color=cols(i), s=25)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.set_title(f"implicit (pinv, dz/du = 0): u <- u + alpha L(u)\n"
                 f"bounded (max ||u|| = {mi['radius_max']:.1f}), both lobes "
                 f"(x > 0 {100 * mi['x_positive_fraction']:.0f}% of the time)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")

    ax = fig.add_subplot(2, 2, 2, projection="3d")
    ax.plot(*ref[::2].T, color="0.75", lw=0.4, label="Lorenz attractor (for scale)")
    for i in range(min(3, len(w_exp))):
        inside = np.linalg.norm(w_exp[i], axis=-1) <= view_radius
        k = int(np.argmin(inside)) if not inside.all() else len(inside)
        ax.plot(*w_exp[i, :k].T, "-o", color=cols(i), lw=1.2, ms=2,
                label=f"start {i} (leaves the view at k = {k})")
    ax.set_xlim(-view_radius, view_radius)
    ax.set_ylim(-view_radius, view_radius)
    ax.set_zlim(-view_radius, view_radius)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.set_title(f"explicit (autodiff of u^T L(u)): u <- (I + alpha H) u\nescapes along the "
                 f"top eigenvector of H (eigenvalue {me['hessian_top_eigenvalue']:.2f})\n"
                 f"drawn while ||u|| <= {view_radius:g}", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")

    ax = fig.add_subplot(2, 2, 3)
    # log tau axis (the explicit run ends at tau = 1.5, the implicit one at 40): k >= 1 only
    for i in range(len(w_imp)):
        ax.plot(tau[1:], np.linalg.norm(w_imp[i, 1:], axis=-1), color="tab:blue", lw=0.6, alpha=0.6,
                label="implicit (pinv): bounded" if i == 0 else None)
    for i in range(len(w_exp)):
        ax.plot(tau_ex[1:], np.linalg.norm(w_exp[i, 1:], axis=-1), color="tab:red", lw=1.2,
                label="explicit (autodiff): escapes" if i == 0 else None)
    r0 = np.linalg.norm(w_exp[:, -1], axis=-1).min()
    ax.plot(tau_ex[1:], r0 * np.exp(me["predicted_rate"] * (tau_ex[1:] - tau_ex[-1])), "k--", lw=1,
            label=f"predicted (1 + alpha lambda)^k: rate {me['predicted_rate']:.2f} per unit tau")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\tau_k = \alpha k$  (log scale, k >= 1)")
    ax.set_ylabel("||u_k||")
    ax.set_title("norm of the iterates", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")

    ax = fig.add_subplot(2, 2, 4)
    for i, s in enumerate(sep):
        ax.plot(tau, np.maximum(s, 1e-300), lw=0.8, color=cols(i), alpha=0.8, label=f"start {i}")
    lam = mi["lyapunov_median"]
    ax.plot(tau, float(np.median(sep[:, 0])) * np.exp(LORENZ_LYAPUNOV * tau), "k--", lw=1,
            label=f"e^({LORENZ_LYAPUNOV:g} tau): largest Lyapunov exponent of the Lorenz flow")
    ax.set_yscale("log")
    ax.set_ylim(sep[:, 0].min() / 10, 1e6)  # room for the legend above the saturated separations
    ax.set_xlabel(r"$\tau_k = \alpha k$")
    ax.set_ylabel("||u_k - u'_k||  (u'_0 = u_0 + perturbation)")
    ax.set_title(f"implicit ascent is chaotic: nearby starts separate at rate {lam:.2f} "
                 f"(median fit)", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    fig.suptitle("max_u u^T z(u), z(u) = argmin_s ||s - L(u)||^4 (implicit, pinv) vs max_u u^T L(u) "
                 f"(explicit); gradient ascent, alpha = {alpha}", fontsize=13)
    fig.tight_layout()
    return fig
