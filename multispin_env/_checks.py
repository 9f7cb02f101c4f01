"""Validation of setting values shared by the config, the model and the acceptance processes.

Every check raises a one-line ValueError naming the setting. Numbers must be real numbers (int, float or a
numpy real scalar): strings, bools, complex numbers and other objects are rejected rather than converted, so
``horizon="10"`` is an error, not a silent cast. Python ints too large for a float (``10**400``) give the
same ValueError, not an OverflowError.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Choice",
    "IntegerRange",
    "RealRange",
    "first_nonfinite",
    "flag_setting",
    "integer_setting",
    "interval",
    "is_real",
    "real_setting",
    "register_class",
    "short_repr",
]


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so that a message naming a bad value stays one short line (a
    100,000-point table or a 4,000-digit integer is not printed whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"an integer of about {round(value.bit_length() * math.log10(2))} digits"
    try:
        text = repr(value)
    except ValueError:  # e.g. a container holding an int too long for str()
        return f"a {type(value).__name__}"
    text = " ".join(text.split())  # numpy prints rows on lines of their own
    return text if len(text) <= limit else text[:limit] + "..."


def first_nonfinite(values: Any, name: str) -> str:
    """``name[i, j] is nan``: the first NaN or inf entry of the array ``values`` by its index, for a one-line
    message that never prints the whole array; ``values`` must hold one."""
    values = np.asarray(values)
    index = np.unravel_index(int(np.argmax(~np.isfinite(values))), values.shape)
    return f"{name}[{', '.join(str(int(i)) for i in index)}] is {float(values[index])}"


def flag_setting(name: str, value: Any) -> bool:
    """``value`` as a bool; ValueError unless it is one."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {short_repr(value)}")
    return bool(value)


def integer_setting(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (no upper limit when ``high`` is None); ValueError otherwise.

    Bools and integral floats are rejected: a count given as 6.0 is most likely a mistake elsewhere.
    """
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer {bounds}, got {short_repr(value)}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {bounds}, got {short_repr(value)}")
    return int(value)


def interval(low: float, high: float, low_open: bool = False, high_open: bool = False) -> str:
    """The interval as the messages and docs write it: ``[0.0, 1.0)``."""
    return f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number: int, float or a numpy real scalar, not a bool, string or complex."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def real_setting(
    name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False
) -> float:
    """``value`` as a finite float in the interval low..high (open ends as flagged); ValueError otherwise."""
    message = f"{name} must be a finite number in {interval(low, high, low_open, high_open)}, got {short_repr(value)}"
    if not is_real(value):
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


@dataclass(frozen=True)
class IntegerRange:
    """The check of an integer setting in [low, high] (no upper limit when ``high`` is None), as an object whose
    bounds can be read (docs, property tests): ``IntegerRange(1, 10)(name, value)`` is :func:`integer_setting`."""

    low: int
    high: int | None = None

    def __call__(self, name: str, value: Any) -> int:
        return integer_setting(name, value, self.low, self.high)


@dataclass(frozen=True)
class RealRange:
    """The check of a real setting in the interval low..high (open ends as flagged), as an object whose bounds can
    be read (docs, property tests): ``RealRange(0, 1)(name, value)`` is :func:`real_setting`."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __call__(self, name: str, value: Any) -> float:
        return real_setting(name, value, self.low, self.high, low_open=self.low_open, high_open=self.high_open)

    def holds(self, values: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Elementwise: whether each of ``values`` is finite and in the interval (the check of a whole table)."""
        low = values > self.low if self.low_open else values >= self.low
        high = values < self.high if self.high_open else values <= self.high
        return np.isfinite(values) & low & high

    def __str__(self) -> str:
        return interval(self.low, self.high, self.low_open, self.high_open)


@dataclass(frozen=True)
class Choice:
    """The check of a setting that names one of ``choices()`` (read when checked: registries can grow), or one of
    the bool ``aliases`` (True/False -> a name; only real bools, so 1 is not an alias of True)."""

    choices: Callable[[], Mapping[str, Any]]
    aliases: Mapping[bool, str] = field(default_factory=dict)

    def __call__(self, name: str, value: Any) -> str:
        if isinstance(value, (bool, np.bool_)) and bool(value) in self.aliases:
            return self.aliases[bool(value)]
        names = self.choices()
        if not isinstance(value, str) or value not in names:
            also = "".join(f" ({alias} = {target!r})" for alias, target in self.aliases.items())
            raise ValueError(f"{name} must be one of {sorted(names)}{also}, got {short_repr(value)}")
        return value


Registered = TypeVar("Registered", bound=type)


def register_class(registry: dict[str, Registered], cls: Registered) -> Registered:
    """Add the component class ``cls`` to ``registry`` under its class attribute ``name`` (the body of the
    registration decorators of acceptance processes and fading models); ValueError if the name is empty."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute name")
    registry[name] = cls
    return cls
