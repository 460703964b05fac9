"""Problems: ``loss(w, xi)``, ``sampler``, ``F``, ``field``, ``dim``, ``init`` bundled.

:func:`make` builds one by name (the CLI's ``problem`` config group):
``ring`` (2-D toy), ``relu_digits`` (ReLU MLP on load_digits), ``deq_digits``
(monotone deep equilibrium network on load_digits).  Solution maps and implicit
layers (the Lasso, the DEQ layer) live in :mod:`nsopt.layers`.
"""

from __future__ import annotations

from typing import Any, Callable

from nsopt.problems.base import Problem
from nsopt.problems.deq_digits import DEQDigits, deq_digits
from nsopt.problems.kinked_line import KinkedLine, kinked_line
from nsopt.problems.relu_net import MLP, ReluDigits, load_digits_split, relu_digits
from nsopt.problems.signed_abs import SignedAbs, signed_abs
from nsopt.problems.toy import Ring, ring

REGISTRY: dict[str, Callable[..., Problem]] = {
    "ring": ring,
    "relu_digits": relu_digits,
    "deq_digits": deq_digits,
    "kinked_line": kinked_line,
    "signed_abs": signed_abs,
}

__all__ = ["DEQDigits", "KinkedLine", "MLP", "Problem", "REGISTRY", "ReluDigits", "Ring", "SignedAbs",
           "deq_digits", "kinked_line", "load_digits_split", "make", "register", "relu_digits", "ring",
           "signed_abs"]


def register(name: str, factory: Callable[..., Problem]) -> None:
    """Make ``factory`` available to :func:`make` and the CLI as ``problem.name=<name>``."""
    REGISTRY[name] = factory


def make(name: str, **kwargs: Any) -> Problem:
    """Build the problem ``name`` with keyword parameters; errors list the allowed names."""
    if name not in REGISTRY:
        raise ValueError(f"unknown problem {name!r}; allowed: {sorted(REGISTRY)}")
    try:
        return REGISTRY[name](**kwargs)
    except TypeError as e:
        import inspect

        params = list(inspect.signature(REGISTRY[name]).parameters)
        raise TypeError(f"problem {name!r}: {e}; allowed parameters: {params}") from None
