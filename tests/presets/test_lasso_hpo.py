"""Preset lasso_hpo (smoke): hypergradient descent reaches the grid-search optimum of the validation MSE."""

from pathlib import Path

import numpy as np
import yaml

from nsopt.papers import run_preset

CONF = Path(__file__).resolve().parents[2] / "conf" / "experiment" / "lasso_hpo.yaml"


def test_lasso_hpo_smoke(tmp_path):
    params = yaml.safe_load(CONF.read_text())["experiment"]
    summary = run_preset({"experiment": params, "smoke": True}, tmp_path)
    m = summary["metrics"]
    for name in ("diabetes", "synthetic"):
        # the gradient path ends within 1% of the best grid value (often below it: the grid is coarse)
        assert m[f"{name}/relative_gap"] < 1e-2, m
        assert np.isfinite(m[f"{name}/test_mse_gd"])
    # on diabetes the optimum is a smooth valley: gd lands within one grid cell of the grid optimum
    cell = np.log(1e3) / (params["smoke"]["grid"] - 1)
    assert abs(m["diabetes/theta_gd"] - m["diabetes/theta_grid"]) < 1.5 * cell
    assert (tmp_path / "lasso_hpo.png").is_file() and (tmp_path / "metrics.npz").is_file()
