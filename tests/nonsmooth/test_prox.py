"""nsopt.nonsmooth.prox: derivatives away from kinks, the documented Clarke choice on kinks, and the
defining inequalities of proximal maps (hypothesis)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nsopt.nonsmooth.prox as P


def simplex_threshold(x, r):
    return float(P._simplex_threshold(jnp.asarray(x), jnp.asarray([r]))[0])


# name -> (map (x, params) -> flat output, params, distance of (x, params) to the nearest tie)
CASES = {
    "soft_threshold": (lambda x, p: P.soft_threshold(x, p[0]), [0.5],
                       lambda x, p: np.min(np.abs(np.abs(x) - p[0]))),
    "elastic_net": (lambda x, p: P.elastic_net(x, p[0], p[1]), [0.5, 0.3],
                    lambda x, p: np.min(np.abs(np.abs(x) - p[0]))),
    "group_lasso": (lambda x, p: P.group_lasso(x.reshape(3, 2), p).ravel(), [0.5, 1.0, 2.0],
                    lambda x, p: np.min(np.abs(np.linalg.norm(x.reshape(3, 2), axis=1) - p))),
    "box": (lambda x, p: P.box(x, p[0], p[1]), [-0.5, 0.7],
            lambda x, p: min(np.min(np.abs(x - p[0])), np.min(np.abs(x - p[1])))),
    "simplex": (lambda x, p: P.simplex(x, p[0]), [1.0],
                lambda x, p: np.min(np.abs(x - simplex_threshold(x, p[0])))),
    "l2_ball": (lambda x, p: P.l2_ball(x, p[0]), [1.0],
                lambda x, p: abs(np.linalg.norm(x) - p[0])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_derivatives_match_finite_differences_away_from_kinks(name):
    fn, params, distance = CASES[name]
    rng = np.random.default_rng(0)
    jac_f = jax.jit(jax.jacfwd(fn, argnums=(0, 1)))
    jac_r = jax.jit(jax.jacrev(fn, argnums=(0, 1)))
    f = jax.jit(fn)
    h = 1e-6
    checked = 0
    for _ in range(6):
        x = rng.normal(size=6) * 1.2
        p = np.asarray(params, float)
        if distance(x, p) < 1e-3:
            continue
        z = np.concatenate([x, p])
        fd = np.stack([
            (np.asarray(f(*np.split(z + h * e, [6]))) - np.asarray(f(*np.split(z - h * e, [6]))))
            / (2 * h) for e in np.eye(z.size)], axis=1)
        jf = np.concatenate(jac_f(jnp.asarray(x), jnp.asarray(p)), axis=1)
        jr = np.concatenate(jac_r(jnp.asarray(x), jnp.asarray(p)), axis=1)
        np.testing.assert_allclose(jf, fd, atol=1e-8)
        np.testing.assert_allclose(jr, jf, atol=1e-14)
        checked += 1
    assert checked >= 3


# --------------------------------------------------------------------------- kinks


@pytest.mark.parametrize("tie", [0.0, 0.3, 1.0])
def test_soft_threshold_and_elastic_net_at_the_threshold(tie):
    x = jnp.array([0.5, -0.5, 0.2, 2.0])
    J = jax.jit(jax.jacfwd(P.soft_threshold))(x, 0.5, tie)
    np.testing.assert_allclose(J, np.diag([tie, tie, 0.0, 1.0]))
    dtau = jax.jit(jax.jacfwd(P.soft_threshold, argnums=1))(x, 0.5, tie)
    np.testing.assert_allclose(dtau, [-tie, tie, 0.0, -1.0])
    Je = jax.jit(jax.jacrev(P.elastic_net))(x, 0.5, 1.0, tie)
    np.testing.assert_allclose(Je, np.diag([tie, tie, 0.0, 1.0]) / 2.0)


@pytest.mark.parametrize("tie", [0.0, 0.25])
def test_box_on_its_bounds(tie):
    x = jnp.array([-1.0, 2.0, 0.0, 3.0])
    J = jax.jit(jax.jacfwd(P.box, argnums=(0, 1, 2)))(x, -1.0, 2.0, tie)
    np.testing.assert_allclose(J[0], np.diag([tie, tie, 1.0, 0.0]))
    np.testing.assert_allclose(J[1], [1 - tie, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(J[2], [0.0, 1 - tie, 0.0, 1.0])


@pytest.mark.parametrize("tie", [0.0, 0.5])
def test_l2_ball_and_group_lasso_on_their_spheres(tie):
    x = jnp.array([0.6, 0.8])  # ||x|| = 1
    u = np.asarray(x)
    J = jax.jit(jax.jacfwd(P.l2_ball))(x, 1.0, tie)
    np.testing.assert_allclose(J, tie * np.eye(2) + (1 - tie) * (np.eye(2) - np.outer(u, u)),
                               atol=1e-15)
    np.testing.assert_allclose(jax.jit(jax.jacfwd(P.l2_ball, argnums=1))(x, 1.0, tie), (1 - tie) * u)
    G = jax.jit(jax.jacrev(P.group_lasso))(x, 1.0, tie)
    np.testing.assert_allclose(G, tie * np.outer(u, u), atol=1e-15)
    # The origin: no NaN from the norm's derivative.
    np.testing.assert_allclose(jax.jacfwd(P.group_lasso)(jnp.zeros(2), 1.0, tie), np.zeros((2, 2)))
    np.testing.assert_allclose(jax.jacrev(P.l2_ball)(jnp.zeros(2), 1.0, tie), np.eye(2))


@pytest.mark.parametrize("tie", [0.0, 0.5, 1.0])
def test_simplex_ties(tie):
    x = jnp.array([1.0, 0.0, -1.0])  # nu = 0: x_1 = nu is a tie
    np.testing.assert_allclose(P.simplex(x), [1.0, 0.0, 0.0])
    J = jax.jit(jax.jacfwd(P.simplex))(x, 1.0, tie)
    P_S = np.zeros((3, 3))  # support {0}: I - 1 1^T / 1 on it
    P_ST = np.zeros((3, 3))
    P_ST[:2, :2] = np.eye(2) - 0.5
    np.testing.assert_allclose(J, tie * P_ST + (1 - tie) * P_S, atol=1e-15)
    dr = jax.jit(jax.jacfwd(P.simplex, argnums=1))(x, 1.0, tie)
    np.testing.assert_allclose(dr, tie * np.array([0.5, 0.5, 0.0]) + (1 - tie) * np.array([1.0, 0, 0]))


def test_batched_vector_maps_act_on_the_last_axis():
    x = jnp.arange(12.0).reshape(2, 3, 2) / 5.0
    for fn in (lambda v: P.group_lasso(v, 0.3), lambda v: P.l2_ball(v, 1.0), lambda v: P.simplex(v, 1.0)):
        np.testing.assert_allclose(fn(x), jax.vmap(jax.vmap(fn))(x), atol=1e-15)
    with pytest.raises(ValueError, match="at least one axis"):
        P.simplex(1.0)


# --------------------------------------------------------------------------- properties

VEC = hnp.arrays(np.float64, (6,), elements=st.floats(-3, 3, allow_nan=False, allow_infinity=False))
TAU = st.floats(0.01, 2.0)

PROXES = {
    "soft_threshold": jax.jit(lambda x, t: P.soft_threshold(x, t)),
    "elastic_net": jax.jit(lambda x, t: P.elastic_net(x, t, 0.5 * t)),
    "group_lasso": jax.jit(lambda x, t: P.group_lasso(x.reshape(3, 2), t).ravel()),
    "box": jax.jit(lambda x, t: P.box(x, -t, 0.5 * t)),
    "simplex": jax.jit(lambda x, t: P.simplex(x, t)),
    "l2_ball": jax.jit(lambda x, t: P.l2_ball(x, t)),
}

# g such that PROXES[name](x, t) = argmin_y g(y, t) + 1/2 ||y - x||^2 (inf outside a constraint)
G = {
    "soft_threshold": lambda y, t: t * np.sum(np.abs(y)),
    "elastic_net": lambda y, t: t * np.sum(np.abs(y)) + 0.25 * t * np.sum(y**2),
    "group_lasso": lambda y, t: t * np.sum(np.linalg.norm(y.reshape(3, 2), axis=1)),
}


@pytest.mark.parametrize("name", list(PROXES))
@settings(max_examples=40, deadline=None)
@given(x=VEC, y=VEC, t=TAU)
def test_firmly_nonexpansive(name, x, y, t):
    px, py = np.asarray(PROXES[name](x, t)), np.asarray(PROXES[name](y, t))
    d = px - py
    assert d @ d <= d @ (x - y) + 1e-12


@settings(max_examples=40, deadline=None)
@given(x=VEC, t=TAU)
def test_moreau_identities(x, t):
    # prox_{t ||.||_1}(x) + t P_{[-1,1]^n}(x / t) = x  and  prox_{t ||.||_2} + t P_{B_2}(. / t) = id.
    np.testing.assert_allclose(P.soft_threshold(x, t) + t * P.box(x / t, -1.0, 1.0), x, atol=1e-12)
    xg = x.reshape(3, 2)
    np.testing.assert_allclose(P.group_lasso(xg, t) + t * P.l2_ball(xg / t, 1.0), xg, atol=1e-12)


@pytest.mark.parametrize("name", list(G))
@settings(max_examples=40, deadline=None)
@given(x=VEC, y=VEC, t=TAU)
def test_prox_subgradient_inequality(name, x, y, t):
    # p = prox_g(x)  <=>  x - p in d g(p)  <=>  g(y) >= g(p) + <x - p, y - p> for all y.
    p = np.asarray(PROXES[name](x, t))
    assert G[name](y, t) >= G[name](p, t) + (x - p) @ (y - p) - 1e-10


@pytest.mark.parametrize("name", ["box", "simplex", "l2_ball"])
@settings(max_examples=40, deadline=None)
@given(x=VEC, w=VEC, t=TAU)
def test_projection_variational_inequality(name, x, w, t):
    # p = P_C(x)  <=>  p in C and <x - p, y - p> <= 0 for all y in C.
    p = np.asarray(PROXES[name](x, t))
    if name == "box":
        y, inside = np.clip(w, -t, 0.5 * t), np.all((p >= -t - 1e-12) & (p <= 0.5 * t + 1e-12))
    elif name == "simplex":
        e = np.exp(w - w.max())
        y, inside = t * e / e.sum(), np.all(p >= 0) and abs(p.sum() - t) < 1e-12
    else:
        y, inside = t * w / max(np.linalg.norm(w), 1.0) / 3.0, np.linalg.norm(p) <= t + 1e-12
    assert inside
    assert (x - p) @ (y - p) <= 1e-10


def test_nsopt_prox_is_the_nonsmooth_module():
    import nsopt
    import nsopt.prox

    assert nsopt.prox is P and nsopt.prox.box is P.box
