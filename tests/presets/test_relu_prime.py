"""Smoke preset relu_prime: relu'(0) matters only where the kink is hit, i.e. in low precision."""

import jax
import jax.numpy as jnp
import numpy as np

from nsopt.presets.relu_prime import distinct_records, kinked_loss
from nsopt.problems import relu_digits

PRESET = "relu_prime"


def test_kinked_loss_is_the_problem_loss_with_its_kink():
    """The traced-kink loss equals relu_digits(kink=k).loss, and its gradient the problem's oracle,
    also at a point where one pre-activation is exactly 0 (where the kink value shows)."""
    problems = {k: relu_digits(hidden=(8,), batch_size=4, kink=k) for k in (0.0, 1.0)}
    pb = problems[0.0]
    dtype = pb.x_train.dtype   # flax draws float32 parameters: cast them to the data's precision
    w = jax.tree.map(lambda a: a.astype(dtype), pb.init(jax.random.key(1)))
    xi = jnp.arange(4)
    pre = pb.x_train[xi] @ w["Dense_0"]["kernel"]   # the same batched product as the network's
    w["Dense_0"]["bias"] = w["Dense_0"]["bias"].at[3].set(-pre[0, 3])
    assert (pb.x_train[xi] @ w["Dense_0"]["kernel"] + w["Dense_0"]["bias"])[0, 3] == 0   # the kink is hit
    grads = {}
    for k, prob in problems.items():
        ours = jax.grad(lambda w_, k=k: kinked_loss(pb, dtype, jnp.asarray(k, dtype), w_, xi))(w)
        theirs = prob.oracle()(w, xi)
        jax.tree.map(np.testing.assert_array_equal, ours, theirs)
        grads[k] = ours
    diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), grads[0.0], grads[1.0])
    assert diff["Dense_0"]["kernel"] > 0   # relu'(0) changed the oracle at the hit


def test_distinct_records_counts_each_bitwise_distinct_record_once():
    a = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    b = a.copy()
    b[2, 1] = np.nextafter(3.0, 4.0)   # one ulp off in the last record only
    c = np.array([[0.0, 1.0], [5.0, 5.0], [5.0, 5.0]])   # shared start, then one new iterate repeated
    mask = distinct_records([a, b, c])
    np.testing.assert_array_equal(mask, [[True, True, True], [False, False, True], [False, True, False]])


def test_relu_prime_smoke(smoke_result):
    res, params = smoke_result
    m = res.metrics
    f64, f32, f16 = m["float64"], m["float32"], m["float16_mixed"]
    # float64: the kink is never hit, the three relu'(0) give bitwise identical training
    assert f64["zero_preactivations"] == 0 and f64["runs_changed_by_kink"] == 0
    assert f64["max_kink_curve_diff"] == 0.0 and f64["max_kink_weight_diff"] == 0.0
    # float16 passes: exact zeros are common and every run is changed by relu'(0) ...
    assert f16["zero_preactivations"] > 0 and f16["zero_rate"] > 1e-6
    assert f16["runs_changed_by_kink"] == f16["runs_compared"] > 0
    # ... but only slightly: far less than float32-vs-float64 rounding drift
    assert 0 < f16["max_kink_curve_diff"] < 0.1 * m["max_curve_diff_float32_vs_float64"]
    # float32 sits in between: its hit rate is below a quarter of float16's at 95% (0 seen here),
    # counting each distinct recorded iterate once
    assert f32["zero_preactivations"] == 0
    assert f32["zero_rate_upper_95"] < 0.25 * f16["zero_rate"]
    # the bound counts distinct iterates: float64's three relu'(0) runs per seed are bitwise copies and
    # every run starts at the same point, so seeds * (records - 1) + 1 iterates are distinct
    records = params["num_steps"] // params["record_every"] + 1
    assert f64["runs"] == len(params["kinks"]) * params["seeds"] and f64["runs_distinct"] == params["seeds"]
    assert f64["iterates_distinct"] == params["seeds"] * (records - 1) + 1
    assert f64["zero_rate_upper_95"] == 3 / f64["preactivations_distinct"]
    assert f64["preactivations_distinct"] * f64["iterates_recorded"] == (
        f64["preactivations_evaluated"] * f64["iterates_distinct"])
    # rates against the unit roundoff 2^-t of the passes (t = 53, 24, 11)
    assert (f64["unit_roundoff"], f32["unit_roundoff"], f16["unit_roundoff"]) == (2.0**-53, 2.0**-24, 2.0**-11)
    assert f16["zero_rate_over_unit_roundoff"] == f16["zero_rate"] * 2**11
    assert f32["max_kink_curve_diff"] < 0.1 * m["max_curve_diff_float32_vs_float64"]
    assert res.figures["relu_prime"].axes
