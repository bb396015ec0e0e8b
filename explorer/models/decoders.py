"""Seeing latents: the four ways a latent frame becomes a picture, and which decoder drew it.

    decoder    what                                                            cost per 64² SD frame (CPU)
    exact      the model's own decoder: vae.decode(latents / scaling_factor)   ≈ 49.5 M decoder parameters
               (VQ: vqvae.decode(latents / scaling_factor), scaling 1.0)
    taesd      AutoencoderTiny (madebyollin/taesd) when its weights are in     ≈ 1.2 M parameters
               the local Hugging Face cache; never downloaded here
    linear     one 4×3 matrix per latent family (its `latent_rgb`): latent     a matrix product
               channels → R, G, B at latent resolution
    channels   the raw latent channels side by side, grey, ±3 → black..white   none

Every decoder returns images [B, C, H, W] in [−1, 1] on the CPU in float32 (linear: 3 channels at latent size;
channels: 1 channel, C·w wide). Pure functions here; the exact and TAESD decoders run modules the model holds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from explorer.models.errors import CheckpointError, CheckpointProblem
from explorer.models.families import FAMILIES
from explorer.models.families.base import LatentRGB
from explorer.models.families.stable_diffusion import SD_LATENT_RGB  # noqa: F401 (the SD 1/2 matrix, for tests)
from explorer.models.pipelines import Family
from explorer.validation import Mode

CHANNEL_RANGE = 3.0  # a raw latent channel is drawn from −3 (black) to 3 (white)


class Decoder(Mode, field="decoder"):
    """How a latent frame is drawn."""

    EXACT = "exact"
    TAESD = "taesd"
    LINEAR = "linear"
    CHANNELS = "channels"


# Each family's latent→RGB matrix (rows: latent channels; columns: R, G, B; then a bias) and TAESD repo, from its
# behaviour (explorer.models.families).
LATENT_RGB: dict[Family, LatentRGB] = {f: kind.latent_rgb for f, kind in FAMILIES.items() if kind.latent_rgb}
TAESD_REPOS: dict[Family, str] = {f: kind.taesd_repo for f, kind in FAMILIES.items() if kind.taesd_repo}


def linear_rgb(latents: torch.Tensor, family: Family) -> torch.Tensor:
    """latents [B, 4, h, w] → RGB [B, 3, h, w] in [−1, 1] by the family's latent→RGB matrix (and bias)."""
    if family not in LATENT_RGB:
        raise ValueError(
            f"decoder 'linear' has no latent→RGB matrix for the {family.value} family; use exact or channels"
        )
    rows, bias = LATENT_RGB[family]
    matrix = torch.tensor(rows, dtype=torch.float32)  # [C, 3]
    if latents.shape[1] != matrix.shape[0]:
        raise ValueError(f"decoder 'linear' needs {matrix.shape[0]} latent channels; got {latents.shape[1]}")
    rgb = torch.einsum("bchw,cr->brhw", latents.float().cpu(), matrix)  # [B, 3, h, w]
    return (rgb + torch.tensor(bias).reshape(1, 3, 1, 1)).clamp(-1.0, 1.0)


def channel_grid(latents: torch.Tensor) -> torch.Tensor:
    """latents [B, C, h, w] → [B, 1, h, C·w]: the channels side by side, ±CHANNEL_RANGE mapped to [−1, 1]."""
    batch, channels, height, width = latents.shape
    grid = latents.float().cpu().permute(0, 2, 1, 3).reshape(batch, 1, height, channels * width)  # [B, 1, h, C·w]
    return (grid / CHANNEL_RANGE).clamp(-1.0, 1.0)


_TAESD: dict[tuple[str, str, str], torch.nn.Module] = {}
_TAESD_LOCK = threading.Lock()


def taesd_module(family: Family, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The TAESD decoder for `family` from the local Hugging Face cache (never downloaded here), loaded once.

    Its folder is held to the same weight checks as any checkpoint; a cache without it is a CheckpointError saying
    how to get it.
    """
    from explorer.models.hub import cached_snapshot
    from explorer.models.weights import check_weights

    repo = TAESD_REPOS.get(family)
    if repo is None:
        raise ValueError(f"decoder 'taesd' has no tiny decoder for the {family.value} family; use exact or channels")
    key = (repo, str(device), str(dtype))
    with _TAESD_LOCK:
        if key not in _TAESD:
            folder = cached_snapshot(repo, ["config.json", "diffusion_pytorch_model*.safetensors*"])
            if folder is None or not (Path(folder) / "config.json").is_file():
                raise CheckpointError(
                    CheckpointProblem.OFFLINE,
                    f"TAESD's weights ({repo}) are not in the local cache; download them once "
                    f"(huggingface-cli download {repo}) to draw frames with decoder 'taesd'.",
                )
            variant = check_weights(Path(folder), repo)
            from diffusers import AutoencoderTiny

            module = AutoencoderTiny.from_pretrained(
                str(folder), use_safetensors=True, local_files_only=True, variant=variant, torch_dtype=dtype
            )
            _TAESD[key] = module.to(device).eval()
        return _TAESD[key]
