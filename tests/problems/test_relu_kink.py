"""relu_digits: relu'(0) is an array leaf of the problem, so one compiled program serves every kink."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nsopt.problems import relu_digits


def test_two_kinks_one_compiled_program_and_the_kink_matters_at_a_zero():
    p0, p1 = relu_digits(hidden=(8,), batch_size=4, kink=0.0), relu_digits(hidden=(8,), batch_size=4, kink=1.0)
    dtype = p0.x_train.dtype
    w = jax.tree.map(lambda a: a.astype(dtype), p0.init(jax.random.key(1)))
    xi = jnp.arange(4)
    # make one pre-activation exactly 0 (the same batched product as the network's)
    pre = p0.x_train[xi] @ w["Dense_0"]["kernel"]
    w["Dense_0"]["bias"] = w["Dense_0"]["bias"].at[3].set(-pre[0, 3])
    assert (p0.x_train[xi] @ w["Dense_0"]["kernel"] + w["Dense_0"]["bias"])[0, 3] == 0

    traces = []

    @eqx.filter_jit
    def grad(problem, w, xi):
        traces.append(1)  # Python side effect: runs once per trace, not per call
        return problem.oracle()(w, xi)

    g0, g1 = grad(p0, w, xi), grad(p1, w, xi)
    assert len(traces) == 1  # the kink is traced data, not a compile-time constant
    # where the pre-activation is 0 the kink value changes the oracle ...
    assert float(jnp.max(jnp.abs(g0["Dense_0"]["kernel"] - g1["Dense_0"]["kernel"]))) > 0
    # ... and it is relu'(0) = kink: the difference is x_i (kink_1 - kink_0) upstream, only in unit 3
    diff = np.asarray(g1["Dense_0"]["kernel"] - g0["Dense_0"]["kernel"])
    assert np.all(diff[:, :3] == 0) and np.all(diff[:, 4:] == 0)
    # away from a zero the kink is irrelevant: same loss everywhere
    assert float(p0.F(w)) == float(p1.F(w))
