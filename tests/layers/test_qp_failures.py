"""QP layer failures: invertibility condition, infeasible/unbounded/non-PSD/NaN data, shapes; raise/warn/ignore."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsopt.failures import RESULTS, SolverError, SolverWarning
from nsopt.layers import qp
from test_qp_cases import make_qp


def _rank_deficient():
    """Constraint 0 duplicated: both copies active, [G_E] has two equal rows (multipliers not unique)."""
    c = make_qp(0)
    G = np.vstack([c.G, c.G[:1]])
    h = np.r_[c.h, c.h[:1]]
    return c.Q, c.q, G, h, c.A, c.b


def _singular():
    """Q = diag(1, 0), constraint on x_1 only: x_2 is free with zero cost (the solution set is a line)."""
    return np.diag([1.0, 0.0]), np.array([1.0, 0.0]), np.array([[-1.0, 0.0]]), np.array([0.5]), None, None


CASES = {
    "rank_deficient": (_rank_deficient, RESULTS.rank_deficient, "full row rank"),
    "singular": (_singular, RESULTS.singular, "positive definite on the null space"),
    # x <= -1 and -x <= -1 (x >= 1)
    "infeasible": (lambda: (np.eye(1), np.zeros(1), np.array([[1.0], [-1.0]]), np.array([-1.0, -1.0]),
                            None, None), RESULTS.infeasible, "no x satisfies"),
    # min -x_1 s.t. -x <= 0, Q = 0 on x_1
    "unbounded": (lambda: (np.diag([0.0, 1.0]), np.array([-1.0, 0.0]), -np.eye(2), np.zeros(2),
                           None, None), RESULTS.unbounded, "unbounded"),
    "not_psd": (lambda: (np.diag([1.0, -1.0]), np.zeros(2), np.eye(2), np.ones(2), None, None),
                RESULTS.not_positive_semidefinite, "positive semidefinite"),
    "nan": (lambda: (np.eye(2), np.array([np.nan, 0.0]), np.eye(2), np.ones(2), None, None),
            RESULTS.nonfinite, "NaN"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_failure_raises_eagerly_with_the_condition_named(name):
    make, code, words = CASES[name]
    with pytest.raises(SolverError, match=words):
        qp.solve(*make())
    sol = qp.solve(*make(), on_failure="ignore")
    assert int(sol.result) == code
    with pytest.warns(SolverWarning, match=words):
        qp.solve(*make(), on_failure="warn")


@pytest.mark.parametrize("name", ["infeasible", "rank_deficient", "nan"])
def test_failure_under_jit_gives_a_code_or_a_runtime_error(name):
    make, code, words = CASES[name]
    data = tuple(None if v is None else jnp.asarray(v) for v in make())
    f = jax.jit(lambda *d: qp.solve(*d, on_failure="ignore").result)
    assert int(f(*data)) == code
    g = jax.jit(lambda *d: qp.solve(*d).value.x)
    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError), match=words):
        jax.block_until_ready(g(*data))


def test_codes_per_element_under_vmap():
    """A batch with one good and one infeasible QP: the codes say which one failed."""
    good = (np.eye(1), np.zeros(1), np.array([[1.0], [-1.0]]), np.array([1.0, 1.0]))
    bad = CASES["infeasible"][0]()[:4]
    stack = [jnp.asarray(np.stack([u, v])) for u, v in zip(good, bad)]
    res = jax.vmap(lambda *d: qp.solve(*d, on_failure="ignore").result)(*stack)
    assert res.tolist() == [RESULTS.successful, RESULTS.infeasible]


def test_good_qp_has_no_warning():
    c = make_qp(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = qp.solve(*c.data, on_failure="warn")
    assert int(sol.result) == 0


@pytest.mark.parametrize("bad,field", [
    (dict(Q=np.eye(3)), "Q.shape"),
    (dict(G=np.ones((2, 3))), "G.shape"),
    (dict(h=np.ones(3)), "G.shape"),
    (dict(q=np.ones((2, 1))), "q.shape"),
])
def test_mismatched_shapes_raise_when_built(bad, field):
    data = dict(Q=np.eye(2), q=np.zeros(2), G=np.ones((2, 2)), h=np.ones(2))
    data.update(bad)
    with pytest.raises(ValueError, match=rf"{field}=.* is not allowed"):
        qp.solve(**data)
    with pytest.raises(ValueError, match=rf"{field}=.* is not allowed"):
        jax.jit(lambda d: qp.solve(**d))(data)


def test_half_given_constraints_and_bad_settings():
    with pytest.raises(ValueError, match="give both G and h"):
        qp.solve(np.eye(2), np.zeros(2), G=np.eye(2))
    with pytest.raises(ValueError, match="on_failure='loud' is not allowed"):
        qp.solve(np.eye(2), np.zeros(2), on_failure="loud")
    with pytest.raises(ValueError, match="QPSolver.max_steps=0 is not allowed"):
        qp.QPSolver(max_steps=0)
