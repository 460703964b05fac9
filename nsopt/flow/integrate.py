"""Fixed-step integrators for the limit dynamics of SGD and heavy ball (docs/theory.md §5).

Gradient flow of the differential inclusion, with ``field(w) in D_F(w)``::

    g' = -field(g)                                           (SGD's limit)

Heavy-ball limit system (Le 2023), with Lyapunov function ``F(w) + r/2 ||y||^2``::

    w' = -r y,   y' = field(w) - y                           (heavy ball's limit)

Each scheme is one ``lax.scan`` of explicit steps ``x <- step(f, x, h)``
(Euler ``x + h f(x)``; Heun; classical RK4).  The step ``h`` is a traced array
and the number of steps is static, so one compiled program serves every ``h``
of a given step count and ``jax.vmap`` batches initial points.

**Discontinuous fields.**  The fixed-step path is the default on purpose:
adaptive solvers (e.g. diffrax with a PID controller) shrink their step to
zero at a discontinuity of ``field`` and stall.  On a *sliding mode* (a
surface where the field points towards the surface from both sides, e.g.
``F(w) = |w|`` at ``0``) explicit schemes chatter: the iterates cross the
surface at every step and stay within ``O(h * sup ||field||)`` of it (for
``|w|`` with Euler: within ``h`` of ``0`` once it is reached).  Filippov
solutions slide along the surface; the fixed-step path approximates them
within that chattering band.  Higher-order schemes (Heun, RK4) do not gain
order across a discontinuity: use them for smooth checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from nsopt.algorithms.run import Trajectory
from nsopt.flow._util import static_int, tree_axpy

PyTree = Any
Field = Callable[[PyTree], PyTree]
VectorField = Callable[[PyTree], PyTree]

__all__ = [
    "METHODS",
    "RK4",
    "Euler",
    "Heun",
    "Scheme",
    "as_method",
    "flow",
    "gradient_vector_field",
    "heavy_ball_flow",
    "heavy_ball_vector_field",
    "integrate",
]


class Scheme(eqx.Module):
    """An explicit one-step scheme for the autonomous ODE ``x' = f(x)``."""

    order: ClassVar[int]

    def step(self, f: VectorField, x: PyTree, h: Array) -> PyTree:
        raise NotImplementedError


class Euler(Scheme):
    """``x_{n+1} = x_n + h f(x_n)`` (order 1; the default, robust on discontinuous fields)."""

    order: ClassVar[int] = 1

    def step(self, f: VectorField, x: PyTree, h: Array) -> PyTree:
        return tree_axpy(h, f(x), x)


class Heun(Scheme):
    """Explicit trapezoid: ``x + h/2 (f(x) + f(x + h f(x)))`` (order 2 on smooth fields)."""

    order: ClassVar[int] = 2

    def step(self, f: VectorField, x: PyTree, h: Array) -> PyTree:
        k1 = f(x)
        k2 = f(tree_axpy(h, k1, x))
        return jax.tree.map(lambda xi, a, b: xi + 0.5 * h * (a + b), x, k1, k2)


class RK4(Scheme):
    """Classical Runge-Kutta ``x + h/6 (k1 + 2 k2 + 2 k3 + k4)`` (order 4 on smooth fields)."""

    order: ClassVar[int] = 4

    def step(self, f: VectorField, x: PyTree, h: Array) -> PyTree:
        k1 = f(x)
        k2 = f(tree_axpy(0.5 * h, k1, x))
        k3 = f(tree_axpy(0.5 * h, k2, x))
        k4 = f(tree_axpy(h, k3, x))
        return jax.tree.map(
            lambda xi, a, b, c, d: xi + (h / 6) * (a + 2 * b + 2 * c + d), x, k1, k2, k3, k4
        )


METHODS: dict[str, Scheme] = {"euler": Euler(), "heun": Heun(), "rk4": RK4()}


