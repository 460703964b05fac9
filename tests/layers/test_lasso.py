"""nsopt.layers.lasso: solutions, exact derivatives (LARS), compositions, Prop. 5 checks.

The reference for derivatives is scikit-learn's ``lars_path``: the Lasso path is
piecewise linear in the penalty, so between two kinks ``alpha_k > alpha > alpha_{k+1}``
(lars scaling: ``alpha = e^theta / n``) the exact derivative is

    dx/dtheta = lam * dx/dlam = lam * (coef_{k+1} - coef_k) / (n (alpha_{k+1} - alpha_k)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import ElasticNet, Lasso, lars_path

import nsopt.layers.lasso as lasso
from nsopt.failures import RESULTS, SolverError, SolverWarning

N, P = 30, 60  # one shape for most tests: compiled once per configuration


def _problem(seed: int = 1, n: int = N, p: int = P):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, p))
    b = A[:, :4] @ np.array([2.0, -1.5, 1.0, 0.5]) + 0.3 * rng.standard_normal(n)
    return A, b


@pytest.fixture(scope="module")
def problem():
    return _problem()


@pytest.fixture(scope="module")
def path(problem):
    A, b = problem
    alphas, _, coefs = lars_path(A, b, method="lasso")
    return alphas, coefs


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


_solve = jax.jit(lambda A, b, t: lasso.solve(A, b, t, on_failure="ignore"))
_sol = jax.jit(lambda A, b, t: lasso.solution(A, b, t))
_jac = jax.jit(jax.jacfwd(lambda A, b, t: lasso.solution(A, b, t), argnums=2))


def test_derivative_matches_lars_path_between_kinks(path, problem):
    """Every segment of the exact LARS path: solution and derivative to 1e-6 (relative)."""
    A, b = problem
    alphas, coefs = path
    n = A.shape[0]
    checked = 0
    for k in range(len(alphas) - 1):
        a0, a1 = alphas[k], alphas[k + 1]
        if a1 < 1e-8 * alphas[0]:
            continue  # last segment down to alpha = 0: interpolation regime, support = n
        a = np.sqrt(a0 * a1)  # strictly between the kinks
        lam = n * a
        slope = (coefs[:, k + 1] - coefs[:, k]) / (n * (a1 - a0))
        x_exact = coefs[:, k] + (a - a0) * (coefs[:, k + 1] - coefs[:, k]) / (a1 - a0)
        sol = _solve(A, b, np.log(lam))
        assert int(sol.result) == RESULTS.successful
        assert _rel(sol.value, x_exact) < 1e-6
        assert _rel(_jac(A, b, np.log(lam)), lam * slope) < 1e-6
        checked += 1
    assert checked >= 20  # the path has many kinks; all interior segments were tested


def test_reverse_mode_equals_forward_mode_and_lars(path, problem):
    A, b = problem
    alphas, coefs = path
    n = A.shape[0]
    k = 5
    a = np.sqrt(alphas[k] * alphas[k + 1])
    theta = np.log(n * a)
    exact = n * a * (coefs[:, k + 1] - coefs[:, k]) / (n * (alphas[k + 1] - alphas[k]))
    w = np.linspace(-1.0, 2.0, A.shape[1])

    @jax.jit
    def reverse(t, A, b):
        f = lambda t: lasso.solution(A, b, t)
        return jax.grad(lambda t: jnp.dot(w, f(t)))(t), jax.jacrev(f)(t)

    g, jr = reverse(theta, A, b)
    assert abs(float(g) - w @ exact) <= 1e-8 * np.abs(w) @ np.abs(exact)
    assert _rel(jr, exact) < 1e-6


def test_solution_matches_sklearn_lasso():
    A, b = _problem(2, 40, 25)  # n > p as well
    n = A.shape[0]
    lmax = float(lasso.lambda_max(A, b))
    for frac in (0.5, 0.1, 0.01):
        lam = frac * lmax
        sk = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-14, max_iter=200_000).fit(A, b)
        sol = lasso.solve(A, b, np.log(lam))
        assert int(sol.result) == RESULTS.successful and float(sol.stats["kkt_violation"]) <= 1e-9
        assert _rel(sol.value, sk.coef_) < 1e-7
        assert not (int(sol.result) == RESULTS.rank_deficient)


def test_zero_above_lambda_max_and_zero_derivative(problem):
    A, b = problem
    theta = np.log(1.5 * float(lasso.lambda_max(A, b)))
    x = _sol(A, b, theta)
    assert np.all(np.asarray(x) == 0)
    assert np.all(np.asarray(_jac(A, b, theta)) == 0)
    sol = _solve(A, b, theta)
    assert int(sol.stats["support_size"]) == 0 and int(sol.stats["equicorrelation_size"]) == 0


def test_vmap_over_theta_equals_loop(problem):
    A, b = problem
    lmax = float(lasso.lambda_max(A, b))
    thetas = np.log(lmax * np.array([0.8, 0.3, 0.05]))
    # jvp with a unit tangent: the solution and dx/dtheta in one vmapped program.
    xs, js = jax.jit(jax.vmap(lambda t: jax.jvp(lambda s: lasso.solution(A, b, s), (t,),
                                                (jnp.ones_like(t),))))(thetas)
    for t, x, j in zip(thetas, xs, js):
        np.testing.assert_allclose(x, _sol(A, b, t), rtol=0, atol=1e-10)
        np.testing.assert_allclose(j, _jac(A, b, t), rtol=0, atol=1e-9)


def test_derivative_in_A_and_b_matches_finite_differences(problem):
    """Away from kinks the map is smooth in (A, b): central differences, step 1e-6."""
    A, b = problem
    theta = np.log(0.2 * float(lasso.lambda_max(A, b)))
    rng = np.random.default_rng(3)
    dA, db = rng.standard_normal(A.shape), rng.standard_normal(b.shape)
    w = rng.standard_normal(A.shape[1])

    @jax.jit
    def derivatives(A, b):
        f = lambda A, b: lasso.solution(A, b, theta)
        _, jvp = jax.jvp(f, (A, b), (dA, db))
        return jvp, jax.grad(lambda A, b: jnp.dot(w, f(A, b)), argnums=(0, 1))(A, b)

    jvp, (gA, gb) = derivatives(A, b)
    h = 1e-6
    fd = (np.asarray(_sol(A + h * dA, b + h * db, theta))
          - np.asarray(_sol(A - h * dA, b - h * db, theta))) / (2 * h)
    assert _rel(jvp, fd) < 1e-6
    # Reverse mode in A and b: <w, J (dA, db)> = <J^T w, (dA, db)>.
    lhs = float(np.dot(w, jvp))
    assert abs(lhs - (np.sum(gA * dA) + np.dot(gb, db))) <= 1e-9 * max(1.0, abs(lhs))


def test_held_out_hypergradient_jit_with_array_arguments(problem):
    A, b = problem
    rng = np.random.default_rng(4)
    Av, bv = rng.standard_normal((20, A.shape[1])), rng.standard_normal(20)

    def crit(t, A, b, Av, bv):
        return 0.5 * jnp.mean((Av @ lasso.solution(A, b, t) - bv) ** 2)

    theta = np.log(0.3 * float(lasso.lambda_max(A, b)))
    g = jax.jit(jax.grad(crit))(theta, A, b, Av, bv)
    h = 1e-5
    fd = (crit(theta + h, A, b, Av, bv) - crit(theta - h, A, b, Av, bv)) / (2 * h)
    assert abs(float(g) - float(fd)) <= 1e-6 * abs(float(fd))


# ----------------------------------------------------------------------------- Prop. 5


def _duplicated(problem):
    """Duplicate the column most correlated with b: it is in E just below lambda_max."""
    A, b = problem
    j = int(np.argmax(np.abs(A.T @ b)))
    A2 = np.concatenate([A, A[:, j : j + 1]], axis=1)
    return A2, b, np.log(0.5 * float(lasso.lambda_max(A2, b)))


def test_rank_deficiency_detected_on_duplicated_columns(problem):
    A2, b, theta = _duplicated(problem)
    sol = lasso.solve(A2, b, theta, on_failure="ignore")
    assert (int(sol.result) == RESULTS.rank_deficient)
    assert float(sol.stats["sigma_ratio"]) < 1e-6
    # Same problem without the duplicate: full rank, a healthy ratio.
    ok = lasso.solve(problem[0], b, theta)
    assert not (int(ok.result) == RESULTS.rank_deficient) and float(ok.stats["sigma_ratio"]) > 1e-3


def test_rank_deficiency_raises_eagerly_and_under_jit(problem):
    A2, b, theta = _duplicated(problem)
    with pytest.raises(Exception, match="rank deficient"):
        lasso.solution(A2, b, theta)
    with pytest.raises(Exception, match="rank deficient"):
        jax.jit(lambda A, b, t: lasso.solution(A, b, t))(A2, b, theta)
    with pytest.raises(Exception, match="rank deficient"):
        jax.grad(lambda t: jnp.sum(lasso.solution(A2, b, t)))(theta)


def test_rank_deficiency_warn_and_ignore(problem):
    A2, b, theta = _duplicated(problem)
    with pytest.warns(SolverWarning, match="rank deficient"):
        jax.block_until_ready(lasso.solution(A2, b, theta, on_failure="warn"))
    x = lasso.solution(A2, b, theta, on_failure="ignore")
    assert np.all(np.isfinite(np.asarray(x)))
    # Still a minimizer: the KKT conditions hold even though it is not unique.
    sol = lasso.solve(A2, b, theta, on_failure="ignore")
    assert int(sol.result) == RESULTS.rank_deficient and float(sol.stats["kkt_violation"]) <= 1e-9


def test_not_converged_policy(problem):
    A, b = problem
    theta = np.log(0.05 * float(lasso.lambda_max(A, b)))
    cfg = lasso.LassoConfig(max_steps=2, patience=50)
    sol = lasso.solve(A, b, theta, config=cfg, on_failure="ignore")
    assert int(sol.result) == RESULTS.max_steps_reached and not bool(sol.successful)
    with pytest.raises(SolverError, match="max_steps"):
        lasso.solution(A, b, theta, config=cfg)
    with pytest.warns(SolverWarning, match="max_steps"):
        jax.block_until_ready(lasso.solution(A, b, theta, config=cfg, on_failure="warn"))


def test_warm_start_gives_the_same_solution(problem):
    A, b = problem
    lmax = float(lasso.lambda_max(A, b))
    x1 = _sol(A, b, np.log(0.1 * lmax))
    sol = lasso.solve(A, b, np.log(0.09 * lmax), x0=x1)
    cold = _solve(A, b, np.log(0.09 * lmax))
    assert int(sol.result) == RESULTS.successful
    np.testing.assert_allclose(sol.value, cold.value, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- elastic net


def test_enet_matches_sklearn_and_finite_differences():
    A, b = _problem(5, 30, 40)
    n = A.shape[0]
    lam, mu = 0.2 * float(lasso.lambda_max(A, b)), 3.0
    theta = np.log([lam, mu])
    # sklearn: 1/(2n)||y - Xw||^2 + alpha rho ||w||_1 + alpha (1 - rho)/2 ||w||^2.
    sk = ElasticNet(alpha=(lam + mu) / n, l1_ratio=lam / (lam + mu), fit_intercept=False,
                    tol=1e-14, max_iter=200_000).fit(A, b)

    @jax.jit
    def enet(t, A, b):
        f = lambda t: lasso.enet_solution(A, b, t)
        return f(t), jax.jacfwd(f)(t), jax.jacrev(f)(t)

    x, J, Jr = enet(theta, A, b)
    assert _rel(x, sk.coef_) < 1e-7
    h = 1e-6
    for i in range(2):
        e = np.eye(2)[i] * h
        fd = (np.asarray(enet(theta + e, A, b)[0]) - np.asarray(enet(theta - e, A, b)[0])) / (2 * h)
        assert _rel(J[:, i], fd) < 1e-6
    np.testing.assert_allclose(Jr, J, rtol=0, atol=1e-10)


def test_enet_handles_duplicated_columns_and_support_beyond_n():
    """Strong convexity: unique even with duplicates; the support may exceed n."""
    A, b = _problem(6, 10, 30)
    A = np.concatenate([A, A[:, :1]], axis=1)
    theta = np.log([1e-3 * float(lasso.lambda_max(A, b)), 1.0])
    sol = lasso.enet_solve(A, b, theta)
    assert int(sol.result) == RESULTS.successful and int(sol.stats["support_size"]) > A.shape[0]
    x = np.asarray(sol.value)
    assert abs(x[0] - x[-1]) < 1e-10  # duplicated columns share the weight equally


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tol": 2.0}, "tol"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_support": 0}, "max_support"),
        ({"working_set": -1}, "working_set"),
        ({"rank_rtol": -1e-3}, "rank_rtol"),
    ],
)
def test_config_validation_names_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lasso.LassoConfig(**kwargs)


def test_argument_validation(problem):
    A, b = problem
    with pytest.raises(ValueError, match="on_failure='sometimes' is not allowed"):
        lasso.solution(A, b, 0.0, on_failure="sometimes")
    with pytest.raises(ValueError, match="theta must be a scalar"):
        lasso.solution(A, b, np.zeros(2))
    with pytest.raises(ValueError, match=r"b must have shape \(30,\)"):
        lasso.solution(A, b[:-1], 0.0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        lasso.enet_solution(A, b, 0.0)


# ----------------------------------------------------------------------------- property


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), frac=st.floats(1e-3, 0.99),
       corr=st.floats(0.0, 0.9))
def test_random_problems_solved_to_sklearn_accuracy(seed, frac, corr):
    """Random (correlated) designs and penalties: certified KKT, sklearn's solution, the
    support-restricted derivative recomputed independently with numpy."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N, P)) + corr * rng.standard_normal((N, 1))
    b = rng.standard_normal(N) + A[:, :3] @ np.array([1.0, -1.0, 0.5])
    lam = frac * float(lasso.lambda_max(A, b))
    sol = _solve(A, b, np.log(lam))
    # converged; a correlated design may be rank deficient on E (still a minimizer)
    assert int(sol.result) in (RESULTS.successful, RESULTS.rank_deficient)
    assert float(sol.stats["kkt_violation"]) <= 1e-9
    sk = Lasso(alpha=lam / N, fit_intercept=False, tol=1e-15, max_iter=500_000).fit(A, b)
    obj = lambda x: 0.5 * np.sum((A @ x - b) ** 2) + lam * np.abs(x).sum()
    assert obj(np.asarray(sol.value)) <= obj(sk.coef_) + 1e-12 * obj(sk.coef_)
    assert _rel(sol.value, sk.coef_) < 1e-5  # sklearn's CD is the less accurate of the two
    S = np.asarray(sol.value) != 0
    if S.any() and not (int(sol.result) == RESULTS.rank_deficient):
        expected = np.zeros(P)
        expected[S] = -lam * np.linalg.solve(A[:, S].T @ A[:, S], np.sign(np.asarray(sol.value)[S]))
        assert _rel(_jac(A, b, np.log(lam)), expected) < 1e-8
