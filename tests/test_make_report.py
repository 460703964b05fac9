"""experiments/make_report.py: REPORT.md is rendered from the stored data, and the comparison that
``--check`` runs catches a changed number (fast: no preset is run here; the full-size run is
tests/presets/test_full_size.py)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mr():
    spec = importlib.util.spec_from_file_location("make_report", ROOT / "experiments" / "make_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_report_is_rendered_from_the_stored_data(mr):
    datas, timings = mr.stored()
    assert (ROOT / "results" / "REPORT.md").read_text() == mr.build_report(datas, timings), (
        "results/REPORT.md is not the rendering of results/report/*.md with results/report/data: "
        "run python experiments/make_report.py --render")


def test_every_preset_with_data_has_a_template_and_its_placeholders_resolve(mr):
    datas, timings = mr.stored()
    for name in mr.NAMES:
        template = mr.TEMPLATES / f"{name}.md"
        assert template.is_file(), f"{name}: no section template results/report/{name}.md"
        assert datas[name] is not None, f"{name}: template but no data"
        rendered = mr.placeholders(template.read_text(), mr.context_of(name, datas[name], timings.get(name, {})))
        assert rendered, f"{name}: a template without a single number from the data"


def _first_float_placeholder(mr, name, data, timings):
    text = (mr.TEMPLATES / f"{name}.md").read_text()
    for (ph, _), raw in zip(mr.placeholders(text, mr.context_of(name, data, timings)),
                            mr.raw_values(text, mr.context_of(name, data, timings))):
        if isinstance(raw, float) and not isinstance(raw, bool) and raw != 0.0:
            return ph, raw
    return None, None


def _set(node, placeholder, value):
    """Set the leaf a placeholder names (keys holding dots matched greedily, as make_report does)."""
    parts = placeholder.strip("{} ").partition(":")[0].strip().split(".")
    while True:
        if isinstance(node, list):
            key, rest = int(parts[0]), parts[1:]
        else:
            j = next(j for j in range(len(parts), 0, -1) if ".".join(parts[:j]) in node)
            key, rest = ".".join(parts[:j]), parts[j:]
        if not rest:
            node[key] = value
            return
        node, parts = node[key], rest


def test_check_catches_a_changed_number_and_tolerates_only_rounding_jitter(mr):
    datas, timings = mr.stored()
    checked = 0
    for name in mr.NAMES:
        if datas[name] is None or not (mr.TEMPLATES / f"{name}.md").is_file():
            continue
        t = timings.get(name, {})
        ph, raw = _first_float_placeholder(mr, name, datas[name], t)
        if ph is None:
            continue
        same_errors, _ = mr.compare_numbers(name, datas[name], copy.deepcopy(datas[name]), t, rtol=1e-6)
        assert same_errors == [], same_errors
        changed = copy.deepcopy(datas[name])
        _set(changed, ph, raw * 3.0)  # a factor 3 changes any rendering with one or more digits
        errors, notes = mr.compare_numbers(name, datas[name], changed, t, rtol=1e-6)
        assert errors and ph in errors[0] and not notes, (name, ph, errors, notes)
        # a change far below the tolerance never fails (it may or may not cross a rounding boundary)
        tiny = copy.deepcopy(datas[name])
        _set(tiny, ph, raw * (1 + 1e-9))
        errors, _ = mr.compare_numbers(name, datas[name], tiny, t, rtol=1e-6)
        assert errors == []
        checked += 1
    assert checked >= 4, f"only {checked} presets have a float placeholder to test"


def test_rounding_jitter_is_only_for_floats_that_agree(mr):
    assert mr.rounding_jitter(0.12345, 0.12345 * (1 + 1e-8), 1e-6)
    assert not mr.rounding_jitter(0.1235, 0.1234, 1e-6)
    assert not mr.rounding_jitter(3, 4, 1e-6)
    assert not mr.rounding_jitter(True, False, 1e-6)