def as_method(method: str | Scheme) -> Scheme:
    """``"euler" | "heun" | "rk4"`` or a :class:`Scheme` instance."""
    if isinstance(method, Scheme):
        return method
    if isinstance(method, str) and method.lower() in METHODS:
        return METHODS[method.lower()]
    raise ValueError(f"method must be one of {sorted(METHODS)} or a Scheme, got {method!r}")


def gradient_vector_field(field: Field) -> VectorField:
    """``w -> -field(w)``: the right-hand side of ``g' in -D_F(g)``."""
    return lambda w: jax.tree.map(jnp.negative, field(w))


def heavy_ball_vector_field(field: Field, r: Array, clock: Array = 1.0) -> VectorField:
    """``(w, y) -> clock * (-r y, field(w) - y)``.

    ``clock = 1`` is the heavy-ball system in its own time ``u``; the same
    orbits on the time ``t = c u`` use ``clock = 1 / c`` (see
    :func:`nsopt.flow.apt_distance`, which runs on ``tau = r u``).
    """

    def f(state):
        w, y = state
        dw = jax.tree.map(lambda yi: -clock * r * yi, y)
        dy = jax.tree.map(lambda v, yi: clock * (v.astype(yi.dtype) - yi), field(w), y)
        return dw, dy

    return f


def _as_float_tree(x: PyTree) -> PyTree:
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.result_type(a, float)), x)


def integrate(
    vector_field: VectorField,
    x0: PyTree,
    dt: float | Array,
    num_steps: int,
    *,
    method: str | Scheme = "euler",
    save_every: int = 1,
) -> tuple[Array, PyTree]:
    """Integrate ``x' = vector_field(x)`` from ``x0`` with ``num_steps`` fixed steps ``dt``.

    Returns ``(t, xs)``: ``t[i] = i * save_every * dt`` and the states at those
    times stacked along a new leading axis (``x0`` included), i.e.
    ``num_steps // save_every + 1`` saved points.  Traceable: ``dt`` may be a
    traced array; ``num_steps``, ``save_every`` and ``method`` are static.
    """
    num_steps = static_int(num_steps, "num_steps", "integrate")
    save_every = static_int(save_every, "save_every", "integrate")
    if num_steps % save_every:
        raise ValueError(
            f"integrate: save_every={save_every} must divide num_steps={num_steps}"
        )
    scheme = as_method(method)
    x0 = _as_float_tree(x0)
    dtype = jnp.result_type(*jax.tree.leaves(x0), float)
    h = jnp.asarray(dt, dtype)

    def one(x, _):
        return scheme.step(vector_field, x, h), None

    def block(x, _):
        x, _ = jax.lax.scan(one, x, None, length=save_every)
        return x, x

    _, rest = jax.lax.scan(block, x0, None, length=num_steps // save_every)
    xs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b], axis=0), x0, rest)
    t = h * jnp.arange(0, num_steps + 1, save_every, dtype=dtype)
    return t, xs


def _first_nonfinite(k: Array, *trees: PyTree) -> Array:
    ok = None
    for leaf in jax.tree.leaves(trees):
        f = jnp.all(jnp.isfinite(jnp.reshape(leaf, (leaf.shape[0], -1))), axis=-1)
        ok = f if ok is None else ok & f
    bad = ~ok
    return jnp.where(jnp.any(bad), k[jnp.argmax(bad)], -1).astype(jnp.int32)


def _to_trajectory(t: Array, w: PyTree, y: PyTree, save_every: int, F: Callable | None) -> Trajectory:
    k = jnp.arange(t.shape[0], dtype=jnp.int32) * save_every
    obj = jax.vmap(F)(w) if F is not None else None
    return Trajectory(w=w, tau=t, k=k, y=y, objective=obj, diverged_step=_first_nonfinite(k, w, y))


