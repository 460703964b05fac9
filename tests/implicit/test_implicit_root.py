"""nsopt.implicit.root / fixed_point: the nonsmooth implicit function theorem (arXiv 2106.04350)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nsopt.implicit as ni
from nsopt.nonsmooth import kinks

XS = jnp.array([-0.9, -0.5, 0.0, 0.3, 0.7])


def circle(x, y):
    return x**2 + y**2 - 1.0


def exact_slope(x, branch=1.0):
    return -x / (branch * jnp.sqrt(1.0 - x**2))


# --------------------------------------------------------------------------- circle


@pytest.mark.parametrize("branch", [1.0, -1.0])
def test_circle_every_mode_matches_exact_slope(branch):
    y = ni.root(circle, lambda x: branch * jnp.sqrt(1.0 - x**2))
    want = exact_slope(XS, branch)
    np.testing.assert_allclose(jax.vmap(y)(XS), branch * jnp.sqrt(1 - XS**2), rtol=1e-15)
    for x, w in zip(XS[::2], want[::2]):  # eager
        np.testing.assert_allclose(jax.grad(y)(x), w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(jax.jacfwd(y)(x), w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(jax.jacrev(y)(x), w, rtol=1e-12, atol=1e-15)
        _, t = jax.jvp(y, (x,), (2.0,))
        np.testing.assert_allclose(t, 2.0 * w, rtol=1e-12, atol=1e-15)
        _, pull = jax.vjp(y, x)
        np.testing.assert_allclose(pull(3.0)[0], 3.0 * w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax.jit(jax.vmap(jax.grad(y)))(XS), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax.jacrev(jax.jit(jax.vmap(y)))(XS), jnp.diag(want), atol=1e-12)


def test_circle_second_derivative_is_implicit_too():
    y = ni.root(circle, lambda x: jnp.sqrt(1.0 - x**2))
    for x in (0.3, -0.6):
        np.testing.assert_allclose(jax.hessian(y)(x), -1.0 / (1 - x**2) ** 1.5, rtol=1e-10)
        np.testing.assert_allclose(jax.jacfwd(jax.grad(y))(x), -1.0 / (1 - x**2) ** 1.5, rtol=1e-10)


def test_forward_solve_is_never_differentiated():
    # Same value as sqrt(1 - x^2), but autodiff of this solve would add 100.
    def cheating_solve(x):
        return jnp.sqrt(1.0 - x**2) + 100.0 * (x - jax.lax.stop_gradient(x))

    # A Newton solve in a while_loop: reverse mode through it would raise.
    def newton(x):
        def body(c):
            y, k = c
            return y - circle(x, y) / (2 * y), k + 1

        y, _ = jax.lax.while_loop(lambda c: c[1] < 60, body, (jnp.ones_like(x), 0))
        return y

    for solve in (cheating_solve, newton):
        y = ni.root(circle, solve)
        np.testing.assert_allclose(jax.grad(y)(0.3), exact_slope(0.3), rtol=1e-12)
        np.testing.assert_allclose(jax.jit(jax.grad(y))(0.3), exact_slope(0.3), rtol=1e-12)


def test_numpy_solve_outside_jit_and_callback_inside():
    calls = []

    def np_solve(x):
        calls.append(isinstance(x, jax.core.Tracer))
        return np.sqrt(1.0 - np.asarray(x) ** 2)

    y = ni.root(circle, np_solve)
    for d in (jax.grad, jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(d(y)(0.3), exact_slope(0.3), rtol=1e-12)
    assert calls and not any(calls)  # concrete values, even under grad/jacfwd/jacrev
    with pytest.raises(TypeError, match="callback_solve"):
        jax.jit(y)(0.3)
    y_cb = ni.root(circle, ni.callback_solve(np_solve, jax.ShapeDtypeStruct((), jnp.float64)))
    np.testing.assert_allclose(jax.jit(jax.vmap(jax.grad(y_cb)))(XS), exact_slope(XS), atol=1e-12)


# --------------------------------------------------------------------------- Clarke's counterexample

SIGNS = list(itertools.product((1.0, -1.0), repeat=2))


def phi(z, kx=0.0, ky=0.0):
    """Phi(x, y) = (|x| + y, 2x + |y|) with abs'(0) = kx, ky."""
    return jnp.stack([kinks.abs(z[0], kx) + z[1], 2.0 * z[0] + kinks.abs(z[1], ky)])


