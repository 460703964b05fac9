"""The ODE approach (docs/theory.md §5): flows, the interpolated process, APT distances, diagnostics.

- :mod:`~nsopt.flow.integrate`: fixed-step ``lax.scan`` integrators of ``g' = -field(g)``
  (:func:`flow`) and of the heavy-ball system ``w' = -r y, y' = field(w) - y``
  (:func:`heavy_ball_flow`); Euler (default), Heun, RK4.
- :mod:`~nsopt.flow.interpolate`: the interpolated process ``w(t)`` (:func:`interpolate`).
- :mod:`~nsopt.flow.apt`: :func:`apt_distance` ``d_T(t) = sup_{s<=T} ||w(t+s) - g(s)||``.
- :mod:`~nsopt.flow.report`: :func:`diagnose`, the one call per algorithm (certified APT
  bound, discretization error estimate, Lyapunov curves, progress, timings).
- :mod:`~nsopt.flow.diagnostics`: Lyapunov curves, gradient-sampling criticality,
  alpha-weighted occupation, the ``l^2 \\ l^1`` schedule check.
- :mod:`~nsopt.flow.figures`: phase portraits, APT and Lyapunov figures.
"""

from nsopt.flow import figures
from nsopt.flow.apt import (
    DEFAULT_STEPS_PER_WINDOW,
    apt_distance,
    default_times,
    heavy_ball_r,
)
from nsopt.flow.report import DEFAULT_METHOD, DEFAULT_STEPS, FlowReport, diagnose
from nsopt.flow.diagnostics import (
    MinNorm,
    check_schedule,
    criticality,
    energy,
    lyapunov,
    min_norm_element,
    objective_curve,
    occupation,
    project_simplex,
)
from nsopt.flow.figures import apt_figure, lyapunov_figure, phase_portrait
from nsopt.flow.integrate import (
    METHODS,
    RK4,
    Euler,
    Heun,
    Scheme,
    as_method,
    flow,
    gradient_vector_field,
    heavy_ball_flow,
    heavy_ball_vector_field,
    integrate,
)
from nsopt.flow.interpolate import interpolate, interpolate_path

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_STEPS",
    "FlowReport",
    "diagnose",
    "DEFAULT_STEPS_PER_WINDOW",
    "METHODS",
    "RK4",
    "Euler",
    "Heun",
    "MinNorm",
    "Scheme",
    "apt_distance",
    "apt_figure",
    "as_method",
    "check_schedule",
    "criticality",
    "default_times",
    "energy",
    "figures",
    "flow",
    "gradient_vector_field",
    "heavy_ball_flow",
    "heavy_ball_r",
    "heavy_ball_vector_field",
    "integrate",
    "interpolate",
    "interpolate_path",
    "lyapunov",
    "lyapunov_figure",
    "min_norm_element",
    "objective_curve",
    "occupation",
    "phase_portrait",
    "project_simplex",
]
