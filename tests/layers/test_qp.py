"""QP layer: exact forward solve, implicit derivatives in every argument, degeneracy, jit/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsopt.failures import RESULTS
from nsopt.layers import qp
from test_qp_cases import active_set_jacobians, make_qp

ARGS = ("Q", "q", "G", "h", "A", "b")


def _x(data, **kw):
    return qp.solution(*data, **kw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_exact_to_rounding(seed):
    c = make_qp(seed, k=5)
    sol = qp.solve(*c.data)
    x, y, z = (np.asarray(v) for v in sol.value)
    assert int(sol.result) == RESULTS.successful and bool(sol.stats["polished"])
    # polishing on the identified active set: the known KKT point up to rounding (eps = 2.2e-16)
    assert np.max(np.abs(x - c.x)) < 1e-12 * (1 + np.max(np.abs(c.x)))
    assert np.max(np.abs(z - c.z)) < 1e-11 and np.max(np.abs(y - c.y)) < 1e-11
    assert int(sol.stats["num_active"]) == 5 and int(sol.stats["num_weakly_active"]) == 0


def test_no_constraints_and_only_equalities():
    c = make_qp(3, n=6, m=4, p=2, k=0)
    x = _x((c.Q, c.q, None, None, c.A, c.b))
    K = np.block([[c.Q, c.A.T], [c.A, np.zeros((2, 2))]])
    ref = np.linalg.solve(K, np.r_[-c.q, c.b])[:6]
    assert np.allclose(x, ref, atol=1e-12)
    x0 = _x((c.Q, c.q))
    assert np.allclose(x0, np.linalg.solve(c.Q, -c.q), atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 2e-4), (jnp.float64, 1e-11)])
def test_jit_vmap_batch(dtype, tol):
    cases = [make_qp(s, n=8, m=12, p=2, k=4) for s in range(6)]
    stack = [jnp.asarray(np.stack([c.data[i] for c in cases]), dtype) for i in range(6)]
    sol = jax.jit(jax.vmap(lambda *d: qp.solve(*d)))(*stack)
    assert sol.value.x.dtype == dtype and sol.value.x.shape == (6, 8)
    assert np.all(np.asarray(sol.result) == 0) and np.all(np.asarray(sol.stats["polished"]))
    ref = np.stack([c.x for c in cases])
    err = np.max(np.abs(np.asarray(sol.value.x, np.float64) - ref)) / (1 + np.max(np.abs(ref)))
    assert err < tol
    # gradients under vmap agree with the per-QP gradients
    g = jax.jit(jax.vmap(jax.grad(lambda q, *r: jnp.sum(_x((r[0], q) + r[1:]) ** 2), argnums=0)))(
        stack[1], stack[0], *stack[2:])
    g0 = jax.grad(lambda q: jnp.sum(_x((stack[0][0], q) + tuple(s[0] for s in stack[2:])) ** 2))(stack[1][0])
    assert np.allclose(g[0], g0, rtol=100 * tol, atol=100 * tol)


@pytest.mark.parametrize("arg", ARGS)
def test_jvp_every_argument_matches_finite_differences(arg):
    c = make_qp(4)
    data = list(c.data)
    i = ARGS.index(arg)
    rng = np.random.default_rng(i)
    d = rng.standard_normal(data[i].shape)

    def f(v):
        return _x(tuple(data[:i]) + (v,) + tuple(data[i + 1:]))

    _, jv = jax.jvp(f, (jnp.asarray(data[i]),), (jnp.asarray(d),))
    t = 1e-6  # nondegenerate: the solution map is smooth here, central differences are O(t^2)
    fd = (np.asarray(f(data[i] + t * d)) - np.asarray(f(data[i] - t * d))) / (2 * t)
    assert np.linalg.norm(jv - fd) <= 1e-7 * (1 + np.linalg.norm(fd))
    # reverse mode is the transpose: <u, J d> = <J^T u, d>
    u = rng.standard_normal(8)
    _, vjp = jax.vjp(f, jnp.asarray(data[i]))
    assert np.isclose(np.vdot(u, jv), np.vdot(vjp(jnp.asarray(u))[0], d), rtol=1e-10, atol=1e-12)


def test_multipliers_are_differentiated_too():
    c = make_qp(5)
    f = lambda h: qp.solve(c.Q, c.q, c.G, h, c.A, c.b).value.z  # noqa: E731
    d = np.random.default_rng(0).standard_normal(12)
    _, jv = jax.jvp(f, (jnp.asarray(c.h),), (jnp.asarray(d),))
    fd = (np.asarray(f(c.h + 1e-6 * d)) - np.asarray(f(c.h - 1e-6 * d))) / 2e-6
    assert np.allclose(jv, fd, atol=1e-6)


def test_jacobians_match_numpy_active_set_derivative():
    c = make_qp(6, k=5)
    ref = active_set_jacobians(c.Q, c.G, c.A, c.x, c.y, c.z, c.strong)
    Jq_rev = jax.jacrev(lambda q: _x((c.Q, q, c.G, c.h, c.A, c.b)))(jnp.asarray(c.q))
    Jq_fwd = jax.jacfwd(lambda q: _x((c.Q, q, c.G, c.h, c.A, c.b)))(jnp.asarray(c.q))
    Jh = jax.jacrev(lambda h: _x((c.Q, c.q, c.G, h, c.A, c.b)))(jnp.asarray(c.h))
    for J, R in ((Jq_rev, ref["q"]), (Jq_fwd, ref["q"]), (Jh, ref["h"])):
        assert np.max(np.abs(np.asarray(J) - R)) < 1e-10 * (1 + np.max(np.abs(R)))


def test_nonsymmetric_Q_is_symmetrized():
    c = make_qp(7)
    S = np.random.default_rng(1).standard_normal((8, 8))
    S = S - S.T  # x^T S x = 0: same objective
    assert np.allclose(_x((c.Q + S,) + c.data[1:]), c.x, atol=1e-12)
    g = jax.grad(lambda Q: jnp.sum(_x((Q,) + c.data[1:])))(jnp.asarray(c.Q + S))
    assert np.allclose(g, g.T, atol=1e-12)


# ---------------------------------------------------------------- degeneracy (weakly active constraints)


def _one_sided(f, v, d, t=1e-6):
    """Right and left one-sided differences (x is piecewise affine: exact within a piece)."""
    x0 = np.asarray(f(v))
    return (np.asarray(f(v + t * d)) - x0) / t, (x0 - np.asarray(f(v - t * d))) / t


def test_weakly_active_constraint_two_elements_match_one_sided_differences():
    c = make_qp(8, k=3, weak=1)
    j = int(np.flatnonzero(c.weak)[0])
    sol = qp.solve(*c.data)
    assert int(sol.result) == 0 and int(sol.stats["num_weakly_active"]) == 1
    assert int(sol.stats["num_active"]) == 4

    def f_h(h, w=0.0):
        return _x((c.Q, c.q, c.G, h, c.A, c.b), weak_weight=w)

    d = np.zeros(12)
    d[j] = 1.0
    J0 = jax.jvp(lambda h: f_h(h, 0.0), (jnp.asarray(c.h),), (jnp.asarray(d),))[1]
    J1 = jax.jvp(lambda h: f_h(h, 1.0), (jnp.asarray(c.h),), (jnp.asarray(d),))[1]
    right, left = _one_sided(f_h, c.h, d)
    # raising h_j loosens the constraint (x does not move: w = 0, inactive); lowering it pushes
    # x along the face (w = 1, active).  The two elements differ.
    assert np.linalg.norm(J1 - J0) > 0.1 * np.linalg.norm(J1)
    assert np.allclose(J0, right, atol=1e-7) and np.allclose(J0, 0.0, atol=1e-12)
    assert np.allclose(J1, left, atol=1e-7)
    # the active-set formula of NumPy with the weak row counted active / inactive gives the same
    ref1 = active_set_jacobians(c.Q, c.G, c.A, c.x, c.y, c.z, c.strong | c.weak)["h"] @ d
    assert np.allclose(J1, ref1, atol=1e-10)

    # a direction in q: each one-sided difference is one of the two elements
    dq = np.random.default_rng(3).standard_normal(8)
    f_q = lambda q, w=0.0: _x((c.Q, q, c.G, c.h, c.A, c.b), weak_weight=w)  # noqa: E731
    K0 = jax.jvp(lambda q: f_q(q, 0.0), (jnp.asarray(c.q),), (jnp.asarray(dq),))[1]
    K1 = jax.jvp(lambda q: f_q(q, 1.0), (jnp.asarray(c.q),), (jnp.asarray(dq),))[1]
    right, left = _one_sided(f_q, c.q, dq)
    assert np.linalg.norm(K1 - K0) > 0.01 * np.linalg.norm(K1)
    close = lambda u, v: np.allclose(u, v, atol=1e-6)  # noqa: E731
    assert (close(right, K0) and close(left, K1)) or (close(right, K1) and close(left, K0))
    # an intermediate weight is a third element, between the two on this segment
    Kh = jax.jvp(lambda q: f_q(q, 0.5), (jnp.asarray(c.q),), (jnp.asarray(dq),))[1]
    assert not close(Kh, K0) and not close(Kh, K1)


def test_weak_weight_is_validated():
    c = make_qp(0)
    with pytest.raises(ValueError, match=r"weak_weight=1.5 is not allowed"):
        qp.solve(*c.data, weak_weight=1.5)
