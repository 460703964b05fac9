"""Smoke preset integral_rule: oracle means match E_s D(w, s), SGD follows its (stationary) flow."""

import pytest


PRESET = "integral_rule"


def test_integral_rule_smoke(smoke_result):
    res, params = smoke_result
    m = res.metrics

    # E_s D(0, s) = c E|s| for abs'(0) = c sign(s), 0 for a constant kink and near 0 (CLT, 4 s.e.)
    for dist, e_abs in (("uniform", 0.5), ("pm1", 1.0)):
        o = m[f"oracle_{dist}"]
        assert o["at_0_within_4se"] and o["near_0_within_4se"], o
        assert o["empirical_interval"] == pytest.approx([-e_abs, e_abs], abs=0.01)
    assert m["oracle_pm1"]["empirical_interval"] == [-1.0, 1.0]  # s kappa(s) = |s| = 1 exactly

    for dist in ("uniform", "pm1"):
        r = m[f"sgd_{dist}"]
        assert r["kink_hits"] == 0
        # zero drift along the iterates and near the kink (martingale differences, CLT)
        assert abs(r["mean_oracle_z"]) < 4 and abs(r["near_kink_radial_drift_z"]) < 4, r
        # E (w_K - w_0)^2 = scale^2 E[s^2] sum alpha_k^2
        assert abs(r["variance_ratio"] - 1) < 4 * r["variance_ratio_se"], r
        # asymptotic pseudo-trajectory of the stationary flow of E_s D
        assert r["apt_late"] < 0.5 * r["apt_early"], r

    lat = m["lattice"]
    absorb, left, right = lat["pm1/kink_sign=0"], lat["pm1/kink_sign=1"], lat["pm1/kink_sign=-1"]
    assert absorb["share_visited_0"] > 0.5
    assert absorb["share_final_exactly_0"] == absorb["share_visited_0"]   # abs'(0) = 0: absorbed
    assert left["mean_oracle_at_0"] == 1.0 and left["after_first_visit_max"] == 0.0   # drift +E|s|
    assert right["mean_oracle_at_0"] == -1.0 and right["after_first_visit_min"] == 0.0
    assert lat["uniform/kink_sign=0"]["visits_to_0"] == 0
    assert lat["uniform/max_diff_between_kinks"] == 0.0 and lat["pm1/max_diff_between_kinks"] > 1.0
    assert res.figures["integral_rule"].axes
