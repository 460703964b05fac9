"""Run a preset at its smoke size, as the app would: the ``experiment`` node of
``conf/experiment/<name>.yaml`` with its ``smoke`` block merged, ``name``/``precision``/``smoke``
stripped, the precision set for the run (and restored), key ``jax.random.key(0)``."""

from pathlib import Path

import jax
import pytest
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from nsopt.presets import PRESETS

CONF = Path(__file__).resolve().parents[2] / "conf" / "experiment"


def smoke_fields(name: str) -> tuple[dict, str]:
    """The smoke-size ``Params`` fields of preset ``name`` and its precision."""
    node = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml")["experiment"])
    node.update(node.pop("smoke", None) or {})
    assert node.pop("name") == name
    return node, node.pop("precision")


def run_smoke(name: str):
    """``PRESETS[name].run(Params(**smoke_fields), key(0))`` under the yaml's precision; checks the
    protocol: every claim held, every figure is a matplotlib Figure."""
    fields, precision = smoke_fields(name)
    preset = PRESETS[name]
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", precision == "float64")
    try:
        result = preset.run(preset.params(**fields), jax.random.key(0))
    finally:
        jax.config.update("jax_enable_x64", old)
    assert result.claims and all(result.claims.values()), result.claims
    assert result.figures and all(isinstance(f, Figure) for f in result.figures.values())
    return result, fields


@pytest.fixture(scope="module")
def smoke_result(request):
    """The smoke result of the preset named by the test module's ``PRESET``."""
    return run_smoke(request.module.PRESET)
