"""Helpers (and their own check): QPs with a known solution (built from the KKT conditions) and an independent NumPy derivative."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Case(NamedTuple):
    Q: np.ndarray
    q: np.ndarray
    G: np.ndarray
    h: np.ndarray
    A: np.ndarray
    b: np.ndarray
    x: np.ndarray  # the solution
    y: np.ndarray  # equality multipliers
    z: np.ndarray  # inequality multipliers
    strong: np.ndarray  # bool (m,): G_i x = h_i, z_i > 0
    weak: np.ndarray  # bool (m,): G_i x = h_i, z_i = 0

    @property
    def data(self):
        return self.Q, self.q, self.G, self.h, self.A, self.b


def make_qp(seed: int, n: int = 8, m: int = 12, p: int = 2, k: int = 4, weak: int = 0,
            psd_rank: int | None = None) -> Case:
    """``k`` strongly active, ``weak`` weakly active constraints; ``Q = L L^T`` (rank ``psd_rank``)."""
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((n, psd_rank or n))
    Q = L @ L.T / n + (0.0 if psd_rank else 0.5) * np.eye(n)
    G, A = rng.standard_normal((m, n)), rng.standard_normal((p, n))
    x, y = rng.standard_normal(n), rng.standard_normal(p)
    z = np.zeros(m)
    z[:k] = rng.uniform(0.5, 2.0, k)
    slack = np.zeros(m)
    slack[k + weak:] = rng.uniform(0.5, 2.0, m - k - weak)
    h = G @ x + slack
    b = A @ x
    q = -(Q @ x + A.T @ y + G.T @ z)
    strong = np.arange(m) < k
    weak_mask = (np.arange(m) >= k) & (np.arange(m) < k + weak)
    return Case(Q, q, G, h, A, b, x, y, z, strong, weak_mask)


def active_set_jacobians(Q, G, A, x, y, z, active) -> dict[str, np.ndarray]:
    """``dx/dq`` and ``dx/dh`` from the KKT system of the active rows (NumPy; independent of nsopt).

    ``[Q A^T G_S^T; A 0 0; G_S 0 0] [dx; dy; dz_S] = [-dq; 0; dh_S]``.
    """
    n, p = Q.shape[0], A.shape[0]
    GS = G[active]
    k = GS.shape[0]
    K = np.block([[Q, A.T, GS.T], [A, np.zeros((p, p)), np.zeros((p, k))],
                  [GS, np.zeros((k, p)), np.zeros((k, k))]])
    Kinv = np.linalg.inv(K)
    dx_dq = -Kinv[:n, :n]
    dx_dh = np.zeros((n, G.shape[0]))
    dx_dh[:, active] = Kinv[:n, n + p:]
    return {"q": dx_dq, "h": dx_dh}


def test_cases_satisfy_kkt():
    """The construction is a KKT point: stationarity, feasibility, complementarity, z >= 0."""
    c = make_qp(0, weak=2)
    assert np.allclose(c.Q @ c.x + c.q + c.A.T @ c.y + c.G.T @ c.z, 0, atol=1e-12)
    assert np.allclose(c.A @ c.x, c.b) and np.all(c.G @ c.x <= c.h + 1e-12)
    s = c.h - c.G @ c.x
    assert np.all(c.z >= 0) and np.allclose(s * c.z, 0, atol=1e-12)
    assert np.all(np.abs(s[c.strong | c.weak]) < 1e-12) and np.all(s[~(c.strong | c.weak)] >= 0.5)
    assert c.strong.sum() == 4 and c.weak.sum() == 2 and np.all(c.z[c.weak] == 0)
