"""FLUX.1 (schnell and dev): an MMDiT (FluxTransformer2DModel) predicting the flow velocity on 16-channel latents
packed in 2×2 patches, conditioned on CLIP-L's pooled embedding and T5's sequence — as `FluxPipeline` computes it:

    code name       what
    conditional     T5(prompt), [1, 512, joint_attention_dim] (max-length padding, no attention mask)
    pooled          CLIP-L's pooler_output of the prompt, [1, 768]
    tokens          pack(x_σ): [B, 16, h, w] → [B, (h/2)(w/2), 64], patch (i, j) at token i·(w/2) + j, channels
                    ordered (c, row in patch, column in patch)
    img_ids         [(h/2)(w/2), 3]: (0, i, j) per token (the RoPE positions); txt_ids zeros [512, 3]
    guidance        dev only (`guidance_embeds: true`): w as an input, [B] — guidance-distilled, no CFG batch and
                    no negative prompt; schnell (timestep-distilled) takes no guidance at all

    transformer(tokens, σ, guidance, pooled_projections, encoder_hidden_states, txt_ids, img_ids) = pack(û)

The pipeline passes timestep t/1000 = σ (the transformer multiplies by 1000 inside). Its σ grid is
linspace(1, 1/n, n), shifted by the scheduler: dev's `use_dynamic_shifting` with μ from the packed sequence length
(`explorer.diffusion.flow.dynamic_shift_mu`), schnell's static shift 1. The explorer's sampler steps the VP point
x_t = x_σ / c(σ) of equal SNR, as for SD3 (`sd3.flow_point`). Latents decode as
vae.decode(latents / scaling_factor + shift_factor) (0.3611 and 0.1159 for FLUX.1's VAE).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from explorer.diffusion import flow
from explorer.diffusion.conditioning import Conditioning
from explorer.diffusion.schedules import Schedule, current_scheduler_config
from explorer.models.families.base import LatentDenoiser, LatentFamily, Prediction3, encode_clip, encode_t5
from explorer.models.families.sd3 import flow_point
from explorer.models.pipelines import Family

T5_TOKENS = 512  # FluxPipeline's max_sequence_length
DEFAULT_SAMPLE_SIZE = 128  # FluxPipeline.default_sample_size: 128×128 latents (1024² pixels with the 8× VAE)
PATCH = 2  # latents are packed in 2×2 patches
# Rows: latent channels; columns: R, G, B; then the bias. ComfyUI's latent previews for the FLUX.1 VAE
# (comfy/latent_formats.py, class Flux: latent_rgb_factors and latent_rgb_factors_bias).
FLUX_LATENT_RGB = (
    (-0.0346, 0.0244, 0.0681),
    (0.0034, 0.0210, 0.0687),
    (0.0275, -0.0668, -0.0433),
    (-0.0174, 0.0160, 0.0617),
    (0.0859, 0.0721, 0.0329),
    (0.0004, 0.0383, 0.0115),
    (0.0405, 0.0861, 0.0915),
    (-0.0236, -0.0185, -0.0259),
    (-0.0245, 0.0250, 0.1180),
    (0.1008, 0.0755, -0.0421),
    (-0.0515, 0.0201, 0.0011),
    (0.0428, -0.0012, -0.0036),
    (0.0817, 0.0765, 0.0749),
    (-0.1264, -0.0522, -0.1103),
    (-0.0280, -0.0881, -0.0499),
    (-0.1262, -0.0982, -0.0778),
)
FLUX_LATENT_BIAS = (-0.0329, -0.0718, -0.0851)


# --- packing: latents ↔ the transformer's token sequence ------------------------------------------------------


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] → [B, (h/2)(w/2), 4C]: each 2×2 patch one token (FluxPipeline._pack_latents)."""
    b, c, h, w = latents.shape
    patches = latents.reshape(b, c, h // PATCH, PATCH, w // PATCH, PATCH)  # [B, C, h/2, 2, w/2, 2]
    return patches.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // PATCH) * (w // PATCH), c * PATCH * PATCH)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, (h/2)(w/2), 4C] → [B, C, h, w] for latents of height × width: the inverse of `pack_latents`."""
    b, _, channels = tokens.shape
    patches = tokens.reshape(b, height // PATCH, width // PATCH, channels // PATCH**2, PATCH, PATCH)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(b, channels // PATCH**2, height, width)  # [B, C, h, w]


def latent_image_ids(height: int, width: int) -> torch.Tensor:
    """[(h/2)(w/2), 3]: (0, row, column) of each token's patch, in `pack_latents`' order (the RoPE positions)."""
    rows, columns = torch.meshgrid(torch.arange(height // PATCH), torch.arange(width // PATCH), indexing="ij")
    return torch.stack([torch.zeros_like(rows), rows, columns], dim=-1).reshape(-1, 3).float()


def image_seq_len(height: int, width: int) -> int:
    """The packed sequence length of height × width latents: what FLUX's dynamic shift μ grows with."""
    return (height // PATCH) * (width // PATCH)


class Flux(LatentFamily):
    family = Family.FLUX
    denoiser_folder = "transformer"
    text_folders = (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2"))
    default_guidance = 3.5  # FluxPipeline's default: dev's embedded guidance
    default_steps = 28  # FluxPipeline's default (schnell's model card uses 4)
    takes_prompt = True
    latent_rgb = (FLUX_LATENT_RGB, FLUX_LATENT_BIAS)
    taesd_repo = "madebyollin/taef1"
    title = "FLUX.1 (latent flow matching, CLIP + T5, packed 2×2 patches)"
    classifier_free = False  # dev's guidance is an input of the one pass

    @property
    def controls(self) -> frozenset[str]:
        """schnell's (the catalogue's FLUX): a prompt and the latent size; no negative prompt, no CFG."""
        return frozenset({"prompt", "latent_size"})

    def model_controls(self, model: LatentDenoiser) -> frozenset[str]:
        """dev (embedded guidance) takes a guidance scale too."""
        return self.controls | ({"guidance"} if self.guidance_embedded(model) else set())

    @staticmethod
    def guidance_embedded(model: LatentDenoiser) -> bool:
        """True for FLUX.1 dev (guidance-distilled: w is an input of the transformer), False for schnell."""
        return bool(getattr(model.parts.network.config, "guidance_embeds", False))

    # -- shapes --------------------------------------------------------------------------------------

    def latent_channels(self, network: torch.nn.Module) -> int:
        return int(network.config.in_channels) // PATCH**2  # the transformer sees packed 2×2 patches

    def sample_size(self, network: torch.nn.Module) -> tuple[int, int]:
        return DEFAULT_SAMPLE_SIZE, DEFAULT_SAMPLE_SIZE

    def downsample_factor(self, network: torch.nn.Module) -> int:
        return PATCH

    # -- the σ grid ----------------------------------------------------------------------------------

    def _mu(self, model: LatentDenoiser) -> float:
        """FLUX's μ at the model's latent size, from its scheduler config (FluxPipeline's calculate_shift)."""
        config = model.scheduler_config
        return flow.dynamic_shift_mu(
            image_seq_len(*model.sample_shape[1:]),
            int(config.get("base_image_seq_len", flow.BASE_IMAGE_SEQ_LEN)),
            int(config.get("max_image_seq_len", flow.MAX_IMAGE_SEQ_LEN)),
            float(config.get("base_shift", flow.BASE_SHIFT)),
            float(config.get("max_shift", flow.MAX_SHIFT)),
        )

    def _dynamic(self, model: LatentDenoiser) -> bool:
        return bool(current_scheduler_config(model.scheduler_config).get("use_dynamic_shifting", False))

    def training_schedule(self, model: LatentDenoiser) -> Schedule:
        """The training σ grid i/T shifted as the pipeline shifts at this latent size (dynamic: e^μ), as VP."""
        if not self._dynamic(model):
            return super().training_schedule(model)
        T = int(model.scheduler_config.get("num_train_timesteps", 1000))
        mu = self._mu(model)
        sigmas = flow.dynamic_shift_sigmas(np.arange(1, T + 1, dtype=np.float64) / T, mu)
        return Schedule.from_flow_sigmas(sigmas, name=f"flow (dynamic shift, μ = {mu:.3f})")

    def pipeline_sigmas(self, model: LatentDenoiser, num_inference_steps: int) -> flow.FlowSchedule:
        """FluxPipeline's grid: sigmas = linspace(1, 1/n, n), then the scheduler's (dynamic or static) shift."""
        config = current_scheduler_config(model.scheduler_config)
        n = num_inference_steps
        return flow.inference_sigmas(
            n,
            num_train_timesteps=int(config.get("num_train_timesteps", 1000)),
            shift=float(config.get("shift", 1.0)),
            mu=self._mu(model) if self._dynamic(model) else None,
            sigmas=np.linspace(1.0, 1 / n, n),
        )

    def set_timesteps_options(self, model: LatentDenoiser, num_inference_steps: int) -> dict[str, Any]:
        """FluxPipeline's: sigmas = linspace(1, 1/n, n) and μ at this latent size (the scheduler ignores μ
        without dynamic shifting)."""
        n = num_inference_steps
        return {"sigmas": np.linspace(1.0, 1 / n, n), "mu": self._mu(model)}

    # -- conditioning ----------------------------------------------------------------------------------

    def check_conditioning(self, model: LatentDenoiser, conditioning: Conditioning) -> None:
        super().check_conditioning(model, conditioning)
        if conditioning.negative_prompt is not None:
            raise ValueError(
                f"negative_prompt: {model.name} is guidance-distilled FLUX.1, which runs one pass per step with no "
                "unconditional batch, so it takes no negative prompt"
            )
        if conditioning.guidance_rescale:
            raise ValueError(f"guidance_rescale: {model.name} (FLUX.1) runs no classifier-free guidance to rescale")
        if conditioning.guidance_scale is not None and not self.guidance_embedded(model):
            raise ValueError(
                f"guidance_scale: {model.name} is timestep-distilled (FLUX.1 schnell) and its transformer has no "
                "guidance input; leave guidance unset"
            )

    def guidance_scale(self, model: LatentDenoiser) -> float:
        """dev: the embedded guidance w (3.5 unless given); schnell: 1 (it takes none)."""
        return model.conditioning.scale(self.default_guidance) if self.guidance_embedded(model) else 1.0

    def embed(self, model: LatentDenoiser) -> dict[str, torch.Tensor]:
        """T5's sequence [1, 512, D] and CLIP-L's pooled embedding [1, 768] of the prompt ("" when none)."""
        text = model.conditioning.prompt or ""
        (clip_tokenizer, t5_tokenizer), (clip, t5) = model.parts.tokenizers, model.parts.text_encoders
        pooled = encode_clip(clip_tokenizer, clip, text).pooler_output
        sequence = encode_t5(t5_tokenizer, t5, text, T5_TOKENS)
        return {"conditional": sequence.to(model.device, model.dtype), "pooled": pooled.to(model.device, model.dtype)}

    # -- the forward pass ------------------------------------------------------------------------------

    def forward(self, model: LatentDenoiser, x: torch.Tensor, steps: torch.Tensor) -> Prediction3:
        e, (batch, _, height, width) = model.embeddings(), x.shape
        x_sigma, timestep = flow_point(model, x, steps)
        guidance = None
        if self.guidance_embedded(model):
            guidance = torch.full((batch,), model.guidance_scale, device=x.device, dtype=torch.float32)
        conditional = e["conditional"]
        tokens = model.parts.network(
            hidden_states=pack_latents(x_sigma),  # [B, (h/2)(w/2), 4C]
            timestep=timestep / 1000,  # the pipeline's t / 1000 (σ); the transformer multiplies it back
            guidance=guidance,
            pooled_projections=e["pooled"].repeat(batch, 1),
            encoder_hidden_states=conditional.repeat(batch, 1, 1),
            txt_ids=torch.zeros(conditional.shape[1], 3, device=x.device, dtype=x.dtype),
            img_ids=latent_image_ids(height, width).to(x.device, x.dtype),
        ).sample
        return unpack_latents(tokens, height, width), None, None  # [B, C, h, w]
