"""`load`: a bundled name, a Hub id or a local folder turned into a shared denoiser on a device.

Loaded models live in a bounded, thread-safe, process-wide cache keyed by (source, id, revision, device,
dtype), so every user of a server shares one copy. Denoisers take diffusers' 0-based timestep.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from explorer.diffusion.denoiser import Denoiser
from explorer.models import refs
from explorer.models.cache import ModelCache
from explorer.models.checkpoint import load_folder
from explorer.models.device import pick_device, weight_dtype
from explorer.models.errors import CheckpointError, CheckpointProblem
from explorer.models.hub import fetch_hub_checkpoint
from explorer.models.latent import load_pipeline
from explorer.models.pipelines import read_pipeline
from explorer.models.refs import Source, resolve_ref

MAX_CACHED_MODELS = 4
COMPONENT_FOLDERS = (
    *("unet", "scheduler", "vae", "vqvae", "transformer"),
    *("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"),
)
MODEL_CACHE: ModelCache[Denoiser] = ModelCache(MAX_CACHED_MODELS)


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
) -> Denoiser:
    """Load a denoiser: a bundled checkpoint's name, a Hub id "owner/name" (at `revision`), or a local folder.

    `device` None picks cuda, then mps, then cpu; `dtype` None means float32, "auto" 16 bits on a CUDA GPU (a latent
    pipeline whose weights do not fit the GPU then runs with model CPU offload, `explorer.models.memory`). Local
    folders need
    `allow_local=True` and are refused whenever `SPACE_ID` is set. Failures raise CheckpointError (a ValueError)
    with one sentence. The result is shared: the same (source, revision, device, dtype) returns the same object.
    """
    source, identifier = resolve_ref(ref, revision=revision, allow_local=allow_local)
    key = _key(source, identifier, revision, device, dtype)
    target = pick_device(device)
    precision = weight_dtype(dtype, target)

    def loader() -> Denoiser:
        if source is Source.LOCAL:
            return load_local(Path(identifier), typed=str(ref), device=target, dtype=precision)
        if source is Source.HUB:
            folder, description = fetch_hub_checkpoint(identifier, revision), f"Hub checkpoint {identifier}"
        else:
            folder, description = refs.PRETRAINED_DIR / identifier, f"bundled checkpoint {identifier}"
        return load_checkpoint(folder, name=identifier, device=target, dtype=precision, description=description)

    return MODEL_CACHE.get_or_load(key, loader)


def loaded(
    ref: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    revision: str | None = None,
    dtype: str | torch.dtype | None = None,
    allow_local: bool = False,
) -> Denoiser | None:
    """The denoiser `load` would return if it is already loaded, else None: nothing is read or downloaded.
    ValueError (one sentence) for what is not a reference, as `load` would raise."""
    source, identifier = resolve_ref(ref, revision=revision, allow_local=allow_local)
    return MODEL_CACHE.peek(_key(source, identifier, revision, device, dtype))


def _key(source: Source, identifier: str, revision: str | None, device: object, dtype: object) -> tuple:
    """The cache key of a loaded model: (source, id, revision, device, dtype), the device and dtype resolved."""
    target = pick_device(device)
    return (source, identifier, revision, str(target), str(weight_dtype(dtype, target)))


def load_checkpoint(
    folder: Path, *, name: str, device: torch.device, dtype: torch.dtype, description: str = ""
) -> Denoiser:
    """Load the checkpoint in `folder` (on disk): a latent or conditional pipeline (`explorer.models.latent`) when
    its model_index.json names one, else a pixel checkpoint (`explorer.models.checkpoint`)."""
    spec = read_pipeline(folder, name)
    if spec is not None:
        return load_pipeline(folder, spec, name=name, device=device, dtype=dtype, description=description)
    return load_folder(folder, name=name, device=device, dtype=dtype, description=description)


# Refusals that are about the path rather than about a checkpoint found there: all read as `refs.LOCAL_UNLOADABLE`.
_PATH_PROBLEMS = (CheckpointProblem.NOT_FOUND, CheckpointProblem.MISSING_FILES, CheckpointProblem.BROKEN_FILES)


def load_local(folder: Path, *, typed: str, device: torch.device, dtype: torch.dtype) -> Denoiser:
    """Load the checkpoint folder at `folder` (resolved; `typed` is what the user typed).

    A path that is not a readable folder holding a checkpoint, or whose files link outside it, gets the one
    message `refs.LOCAL_UNLOADABLE`; other refusals name the folder by the last part of what was typed, never by
    its absolute path.
    """
    name = (Path(typed.strip()).name or typed.strip())[:60]
    try:
        if not folder.is_dir() or _links_outside(folder):
            raise refs.local_unloadable()
        return load_checkpoint(folder, name=name, device=device, dtype=dtype, description=f"local checkpoint {name}")
    except CheckpointError as error:
        if error.problem in _PATH_PROBLEMS:
            raise refs.local_unloadable() from None
        raise
    except (OSError, RuntimeError):  # unreadable folders and files, symlink loops
        raise refs.local_unloadable() from None


def _links_outside(folder: Path) -> bool:
    """True when an entry of `folder`, or of its component folders, resolves to a path outside it."""
    root = folder.resolve(strict=True)
    entries = list(root.iterdir())
    for component in COMPONENT_FOLDERS:
        if (root / component).is_dir():
            entries += list((root / component).iterdir())
    return any(not entry.resolve().is_relative_to(root) for entry in entries)
