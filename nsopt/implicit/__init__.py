"""Implicit differentiation of nonsmooth solution maps (arXiv 2106.04350; ``docs/theory.md``).

- :func:`root`, :func:`fixed_point`: ``x_star(theta, *args)`` with derivatives
  ``-B^{-1} A`` in forward and reverse mode; ``singular="raise"`` / ``"pinv"``;
  failures (singular ``B``, failed linear solve, residual) follow :mod:`nsopt.failures`
  (``on_failure="raise"|"warn"|"ignore"``).
- :class:`LinearSolver`: dense / CG / GMRES / BiCGStab solves, tolerances.
- :func:`diagnose`: singular values of ``B``, residuals, the implicit Jacobian.
- :func:`forward_backward`: ``argmin_x f_theta(x) + g_theta(x)`` through the
  forward-backward fixed point, with a FISTA / ISTA inner solver.
"""

from nsopt.implicit.diagnostics import Diagnostics, diagnose
from nsopt.implicit.forward_backward import (
    ContractionCheck,
    ForwardBackward,
    contraction_check,
    forward_backward,
)
from nsopt.implicit.linear import LinearSolver
from nsopt.implicit.root import (
    FixedPointResidual,
    ImplicitFunction,
    callback_solve,
    fixed_point,
    root,
)

__all__ = [
    "ContractionCheck",
    "Diagnostics",
    "FixedPointResidual",
    "ForwardBackward",
    "ImplicitFunction",
    "LinearSolver",
    "callback_solve",
    "contraction_check",
    "diagnose",
    "fixed_point",
    "forward_backward",
    "root",
]
