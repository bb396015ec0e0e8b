"""SDXL: a UNet2DConditionModel with two CLIP text encoders, a pooled text embedding and size/crop conditioning.

As `StableDiffusionXLPipeline.encode_prompt` and its loop compute it (clip_skip None):

    code name         what
    conditional       concat(CLIP-L hidden_states[−2], CLIP-G hidden_states[−2]) of the prompt, [1, 77, 768 + 1280]
    pooled            CLIP-G's projected text embedding of the prompt, [1, 1280]
    unconditional     the same of the negative prompt, or zeros when there is none and the checkpoint sets
                      `force_zeros_for_empty_prompt` (SDXL base does; it is the pipeline's default)
    time_ids          (original H, W, crop top, left, target H, W) in pixels = (H, W, 0, 0, H, W), [1, 6]

    unet(x, t, encoder_hidden_states, added_cond_kwargs={text_embeds: pooled, time_ids})   guided: [uncond; cond]
"""

from __future__ import annotations

import torch

from explorer.models.families.base import LatentDenoiser, LatentFamily, Prediction3, encode_clip
from explorer.models.pipelines import Family

# Rows: latent channels; columns: R, G, B; then the bias. The SDXL VAE's latent space.
SDXL_LATENT_RGB = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_LATENT_BIAS = (0.1084, -0.0175, -0.0011)


class StableDiffusionXL(LatentFamily):
    family = Family.SDXL
    title = "SDXL (latent, two text encoders, size conditioning)"
    text_folders = (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2"))
    default_guidance = 5.0  # StableDiffusionXLPipeline's default
    takes_prompt = True
    latent_rgb = (SDXL_LATENT_RGB, SDXL_LATENT_BIAS)
    taesd_repo = "madebyollin/taesdxl"

    def embed(self, model: LatentDenoiser) -> dict[str, torch.Tensor]:
        """Prompt (and, when guided, negative) embeddings [1, 77, D₁ + D₂], pooled [1, D₂], and the size ids."""
        cond = model.conditioning
        embeddings = dict(zip(("conditional", "pooled"), self._encode(model, cond.prompt or ""), strict=True))
        if model.guidance_scale > 1.0:
            zeros = cond.negative_prompt is None and model.pipeline_options.get("force_zeros_for_empty_prompt", True)
            if zeros:
                negative = (torch.zeros_like(embeddings["conditional"]), torch.zeros_like(embeddings["pooled"]))
            else:
                negative = self._encode(model, cond.negative_prompt or "")
            embeddings |= dict(zip(("unconditional", "unconditional_pooled"), negative, strict=True))
        height, width = model.image_shape[1:]
        embeddings["time_ids"] = torch.tensor([[height, width, 0, 0, height, width]], dtype=model.dtype)
        return {name: value.to(model.device) for name, value in embeddings.items()}

    def _encode(self, model: LatentDenoiser, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, pooled = [], None
        for tokenizer, encoder in zip(model.parts.tokenizers, model.parts.text_encoders, strict=True):
            output = encode_clip(tokenizer, encoder, text, output_hidden_states=True)
            if output[0].ndim == 2:  # the projected (pooled) output: only the encoder with projection has one
                pooled = output[0]
            hidden.append(output.hidden_states[-2])
        if pooled is None:
            raise ValueError(f"{model.name}: no text encoder with a projection gave a pooled embedding")
        return torch.cat(hidden, dim=-1).to(model.dtype), pooled.to(model.dtype)

    def forward(self, model: LatentDenoiser, x: torch.Tensor, steps: torch.Tensor) -> Prediction3:
        e, batch, unet = model.embeddings(), x.shape[0], model.parts.network

        def extra(pooled: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"text_embeds": pooled, "time_ids": e["time_ids"].repeat(pooled.shape[0], 1)}

        cond, pooled = e["conditional"].repeat(batch, 1, 1), e["pooled"].repeat(batch, 1)  # [B, L, D], [B, D₂]
        if model.guidance_scale <= 1.0:
            return unet(x, steps, encoder_hidden_states=cond, added_cond_kwargs=extra(pooled)).sample, None, None
        uncond, uncond_pooled = e["unconditional"].repeat(batch, 1, 1), e["unconditional_pooled"].repeat(batch, 1)
        both = unet(
            torch.cat([x, x]),
            torch.cat([steps, steps]),
            encoder_hidden_states=torch.cat([uncond, cond]),
            added_cond_kwargs=extra(torch.cat([uncond_pooled, pooled])),
        ).sample  # [2B, C, h, w]: diffusers' order, unconditional first
        unconditional, conditional = both.chunk(2)
        return conditional, unconditional, None