def region_matrix(sx, sy):
    return np.array([[sx, 1.0], [2.0, sy]])


def phi_inverse(theta):
    """Phi^{-1}: Phi is linear on each closed quadrant; keep the candidate with matching signs."""
    out = jnp.zeros(2)
    for sx, sy in SIGNS:
        z = jnp.asarray(np.linalg.inv(region_matrix(sx, sy))) @ theta
        ok = (sx * z[0] >= 0) & (sy * z[1] >= 0)
        out = jnp.where(ok, z, out)
    return out


def phi_inverse_numpy(theta):
    for sx, sy in SIGNS:
        z = np.linalg.solve(region_matrix(sx, sy), np.asarray(theta))
        if sx * z[0] >= 0 and sy * z[1] >= 0:
            return z
    raise AssertionError("Phi is a homeomorphism: one quadrant must match")


def inv_phi_map(kx=0.0, ky=0.0):
    return ni.root(lambda th, z: phi(z, kx, ky) - th, phi_inverse)


@pytest.mark.parametrize("signs", SIGNS)
def test_clarke_example_jacobian_is_region_inverse(signs):
    sx, sy = signs
    z = np.array([sx * 0.7, sy * 0.4])
    theta = np.asarray(phi(jnp.asarray(z)))
    psi = inv_phi_map()
    np.testing.assert_allclose(psi(theta), z, rtol=1e-14)
    want = np.linalg.inv(region_matrix(sx, sy))
    for d in (jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(d(psi)(theta), want, atol=1e-13)
    h = 1e-6
    fd = np.stack(
        [(phi_inverse_numpy(theta + h * e) - phi_inverse_numpy(theta - h * e)) / (2 * h)
         for e in np.eye(2)], axis=1,
    )
    np.testing.assert_allclose(fd, want, atol=1e-8)
    np.testing.assert_allclose(jax.jit(jax.jacrev(psi))(theta), want, atol=1e-13)


def clarke_hull_weights(N):
    """Weights of N in conv{M_s^{-1}} (Jac^c Phi^{-1}(0)) in the order ++, --, +-, -+, or None."""
    V = np.stack([np.linalg.inv(region_matrix(*s)).ravel()
                  for s in [(1, 1), (-1, -1), (1, -1), (-1, 1)]], axis=1)
    lam, *_ = np.linalg.lstsq(np.vstack([V, np.ones(4)]), np.r_[np.ravel(N), 1.0], rcond=None)
    # V has rank 3 plus the sum row: the solution is unique when it exists.
    ok = np.allclose(np.vstack([V, np.ones(4)]) @ lam, np.r_[np.ravel(N), 1.0], atol=1e-10)
    return lam if ok else None


@pytest.mark.parametrize("kx, ky", [(0.0, 0.0), (1.0, 1.0), (-1.0, 0.5), (0.3, -0.8)])
def test_clarke_example_at_the_origin(kx, ky):
    # At 0 autodiff returns B = [[kx, 1], [2, ky]] in Jac^c Phi(0); the implicit Jacobian is B^{-1}.
    psi = inv_phi_map(kx, ky)
    J = jax.jacrev(psi)(jnp.zeros(2))
    B = np.array([[kx, 1.0], [2.0, ky]])
    np.testing.assert_allclose(J, np.linalg.inv(B), atol=1e-13)
    np.testing.assert_allclose(jax.jacfwd(psi)(jnp.zeros(2)), J, atol=1e-13)
    # For this Phi, the inverse of every B in Jac^c Phi(0) lies in Jac^c Phi^{-1}(0) ...
    lam = clarke_hull_weights(J)
    assert lam is not None and np.all(lam >= -1e-12)


def test_clarke_example_fails_in_the_other_direction():
    # ... but the converse fails: N in Jac^c Phi^{-1}(0) (the mean of the four region Jacobians)
    # has N^{-1} outside Jac^c Phi(0) = {[[a, 1], [2, b]] : a, b in [-1, 1]}.  So implicit
    # differentiation of u - Psi(v) = 0 with Clarke Jacobians of Psi = Phi^{-1} does not give
    # Clarke Jacobians of Phi (arXiv 2106.04350, Thm. 1).
    N = np.mean([np.linalg.inv(region_matrix(*s)) for s in SIGNS], axis=0)
    assert clarke_hull_weights(N) is not None
    Ninv = np.linalg.inv(N)
    np.testing.assert_allclose(Ninv, [[0.0, 0.75], [1.5, 0.0]], atol=1e-14)
    assert not (np.isclose(Ninv[0, 1], 1.0) and np.isclose(Ninv[1, 0], 2.0))


# --------------------------------------------------------------------------- pytrees, args, vmap


def linear_F(theta, x, M, label):
    assert label == "static label"
    u, v = x
    rhs = theta["b"] * theta["c"]
    return (M @ u - rhs, v - jnp.tanh(theta["c"]) * u[:2])


def linear_solve(theta, M, label):
    u = jnp.linalg.solve(M, theta["b"] * theta["c"])
    return (u, jnp.tanh(theta["c"]) * u[:2])


def reference(theta, M):
    u = jnp.linalg.solve(M, theta["b"] * theta["c"])
    return (u, jnp.tanh(theta["c"]) * u[:2])


@pytest.fixture
def linear_problem():
    rng = np.random.default_rng(0)
    M = jnp.asarray(rng.normal(size=(3, 3)) + 3 * np.eye(3))
    theta = {"b": jnp.asarray(rng.normal(size=3)), "c": jnp.asarray(0.7)}
    return theta, M


def test_pytrees_extra_args_and_static_args(linear_problem):
    theta, M = linear_problem
    xs = ni.root(linear_F, linear_solve)
    want = jax.jit(jax.jacfwd(reference, argnums=(0, 1)))(theta, M)
    for jac in (jax.jacfwd, jax.jacrev):
        got = jax.jit(jac(xs, argnums=(0, 1)), static_argnums=2)(theta, M, "static label")
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-12), got, want)


