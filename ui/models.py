"""The models the app shows: bundled checkpoints by default, Hub ids when typed; loaded once and shared."""

from __future__ import annotations

from explorer.diffusion.denoiser import Denoiser
from explorer.models.catalogue import catalogue
from explorer.models.loader import load
from explorer.models.refs import bundled_names

DEFAULT_MODEL = "digits-eps"


def bundled_models() -> list[str]:
    """Names of the bundled checkpoints present on disk (empty while none are trained yet)."""
    return sorted(bundled_names())


def model_choices() -> list[str]:
    """Bundled checkpoints first (the default is one of them), then the Hub catalogue."""
    names = bundled_models()
    names += [entry.name for entry in catalogue() if entry.name not in names]
    return names or [DEFAULT_MODEL]


def load_model(ref: str, *, allow_local: bool = False) -> Denoiser:
    """A shared denoiser for a bundled name, a Hub id or (locally) a folder; ValueError says what is wrong."""
    return load(ref, allow_local=allow_local)


def optional_model(ref: str) -> Denoiser | None:
    """A bundled model if it exists, else None (a view then explains what is missing instead of failing)."""
    if ref not in bundled_models():
        return None
    try:
        return load_model(ref)
    except (ValueError, OSError):
        return None
