"""One failure convention (nsopt.failures) in every iterative solver: on_failure="raise" raises
SolverError eagerly and a runtime error under jit, "warn" emits SolverWarning, "ignore" returns
a Solution whose result code names the failure."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt.implicit as ni
import nsopt.layers.lasso as lasso
from nsopt.failures import RESULTS, SolverError, SolverWarning
from nsopt.layers.deq import DEQSolver, MonotoneDEQ
from nsopt.nonsmooth import prox

_R = np.random.default_rng(0)
_M = jnp.asarray((lambda R: R @ R.T)(_R.normal(size=(4, 2))))  # rank 2: B singular
_A = jnp.asarray(_R.normal(size=(30, 60)))
_b = _A[:, :5] @ jnp.asarray(_R.normal(size=5)) + 0.1 * jnp.asarray(_R.normal(size=30))
_J = int(jnp.argmax(jnp.abs(_A.T @ _b)))  # in E just below lambda_max
_A2 = jnp.concatenate([_A, _A[:, _J : _J + 1]], axis=1)  # duplicated: A_E^T A_E singular
_X = jnp.asarray(_R.normal(size=(3, 4)))


def _root_singular(on_failure):
    f = ni.root(lambda t, x: _M @ x - t, lambda t: jnp.linalg.pinv(_M) @ t, on_failure=on_failure)
    return f.solution


def _root_residual(on_failure):
    f = ni.root(lambda t, x: x**2 - t, lambda t: jnp.sqrt(t) + 1e-3, residual_tol=1e-8,
                on_failure=on_failure)
    return f.solution


def _fb(on_failure):
    fb = ni.forward_backward(lambda th, x: 0.5 * jnp.sum((_A @ x - _b) ** 2),
                             lambda th, v, g: prox.soft_threshold(v, g * th),
                             smoothness=float(jnp.linalg.norm(_A, 2) ** 2), max_steps=3,
                             x0=jnp.zeros(60), on_failure=on_failure)
    return lambda th: fb.solve(th)


def _lasso_steps(on_failure):
    cfg = lasso.LassoConfig(max_steps=2, patience=50)
    return lambda th: lasso.solve(_A, _b, th, config=cfg, on_failure=on_failure)


def _lasso_rank(on_failure):
    return lambda th: lasso.solve(_A2, _b, th, on_failure=on_failure)


def _enet_steps(on_failure):
    cfg = lasso.LassoConfig(max_steps=2, patience=50)
    return lambda th: lasso.enet_solve(_A, _b, th, config=cfg, on_failure=on_failure)


def _deq(on_failure):
    layer = MonotoneDEQ(4, m=0.3, solver=DEQSolver(tol=1e-14, max_steps=2), on_failure=on_failure)
    params = MonotoneDEQ(4, m=0.3).init(jax.random.key(0), _X)
    return lambda x: layer.apply(params, x, method=MonotoneDEQ.solution)


_LMAX = float(lasso.lambda_max(_A, _b))
CASES = {
    # name: (factory, argument, expected code, message prefix)
    "root singular": (_root_singular, jnp.ones(4), RESULTS.singular, "nsopt.implicit: "),
    "root residual": (_root_residual, jnp.asarray(0.3), RESULTS.residual_too_large, "nsopt.implicit: "),
    "forward_backward": (_fb, jnp.asarray(0.1), RESULTS.max_steps_reached,
                         "nsopt.implicit.forward_backward: "),
    "lasso max_steps": (_lasso_steps, jnp.asarray(np.log(0.05 * _LMAX)), RESULTS.max_steps_reached,
                        "nsopt.layers.lasso: "),
    "lasso rank": (_lasso_rank, jnp.asarray(np.log(0.5 * float(lasso.lambda_max(_A2, _b)))),
                   RESULTS.rank_deficient, "nsopt.layers.lasso: "),
    "elastic net": (_enet_steps, jnp.asarray([np.log(0.05 * _LMAX), 0.0]), RESULTS.max_steps_reached,
                    r"nsopt.layers.lasso \(elastic net\): "),
    "deq": (_deq, _X, RESULTS.max_steps_reached, "nsopt.layers.deq: "),
}


@pytest.mark.parametrize("name", list(CASES))
def test_failure_raises_warns_or_is_ignored(name):
    factory, arg, code, prefix = CASES[name]
    with pytest.raises(SolverError, match=prefix):
        factory("raise")(arg)
    with pytest.raises(RuntimeError, match=prefix):  # under jit: equinox.error_if
        jax.block_until_ready(jax.jit(factory("raise"))(arg))
    with pytest.warns(SolverWarning, match=prefix):
        factory("warn")(arg)
    sol = factory("ignore")(arg)
    result = np.asarray(sol.result)  # one code per input for the (batched) DEQ
    assert np.any(result == int(code)) and set(result.ravel().tolist()) <= {0, int(code)}, result


@pytest.mark.parametrize("linear_solve", ["dense", "gmres"])
def test_derivative_failure_of_root(linear_solve):
    """The derivative of a singular root: raised eagerly / under jit, warned, or ignored."""
    def fn(on_failure):
        f = ni.root(lambda t, x: _M @ x - t, lambda t: jnp.linalg.pinv(_M) @ t,
                    linear_solve=linear_solve, on_failure=on_failure)
        return jax.jacfwd(f)

    msg = "invertibility condition of the nonsmooth implicit function theorem"
    t = jnp.ones(4)
    with pytest.raises(RuntimeError, match=msg):  # the derivative kernels are compiled
        jax.block_until_ready(fn("raise")(t))
    with pytest.raises(RuntimeError, match=msg):
        jax.block_until_ready(jax.jit(fn("raise"))(t))
    with pytest.warns(SolverWarning, match=msg):
        jax.block_until_ready(fn("warn")(t))
    assert fn("ignore")(t).shape == (4, 4)  # no error: the caller chose to read nothing


def test_lasso_solution_array_api_follows_the_switch():
    """``solution`` (array) raises / warns / ignores like ``solve`` (Solution)."""
    theta = CASES["lasso rank"][1]
    with pytest.raises(SolverError, match="rank deficient"):
        lasso.solution(_A2, _b, theta)
    with pytest.warns(SolverWarning, match="rank deficient"):
        jax.block_until_ready(lasso.solution(_A2, _b, theta, on_failure="warn"))
    x = lasso.solution(_A2, _b, theta, on_failure="ignore")
    np.testing.assert_array_equal(x, lasso.solve(_A2, _b, theta, on_failure="ignore").value)
