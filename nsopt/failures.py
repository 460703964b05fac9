"""One failure convention for every iterative solver (the optimistix/lineax pattern).

A solver returns a :class:`Solution` ``(value, result, stats)`` whose ``result`` is
a code of :class:`RESULTS`; what happens on a failure is chosen by one switch,
``on_failure`` in :data:`ON_FAILURE`:

- ``"raise"``: raise :class:`SolverError` (eagerly), or a runtime error under
  ``jit``/``vmap`` (through :func:`equinox.error_if`); the default.
- ``"warn"``: emit a :class:`SolverWarning` (a host callback under ``jit``)
  and return the solution with its ``result`` set.
- ``"ignore"``: return the solution with its ``result`` set; the caller reads it.

Every message has the same shape::

    <solver>: <what failed> (<the condition in symbols>). <what to try>.

so a user reads the same words whatever solver failed.  Linear solves, the
implicit root, forward-backward, the Lasso, the DEQ and the QP layers all use it.
"""

from __future__ import annotations

import enum
import warnings
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["RESULTS", "ON_FAILURE", "OnFailure", "Solution", "SolverError", "SolverWarning",
           "check_on_failure", "message", "handle", "result_where"]

OnFailure = Literal["raise", "warn", "ignore"]
ON_FAILURE: tuple[str, ...] = ("raise", "warn", "ignore")


class RESULTS(enum.IntEnum):
    """Why a solver stopped.  ``successful`` is 0; every other code is a failure."""

    successful = 0
    max_steps_reached = 1      # the iteration budget ran out before the tolerance was met
    singular = 2               # the invertibility condition of the implicit function theorem fails
    nonfinite = 3              # NaN/inf appeared in the inputs or the iterates
    residual_too_large = 4     # the returned point does not solve the optimality condition
    infeasible = 5             # the constraints admit no point
    unbounded = 6              # the objective is unbounded below on the feasible set
    not_positive_semidefinite = 7  # a matrix required to be PSD (e.g. a QP's Q) is not
    rank_deficient = 8         # active rows / the support design are not of full rank
    size_limit_exceeded = 9    # a static size cap (e.g. the Lasso's max_support) is too small


#: The default explanation of each code (a solver may give a more precise one).
_EXPLAIN: dict[RESULTS, str] = {
    RESULTS.successful: "converged",
    RESULTS.max_steps_reached: "did not converge within max_steps",
    RESULTS.singular: "the derivative of the optimality condition is singular, so the implicit "
                      "function theorem does not apply",
    RESULTS.nonfinite: "NaN or inf in the data or the iterates",
    RESULTS.residual_too_large: "the returned point does not satisfy the optimality condition",
    RESULTS.infeasible: "the problem is infeasible",
    RESULTS.unbounded: "the problem is unbounded",
    RESULTS.not_positive_semidefinite: "a matrix that must be positive semidefinite is not",
    RESULTS.rank_deficient: "the active constraints / support are not of full rank",
    RESULTS.size_limit_exceeded: "the solution needs more room than a static size limit of the "
                                 "solver allows",
}


class SolverError(RuntimeError):
    """A solver failed and ``on_failure="raise"``; the message follows the module's shape."""


class SolverWarning(RuntimeWarning):
    """A solver failed and ``on_failure="warn"``."""


class Solution(eqx.Module):
    """What every solver returns.

    Attributes:
        value: the solution (any pytree).
        result: a :class:`RESULTS` code as an int32 array (batched under ``vmap``).
        stats: solver statistics (``num_steps``, ``residual``...), arrays in a dict.
    """

    value: Any
    result: Array
    stats: dict[str, Any] = eqx.field(default_factory=dict)

    @property
    def successful(self) -> Array:
        """``True`` where ``result == RESULTS.successful``."""
        return self.result == RESULTS.successful


def check_on_failure(on_failure: str) -> OnFailure:
    """Validate the switch; the error names the value and the allowed ones."""
    if on_failure not in ON_FAILURE:
        raise ValueError(f"on_failure={on_failure!r} is not allowed; choose one of {list(ON_FAILURE)}")
    return on_failure  # type: ignore[return-value]


def message(solver: str, result: RESULTS | int, detail: str | None = None, hint: str | None = None) -> str:
    """``<solver>: <what failed>[ (<detail>)][. <hint>]`` -- the one wording of every failure."""
    code = RESULTS(int(result))
    text = f"{solver}: {_EXPLAIN[code]}"
    if detail:
        text += f" ({detail})"
    if hint:
        text += f". {hint}"
    return text


def result_where(pred: Array | bool, code: RESULTS, result: Array | None = None) -> Array:
    """Set ``code`` where ``pred`` holds and the current ``result`` is still successful."""
    current = jnp.asarray(RESULTS.successful if result is None else result, jnp.int32)
    return jnp.where(jnp.asarray(pred) & (current == RESULTS.successful), jnp.int32(code), current)


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def handle(solution: Solution, on_failure: OnFailure, solver: str,
           messages: dict[int, str] | None = None) -> Solution:
    """Apply ``on_failure`` to ``solution`` (works eagerly and under ``jit``/``vmap``).

    ``messages`` maps a code to its full message (default: :func:`message` with no detail).
    """
    check_on_failure(on_failure)
    if on_failure == "ignore":
        return solution
    msgs = {int(c): message(solver, c) for c in RESULTS if c != RESULTS.successful}
    msgs.update(messages or {})
    result = solution.result
    if _is_concrete(result):
        codes = sorted({int(c) for c in np.unique(np.asarray(result)) if int(c) != 0})
        if not codes:
            return solution
        text = "; ".join(msgs[c] for c in codes)
        if on_failure == "raise":
            raise SolverError(text)
        warnings.warn(text, SolverWarning, stacklevel=2)
        return solution
    if on_failure == "raise":
        value = solution.value
        for code in RESULTS:
            if code == RESULTS.successful:
                continue
            value = _error_if_tree(value, result == code, msgs[int(code)])
        return Solution(value, solution.result, solution.stats)

    def _warn(r):
        r = np.asarray(r)
        for c in sorted({int(x) for x in np.unique(r)} - {0}):
            warnings.warn(msgs[c], SolverWarning, stacklevel=2)

    jax.debug.callback(_warn, result)
    return solution


def _error_if_tree(value: Any, pred: Array, msg: str) -> Any:
    leaves, tree = jax.tree.flatten(value)
    if not leaves:
        return value
    first = eqx.error_if(leaves[0], pred, msg)
    return jax.tree.unflatten(tree, [first, *leaves[1:]])
