"""check_problem: every built-in problem passes; a malformed one is named by its field."""

import sys

import jax
import jax.numpy as jnp
import pytest

from nsopt import problems as P
from nsopt.problems import Problem, ProblemError, check_problem

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "app"))


@pytest.mark.parametrize("name", [n for n in P.REGISTRY if n != "deq_digits"])
def test_builtin_problems_pass(name):
    check_problem(P.make(name))


class Good(Problem):
    """``F(w) = |w|_1`` with Gaussian noise; fields overridden one at a time below."""

    @property
    def name(self):
        return "good"

    @property
    def dim(self):
        return 3

    def loss(self, w, xi):
        return jnp.sum(jnp.abs(w)) + jnp.dot(xi, w)

    def sampler(self, key):
        return jax.random.normal(key, (3,))

    def F(self, w):
        return jnp.sum(jnp.abs(w))

    def init(self, key):
        return jax.random.normal(key, (3,))


class WrongDim(Good):
    @property
    def dim(self):
        return 4


class VectorLoss(Good):
    def loss(self, w, xi):
        return jnp.abs(w) + xi


class VectorF(Good):
    def F(self, w):
        return jnp.abs(w)


class IntInit(Good):
    def init(self, key):
        return jnp.arange(3)


class BadSampler(Good):
    def sampler(self, key):
        return jax.random.normal(key, (5,))


class BadField(Good):
    def field(self, w):
        return w[:2]


class NoName(Good):
    @property
    def name(self):
        return ""


@pytest.mark.parametrize("cls,message", [
    (WrongDim, r"^problem.dim is 4 but init returns 3 scalars"),
    (VectorLoss, r"^problem.loss returns \['float\d+\[3\]'\]; it must return one float scalar"),
    (VectorF, r"^problem.F returns \['float\d+\[3\]'\]; it must return one float scalar"),
    (IntInit, r"^problem.init returns \['int\d+\[3\]'\]; it must return a non-empty pytree of float arrays"),
    (BadSampler, r"^problem.loss fails: TypeError"),   # xi of shape (5,) does not fit w of shape (3,)
    (BadField, r"^problem.field returns shapes \[\(2,\)\]; it must return a pytree shaped like w"),
    (NoName, r"^problem.name is ''; it must be a non-empty string"),
])
def test_malformed_problem_names_the_field(cls, message):
    check_problem(Good())
    with pytest.raises(ProblemError, match=message) as e:
        check_problem(cls())
    assert isinstance(e.value, ValueError)


def test_missing_field_of_a_duck_typed_object():
    class Bare:
        name, dim = "bare", 1

        def init(self, key):
            return jnp.zeros(1)

    with pytest.raises(ProblemError, match=r"^problem.sampler is missing"):
        check_problem(Bare())


@pytest.mark.parametrize("problem", ["phase_retrieval", "blind_deconvolution", "lad", "svm",
                                     "relu_regression", "kinked_line", "max_line"])
@pytest.mark.parametrize("sampling", [None, "reshuffle", "minibatch"])
def test_cli_configs_build(problem, sampling):
    from app_helpers import cfg_of

    from nsopt.app.config import build_main

    over = [f"problem={problem}"] + ([f"sampling={sampling}"] if sampling else [])
    if sampling and problem in ("kinked_line", "max_line"):
        from nsopt.app.config import ConfigError

        with pytest.raises(ConfigError, match=r"problem.sampling is not a known key"):
            build_main(cfg_of(over))
        return
    job = build_main(cfg_of(over + ["problem.sampling.batch_size=2"] if sampling else over))
    check_problem(job.problem)
    if sampling:
        assert type(job.problem.sampling).__name__ == {"reshuffle": "Reshuffled", "minibatch": "Minibatch"}[sampling]
        assert job.problem.sampling.batch_size == 2
