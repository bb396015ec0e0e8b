"""Stable Diffusion 1.x/2.x: a UNet2DConditionModel on 4-channel VAE latents, conditioned on one CLIP encoder.

    unet(x, t, encoder_hidden_states=CLIP(prompt).last_hidden_state)    guided: one batch [uncond; cond] of 2B

as `StableDiffusionPipeline.encode_prompt` and its loop compute it (the negative prompt, or "", is the
unconditional text).
"""

from __future__ import annotations

import torch

from explorer.models.families.base import LatentDenoiser, LatentFamily, Prediction3, encode_clip
from explorer.models.pipelines import Family

# Rows: latent channels; columns: R, G, B. The SD 1/2 latent space (also DiT's sd-vae-ft-ema).
SD_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)


class StableDiffusion(LatentFamily):
    family = Family.STABLE_DIFFUSION
    title = "Stable Diffusion (latent, text-conditioned)"
    text_folders = (("text_encoder", "tokenizer"),)
    default_guidance = 7.5  # StableDiffusionPipeline's default
    takes_prompt = True
    latent_rgb = (SD_LATENT_RGB, (0.0, 0.0, 0.0))
    taesd_repo = "madebyollin/taesd"

    def embed(self, model: LatentDenoiser) -> dict[str, torch.Tensor]:
        """CLIP embeddings [1, L, D] of the prompt ("" when none) and, when guided, of the negative prompt."""
        tokenizer, encoder = model.parts.tokenizer, model.parts.text_encoder
        cond = model.conditioning

        def hidden(text: str) -> torch.Tensor:
            return encode_clip(tokenizer, encoder, text)[0].to(device=model.device, dtype=model.dtype)

        embeddings = {"conditional": hidden(cond.prompt or "")}
        if model.guidance_scale > 1.0:
            embeddings["unconditional"] = hidden(cond.negative_prompt or "")
        return embeddings

    def forward(self, model: LatentDenoiser, x: torch.Tensor, steps: torch.Tensor) -> Prediction3:
        embeddings = model.embeddings()
        batch = x.shape[0]
        cond = embeddings["conditional"].repeat(batch, 1, 1)  # [B, L, D]
        if model.guidance_scale <= 1.0:
            return model.parts.network(x, steps, encoder_hidden_states=cond).sample, None, None
        uncond = embeddings["unconditional"].repeat(batch, 1, 1)
        both = model.parts.network(
            torch.cat([x, x]), torch.cat([steps, steps]), encoder_hidden_states=torch.cat([uncond, cond])
        ).sample  # [2B, C, h, w]: diffusers' order, unconditional first
        unconditional, conditional = both.chunk(2)
        return conditional, unconditional, None
