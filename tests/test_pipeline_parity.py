"""Parity with diffusers' own pipelines on the tiny family checkpoints (tests/tiny_pipelines.py), offline.

With the same initial latents, prompt (or class label) and guidance scale, every step the explorer records equals
the latents diffusers' pipeline produces with a DDIMScheduler built from the checkpoint's own scheduler config, to
float32 tolerance; the visited timesteps are the pipeline's (steps_offset and spacing included); the explorer's
exact decode is the pipeline's decoder output. The pipelines are built from components diffusers loads itself.
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiTPipeline,
    DiTTransformer2DModel,
    LDMPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
    UNet2DModel,
    VQModel,
)
from diffusers.pipelines.deprecated.latent_diffusion_uncond import pipeline_latent_diffusion_uncond as ldm_module
from diffusers.pipelines.dit import pipeline_dit as dit_module
from tiny_pipelines import DIT, LDM, SD_EPS, SD_V, SD_ZSNR, tiny_repos  # noqa: F401 (tiny_repos: a fixture)
from transformers import CLIPTextModel, CLIPTokenizer

import explorer
from explorer.diffusion.conditioning import Conditioning

STEPS = 10
PROMPT = "a photo of a cat"
TOLERANCE = {"rtol": 1e-4, "atol": 5e-5}  # float32 steps against float64 ones, 10 steps


def ddim_from(snapshot) -> DDIMScheduler:
    return DDIMScheduler.from_config(json.loads((snapshot / "scheduler" / "scheduler_config.json").read_text()))


def recording(scheduler) -> list[tuple[int, torch.Tensor]]:
    """Record (timestep, prev_sample) of every `scheduler.step` call (for pipelines without step callbacks)."""
    recorded: list[tuple[int, torch.Tensor]] = []
    original = scheduler.step

    def step(model_output, timestep, sample, *args, **kwargs):
        out = original(model_output, timestep, sample, *args, **kwargs)
        recorded.append((int(timestep), out.prev_sample.clone()))
        return out

    scheduler.step = step
    return recorded


def run_from(pipe, module, x_T: torch.Tensor, monkeypatch, **call) -> tuple[list[tuple[int, torch.Tensor]], object]:
    """Run a pipeline without step callbacks from the latents x_T (its `randn_tensor` patched), recording each
    scheduler step; returns the record and the pipeline's images."""
    pipe.set_progress_bar_config(disable=True)
    recorded = recording(pipe.scheduler)
    monkeypatch.setattr(module, "randn_tensor", lambda *args, **kwargs: x_T.clone())
    return recorded, pipe(num_inference_steps=STEPS, **call).images


