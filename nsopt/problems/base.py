"""What a problem supplies: ``loss(w, xi)``, ``sampler``, ``F``, ``field``, ``dim``, ``init``.

Problems are data, not code paths: algorithms and the flow never special-case
one.  A problem is an immutable equinox module, so its arrays (datasets) are
pytree leaves, passed to compiled programs as arguments rather than baked in.

The fields, in one place (``w`` is a pytree of float arrays, ``xi`` anything JAX traces):

==============  ==========================================================================
``name``        a short string (``summary.json``, figure titles, wandb).
``dim``         number of scalar parameters in ``w`` (sum of the leaves' sizes).
``init(key)``   one default initial point ``w_0`` (the ``init=default`` of the CLI).
``sampler``     ``sampler(key) -> xi``: one draw of the noise; step ``k`` of a run with key
                ``key`` uses ``xi_k = sampler(fold_in(key, k))`` (counter based: a run depends
                only on its key).  A sampler with ``takes_step = True`` is called as
                ``sampler(key, k)`` instead (reshuffled epochs: :mod:`nsopt.problems.samplers`).
``loss(w, xi)`` the sampled loss ``f(w, xi)``, a scalar; the algorithms query
                ``oracle(w, xi) = backprop of loss(., xi) at w`` (:meth:`Problem.oracle`).
``F(w)``        the objective ``E_xi f(w, xi)``, a scalar: exact, or the mean over a fixed
                dataset (recorded along the runs, Lyapunov curves).
``field(w)``    an element of the mean conservative field ``D_F(w)``, shaped like ``w``:
                what the flow functions take (:func:`nsopt.flow.apt_distance`,
                :func:`nsopt.flow.criticality`, ``flow_line``); defaults to
                ``jax.grad(F)``, an element of ``D_F`` when ``F`` is the exact expectation
                (integral rule, Bolte-Le-Pauwels 2022, arXiv 2202.13744; docs/theory.md).
==============  ==========================================================================

:func:`check_problem` evaluates every field on shapes only (no FLOPs) and names the
first one that is missing or has the wrong shape.  Finite sums (a dataset, a sampling
scheme) subclass :class:`nsopt.problems.FiniteSum` and give per-example ``losses``.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from nsopt.oracles.autodiff import Autodiff, autodiff

PyTree = Any

__all__ = ["Problem", "ProblemError", "check_problem"]


class Problem(eqx.Module):
    """A stochastic objective ``F(w) = E_{xi ~ P} loss(w, xi)`` (fields: the module docstring).

    Subclasses define ``loss``, ``sampler``, ``F``, ``init`` and the static
    ``name``/``dim``.  ``field(w)`` defaults to backprop through ``F`` (an
    element of the expected conservative field when ``F`` is the exact
    expectation: integral rule, docs/theory.md §4).
    """

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Number of scalar parameters in ``w``."""

    @abc.abstractmethod
    def loss(self, w: PyTree, xi: Any) -> Array:
        """Sampled loss ``f(w, xi)``."""

    @abc.abstractmethod
    def sampler(self, key: Array) -> Any:
        """Draw ``xi ~ P``."""

    @abc.abstractmethod
    def F(self, w: PyTree) -> Array:
        """Full objective ``E_xi f(w, xi)`` (exact, or on a stated fixed sample)."""

    @abc.abstractmethod
    def init(self, key: Array) -> PyTree:
        """Draw one initialization from the problem's default distribution."""

    def oracle(self) -> Autodiff:
        """The autodiff oracle ``(w, xi) -> backprop of loss(., xi) at w``."""
        return autodiff(self.loss)

    def field(self, w: PyTree) -> PyTree:
        """An element of the mean conservative field ``D_F(w)`` (backprop through ``F``)."""
        return jax.grad(self.F)(w)

    def inits(self, key: Array, num: int) -> PyTree:
        """``num`` default initializations stacked along a leading axis."""
        return jax.vmap(self.init)(jax.random.split(key, num))

    @property
    def is_2d(self) -> bool:
        """Whether iterates can be drawn in the plane (``w`` a single array of shape ``(2,)``)."""
        leaves = jax.tree.leaves(jax.eval_shape(self.init, jax.random.key(0)))
        return len(leaves) == 1 and leaves[0].shape == (2,)


