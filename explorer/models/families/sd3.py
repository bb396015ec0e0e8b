"""Stable Diffusion 3 / 3.5: an MMDiT (SD3Transformer2DModel) predicting the flow velocity on 16-channel latents,
conditioned on two CLIP encoders and, optionally, T5 — as `StableDiffusion3Pipeline.encode_prompt` and its loop do:

    code name       what
    conditional     [pad₄₀₉₆(CLIP-L ⊕ CLIP-G hidden_states[−2]) ; T5(prompt)], [1, 77 + 256, joint_attention_dim]
                    (zeros in place of T5's 256 tokens when the checkpoint has no text_encoder_3)
    pooled          CLIP-L ⊕ CLIP-G projected text embeddings, [1, 768 + 1280]
    unconditional   the same of the negative prompt ("" when none: SD3 encodes the empty prompt, it never zeros it)

    transformer(x_σ, σ·T, encoder_hidden_states, pooled_projections) = û     guided: one batch [uncond; cond] of 2B

The explorer's sampler steps the VP point x_t = x_σ · c(σ)⁻¹ of equal SNR (`explorer.diffusion.flow`): the pass
takes x_σ = x_t / (√ᾱ + √(1−ᾱ)) at the σ of the timestep's ᾱ, and returns û = ε̂ − x̂₀ (`flow_prediction`).
Latents decode as vae.decode(latents / scaling_factor + shift_factor).
"""

from __future__ import annotations

from typing import Any

import torch

from explorer.diffusion import flow
from explorer.diffusion.schedules import current_scheduler_config
from explorer.models.families.base import LatentDenoiser, LatentFamily, Prediction3, encode_clip, encode_t5
from explorer.models.pipelines import Family

T5_TOKENS = 256  # StableDiffusion3Pipeline's max_sequence_length
# Rows: latent channels; columns: R, G, B; then the bias (ComfyUI's latent previews for the SD3 VAE).
SD3_LATENT_RGB = (
    (-0.0922, -0.0175, 0.0749),
    (0.0311, 0.0633, 0.0954),
    (0.1994, 0.0927, 0.0458),
    (0.0856, 0.0339, 0.0902),
    (0.0587, 0.0272, -0.0496),
    (-0.0006, 0.1104, 0.0309),
    (0.0978, 0.0306, 0.0427),
    (-0.0042, 0.1038, 0.1358),
    (-0.0194, 0.0020, 0.0669),
    (-0.0488, 0.0130, -0.0268),
    (0.0922, 0.0988, 0.0951),
    (-0.0278, 0.0524, -0.0542),
    (0.0332, 0.0456, 0.0895),
    (-0.0069, -0.0030, -0.0810),
    (-0.0596, -0.0465, -0.0293),
    (-0.1448, -0.1463, -0.1189),
)
SD3_LATENT_BIAS = (0.2394, 0.2135, 0.1925)


