"""Every preset at FULL size (its ``Params`` defaults, the yaml's precision, key 0): every claim holds.

Marked ``full`` (minutes each): ``python -m pytest -m full tests/presets/test_full_size.py``.
``python experiments/make_report.py --check`` runs the same sizes through the CLI and also
checks the numbers of results/REPORT.md.
"""

from pathlib import Path

import jax
import pytest
from omegaconf import OmegaConf

from nsopt.presets import NAMES, PRESETS

CONF = Path(__file__).resolve().parents[2] / "conf" / "experiment"


@pytest.mark.full
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_claims_hold_at_full_size(name):
    node = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml")["experiment"])
    precision = node.get("precision", "float32")
    preset = PRESETS[name]
    params = preset.params()  # defaults = full size
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", precision == "float64")
    try:
        result = preset.run(params, jax.random.key(0))
    finally:
        jax.config.update("jax_enable_x64", old)
    assert result.claims, f"{name} states no claim"
    failed = [k for k, v in result.claims.items() if not v]
    assert not failed, f"{name}: claims that do not hold at full size: {failed}"
