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
