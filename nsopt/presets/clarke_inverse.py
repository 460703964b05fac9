"""Preset ``clarke_inverse``: implicit Jacobians of ``Phi^{-1}`` and the failure of Clarke calculus.

``Phi(x, y) = (|x| + y, 2 x + |y|)`` (Bolte, Le, Pauwels, Silveti-Falls,
arXiv 2106.04350; docs/theory.md §Clarke inverse) is a piecewise linear
homeomorphism of the plane: on the closed quadrant of signs ``(s_x, s_y)`` it is
the matrix ``M_s = [[s_x, 1], [2, s_y]]`` (``det M_s = s_x s_y - 2 in {-1, -3}``),
so ``Psi = Phi^{-1}`` is linear with matrix ``M_s^{-1}`` on the cone ``Phi(quadrant s)``.

**Implicit Jacobians.**  ``Psi(theta)`` is the root ``z`` of ``F(theta, z) = Phi(z) - theta``;
:func:`nsopt.implicit.root` differentiates it with ``-B^{-1} A = B^{-1}``,
``B = d_z F``: ``M_s^{-1}`` inside each cone, and ``[[k_x, 1], [2, k_y]]^{-1}`` at
``0`` with the kink values ``abs'(0) = k_x, k_y`` of autodiff.

**Clarke Jacobians at 0.**  ``Jac^c Phi(0) = {[[a, 1], [2, b]] : a, b in [-1, 1]}``
(off-diagonal entries always exactly 1 and 2) and
``Jac^c Psi(0) = conv{M_s^{-1}}`` (a tetrahedron: the four inverses are affinely
independent).

- Every ``M in Jac^c Phi(0)`` has ``M^{-1} in Jac^c Psi(0)``: ``M = sum_s w_s M_s`` with
  the bilinear weights ``w_s = (1 + s_x a)(1 + s_y b) / 4``; since ``det`` is bilinear
  in ``(a, b)``, ``sum_s w_s det M_s = det M`` and, ``adj`` being linear,
  ``M^{-1} = sum_s lambda_s M_s^{-1}`` with ``lambda_s = w_s det M_s / det M >= 0``
  (all determinants are negative), ``sum lambda_s = 1``.
- The converse fails: ``N = mean_s M_s^{-1} = [[0, 2/3], [4/3, 0]] in Jac^c Psi(0)``
  but ``N^{-1} = [[0, 3/4], [3/2, 0]]`` is not in ``Jac^c Phi(0)`` (off-diagonal
  ``3/4 != 1``, ``3/2 != 2``).  Implicit differentiation of ``Psi(v) - u = 0``
  (i.e. ``v = Phi(u)``; ``B = N``, ``A = -I``) with this Clarke element of ``Psi``
  returns ``N^{-1}``: a
  "Clarke implicit function theorem" would be false.  ``N^{-1}`` is still an
  element of a *conservative* Jacobian of ``Phi`` (inverse of a conservative
  Jacobian, arXiv 2106.04350).

So the counterexample reads ``[Jac^c Psi(0)]^{-1} not subset of Jac^c Phi(0)``.
The statement the other way round ("some ``M in Jac^c Phi(0)`` has ``M^{-1}`` not in
``Jac^c Phi^{-1}(0)``") is false for this ``Phi`` (first bullet); it is true with
``Phi^{-1}`` in place of ``Phi``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nsopt
import nsopt.implicit as ni
from nsopt.nonsmooth import kinks
from nsopt import validate
from nsopt.algorithms.devices import is_split, per_device
from nsopt.presets.base import PresetResult, new_figure, numpy_seed

__all__ = [
    "CLAIM",
    "Params",
    "REGIONS",
    "barycentric",
    "clarke_inverse_vertices",
    "distance_to_clarke_phi",
    "in_clarke_phi",
    "in_clarke_psi",
    "inverse_map",
    "inverse_weights",
    "phi",
    "phi_inverse",
    "psi_with_choice",
    "region_matrix",
    "run",
]

# quadrant signs (s_x, s_y) and their names, counter-clockwise from the first quadrant
REGIONS = {"A": (1.0, 1.0), "B": (-1.0, 1.0), "C": (-1.0, -1.0), "D": (1.0, -1.0)}


# ----------------------------------------------------------------------------- Phi and its inverse


CLAIM = ("implicit differentiation gives the exact Jacobians of Phi^{-1}; the inverse of a Clarke "
         "Jacobian of Phi^{-1} need not be a Clarke Jacobian of Phi (arXiv 2106.04350)")


@dataclass(frozen=True)
class Params:
    """Sizes of ``clarke_inverse`` (defaults: full size)."""

    points_per_region: int = 64   # random points of each cone where the implicit Jacobian is checked
    kink_grid: int = 9            # (k_x, k_y) = abs'(0) values on a kink_grid x kink_grid grid of [-1, 1]^2
    clarke_samples: int = 2000    # random elements of Jac^c Phi(0) and of Jac^c Phi^{-1}(0)
    grid: int = 400               # resolution of the region pictures

    def __post_init__(self):
        for f in ("points_per_region", "kink_grid", "clarke_samples", "grid"):
            validate.positive_int(f, getattr(self, f))


def phi(z: Array, kx: Array = 0.0, ky: Array = 0.0) -> Array:
    """``Phi(x, y) = (|x| + y, 2 x + |y|)`` with autodiff kink values ``abs'(0) = kx, ky``."""
    return jnp.stack([kinks.abs(z[..., 0], kx) + z[..., 1], 2.0 * z[..., 0] + kinks.abs(z[..., 1], ky)],
                     axis=-1)


