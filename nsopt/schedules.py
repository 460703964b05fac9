"""Step-size schedules ``k -> alpha_k`` (docs/theory.md §5).

A schedule is any callable taking the iteration counter ``k = 0, 1, 2, ...``
(an integer array, possibly traced) and returning ``alpha_k``; optax schedules
qualify.  The two built-ins are equinox modules whose parameters are array
leaves, so they can be passed through ``jit`` and ``vmap`` without being
baked into the compiled program as constants.

The convergence theory (Benaim 1999; Bolte-Pauwels 2020; Bolte-Le-Pauwels
2022) asks for ``alpha_k > 0``, ``sum alpha_k = inf`` and
``sum alpha_k^2 < inf``: ``a / (k + b)^p`` with ``p in (1/2, 1]``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Union

import equinox as eqx
import jax.numpy as jnp
from jax import Array

from nsopt import validate

Schedule = Callable[[Array], Array]
ScheduleLike = Union[Schedule, float, int]

__all__ = [
    "Schedule",
    "ScheduleLike",
    "Constant",
    "InversePower",
    "constant",
    "inverse_power",
    "as_schedule",
    "in_l2_minus_l1",
    "TheoryWarning",
]


class TheoryWarning(UserWarning):
    """A setting lies outside the hypotheses of the convergence theory."""


def _positive(name: str, value: Any) -> Any:
    """A finite number > 0 (concrete values checked, traced ones passed through)."""
    return validate.number(name, value, low=0.0, open_low=True)


class Constant(eqx.Module):
    """``alpha_k = a`` for every ``k``.

    A constant step is *not* in ``l^2 \\ l^1``: SGD then does not shadow the
    flow asymptotically (the APT distance stays of order ``sqrt(a)``).
    """

    a: Array

    def __call__(self, k: Array) -> Array:
        return jnp.broadcast_to(self.a, jnp.shape(k)).astype(jnp.result_type(self.a, float))


class InversePower(eqx.Module):
    """``alpha_k = a / (k + b)^p``, ``k = 0, 1, 2, ...``.

    In ``l^2 \\ l^1`` exactly when ``p in (1/2, 1]`` (the step condition,
    docs/theory.md §5).
    """

    a: Array
    b: Array
    p: Array

    def __call__(self, k: Array) -> Array:
        dtype = jnp.result_type(self.a, float)
        k = jnp.asarray(k, dtype)
        return self.a / (k + self.b) ** self.p


def constant(a: float) -> Constant:
    """``alpha_k = a``.  ``a`` must be > 0 (checked when it is concrete)."""
    return Constant(jnp.asarray(_positive("a", a), dtype=jnp.result_type(float)))


def inverse_power(a: float, b: float = 1.0, p: float = 1.0) -> InversePower:
    """``alpha_k = a / (k + b)^p``.

    Raises ``ValueError`` for ``a <= 0``, ``b <= 0`` (``alpha_0`` undefined or
    negative) or ``p`` outside ``(0, 1]``; warns (:class:`TheoryWarning`) when
    ``p <= 1/2``, i.e. outside ``l^2 \\ l^1``.
    """
    a, b = _positive("a", a), _positive("b", b)
    p = validate.number("p", p, 0.0, 1.0, open_low=True)
    if not validate.is_traced(p):
        if p <= 0.5:
            warnings.warn(
                f"inverse_power p={p!r} is outside (1/2, 1]: the schedule is not in l^2 \\ l^1, "
                "so the convergence theory (docs/theory.md §5) does not apply",
                TheoryWarning,
                stacklevel=2,
            )
    f = jnp.result_type(float)
    return InversePower(jnp.asarray(a, f), jnp.asarray(b, f), jnp.asarray(p, f))


def as_schedule(alpha: ScheduleLike, name: str = "alpha") -> Schedule:
    """Turn a float into :func:`constant`; pass callables through unchanged."""
    if callable(alpha):
        return alpha
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        return constant(_positive(name, alpha))
    try:  # a (possibly traced) array scalar, e.g. under vmap
        arr = jnp.asarray(alpha)
    except (TypeError, ValueError):
        arr = None
    if arr is not None and arr.ndim == 0:
        return Constant(arr.astype(jnp.result_type(arr, float)))
    raise validate.BadValue(name, alpha, f"it must be a schedule (a callable k -> {name}_k) or a number > 0")


def in_l2_minus_l1(schedule: Schedule, num_terms: int = 10**6) -> bool:
    """Heuristic check that ``sum alpha_k = inf`` and ``sum alpha_k^2 < inf``.

    Exact for the built-in schedules; for other callables, fits the decay
    exponent ``p`` of ``alpha_k ~ k^-p`` on ``k in [num_terms/100, num_terms]``
    and tests ``p in (1/2, 1]`` (with a small tolerance).
    """
    if isinstance(schedule, Constant):
        return False
    if isinstance(schedule, InversePower):
        p = float(schedule.p)
        return 0.5 < p <= 1.0
    k1, k2 = num_terms // 100, num_terms
    a1, a2 = float(schedule(jnp.asarray(k1))), float(schedule(jnp.asarray(k2)))
    if not (a1 > 0 and a2 > 0):
        return False
    p = math.log(a1 / a2) / math.log(k2 / k1)
    return 0.5 + 1e-2 < p <= 1.0 + 1e-2
