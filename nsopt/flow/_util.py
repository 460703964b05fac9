"""Small pytree and validation helpers shared by the flow modules (private)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

PyTree = Any

__all__ = [
    "batch_shape",
    "check_trajectory",
    "concrete_positive",
    "flatten_events",
    "map_leading",
    "static_int",
    "tree_axpy",
    "tree_sq_norm",
]


def tree_axpy(a: Array, x: PyTree, y: PyTree) -> PyTree:
    """``a * x + y`` leafwise; ``a`` broadcasts against the leading axes of the leaves."""
    return jax.tree.map(lambda xi, yi: yi + _lead(a, xi) * xi, x, y)


def _lead(a: Array, x: Array) -> Array:
    """Reshape ``a`` (shape ``L``) so that it broadcasts against the leading axes ``L`` of ``x``."""
    a = jnp.asarray(a)
    return jnp.reshape(a, a.shape + (1,) * (jnp.ndim(x) - a.ndim))


def tree_sq_norm(x: PyTree, num_lead: int) -> Array:
    """Squared Euclidean norm over every axis after the first ``num_lead`` of every leaf."""
    total = None
    for leaf in jax.tree.leaves(x):
        axes = tuple(range(num_lead, jnp.ndim(leaf)))
        s = jnp.sum(jnp.square(leaf), axis=axes)
        total = s if total is None else total + s
    if total is None:
        raise ValueError("expected a non-empty pytree of arrays, got no leaves")
    return total


def flatten_events(x: PyTree, num_lead: int) -> Array:
    """Concatenate the event part of every leaf: shape ``lead + (D,)`` (``ravel_pytree`` order)."""
    leaves = jax.tree.leaves(x)
    if not leaves:
        raise ValueError("expected a non-empty pytree of arrays, got no leaves")
    lead = jnp.shape(leaves[0])[:num_lead]
    return jnp.concatenate([jnp.reshape(leaf, lead + (-1,)) for leaf in leaves], axis=-1)


def map_leading(fn: Callable, num_lead: int) -> Callable:
    """``vmap`` ``fn`` over ``num_lead`` leading axes of every argument."""
    for _ in range(num_lead):
        fn = jax.vmap(fn)
    return fn


def batch_shape(traj: Any) -> tuple[int, ...]:
    """Batch axes of a trajectory: ``tau.shape[:-1]`` (``()`` for a single run)."""
    return tuple(jnp.shape(traj.tau)[:-1])


def check_trajectory(traj: Any, where: str) -> None:
    """Raise a clear error unless ``traj`` looks like an :class:`nsopt.Trajectory`."""
    if not (hasattr(traj, "tau") and hasattr(traj, "w")):
        raise TypeError(
            f"{where}: expected an nsopt.Trajectory (from nsopt.run / nsopt.run_batch or "
            f"nsopt.flow.flow), got {type(traj).__name__}"
        )
    tau = jnp.asarray(traj.tau)
    if tau.ndim < 1 or tau.shape[-1] < 2:
        raise ValueError(
            f"{where}: the trajectory needs at least 2 recorded points along its last tau axis, "
            f"got tau of shape {tau.shape}"
        )
    lead = tau.shape
    for i, leaf in enumerate(jax.tree.leaves(traj.w)):
        if jnp.shape(leaf)[: len(lead)] != lead:
            raise ValueError(
                f"{where}: leaf {i} of traj.w has shape {jnp.shape(leaf)}, whose leading axes "
                f"should equal tau's shape {lead}"
            )


def concrete_positive(value: Any, name: str, where: str) -> float:
    """``float(value)`` for a concrete finite ``value > 0``; a clear error otherwise."""
    try:
        v = float(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        raise TypeError(
            f"{where}: {name} must be a concrete number (it fixes the static number of flow "
            f"steps), got {value!r}"
        ) from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{where}: {name} must be a finite number > 0, got {value!r}")
    return v


def static_int(value: Any, name: str, where: str, minimum: int = 1) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{where}: {name} must be a Python int (static), got {value!r}") from None
    if v < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {v}")
    return v
