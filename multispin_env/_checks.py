"""Validation of setting values shared by the config and the acceptance processes (ValueError naming the setting)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def flag_setting(name: str, value: Any) -> bool:
    """``value`` as a bool; ValueError unless it is one."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def integer_setting(name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low``; ValueError otherwise (bools are rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def real_setting(
    name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False
) -> float:
    """``value`` as a finite float in the interval low..high (open ends as flagged); ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    ok_low = number > low if low_open else number >= low
    ok_high = number < high if high_open else number <= high
    if not (math.isfinite(number) and ok_low and ok_high):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be finite and in {lo}{low}, {high}{hi}, got {value!r}")
    return number