def flow_point(model: LatentDenoiser, x: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_σ, σ·T) for VP latents x [B, C, h, w] at the model's 0-based timesteps [B]: σ = √(1−ᾱ)/(√ᾱ + √(1−ᾱ)),
    T the scheduler's num_train_timesteps (the flow model's timestep is σ·T on every grid)."""
    table = torch.tensor(model.schedule.alphas_cumprod, dtype=torch.float64)
    a = table.to("meta")[steps] if steps.is_meta else table[steps.cpu()]  # [B]; meta: sizing (explorer.models.memory)
    scale = a.sqrt() + (1 - a).sqrt()  # x_σ = x_t / (√ᾱ + √(1−ᾱ))
    sigma = (1 - a).sqrt() / scale
    x_sigma = x / scale.to(x.device, x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    T = int(model.scheduler_config.get("num_train_timesteps", 1000))  # the training grid's, whatever grid is bound
    return x_sigma, (sigma * T).to(x.device, torch.float32)


class StableDiffusion3(LatentFamily):
    family = Family.SD3
    title = "Stable Diffusion 3 (flow matching, MMDiT, two CLIP encoders and T5)"
    denoiser_folder = "transformer"
    text_folders = (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2"), ("text_encoder_3", "tokenizer_3"))
    default_guidance = 7.0  # StableDiffusion3Pipeline's defaults
    default_steps = 28
    takes_prompt = True
    latent_rgb = (SD3_LATENT_RGB, SD3_LATENT_BIAS)

    def downsample_factor(self, network: torch.nn.Module) -> int:
        return int(network.config.patch_size)

    def check_size(self, model: LatentDenoiser, height: int, width: int) -> None:
        config = model.parts.network.config
        largest = int(config.pos_embed_max_size) * int(config.patch_size)
        if max(height, width) > largest:
            raise ValueError(f"an SD3 transformer's positional embedding holds latents up to {largest} on a side")

    def pipeline_sigmas(self, model: LatentDenoiser, num_inference_steps: int) -> flow.FlowSchedule:
        """StableDiffusion3Pipeline's grid: the scheduler's default σ, shifted by its static `shift` (3 for SD3)."""
        config = self._static_config(model)
        return flow.inference_sigmas(
            num_inference_steps,
            num_train_timesteps=int(config.get("num_train_timesteps", 1000)),
            shift=float(config.get("shift", 1.0)),
        )

    def set_timesteps_options(self, model: LatentDenoiser, num_inference_steps: int) -> dict[str, Any]:
        """None: StableDiffusion3Pipeline calls set_timesteps(n) on a static shift."""
        self._static_config(model)
        return {}

    @staticmethod
    def _static_config(model: LatentDenoiser) -> dict[str, Any]:
        config = current_scheduler_config(model.scheduler_config)
        if config.get("use_dynamic_shifting"):
            raise ValueError(f"{model.name}: an SD3 scheduler with dynamic shifting is not supported")
        return config

    def embed(self, model: LatentDenoiser) -> dict[str, torch.Tensor]:
        cond = model.conditioning
        embeddings = dict(zip(("conditional", "pooled"), self._encode(model, cond.prompt or ""), strict=True))
        if model.guidance_scale > 1.0:
            negative = self._encode(model, cond.negative_prompt or "")
            embeddings |= dict(zip(("unconditional", "unconditional_pooled"), negative, strict=True))
        return {name: value.to(model.device, model.dtype) for name, value in embeddings.items()}

    def _encode(self, model: LatentDenoiser, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        encoders, tokenizers = model.parts.text_encoders, model.parts.tokenizers
        hidden, pooled = [], []
        for tokenizer, encoder in zip(tokenizers[:2], encoders[:2], strict=True):
            output = encode_clip(tokenizer, encoder, text, output_hidden_states=True)
            pooled.append(output[0])
            hidden.append(output.hidden_states[-2])
        clip = torch.cat(hidden, dim=-1)  # [1, 77, 768 + 1280]
        width = int(model.parts.network.config.joint_attention_dim)
        if len(encoders) > 2:
            t5 = encode_t5(tokenizers[2], encoders[2], text, T5_TOKENS)
        else:  # T5 left out, as diffusers allows: its tokens are zeros
            t5 = torch.zeros(1, T5_TOKENS, width, dtype=clip.dtype, device=clip.device)
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return torch.cat([clip, t5.to(clip.dtype)], dim=-2), torch.cat(pooled, dim=-1)

    def forward(self, model: LatentDenoiser, x: torch.Tensor, steps: torch.Tensor) -> Prediction3:
        e, batch, network = model.embeddings(), x.shape[0], model.parts.network
        x_sigma, timestep = flow_point(model, x, steps)
        cond, pooled = e["conditional"].repeat(batch, 1, 1), e["pooled"].repeat(batch, 1)
        if model.guidance_scale <= 1.0:
            out = network(
                hidden_states=x_sigma, timestep=timestep, encoder_hidden_states=cond, pooled_projections=pooled
            )
            return out.sample, None, None
        uncond, uncond_pooled = e["unconditional"].repeat(batch, 1, 1), e["unconditional_pooled"].repeat(batch, 1)
        both = network(
            hidden_states=torch.cat([x_sigma, x_sigma]),
            timestep=torch.cat([timestep, timestep]),
            encoder_hidden_states=torch.cat([uncond, cond]),
            pooled_projections=torch.cat([uncond_pooled, pooled]),
        ).sample  # [2B, C, h, w]: diffusers' order, unconditional first
        unconditional, conditional = both.chunk(2)
        return conditional, unconditional, None
