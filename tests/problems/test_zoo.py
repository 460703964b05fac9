"""The problem zoo: SGD from the default init with the CLI's default schedule reaches each
problem's known solution set, and the gradient-sampling criticality measure ends near 0.

Known answers are independent of the SGD runs: the planted signal (phase retrieval, blind
deconvolution, ReLU teacher), a linear program (LAD), scikit-learn's LinearSVC (SVM), the
closed-form critical point ``(1, 0)`` (the toys)."""

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

import nsopt
from nsopt import problems as P
from nsopt.flow import criticality
from nsopt.problems.samplers import iid

CONF = Path(__file__).resolve().parents[2] / "conf"
STEPS = 4000


def default_schedule():
    """The CLI's default schedule (conf/schedule/inverse_power.yaml)."""
    node = OmegaConf.to_container(OmegaConf.load(CONF / "schedule" / "inverse_power.yaml"))
    assert node.pop("_target_") == "nsopt.schedules.inverse_power"
    return nsopt.schedules.inverse_power(**node)


def lad_solution(p):
    from scipy.optimize import linprog

    X, y = np.asarray(p.X), np.asarray(p.y)
    n, D = X.shape
    Z = np.hstack([X, np.ones((n, 1))])
    c = np.r_[np.zeros(D + 1), np.ones(n) / n]           # min (1/n) sum t_i, -t <= Z w - y <= t
    A = np.block([[Z, -np.eye(n)], [-Z, -np.eye(n)]])
    res = linprog(c, A_ub=A, b_ub=np.r_[y, -y], bounds=[(None, None)] * (D + 1) + [(0, None)] * n,
                  method="highs")
    assert res.status == 0
    return res.x[: D + 1]


