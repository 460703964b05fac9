"""A batch on all JAX devices: one 1-D mesh named ``"batch"``, arrays split along their runs axis.

With several devices (the GPUs of a node, or ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
on a CPU), a jitted program whose inputs are split along their batch axis runs each device's
share of the runs: XLA's SPMD partitioner carries the split through ``vmap`` and ``lax.scan``,
and the outputs come back split the same way.  Runs are independent, so the numbers are
those of one device.  One helper serves every batched path (:func:`nsopt.run_batch`,
:func:`nsopt.run_configs`, the flow diagnostics, the presets); on one device it changes nothing.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from nsopt.cpu_threads import check_cpu_pool

PyTree = Any

__all__ = ["batch_mesh", "shard_leading", "replicate", "is_split", "per_device", "shard_batch"]


def batch_mesh() -> Any:
    """The 1-D mesh ``"batch"`` over all devices, or ``None`` with a single device."""
    devices = jax.devices()
    if len(devices) == 1:
        return None
    from jax.sharding import Mesh

    check_cpu_pool(devices[0].platform, len(devices))
    return Mesh(np.array(devices), ("batch",))


def _is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))


def _leading_size(tree: PyTree, axis: int) -> int | None:
    sizes = {np.shape(x)[axis] for x in jax.tree.leaves(tree) if _is_array(x) and np.ndim(x) > axis}
    if len(sizes) > 1:
        raise ValueError(f"shard_leading: the array leaves must share axis {axis} (the runs); "
                         f"got sizes {sorted(sizes)}")
    return sizes.pop() if sizes else None


def shard_leading(tree: PyTree, shard: bool | None = None, *, axis: int = 0) -> PyTree:
    """Every array leaf of ``tree`` on all devices, split along ``axis`` (the runs, shared by every
    leaf of more than ``axis`` dimensions; lower-dimensional leaves are replicated; other leaves,
    e.g. Python numbers, are left as they are).

    When the runs do not divide evenly over the devices, the leaves are replicated instead
    (every device computes every run: the numbers are the same, without a speed-up; make the
    batch a multiple of the device count for one), or, with ``shard=True``, an error names
    both numbers.  ``shard=False`` returns ``tree`` unchanged, and so does a single device.
    """
    mesh = batch_mesh()
    if shard is False or mesh is None:
        return tree
    from jax.sharding import NamedSharding, PartitionSpec

    n = mesh.devices.size
    size = _leading_size(tree, axis)
    if size is None or size % n:
        if shard:
            raise ValueError(f"cannot shard {size} runs (axis {axis}) over {n} devices: {size} is not "
                             f"a multiple of {n}; pad the batch or pass shard=None to replicate it")
        return replicate(tree)
    split = NamedSharding(mesh, PartitionSpec(*([None] * axis), "batch"))
    rep = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: jax.device_put(x, split if np.ndim(x) > axis else rep) if _is_array(x) else x,
                        tree)


def replicate(tree: PyTree) -> PyTree:
    """Every array leaf of ``tree`` copied on all devices (unchanged on a single device)."""
    mesh = batch_mesh()
    if mesh is None:
        return tree
    from jax.sharding import NamedSharding, PartitionSpec

    rep = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: jax.device_put(x, rep) if _is_array(x) else x, tree)


def is_split(x: Any) -> bool:
    """Whether the array ``x`` is split over several devices (not a copy on each)."""
    sharding = getattr(x, "sharding", None)
    return sharding is not None and len(sharding.device_set) > 1 and not sharding.is_fully_replicated


def per_device(f: Callable, in_axes: tuple[int | None, ...], out_axis: int, split: bool = True) -> Callable:
    """``f`` run by each device on its own share of the batch (``jax.shard_map`` over the mesh
    ``"batch"``), for use inside ``jit``: argument ``i`` is split along ``in_axes[i]`` (every leaf)
    or, with ``None``, the same on every device; the outputs are split along ``out_axis``.

    Runs are independent, so the numbers are those of one device; unlike a program split by
    XLA's partitioner, a loop whose stopping test reduces over the batch (a ``while_loop`` under
    ``vmap``, e.g. a DEQ's forward solve) then stops per device, without a collective at each
    iteration.  On one device, or with ``split=False`` (the batch is not split: see :func:`is_split`),
    ``f`` itself is returned.
    """
    mesh = batch_mesh() if split else None
    if mesh is None:
        return f
    from jax.sharding import PartitionSpec

    def spec(axis: int | None) -> Any:
        return PartitionSpec() if axis is None else PartitionSpec(*([None] * axis), "batch")

    return jax.shard_map(f, mesh=mesh, in_specs=tuple(spec(a) for a in in_axes),
                         out_specs=spec(out_axis), check_vma=False)


def shard_batch(keys: Any, w0: PyTree, scales: Any, shard: bool | None = None) -> tuple:
    """Place a seeds x inits x scales batch (:func:`nsopt.run_batch`) on all devices: split the
    seeds axis (else the inits axis) over the mesh ``"batch"``, replicate the rest; a no-op on one
    device.  ``shard=True``: a batch that neither axis splits evenly is an error."""
    n = len(jax.devices())
    if shard is False or n == 1:
        return keys, w0, scales
    n_inits = jax.tree.leaves(w0)[0].shape[0]
    if keys.shape[0] % n == 0:
        return shard_leading(keys), replicate(w0), replicate(scales)
    if n_inits % n == 0:
        return replicate(keys), shard_leading(w0), replicate(scales)
    if shard:
        raise ValueError(
            f"cannot shard the batch over {n} devices: neither the number of seeds ({keys.shape[0]}) "
            f"nor of inits ({n_inits}) is a multiple of {n}")
    return keys, w0, scales