def sd_pipeline(snapshot) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(snapshot / "vae"),
        text_encoder=CLIPTextModel.from_pretrained(snapshot / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(snapshot / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(snapshot / "unet"),
        scheduler=ddim_from(snapshot),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def assert_same_run(trajectory, recorded) -> None:
    assert [t for t, _ in recorded] == trajectory.timesteps.tolist()
    for step, (_, latents) in zip(trajectory, recorded, strict=True):
        torch.testing.assert_close(step.x_prev, latents[: step.x_prev.shape[0]], **TOLERANCE)


@pytest.mark.parametrize(
    ("repo", "guidance", "rescale", "first_timestep"),
    [
        (SD_EPS, 1.0, 0.0, 901),  # ε, steps_offset 1, leading, set_alpha_to_one false: one pass per step
        (SD_EPS, 7.5, 0.0, 901),  # ε, guided: a batch of 2B
        (SD_V, 1.0, 0.0, 901),
        (SD_V, 5.0, 0.0, 901),  # v, guided
        (SD_ZSNR, 5.0, 0.7, 999),  # v, zero terminal SNR, trailing, guidance rescale
    ],
)
def test_stable_diffusion_steps_equal_the_pipelines(tiny_repos, repo, guidance, rescale, first_timestep):  # noqa: F811
    model = explorer.load(repo, device="cpu")
    trajectory = explorer.sample(
        model,
        prompt=PROMPT,
        guidance_scale=guidance,
        guidance_rescale=rescale,
        sampler="ddim",
        num_inference_steps=STEPS,
    )
    recorded: list[tuple[int, torch.Tensor]] = []

    def callback(pipe, index, timestep, tensors):
        recorded.append((int(timestep), tensors["latents"].clone()))
        return tensors

    sd_pipeline(tiny_repos[repo])(
        PROMPT,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        guidance_rescale=rescale,
        latents=trajectory.x_T.clone(),
        output_type="latent",
        callback_on_step_end=callback,
    )
    assert trajectory.timesteps[0] == first_timestep
    assert_same_run(trajectory, recorded)
    last = trajectory[-1]
    if guidance > 1:
        assert last.unconditional is not None and last.conditional is not None
        conditional_x0, unconditional_x0 = trajectory.guidance_x0(len(trajectory) - 1)
        assert not torch.allclose(conditional_x0, unconditional_x0)
    else:
        assert last.unconditional is None and last.conditional is not None


def test_the_last_ddim_step_lands_where_the_checkpoint_says(tiny_repos):  # noqa: F811
    """set_alpha_to_one false (SD configs): the last step lands on ᾱ at index 0; true: on the data (ᾱ = 1)."""
    sd = explorer.sample(explorer.load(SD_V, device="cpu"), prompt=PROMPT, sampler="ddim", num_inference_steps=4)
    assert sd[-1].prev_timestep == 0
    dit = explorer.sample(explorer.load(DIT, device="cpu"), class_label=1, sampler="ddim", num_inference_steps=4)
    assert dit[-1].prev_timestep == explorer.diffusion.settings.END_OF_RUN
    ddpm = explorer.sample(explorer.load(SD_V, device="cpu"), prompt=PROMPT, sampler="ddpm", num_inference_steps=4)
    assert ddpm[-1].prev_timestep == explorer.diffusion.settings.END_OF_RUN


def test_stable_diffusion_decode_is_the_vaes(tiny_repos):  # noqa: F811
    model = explorer.load(SD_EPS, device="cpu")
    latents = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(3))
    vae = AutoencoderKL.from_pretrained(tiny_repos[SD_EPS] / "vae")
    with torch.no_grad():
        expected = vae.decode(latents / vae.config.scaling_factor).sample.clamp(-1, 1)
    images = model.decode(latents)
    assert images.shape == (2, 3, 16, 16) == (2, *model.image_shape)
    torch.testing.assert_close(images, expected, **TOLERANCE)


def test_the_prompt_is_encoded_once_per_conditioning(tiny_repos, monkeypatch):  # noqa: F811
    model = explorer.load(SD_EPS, device="cpu")
    calls = []
    encoder = model.parts.text_encoder
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    explorer.sample(model, prompt=PROMPT, guidance_scale=3.0, sampler="ddim", num_inference_steps=3)
    assert len(calls) == 2  # the prompt and the negative (empty) prompt, once each, for three steps
    bound = model.condition(Conditioning(prompt=PROMPT, guidance_scale=1.0))
    assert len(calls) == 3 and bound.parts is model.parts  # one pass: no negative prompt; modules shared


def test_ldm_steps_and_decode_equal_the_pipelines(tiny_repos, monkeypatch):  # noqa: F811
    model = explorer.load(LDM, device="cpu")
    assert model.scaling_factor == 1.0
    trajectory = explorer.sample(model, sampler="ddim", num_inference_steps=STEPS, eta=0.0)
    snapshot = tiny_repos[LDM]
    pipe = LDMPipeline(
        vqvae=VQModel.from_pretrained(snapshot / "vqvae"),
        unet=UNet2DModel.from_pretrained(snapshot / "unet"),
        scheduler=ddim_from(snapshot),
    )
    recorded, images = run_from(pipe, ldm_module, trajectory.x_T, monkeypatch, eta=0.0, output_type="np")
    assert_same_run(trajectory, recorded)
    drawn = (model.decode(trajectory.samples) / 2 + 0.5).permute(0, 2, 3, 1).numpy()
    assert drawn.shape == images.shape
    assert abs(drawn - images).max() < 1e-4


@pytest.mark.parametrize(("guidance", "label"), [(1.0, 7), (4.0, 1)])
def test_dit_steps_equal_the_pipelines_and_keep_the_sigma_channels(tiny_repos, monkeypatch, guidance, label):  # noqa: F811
    model = explorer.load(DIT, device="cpu")
    assert model.learned_variance and model.variance_type is explorer.VarianceType.LEARNED_RANGE
    trajectory = explorer.sample(
        model, class_label=label, guidance_scale=guidance, sampler="ddim", num_inference_steps=STEPS
    )
    snapshot = tiny_repos[DIT]
    pipe = DiTPipeline(
        transformer=DiTTransformer2DModel.from_pretrained(snapshot / "transformer"),
        vae=AutoencoderKL.from_pretrained(snapshot / "vae"),
        scheduler=ddim_from(snapshot),
    )
    call = {"class_labels": [label], "guidance_scale": guidance, "output_type": "pt"}
    recorded, images = run_from(pipe, dit_module, trajectory.x_T, monkeypatch, **call)
    assert_same_run(trajectory, recorded)
    torch.testing.assert_close((model.decode(trajectory.samples) / 2 + 0.5).clamp(0, 1), images, **TOLERANCE)
    for step in trajectory:  # the σ channels the pipeline throws away, recorded at every step
        assert step.variance_values is not None and step.variance_values.shape == step.x_t.shape
    assert (trajectory[-1].unconditional is not None) == (guidance > 1)


def test_dit_ddpm_uses_the_learned_range_variance(tiny_repos):  # noqa: F811
    model = explorer.load(DIT, device="cpu")
    trajectory = explorer.sample(model, class_label=3, sampler="ddpm", num_inference_steps=5, variance="learned_range")
    step = trajectory[1]
    assert step.std.shape == step.x_t.shape  # per-element σ from the learned values
    torch.testing.assert_close(step.x_prev, step.mean + step.std * step.noise)
