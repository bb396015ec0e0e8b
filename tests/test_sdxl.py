"""SDXL against diffusers' StableDiffusionXLPipeline on a tiny offline checkpoint in the real layout.

With the same initial latents, prompt, negative prompt and guidance scale, every step the explorer records equals the
pipeline's latents (`callback_on_step_end`); the text embeddings (two CLIP encoders, pooled, zeros for an empty
negative prompt) and size ids are the pipeline's own; the exact decode is the pipeline's VAE decode.
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from tiny_pipelines import SDXL, tiny_repos  # noqa: F401 (tiny_repos: a fixture)
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

import explorer
from explorer.models.pipelines import Family

STEPS = 6
PROMPT = "a lighthouse at dusk"
TOLERANCE = {"rtol": 1e-4, "atol": 5e-5}


def sdxl_pipeline(snapshot) -> StableDiffusionXLPipeline:
    config = json.loads((snapshot / "scheduler" / "scheduler_config.json").read_text())
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL.from_pretrained(snapshot / "vae"),
        text_encoder=CLIPTextModel.from_pretrained(snapshot / "text_encoder"),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(snapshot / "text_encoder_2"),
        tokenizer=CLIPTokenizer.from_pretrained(snapshot / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(snapshot / "tokenizer_2"),
        unet=UNet2DConditionModel.from_pretrained(snapshot / "unet"),
        scheduler=DDIMScheduler.from_config(config),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_sdxl_loads_as_its_own_family(tiny_repos):  # noqa: F811
    model = explorer.load(SDXL, device="cpu")
    assert model.family is Family.SDXL and model.conditional and model.default_guidance == 5.0
    assert len(model.parts.text_encoders) == 2 and len(model.parts.tokenizers) == 2
    assert model.scaling_factor == pytest.approx(0.13025)
    with pytest.raises(ValueError, match=r"class_label: .* is text-conditioned"):
        explorer.sample(model, class_label=3, num_inference_steps=2)


@pytest.mark.parametrize(
    ("guidance", "negative", "rescale"),
    [(1.0, None, 0.0), (5.0, None, 0.0), (5.0, "blurry", 0.0), (7.0, "", 0.7)],
)
def test_sdxl_steps_equal_the_pipelines(tiny_repos, guidance, negative, rescale):  # noqa: F811
    """Guidance 1 (one pass), > 1 with no negative prompt (zeros: force_zeros_for_empty_prompt), with a negative
    prompt (encoded by both CLIP encoders), and an empty negative prompt with guidance rescale."""
    model = explorer.load(SDXL, device="cpu")
    run = explorer.sample(
        model,
        prompt=PROMPT,
        negative_prompt=negative,
        guidance_scale=guidance,
        guidance_rescale=rescale,
        sampler="ddim",
        num_inference_steps=STEPS,
        batch_size=2,
        seed=4,
    )
    recorded: list[tuple[int, torch.Tensor]] = []

    def callback(pipe, index, timestep, tensors):
        recorded.append((int(timestep), tensors["latents"].clone()))
        return tensors

    height, width = model.image_shape[1:]
    sdxl_pipeline(tiny_repos[SDXL])(
        PROMPT,
        negative_prompt=negative,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        guidance_rescale=rescale,
        height=height,
        width=width,
        latents=run.x_T.clone(),
        num_images_per_prompt=2,
        output_type="latent",
        callback_on_step_end=callback,
    )
    assert [t for t, _ in recorded] == run.timesteps.tolist()
    for step, (_, latents) in zip(run, recorded, strict=True):
        torch.testing.assert_close(step.x_prev, latents, **TOLERANCE)
    assert (run[-1].unconditional is not None) is (guidance > 1)


def test_sdxl_embeddings_and_size_ids_are_the_pipelines(tiny_repos):  # noqa: F811
    model = explorer.load(SDXL, device="cpu").resized(8, 16)
    bound = model.condition(explorer.Conditioning(prompt=PROMPT, negative_prompt="fog", guidance_scale=5.0))
    pipe = sdxl_pipeline(tiny_repos[SDXL])
    with torch.no_grad():  # as the pipeline's __call__ runs it
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(PROMPT, negative_prompt="fog", device="cpu")
    mine = bound.embeddings()
    torch.testing.assert_close(mine["conditional"], embeds)
    torch.testing.assert_close(mine["unconditional"], negative)
    torch.testing.assert_close(mine["pooled"], pooled)
    torch.testing.assert_close(mine["unconditional_pooled"], negative_pooled)
    height, width = bound.image_shape[1:]
    assert (height, width) == (16, 32)  # latents 8 × 16, VAE factor 2
    expected = pipe._get_add_time_ids((height, width), (0, 0), (height, width), torch.float32, 32)
    torch.testing.assert_close(mine["time_ids"], expected)


def test_sdxl_decode_is_the_vae_decode_with_its_scaling_factor(tiny_repos):  # noqa: F811
    model = explorer.load(SDXL, device="cpu")
    latents = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    vae = AutoencoderKL.from_pretrained(tiny_repos[SDXL] / "vae")
    with torch.no_grad():
        expected = vae.decode(latents / 0.13025).sample.clamp(-1, 1)
    torch.testing.assert_close(model.decode(latents), expected, rtol=1e-4, atol=1e-5)
    linear = model.decode(latents, "linear")  # SDXL's own latent→RGB matrix and bias
    assert linear.shape == (2, 3, *model.sample_shape[1:])
