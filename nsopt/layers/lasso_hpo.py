"""Held-out criteria of the Lasso and hyperparameter optimization on ``theta``.

Bilevel problem (arXiv 2106.04350, §6; ``docs/theory.md``): minimize over ``theta`` a held-out
criterion ``C(theta) = mse(x^(theta))`` of the Lasso solution ``x^(theta)``.  ``C`` is
piecewise smooth (the Lasso path is piecewise linear); its hypergradient comes from the
support-restricted implicit derivative of :func:`nsopt.layers.lasso.solution`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.typing import ArrayLike

from nsopt.layers.lasso import LassoConfig, solution

__all__ = [
    "HPOResult",
    "grid_search",
    "held_out_criterion",
    "held_out_mse",
    "hypergradient_descent",
    "kfold_criterion",
    "kfold_masks",
]


def held_out_mse(x: ArrayLike, A_val: ArrayLike, b_val: ArrayLike) -> Array:
    """``mean((A_val x - b_val)^2)``."""
    return jnp.mean((jnp.asarray(A_val) @ x - b_val) ** 2)


def held_out_criterion(
    theta: ArrayLike, x0: ArrayLike | None, A: ArrayLike, b: ArrayLike, A_val: ArrayLike,
    b_val: ArrayLike, *, config: LassoConfig = LassoConfig(),
) -> tuple[Array, Array]:
    """``(mse(A_val x^(theta) - b_val), x^(theta))``, differentiable in ``theta`` (and data).

    ``x0`` warm-starts the solver (not differentiated).  Use with
    ``jax.value_and_grad(..., has_aux=True)``.
    """
    x = solution(A, b, theta, x0=x0, config=config)
    return held_out_mse(x, A_val, b_val), lax.stop_gradient(x)


def kfold_masks(n: int, folds: int, *, seed: int | None = 0) -> np.ndarray:
    """Boolean ``(folds, n)`` array: row ``i`` marks the held-out rows of fold ``i``.

    Rows are permuted with ``seed`` (``None``: no permutation) then cut into ``folds``
    contiguous blocks of sizes differing by at most one.
    """
    if not (isinstance(folds, int) and 2 <= folds <= n):
        raise ValueError(f"folds must be an int in [2, n={n}], got {folds!r}")
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    masks = np.zeros((folds, n), bool)
    for i, block in enumerate(np.array_split(order, folds)):
        masks[i, block] = True
    return masks


def kfold_criterion(
    theta: ArrayLike, x0s: ArrayLike | None, A: ArrayLike, b: ArrayLike, masks: ArrayLike, *,
    config: LassoConfig = LassoConfig(),
) -> tuple[Array, Array]:
    """K-fold cross-validation MSE and the per-fold solutions ``(folds, p)``.

    Fold ``i`` fits ``1/2 ||W_i (A x - b)||^2 + e^theta ||x||_1`` with ``W_i`` zeroing its
    held-out rows (the same Lasso as on the training rows alone: same ``theta`` scaling,
    no division by the number of rows), then scores the mean squared error on the
    held-out rows; the criterion is the mean over folds.  Folds run one after the other
    (``lax.map``: memory of one fold).  ``x0s`` warm-starts each fold.
    """
    A = jnp.asarray(A)
    b = jnp.asarray(b, A.dtype)
    masks = jnp.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != A.shape[0]:
        raise ValueError(f"masks must have shape (folds, {A.shape[0]}), got {masks.shape}")
    folds = masks.shape[0]
    x0s = jnp.zeros((folds, A.shape[1]), A.dtype) if x0s is None else jnp.asarray(x0s, A.dtype)

    def one(args):
        mask, x0 = args
        keep = (~mask).astype(A.dtype)
        x = solution(A * keep[:, None], b * keep, theta, x0=x0, config=config)
        err = jnp.where(mask, (A @ x - b) ** 2, 0.0)
        return jnp.sum(err) / jnp.sum(mask), x

    mses, xs = lax.map(one, (masks, x0s))
    return jnp.mean(mses), lax.stop_gradient(xs)


def _theta(t: ArrayLike) -> Array:
    """A strongly typed float scalar (weak types would compile a second program)."""
    return jnp.asarray(t, jnp.result_type(float))


class HPOResult(NamedTuple):
    """``theta`` and ``value`` reached; per evaluation: ``thetas``, ``values``, ``times``
    (seconds since the start, after each evaluation); ``evaluations``: criterion calls;
    ``x``: the solution (auxiliary output) at ``theta``."""

    theta: float
    value: float
    thetas: np.ndarray
    values: np.ndarray
    times: np.ndarray
    evaluations: int
    x: Any = None


def hypergradient_descent(
    value_and_grad: Callable[[Array, Any], tuple[tuple[Array, Any], Array]],
    theta0: float,
    x0: Any = None,
    *,
    steps: int = 50,
    first_step: float = 0.5,
    theta_tol: float = 1e-3,
) -> HPOResult:
    """Gradient descent on ``theta`` with warm starts and a bold-driver step size.

    ``value_and_grad(theta, x0) -> ((value, x), grad)`` (e.g. ``jax.jit(jax.value_and_grad(
    held_out_criterion, has_aux=True))`` with the data bound); ``x`` warm-starts the next
    call; pass an initial ``x0`` of the right shape (zeros) so that every call has the same
    argument structure (one compilation).  The first step moves ``theta`` by ``first_step``; a step that lowers the value
    is accepted and the step size grows by 1.2, otherwise it is rejected and halved.  Stops
    after ``steps`` evaluations or when a step moves ``theta`` by less than ``theta_tol``.
    """
    t0 = time.perf_counter()
    theta = _theta(theta0)
    (value, x), g = value_and_grad(theta, x0)
    value, g = float(value), float(g)
    thetas, values, times = [float(theta)], [value], [time.perf_counter() - t0]
    lr = first_step / max(abs(g), 1e-300)
    for _ in range(steps - 1):
        move = -lr * g
        if abs(move) < theta_tol:
            break
        cand = theta + move
        (v, xc), gc = value_and_grad(cand, x)
        v, gc = float(v), float(gc)
        thetas.append(float(cand))
        values.append(v)
        times.append(time.perf_counter() - t0)
        if v < value:
            theta, value, x, g, lr = cand, v, xc, gc, 1.2 * lr
        else:
            lr = 0.5 * lr
    return HPOResult(float(theta), value, np.asarray(thetas), np.asarray(values),
                     np.asarray(times), len(values), x)


def grid_search(
    value: Callable[[Array, Any], tuple[Array, Any]], thetas: ArrayLike, x0: Any = None,
) -> HPOResult:
    """Evaluate ``value(theta, x0) -> (value, x)`` on ``thetas`` in order, warm-starting each
    from the previous solution (order the grid from large to small penalties)."""
    t0 = time.perf_counter()
    vals, times = [], []
    x = best = x0
    for t in np.asarray(thetas, float):
        v, x = value(_theta(t), x)
        vals.append(float(v))
        times.append(time.perf_counter() - t0)
        if len(vals) == 1 or vals[-1] < min(vals[:-1]):  # the first minimum, as argmin
            best = x
    vals_arr = np.asarray(vals)
    i = int(np.argmin(vals_arr))
    return HPOResult(float(np.asarray(thetas)[i]), float(vals_arr[i]),
                     np.asarray(thetas, float), vals_arr, np.asarray(times), len(vals), best)
