"""Differentiable solution maps and implicit layers (arXiv 2106.04350).

- :mod:`nsopt.layers.lasso`: Lasso / elastic-net solution maps
  ``nsopt.layers.lasso.solution(A, b, theta)``, differentiable in ``theta``, ``A``, ``b``;
- :mod:`nsopt.layers.lasso_hpo`: held-out / K-fold criteria, hypergradient descent, grid search;
- :mod:`nsopt.layers.deq`: the monotone deep equilibrium layer :class:`~nsopt.layers.deq.MonotoneDEQ`;
- :mod:`nsopt.layers.qp`: the QP solution map ``min 1/2 x^T Q x + q^T x s.t. Gx <= h, Ax = b``,
  differentiable in every argument, with a stated choice on weakly active constraints.

Every iterative solver here follows :mod:`nsopt.failures` (``on_failure``).
"""

from nsopt.layers import deq, lasso, lasso_hpo, qp

__all__ = ["deq", "lasso", "lasso_hpo", "qp"]
