"""Differentiable optimization layers (solution maps differentiated by the nonsmooth implicit function theorem)."""

from nsopt.layers import qp
