"""Stochastic first-order methods driven by conservative-gradient oracles."""

from nsopt.algorithms.base import Algorithm
from nsopt.algorithms.devices import replicate, shard_leading
from nsopt.algorithms.heavy_ball import HeavyBall, HeavyBallState, Proportional, heavy_ball, proportional
from nsopt.algorithms.run import (
    CompiledBatch,
    RunState,
    Trajectory,
    advance,
    check_steps,
    compile_batch,
    progress_chunks,
    run,
    run_batch,
    run_configs,
    seed_keys,
    shard_batch,
    start,
)
from nsopt.algorithms.sgd import SGD, SGDState, sgd

__all__ = [
    "Algorithm",
    "SGD",
    "SGDState",
    "HeavyBall",
    "HeavyBallState",
    "Proportional",
    "Trajectory",
    "CompiledBatch",
    "RunState",
    "advance",
    "progress_chunks",
    "shard_batch",
    "shard_leading",
    "replicate",
    "start",
    "check_steps",
    "compile_batch",
    "heavy_ball",
    "proportional",
    "run",
    "run_batch",
    "run_configs",
    "seed_keys",
    "sgd",
]