def _batched(fn: Callable, batch_axes: int) -> Callable:
    batch_axes = static_int(batch_axes, "batch_axes", "flow", minimum=0)
    for _ in range(batch_axes):
        fn = jax.vmap(fn, in_axes=(None, 0, None, None))
    return fn


@eqx.filter_jit
def _flow(field, w0, dt, num_steps, method, save_every, batch_axes, objective):
    def single(field, w, dt, _):
        t, ws = integrate(gradient_vector_field(field), w, dt, num_steps, method=method,
                          save_every=save_every)
        return _to_trajectory(t, ws, None, save_every, objective)

    return _batched(single, batch_axes)(field, w0, dt, None)


def flow(
    field: Field,
    w0: PyTree,
    dt: float | Array,
    num_steps: int,
    *,
    method: str | Scheme = "euler",
    save_every: int = 1,
    batch_axes: int = 0,
    objective: Callable[[PyTree], Array] | None = None,
) -> Trajectory:
    """The flow ``g' = -field(g)``, ``g(0) = w0``, as a :class:`nsopt.Trajectory`.

    ``tau`` holds the flow times ``i * save_every * dt`` and ``k`` the step
    indices, so the flow can be analysed like iterates (``interpolate``,
    ``lyapunov``, figures).  The first ``batch_axes`` axes of every leaf of
    ``w0`` index initial points (vmapped); they lead the result's axes.
    ``objective`` (e.g. ``problem.F``) is recorded when given.
    """
    w0 = _as_float_tree(w0)
    dt = jnp.asarray(dt, jnp.result_type(*jax.tree.leaves(w0), float))
    return _flow(field, w0, dt, num_steps, as_method(method), save_every, batch_axes, objective)


@eqx.filter_jit
def _hb_flow(field, w0, y0, r, dt, num_steps, method, save_every, batch_axes, objective):
    def single(field, wy, dt, r):
        vf = heavy_ball_vector_field(field, r)
        t, (ws, ys) = integrate(vf, wy, dt, num_steps, method=method, save_every=save_every)
        return _to_trajectory(t, ws, ys, save_every, objective)

    fn = single
    for _ in range(static_int(batch_axes, "batch_axes", "heavy_ball_flow", minimum=0)):
        fn = jax.vmap(fn, in_axes=(None, 0, None, None))
    return fn(field, (w0, y0), dt, r)


def heavy_ball_flow(
    field: Field,
    w0: PyTree,
    y0: PyTree,
    r: float | Array,
    dt: float | Array,
    num_steps: int,
    *,
    method: str | Scheme = "euler",
    save_every: int = 1,
    batch_axes: int = 0,
    objective: Callable[[PyTree], Array] | None = None,
) -> Trajectory:
    """Heavy ball's limit system ``w' = -r y, y' = field(w) - y`` from ``(w0, y0)``.

    Integrated in the system's own time ``u`` (``tau`` of the result holds
    ``u``).  Its Lyapunov function is ``E = F(w) + r/2 ||y||^2``:
    ``dE/du = -r ||y||^2`` (Le 2023; docs/theory.md §5).  ``r`` may be traced.
    Iterates of ``nsopt.heavy_ball(proportional(c, alpha), scale=s)`` follow
    this system on their clock ``tau = r u`` with ``r = s / c``
    (:func:`nsopt.flow.heavy_ball_r`).
    """
    if isinstance(r, (int, float)) and not r > 0:
        raise ValueError(f"heavy_ball_flow: r must be > 0, got {r!r}")
    w0 = _as_float_tree(w0)
    y0 = jax.tree.map(lambda y, w: jnp.asarray(y, jnp.result_type(w)), y0, w0)
    dtype = jnp.result_type(*jax.tree.leaves(w0), float)
    r, dt = jnp.asarray(r, dtype), jnp.asarray(dt, dtype)
    return _hb_flow(field, w0, y0, r, dt, num_steps, as_method(method), save_every, batch_axes,
                    objective)
