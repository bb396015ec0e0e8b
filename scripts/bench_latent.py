"""Latent-model rows of scripts/bench_sampler.py (`--latent`): SD 1.5-sized modules with random weights, CPU.

Recording overhead: explorer.sample against diffusers' StableDiffusionPipeline on the same UNet2DConditionModel
(SD 1.5's config: block_out_channels (320, 640, 1280, 1280), cross_attention_dim 768) at 64×64 latents, batch 1,
with the same prompt embeddings (the pipeline gets `prompt_embeds`/`negative_prompt_embeds`, so neither side runs
a text encoder inside the timed loop) and the same initial latents; the pipeline stops at latents
(`output_type="latent"`). Guidance 1 runs one UNet pass per step, 7.5 one pass on a batch of 2, on both sides.

Decoding: the time to draw one 64×64 latent frame with the exact SD-sized AutoencoderKL decoder (512×512 RGB),
a TAESD-sized AutoencoderTiny, and the linear latent→RGB projection.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import explorer  # noqa: E402
from explorer import Denoiser, DenoiserOutput, Schedule  # noqa: E402
from explorer.diffusion.conditioning import guide  # noqa: E402
from explorer.diffusion.noise import initial_noise  # noqa: E402

SD15_SCHEDULER = {  # stable-diffusion-v1-5's scheduler/scheduler_config.json (PNDM)
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
SD_LINEAR_RGB = torch.tensor(  # SD 1.x/2.x latent → RGB, as ComfyUI publishes it (rows: latent channels)
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
)
TEXT_TOKENS, TEXT_WIDTH = 77, 768


class EmbeddedSD(Denoiser):
    """The SD UNet with fixed prompt embeddings, guided as StableDiffusionPipeline guides (batch [uncond; cond])."""

    def __init__(self, unet: torch.nn.Module, embeds: dict[str, torch.Tensor], guidance: float, config: dict) -> None:
        self.unet, self.embeds, self.guidance = unet, embeds, guidance
        self.name, self.prediction = "sd15-sized-random", explorer.Prediction.EPSILON
        self.schedule = Schedule.from_diffusers_config(config)
        self.scheduler_config = dict(config)
        self.sample_shape = (4, 64, 64)

    def predict(self, x_t: torch.Tensor, timestep) -> DenoiserOutput:
        t = torch.as_tensor(timestep).expand(x_t.shape[0])
        with torch.inference_mode():
            if self.guidance <= 1.0:
                cond = self.unet(x_t, t, encoder_hidden_states=self.embeds["cond"]).sample
                return DenoiserOutput(prediction=cond.clone(), conditional=cond.clone())
            both = self.unet(
                torch.cat([x_t, x_t]),
                torch.cat([t, t]),
                encoder_hidden_states=torch.cat([self.embeds["uncond"], self.embeds["cond"]]),
            ).sample
        uncond, cond = both.clone().chunk(2)
        return DenoiserOutput(prediction=guide(cond, uncond, self.guidance), conditional=cond, unconditional=uncond)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _modules() -> tuple[torch.nn.Module, torch.nn.Module]:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=TEXT_WIDTH).eval()  # SD 1.5's defaults
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
        scaling_factor=0.18215,
    ).eval()
    return unet, vae


def overhead_row(unet, vae, embeds: dict, case: tuple[str, float], repeats: int, steps: int) -> tuple[str, str, str]:
    """One interleaved comparison: `case` = (explorer sampler, guidance scale)."""
    from diffusers import DDIMScheduler, PNDMScheduler, StableDiffusionPipeline

    sampler, guidance = case
    latents = initial_noise(0, (1, 4, 64, 64))
    config = {**SD15_SCHEDULER, "_class_name": "DDIMScheduler"} if sampler == "ddim" else SD15_SCHEDULER
    denoiser = EmbeddedSD(unet, embeds, guidance, config)
    scheduler = (DDIMScheduler if sampler == "ddim" else PNDMScheduler).from_config(config)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=None,
        tokenizer=None,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)

    def ours(n: int = steps) -> None:
        explorer.sample(denoiser, sampler=sampler, num_inference_steps=n, seed=0)

    def theirs(n: int = steps) -> None:
        pipe(
            prompt_embeds=embeds["cond"],
            negative_prompt_embeds=embeds["uncond"],
            guidance_scale=guidance,
            num_inference_steps=n,
            latents=latents.clone(),
            output_type="latent",
            height=512,
            width=512,
        )

    ours(1), theirs(1)  # warm-up
    pairs = [(_timed(ours), _timed(theirs)) for _ in range(repeats)]
    ratios = [a / b for a, b in pairs]
    label = "DDIM" if sampler == "ddim" else "the checkpoint's own PNDM (sampler='scheduler')"
    return (
        f"SD-sized UNet, {label}, {steps} steps, guidance {guidance:g}: explorer / StableDiffusionPipeline",
        f"{statistics.median(ratios):.3f}",
        f"explorer {statistics.median(a for a, _ in pairs):.1f} s, diffusers "
        f"{statistics.median(b for _, b in pairs):.1f} s; runs {', '.join(f'{r:.3f}' for r in ratios)}",
    )


def decode_rows(vae, repeats: int) -> list[tuple[str, str, str]]:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    tiny = AutoencoderTiny().eval()  # TAESD's own configuration
    latents = initial_noise(0, (1, 4, 64, 64))
    decoders = {
        "exact: SD-sized AutoencoderKL decode (512×512)": lambda: vae.decode(latents / 0.18215).sample,
        "TAESD-sized AutoencoderTiny decode (512×512)": lambda: tiny.decode(latents).sample,
        "linear latent→RGB (64×64)": lambda: torch.einsum("bchw,cr->brhw", latents, SD_LINEAR_RGB),
    }
    rows = []
    for label, fn in decoders.items():
        with torch.inference_mode():
            fn()  # warm-up
            times = [_timed(fn) for _ in range(repeats)]
        params = {"exact": vae.decoder, "TAESD": tiny.decoder}
        count = next((sum(p.numel() for p in m.parameters()) for k, m in params.items() if label.startswith(k)), 0)
        note = f"decoder {count / 1e6:.1f} M parameters" if count else "4×3 matrix"
        rows.append((f"decode one frame, {label}", f"{statistics.median(times) * 1000:.1f} ms", note))
    return rows


def latent_rows(repeats: int, device: str, steps: int) -> Iterator[tuple[str, str, str]]:
    """The rows, each yielded as soon as it is measured (a CPU run of the SD-sized UNet takes minutes per row)."""
    if device != "cpu":
        yield ("latent rows", "not measured", f"written for the CPU; device here is {device}")
        return
    unet, vae = _modules()
    generator = torch.Generator().manual_seed(1)
    embeds = {name: torch.randn(1, TEXT_TOKENS, TEXT_WIDTH, generator=generator) for name in ("cond", "uncond")}
    yield overhead_row(unet, vae, embeds, ("ddim", 1.0), repeats, steps)
    yield from decode_rows(vae, repeats)
    yield overhead_row(unet, vae, embeds, ("ddim", 7.5), repeats, steps)
    yield overhead_row(unet, vae, embeds, ("scheduler", 7.5), repeats, steps)
    yield ("latent rows on a GPU", "not measured", "no GPU lent")
