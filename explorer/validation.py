"""The one parser at the edge: modes (`str` enums) and numbers from a UI or an API client, naming the field.

A slider can deliver NaN, 50.5 for an integer, or a value beyond its range through the API; a dropdown can
deliver any string. Each check returns the parsed value or raises `ValueError` with a message that names
the field and the allowed range, which the app shows as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

E = TypeVar("E", bound=StrEnum)
M = TypeVar("M", bound="Mode")


class Mode(StrEnum):
    """A mode: a `str` enum parsed at the edge by `Kind.parse(value)`, which names its field in every refusal.

    A subclass names the field once, in its class line: `class Prediction(Mode, field="prediction type")`, and may
    add `aliases` (extra names for members) and `casefold=False` (case matters)."""

    def __init_subclass__(
        cls, *, field: str | None = None, aliases: Mapping[str, str] | None = None, casefold: bool = True, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        cls.field_name = field or cls.__name__
        cls.aliases = dict(aliases or {})
        cls.casefold = casefold

    @classmethod
    def parse(cls: type[M], value: object, field: str | None = None) -> M:
        """The member named by `value` (trimmed; case-insensitive unless the class says otherwise; or an alias);
        an unknown value raises ValueError naming `field` (the class's own by default) and every valid choice."""
        aliases = {name: cls(target) for name, target in cls.aliases.items()}
        return parse_mode(cls, value, field or cls.field_name, aliases=aliases, casefold=cls.casefold)


def parse_mode(
    cls: type[E], value: object, field: str, *, aliases: Mapping[str, E] | None = None, casefold: bool = True
) -> E:
    """The member of `cls` named by `value` (trimmed, case-insensitive unless `casefold=False`, or an alias);
    an unknown value raises ValueError naming `field` and every valid choice."""
    if isinstance(value, cls):
        return value
    text = str(value).strip()
    text = text.lower() if casefold else text
    if aliases and text in aliases:
        return aliases[text]
    try:
        return cls(text)
    except ValueError:
        valid = ", ".join([m.value for m in cls] + list(aliases or ()))
        raise ValueError(f"{field} must be one of {valid}; got {value!r}") from None


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


def check_choice(field: str, value: Any, enum: type[E]) -> E:
    """A member of a `StrEnum`, through its own `parse` (which knows its aliases) when it has one."""
    parse = getattr(enum, "parse", None)
    return parse(value, field) if parse is not None else parse_mode(enum, value, field)


def check_seed(value: Any) -> int:
    """A random seed: a whole number in [0, 2³¹ − 1]."""
    return check_int("seed", value, 0, 2**31 - 1)


def check_text(field: str, value: Any, max_length: int = 1000) -> str:
    """A piece of text (a prompt): None reads as empty; at most `max_length` characters, no NUL."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text; got {type(value).__name__}")
    if len(value) > max_length or "\x00" in value:
        raise ValueError(f"{field} must be at most {max_length} characters of text; got {len(value)}")
    return value.strip()