def region_matrix(sx: float, sy: float) -> np.ndarray:
    """``M_s = [[s_x, 1], [2, s_y]]``: the Jacobian of ``Phi`` on the quadrant of signs ``s``."""
    return np.array([[sx, 1.0], [2.0, sy]])


def clarke_inverse_vertices() -> np.ndarray:
    """``M_s^{-1}`` for the regions A, B, C, D (shape ``(4, 2, 2)``): the vertices of
    ``Jac^c Psi(0)``."""
    return np.stack([np.linalg.inv(region_matrix(*s)) for s in REGIONS.values()])


def phi_inverse(theta: Array) -> Array:
    """``Psi(theta) = Phi^{-1}(theta)``: the candidate ``M_s^{-1} theta`` whose signs match ``s``.

    Pure JAX (the forward solve of :func:`inverse_map`); on a cone boundary two
    candidates agree and the first (A, B, C, D order) is taken.
    """
    theta = jnp.asarray(theta)
    inv = jnp.asarray(clarke_inverse_vertices(), theta.dtype)
    signs = jnp.asarray(list(REGIONS.values()), theta.dtype)
    cand = jnp.einsum("sij,...j->...si", inv, theta)
    ok = jnp.all(signs * cand >= -1e-12 * (1.0 + jnp.abs(theta[..., None, :]).max(-1, keepdims=True)),
                 axis=-1)
    idx = jnp.argmax(ok, axis=-1)
    return jnp.take_along_axis(cand, idx[..., None, None], axis=-2)[..., 0, :]


def _residual(theta: Array, z: Array, kx: Array, ky: Array) -> Array:
    """``F(theta, z) = Phi(z) - theta``."""
    return phi(z, kx, ky) - theta


def _solve(theta: Array, kx: Array, ky: Array) -> Array:
    del kx, ky
    return phi_inverse(theta)


def inverse_map() -> ni.ImplicitFunction:
    """``(theta, kx, ky) -> Psi(theta)`` by :func:`nsopt.implicit.root` (``singular="raise"``:
    ``det B = k_x k_y - 2 != 0`` for kink values in ``[-1, 1]``)."""
    return ni.root(_residual, _solve, singular="raise")


@jax.custom_jvp
def psi_with_choice(v: Array, N: Array) -> Array:
    """``Psi(v)`` whose derivative at ``v = 0`` is the chosen ``N`` (an element of ``Jac^c Psi(0)``)."""
    del N
    return phi_inverse(v)


