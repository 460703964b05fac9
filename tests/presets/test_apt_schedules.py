"""Smoke preset apt_schedules: the APT distance decreases for p in (1/2, 1], not for a constant step."""

import numpy as np


PRESET = "apt_schedules"


def test_apt_schedules_smoke(smoke_result):
    res, params = smoke_result
    m = res.metrics
    sched = m["schedules"]
    assert [k for k, v in sched.items() if v["in_l2_minus_l1"]] == ["p = 0.6", "p = 0.75", "p = 1"]
    for name in ("sgd", "heavy_ball"):
        r = m[name]
        for lab in ("p = 0.6", "p = 0.75", "p = 1"):
            # shadowing: the late APT distance is well below the early one
            assert r[lab]["apt_late"] < 0.5 * r[lab]["apt_early"], (name, lab, r[lab])
            assert r[lab]["diverged"] == 0
        const = r["constant 0.1"]
        # no shadowing with a constant step: the distance does not decrease ...
        assert const["apt_late"] > 0.85 * const["apt_early"], (name, const)
        # ... and stays far above that of every decreasing schedule in l^2 \ l^1
        assert const["apt_late"] > 2 * max(r[lab]["apt_late"] for lab in ("p = 0.6", "p = 0.75", "p = 1"))
    # SGD's Lyapunov function F ends lower the faster alpha decays; the constant step plateaus
    lyap = [m["sgd"][lab]["lyapunov_late_median"] for lab in ("p = 0.5", "p = 0.6", "p = 0.75", "p = 1")]
    assert np.all(np.diff(lyap) < 0) and m["sgd"]["constant 0.1"]["lyapunov_late_median"] > 10 * lyap[0]
    assert res.figures["apt_schedules"].axes