class ProblemError(ValueError):
    """A problem field is missing or has the wrong shape; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"problem.{field} {message}")


def _shapes(tree: PyTree) -> list[tuple[int, ...]]:
    return [tuple(x.shape) for x in jax.tree.leaves(tree)]


def _call(field: str, fn: Any, *args: Any) -> Any:
    try:
        return jax.eval_shape(fn, *args)
    except ProblemError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a user's function is reported by field
        raise ProblemError(field, f"fails: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _scalar(field: str, out: Any) -> None:
    leaves = jax.tree.leaves(out)
    if len(leaves) != 1 or leaves[0].shape != () or not jnp.issubdtype(leaves[0].dtype, jnp.floating):
        got = [f"{x.dtype}{list(x.shape)}" for x in leaves]
        raise ProblemError(field, f"returns {got}; it must return one float scalar (shape ())")


def check_problem(problem: Any) -> None:
    """Raise :class:`ProblemError` (a ``ValueError``) naming the first field of ``problem`` that is
    missing or has the wrong shape; evaluates shapes only (``jax.eval_shape``).

    Checks: the :class:`Problem` fields exist; ``name`` is a string; ``init(key)`` is a
    non-empty pytree of float arrays with ``dim`` scalars in all; ``sampler`` draws an
    ``xi``; ``loss(w, xi)`` and ``F(w)`` are float scalars; ``field(w)`` and
    ``oracle()(w, xi)`` have the structure and shapes of ``w``.
    """
    missing = [f for f in ("name", "dim", "init", "sampler", "loss", "F", "field")
               if not hasattr(problem, f) and not hasattr(type(problem), f)]
    if missing:
        raise ProblemError(missing[0], "is missing; a problem defines name, dim, init, sampler, loss, F "
                           "(field defaults to jax.grad(F)); see nsopt.problems.base")
    if isinstance(problem, Problem):
        abstract = sorted(getattr(type(problem), "__abstractmethods__", ()))
        if abstract:
            raise ProblemError(abstract[0], f"is missing (abstract in {type(problem).__name__})")
    key = jax.random.key(0)
    name = getattr(problem, "name", None)
    if not isinstance(name, str) or not name:
        raise ProblemError("name", f"is {name!r}; it must be a non-empty string")
    w = _call("init", problem.init, key)
    leaves = jax.tree.leaves(w)
    if not leaves or not all(jnp.issubdtype(x.dtype, jnp.floating) for x in leaves):
        got = [f"{x.dtype}{list(x.shape)}" for x in leaves]
        raise ProblemError("init", f"returns {got}; it must return a non-empty pytree of float arrays")
    size = sum(math.prod(s) for s in _shapes(w))
    dim = problem.dim
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim != size:
        raise ProblemError("dim", f"is {dim!r} but init returns {size} scalars (shapes {_shapes(w)}); "
                           "dim must be the number of scalars in w")
    sampler = problem.sampler
    if getattr(sampler, "takes_step", False):
        xi = _call("sampler", lambda k: sampler(k, jnp.asarray(0, jnp.int32)), key)
    else:
        xi = _call("sampler", sampler, key)
    _scalar("loss", _call("loss", problem.loss, w, xi))
    _scalar("F", _call("F", problem.F, w))
    oracle = problem.oracle()
    for field, fn, args in (("field", problem.field, (w,)), ("oracle", oracle, (w, xi))):
        out = _call(field, fn, *args)
        if jax.tree.structure(out) != jax.tree.structure(w) or _shapes(out) != _shapes(w):
            raise ProblemError(field, f"returns shapes {_shapes(out)}; it must return a pytree shaped like "
                               f"w (shapes {_shapes(w)})")
