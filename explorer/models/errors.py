"""Checkpoint refusals: `CheckpointError` with its `CheckpointProblem`, the one-sentence messages, and `read_json`.

Every refusal a load can give is a `CheckpointError` whose `problem` says why (for code) and whose message says it
in one sentence (for people). `read_json` is the one bounded JSON read of a checkpoint's files (configs and shard
indexes); its failures are such refusals. No torch, no diffusers: `refs` and `weights` import this cheaply.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 1 << 20


class CheckpointProblem(StrEnum):
    """Why a checkpoint could not be loaded."""

    INVALID_REF = "invalid_ref"
    NOT_FOUND = "not_found"
    GATED = "gated"
    UNAUTHORIZED = "unauthorized"
    REVISION_NOT_FOUND = "revision_not_found"
    OFFLINE = "offline"
    HUB_ERROR = "hub_error"
    MISSING_FILES = "missing_files"
    PICKLE_ONLY = "pickle_only"
    BROKEN_FILES = "broken_files"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    LOCAL_REFUSED = "local_refused"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; `problem` says why, the message says it in one sentence."""

    def __init__(self, problem: CheckpointProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def unsupported(name: str, why: str) -> CheckpointError:
    return CheckpointError(CheckpointProblem.UNSUPPORTED, f"{name!r} cannot be explored: {why}.")


def missing_files(name: str, what: str) -> CheckpointError:
    return CheckpointError(CheckpointProblem.MISSING_FILES, f"{name!r} is missing {what}, so it cannot be loaded.")


def broken_files(name: str, what: str) -> CheckpointError:
    return CheckpointError(
        CheckpointProblem.BROKEN_FILES, f"{name!r} has files that cannot be read or do not fit together ({what})."
    )


def read_json(path: Path, name: str) -> dict[str, Any]:
    """A JSON object from `path`, or CheckpointError (missing file, too large, not a JSON object)."""
    if not path.is_file():
        raise missing_files(name, path.name)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise broken_files(name, f"{path.name} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise broken_files(name, f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise broken_files(name, f"{path.name} is not a JSON object")
    return value