def test_jit_vmap_grad_compositions(linear_problem):
    theta, M = linear_problem
    xs = ni.root(linear_F, linear_solve)

    def loss(th, M):
        u, v = xs(th, M, "static label")
        return jnp.sum(u**2) + jnp.sum(jnp.sin(v))

    def ref_loss(th, M):
        u, v = reference(th, M)
        return jnp.sum(u**2) + jnp.sum(jnp.sin(v))

    thetas = jax.tree.map(lambda a: jnp.stack([a, 1.5 * a, -a]), theta)
    Ms = jnp.stack([M, M.T, M + jnp.eye(3)])
    got = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1))))(thetas, Ms)
    want = jax.jit(jax.vmap(jax.grad(ref_loss, argnums=(0, 1))))(thetas, Ms)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got, want)
    got = jax.vmap(jax.jit(jax.grad(loss)), in_axes=(0, None))(thetas, M)
    want = jax.jit(jax.vmap(jax.grad(ref_loss), in_axes=(0, None)))(thetas, M)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got, want)


@pytest.mark.parametrize(
    "method", ["cg", "gmres", pytest.param("bicgstab", marks=pytest.mark.slow)]
)
def test_iterative_linear_solves_match_dense(method):
    rng = np.random.default_rng(1)
    m = 40
    Q = rng.normal(size=(m, m))
    if method == "cg":  # symmetric definite (negative, to check CG does not need positive)
        M = jnp.asarray(-(Q @ Q.T / m + np.eye(m)))
    else:
        M = jnp.asarray(Q / np.sqrt(m) + 3 * np.eye(m))

    def F(theta, x, M):
        return M @ x - jnp.tanh(theta)

    def solve(theta, M):
        return jnp.linalg.solve(M, jnp.tanh(theta))

    theta = jnp.asarray(rng.normal(size=m))
    v = jnp.asarray(rng.normal(size=m))
    K = np.linalg.inv(np.asarray(M)) * (1 - np.tanh(np.asarray(theta)) ** 2)  # exact Jacobian
    it = ni.root(F, solve, linear_solve=ni.LinearSolver(method, rtol=1e-12))
    vjp = jax.jit(lambda t, v: jax.vjp(lambda t: it(t, M), t)[1](v)[0])
    jvp = jax.jit(lambda t, v: jax.jvp(lambda t: it(t, M), (t,), (v,))[1])
    np.testing.assert_allclose(vjp(theta, v), np.asarray(v) @ K, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(jvp(theta, v), K @ np.asarray(v), rtol=1e-8, atol=1e-10)
    assert ni.LinearSolver(dense_max_size=10).resolve(m) == "gmres"
    assert ni.LinearSolver(dense_max_size=10, symmetric=True).resolve(m) == "cg"
    assert ni.LinearSolver().resolve(m) == "dense"


# --------------------------------------------------------------------------- singular B


def lorenz_like(u, s):
    """||s - L(u)||^2 (s - L(u)): B = d_s F = 0 at the solution s = L(u) (docs/theory.md)."""
    L = jnp.stack([10 * (u[1] - u[0]), u[0] * (28 - u[2]) - u[1], u[0] * u[1] - 8 * u[2] / 3])
    r = s - L
    return jnp.sum(r**2) * r


def lorenz_solve(u):
    return jnp.stack([10 * (u[1] - u[0]), u[0] * (28 - u[2]) - u[1], u[0] * u[1] - 8 * u[2] / 3])


U = jnp.array([1.0, 2.0, 3.0])


def rank_deficient():
    R = np.random.default_rng(2).normal(size=(4, 2))
    M = jnp.asarray(R @ R.T)  # rank 2
    return M, np.linalg.pinv(np.asarray(M))


@pytest.mark.parametrize("linear_solve", ["dense", "gmres"])
def test_singular_B_raises_eagerly_and_under_jit(linear_solve):
    msg = "invertibility condition of the nonsmooth implicit function theorem"
    z = ni.root(lorenz_like, lorenz_solve, linear_solve=linear_solve)
    np.testing.assert_allclose(z(U), lorenz_solve(U))  # the value itself is fine
    with pytest.raises(RuntimeError, match=msg):
        jax.jacrev(z)(U)
    M, pinv = rank_deficient()
    x = ni.root(lambda t, x: M @ x - t, lambda t: jnp.asarray(pinv) @ t, linear_solve=linear_solve)
    with pytest.raises(RuntimeError, match=msg):
        jax.block_until_ready(jax.jit(jax.jacfwd(x))(jnp.ones(4)))
    if linear_solve == "dense":
        with pytest.raises(RuntimeError, match=msg):
            jax.block_until_ready(jax.jit(jax.grad(lambda u: U @ z(u)))(U))
        with pytest.raises(RuntimeError, match=msg):
            jax.block_until_ready(jax.vmap(jax.grad(lambda u: U @ z(u)))(jnp.stack([U, 2 * U])))
        # Here A = d_u F = 0 too: B t = 0 is consistent; the dense check still sees B singular
        # (an iterative solve only fails on inconsistent systems, as in jacfwd(x) above).
        with pytest.raises(RuntimeError, match=msg):
            jax.jacfwd(z)(U)


@pytest.mark.parametrize("linear_solve", ["dense", "gmres"])
def test_pinv_gives_least_squares_derivative(linear_solve):
    # Rank-deficient linear system: the least-squares (minimal norm) Jacobian is B^+
    # (iteratively: CG on the normal equations from 0).
    M, pinv = rank_deficient()
    x = ni.root(lambda t, x: M @ x - t, lambda t: jnp.asarray(pinv) @ t, linear_solve=linear_solve,
                singular="pinv")
    t0 = jnp.asarray(np.random.default_rng(3).normal(size=4))
    np.testing.assert_allclose(jax.jit(jax.jacrev(x))(t0), pinv, atol=1e-8)
    np.testing.assert_allclose(jax.jit(jax.jacfwd(x))(t0), pinv, atol=1e-8)
    if linear_solve == "dense":
        # Lorenz: B = 0, so the pseudo-inverse derivative of z is 0 and grad_u u^T z(u) = L(u).
        z = ni.root(lorenz_like, lorenz_solve, linear_solve=linear_solve, singular="pinv")
        np.testing.assert_allclose(jax.jacrev(z)(U), np.zeros((3, 3)), atol=1e-14)
        np.testing.assert_allclose(jax.jit(jax.grad(lambda u: u @ z(u)))(U), lorenz_solve(U),
                                   atol=1e-12)


def test_residual_tol_catches_a_bad_forward_solve():
    y = ni.root(circle, lambda x: jnp.sqrt(1.0 - x**2) + 1e-3, residual_tol=1e-8)
    with pytest.raises(RuntimeError, match="residual_tol"):  # raised in the compiled derivative kernel
        jax.grad(y)(0.3)
    with pytest.raises(RuntimeError, match="residual_tol"):
        jax.block_until_ready(jax.jit(jax.grad(y))(0.3))
    ok = ni.root(circle, lambda x: jnp.sqrt(1.0 - x**2), residual_tol=1e-8)
    np.testing.assert_allclose(jax.grad(ok)(0.3), exact_slope(0.3), rtol=1e-12)


def test_diagnose_reports_conditioning():
    y = ni.root(circle, lambda x: jnp.sqrt(1.0 - x**2))
    d = y.diagnose(0.6)
    np.testing.assert_allclose(d.sigma_min, 1.6, rtol=1e-14)  # B = 2 y = 1.6
    np.testing.assert_allclose(d.jacobian, [[-0.75]], rtol=1e-14)
    assert bool(d.invertible) and float(d.residual) < 1e-15 and float(d.linear_residual) < 1e-15
    assert "invertible = True" in d.summary()
    s = ni.diagnose(lorenz_like, U, lorenz_solve(U))
    assert not bool(s.invertible) and float(s.sigma_min) == 0.0 and np.isinf(float(s.cond))
    d2 = jax.jit(ni.diagnose, static_argnums=0)(linear_F_fixed, 0.5, jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(d2.B, [[2.0, 1.0], [0.0, 3.0]])
    np.testing.assert_allclose(d2.cond, np.linalg.cond([[2.0, 1.0], [0.0, 3.0]]), rtol=1e-12)


def linear_F_fixed(t, x):
    return jnp.array([[2.0, 1.0], [0.0, 3.0]]) @ x - t


def test_fixed_point_matches_root():
    # x = cos(theta x): B = -theta sin(theta x) - 1, invertible for small theta.
    def T(th, x):
        return jnp.cos(th * x)

    def solve(th):
        return jax.lax.fori_loop(0, 200, lambda _, x: T(th, x), jnp.zeros_like(th))

    x = ni.fixed_point(T, solve)
    th = 0.8
    xv = solve(th)
    want = -xv * jnp.sin(th * xv) / (1 + th * jnp.sin(th * xv))
    np.testing.assert_allclose(jax.grad(x)(th), want, rtol=1e-12)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"\('auto', 'dense', 'cg', 'gmres', 'bicgstab'\).*'lu'"):
        ni.root(circle, jnp.sqrt, linear_solve="lu")
    with pytest.raises(ValueError, match=r"\('raise', 'pinv'\).*'ignore'"):
        ni.root(circle, jnp.sqrt, singular="ignore")
    with pytest.raises(TypeError, match="F must be callable"):
        ni.root(None, jnp.sqrt)
    bad = ni.root(lambda t, x: jnp.stack([x, x]), lambda t: t)
    with pytest.raises(ValueError, match="shaped like x"):
        jax.grad(bad)(1.0)


@pytest.mark.parametrize("mode", ["eager", "jit", "vmap"])
def test_residual_check_runs_when_F_is_affine_in_x(mode):
    """F = theta x - 1 has B = theta, independent of x: a wrong solve (1/theta + 1) must still be
    caught by residual_tol, not give the wrong derivative -0.75 (the truth is -1/theta^2 = -0.25)."""
    import equinox as eqx

    from nsopt import implicit

    f = implicit.root(lambda th, x: th * x - 1.0, lambda th: 1.0 / th + 1.0, residual_tol=1e-3)
    g = jax.grad(lambda th: f(th))
    if mode == "jit":
        g = jax.jit(g)
    elif mode == "vmap":
        g = jax.vmap(g)
    theta = jnp.asarray([2.0, 2.0]) if mode == "vmap" else jnp.asarray(2.0)
    with pytest.raises((RuntimeError, eqx.EquinoxRuntimeError), match="residual_tol"):
        jax.block_until_ready(g(theta))
    good = implicit.root(lambda th, x: th * x - 1.0, lambda th: 1.0 / th, residual_tol=1e-3)
    np.testing.assert_allclose(jax.grad(lambda th: good(th))(2.0), -0.25, rtol=1e-12)
