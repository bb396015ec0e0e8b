"""Tiny random checkpoints of each latent family, with the real repos' folder layout and config keys, laid into the
offline Hugging Face cache (HF_HOME from conftest) and loaded by repo id with HF_HUB_OFFLINE=1.

    repo id                       layout as                               what it exercises
    explorer-test/tiny-sd-eps     stable-diffusion-2-1-base (PNDM, ε)     steps_offset 1, set_alpha_to_one false
    explorer-test/tiny-sd-v       stable-diffusion-2-1 (DDIM, v)          v-prediction, leading spacing
    explorer-test/tiny-sd-zsnr    a zero-terminal-SNR v model (DDIM)      rescale_betas_zero_snr, trailing
    explorer-test/tiny-ldm        CompVis/ldm-celebahq-256 (VQ, DDIM)     VQ latents, scaling_factor 1.0
    explorer-test/tiny-dit        facebook/DiT-XL-2-256 (DDIM)            class labels, 8 output channels (learned σ)
    explorer-test/tiny-sdxl       stable-diffusion-xl-base-1.0 (DDIM)     two CLIP encoders, pooled text, size ids
    explorer-test/tiny-sd3        stable-diffusion-3.5-medium (flow)      MMDiT, two CLIPs + T5, 16 channels, shift 3
    explorer-test/tiny-sd3-no-t5  the same without text_encoder_3         T5 left out: zeros in its place
    explorer-test/tiny-flux-schnell  FLUX.1-schnell (flow, static shift 1)  packed 2×2 latents, CLIP pooled + T5
    explorer-test/tiny-flux-dev   FLUX.1-dev (flow, dynamic shift)        guidance_embeds: the embedded guidance

`tiny_repos` (session scope) builds them once per test session; `flux_repos` the two FLUX ones. The text encoder
is a CLIPTextModel from a tiny CLIPTextConfig; its tokenizer is a vocab.json of the 256 byte-level characters (each
also with `</w>`) plus the two special tokens, and a merges.txt holding only `#version: 0.2`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiTTransformer2DModel,
    PNDMScheduler,
    UNet2DConditionModel,
    UNet2DModel,
    VQModel,
)
from test_hub import cache_repo, write_json
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

SD_EPS, SD_V, SD_ZSNR, LDM, DIT, SDXL, SD3, SD3_NO_T5 = (
    f"explorer-test/tiny-{n}" for n in ("sd-eps", "sd-v", "sd-zsnr", "ldm", "dit", "sdxl", "sd3", "sd3-no-t5")
)
FLUX_SCHNELL, FLUX_DEV = "explorer-test/tiny-flux-schnell", "explorer-test/tiny-flux-dev"
SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
TOKEN_LENGTH = 77  # CLIP's model_max_length in every SD repo


def byte_characters() -> list[str]:
    """GPT-2's byte-level alphabet: the 256 characters CLIP's BPE starts from."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def write_tokenizer(folder: Path) -> int:
    """A CLIP tokenizer folder as the SD repos hold it; returns the vocabulary size."""
    chars = byte_characters()
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    write_json(folder / "vocab.json", {token: i for i, token in enumerate(tokens)})
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    write_json(folder / "special_tokens_map.json", {**special, "pad_token": "<|endoftext|>"})
    config = {**special, "pad_token": "<|endoftext|>", "model_max_length": TOKEN_LENGTH, "do_lower_case": True}
    write_json(folder / "tokenizer_config.json", {**config, "tokenizer_class": "CLIPTokenizer"})
    return len(tokens)


