"""Smoke preset qp_layer: a simplex-projection QP layer trained on load_digits with SGD and heavy ball."""

from pathlib import Path

import jax
import numpy as np
import yaml

from nsopt.presets.qp_layer import PRESET, Params, run

CONF = Path(__file__).resolve().parents[2] / "conf" / "experiment" / "qp_layer.yaml"


def test_config_matches_params():
    exp = yaml.safe_load(CONF.read_text())["experiment"]
    fields = set(Params.__dataclass_fields__)
    assert set(exp) - {"name", "precision", "smoke"} == fields
    assert Params(**{k: exp[k] for k in fields}) == Params()  # the yaml is the full size
    assert PRESET.name == exp["name"] == "qp_layer" and PRESET.params is Params


def test_qp_layer_smoke():
    smoke = yaml.safe_load(CONF.read_text())["experiment"]["smoke"]
    params = Params(**smoke)
    res = run(params, jax.random.key(0))
    assert all(res.claims.values()), (res.claims, res.metrics)
    for name in ("sgd", "heavy_ball"):
        m = res.metrics[name]
        # 10 classes: chance is 10%; the smoke size must reach >= 75% (measured 87% for SGD)
        assert m["test_accuracy_min"] >= params.min_test_accuracy >= 0.75, m
        assert m["loss_final_mean"] < 0.5 * m["loss_initial"], m
        assert 0.0 <= m["degenerate_fraction"] <= 1.0 and m["successful_fraction"] == 1.0, m
        deg = res.arrays[f"{name}_degenerate"]
        assert deg.shape == (params.seeds, params.num_steps)
        assert np.isclose(deg.mean(), m["degenerate_fraction"])
    assert set(res.figures) == {"qp_layer"}
