"""Problems: ``loss(w, xi)``, ``sampler``, ``F``, ``field``, ``dim``, ``init`` bundled.

The fields are documented in :mod:`nsopt.problems.base`; :func:`check_problem` names a
missing or mis-shaped one.  :func:`make` builds one by name; the CLI's ``problem`` group
(``conf/problem/<name>.yaml``, ``_target_: nsopt.problems.<name>``) builds any of them,
and a user's own factory the same way (``_target_: mymodule.make_problem``).

- toys: ``ring`` (2-D), ``kinked_line`` / ``max_line`` (artificial critical points of
  autodiff with ``relu'(0) = 0`` / ``max`` ties), ``signed_abs`` (integral rule);
- the zoo of nonsmooth stochastic benchmarks (finite sums with a sampling scheme,
  :mod:`nsopt.problems.samplers`): ``phase_retrieval``, ``blind_deconvolution``,
  ``lad`` (on load_diabetes), ``svm`` (hinge loss on load_breast_cancer),
  ``relu_regression`` (teacher-student);
- networks: ``relu_digits`` (ReLU MLP on load_digits), ``deq_digits`` (monotone deep
  equilibrium network on load_digits).

Solution maps and implicit layers (the Lasso, the DEQ layer) live in :mod:`nsopt.layers`.
"""

from __future__ import annotations

from typing import Any, Callable

from nsopt.problems import samplers
from nsopt.problems.base import Problem, ProblemError, check_problem
from nsopt.problems.blind_deconvolution import BlindDeconvolution, blind_deconvolution
from nsopt.problems.finite_sum import FiniteSum
from nsopt.problems.lad import LAD, lad
from nsopt.problems.max_line import MaxLine, max_line
from nsopt.problems.phase_retrieval import PhaseRetrieval, phase_retrieval
from nsopt.problems.relu_regression import ReluRegression, relu_regression
from nsopt.problems.svm import SVM, svm
from nsopt.problems.deq_digits import DEQDigits, deq_digits
from nsopt.problems.kinked_line import KinkedLine, kinked_line
from nsopt.problems.relu_net import MLP, ReluDigits, load_digits_split, relu_digits
from nsopt.problems.signed_abs import SignedAbs, signed_abs
from nsopt.problems.toy import Ring, ring

REGISTRY: dict[str, Callable[..., Problem]] = {
    "ring": ring,
    "relu_digits": relu_digits,
    "deq_digits": deq_digits,
    "kinked_line": kinked_line,
    "signed_abs": signed_abs,
    "max_line": max_line,
    "phase_retrieval": phase_retrieval,
    "blind_deconvolution": blind_deconvolution,
    "lad": lad,
    "svm": svm,
    "relu_regression": relu_regression,
}

__all__ = ["BlindDeconvolution", "DEQDigits", "FiniteSum", "KinkedLine", "LAD", "MLP", "MaxLine",
           "PhaseRetrieval", "Problem", "ProblemError", "REGISTRY", "ReluDigits", "ReluRegression", "Ring", "SVM",
           "SignedAbs", "blind_deconvolution", "check_problem", "deq_digits", "kinked_line", "lad",
           "load_digits_split", "make", "max_line", "phase_retrieval", "register", "relu_digits", "relu_regression",
           "ring", "samplers", "signed_abs", "svm"]


def register(name: str, factory: Callable[..., Problem]) -> None:
    """Make ``factory`` available to :func:`make` under ``name`` (Python API only).

    The CLI needs no registration: a yaml ``conf/problem/<name>.yaml`` with
    ``_target_: mymodule.make_problem`` builds any factory on ``PYTHONPATH`` (README, "Your
    own problem")."""
    REGISTRY[name] = factory


def make(name: str, **kwargs: Any) -> Problem:
    """Build the problem ``name`` with keyword parameters; errors list the allowed names."""
    if name not in REGISTRY:
        raise ValueError(f"unknown problem {name!r}; allowed: {sorted(REGISTRY)}")
    try:
        return REGISTRY[name](**kwargs)
    except TypeError as e:
        import inspect

        params = list(inspect.signature(REGISTRY[name]).parameters)
        raise TypeError(f"problem {name!r}: {e}; allowed parameters: {params}") from None
