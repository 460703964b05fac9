"""Smoke preset artificial_critical: random inits and scales avoid the artificial critical point."""

import numpy as np


PRESET = "artificial_critical"


def test_artificial_critical_smoke(smoke_result):
    res, params = smoke_result
    m = res.metrics
    assert m["runs_per_algorithm"] >= 256
    for name in ("sgd", "heavy_ball"):
        r = m[name]
        # theory: for almost every w0 and s the limit points are Clarke critical -> all runs avoid (0, 0)
        assert r["share_at_minimizer"] >= 0.99, r
        assert r["share_at_artificial"] == 0.0, r
        assert r["iterates_with_w1_exactly_0"] == 0, r
        # the contrived start exactly at the point, without noise, never leaves with relu'(0) = 0 ...
        stay = m["contrived_no_noise"][f"{name}/relu_kink=0"]
        assert stay["stayed_exactly"] and stay["w_final"] == [0.0, 0.0]
        # ... and with relu'(0) = 1/2 (no artificial point) it reaches the minimizer
        assert m["contrived_no_noise"][f"{name}/relu_kink=0.5"]["distance_to_minimizer"] < 0.05
    c = m["criticality"]
    # the autodiff field vanishes at both points, gradient sampling separates them at every radius
    assert c["field_norm_artificial"] == 0.0 and c["field_norm_minimizer"] == 0.0
    assert min(c["artificial_lower_bound"]) > 0.5      # dist >= 1 - rho - ... certified
    assert max(c["minimizer_distance"]) < 2e-3         # Clarke critical: ~0
    assert res.figures["artificial_critical"].axes
    arrays = res.arrays
    assert arrays["sgd/w_final"].shape[-1] == 2