@psi_with_choice.defjvp
def _psi_with_choice_jvp(primals, tangents):
    v, N = primals
    dv, _ = tangents
    out, t = jax.jvp(phi_inverse, (v,), (dv,))
    return out, jnp.where(jnp.all(v == 0), N @ dv, t)


def phi_through_psi() -> ni.ImplicitFunction:
    """``u -> Phi(u)`` as the root ``v`` of ``Psi(v) - u = 0`` (``B = `` the chosen element of
    ``Jac^c Psi``, ``A = -I``): "Clarke implicit differentiation" of ``v = Phi(u)`` (the same
    Jacobian ``-B^{-1} A = N^{-1}`` as ``u - Psi(v) = 0`` with ``B = -N``, ``A = I``)."""
    return ni.root(lambda u, v, N: psi_with_choice(v, N) - u, lambda u, N: phi(u), singular="raise")


# ----------------------------------------------------------------------------- Clarke sets at 0


def barycentric(N: np.ndarray) -> tuple[np.ndarray, float]:
    """Affine coordinates of ``N`` w.r.t. the vertices ``M_s^{-1}`` and the residual of the fit.

    The four vertices are affinely independent, so the coordinates are unique when the
    residual is 0 (``N`` in their affine hull) and ``N in Jac^c Psi(0)`` iff they are ``>= 0``.
    """
    V = clarke_inverse_vertices().reshape(4, 4).T
    lhs = np.vstack([V, np.ones((1, 4))])
    rhs = np.append(np.ravel(N), 1.0)
    lam, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    return lam, float(np.linalg.norm(lhs @ lam - rhs))


def in_clarke_psi(N: np.ndarray, tol: float = 1e-10) -> bool:
    """``N in Jac^c Psi(0) = conv{M_s^{-1}}``."""
    lam, res = barycentric(N)
    return bool(res <= tol and lam.min() >= -tol)


def distance_to_clarke_phi(M: np.ndarray) -> float:
    """Frobenius distance from ``M`` to ``Jac^c Phi(0) = {[[a, 1], [2, b]] : |a|, |b| <= 1}``."""
    M = np.asarray(M, float)
    d = [M[0, 1] - 1.0, M[1, 0] - 2.0,
         max(abs(M[0, 0]) - 1.0, 0.0), max(abs(M[1, 1]) - 1.0, 0.0)]
    return float(np.linalg.norm(d))


def in_clarke_phi(M: np.ndarray, tol: float = 1e-10) -> bool:
    """``M in Jac^c Phi(0)``."""
    return distance_to_clarke_phi(M) <= tol


def inverse_weights(a: float, b: float) -> np.ndarray:
    """Closed-form weights ``lambda_s = w_s det M_s / det M`` of ``[[a, 1], [2, b]]^{-1}`` in the
    vertices ``M_s^{-1}`` (order A, B, C, D); ``w_s = (1 + s_x a)(1 + s_y b) / 4``."""
    det = a * b - 2.0
    return np.array([(1 + sx * a) * (1 + sy * b) / 4 * (sx * sy - 2.0) / det
                     for sx, sy in REGIONS.values()])


# ----------------------------------------------------------------------------- the preset


@jax.jit
def _jacobians(theta: Array) -> tuple[Array, Array, Array, Array]:
    """Implicit Jacobians (reverse, forward), central finite differences of ``Psi`` and ``Psi``
    itself at the rows of ``theta`` (kink values 0); each device does its own rows when they are
    split over the devices."""
    return per_device(_jacobians_here, (0,), 0, is_split(theta))(theta)


def _jacobians_here(theta: Array) -> tuple[Array, Array, Array, Array]:
    psi = inverse_map()
    zero = jnp.zeros((), theta.dtype)
    jr = jax.vmap(jax.jacrev(psi), in_axes=(0, None, None))(theta, zero, zero)
    jf = jax.vmap(jax.jacfwd(psi), in_axes=(0, None, None))(theta, zero, zero)
    h = 1e-6
    fd = jnp.stack([(phi_inverse(theta + h * e) - phi_inverse(theta - h * e)) / (2 * h)
                    for e in jnp.eye(2, dtype=theta.dtype)], axis=-1)
    return jr, jf, fd, jax.vmap(psi, in_axes=(0, None, None))(theta, zero, zero)


