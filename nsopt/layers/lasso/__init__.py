"""Lasso and elastic-net solution maps, differentiable in the penalty and the data.

    Lasso:        x^(theta) = argmin_x 1/2 ||A x - b||^2 + e^theta ||x||_1
    Elastic net:  x^(theta) = argmin_x 1/2 ||A x - b||^2 + e^theta1 ||x||_1 + e^theta2 / 2 ||x||^2

(Bolte, Le, Pauwels, Silveti-Falls, arXiv 2106.04350, Prop. 5; ``docs/theory.md``.)
Writing ``lam = e^theta1``, ``mu = e^theta2`` (``mu = 0`` for the Lasso), the
solution solves the forward-backward fixed point
``x = prox_{gamma lam ||.||_1}(x - gamma (A^T (A x - b) + mu x))``; its
conservative Jacobian with ``q = 1`` on the support ``S`` and ``q = 0`` off it
is the support-restricted linear system used here:

    (A_S^T A_S + mu I) dx_S = -(dlam sign(x_S) + dmu x_S + dA_S^T r + A_S^T (dA x - db)),
    dx = 0 off S,      r = A x - b,

so ``dx_S/dtheta = -e^theta (A_S^T A_S)^{-1} sign(x_S)`` for the Lasso.  The
Lasso solution is unique and this is a conservative Jacobian when ``A_E^T A_E``
has full rank, ``E = {j : |A_j^T (b - A x^)| = lam}`` the equicorrelation set
(independent of the solution, ``S ⊆ E``); :func:`solution` checks it: a failure
``RESULTS.rank_deficient`` handled by ``on_failure`` (:mod:`nsopt.failures`).  The elastic net is strongly convex, hence
always uniquely solvable and invertible.

Forward solver (never differentiated through): FISTA with adaptive restart,
interleaved with support-restricted Newton trials (once the sign pattern has
been stable for ``patience`` steps, solve the restricted system on it; accept
the Newton point when it satisfies the KKT conditions, or when it lowers the
objective), on a working set of columns (the support, then the largest
``|A_j^T (b - A x)|``) that is enlarged until the KKT conditions hold on all
columns.  Shapes are static under ``jit``: the support is capped by
``LassoConfig.max_support`` (``min(n, p)`` by default for the Lasso, a bound for
every solution when Prop. 5 holds), and restricted factorizations run at sizes
``64, 128, 256, ...`` up to the cap, chosen at run time (``lax.switch``).
Convergence means ``kkt_violation = dist_inf(0, dF(x)) / lam <= tol``; a Newton
point that passes it is exact up to rounding.

Everything is traceable: ``jit``, ``vmap`` (over ``theta``, the data, or both),
``grad``/``vjp``/``jacrev`` and ``jvp``/``jacfwd`` compose; reverse mode works
because the tangent is a triangular solve with the Cholesky factor of
``A_S^T A_S + mu I``, which JAX transposes.  Arrays are ordinary arguments: pass
data as arguments of a jitted function, not as closure constants.

Failures (:mod:`nsopt.failures`): :func:`solve` / :func:`enet_solve` return a
:class:`~nsopt.failures.Solution` with the result code and statistics;
:func:`solution` / :func:`enet_solution` return the array ``x`` (differentiable).  Both
take ``on_failure="raise"|"warn"|"ignore"``.

Layout: ``config`` (:class:`LassoConfig`), ``linalg`` (tiered Cholesky factors, Newton
steps), ``solver`` (FISTA + Newton, working sets), ``forward`` (result codes, the rank
check of Prop. 5), ``derivative`` (the ``custom_jvp``), ``api``.  Held-out criteria,
K-fold cross-validation and hyperparameter loops are in :mod:`nsopt.layers.lasso_hpo`.

Performance note: the restricted Cholesky factorizations call LAPACK through
scipy's OpenBLAS; on a loaded machine its multi-threaded kernels can stall (a
300 x 300 factorization taking 200 ms instead of 0.5 ms).  Set
``OPENBLAS_NUM_THREADS=1`` before importing numpy/JAX when timing.
"""

from nsopt.failures import RESULTS, Solution
from nsopt.layers.lasso.api import enet_solution, enet_solve, lambda_max, solution, solve
from nsopt.layers.lasso.config import LassoConfig

__all__ = ["RESULTS", "LassoConfig", "Solution", "enet_solution", "enet_solve", "lambda_max",
           "solution", "solve"]
