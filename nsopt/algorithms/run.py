"""Running an algorithm: one ``lax.scan`` per run, recording every ``record_every`` steps.

``run`` is a pure, traceable function (``num_steps`` and ``record_every``
static): ``jax.vmap`` it over ``w0``, ``key`` and the scale to run a batch as
one program, or use :func:`run_batch` for the common seeds x inits x scales
grid.  Memory is ``O(num_steps / record_every)``: only recorded points are kept.

Noise is counter based: ``xi_k = sampler(jax.random.fold_in(key, k))``, so a run
depends only on its key, never on ``record_every`` or on the batch around it.  A sampler
with a true attribute ``takes_step`` is called as ``sampler(key, k)`` with the run key
itself (schemes that couple the steps, e.g. reshuffled epochs:
:mod:`nsopt.problems.samplers`); it too must be a function of ``(key, k)`` only.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt import validate
from nsopt.algorithms.base import Algorithm, Oracle, PyTree
from nsopt.algorithms.devices import is_split, per_device, replicate, shard_batch, shard_leading

Sampler = Callable[[Array], Any]
Objective = Callable[[PyTree], Array]

__all__ = ["Trajectory", "RunState", "CompiledBatch", "run", "start", "advance", "run_batch",
           "compile_batch", "progress_chunks", "shard_batch", "seed_keys", "check_steps", "run_configs"]


class Trajectory(eqx.Module):
    """Recorded iterates of a run (leading axis: record index ``i``; batch axes before it).

    Attributes:
        w: ``w_{i * record_every}``, ``i = 0 .. num_steps // record_every`` (``w_0`` included).
        tau: interpolation times ``tau_k = sum_{j<k} scale * alpha_j`` at the same ``k``.
        k: the iteration indices ``i * record_every``.
        y: heavy ball's momentum ``y_k`` at the same ``k`` (``None`` for SGD).
        objective: ``F(w_k)`` when an objective was given to :func:`run` (else ``None``).
        diverged_step: first ``k`` at which an iterate (or momentum) was NaN/inf; ``-1`` if none.
        r: heavy ball's coupling ``r_k = scale * alpha_k / beta_k`` at the same ``k`` (``None``
            for SGD): the ``r`` of its limit system ``w' = -r y, y' = D_F(w) - y``, constant
            ``scale / c`` for ``beta_k = c alpha_k``.  The flow functions default to its last value.
    """

    w: PyTree
    tau: Array
    k: Array
    y: PyTree = None
    objective: Array | None = None
    diverged_step: Array = eqx.field(default_factory=lambda: jnp.asarray(-1, jnp.int32))
    r: Array | None = None

    @property
    def diverged(self) -> Array:
        """``True`` for runs whose iterates became NaN/inf (see ``diverged_step``)."""
        return self.diverged_step >= 0

    @property
    def finite(self) -> Array:
        """``True`` for runs whose iterates (and momentum) stayed finite: ``~diverged``.

        Select the good runs of a batch with it, e.g. ``traj.objective[..., -1][traj.finite]``.
        """
        return self.diverged_step < 0


def check_steps(num_steps: Any, record_every: Any) -> tuple[int, int]:
    """Validate the static loop sizes (Python or NumPy integers); returns them as ints."""
    n = validate.positive_int("num_steps", num_steps)
    r = validate.positive_int("record_every", record_every)
    if r > n or n % r:
        raise validate.BadValue(
            "record_every", r, f"it must divide num_steps={n} (e.g. 1, {_some_divisor(n)}, {n})")
    return n, r


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

    The whole run is one compiled program (also when called eagerly), so a run
    gives bitwise the same numbers alone as inside a jitted or vmapped batch.
    """
    num_steps, record_every = check_steps(num_steps, record_every)
    return _run_compiled(algorithm, oracle, sampler, w0, key, num_steps, record_every, objective)


@eqx.filter_jit
def _run_compiled(algorithm, oracle, sampler, w0, key, num_steps, record_every, objective):
    carry0 = start(algorithm, oracle, sampler, w0, key)
    first = _record(carry0, objective, algorithm)
    carry, rest = advance(algorithm, oracle, sampler, key, carry0, num_steps // record_every,
                          record_every, objective=objective)
    recs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b], axis=0), first, rest)
    return _trajectory(recs, carry)


