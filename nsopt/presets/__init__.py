"""Presets reproducing the papers' experiments (protocol: :mod:`nsopt.presets.base`)."""
