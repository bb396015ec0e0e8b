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


def _timed(fn: Callable[[], object], device: str = "cpu") -> float:
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
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


# --- SDXL, SD3 and FLUX shapes -------------------------------------------------------------------------------------
#
# Each family's network at its real widths (channels, heads, head width, text width, pooled width, patching) with
# fewer layers, random weights, at a reduced latent side: the explorer's own family forward pass (LatentDenoiser)
# on fixed random text embeddings of the real shapes, and the family's diffusers pipeline on the SAME module with
# the same embeddings (`prompt_embeds`: no text encoder runs inside either timed loop), the same initial latents and
# output_type="latent". Both sides run the checkpoint's own scheduler (explorer: sampler='scheduler').

FAMILY_SIDE = 32  # latent side: 256×256 pixels (the real models' 128 would take minutes per step here)
SDXL_EULER = {  # stable-diffusion-xl-base-1.0's scheduler/scheduler_config.json
    "_class_name": "EulerDiscreteScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}
SD3_FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}
FLUX_SCHNELL_FLOW = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "use_dynamic_shifting": False,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
    "base_shift": 0.5,
    "max_shift": 1.15,
}


def _small_vae(latent_channels: int, scaling: float, shift: float | None):
    """A VAE only for its config (8× downsampling, scaling and shift factors): nothing is decoded in the loop."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=latent_channels,
        norm_num_groups=2,
        layers_per_block=1,
        scaling_factor=scaling,
        shift_factor=shift,
    ).eval()


def _family_networks(family: str) -> tuple[torch.nn.Module, str]:
    """(the network, how it differs from the real one) at the family's real widths with fewer layers."""
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel

    torch.manual_seed(0)
    if family == "sdxl":  # SDXL base's UNet with 1 transformer layer per block where it has (1, 2, 10)
        unet = UNet2DConditionModel(
            sample_size=128,
            block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(5, 10, 20),
            transformer_layers_per_block=(1, 1, 1),
            cross_attention_dim=2048,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        return unet.eval(), "SDXL base's UNet widths, transformer depth (1, 1, 1) instead of (1, 2, 10)"
    if family == "sd3":  # SD3.5 medium's MMDiT-X widths, 2 of its 24 layers (the first with dual attention)
        transformer = SD3Transformer2DModel(
            sample_size=128,
            patch_size=2,
            in_channels=16,
            num_layers=2,
            attention_head_dim=64,
            num_attention_heads=24,
            joint_attention_dim=4096,
            caption_projection_dim=1536,
            pooled_projection_dim=2048,
            out_channels=16,
            pos_embed_max_size=384,
            dual_attention_layers=(0,),
            qk_norm="rms_norm",
        )
        return transformer.eval(), "SD3.5 medium's MMDiT-X widths, 2 of its 24 layers"
    transformer = FluxTransformer2DModel(  # FLUX.1-schnell's widths, 1 of 19 double and 1 of 38 single blocks
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=128,
        num_attention_heads=24,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        guidance_embeds=False,
        axes_dims_rope=(16, 56, 56),
    )
    return transformer.eval(), "FLUX.1-schnell's widths, 1 of 19 double and 1 of 38 single blocks"


def _embeddings(family: str, guided: bool) -> dict[str, torch.Tensor]:
    """Random text embeddings of the family's real shapes (what its text encoders would hand over)."""
    generator = torch.Generator().manual_seed(2)
    shapes = {
        "sdxl": {"conditional": (1, 77, 2048), "pooled": (1, 1280)},
        "sd3": {"conditional": (1, 77 + 256, 4096), "pooled": (1, 2048)},
        "flux": {"conditional": (1, 512, 4096), "pooled": (1, 768)},
    }[family]
    embeds = {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    if guided:
        embeds["unconditional"] = torch.randn(shapes["conditional"], generator=generator)
        embeds["unconditional_pooled"] = torch.randn(shapes["pooled"], generator=generator)
    return embeds


def _explorer_model(family: str, network, vae, scheduler: dict, embeds: dict, guidance: float | None, side: int):
    """The explorer's LatentDenoiser of `family` around `network`, bound to fixed embeddings instead of encoding a
    prompt (the family's forward pass is the product's; only its text encoders are left out)."""
    import copy

    from explorer.diffusion.conditioning import Conditioning
    from explorer.models.families import LatentParts
    from explorer.models.latent import LatentDenoiser
    from explorer.models.pipelines import Family, PipelineSpec

    spec = PipelineSpec(Family(family), "bench", {})
    model = LatentDenoiser(
        LatentParts(network=network, decoder=vae), spec, scheduler, name=f"{family}-shaped", description=""
    )
    model = model.resized(side, side)
    bound = copy.copy(model)
    bound.conditioning = Conditioning(prompt="bench", guidance_scale=guidance)
    pixels = side * model.vae_scale_factor
    size_ids = torch.tensor([[pixels, pixels, 0, 0, pixels, pixels]], dtype=model.dtype, device=model.device)
    extra = {"time_ids": size_ids} if family == "sdxl" else {}
    bound._embeddings = {**embeds, **extra}  # what kind.embed would return for this prompt
    return bound


def _family_pipeline(family: str, network, vae, scheduler: dict):
    import diffusers

    made = getattr(diffusers, scheduler["_class_name"]).from_config(scheduler)
    if family == "sdxl":
        nothing = dict.fromkeys(("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"))
        pipe = diffusers.StableDiffusionXLPipeline(vae=vae, unet=network, scheduler=made, **nothing)
    elif family == "sd3":
        names = ("text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2", "tokenizer_3")
        pipe = diffusers.StableDiffusion3Pipeline(transformer=network, vae=vae, scheduler=made, **dict.fromkeys(names))
    else:
        names = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
        pipe = diffusers.FluxPipeline(transformer=network, vae=vae, scheduler=made, **dict.fromkeys(names))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def family_row(
    family: str,
    guidance: float | None,
    repeats: int,
    steps: int,
    where: tuple[str, torch.dtype, int] = ("cpu", torch.float32, FAMILY_SIDE),
) -> tuple[str, str, str]:
    """One interleaved comparison of the explorer and the family's pipeline on the same module, on `where` =
    (device, weight dtype, latent side)."""
    from diffusers import FluxPipeline

    scheduler = {"sdxl": SDXL_EULER, "sd3": SD3_FLOW, "flux": FLUX_SCHNELL_FLOW}[family]
    device, dtype, latent_side = where
    network, how = _family_networks(family)
    network = network.to(device, dtype)
    channels = 4 if family == "sdxl" else 16
    vae = _small_vae(channels, *{"sdxl": (0.13025, None), "sd3": (1.5305, 0.0609), "flux": (0.3611, 0.1159)}[family])
    guided = family != "flux" and guidance is not None and guidance > 1
    vae = vae.to(device)
    embeds = {name: value.to(device, dtype) for name, value in _embeddings(family, guided).items()}
    model = _explorer_model(family, network, vae, scheduler, embeds, guidance, latent_side)
    pipe = _family_pipeline(family, network, vae, scheduler)
    latents = initial_noise(0, (1, channels, latent_side, latent_side)).to(device, dtype)
    side = latent_side * model.vae_scale_factor
    text = {"prompt_embeds": embeds["conditional"]}
    if family == "flux":
        text["pooled_prompt_embeds"] = embeds["pooled"]
        latents_in = FluxPipeline._pack_latents(latents, 1, channels, latent_side, latent_side)
    else:
        text["pooled_prompt_embeds"] = embeds["pooled"]
        if guided:
            text["negative_prompt_embeds"] = embeds["unconditional"]
            text["negative_pooled_prompt_embeds"] = embeds["unconditional_pooled"]
        latents_in = latents

    def ours(n: int = steps) -> None:
        explorer.sample(model, sampler="scheduler", num_inference_steps=n, seed=0)

    def theirs(n: int = steps) -> None:
        options = {} if guidance is None else {"guidance_scale": guidance}
        pipe(
            **text,
            **options,
            num_inference_steps=n,
            latents=latents_in.clone(),
            output_type="latent",
            height=side,
            width=side,
        )

    ours(2), theirs(2)  # warm-up (flow runs take at least 2 steps)
    pairs, cpu_pairs = [], []
    for repeat in range(repeats):  # interleaved, the order alternating: a loaded machine hits both sides alike
        first, second = (ours, theirs) if repeat % 2 == 0 else (theirs, ours)
        cpu_start = time.process_time()
        a = _timed(first, device)
        cpu_middle = time.process_time()
        b = _timed(second, device)
        cpu_a, cpu_b = cpu_middle - cpu_start, time.process_time() - cpu_middle
        pairs.append((a, b) if first is ours else (b, a))
        cpu_pairs.append((cpu_a, cpu_b) if first is ours else (cpu_b, cpu_a))
    ratios = [a / b for a, b in pairs]
    cpu_ratio = statistics.median(a / b for a, b in cpu_pairs)  # CPU seconds: less sensitive to other processes
    parameters = sum(p.numel() for p in network.parameters()) / 1e6
    label = {"sdxl": "SDXL", "sd3": "SD3.5-medium", "flux": "FLUX.1-schnell"}[family]
    w = "none (schnell)" if guidance is None else f"{guidance:g}"
    pipeline = type(pipe).__name__
    return (
        f"{label}-shaped, {device} {str(dtype).removeprefix('torch.')}, own scheduler, {steps} steps, guidance {w}: "
        f"explorer / {pipeline}",
        f"{statistics.median(ratios):.3f}",
        f"{how} ({parameters:,.0f} M parameters), {latent_side}×{latent_side} latents; "
        f"{statistics.median(b for _, b in pairs) / steps:.2f} s per step (diffusers), explorer "
        f"{statistics.median(a for a, _ in pairs) / steps:.2f} s; ratios {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"median ratio of this process's CPU seconds {cpu_ratio:.3f}",
    )


def network_share_row(family: str, guidance: float | None, steps: int = 4, side: int = 16) -> tuple[str, str, str]:
    """One `explorer.sample` of the family-shaped model, its network's forward calls timed inside it: the rest is
    what the explorer and the scheduler add (the pipeline spends at least the time inside the same network)."""
    scheduler = {"sdxl": SDXL_EULER, "sd3": SD3_FLOW, "flux": FLUX_SCHNELL_FLOW}[family]
    network, _ = _family_networks(family)
    channels = 4 if family == "sdxl" else 16
    vae = _small_vae(channels, *{"sdxl": (0.13025, None), "sd3": (1.5305, 0.0609), "flux": (0.3611, 0.1159)}[family])
    guided = family != "flux" and guidance is not None and guidance > 1
    model = _explorer_model(family, network, vae, scheduler, _embeddings(family, guided), guidance, side)
    explorer.sample(model, sampler="scheduler", num_inference_steps=2, seed=0)  # warm-up
    inside: list[float] = []
    forward = network.forward

    def timed_forward(*args, **kwargs):
        start = time.perf_counter()
        out = forward(*args, **kwargs)
        inside.append(time.perf_counter() - start)
        return out

    network.forward = timed_forward
    whole = _timed(lambda: explorer.sample(model, sampler="scheduler", num_inference_steps=steps, seed=0))
    network.forward = forward
    rest = whole - sum(inside)
    return (
        f"{family}-shaped, guidance {guidance}, {steps} steps at {side}×{side}: whole run / inside the network",
        f"{whole / sum(inside):.3f}",
        f"whole {whole:.2f} s, inside the network {sum(inside):.2f} s, outside {rest:.2f} s ({rest / whole:.1%})",
    )


def family_rows(repeats: int, steps: int) -> Iterator[tuple[str, str, str]]:
    """SDXL, SD3 and FLUX rows on the CPU, then on a CUDA GPU in bfloat16 at the real 128×128 latents where one is
    present (that path has not run here: no GPU was lent)."""
    cases = (("sdxl", 1.0), ("sdxl", 5.0), ("sd3", 1.0), ("sd3", 7.0), ("flux", None))
    for family, guidance in cases:
        yield family_row(family, guidance, repeats, steps)
    if not torch.cuda.is_available():
        yield ("SDXL, SD3 and FLUX rows on a GPU", "not measured", "no GPU lent to this session")
        return
    for family, guidance in cases:
        yield family_row(family, guidance, repeats, steps, ("cuda", torch.bfloat16, 128))


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--network-share", action="store_true", help="time outside the network instead")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    print("| measurement | value | notes |\n|---|---|---|", flush=True)
    shares = (network_share_row(f, g) for f, g in (("sdxl", 5.0), ("sd3", 7.0), ("flux", None)))
    for row in shares if args.network_share else family_rows(args.repeats, args.steps):
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