class RunState(eqx.Module):
    """Everything needed to continue a run: algorithm state, ``tau_k``, ``k``, divergence step."""

    state: PyTree
    tau: Array
    k: Array
    diverged_step: Array


def start(algorithm: Algorithm, oracle: Oracle, sampler: Sampler, w0: PyTree, key: Array) -> RunState:
    """The state of a run at ``k = 0`` (heavy ball queries ``oracle(w_0, xi_0)`` here)."""
    if not isinstance(algorithm, Algorithm):
        raise TypeError(
            f"algorithm must be an nsopt algorithm (nsopt.sgd(...) or nsopt.heavy_ball(...)), "
            f"got {algorithm!r}"
        )
    w0 = jax.tree.map(lambda x: jnp.asarray(x, jnp.result_type(x, float)), w0)
    state0 = algorithm.init(oracle, w0, _sample_fn(sampler, key))
    tau0 = jnp.zeros((), jnp.result_type(algorithm.step_size(jnp.asarray(0)), float))
    bad0 = jnp.where(_all_finite(state0), -1, 0).astype(jnp.int32)
    return RunState(state0, tau0, jnp.asarray(0, jnp.int32), bad0)


def advance(
    algorithm: Algorithm,
    oracle: Oracle,
    sampler: Sampler,
    key: Array,
    carry: RunState,
    num_records: int,
    record_every: int,
    *,
    objective: Objective | None = None,
) -> tuple[RunState, dict]:
    """``num_records * record_every`` more steps from ``carry``; returns the new state and the
    records taken after each block of ``record_every`` steps (leading axis ``num_records``).

    Chaining ``advance`` calls gives exactly the numbers of one long call (the
    noise depends only on ``key`` and ``k``).
    """
    sample = _sample_fn(sampler, key)

    def one_step(c: RunState, _):
        new = algorithm.step(oracle, c.state, c.k, sample)
        tau = c.tau + algorithm.step_size(c.k).astype(c.tau.dtype)
        bad = jnp.where((c.diverged_step < 0) & ~_all_finite(new), c.k + 1, c.diverged_step)
        return RunState(new, tau, c.k + 1, bad), None

    def block(c: RunState, _):
        c, _ = jax.lax.scan(one_step, c, None, length=record_every)
        return c, _record(c, objective, algorithm)

    return jax.lax.scan(block, carry, None, length=num_records)


def _sample_fn(sampler: Sampler, key: Array) -> Callable[[Array], Any]:
    if getattr(sampler, "takes_step", False):
        return lambda j: sampler(key, j)

    def sample(j: Array) -> Any:
        return sampler(jax.random.fold_in(key, j))

    return sample


def _record(c: RunState, objective: Objective | None, algorithm: Algorithm) -> dict:
    out = {"w": c.state.w, "tau": c.tau, "k": c.k, **algorithm.records(c.state, c.k)}
    if objective is not None:
        out["objective"] = objective(c.state.w)
    return out


def _trajectory(recs: dict, carry: RunState) -> Trajectory:
    return Trajectory(
        w=recs["w"],
        tau=recs["tau"],
        k=recs["k"],
        y=recs.get("y"),
        objective=recs.get("objective"),
        diverged_step=carry.diverged_step,
        r=recs.get("r"),
    )


def seed_keys(seeds: int | Sequence[int] | Array) -> Array:
    """Run keys for a batch: ``jax.random.key(seed)`` for each seed.

    An int ``n`` means seeds ``0 .. n-1``.  A key array is passed through.
    """
    if isinstance(seeds, jax.Array) and jnp.issubdtype(seeds.dtype, jax.dtypes.prng_key):
        return seeds
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = list(range(validate.positive_int("seeds", seeds)))
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__") or len(seeds) == 0:
        raise validate.BadValue("seeds", seeds, "it must be a count >= 1 or a non-empty list of integers")
    seeds = np.asarray([validate.integer(f"seeds[{i}]", s, 0, 2**32 - 1) for i, s in enumerate(seeds)])
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
    shard: bool | None = None,
) -> Trajectory:
    """The seeds x initializations x scales grid as one jitted, vmapped program.

    ``w0`` carries the initializations along a leading axis (every leaf);
    ``seeds`` is a count, a list of ints or a key array; ``scales`` defaults to
    the algorithm's own scale.  The result has leading axes
    ``(num_seeds, num_inits, num_scales, num_records, ...)``; entry
    ``[i, j, l]`` is ``run(algorithm.with_scale(scales[l]), oracle, sampler,
    w0[j], seed_keys(seeds)[i], ...)``: bitwise for elementwise problems (the 2-D
    toys); where the loss has matrix products, XLA may compute the batched product
    in another summation order, so entries agree up to rounding (e.g. 4e-7 in
    float32 on ``relu_digits``).  Runs with the same seed share
    their noise sequence (common random numbers across inits and scales).

    With several JAX devices the batch is sharded over them along the seeds
    axis (or the inits axis when the seeds do not divide evenly); ``shard=False``
    turns this off, ``shard=True`` makes an impossible split an error.
    """
    return compile_batch(algorithm, oracle, sampler, w0, seeds, num_steps, record_every,
                         scales=scales, objective=objective, shard=shard)()


