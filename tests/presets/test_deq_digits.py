"""Smoke preset deq_digits: a monotone DEQ trained with nonsmooth SGD and heavy ball on load_digits."""

import numpy as np


PRESET = "deq_digits"


def test_deq_digits_smoke(smoke_result):
    res, params = smoke_result
    m = res.metrics
    assert m["seeds"] == 2 and m["num_steps"] == 200
    for name in ("sgd", "heavy_ball"):
        r = m[name]
        # every run: loss divided by at least 5 in 200 steps (from ~2.4; measured ~13), test accuracy
        # >= 85% (measured ~93%)
        assert r["diverged_runs"] == 0, r
        assert r["loss_initial"] > 2.0, r
        assert r["loss_ratio_max"] <= 1 / 5, r
        assert r["test_accuracy_min"] >= 0.85, r
        # the forward Peaceman-Rachford solves converged for every test input
        assert r["solver_converged_share"] == 1.0 and r["solver_steps_max"] < 100, r
        assert r["claim_holds"], r
    assert m["claim_holds"]
    loss = res.arrays["sgd_loss"]
    assert loss.shape == (2, 5) and np.all(np.isfinite(loss))  # k = 0, 50, ..., 200
    # the loss curve decreases overall (median of the last records below the first ones)
    assert np.median(loss[:, -2:]) < 0.5 * np.median(loss[:, 1:3])
    assert res.figures["deq_digits"].axes


def test_initial_test_accuracy_is_that_of_the_init(smoke_result):
    """Both algorithms start from the one init: its test accuracy, recomputed from the problem."""
    import jax

    from nsopt.presets.deq_digits import PROBLEM_KEYS
    from nsopt.problems.deq_digits import deq_digits

    res, fields = smoke_result  # the smoke-size Params fields (the yaml's, with its smoke block)
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)  # the preset runs in float32
    try:
        problem = deq_digits(**{k: fields[k] for k in PROBLEM_KEYS})
        w0 = jax.tree.map(lambda a: a[0], problem.inits(jax.random.key(0), 1))
        want = float(problem.accuracy(w0))
    finally:
        jax.config.update("jax_enable_x64", old)
    for name in ("sgd", "heavy_ball"):
        assert res.metrics[name]["test_accuracy_initial"] == want
        np.testing.assert_allclose(res.arrays[f"{name}_test_accuracy"][:, 0], want)
