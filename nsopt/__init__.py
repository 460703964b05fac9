"""nsopt: convergence experiments for nonsmooth stochastic optimization (JAX).

The data path::

    problem -> oracle -> algorithm -> run (scan; vmap over a batch) -> Trajectory

Public API: :func:`sgd`, :func:`heavy_ball`, :func:`run`, :func:`run_batch`,
:class:`Trajectory`, and the modules :mod:`schedules`, :mod:`oracles`,
:mod:`problems`, :mod:`flow` (the ODE approach), :mod:`implicit` (nonsmooth
implicit differentiation), :mod:`nonsmooth` (kink primitives and prox
operators), :mod:`layers` (differentiable solution maps: Lasso, monotone DEQ)
and :mod:`prox` (the module :mod:`nsopt.nonsmooth.prox`).
"""

import sys as _sys

from nsopt.cpu_threads import ensure_cpu_pool as _ensure_cpu_pool

_ensure_cpu_pool()  # several CPU devices: one pool thread more than devices (nsopt/cpu_threads.py)

from nsopt import algorithms, failures, flow, implicit, layers, nonsmooth, oracles, problems, schedules
from nsopt.nonsmooth import prox

# ``import nsopt.prox`` / ``from nsopt.prox import box`` resolve to the same module object.
_sys.modules[__name__ + ".prox"] = prox
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
    "failures",
    "implicit",
    "layers",
    "nonsmooth",
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
