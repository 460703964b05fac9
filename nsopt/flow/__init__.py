"""The ODE approach: flows, the interpolated process, APT distances and diagnostics (THEORY.md §5)."""

from nsopt.flow.apt import DEFAULT_STEPS_PER_WINDOW, apt_distance, default_times, heavy_ball_r
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
    "DEFAULT_STEPS_PER_WINDOW",
    "Euler",
    "Heun",
    "METHODS",
    "RK4",
    "Scheme",
    "apt_distance",
    "as_method",
    "default_times",
    "flow",
    "gradient_vector_field",
    "heavy_ball_flow",
    "heavy_ball_r",
    "heavy_ball_vector_field",
    "integrate",
    "interpolate",
    "interpolate_path",
]
