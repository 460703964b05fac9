"""nsopt: convergence experiments for nonsmooth stochastic optimization (JAX).

The data path::

    problem -> oracle -> algorithm -> run (scan; vmap over a batch) -> Trajectory

Public API: :func:`sgd`, :func:`heavy_ball`, :func:`run`, :func:`run_batch`,
:class:`Trajectory`, and the modules :mod:`schedules`, :mod:`oracles`,
:mod:`problems`, :mod:`flow` (the ODE approach), :mod:`implicit` (nonsmooth
implicit differentiation) and :mod:`prox`.
"""

from nsopt import algorithms, flow, implicit, oracles, problems, prox, schedules
from nsopt.algorithms import (
    HeavyBall,
    SGD,
    Trajectory,
    compile_batch,
    heavy_ball,
    proportional,
    run,
    run_batch,
    run_configs,
    seed_keys,
    sgd,
)

__version__ = "0.1.0"

__all__ = [
    "HeavyBall",
    "SGD",
    "Trajectory",
    "algorithms",
    "compile_batch",
    "flow",
    "heavy_ball",
    "implicit",
    "oracles",
    "problems",
    "proportional",
    "prox",
    "run",
    "run_batch",
    "run_configs",
    "schedules",
    "seed_keys",
    "sgd",
]