def tiny_vae(seed: int, **config: Any) -> AutoencoderKL:
    """A two-level AutoencoderKL with 4 latent channels; `config` overrides (16 channels and a shift for flow VAEs)."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        **{
            "block_out_channels": (8, 16),
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
            "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
            "latent_channels": 4,
            "norm_num_groups": 2,
            "sample_size": 16,
            **config,
        }
    ).eval()


def flow_vae(seed: int, scaling_factor: float, shift_factor: float) -> AutoencoderKL:
    """The 16-channel VAE of SD3 and FLUX (scaling and shift factors, no quant convs), tiny."""
    return tiny_vae(
        seed,
        latent_channels=16,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def save_tiny_t5(tokenizer_folder: Path, encoder_folder: Path, seed: int) -> None:
    """A Unigram T5 tokenizer and a two-layer T5 encoder (d_model 32) for it."""
    size = write_t5_tokenizer(tokenizer_folder)
    torch.manual_seed(seed)
    t5 = T5Config(vocab_size=size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, decoder_start_token_id=0)
    T5EncoderModel(t5).eval().save_pretrained(encoder_folder, safe_serialization=True)


def tiny_text_config(vocab: int) -> CLIPTextConfig:
    """A two-layer CLIP text encoder config (hidden size 32, projection 32) for the byte-level tokenizer above."""
    return CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=TOKEN_LENGTH,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
        projection_dim=32,
    )


def build_sdxl(repo_id: str = SDXL, seed: int = 30) -> Path:
    """SDXL base's layout: CLIP-L (text_encoder) and CLIP-G with projection (text_encoder_2), two tokenizers, a UNet
    with `addition_embed_type: text_time` (6 size ids × 8 + the pooled 32 = 80 added inputs), VAE scale 0.13025."""
    snapshot = cache_repo(repo_id)
    torch.manual_seed(seed)
    UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
        norm_num_groups=2,
    ).eval().save_pretrained(snapshot / "unet", safe_serialization=True)
    vae = tiny_vae(seed + 1)
    vae.register_to_config(scaling_factor=0.13025, force_upcast=True)
    vae.save_pretrained(snapshot / "vae", safe_serialization=True)
    vocab = write_tokenizer(snapshot / "tokenizer")
    write_tokenizer(snapshot / "tokenizer_2")
    torch.manual_seed(seed + 2)
    CLIPTextModel(tiny_text_config(vocab)).eval().save_pretrained(snapshot / "text_encoder", safe_serialization=True)
    torch.manual_seed(seed + 3)
    CLIPTextModelWithProjection(tiny_text_config(vocab)).eval().save_pretrained(
        snapshot / "text_encoder_2", safe_serialization=True
    )
    DDIMScheduler(**SD_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1).save_pretrained(
        snapshot / "scheduler"
    )
    write_json(
        snapshot / "model_index.json",
        {
            "_class_name": "StableDiffusionXLPipeline",
            "_diffusers_version": "0.19.0.dev0",
            "force_zeros_for_empty_prompt": True,
            "scheduler": ["diffusers", "DDIMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )
    return snapshot


def write_t5_tokenizer(folder: Path) -> int:
    """A T5 tokenizer folder built offline with the `tokenizers` package: a Unigram model over the letters (with
    the ▁ word marker), a Metaspace pre-tokenizer and a post-processor that appends </s>. Returns its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in "▁abcdefghijklmnopqrstuvwxyz"]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    special = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    write_json(folder / "special_tokens_map.json", special)
    write_json(folder / "tokenizer_config.json", {**special, "tokenizer_class": "T5Tokenizer", "extra_ids": 0})
    return len(pieces)


