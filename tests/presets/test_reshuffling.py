"""Smoke preset reshuffling: SGD shadows the flow with reshuffled epochs as with i.i.d. sampling."""

import numpy as np

PRESET = "reshuffling"


def test_reshuffling_smoke(smoke_result):
    res, params = smoke_result
    m = res.metrics
    for name in ("iid", "reshuffle"):
        r = m[name]
        assert r["finite"] == params["seeds"]
        assert r["apt_late"] < 0.5 * r["apt_early"], (name, r)
        assert r["final_distance_median"] < 0.1          # both reach the signal (up to sign)
    assert m["late_ratio_reshuffle_over_iid"] == m["reshuffle"]["apt_late"] / m["iid"]["apt_late"]
    assert set(res.claims) == {"iid/shadowing", "reshuffle/shadowing"}
    assert m["epoch_steps"] == 200 // 4
    assert set(res.arrays) >= {"iid/apt", "reshuffle/apt", "iid/apt_times"}
    assert np.all(np.isfinite(res.arrays["reshuffle/apt"]))
    assert res.figures["reshuffling"].axes
