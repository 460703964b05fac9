"""XLA:CPU's thread pool when one host is split into several JAX devices.

``JAX_NUM_CPU_DEVICES=N`` (or ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) gives N CPU
devices that share one intra-op thread pool, sized by default to the number of cores.  A program
split over the devices runs one share per device on that pool, and jaxlib's batched LAPACK
kernels (``jnp.linalg.solve``'s LU, as in the DEQ's implicit backward) split their batch into
tasks on the same pool and wait for them.  When every pool thread holds such a waiting kernel
(N devices on N cores), nothing is left to run the tasks: the program never finishes.  One thread
more than the devices is enough, and XLA sizes the pool from ``NPROC`` when it is set.

:func:`ensure_cpu_pool` sets ``NPROC`` to ``max(cores, N + 1)`` before the CPU backend starts
(``import nsopt`` calls it); :func:`check_cpu_pool` warns when it came too late.
"""

from __future__ import annotations

import os
import re
import sys
import warnings

__all__ = ["requested_cpu_devices", "ensure_cpu_pool", "check_cpu_pool"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def requested_cpu_devices() -> int:
    """The CPU device count asked for by ``JAX_NUM_CPU_DEVICES``, ``XLA_FLAGS`` or, once JAX is
    imported, ``jax.config.jax_num_cpu_devices`` (1 when none asks for more)."""
    counts = [1]
    env = os.environ.get("JAX_NUM_CPU_DEVICES", "").strip()
    if env.lstrip("-").isdigit():
        counts.append(int(env))
    flag = re.search(r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", ""))
    if flag:
        counts.append(int(flag.group(1)))
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            counts.append(int(jax.config.jax_num_cpu_devices))
        except (AttributeError, TypeError, ValueError):
            pass
    return max(counts)


def _pool_size() -> int:
    nproc = os.environ.get("NPROC", "").strip()
    return int(nproc) if nproc.isdigit() and int(nproc) > 0 else _cores()


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without this private helper: assume not started
        return False


def ensure_cpu_pool() -> None:
    """With N > 1 CPU devices asked for and ``NPROC`` unset, set ``NPROC = max(cores, N + 1)``.

    Takes effect when XLA's CPU client starts (the first JAX computation), so it must run
    before that; an ``NPROC`` the user set is left alone.
    """
    if _backend_started():
        return  # too late: the pool has its size (check_cpu_pool warns if it is too small)
    n = requested_cpu_devices()
    if n > 1 and "NPROC" not in os.environ:
        os.environ["NPROC"] = str(max(_cores(), n + 1))


def check_cpu_pool(platform: str, num_devices: int) -> None:
    """Warn when ``num_devices`` CPU devices share a pool of at most as many threads (a batched
    linear solve split over them can wait forever); silent on other platforms."""
    if platform == "cpu" and num_devices > 1 and _pool_size() <= num_devices:
        warnings.warn(
            f"{num_devices} CPU devices share a thread pool of {_pool_size()} threads: a batched "
            f"linear solve (e.g. a DEQ's implicit backward) split over them can wait forever. "
            f"Set NPROC={num_devices + 1} (or more) before the first JAX computation, or "
            f"`import nsopt` before it, which does so.",
            RuntimeWarning,
            stacklevel=3,
        )
