"""Preset lasso_hpo (smoke): hypergradient descent reaches the grid-search optimum of the validation MSE."""

import numpy as np


PRESET = "lasso_hpo"


def test_lasso_hpo_smoke(smoke_result):
    res, params = smoke_result
    m = res.metrics
    for name in ("diabetes", "synthetic"):
        # the gradient path ends within 1% of the best grid value (often below it: the grid is coarse)
        assert m[f"{name}/relative_gap"] < 1e-2, m
        assert np.isfinite(m[f"{name}/test_mse_gd"])
    # on diabetes the optimum is a smooth valley: gd lands within one grid cell of the grid optimum
    cell = np.log(1e3) / (params["grid"] - 1)
    assert abs(m["diabetes/theta_gd"] - m["diabetes/theta_grid"]) < 1.5 * cell
    assert res.figures["lasso_hpo"].axes and res.arrays
