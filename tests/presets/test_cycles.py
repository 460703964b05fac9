"""Smoke preset cycles: with the pinv implicit derivative of the LP, c = (-3, 1, 2) cycles, c = (-2, 1, 2)
converges (arXiv 2106.04350 §6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsopt.presets import cycles

PRESET = "cycles"


@pytest.fixture(scope="module")
def result(smoke_result):
    return smoke_result


def test_which_version_cycles(result):
    res, params = result
    m = res.metrics
    alpha = m["alpha"]
    assert m["cycling_versions"] == ["c3"] and m["converging_versions"] == ["c2"]
    c2, c3 = m["c2"], m["c3"]
    # why: (3, 5) is on the t > 0 side for c2 (a rest point of its own side); for c3 each side's
    # minimiser lies on the other side: t(3, 5) = -2 < 0 < t(0, 0) = 2
    assert c2["level_at_u"] == 1.0 and c3["level_at_u"] == -2.0 and c3["level_at_0"] == 2.0
    # c2: every start converges to (3, 5), the true loss to 0, no crossing in the second half
    assert c2["runs_converged"] == m["inits"] and c2["dist_to_zero_final_max"] < 1e-8
    assert c2["loss_final_max"] < 1e-12 and c2["crossings_tail_median"] == 0
    # c3: the only zero of the field is the centre (1.5, 2.5) (the solver's choice on the line);
    # no start gets within 0.4 of it in the second half, the iterates keep crossing the line
    assert c3["field_zeros"] == [[1.5, 2.5]]
    assert c3["runs_cycling"] == m["inits"] and c3["runs_converged"] == 0
    assert c3["dist_to_zero_min_tail"] > 0.4 and c3["crossings_tail_median"] >= 10
    # a limit cycle: one period for all starts, revisited exactly, equal to the flow's period
    # (closed form, 1.2296) up to the step's resolution, closer with half the step
    assert c3["period_tau_spread"] <= alpha + 1e-12
    assert c3["recurrence_max"] < 1e-6
    flow = c3["flow_period"]
    assert abs(flow - 1.2296) < 1e-3
    assert abs(c3["period_tau_median"] - flow) <= 2 * alpha
    assert abs(c3["period_tau_half_step"] - flow) <= abs(c3["period_tau_median"] - flow) + 1e-12
    # the true (discontinuous) loss jumps along the cycle: no descent, although l(1.5, 2.5) = 0
    lo, hi = c3["loss_tail_range"]
    assert lo > 0.1 and hi > 50
    assert res.figures["cycles"].axes
    assert res.arrays["c3/w"].shape == (m["inits"], m["num_steps"] + 1, 2)


def test_the_degenerate_line(result):
    c3 = result[0].metrics["c3"]
    # on the line B is singular, raise refuses, pinv gives ds/dw = 0
    d = c3["on_line_derivative"]
    assert d["sigma_min_B"] == 0.0 and d["max_abs_ds_dw"] == 0.0 and d["raise_policy_refuses"]
    # no iterate lands on the line: the other choices (vertices) give the very same iterates ...
    assert c3["iterates_on_line"] == 0
    assert c3["max_diff_other_degenerate_choices"] == {"lower": 0.0, "upper": 0.0}
    # ... the centre choice only creates an unstable rest point: exactly there GD stays (l = 0),
    # 1e-6 away it joins the cycle
    cs = c3["centre_start"]
    assert cs["moved"] == 0.0 and cs["loss"] == 0.0
    assert cs["perturbed_crossings_tail"] >= 10 and cs["perturbed_dist_min_tail"] > 0.4


def test_lp_fixed_point_and_implicit_oracle():
    rng = np.random.default_rng(1)
    c, h0 = jnp.asarray([-3.0, 1.0, 2.0]), jnp.asarray(0.5)
    u = np.asarray(cycles.UPPER)
    vertices = np.array([[0, 0], [u[0], 0], [0, u[1]], u])
    oracle = cycles.make_oracle(c, 0.5)
    for w in rng.uniform(-1, 5, size=(6, 2)):
        s = cycles.lp_solution(jnp.asarray(w), c, h0)
        t = float(cycles.level(w, c))
        # s is a fixed point of T and maximises the LP over the box's vertices
        np.testing.assert_array_equal(cycles.lp_fixed_point_map(jnp.asarray(w), s, c, h0), s)
        assert float(jnp.sum(s)) * t >= np.max(vertices.sum(1) * t) - 1e-12
        # off the line ds/dw = 0 and the oracle is the frozen-s gradient (2 (x - s1), 8 (y - s2))
        v = oracle(jnp.asarray(w), None)
        np.testing.assert_allclose(v, [2 * (w[0] - s[0]), 8 * (w[1] - s[1])], rtol=1e-14)
    # zeros of the field per c and degenerate choice
    assert cycles.field_zeros([-2, 1, 2], 0.5).tolist() == [[3.0, 5.0]]
    assert cycles.field_zeros([-3, 1, 2], 0.0).shape == (0, 2)
    assert np.isnan(cycles.flow_period([-2, 1, 2]))
    jax.clear_caches()
