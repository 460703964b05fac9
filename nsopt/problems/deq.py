# TEMPORARY SHIM: delete after merge (nsopt/papers/deq_digits.py imports this path and reads
# solve_stats(...).converged / .residual / .num_steps; the layer moved to nsopt.layers.deq, the
# problem to nsopt.problems.deq_digits, whose solve_stats returns an nsopt.failures.Solution).
"""Deprecated path of :mod:`nsopt.layers.deq` and :mod:`nsopt.problems.deq_digits`."""

from typing import Any, NamedTuple

from jax import Array

from nsopt.layers.deq import *  # noqa: F401,F403
from nsopt.problems.deq_digits import DEQClassifier  # noqa: F401
from nsopt.problems.deq_digits import DEQDigits as _DEQDigits
from nsopt.problems.deq_digits import deq_digits as _deq_digits


class _Stats(NamedTuple):
    z: Array
    residual: Array
    num_steps: Array
    converged: Array


class DEQDigits(_DEQDigits):
    def solve_stats(self, w: Any, split: str = "test") -> _Stats:
        sol = super().solve_stats(w, split)
        return _Stats(sol.value, sol.stats["residual"], sol.stats["num_steps"], sol.successful)


def deq_digits(**kwargs: Any) -> DEQDigits:
    p = _deq_digits(**kwargs)
    return DEQDigits(p.x_train, p.y_train, p.x_test, p.y_test, p.batch_size, p.module)
