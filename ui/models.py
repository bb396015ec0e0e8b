"""The models the app shows: bundled checkpoints by default, Hub ids when typed; loaded once and shared."""

from __future__ import annotations

from typing import Any

DEFAULT_MODEL = "digits-eps"


def bundled_models() -> list[str]:
    """Names of the bundled checkpoints present on disk (empty while none are trained yet)."""
    try:
        from explorer import hub
    except ImportError:
        return []
    return sorted(hub.bundled_names())


def load_model(ref: str, *, allow_local: bool = False) -> Any:
    """A shared denoiser for a bundled name, a Hub id or (locally) a folder; ValueError says what is wrong."""
    from explorer import hub

    return hub.load(ref, allow_local=allow_local)


def optional_model(ref: str) -> Any | None:
    """A bundled model if it exists, else None (a view then explains what is missing instead of failing)."""
    if ref not in bundled_models():
        return None
    try:
        return load_model(ref)
    except (ValueError, OSError):
        return None
