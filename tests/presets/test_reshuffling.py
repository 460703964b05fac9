"""Smoke preset reshuffling: SGD shadows the flow with reshuffled epochs as with i.i.d. sampling."""

import numpy as np

from nsopt.presets.reshuffling import MIN_RESOLVED

PRESET = "reshuffling"


def test_reshuffling_smoke(smoke_result):
    res, params = smoke_result
    m = res.metrics
    for name in ("iid", "reshuffle"):
        r = m[name]
        assert r["finite"] == params["seeds"]
        assert r["apt_late"] < 0.5 * r["apt_early"], (name, r)
        # the distances are resolved: the flow's own error is below rtol of them (the claim's condition)
        assert r["resolved_late"] >= MIN_RESOLVED and r["resolved_early"] >= MIN_RESOLVED, (name, r)
        assert r["error_late"] < m["flow"]["rtol"] * r["apt_late"], (name, r)
        err = res.arrays[f"{name}/apt_error"]
        assert err.shape == res.arrays[f"{name}/apt"].shape and np.all(err >= 0)
        assert r["final_distance_median"] < 0.1          # both reach the signal (up to sign)
    assert m["late_ratio_reshuffle_over_iid"] == m["reshuffle"]["apt_late"] / m["iid"]["apt_late"]
    assert 0 <= m["late_runs_reshuffle_below_iid"] <= params["seeds"]
    assert m["flow"]["method"] == params["method"] and m["flow"]["dt"] <= params["dt"]
    # the coarse flow is measured on the same start times: its error estimate is larger (step doubling,
    # order >= 1 in the step) than the fine one's
    for name in ("iid", "reshuffle"):
        c, r = m[name]["coarse"], m[name]
        assert c["error_late"] > r["error_late"] and c["error_early"] > r["error_early"], (name, c, r)
    coarse_late = {name: m[name]["coarse"]["apt_late"] for name in ("iid", "reshuffle")}
    assert m["coarse_late_ratio_reshuffle_over_iid"] == coarse_late["reshuffle"] / coarse_late["iid"]
    assert set(res.claims) == {"iid/shadowing", "reshuffle/shadowing"}
    assert m["epoch_steps"] == 200 // 4
    assert set(res.arrays) >= {"iid/apt", "reshuffle/apt", "iid/apt_times"}
    assert np.all(np.isfinite(res.arrays["reshuffle/apt"]))
    assert res.figures["reshuffling"].axes