def region_jacobians(points_per_region: int, seed: int) -> dict[str, Any]:
    """Implicit Jacobians of ``Psi`` at random points of each cone ``Phi(quadrant s)``: errors vs
    ``M_s^{-1}`` (reverse and forward mode), vs central finite differences of ``Psi``, and the
    round trip ``Psi(Phi(z)) = z``."""
    rng = np.random.default_rng(seed)
    n = points_per_region
    zs = np.concatenate([rng.uniform(0.05, 1.0, size=(n, 2)) * np.array(s) for s in REGIONS.values()])
    theta = np.concatenate([zs[i * n:(i + 1) * n] @ region_matrix(*s).T
                            for i, s in enumerate(REGIONS.values())])
    theta_all = nsopt.algorithms.shard_leading(jnp.asarray(theta))  # the points split over the devices
    jr, jf, fd, back = (np.asarray(a) for a in _jacobians(theta_all))
    out: dict[str, Any] = {}
    for i, (name, (sx, sy)) in enumerate(REGIONS.items()):
        sl = slice(i * n, (i + 1) * n)
        want = np.linalg.inv(region_matrix(sx, sy))
        out[name] = {
            "signs": [sx, sy],
            "jacobian": jr[sl][0].round(12).tolist(),
            "max_err_jacrev": float(np.max(np.abs(jr[sl] - want))),
            "max_err_jacfwd": float(np.max(np.abs(jf[sl] - want))),
            "max_err_finite_diff": float(np.max(np.abs(fd[sl] - want))),
            "roundtrip_err": float(np.max(np.abs(back[sl] - zs[sl]))),
        }
    return out


def origin_jacobians(n_kinks: int) -> dict[str, Any]:
    """At ``0`` with kink values ``(k_x, k_y)`` on an ``n x n`` grid of ``[-1, 1]^2``: the implicit
    Jacobian equals ``B^{-1}``, ``B = [[k_x, 1], [2, k_y]] in Jac^c Phi(0)``, and lies in
    ``Jac^c Psi(0)`` with the closed-form weights."""
    psi = inverse_map()
    ks = np.linspace(-1.0, 1.0, n_kinks)
    kx, ky = (a.ravel() for a in np.meshgrid(ks, ks))
    kxy = nsopt.algorithms.shard_leading((jnp.asarray(kx), jnp.asarray(ky)))  # split over the devices
    jac = per_device(jax.vmap(jax.jacrev(psi), in_axes=(None, 0, 0)), (None, 0, 0), 0, is_split(kxy[0]))
    J = np.asarray(jax.jit(jac)(jnp.zeros(2), *kxy))
    err_inv, err_w, inside, min_w = 0.0, 0.0, 0, np.inf
    for a, b, Jab in zip(kx, ky, J):
        err_inv = max(err_inv, float(np.max(np.abs(Jab - np.linalg.inv([[a, 1.0], [2.0, b]])))))
        lam, res = barycentric(Jab)
        err_w = max(err_w, float(np.max(np.abs(lam - inverse_weights(a, b)))))
        inside += int(res <= 1e-10 and lam.min() >= -1e-10)
        min_w = min(min_w, float(lam.min()))
    return {"kink_grid": n_kinks * n_kinks, "max_err_vs_B_inverse": err_inv,
            "inverse_in_clarke_psi": inside, "min_weight": min_w,
            "max_err_closed_form_weights": err_w}


