"""Oracles ``(w, xi) -> v``, ``v`` an element of a conservative field at ``w``.

- :func:`autodiff` turns a loss into an oracle by backpropagation;
- :func:`implicit_oracle` differentiates a bilevel loss through an implicit
  solution map (nonsmooth implicit function theorem, ``-B^{-1} A``);
- :func:`relu`, :func:`abs`, :func:`maximum`, :func:`minimum`,
  :func:`max_elementwise` are nonsmooth primitives with a chosen kink value
  (defined in :mod:`nsopt.nonsmooth.kinks`, re-exported here).
"""

from nsopt.oracles.autodiff import Autodiff, Loss, Oracle, autodiff
from nsopt.oracles.implicit import Implicit, implicit_oracle
from nsopt.nonsmooth.kinks import abs, max_elementwise, maximum, minimum, relu  # noqa: A004

__all__ = [
    "Autodiff",
    "Implicit",
    "Loss",
    "Oracle",
    "autodiff",
    "implicit_oracle",
    "abs",
    "max_elementwise",
    "maximum",
    "minimum",
    "relu",
]