def build_sd3(repo_id: str = SD3, *, with_t5: bool = True, seed: int = 40) -> Path:
    """SD3.5's layout: an SD3Transformer2DModel (patch 2, joint attention 32 = T5's width), a 16-channel VAE with
    scaling 1.5305 and shift 0.0609, two CLIP encoders with projection, T5 (or none), FlowMatchEulerDiscreteScheduler
    with shift 3."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    snapshot = cache_repo(repo_id)
    torch.manual_seed(seed)
    SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=16,
        pos_embed_max_size=16,
    ).eval().save_pretrained(snapshot / "transformer", safe_serialization=True)
    flow_vae(seed + 1, 1.5305, 0.0609).save_pretrained(snapshot / "vae", safe_serialization=True)
    vocab = write_tokenizer(snapshot / "tokenizer")
    write_tokenizer(snapshot / "tokenizer_2")
    for k, folder in enumerate(("text_encoder", "text_encoder_2")):
        torch.manual_seed(seed + 2 + k)
        CLIPTextModelWithProjection(tiny_text_config(vocab)).eval().save_pretrained(
            snapshot / folder, safe_serialization=True
        )
    index = {
        "_class_name": "StableDiffusion3Pipeline",
        "_diffusers_version": "0.31.0.dev0",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "text_encoder_3": [None, None],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "tokenizer_3": [None, None],
        "transformer": ["diffusers", "SD3Transformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "image_encoder": [None, None],
        "feature_extractor": [None, None],
    }
    if with_t5:
        save_tiny_t5(snapshot / "tokenizer_3", snapshot / "text_encoder_3", seed + 4)
        index |= {
            "text_encoder_3": ["transformers", "T5EncoderModel"],
            "tokenizer_3": ["transformers", "T5TokenizerFast"],
        }
    FlowMatchEulerDiscreteScheduler(shift=3.0).save_pretrained(snapshot / "scheduler")
    write_json(snapshot / "model_index.json", index)
    return snapshot


def build_flux(repo_id: str, *, guidance: bool, seed: int) -> Path:
    """FLUX.1's layout: a FluxTransformer2DModel on packed 2×2 patches of 16 channels (in_channels 64; RoPE axes
    4 + 4 + 8 = the head width), CLIP-L (text_encoder, pooled 32 = pooled_projection_dim) and T5 (text_encoder_2,
    width 32 = joint_attention_dim), a 16-channel VAE with scaling 0.3611 and shift 0.1159 and no quant convs.
    schnell-like (guidance False): no guidance embedding, static shift 1; dev-like: `guidance_embeds` and the
    dynamic shift (μ from 0.5 at 256 tokens to 1.15 at 4096), as their published scheduler configs."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    snapshot = cache_repo(repo_id)
    torch.manual_seed(seed)
    FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guidance,
        axes_dims_rope=(4, 4, 8),
    ).eval().save_pretrained(snapshot / "transformer", safe_serialization=True)
    flow_vae(seed + 1, 0.3611, 0.1159).save_pretrained(snapshot / "vae", safe_serialization=True)
    vocab = write_tokenizer(snapshot / "tokenizer")
    torch.manual_seed(seed + 2)
    CLIPTextModel(tiny_text_config(vocab)).eval().save_pretrained(snapshot / "text_encoder", safe_serialization=True)
    save_tiny_t5(snapshot / "tokenizer_2", snapshot / "text_encoder_2", seed + 3)
    shift = {"shift": 3.0, "use_dynamic_shifting": True} if guidance else {"shift": 1.0, "use_dynamic_shifting": False}
    FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15, **shift
    ).save_pretrained(snapshot / "scheduler")
    index = {
        "_class_name": "FluxPipeline",
        "_diffusers_version": "0.30.0.dev0",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "FluxTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if guidance:  # later diffusers versions also list the IP-adapter parts, empty
        index |= {"image_encoder": [None, None], "feature_extractor": [None, None]}
    write_json(snapshot / "model_index.json", index)
    return snapshot


def build_stable_diffusion(repo_id: str, scheduler: dict, seed: int) -> Path:
    snapshot = cache_repo(repo_id)
    torch.manual_seed(seed)
    UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=2,
    ).eval().save_pretrained(snapshot / "unet", safe_serialization=True)
    tiny_vae(seed + 1).save_pretrained(snapshot / "vae", safe_serialization=True)
    vocab = write_tokenizer(snapshot / "tokenizer")
    torch.manual_seed(seed + 2)
    CLIPTextModel(tiny_text_config(vocab)).eval().save_pretrained(snapshot / "text_encoder", safe_serialization=True)
    kind = PNDMScheduler if scheduler.pop("_class", "DDIM") == "PNDM" else DDIMScheduler
    kind.from_config(scheduler).save_pretrained(snapshot / "scheduler")
    saved = json.loads((snapshot / "scheduler" / "scheduler_config.json").read_text())
    write_json(snapshot / "scheduler" / "scheduler_config.json", {**scheduler, **saved})  # keys PNDM does not take too
    write_json(
        snapshot / "model_index.json",
        {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.8.0",
            "feature_extractor": ["transformers", "CLIPImageProcessor"],
            "requires_safety_checker": False,
            "safety_checker": [None, None],
            "scheduler": ["diffusers", kind.__name__],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )
    return snapshot


def build_ldm(seed: int = 10) -> Path:
    snapshot = cache_repo(LDM)
    torch.manual_seed(seed)
    UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ).eval().save_pretrained(snapshot / "unet", safe_serialization=True)
    torch.manual_seed(seed + 1)
    VQModel(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=3,
        num_vq_embeddings=32,
        norm_num_groups=2,
        sample_size=16,
        scaling_factor=1.0,
    ).eval().save_pretrained(snapshot / "vqvae", safe_serialization=True)
    DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False).save_pretrained(
        snapshot / "scheduler"
    )
    write_json(
        snapshot / "model_index.json",
        {
            "_class_name": "LDMPipeline",
            "scheduler": ["diffusers", "DDIMScheduler"],
            "unet": ["diffusers", "UNet2DModel"],
            "vqvae": ["diffusers", "VQModel"],
        },
    )
    return snapshot