def clarke_statements(n_samples: int, seed: int) -> dict[str, Any]:
    """Both directions at 0, measured.

    - ``inverse_of_clarke_phi``: ``M in Jac^c Phi(0)`` (random ``a, b``) ``=> M^{-1} in Jac^c Psi(0)``?
    - ``inverse_of_clarke_psi``: ``N in Jac^c Psi(0)`` (Dirichlet weights) ``=> N^{-1} in Jac^c Phi(0)``?
    - the witness ``N = mean_s M_s^{-1}``, and ``N^{-1}`` from :func:`nsopt.implicit.root` on
      ``Psi(v) - u = 0`` with ``B = N``.
    """
    rng = np.random.default_rng(seed)
    ab = rng.uniform(-1.0, 1.0, size=(n_samples, 2))
    m_in = sum(in_clarke_psi(np.linalg.inv([[a, 1.0], [2.0, b]])) for a, b in ab)
    lam = rng.dirichlet(np.ones(4), size=n_samples)
    Ns = np.einsum("ns,sij->nij", lam, clarke_inverse_vertices())
    dets = np.linalg.det(Ns)
    dist = np.array([distance_to_clarke_phi(np.linalg.inv(N)) for N in Ns])
    N = clarke_inverse_vertices().mean(0)
    N_inv = np.linalg.inv(N)
    J = np.asarray(jax.jacrev(phi_through_psi())(jnp.zeros(2), jnp.asarray(N)))
    return {
        "inverse_of_clarke_phi": {"samples": n_samples, "M_inverse_in_clarke_psi": int(m_in),
                                "holds_for_all": bool(m_in == n_samples)},
        "inverse_of_clarke_psi": {"samples": n_samples,
                              "N_inverse_in_clarke_phi": int(np.sum(dist <= 1e-10)),
                              "distance_median": float(np.median(dist)),
                              "abs_det_min": float(np.min(np.abs(dets)))},
        "witness_N": N.tolist(),
        "witness_N_exact": _fmt(N),
        "witness_N_in_clarke_psi": in_clarke_psi(N),
        "witness_N_weights": barycentric(N)[0].tolist(),
        "witness_N_inverse": N_inv.tolist(),
        "witness_N_inverse_exact": _fmt(N_inv),
        "implicit_root_jacobian_with_B_N_exact": _fmt(J),
        "witness_N_inverse_distance_to_clarke_phi": distance_to_clarke_phi(N_inv),
        "implicit_root_jacobian_with_B_N": J.tolist(),
        "implicit_root_err_vs_N_inverse": float(np.max(np.abs(J - N_inv))),
    }


def run(params: Params, key: Array) -> PresetResult:
    """Region Jacobians, the origin, both Clarke statements; figure of the four regions."""
    p = params
    seed = numpy_seed(key)
    regions = region_jacobians(p.points_per_region, seed)
    origin = origin_jacobians(p.kink_grid)
    clarke = clarke_statements(p.clarke_samples, seed)
    metrics = {
        "regions": regions,
        "region_max_err": max(max(r["max_err_jacrev"], r["max_err_jacfwd"]) for r in regions.values()),
        "region_max_err_finite_diff": max(r["max_err_finite_diff"] for r in regions.values()),
        "region_max_roundtrip_err": max(r["roundtrip_err"] for r in regions.values()),
        "origin": origin,
        "clarke": clarke,
    }
    claims = {
        "implicit_jacobians_exact_in_regions": metrics["region_max_err"] < 1e-12,
        "origin_jacobians_are_B_inverse": origin["max_err_vs_B_inverse"] < 1e-12,
        "inverse_of_clarke_phi_in_clarke_psi": clarke["inverse_of_clarke_phi"]["holds_for_all"],
        "inverse_of_clarke_psi_not_in_clarke_phi": clarke["inverse_of_clarke_psi"]["N_inverse_in_clarke_phi"] == 0
        and clarke["witness_N_in_clarke_psi"],
    }
    fig = plot_clarke(regions, clarke, p.grid, seed)
    return PresetResult(metrics=metrics, arrays={"vertices": clarke_inverse_vertices()},
                        figures={"clarke_inverse": fig}, claims=claims)


# ----------------------------------------------------------------------------- figure


