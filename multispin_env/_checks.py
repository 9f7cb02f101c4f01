"""Validation of setting values shared by the config, the model and the acceptance processes.

Every check raises a one-line ValueError naming the setting. Numbers must be real numbers (int, float or a
numpy real scalar): strings, bools, complex numbers and other objects are rejected rather than converted, so
``horizon="10"`` is an error, not a silent cast. Python ints too large for a float (``10**400``) give the
same ValueError, not an OverflowError.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["flag_setting", "integer_setting", "real_setting"]


def flag_setting(name: str, value: Any) -> bool:
    """``value`` as a bool; ValueError unless it is one."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def integer_setting(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (no upper limit when ``high`` is None); ValueError otherwise.

    Bools and integral floats are rejected: a count given as 6.0 is most likely a mistake elsewhere.
    """
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def real_setting(
    name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False
) -> float:
    """``value`` as a finite float in the interval low..high (open ends as flagged); ValueError otherwise."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    message = f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    try:
        number = float(value)
    except OverflowError as exc:
        raise ValueError(message) from exc
    ok_low = number > low if low_open else number >= low
    ok_high = number < high if high_open else number <= high
    if not (math.isfinite(number) and ok_low and ok_high):
        raise ValueError(message)
    return number
