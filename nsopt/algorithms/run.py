"""Running an algorithm: one ``lax.scan`` per run, recording every ``record_every`` steps.

``run`` is a pure, traceable function (``num_steps`` and ``record_every``
static): ``jax.vmap`` it over ``w0``, ``key`` and the scale to run a batch as
one program, or use :func:`run_batch` for the common seeds x inits x scales
grid.  Memory is ``O(num_steps / record_every)``: only recorded points are kept.

Noise is counter based: ``xi_k = sampler(jax.random.fold_in(key, k))``, so a run
depends only on its key, never on ``record_every`` or on the batch around it.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt.algorithms.base import Algorithm, Oracle, PyTree

Sampler = Callable[[Array], Any]
Objective = Callable[[PyTree], Array]

__all__ = ["Trajectory", "run", "run_batch", "compile_batch", "seed_keys", "check_steps"]


class Trajectory(eqx.Module):
    """Recorded iterates of a run (leading axis: record index ``i``; batch axes before it).

    Attributes:
        w: ``w_{i * record_every}``, ``i = 0 .. num_steps // record_every`` (``w_0`` included).
        tau: interpolation times ``tau_k = sum_{j<k} scale * alpha_j`` at the same ``k``.
        k: the iteration indices ``i * record_every``.
        y: heavy ball's momentum ``y_k`` at the same ``k`` (``None`` for SGD).
        objective: ``F(w_k)`` when an objective was given to :func:`run` (else ``None``).
        diverged_step: first ``k`` at which an iterate (or momentum) was NaN/inf; ``-1`` if none.
    """

    w: PyTree
    tau: Array
    k: Array
    y: PyTree = None
    objective: Array | None = None
    diverged_step: Array = eqx.field(default_factory=lambda: jnp.asarray(-1, jnp.int32))

    @property
    def diverged(self) -> Array:
        """``True`` for runs whose iterates became NaN/inf (see ``diverged_step``)."""
        return self.diverged_step >= 0


def check_steps(num_steps: Any, record_every: Any) -> None:
    """Validate the static loop sizes; errors name the value and what is allowed."""
    for name, v in (("num_steps", num_steps), ("record_every", record_every)):
        try:
            operator.index(v)
        except TypeError:
            raise TypeError(f"{name} must be a Python int (static), got {v!r}") from None
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    if record_every > num_steps:
        raise ValueError(
            f"record_every={record_every} exceeds num_steps={num_steps}: allowed values are "
            f"divisors of num_steps in [1, {num_steps}]"
        )
    if num_steps % record_every:
        raise ValueError(
            f"record_every={record_every} does not divide num_steps={num_steps}: allowed values "
            f"are the divisors of num_steps (e.g. 1, {_some_divisor(num_steps)}, {num_steps})"
        )


def _some_divisor(n: int) -> int:
    for d in (10, 100, 5, 2, 4, 8, 3):
        if n % d == 0 and d < n:
            return d
    return 1


def _all_finite(tree: PyTree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def run(
    algorithm: Algorithm,
    oracle: Oracle,
    sampler: Sampler,
    w0: PyTree,
    key: Array,
    num_steps: int,
    record_every: int = 1,
    *,
    objective: Objective | None = None,
) -> Trajectory:
    """Run ``algorithm`` for ``num_steps`` iterations from ``w0`` and record its trajectory.

    ``oracle(w, xi)`` returns a pytree shaped like ``w`` (an element of a
    conservative field); ``sampler(key)`` returns ``xi``; ``xi_k =
    sampler(fold_in(key, k))``.  If ``objective`` (e.g. the problem's full
    ``F``) is given it is evaluated at the recorded points only.

    NaN/inf iterates are not an error: the run's ``diverged_step`` records the
    first iteration where they appeared, the rest of a batch is unaffected.
    """
    check_steps(num_steps, record_every)
    if not isinstance(algorithm, Algorithm):
        raise TypeError(
            f"algorithm must be an nsopt algorithm (nsopt.sgd(...) or nsopt.heavy_ball(...)), "
            f"got {algorithm!r}"
        )
    w0 = jax.tree.map(lambda x: jnp.asarray(x, jnp.result_type(x, float)), w0)

    def sample(j: Array) -> Any:
        return sampler(jax.random.fold_in(key, j))

    state0 = algorithm.init(oracle, w0, sample)
    tau0 = jnp.zeros((), jnp.result_type(algorithm.step_size(jnp.asarray(0)), float))
    k0 = jnp.asarray(0, jnp.int32)
    bad0 = jnp.where(_all_finite(state0), -1, 0).astype(jnp.int32)

    def one_step(carry, _):
        state, tau, k, bad = carry
        new = algorithm.step(oracle, state, k, sample)
        tau = tau + algorithm.step_size(k).astype(tau.dtype)
        bad = jnp.where((bad < 0) & ~_all_finite(new), k + 1, bad)
        return (new, tau, k + 1, bad), None

    def record(carry) -> dict:
        state, tau, k, _ = carry
        out = {"w": state.w, "tau": tau, "k": k}
        if hasattr(state, "y"):
            out["y"] = state.y
        if objective is not None:
            out["objective"] = objective(state.w)
        return out

    def block(carry, _):
        carry, _ = jax.lax.scan(one_step, carry, None, length=record_every)
        return carry, record(carry)

    carry0 = (state0, tau0, k0, bad0)
    first = record(carry0)
    carry, rest = jax.lax.scan(block, carry0, None, length=num_steps // record_every)
    recs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b], axis=0), first, rest)
    return Trajectory(
        w=recs["w"],
        tau=recs["tau"],
        k=recs["k"],
        y=recs.get("y"),
        objective=recs.get("objective"),
        diverged_step=carry[3],
    )


def seed_keys(seeds: int | Sequence[int] | Array) -> Array:
    """Run keys for a batch: ``jax.random.key(seed)`` for each seed.

    An int ``n`` means seeds ``0 .. n-1``.  A key array is passed through.
    """
    if isinstance(seeds, jax.Array) and jnp.issubdtype(seeds.dtype, jax.dtypes.prng_key):
        return seeds
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 (a count) or a list of ints, got {seeds}")
        seeds = np.arange(int(seeds))
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or seeds.size == 0 or not np.issubdtype(seeds.dtype, np.integer):
        raise ValueError(f"seeds must be a positive count or a non-empty list of ints, got {seeds!r}")
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))


def run_batch(
    algorithm: Algorithm,
    oracle: Oracle,
    sampler: Sampler,
    w0: PyTree,
    seeds: int | Sequence[int] | Array,
    num_steps: int,
    record_every: int = 1,
    *,
    scales: Sequence[float] | Array | None = None,
    objective: Objective | None = None,
) -> Trajectory:
    """The seeds x initializations x scales grid as one jitted, vmapped program.

    ``w0`` carries the initializations along a leading axis (every leaf);
    ``seeds`` is a count, a list of ints or a key array; ``scales`` defaults to
    the algorithm's own scale.  The result has leading axes
    ``(num_seeds, num_inits, num_scales, num_records, ...)``; entry
    ``[i, j, l]`` is exactly ``run(algorithm.with_scale(scales[l]), oracle,
    sampler, w0[j], seed_keys(seeds)[i], ...)``.  Runs with the same seed share
    their noise sequence (common random numbers across inits and scales).
    """
    args = _grid_args(algorithm, oracle, sampler, w0, seeds, num_steps, record_every, scales, objective)
    return _run_grid(*args)


def compile_batch(
    algorithm: Algorithm,
    oracle: Oracle,
    sampler: Sampler,
    w0: PyTree,
    seeds: int | Sequence[int] | Array,
    num_steps: int,
    record_every: int = 1,
    *,
    scales: Sequence[float] | Array | None = None,
    objective: Objective | None = None,
) -> Callable[[], Trajectory]:
    """Compile :func:`run_batch` ahead of time; returns a thunk that runs it.

    Splits compile time from run time (the CLI reports both)::

        go = compile_batch(...)   # traces and compiles
        traj = go()               # runs the compiled program
    """
    args = _grid_args(algorithm, oracle, sampler, w0, seeds, num_steps, record_every, scales, objective)
    compiled = _run_grid.lower(*args).compile()
    return lambda: compiled(*args)


def _grid_args(algorithm, oracle, sampler, w0, seeds, num_steps, record_every, scales, objective):
    check_steps(num_steps, record_every)
    keys = seed_keys(seeds)
    leaves = jax.tree.leaves(w0)
    if not leaves:
        raise ValueError("w0 must be a non-empty pytree of arrays with a leading init axis")
    n_inits = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(n_inits) != 1 or None in n_inits or 0 in n_inits:
        raise ValueError(
            "run_batch: every leaf of w0 needs the same non-empty leading axis (the "
            f"initializations); got leading sizes {sorted(map(str, n_inits))}"
        )
    if scales is None:
        scales = jnp.reshape(algorithm.scale, (1,))
    scales = jnp.asarray(scales, jnp.result_type(float))
    if scales.ndim != 1 or scales.size == 0:
        raise ValueError(f"scales must be a non-empty 1-D list of numbers, got shape {scales.shape}")
    return algorithm, oracle, sampler, w0, keys, scales, num_steps, record_every, objective


@eqx.filter_jit
def _run_grid(algorithm, oracle, sampler, w0, keys, scales, num_steps, record_every, objective):
    def single(key, w, s):
        return run(algorithm.with_scale(s), oracle, sampler, w, key, num_steps, record_every,
                   objective=objective)

    over_scales = jax.vmap(single, in_axes=(None, None, 0))
    over_inits = jax.vmap(over_scales, in_axes=(None, 0, None))
    over_seeds = jax.vmap(over_inits, in_axes=(0, None, None))
    return over_seeds(keys, w0, scales)