def _fmt(M: Any) -> str:
    """A 2 x 2 matrix with its entries as fractions of denominator <= 4 (to 1e-9), else 2 decimals:
    how the report and the figure quote closed-form matrices without rounding noise (``-0``)."""
    M = np.asarray(M, float)

    def f(x: float) -> str:
        for den in (1, 2, 3, 4):
            if abs(x * den - round(x * den)) < 1e-9:
                num = round(x * den)
                return f"{num}" if den == 1 else f"{num}/{den}"
        return f"{x:.2f}"

    return f"[[{f(M[0, 0])}, {f(M[0, 1])}], [{f(M[1, 0])}, {f(M[1, 1])}]]"


def plot_clarke(regions: Mapping[str, Any], clarke: Mapping[str, Any], grid: int, seed: int):
    """(a) quadrants of ``Phi``; (b) cones of ``Phi^{-1}`` with the implicit Jacobians;
    (c) the Clarke sets at 0 in the ``(m11, m12)`` plane (every matrix here has ``m21 = 2 m12``)."""
    from matplotlib.colors import ListedColormap

    colors = ["#a6cee3", "#b2df8a", "#fdbf6f", "#cab2d6"]
    cmap = ListedColormap(colors)
    names = list(REGIONS)
    signs = np.array(list(REGIONS.values()))

    def region_index(z: np.ndarray) -> np.ndarray:
        s = np.where(z >= 0, 1.0, -1.0)
        return np.argmax(np.all(s[..., None, :] == signs, axis=-1), axis=-1)

    fig = new_figure(figsize=(21, 9), dpi=100)
    axes = fig.subplots(1, 3)
    lim = 2.0
    g = np.linspace(-lim, lim, grid)
    gx, gy = np.meshgrid(g, g)
    pts = np.stack([gx, gy], -1)

    ax = axes[0]
    ax.pcolormesh(gx, gy, region_index(pts), cmap=cmap, vmin=-0.5, vmax=3.5, shading="auto")
    for name, (sx, sy) in REGIONS.items():
        ax.text(sx * lim / 2, sy * lim / 2, f"{name}\nJac Phi = M_{name} =\n{_fmt(region_matrix(sx, sy))}",
                ha="center", va="center", fontsize=11)
    ax.axhline(0, color="k", lw=1)
    ax.axvline(0, color="k", lw=1)
    ax.set_title("(a) regions of Phi(x, y) = (|x| + y, 2x + |y|): the quadrants", fontsize=12)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_aspect("equal")

    ax = axes[1]
    lim2 = 4.0
    g2 = np.linspace(-lim2, lim2, grid)
    hx, hy = np.meshgrid(g2, g2)
    theta = np.stack([hx, hy], -1)
    z = np.asarray(jax.jit(phi_inverse)(jnp.asarray(theta)))
    ax.pcolormesh(hx, hy, region_index(z), cmap=cmap, vmin=-0.5, vmax=3.5, shading="auto")
    for e in (np.array([1.0, 0.0]), np.array([-1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.0, -1.0])):
        ray = np.asarray(phi(jnp.asarray(e)))
        ax.plot([0, 10 * ray[0]], [0, 10 * ray[1]], "k-", lw=1)
    for name, (sx, sy) in REGIONS.items():
        g1 = np.asarray(phi(jnp.asarray([sx, 0.0])))
        g2 = np.asarray(phi(jnp.asarray([0.0, sy])))
        bis = g1 / np.linalg.norm(g1) + g2 / np.linalg.norm(g2)
        bis = bis / np.linalg.norm(bis)
        r = regions[name]
        text = (f"{name}: implicit Jac Psi =\n{_fmt(r['jacobian'])} = M_{name}^-1\n"
                f"(max err {max(r['max_err_jacrev'], r['max_err_jacfwd']):.1g})")
        box = {"facecolor": "white", "alpha": 0.8, "edgecolor": colors[names.index(name)], "lw": 2}
        if name == "A":  # a narrow cone: label in B's cone with an arrow
            ax.annotate(text, xy=0.75 * lim2 * bis, xytext=(0.6 * lim2, 0.25 * lim2), ha="center",
                        va="center", fontsize=10, bbox=box, arrowprops={"arrowstyle": "->", "lw": 1.5})
        elif name == "B":
            ax.text(0.5 * lim2, -0.45 * lim2, text, ha="center", va="center", fontsize=10, bbox=box)
        else:
            c = 0.6 * lim2 * bis
            ax.text(c[0], c[1], text, ha="center", va="center", fontsize=10, bbox=box)
    ax.set_xlim(-lim2, lim2)
    ax.set_ylim(-lim2, lim2)
    ax.set_title("(b) regions of Psi = Phi^{-1} (cones Phi(quadrant)),\n"
                 "Jacobians by nsopt.implicit.root on F(theta, z) = Phi(z) - theta", fontsize=12)
    ax.set_xlabel("u")
    ax.set_ylabel("v")
    ax.set_aspect("equal")

    ax = axes[2]
    V = clarke_inverse_vertices()
    proj = np.array([[m[0, 0], m[0, 1]] for m in V])
    order = np.argsort(np.arctan2(proj[:, 1] - proj[:, 1].mean(), proj[:, 0] - proj[:, 0].mean()))
    poly = proj[np.append(order, order[0])]
    ax.fill(poly[:, 0], poly[:, 1], color="tab:blue", alpha=0.15,
            label="Jac^c Psi(0) = conv{M_s^-1} (projection)")
    ax.plot(poly[:, 0], poly[:, 1], color="tab:blue", lw=1)
    for name, m in zip(names, V):
        ax.annotate(f"M_{name}^-1", (m[0, 0], m[0, 1]), textcoords="offset points",
                    xytext=(-10 if m[0, 0] < 0 else 10, -14), ha="right" if m[0, 0] < 0 else "left",
                    fontsize=11, color="tab:blue")
    ax.plot([-1, 1], [1, 1], color="tab:red", lw=4, label="Jac^c Phi(0) = {[[a, 1], [2, b]]} (m12 = 1)")
    rng = np.random.default_rng(seed + 1)
    ab = rng.uniform(-1, 1, size=(300, 2))
    Minv = np.array([np.linalg.inv([[a, 1.0], [2.0, b]]) for a, b in ab])
    ax.scatter(Minv[:, 0, 0], Minv[:, 0, 1], s=6, color="tab:red", alpha=0.5,
               label="M^-1 for 300 random M in Jac^c Phi(0)")
    lam = rng.dirichlet(np.ones(4), size=300)
    Ninv = np.linalg.inv(np.einsum("ns,sij->nij", lam, V))
    ax.scatter(Ninv[:, 0, 0], Ninv[:, 0, 1], s=6, marker="x", color="tab:green", alpha=0.6,
               label="N^-1 for 300 random N in Jac^c Psi(0)")
    N = np.asarray(clarke["witness_N"])
    Ni = np.asarray(clarke["witness_N_inverse"])
    ax.plot(N[0, 0], N[0, 1], "D", color="navy", ms=9, label=f"N = mean M_s^-1 = {_fmt(N)}")
    ax.plot(Ni[0, 0], Ni[0, 1], "*", color="darkgreen", ms=16,
            label=f"N^-1 = {_fmt(Ni)} (implicit root with B = N)")
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(0.0, 1.5)
    ax.set_xlabel("m11 (all matrices here have m21 = 2 m12)")
    ax.set_ylabel("m12")
    d = clarke["inverse_of_clarke_phi"]
    e = clarke["inverse_of_clarke_psi"]
    ax.set_title("(c) Clarke at 0: [Jac^c Psi(0)]^-1 is not in Jac^c Phi(0) (arXiv 2106.04350)\n"
                 f"M in Jac^c Phi(0): M^-1 in Jac^c Psi(0) for {d['M_inverse_in_clarke_psi']}/{d['samples']}\n"
                 f"N in Jac^c Psi(0): N^-1 in Jac^c Phi(0) for {e['N_inverse_in_clarke_phi']}/{e['samples']}\n"
                 "(the reverse statement is false for this Phi)", fontsize=11)
    ax.legend(fontsize=9.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
