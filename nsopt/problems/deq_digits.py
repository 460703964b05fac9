"""A monotone DEQ classifier on ``load_digits`` as a stochastic problem (Winston & Kolter 2020).

``F(w) = (1/N) sum_i CE(head(z*_w(x_i)), y_i)``, ``z*`` the fixed point of the
:class:`~nsopt.layers.deq.MonotoneDEQ` layer; ``xi`` a minibatch of indices.  The autodiff
oracle of the loss backpropagates through the layer's implicit (or unrolled) derivative.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from nsopt import validate
from nsopt.failures import ON_FAILURE as _LAYER_ON_FAILURE
from nsopt.failures import Solution
from nsopt.implicit import LinearSolver
from nsopt.layers.deq import BACKWARDS, LINEAR_SOLVES, DEQSolver, MonotoneDEQ, param_dtype
from nsopt.problems.relu_net import DigitsClassification, load_digits_split

__all__ = ["ON_FAILURE", "DEQClassifier", "DEQDigits", "deq_digits"]

#: The layer's switch plus ``"nan"``: the problem marks failed inputs NaN (the run is flagged diverged).
ON_FAILURE = ("nan", *_LAYER_ON_FAILURE)


class DEQClassifier(nn.Module):
    """``logits = Dense(z*(x))`` with ``z*`` a :class:`~nsopt.layers.deq.MonotoneDEQ` fixed point.

    ``on_failure`` in :data:`ON_FAILURE`: the layer's switch (``"raise"``, ``"warn"``,
    ``"ignore"``), or ``"nan"``: the layer ignores failures and the classifier replaces the
    fixed point of every failed input by NaN, so that a training run is flagged diverged
    (``Trajectory.diverged_step``) instead of stopping.
    """

    features: int
    num_classes: int
    m: float = 0.5
    kink: float = 0.0
    solver: DEQSolver = DEQSolver()
    backward: str = "implicit"
    on_failure: str = "raise"
    init_scale: float = 0.5
    linear_solve: str | LinearSolver = "dense"
    param_dtype: Any = None

    def setup(self):
        validate.choice("on_failure", self.on_failure, ON_FAILURE)
        layer_on_failure = "ignore" if self.on_failure == "nan" else self.on_failure
        self.deq = MonotoneDEQ(self.features, self.m, self.kink, self.solver, self.backward,
                               layer_on_failure, init_scale=self.init_scale,
                               linear_solve=self.linear_solve, param_dtype=self.param_dtype, name="deq")
        self.head = nn.Dense(self.num_classes, param_dtype=param_dtype(self.param_dtype), name="head")

    def fixed_point(self, x: Array) -> Array:
        """``z*(x)``; with ``on_failure="nan"``, NaN on the inputs whose solve failed."""
        sol = self.deq.solution(x)
        if self.on_failure != "nan":
            return sol.value
        return jnp.where(sol.successful[..., None], sol.value, jnp.nan)

    def __call__(self, x: Array) -> Array:
        return self.head(self.fixed_point(x))

    def solve(self, x: Array) -> Solution:
        """The layer's forward solve with its statistics (:meth:`MonotoneDEQ.solve`)."""
        return self.deq.solve(x)

    def preactivation(self, x: Array, z: Array) -> Array:
        return self.deq.preactivation(x, z)


# --------------------------------------------------------------------------- problem


class DEQDigits(DigitsClassification):
    """Cross-entropy of a :class:`DEQClassifier` on ``load_digits``; minibatch sampling.

    ``F(w) = (1/N) sum_i CE(head(z*_w(x_i)), y_i)`` over the training split (exact);
    ``xi`` is a minibatch of indices drawn uniformly with replacement, so
    ``E_xi loss(w, xi) = F(w)``.  The autodiff oracle of ``loss`` backpropagates
    through the implicit (or unrolled) derivative of the layer.
    """

    @property
    def name(self) -> str:
        return "deq_digits"

    def solve_stats(self, w: Any, split: str = "test") -> Solution:
        """The forward solve on every input of ``split``: a :class:`~nsopt.failures.Solution`
        (``result`` per input; ``stats``: ``residual``, ``num_steps``)."""
        x, _ = self._split(split)
        return self.module.apply({"params": w}, x, method=DEQClassifier.solve)


def deq_digits(
    hidden: int = 64,
    batch_size: int = 32,
    m: float = 0.5,
    kink: float = 0.0,
    solver: str = "peaceman_rachford",
    step: float | None = None,
    tol: float | None = None,
    max_steps: int = 200,
    backward: str = "implicit",
    on_failure: str = "nan",
    init_scale: float = 0.5,
    linear_solve: str = "dense",
    test_fraction: float = 0.2,
    data_seed: int = 0,
) -> DEQDigits:
    """The monotone-DEQ-on-digits problem (see :class:`DEQDigits`, :class:`~nsopt.layers.deq.MonotoneDEQ`).

    ``on_failure`` in :data:`ON_FAILURE`; ``"nan"`` by default: a forward solve that does not
    converge turns the run's iterates into NaN, which :func:`nsopt.run` records as
    ``diverged_step`` (see :class:`DEQClassifier`).
    """
    if int(hidden) < 1:
        raise ValueError(f"deq_digits hidden must be a positive width, got {hidden!r}")
    if int(batch_size) < 1:
        raise ValueError(f"deq_digits batch_size must be >= 1, got {batch_size!r}")
    if not m > 0:
        raise ValueError(f"deq_digits m (monotonicity) must be > 0, got {m!r}")
    if not 0.0 <= kink <= 1.0:
        raise ValueError(f"deq_digits kink (relu'(0)) must be in [0, 1] (Clarke), got {kink!r}")
    validate.choice("backward", backward, BACKWARDS)
    validate.choice("on_failure", on_failure, ON_FAILURE)
    if not init_scale > 0:
        raise ValueError(f"deq_digits init_scale must be > 0, got {init_scale!r}")
    deq_solver = DEQSolver(method=solver, step=None if step is None else float(step),
                           tol=None if tol is None else float(tol), max_steps=int(max_steps))
    xtr, ytr, xte, yte = load_digits_split(test_fraction, data_seed)
    f = jnp.result_type(float)
    validate.choice("linear_solve", linear_solve, LINEAR_SOLVES)
    module = DEQClassifier(int(hidden), 10, float(m), float(kink), deq_solver, backward, on_failure,
                           float(init_scale), linear_solve)
    return DEQDigits(
        jnp.asarray(xtr, f), jnp.asarray(ytr), jnp.asarray(xte, f), jnp.asarray(yte),
        int(batch_size), module,
    )