def build_dit(seed: int = 20) -> Path:
    snapshot = cache_repo(DIT)
    torch.manual_seed(seed)
    DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=1000,  # ImageNet's classes; DiTPipeline's null class is 1000
    ).eval().save_pretrained(snapshot / "transformer", safe_serialization=True)
    config = json.loads((snapshot / "transformer" / "config.json").read_text())
    write_json(snapshot / "transformer" / "config.json", {**config, "_class_name": "Transformer2DModel"})  # as the repo
    tiny_vae(seed + 1).save_pretrained(snapshot / "vae", safe_serialization=True)
    DDIMScheduler(beta_schedule="linear", clip_sample=False).save_pretrained(snapshot / "scheduler")
    write_json(
        snapshot / "model_index.json",
        {
            "_class_name": "DiTPipeline",
            "_diffusers_version": "0.12.0.dev0",
            "id2label": {"0": "tench", "1": "goldfish"},
            "scheduler": ["diffusers", "DDIMScheduler"],
            "transformer": ["diffusers", "Transformer2DModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )
    return snapshot


def build_all() -> dict[str, Path]:
    """Every tiny family checkpoint in the offline cache, by repo id."""
    common = {**SD_BETAS, "clip_sample": False, "set_alpha_to_one": False}
    return {
        SD_EPS: build_stable_diffusion(
            SD_EPS, {"_class": "PNDM", **common, "skip_prk_steps": True, "steps_offset": 1}, 1
        ),
        SD_V: build_stable_diffusion(SD_V, {**common, "prediction_type": "v_prediction", "steps_offset": 1}, 2),
        SD_ZSNR: build_stable_diffusion(
            SD_ZSNR,
            {
                **SD_BETAS,
                "clip_sample": False,
                "prediction_type": "v_prediction",
                "rescale_betas_zero_snr": True,
                "timestep_spacing": "trailing",
                "set_alpha_to_one": True,
            },
            3,
        ),
        LDM: build_ldm(),
        DIT: build_dit(),
        SDXL: build_sdxl(),
        SD3: build_sd3(),
        SD3_NO_T5: build_sd3(SD3_NO_T5, with_t5=False, seed=50),
    }


@pytest.fixture(scope="session")
def tiny_repos() -> dict[str, Path]:
    """The tiny family checkpoints, built once per test session (their snapshot folders by repo id)."""
    return build_all()


@pytest.fixture(scope="session")
def flux_repos() -> dict[str, Path]:
    """The tiny FLUX checkpoints (schnell-like and dev-like), built once per test session."""
    return {
        FLUX_SCHNELL: build_flux(FLUX_SCHNELL, guidance=False, seed=60),
        FLUX_DEV: build_flux(FLUX_DEV, guidance=True, seed=70),
    }
