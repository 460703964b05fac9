"""The preset protocol: registry, names, typed Params (defaults = the yaml's full size), rejection."""

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nsopt.presets import NAMES, PRESETS, get
from nsopt.validate import BadValue


CONF = Path(__file__).resolve().parents[2] / "conf" / "experiment"


def test_registry_has_every_preset_and_get_rejects_unknown_names():
    assert list(PRESETS) == list(NAMES) and len(PRESETS) == 11
    assert get("cycles") is PRESETS["cycles"] and PRESETS["cycles"].claim
    with pytest.raises(BadValue, match=r"experiment.name='nope' is not allowed; choose one of"):
        get("nope")


@pytest.mark.parametrize("name", NAMES)
def test_yaml_full_size_equals_params_defaults_and_smoke_fields_are_fields(name):
    node = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml")["experiment"])
    assert node["precision"] in ("float32", "float64")
    smoke = node.pop("smoke")
    for k in ("name", "precision"):
        node.pop(k)
    params = PRESETS[name].params
    fields = {f.name for f in dataclasses.fields(params)}
    assert set(node) == fields and set(smoke) <= fields
    assert params(**node) == params()          # the yaml's full size is the dataclass default
    params(**{**node, **smoke})                # the smoke size is valid
    with pytest.raises(TypeError):             # unknown keys are rejected
        params(**node, not_a_field=1)


def test_ranges_are_validated_with_the_one_message_shape():
    with pytest.raises(BadValue, match=r"^num_steps=0 is not allowed; "):
        PRESETS["cycles"].params(num_steps=0)
    with pytest.raises(BadValue, match=r"^degenerate='middle' is not allowed; "):
        PRESETS["cycles"].params(degenerate="middle")
