"""Every preset at FULL size: each claim holds, and every number of results/REPORT.md is current.

Marked ``full`` (and ``slow``; about 5-8 minutes on 2 cores for all presets), run by ``.ci/run``::

    python -m pytest -m full tests/presets/test_full_size.py -p no:xdist

One session fixture runs ``python experiments/make_report.py --check --keep DIR --json
DIR/check.json`` once: every preset at its full size (``Params`` defaults, the yaml's precision,
key 0) through the CLI, as the report quotes it.  Each preset's test then asserts its claims from
its own ``summary.json`` and that the numbers REPORT.md quotes for it equal the regenerated ones;
a last test asserts the whole check passed (REPORT.md rendered from the current templates).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsopt.presets import NAMES

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.full, pytest.mark.slow]


@pytest.fixture(scope="session")
def full_check(tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("full_size")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("JAX_ENABLE_X64", None)  # each preset's precision comes from its yaml, as on the command line
    cmd = [sys.executable, str(ROOT / "experiments" / "make_report.py"), "--check",
           "--keep", str(out), "--json", str(out / "check.json")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    assert (out / "check.json").is_file(), f"make_report --check wrote no outcome:\n{proc.stderr[-4000:]}"
    return out, json.loads((out / "check.json").read_text()), proc


@pytest.mark.parametrize("name", NAMES)
def test_claims_hold_at_full_size(full_check, name):
    out, outcome, _ = full_check
    entry = outcome["presets"].get(name)
    assert entry is not None, f"{name} was not run"
    assert "error" not in entry, entry.get("error")
    summary = json.loads((out / name / "summary.json").read_text())
    assert summary["params"], f"{name}: no params in summary.json"
    assert summary["claims"], f"{name} states no claim"
    failed = [k for k, v in summary["claims"].items() if not v]
    assert not failed, f"{name}: claims that do not hold at full size: {failed}"
    assert summary["claims_hold"] is True


@pytest.mark.parametrize("name", NAMES)
def test_report_numbers_are_current(full_check, name):
    _, outcome, _ = full_check
    errors = outcome["presets"].get(name, {}).get("number_errors", [])
    assert not errors, "REPORT.md quotes numbers that the full-size run no longer gives:\n" + "\n".join(errors)


def test_whole_check_passes(full_check):
    _, outcome, proc = full_check
    assert proc.returncode == 0, "make_report --check failed:\n" + "\n".join(outcome["errors"])[-6000:]
