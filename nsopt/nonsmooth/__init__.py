"""Nonsmooth primitives with a declared derivative choice at their kinks (one room, one vocabulary).

- :mod:`nsopt.nonsmooth.kinks`: scalar primitives :func:`relu`, :func:`abs`,
  :func:`maximum`, :func:`minimum`, :func:`max_elementwise`; ``kink`` is the
  derivative value chosen at the kink (e.g. ``relu'(0) = kink``), a traceable argument.
- :mod:`nsopt.nonsmooth.prox`: proximal operators and projections
  (:func:`~nsopt.nonsmooth.prox.soft_threshold`, ``elastic_net``, ``group_lasso``,
  ``box``, ``l2_ball``, ``simplex``); ``tie`` in ``[0, 1]`` is the convex weight of
  the free piece's Jacobian where two pieces tie (an element of Clarke's Jacobian).

Backpropagation through programs built from these returns an element of a
conservative field (Bolte & Pauwels, arXiv 1909.10300; ``docs/theory.md``).
"""

from nsopt.nonsmooth import kinks, prox
from nsopt.nonsmooth.kinks import abs, max_elementwise, maximum, minimum, relu  # noqa: A004

__all__ = ["abs", "kinks", "max_elementwise", "maximum", "minimum", "prox", "relu"]