class CompiledBatch:
    """A compiled batch of runs; call it (optionally with a progress callback) to run it.

    The steps are cut into ``chunks`` equal segments run one after the other
    (same numbers as one segment: the noise depends only on the key and ``k``);
    ``progress(steps_done, num_steps)`` is called after each.
    """

    def __init__(self, args: tuple, chunks: int):
        algorithm, oracle, sampler, w0, keys, scales, num_steps, record_every, objective = args
        self._static = (algorithm, oracle, sampler, objective)
        self._keys, self._scales = keys, scales
        self.num_steps, self.record_every, self.chunks = num_steps, record_every, chunks
        self._per_chunk = num_steps // record_every // chunks
        # the grid axis split over the devices (seeds 0, inits 1): each device runs its share
        self._split = 0 if is_split(keys) else 1 if is_split(jax.tree.leaves(w0)[0]) else None
        start_args = (algorithm, oracle, sampler, w0, keys, scales, objective, self._split)
        self._start = _grid_start.lower(*start_args).compile()
        self._carry0, self._first = self._start(*start_args)
        self._advance = _grid_advance.lower(*self._adv_args(self._carry0)).compile()
        # compile the assembly of the records now, so that calls time only the run
        piece = eqx.filter_eval_shape(_grid_advance, *self._adv_args(self._carry0))[1]
        zeros = [jax.tree.map(lambda sd: jnp.zeros(sd.shape, sd.dtype), piece)] * chunks
        jax.block_until_ready(_assemble(self._first, zeros))

    def _placed(self, carry: "RunState") -> "RunState":
        """``carry`` on the shardings the advance program was compiled for (with several devices
        the program's output shardings may differ from its inputs': re-place, never recompile)."""
        def put(x, ref):
            same = getattr(x, "sharding", None) == getattr(ref, "sharding", None)
            return x if same or not hasattr(ref, "sharding") else jax.device_put(x, ref.sharding)

        return jax.tree.map(put, carry, self._carry0)

    def _adv_args(self, carry):
        algorithm, oracle, sampler, objective = self._static
        return (algorithm, oracle, sampler, self._keys, self._scales, carry, self._per_chunk,
                self.record_every, objective, self._split)

    def __call__(self, progress: Callable[[int, int], None] | None = None,
                 on_records: Callable[[dict], None] | None = None) -> Trajectory:
        """Run the batch.  ``progress(steps_done, num_steps)`` after each chunk; ``on_records(recs)``
        with each chunk's records as they finish (``k = 0`` first; a dict of ``w``, ``tau``, ``k``,
        ``objective``..., record axis 3), e.g. to log curves live."""
        carry, pieces = self._carry0, []
        if on_records is not None:
            on_records(jax.tree.map(lambda a: jnp.expand_dims(a, 3), self._first))
        for c in range(self.chunks):
            carry, recs = self._advance(*self._adv_args(self._placed(carry)))
            pieces.append(recs)
            if progress is not None:
                jax.block_until_ready(carry.k)
                progress((c + 1) * self._per_chunk * self.record_every, self.num_steps)
            if on_records is not None:
                on_records(recs)
        return _trajectory(_assemble(self._first, pieces), carry)


@jax.jit
def _assemble(first: dict, pieces: list[dict]) -> dict:
    """Records at ``k = 0`` followed by those of every chunk, along the record axis (3)."""
    first = jax.tree.map(lambda a: jnp.expand_dims(a, 3), first)
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=3), first, *pieces)


