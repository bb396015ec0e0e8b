"""Checks for values that arrive from a UI or an API client: pure, and each failure names the field.

A slider can deliver NaN, 50.5 for an integer, or a value beyond its range through the API; a dropdown can
deliver any string. Each check returns the parsed value or raises `ValueError` with a message that names
the field and the allowed range, which the app shows as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, TypeVar

E = TypeVar("E", bound=StrEnum)


def check_int(field: str, value: Any, low: int, high: int) -> int:
    """An integer in [low, high]; a float is accepted only when it is a whole number (5.0, not 5.5)."""
    allowed = f"{field} must be a whole number in [{low}, {high}]"
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{allowed}; got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{allowed}; got {value!r}") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{allowed}; got {value!r}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(f"{allowed}; got {value!r}")
    if not low <= number <= high:
        raise ValueError(f"{allowed}; got {int(number)}")
    return int(number)


def check_float(
    field: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite number in the interval [low, high] (either end open when asked)."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    allowed = f"{field} must be a finite number in {left}{low:g}, {high:g}{right}"
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{allowed}; got {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{allowed}; got {value!r}") from None
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if not math.isfinite(number) or too_low or too_high:
        raise ValueError(f"{allowed}; got {value!r}")
    return number


def check_bool(field: str, value: Any) -> bool:
    """A real boolean (a checkbox); strings such as "false" are refused rather than read as True."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"{field} must be true or false; got {value!r}")


def check_choice(field: str, value: Any, enum: type[E], parse: Callable[[Any], E] | None = None) -> E:
    """A member of a `StrEnum`, parsed by its own `parse` when it has one."""
    parser = parse or getattr(enum, "parse", None) or enum
    try:
        return parser(value)
    except (TypeError, ValueError):
        valid = ", ".join(member.value for member in enum)
        raise ValueError(f"{field} must be one of {valid}; got {value!r}") from None


def check_option(field: str, value: Any, options: Iterable[str]) -> str:
    """One of a fixed list of strings (a dropdown whose choices are not an enum)."""
    choices = list(options)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_seed(value: Any) -> int:
    """A random seed: a whole number in [0, 2³¹ − 1]."""
    return check_int("seed", value, 0, 2**31 - 1)
