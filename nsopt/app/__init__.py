"""Experiment wiring: Hydra CLI, run folder, loggers, figures."""
