"""Stochastic first-order methods driven by conservative-gradient oracles."""

from nsopt.algorithms.base import Algorithm
from nsopt.algorithms.heavy_ball import HeavyBall, HeavyBallState, Proportional, heavy_ball, proportional
from nsopt.algorithms.run import Trajectory, check_steps, compile_batch, run, run_batch, seed_keys
from nsopt.algorithms.sgd import SGD, SGDState, sgd

__all__ = [
    "Algorithm",
    "SGD",
    "SGDState",
    "HeavyBall",
    "HeavyBallState",
    "Proportional",
    "Trajectory",
    "check_steps",
    "compile_batch",
    "heavy_ball",
    "proportional",
    "run",
    "run_batch",
    "seed_keys",
    "sgd",
]
