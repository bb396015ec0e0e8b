"""`load`: a bundled name, a Hub id or a local folder turned into a shared denoiser on a device.

Loaded models live in a bounded, thread-safe, process-wide cache keyed by (source, id, revision, device,
dtype), so every user of a server shares one copy. Denoisers take diffusers' 0-based timestep.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from explorer.models import refs
from explorer.models.cache import ModelCache
from explorer.models.checkpoint import CheckpointError, CheckpointProblem, ModuleDenoiser, load_folder
from explorer.models.device import pick_device, weight_dtype
from explorer.models.hub import fetch_hub_checkpoint
from explorer.models.refs import Source, resolve_ref

MAX_CACHED_MODELS = 4
MODEL_CACHE: ModelCache[ModuleDenoiser] = ModelCache(MAX_CACHED_MODELS)


def clear_cache() -> None:
    """Forget every cached model (for tests, or to free memory)."""
    MODEL_CACHE.clear()


def load(
    ref: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    revision: str | None = None,
    dtype: str | torch.dtype | None = None,
    allow_local: bool = False,
) -> ModuleDenoiser:
    """Load a denoiser: a bundled checkpoint's name, a Hub id "owner/name" (at `revision`), or a local folder.

    `device` None picks cuda, then mps, then cpu; `dtype` None means float32. Local folders need
    `allow_local=True` and are refused whenever `SPACE_ID` is set. Failures raise CheckpointError (a ValueError)
    with one sentence. The result is shared: the same (source, revision, device, dtype) returns the same object.
    """
    source, identifier = resolve_ref(ref, revision=revision, allow_local=allow_local)
    target, precision = pick_device(device), weight_dtype(dtype)
    key = (source, identifier, revision, str(target), str(precision))

    def loader() -> ModuleDenoiser:
        if source is Source.HUB:
            folder, description = fetch_hub_checkpoint(identifier, revision), f"Hub checkpoint {identifier}"
        elif source is Source.BUNDLED:
            folder, description = refs.PRETRAINED_DIR / identifier, f"bundled checkpoint {identifier}"
        else:
            folder, description = Path(identifier), f"local checkpoint {identifier}"
            if not folder.is_dir():
                raise CheckpointError(CheckpointProblem.NOT_FOUND, f"There is no checkpoint folder at {identifier!r}.")
        name = folder.name if source is Source.LOCAL else identifier
        return load_folder(folder, name=name, device=target, dtype=precision, description=description)

    return MODEL_CACHE.get_or_load(key, loader)