def compile_batch(*args: Any, chunks: int = 1, **options: Any) -> CompiledBatch:
    """Compile :func:`run_batch` ahead of time (the same arguments, plus ``chunks``); returns a
    :class:`CompiledBatch` to call.

    Splits compile time from run time (the CLI reports both) and allows
    progress reports between ``chunks`` segments::

        batch = compile_batch(alg, oracle, sampler, w0, seeds, num_steps, record_every, chunks=10)
        traj = batch(progress=print)            # runs, reporting after each tenth
    """
    try:
        bound = inspect.signature(run_batch).bind(*args, **options)
    except TypeError as e:
        raise TypeError(f"compile_batch takes run_batch's arguments plus chunks: {e}") from None
    bound.apply_defaults()
    grid = _grid_args(*bound.arguments.values())
    n_records = grid[6] // grid[7]
    if not isinstance(chunks, int) or chunks < 1 or n_records % chunks:
        raise ValueError(
            f"chunks={chunks!r} must be a positive divisor of num_steps // record_every = {n_records}")
    return CompiledBatch(grid, chunks)


def progress_chunks(num_steps: int, record_every: int, target: int = 20) -> int:
    """The largest divisor of the number of records that is at most ``target``."""
    n = num_steps // record_every
    return max(d for d in range(1, min(n, target) + 1) if n % d == 0)


def _grid_args(algorithm, oracle, sampler, w0, seeds, num_steps, record_every, scales, objective,
               shard=None):
    num_steps, record_every = check_steps(num_steps, record_every)
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
    elif not validate.is_traced(scales):
        scales = validate.numbers_list("scales", np.asarray(scales) if isinstance(scales, jax.Array) else scales,
                                       low=0.0, open_low=True)
    scales = jnp.asarray(scales, jnp.result_type(float))
    if scales.ndim != 1 or scales.size == 0:
        raise ValueError(f"scales must be a non-empty 1-D list of numbers, got shape {scales.shape}")
    keys, w0, scales = shard_batch(keys, w0, scales, shard)
    return algorithm, oracle, sampler, w0, keys, scales, num_steps, record_every, objective


def _over_grid(f, carry_axes: bool):
    """vmap ``f(key, x, scale)`` over seeds x inits x scales; ``x`` is ``w0`` (batched over inits)
    or, with ``carry_axes``, a carry batched over all three axes."""
    c = 0 if carry_axes else None
    over_scales = jax.vmap(f, in_axes=(None, c, 0))
    over_inits = jax.vmap(over_scales, in_axes=(None, 0, None))
    return jax.vmap(over_inits, in_axes=(0, c, None))


def _on_devices(grid: Callable, split: int | None, x_axis: int | None) -> Callable:
    """``grid(keys, x, scales)`` per device when the seeds (``split=0``) or the inits (1) are split
    over the devices; ``x`` is split along ``x_axis`` (``None``: the same on every device)."""
    return per_device(grid, (0 if split == 0 else None, x_axis, None), split or 0, split is not None)


@eqx.filter_jit
def _grid_start(algorithm, oracle, sampler, w0, keys, scales, objective, split=None):
    def single(key, w, s):
        alg = algorithm.with_scale(s)
        c = start(alg, oracle, sampler, w, key)
        return c, _record(c, objective, alg)

    grid = _over_grid(single, carry_axes=False)  # w0: inits first
    return _on_devices(grid, split, 0 if split == 1 else None)(keys, w0, scales)


@eqx.filter_jit
def _grid_advance(algorithm, oracle, sampler, keys, scales, carry, num_records, record_every, objective,
                  split=None):
    def grid(keys, carry, scales):
        # The counter k is the same for every run: keep it unbatched, so the schedule (a power per
        # step) and everything else depending on k alone is computed once per step, not per run.
        k0 = carry.k.reshape(-1)[0]

        def single(key, c, s):
            c = RunState(c.state, c.tau, k0, c.diverged_step)
            return advance(algorithm.with_scale(s), oracle, sampler, key, c, num_records, record_every,
                           objective=objective)

        return _over_grid(single, carry_axes=True)(keys, carry, scales)

    return _on_devices(grid, split, split)(keys, carry, scales)


Build = Callable[[Any], tuple[Algorithm, Oracle, Sampler, Objective | None]]


