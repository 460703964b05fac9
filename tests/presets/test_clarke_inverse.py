"""Smoke preset clarke_inverse: implicit Jacobians of Phi^{-1} and the Clarke statement, both directions."""

import numpy as np
import pytest

from nsopt.presets import clarke_inverse as ci

PRESET = "clarke_inverse"


@pytest.fixture(scope="module")
def result(smoke_result):
    return smoke_result


def test_region_jacobians_are_the_inverses(result):
    res, params = result
    m = res.metrics
    assert m["region_max_err"] < 1e-12
    for name, r in m["regions"].items():
        want = np.linalg.inv(ci.region_matrix(*r["signs"]))
        np.testing.assert_allclose(r["jacobian"], want, atol=1e-12)
        assert r["max_err_finite_diff"] < 1e-6 and r["roundtrip_err"] < 1e-12, name
    # at 0 the kink values give B = [[kx, 1], [2, ky]] in Jac^c Phi(0); the implicit Jacobian is
    # B^{-1}, inside Jac^c Phi^{-1}(0) with the closed-form weights
    o = m["origin"]
    assert o["max_err_vs_B_inverse"] < 1e-12 and o["max_err_closed_form_weights"] < 1e-12
    assert o["inverse_in_clarke_psi"] == o["kink_grid"] and o["min_weight"] > -1e-12
    assert res.figures["clarke_inverse"].axes


def test_clarke_statement_both_directions(result):
    c = result[0].metrics["clarke"]
    # M in Jac^c Phi(0) => M^{-1} in Jac^c Phi^{-1}(0) holds for this Phi (every sample)
    d = c["inverse_of_clarke_phi"]
    assert d["holds_for_all"] and d["M_inverse_in_clarke_psi"] == d["samples"]
    # the converse fails: N in Jac^c Phi^{-1}(0) has N^{-1} outside Jac^c Phi(0) (a.s.)
    e = c["inverse_of_clarke_psi"]
    assert e["N_inverse_in_clarke_phi"] == 0 and e["distance_median"] > 0.05 and e["abs_det_min"] > 0.1
    assert c["witness_N_in_clarke_psi"]
    np.testing.assert_allclose(c["witness_N_weights"], 0.25, atol=1e-12)
    np.testing.assert_allclose(c["witness_N"], [[0, 2 / 3], [4 / 3, 0]], atol=1e-12)
    np.testing.assert_allclose(c["witness_N_inverse"], [[0, 0.75], [1.5, 0]], atol=1e-12)
    assert abs(c["witness_N_inverse_distance_to_clarke_phi"] - np.hypot(0.25, 0.5)) < 1e-12
    # nsopt.implicit.root on Psi(v) - u = 0 with B = N returns N^{-1}
    assert c["implicit_root_err_vs_N_inverse"] < 1e-12
    # the quoted exact forms, against rational arithmetic: N = mean_s M_s^{-1}, N^{-1}
    N = sum(_inverse_fraction(sx, sy) for sx, sy in ci.REGIONS.values()) / 4
    det = N[0, 0] * N[1, 1] - N[0, 1] * N[1, 0]
    N_inv = np.array([[N[1, 1], -N[0, 1]], [-N[1, 0], N[0, 0]]]) / det
    assert c["witness_N_exact"] == _quote(N) == "[[0, 2/3], [4/3, 0]]"
    assert c["witness_N_inverse_exact"] == c["implicit_root_jacobian_with_B_N_exact"] == _quote(N_inv)


def _inverse_fraction(sx: float, sy: float) -> np.ndarray:
    """``M_s^{-1}`` in exact rationals (object array of Fractions)."""
    from fractions import Fraction

    a, b, c, d = Fraction(int(sx)), Fraction(1), Fraction(2), Fraction(int(sy))
    det = a * d - b * c
    return np.array([[d / det, -b / det], [-c / det, a / det]], dtype=object)


def _quote(M: np.ndarray) -> str:
    return "[[{}, {}], [{}, {}]]".format(*(str(x) for x in M.ravel()))


def test_region_error_summaries(result):
    m = result[0].metrics
    assert m["region_max_err_finite_diff"] == max(r["max_err_finite_diff"] for r in m["regions"].values())
    assert m["region_max_roundtrip_err"] == max(r["roundtrip_err"] for r in m["regions"].values())


def test_closed_form_weights_and_membership():
    V = ci.clarke_inverse_vertices()
    for a in np.linspace(-1, 1, 7):
        for b in np.linspace(-1, 1, 7):
            lam = ci.inverse_weights(a, b)
            assert lam.min() >= 0 and abs(lam.sum() - 1) < 1e-14
            np.testing.assert_allclose(np.einsum("s,sij->ij", lam, V),
                                       np.linalg.inv([[a, 1.0], [2.0, b]]), atol=1e-14)
    for (sx, sy), Vs in zip(ci.REGIONS.values(), V):
        assert ci.in_clarke_psi(Vs) and ci.in_clarke_phi(ci.region_matrix(sx, sy))
    # the two sets meet on the diagonal a = b (M_A^{-1} = M_C, M_C^{-1} = M_A) and nowhere else
    assert ci.in_clarke_psi([[0.0, 1.0], [2.0, 0.0]]) and ci.in_clarke_phi(V[0])
    assert not ci.in_clarke_psi(ci.region_matrix(1, -1)) and not ci.in_clarke_phi(V[1])
    assert not ci.in_clarke_phi([[1.5, 1.0], [2.0, 0.0]])
