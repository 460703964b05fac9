"""Presets reproducing the papers' experiments: ``python -m nsopt experiment=<name>``.

Each preset is a module ``nsopt.presets.<name>`` with a frozen dataclass
``Params`` (defaults = full size, validated in ``__post_init__``), a function
``run(params, key) -> PresetResult`` and a one-line ``CLAIM``; see
:mod:`nsopt.presets.base` for the protocol.  ``PRESETS`` maps each name to its
:class:`Preset`; the modules are imported on first access (some pull large
dependencies).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from nsopt.presets.base import Preset, PresetResult
from nsopt.validate import BadValue

__all__ = ["NAMES", "PRESETS", "Preset", "PresetResult", "get"]

NAMES = (
    "cycles",
    "lorenz",
    "integral_rule",
    "clarke_inverse",
    "artificial_critical",
    "lasso_hpo",
    "deq_digits",
    "relu_prime",
    "apt_schedules",
    "reshuffling",
    "qp_layer",
)


class _Registry(Mapping):
    """``name -> Preset``, importing ``nsopt.presets.<name>`` lazily on first access."""

    def __init__(self) -> None:
        self._loaded: dict[str, Preset] = {}

    def __getitem__(self, name: str) -> Preset:
        if name not in NAMES:
            raise KeyError(name)
        if name not in self._loaded:
            module = importlib.import_module(f"nsopt.presets.{name}")
            self._loaded[name] = Preset(name, module.Params, module.run, module.CLAIM)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


PRESETS: Mapping[str, Preset] = _Registry()


def get(name: str) -> Preset:
    """The preset ``name``; an unknown name raises :class:`nsopt.validate.BadValue`."""
    if name not in NAMES:
        raise BadValue("experiment.name", name, f"choose one of {list(NAMES)}")
    return PRESETS[name]
