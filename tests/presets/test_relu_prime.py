"""Smoke preset relu_prime: relu'(0) matters only where the kink is hit, i.e. in low precision."""

import jax
import jax.numpy as jnp
import numpy as np

from nsopt.presets.relu_prime import kinked_loss
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
    # float32 sits in between: its hit rate is at least 10x below float16's (0 seen here)
    assert f32["zero_rate_upper_95"] < 0.1 * f16["zero_rate"]
    assert f32["max_kink_curve_diff"] < 0.1 * m["max_curve_diff_float32_vs_float64"]
    assert res.figures["relu_prime"].axes