def svm_solution(p):
    from sklearn.svm import LinearSVC

    X, y = np.asarray(p.X), np.asarray(p.y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = LinearSVC(loss="hinge", C=1 / (float(p.lam) * len(y)), fit_intercept=False, tol=1e-12,
                        max_iter=10**6).fit(X, y)
    return fit.coef_[0]


def point_distance(ref):
    return lambda w: jnp.linalg.norm(w - jnp.asarray(ref), axis=-1)


# name -> (small instance, distance to the known solution set, tolerance on that distance)
CASES = {
    "phase_retrieval": (lambda: P.phase_retrieval(d=5, m=100, corruption=0.1),
                        lambda p: p.distance_to_solutions, 0.05),
    "blind_deconvolution": (lambda: P.blind_deconvolution(d1=3, d2=3, m=60, corruption=0.1),
                            lambda p: jax.vmap(p.distance_to_solutions), 0.05),
    "relu_regression": (lambda: P.relu_regression(d=5, m=100), lambda p: p.distance_to_solutions, 0.05),
    "lad": (lambda: P.lad(), lambda p: point_distance(lad_solution(p)), 0.1),
    "svm": (lambda: P.svm(num_features=10), lambda p: point_distance(svm_solution(p)), 0.1),
    "kinked_line": (lambda: P.kinked_line(), lambda p: point_distance([1.0, 0.0]), 0.05),
    "max_line": (lambda: P.max_line(), lambda p: point_distance([1.0, 0.0]), 0.05),
}


@pytest.mark.parametrize("name", list(CASES))
def test_sgd_from_default_init_reaches_the_known_solutions(name):
    make, dist_of, tol = CASES[name]
    p = make()
    dist = dist_of(p)
    w0 = p.inits(jax.random.key(1), 2)
    traj = nsopt.run_batch(nsopt.sgd(default_schedule()), p.oracle(), p.sampler, w0, 2, STEPS, STEPS // 4)
    assert bool(traj.finite.all())
    D = w0.shape[-1]
    w_end = traj.w[..., -1, :].reshape(-1, D)
    d0, d_end = np.asarray(dist(w0)), np.asarray(dist(w_end))
    assert d0.min() > 5 * tol                        # the runs start far from the solutions
    assert d_end.max() < tol, d_end
    # gradient sampling in a ball of radius 0.05 around the end point: dist(0, conv) ~ 0 there,
    # of order 1 at the init
    key = jax.random.key(3)
    c_end = float(criticality(p.field, w_end[0], key, 0.05, 64).norm)
    c_0 = float(criticality(p.field, w0[0], key, 0.05, 64).norm)
    assert c_end < 0.02 and c_end < 0.05 * c_0, (c_end, c_0)


@pytest.mark.parametrize("name", ["phase_retrieval", "blind_deconvolution", "relu_regression"])
def test_planted_signal_is_a_minimizer(name):
    """``F = 0`` at the planted signal without outliers, > 0 away from the solution set."""
    make = {"phase_retrieval": lambda: P.phase_retrieval(d=5, m=100, corruption=0.0),
            "blind_deconvolution": lambda: P.blind_deconvolution(d1=3, d2=3, m=60, corruption=0.0),
            "relu_regression": lambda: P.relu_regression(d=5, m=100)}[name]
    p = make()
    star = {"phase_retrieval": lambda: p.x_star, "relu_regression": lambda: p.w_star,
            "blind_deconvolution": lambda: jnp.concatenate([2.0 * p.x_star, p.y_star / 2.0])}[name]()
    assert abs(float(p.F(star))) < 1e-12
    if name == "phase_retrieval":
        assert abs(float(p.F(-star))) < 1e-12       # the sign is not identifiable
    noise = 0.1 * jax.random.normal(jax.random.key(0), star.shape, star.dtype)
    assert float(p.F(star + noise)) > 1e-3


def test_blind_deconvolution_distance_is_the_minimum_over_the_hyperbola():
    p = P.blind_deconvolution(d1=3, d2=4, m=60)
    w = jax.random.normal(jax.random.key(5), (7,), p.b.dtype)
    c = np.concatenate([-np.geomspace(1e-3, 1e3, 20001), np.geomspace(1e-3, 1e3, 20001)])
    x, y = np.asarray(w[:3]), np.asarray(w[3:])
    grid = np.sqrt(((x[None] - c[:, None] * np.asarray(p.x_star)) ** 2).sum(1)
                   + ((y[None] - np.asarray(p.y_star)[None] / c[:, None]) ** 2).sum(1)).min()
    assert float(p.distance_to_solutions(w)) == pytest.approx(grid, rel=1e-4)


@pytest.mark.parametrize("make", [lambda k: P.max_line(kink_max=k), lambda k: P.kinked_line(kink_relu=k)])
def test_toys_artificial_critical_point(make):
    """With kink 0 autodiff returns 0 at (0, 0), which is not Clarke critical: gradient sampling
    sees ``dist(0, conv) = |d/dw1 F| = 1``; with kink 1/2 autodiff is the gradient there."""
    zero = jnp.zeros(2)
    assert np.allclose(make(0.0).field(zero), 0.0)
    assert np.allclose(make(0.5).field(zero), [-1.0, 0.0])
    c = criticality(make(0.0).field, zero, jax.random.key(0), 1e-3, 64)
    assert float(c.norm) == pytest.approx(1.0, abs=1e-2)


def test_lad_and_svm_objectives_match_numpy():
    lad = P.lad(num_examples=50, whitened=False)
    svm = P.svm(num_features=5, lam=0.1)
    w = jnp.linspace(-1, 1, 11)
    X, y = np.asarray(lad.X), np.asarray(lad.y)
    assert float(lad.F(w)) == pytest.approx(np.mean(np.abs(X @ np.asarray(w[:-1]) + float(w[-1]) - y)), rel=1e-12)
    X, y, v = np.asarray(svm.X), np.asarray(svm.y), np.linspace(-1, 1, 6)
    ref = np.mean(np.maximum(0, 1 - y * (X @ v))) + 0.05 * np.sum(v**2)
    assert float(svm.F(jnp.asarray(v))) == pytest.approx(ref, rel=1e-12)
    assert X.shape == (569, 6) and np.allclose(X[:, -1], 1) and set(np.unique(y)) == {-1.0, 1.0}


def test_whitening_is_a_change_of_basis():
    """Whitened features span the same column space with identity covariance, so the LAD
    objectives have the same minimum value."""
    a, b = P.lad(whitened=True), P.lad(whitened=False)
    Xa, Xb = np.asarray(a.X), np.asarray(b.X)
    assert np.allclose(Xa.T @ Xa / len(Xa), np.eye(Xa.shape[1]), atol=1e-10)
    coef = np.linalg.lstsq(Xa, Xb, rcond=None)[0]
    assert np.allclose(Xa @ coef, Xb, atol=1e-8)
    assert float(a.F(jnp.asarray(lad_solution(a)))) == pytest.approx(float(b.F(jnp.asarray(lad_solution(b)))),
                                                                      rel=1e-8)


@pytest.mark.parametrize("factory,kwargs,message", [
    (P.phase_retrieval, {"d": 5, "m": 9}, r"^m=9 is not allowed; it must be an integer >= 10"),
    (P.phase_retrieval, {"corruption": 0.5}, r"^corruption=0.5 is not allowed"),
    (P.relu_regression, {"kink": 2.0}, r"^kink=2.0 is not allowed"),
    (P.svm, {"dataset": "iris"}, r"^dataset='iris' is not allowed; choose one of \['breast_cancer'\]"),
    (P.lad, {"sampling": nsopt.problems.samplers.reshuffle(500)},
     r"^sampling.batch_size=500 is not allowed; it must be an integer in \[1, 442\]"),
])
def test_constructors_reject_bad_values(factory, kwargs, message):
    with pytest.raises(nsopt.validate.BadValue, match=message):
        factory(**kwargs)


def test_registry_and_default_sampling():
    for name in CASES:
        assert name in P.REGISTRY
    assert P.lad().sampling == iid(32) and P.phase_retrieval().sampling == iid(1)
