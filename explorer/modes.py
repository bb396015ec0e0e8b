"""Parsing `str` enums at the edge: one place that turns a user's string into a mode or a clear error."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

M = TypeVar("M", bound=StrEnum)


def parse_mode(
    cls: type[M], value: object, field: str, *, aliases: Mapping[str, M] | None = None, casefold: bool = True
) -> M:
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
