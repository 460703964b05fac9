# TEMPORARY SHIM: delete after merge (nsopt/papers/lasso_hpo.py imports this path; the Lasso moved
# to nsopt.layers.lasso and its HPO utilities to nsopt.layers.lasso_hpo).
"""Deprecated path of :mod:`nsopt.layers.lasso` and :mod:`nsopt.layers.lasso_hpo`."""

from nsopt.layers.lasso import *  # noqa: F401,F403
from nsopt.layers.lasso_hpo import *  # noqa: F401,F403
