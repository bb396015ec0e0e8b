"""The latent families as code: `behaviour(family)` is the one object that knows how a family conditions, runs its
network, sizes its latents and draws them (see `base`). One module per family."""

from __future__ import annotations

from explorer.models.families.base import LatentFamily, LatentParts
from explorer.models.families.dit import DiT
from explorer.models.families.flux import Flux
from explorer.models.families.ldm import LatentDiffusion
from explorer.models.families.sd3 import StableDiffusion3
from explorer.models.families.sdxl import StableDiffusionXL
from explorer.models.families.stable_diffusion import StableDiffusion
from explorer.models.pipelines import Family

FAMILIES: dict[Family, LatentFamily] = {
    kind.family: kind
    for kind in (StableDiffusion(), StableDiffusionXL(), StableDiffusion3(), Flux(), LatentDiffusion(), DiT())
}


def behaviour(family: Family) -> LatentFamily:
    """The behaviour of a latent family; the pixel family has none (it is not a latent checkpoint)."""
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"{family.value} is not a latent family") from None


__all__ = ["FAMILIES", "LatentFamily", "LatentParts", "behaviour"]
