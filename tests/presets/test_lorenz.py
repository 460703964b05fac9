"""Smoke preset lorenz: the pinv implicit derivative (dz/du = 0) makes gradient ascent the Euler
scheme of the Lorenz system, bounded and chaotic; explicit ascent escapes (arXiv 2106.04350 §6)."""

import numpy as np
import pytest


PRESET = "lorenz"


@pytest.fixture(scope="module")
def result(smoke_result):
    return smoke_result


def test_lower_level_is_degenerate_and_pinv_gives_zero(result):
    lo = result[0].metrics["lower_level"]
    # F = ||s - L||^2 (s - L): A = B = 0 at the solution; raise refuses, pinv gives dz/du = 0 and the
    # ascent direction is exactly L(u)
    assert lo["B_max_abs"] == 0.0 and lo["A_max_abs"] == 0.0 and not lo["invertible_any"]
    assert lo["raise_policy_refuses"]
    assert lo["dz_du_max_abs"] == 0.0 and lo["direction_minus_L_max_abs"] == 0.0
    # an inexact solve (s = L(u) + 1e-12) makes B tiny but well conditioned: the implicit
    # derivative is then the true J_L and the direction is the explicit gradient
    assert lo["inexact_dz_du_minus_J_L_max_abs"] < 1e-9
    # B = ||r||^2 I + 2 r r^T has eigenvalues ||r||^2 (twice) and 3 ||r||^2: cond 3 for every r, and
    # r = offset (1, 1, 1) up to the rounding of L(u) + offset (|L(u)| ~ 1e2: ulp ~ 1e-14)
    assert abs(lo["inexact_B_cond_max"] - 3.0) < 1e-6 and lo["inexact_invertible_all"]
    np.testing.assert_allclose(lo["inexact_B_sigma_max_max"], 9 * lo["inexact_offset"] ** 2, rtol=0.1)
    assert lo["inexact_dz_du_is_J_L"] == (lo["inexact_dz_du_minus_J_L_max_abs"] < lo["rounding_tol"])
    assert lo["inexact_direction_minus_explicit_max_rel"] < 1e-9


def test_implicit_ascent_follows_the_lorenz_attractor(result):
    res, params = result
    im = res.metrics["implicit"]
    # every step is u + alpha L(u): the Euler scheme of the Lorenz flow
    assert im["euler_match_max_abs_tau5"] < 1e-10 and im["step_minus_alpha_L_max_rel"] < 1e-12
    assert im["diverged"] == 0
    # bounded, on the attractor of the RK4 reference, both lobes, same mean height
    assert im["radius_max"] < 1.1 * im["reference_radius_max"] < 60
    assert im["dist_to_reference_attractor_median"] < 0.5
    assert im["dist_to_reference_attractor_median"] < im["dist_uniform_box_points_median"] / 10
    assert 0.3 < im["x_positive_fraction"] < 0.7 and im["lobe_switches_per_tau_min"] >= 0.2
    assert abs(im["mean_z"] - im["reference_mean_z"]) < 1.5
    assert im["mean_z_rel_diff"] == pytest.approx(abs(im["mean_z"] / im["reference_mean_z"] - 1))
    assert im["dist_median_over_uniform_median"] == pytest.approx(
        im["dist_to_reference_attractor_median"] / im["dist_uniform_box_points_median"])
    # the bounds are the maxima rounded up to a multiple of 10
    for b, m in ((im["radius_bound"], im["radius_max"]), (im["reference_radius_bound"], im["reference_radius_max"])):
        assert m <= b < m + 10 and b % 10 == 0
    # chaotic: nearby starts separate at about the Lorenz flow's largest Lyapunov exponent 0.906
    assert 0.6 < im["lyapunov_median"] < 1.3
    # not an ascent method: u^T L(u) decreases on a sizeable share of the steps
    assert im["objective_decreasing_step_share"] > 0.1
    assert res.figures["lorenz"].axes


def test_explicit_ascent_escapes(result):
    ex = result[0].metrics["explicit"]
    # u <- (I + alpha H) u with H indefinite, top eigenvalue (-22 + sqrt(6100)) / 2
    assert abs(ex["hessian_top_eigenvalue"] - (-22 + np.sqrt(6100)) / 2) < 1e-12
    np.testing.assert_allclose(ex["growth_rate_per_run"], ex["predicted_rate"], rtol=1e-6)
    assert ex["cos_top_eigenvector_min"] > 0.999 and ex["radius_final_min"] > 1e10
    assert ex["objective_increasing_step_share_tail"] == 1.0
