"""Argument checks shared by the API constructors and the config (each range written once).

Every check raises ``ValueError`` with one message shape::

    <field>=<value> is not allowed; <what is allowed>

The CLI prefixes the config path (``schedule.p=1.5 is not allowed; ...``).  Only
concrete values are checked: a traced value (inside ``jit``/``vmap``) passes
through unchecked, since its value is not known when the program is built.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Sequence

import jax
import numpy as np

__all__ = ["BadValue", "is_traced", "choice", "integer", "number", "numbers_list", "positive_int"]


class BadValue(ValueError):
    """A value is not allowed; ``field`` names it (the CLI prefixes its config path)."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={_show(value)} is not allowed; {allowed}")

    def prefixed(self, prefix: str) -> "BadValue":
        """The same error with the field as ``<prefix>.<field>``."""
        return BadValue(f"{prefix}.{self.field}" if prefix else self.field, self.value, self.allowed)


def _show(value: Any) -> str:
    if isinstance(value, (np.ndarray, np.generic, jax.Array)) and np.ndim(value) == 0 and not is_traced(value):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (its value is unknown: not checked)."""
    return isinstance(value, jax.core.Tracer)


def choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` must be one of ``allowed`` (the single list of a string choice)."""
    if not isinstance(value, str) or value not in allowed:
        raise BadValue(field, value, f"choose one of {list(allowed)}")
    return value


def integer(field: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer (Python or NumPy, not bool) in ``[low, high]``."""
    if isinstance(value, bool) or isinstance(value, (float, np.floating)) or not _is_index(value):
        raise BadValue(field, value, f"it must be an integer{_range_text(low, high)}")
    v = operator.index(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise BadValue(field, value, f"it must be an integer{_range_text(low, high)}")
    return int(v)


def positive_int(field: str, value: Any) -> int:
    return integer(field, value, low=1)


def _is_index(value: Any) -> bool:
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0 and not is_traced(value):
        return np.issubdtype(np.asarray(value).dtype, np.integer)
    try:
        operator.index(value)
        return True
    except TypeError:
        return False


def _range_text(low: Any, high: Any, open_low: bool = False, open_high: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if low is not None:
        return f" {'>' if open_low else '>='} {low:g}"
    if high is not None:
        return f" {'<' if open_high else '<='} {high:g}"
    return ""


def number(field: str, value: Any, low: float | None = None, high: float | None = None, *,
           open_low: bool = False, open_high: bool = False) -> Any:
    """A finite real number in the given interval; traced values pass through unchecked.

    Returns a Python float for concrete scalars and the value itself when traced.
    """
    if is_traced(value):
        return value
    allowed = f"it must be a finite number{_range_text(low, high, open_low, open_high)}"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        raise BadValue(field, value, allowed)
    if isinstance(value, (np.ndarray, jax.Array)):
        if np.ndim(value) != 0:
            raise BadValue(field, value, allowed + " (a scalar)")
        value = np.asarray(value).item()
    if not isinstance(value, numbers.Real):
        raise BadValue(field, value, allowed)
    v = float(value)
    bad = not math.isfinite(v)
    bad |= low is not None and (v <= low if open_low else v < low)
    bad |= high is not None and (v >= high if open_high else v > high)
    if bad:
        raise BadValue(field, value, allowed)
    return v


def numbers_list(field: str, values: Any, low: float | None = None, high: float | None = None, *,
                 open_low: bool = False, open_high: bool = False) -> list[float] | Any:
    """A non-empty 1-D list of numbers, each checked by :func:`number` (``field[i]`` named)."""
    if is_traced(values):
        return values
    if isinstance(values, (numbers.Real, np.number)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise BadValue(field, values, "it must be a non-empty list of numbers")
    arr = np.asarray(values, dtype=object) if not isinstance(values, (np.ndarray, jax.Array)) else values
    if np.ndim(arr) != 1 or len(arr) == 0:
        raise BadValue(field, values, "it must be a non-empty 1-D list of numbers")
    return [number(f"{field}[{i}]", v, low, high, open_low=open_low, open_high=open_high)
            for i, v in enumerate(list(arr))]
