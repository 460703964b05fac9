"""Held-out / K-fold criteria of the Lasso and the hyperparameter loops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import Lasso

import nsopt.layers.lasso as lasso
import nsopt.layers.lasso_hpo as hpo

# One compiled program per criterion, shared by the tests (compilation dominates their time).
_vg_held = jax.jit(jax.value_and_grad(hpo.held_out_criterion, has_aux=True))
_vg_kfold = jax.jit(jax.value_and_grad(hpo.kfold_criterion, has_aux=True))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n, p = 40, 30
    A = rng.standard_normal((n, p))
    x_true = np.zeros(p)
    x_true[:5] = [2.0, -1.0, 1.5, 0.5, -0.7]
    b = A @ x_true + 0.5 * rng.standard_normal(n)
    A_val = rng.standard_normal((25, p))
    b_val = A_val @ x_true + 0.5 * rng.standard_normal(25)
    return A, b, A_val, b_val


def test_kfold_masks_partition_rows():
    m = hpo.kfold_masks(11, 3, seed=1)
    assert m.shape == (3, 11)
    assert np.all(m.sum(0) == 1)  # every row held out exactly once
    assert sorted(m.sum(1)) == [3, 4, 4]
    assert np.array_equal(hpo.kfold_masks(6, 2, seed=None)[0], [1, 1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="folds must be an int in \\[2, n=5\\], got 1"):
        hpo.kfold_masks(5, 1)


def test_kfold_criterion_equals_sklearn_refits(data):
    A, b, _, _ = data
    masks = hpo.kfold_masks(A.shape[0], 4, seed=0)
    lam = 0.1 * float(lasso.lambda_max(A, b))
    (value, xs), _ = _vg_kfold(np.log(lam), np.zeros((4, A.shape[1])), A, b, masks)
    expected = []
    for i, m in enumerate(masks):
        tr = ~m
        sk = Lasso(alpha=lam / tr.sum(), fit_intercept=False, tol=1e-14, max_iter=100_000)
        sk.fit(A[tr], b[tr])
        np.testing.assert_allclose(xs[i], sk.coef_, rtol=0, atol=1e-8)
        expected.append(np.mean((A[m] @ sk.coef_ - b[m]) ** 2))
    assert abs(float(value) - np.mean(expected)) <= 1e-9 * np.mean(expected)


def test_criteria_hypergradients_match_finite_differences(data):
    A, b, A_val, b_val = data
    masks = hpo.kfold_masks(A.shape[0], 4, seed=0)
    theta = np.log(0.15 * float(lasso.lambda_max(A, b)))
    h = 1e-5
    for vg, x0, args in (
        (_vg_held, np.zeros(A.shape[1]), (A, b, A_val, b_val)),
        (_vg_kfold, np.zeros((4, A.shape[1])), (A, b, masks)),
    ):
        (_, _), g = vg(theta, x0, *args)
        (vp, _), _ = vg(theta + h, x0, *args)
        (vm, _), _ = vg(theta - h, x0, *args)
        fd = (float(vp) - float(vm)) / (2 * h)
        assert abs(float(g) - fd) <= 1e-6 * abs(fd)


def test_hypergradient_descent_reaches_the_grid_optimum(data):
    """On a held-out criterion GD from lambda_max / 2 ends within 0.1% of a fine grid's best."""
    A, b, A_val, b_val = data
    x0 = jnp.zeros(A.shape[1])
    lmax = float(lasso.lambda_max(A, b))
    gd = hpo.hypergradient_descent(lambda t, x: _vg_held(t, x, A, b, A_val, b_val),
                                     np.log(lmax / 2), x0, steps=40)
    grid = hpo.grid_search(lambda t, x: _vg_held(t, x, A, b, A_val, b_val)[0],
                             np.log(lmax * np.geomspace(1.0, 1e-3, 200)), x0)
    assert gd.value <= grid.value * (1 + 1e-3)
    assert gd.value < gd.values[0]  # it moved downhill from the start
    assert gd.evaluations == len(gd.thetas) <= 40 and np.all(np.diff(gd.times) >= 0)
    assert grid.value == grid.values.min() and grid.evaluations == 200
    for res in (gd, grid):  # the solution each search ended at, against scikit-learn's at its theta
        sk = Lasso(alpha=np.exp(res.theta) / A.shape[0], fit_intercept=False, tol=1e-14, max_iter=100_000)
        np.testing.assert_allclose(res.x, sk.fit(A, b).coef_, rtol=0, atol=1e-8)
        assert abs(float(hpo.held_out_mse(res.x, A_val, b_val)) - res.value) <= 1e-12 * res.value


def test_hypergradient_descent_on_a_smooth_function():
    """The loop alone: a parabola's minimum, rejected steps halve the step size."""
    def vg(t, x):
        return ((t - 1.0) ** 2, x), 2.0 * (t - 1.0)

    res = hpo.hypergradient_descent(vg, 4.0, None, steps=200, first_step=10.0, theta_tol=1e-8)
    assert abs(res.theta - 1.0) < 1e-6
    assert res.values[1] > res.values[0]  # the first, too long step was rejected
