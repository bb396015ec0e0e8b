"""SD3 against diffusers' StableDiffusion3Pipeline on tiny offline checkpoints in the real layout (with and without
T5): the flow model runs through the explorer's VP machinery at equal SNR and every step equals the pipeline's."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from tiny_pipelines import SD3, SD3_NO_T5, tiny_repos  # noqa: F401 (tiny_repos: a fixture)
from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

import explorer
from explorer.models.pipelines import Family

STEPS = 5
PROMPT = "a lighthouse at dusk"
TOLERANCE = {"rtol": 1e-4, "atol": 5e-5}


def sd3_pipeline(snapshot, with_t5: bool) -> StableDiffusion3Pipeline:
    pipe = StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel.from_pretrained(snapshot / "transformer"),
        vae=AutoencoderKL.from_pretrained(snapshot / "vae"),
        text_encoder=CLIPTextModelWithProjection.from_pretrained(snapshot / "text_encoder"),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(snapshot / "text_encoder_2"),
        text_encoder_3=T5EncoderModel.from_pretrained(snapshot / "text_encoder_3") if with_t5 else None,
        tokenizer=CLIPTokenizer.from_pretrained(snapshot / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(snapshot / "tokenizer_2"),
        tokenizer_3=T5TokenizerFast.from_pretrained(snapshot / "tokenizer_3") if with_t5 else None,
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(snapshot / "scheduler"),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_sd3_loads_as_a_flow_model_on_the_shifted_grid(tiny_repos):  # noqa: F811
    model = explorer.load(SD3, device="cpu")
    assert model.family is Family.SD3 and model.prediction is explorer.Prediction.FLOW
    assert len(model.parts.text_encoders) == 3 and model.default_steps == 28 and model.default_guidance == 7.0
    sigmas = FlowMatchEulerDiscreteScheduler(shift=3.0).sigmas.double().flip(0)  # the training grid, ascending
    a = torch.tensor(model.schedule.alphas_cumprod)
    torch.testing.assert_close((1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt()), sigmas, rtol=0, atol=1e-6)
    assert len(explorer.load(SD3_NO_T5, device="cpu").parts.text_encoders) == 2


@pytest.mark.parametrize(("repo", "with_t5"), [(SD3, True), (SD3_NO_T5, False)])
def test_sd3_embeddings_are_the_pipelines(tiny_repos, repo, with_t5):  # noqa: F811
    model = explorer.load(repo, device="cpu")
    bound = model.condition(explorer.Conditioning(prompt=PROMPT, negative_prompt="fog", guidance_scale=5.0))
    with torch.no_grad():  # as the pipeline's __call__ runs it
        embeds, negative, pooled, negative_pooled = sd3_pipeline(tiny_repos[repo], with_t5).encode_prompt(
            PROMPT, None, None, negative_prompt="fog", device="cpu"
        )
    mine = bound.embeddings()
    torch.testing.assert_close(mine["conditional"], embeds)
    torch.testing.assert_close(mine["unconditional"], negative)
    torch.testing.assert_close(mine["pooled"], pooled)
    torch.testing.assert_close(mine["unconditional_pooled"], negative_pooled)


@pytest.mark.parametrize(("repo", "with_t5", "guidance"), [(SD3, True, 1.0), (SD3, True, 5.0), (SD3_NO_T5, False, 4.0)])
def test_sd3_steps_equal_the_pipelines_on_its_sigma_grid(tiny_repos, repo, with_t5, guidance):  # noqa: F811
    """DDIM (η = 0) on the VP schedule of equal SNR at the pipeline's σ grid is its flow Euler: x_σ = c(σ) x_t."""
    pipe = sd3_pipeline(tiny_repos[repo], with_t5)
    pipe.scheduler.set_timesteps(STEPS)
    grid = pipe.scheduler.sigmas[:-1].tolist()  # what the pipeline will visit, shift 3 included
    model = explorer.load(repo, device="cpu").on_sigmas(grid)
    run = explorer.sample(
        model, prompt=PROMPT, guidance_scale=guidance, sampler="ddim", eta=0.0, num_inference_steps=STEPS, seed=2
    )
    recorded: list[tuple[float, torch.Tensor]] = []

    def callback(pipe, index, timestep, tensors):
        recorded.append((float(timestep), tensors["latents"].clone()))
        return tensors

    pipe(
        PROMPT,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        latents=run.x_T.clone(),
        height=model.image_shape[1],
        width=model.image_shape[2],
        output_type="latent",
        callback_on_step_end=callback,
    )
    assert len(recorded) == len(run) == STEPS
    landing = [*grid[1:], 0.0]
    for step, (_, latents), sigma in zip(run, recorded, landing, strict=True):
        c = math.sqrt((1 - sigma) ** 2 + sigma**2)  # x_σ = c(σ) x_VP
        torch.testing.assert_close(step.x_prev * c, latents, **TOLERANCE)
    assert (run[-1].unconditional is not None) is (guidance > 1)


def test_sd3_decode_adds_the_vae_shift(tiny_repos):  # noqa: F811
    model = explorer.load(SD3, device="cpu")
    latents = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    vae = AutoencoderKL.from_pretrained(tiny_repos[SD3] / "vae")
    with torch.no_grad():
        expected = vae.decode(latents / 1.5305 + 0.0609).sample.clamp(-1, 1)
    torch.testing.assert_close(model.decode(latents), expected, rtol=1e-4, atol=1e-5)
    assert model.decode(latents, "linear").shape == (2, 3, *model.sample_shape[1:])


def test_sd3_pipeline_sigmas_are_its_schedulers(tiny_repos):  # noqa: F811
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(tiny_repos[SD3] / "scheduler")
    scheduler.set_timesteps(STEPS)  # what StableDiffusion3Pipeline does: no sigmas given, static shift 3
    grid = explorer.load(SD3, device="cpu").pipeline_sigmas(STEPS)
    torch.testing.assert_close(torch.from_numpy(grid.sigmas).float(), scheduler.sigmas, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(torch.from_numpy(grid.timesteps).float(), scheduler.timesteps, rtol=1e-6, atol=1e-4)