def run_configs(
    build: Build,
    configs: PyTree,
    w0: PyTree,
    seeds: int | Sequence[int] | Array,
    num_steps: int,
    record_every: int = 1,
    *,
    scales: Sequence[float] | Array | None = None,
    paired: bool = False,
    per_config: bool = False,
    shard: bool | None = None,
) -> Trajectory:
    """:func:`run_batch` for every entry of a stacked batch of configurations, as one program.

    ``configs`` is a pytree of arrays with a common leading axis (e.g. schedule
    parameters ``(a, b, p)`` or kink values); ``build(config)`` returns
    ``(algorithm, oracle, sampler, objective)`` for one entry (``objective`` may
    be ``None``).  ``build`` is traced once with the config as traced arrays, so
    one compiled program serves every value.  The result has a leading
    ``configs`` axis before :func:`run_batch`'s axes: entry ``[c]`` is
    ``run_batch(*build(configs[c])[:3], w0, seeds, ..., objective=build(configs[c])[3])``
    (same numbers up to the batched-product rounding noted there).

    With ``paired=True`` the seeds are paired with the initializations instead of
    crossed (``len(seeds) == num_inits``; run ``i`` uses key ``i`` from ``w0[i]``)
    and the axes are ``(configs, runs, scales, records, ...)``.
    With ``per_config=True``, ``w0`` and ``seeds`` (then a key array) carry the configs
    axis first: configuration ``c`` runs from ``w0[c]`` with keys ``seeds[c]`` (e.g. a flat
    batch of unrelated runs, one configuration each).
    ``scales`` defaults to each configuration's algorithm scale.
    Several JAX devices split the configurations (replicated when uneven; ``shard`` as in
    :func:`run_batch`), with the same numbers up to the last bit (the split program's rounding).
    """
    check_steps(num_steps, record_every)
    if per_config:
        configs, w0, seeds = shard_leading((configs, w0, seeds), shard)
        return _configs_compiled(build, configs, w0, seeds, scales, num_steps, record_every, paired, True,
                                 is_split(jax.tree.leaves(configs)[0]))
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in jax.tree.leaves(configs)}
    if len(sizes) != 1 or None in sizes or 0 in sizes:
        raise ValueError("run_configs: every leaf of configs needs the same non-empty leading axis "
                         f"(the configurations); got leading sizes {sorted(map(str, sizes))}")
    keys = seed_keys(seeds)
    n_inits = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in jax.tree.leaves(w0)}
    if len(n_inits) != 1 or None in n_inits or 0 in n_inits:
        raise ValueError("run_configs: every leaf of w0 needs the same non-empty leading axis "
                         f"(the initializations); got leading sizes {sorted(map(str, n_inits))}")
    if paired and n_inits != {keys.shape[0]}:
        raise ValueError(f"run_configs(paired=True) needs one seed per initialization; got "
                         f"{keys.shape[0]} seeds and {n_inits.pop()} initializations")
    if scales is not None:
        scales = jnp.asarray(scales, jnp.result_type(float))
        if scales.ndim != 1 or scales.size == 0:
            raise ValueError(f"scales must be a non-empty 1-D list of numbers, got shape {scales.shape}")
    configs = shard_leading(configs, shard)
    w0, keys, scales = (w0, keys, scales) if shard is False else replicate((w0, keys, scales))
    return _configs_compiled(build, configs, w0, keys, scales, num_steps, record_every, paired, False,
                             is_split(jax.tree.leaves(configs)[0]))


@eqx.filter_jit
def _configs_compiled(build, configs, w0, keys, scales, num_steps, record_every, paired, per_config, split):
    def grid(config, w, k):
        algorithm, oracle, sampler, objective = build(config)
        sc = jnp.reshape(algorithm.scale, (1,)).astype(jnp.result_type(float)) if scales is None else scales
        carry0, first = _grid_start(algorithm, oracle, sampler, w, k, sc, objective)
        carry, rest = _grid_advance(algorithm, oracle, sampler, k, sc, carry0, num_steps // record_every,
                                    record_every, objective)
        return _trajectory(_assemble(first, [rest]), carry)

    def one(config, w0, keys):
        if not paired:
            return grid(config, w0, keys)
        # each (key, init) pair is a 1 x 1 grid; drop those two unit axes
        pair = lambda w, k: jax.tree.map(lambda a: a[0, 0], grid(config, jax.tree.map(lambda a: a[None], w),
                                                                 k[None]))
        return jax.vmap(pair)(w0, keys)

    axes = (0, 0 if per_config else None, 0 if per_config else None)
    batched = jax.vmap(one, in_axes=axes)
    return per_device(batched, axes, 0, split)(configs, w0, keys)  # each device its own configs
