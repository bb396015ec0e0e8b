"""LDM: an unconditional UNet2DModel on the latents of a VQ autoencoder (CompVis/ldm-celebahq-256).

    unet(x, t)      never guided; latents are the VQ encoder's output before quantisation (scaling 1.0)

The 3 VQ latent channels have no latent→RGB matrix: the page draws them as raw channels.
"""

from __future__ import annotations

from typing import Any

import torch

from explorer.models.families.base import LatentFamily
from explorer.models.pipelines import Family


class LatentDiffusion(LatentFamily):
    family = Family.LDM
    title = "latent diffusion (VQ latents)"
    decoder_folder = "vqvae"

    def encoder_latents(self, encoded: Any) -> torch.Tensor:
        return encoded.latents
