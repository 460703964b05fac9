"""Differentiable solution maps and implicit layers (arXiv 2106.04350).

- :mod:`nsopt.layers.lasso`: Lasso / elastic-net solution maps
  ``nsopt.layers.lasso.solution(A, b, theta)``, differentiable in ``theta``, ``A``, ``b``;
- :mod:`nsopt.layers.lasso_hpo`: held-out / K-fold criteria, hypergradient descent, grid search;
- :mod:`nsopt.layers.deq`: the monotone deep equilibrium layer :class:`~nsopt.layers.deq.MonotoneDEQ`.

Every iterative solver here follows :mod:`nsopt.failures` (``on_failure``).
"""

from nsopt.layers import deq, lasso, lasso_hpo

__all__ = ["deq", "lasso", "lasso_hpo"]
