"""Where each frame of a checkpoint-scheduler run lands, what its caption says, the guided x̂₀ under Karras σ, the
Karras refusal and the clipping rule (issue 20, items 1–5), each against diffusers' own scheduler state or a float64
formula written here."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from tiny_models import TinyUNetDenoiser

from explorer import Schedule
from explorer.diffusion.denoiser import DenoiserOutput
from explorer.diffusion.sampler import resolve_settings, sample
from explorer.figures.sampling import frame_caption
from ui.frames import frame_texts

LINEAR = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_timesteps": 1000}
SPACINGS = ("leading", "linspace", "trailing")


def tiny(class_name: str, denoiser: TinyUNetDenoiser | None = None, **config) -> TinyUNetDenoiser:
    denoiser = denoiser or TinyUNetDenoiser("epsilon", schedule=Schedule.from_diffusers_config(LINEAR))
    denoiser.scheduler_config = {"_class_name": class_name, **LINEAR, "prediction_type": "epsilon", **config}
    return denoiser


def alphas_cumprod_64() -> np.ndarray:
    """ᾱ of the linear schedule in float64, written out: β_t = linspace(1e-4, 0.02, 1000), ᾱ_t = ∏(1 − β)."""
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))


def theirs(denoiser: TinyUNetDenoiser, steps: int):
    scheduler = getattr(diffusers, denoiser.scheduler_config["_class_name"]).from_config(denoiser.scheduler_config)
    scheduler.set_timesteps(steps)
    return scheduler


# --- item 1: Heun's and PNDM's extra calls ---------------------------------------------------------------


def test_heun_frames_land_where_the_scheduler_puts_x_prev_and_say_why_there_is_a_second_call() -> None:
    denoiser = tiny("HeunDiscreteScheduler", timestep_spacing="leading", steps_offset=1)
    settings = resolve_settings(denoiser, sampler="scheduler", num_inference_steps=4)
    scheduler = theirs(denoiser, 4)
    assert [int(t) for t in scheduler.timesteps] == [751, 501, 501, 251, 251, 1, 1]
    sample_, landing = torch.randn(1, 1, 8, 8) * scheduler.init_noise_sigma, []
    for t in scheduler.timesteps:  # diffusers' own state: the σ its step() leaves the sample at
        sample_ = scheduler.step(torch.randn_like(sample_), t, sample_).prev_sample
        sigma = float(scheduler.sigmas[scheduler.step_index])
        landing.append(1.0 / (1.0 + sigma * sigma))
    np.testing.assert_allclose(settings.alpha_of_landing, landing, rtol=1e-6)
    assert settings.prev_timesteps == (501, 501, 251, 251, 1, 1, -1)
    run = sample(denoiser, sampler="scheduler", num_inference_steps=4, seed=1)
    assert [step.prev_timestep for step in run] == list(settings.prev_timesteps)
    second = frame_caption(run, 1)  # the 2nd call at 501 finishes the step from 751: never "502 → 502"
    assert second.startswith("frame 2 of 7 · t = 752 → 502 · Heun's second model call, at t = 502")
    assert "t = 502 → 502" not in second
    assert frame_caption(run, 2).startswith("frame 3 of 7 · t = 502 → 252 · Heun's first model call")
    assert frame_caption(run, 6) == "frame 7 of 7 · t = 2 → 0 (data)"


def test_pndm_frames_land_on_the_plms_formula_and_its_second_call_finishes_the_first_step() -> None:
    denoiser = tiny("PNDMScheduler", skip_prk_steps=True, steps_offset=1)  # as Stable Diffusion ships it
    settings = resolve_settings(denoiser, sampler="scheduler", num_inference_steps=6)
    calls = [int(t) for t in theirs(denoiser, 6).timesteps]
    assert calls == [831, 665, 665, 499, 333, 167, 1]
    stride = 1000 // 6  # PLMS (Liu et al. 2022): every call lands on t − T//n, except the 2nd, which redoes
    expected = [t - stride for t in calls]  # the 1st step (t₀ → t₁) with the average of both slopes
    expected[1] = calls[1]
    ab = alphas_cumprod_64()
    landing = [ab[s] if s >= 0 else ab[0] for s in expected]  # set_alpha_to_one false: the last lands on ᾱ₀
    np.testing.assert_allclose(settings.alpha_of_landing, landing, rtol=1e-5)
    assert settings.prev_timesteps == (665, 665, 499, 333, 167, 1, 0)
    run = sample(denoiser, sampler="scheduler", num_inference_steps=6, seed=2)
    assert frame_caption(run, 1).startswith("frame 2 of 7 · t = 832 → 666 · PNDM's second model call, at t = 666")
    assert frame_caption(run, 2) == "frame 3 of 7 · t = 666 → 500"


# --- item 2: the checkpoint's DDIM under linspace spacing ------------------------------------------------


@pytest.mark.parametrize("steps", [4, 7])
def test_own_ddim_under_linspace_lands_where_diffusers_step_puts_x_prev(steps: int) -> None:
    denoiser = tiny("DDIMScheduler", timestep_spacing="linspace", clip_sample=False)
    settings = resolve_settings(denoiser, sampler="scheduler", num_inference_steps=steps)
    scheduler = theirs(denoiser, steps)
    generator = torch.Generator().manual_seed(0)
    fitted = []
    for t in scheduler.timesteps:  # η = 0: prev = √ᾱ_s x̂₀ + √(1 − ᾱ_s) ε̂; ᾱ_s = a² fitted in float64
        x_t, eps = torch.randn(64, generator=generator), torch.randn(64, generator=generator)
        result = scheduler.step(eps, t, x_t)
        basis = torch.stack([result.pred_original_sample, eps], dim=1).double()  # [64, 2]
        a, _ = torch.linalg.lstsq(basis, result.prev_sample.double()[:, None]).solution[:, 0]
        fitted.append(float(a) ** 2)
    np.testing.assert_allclose(settings.alpha_of_landing, fitted, rtol=1e-4, atol=1e-7)
    ab = alphas_cumprod_64()
    formula = [ab[t - 1000 // steps] if t >= 1000 // steps else 1.0 for t in settings.timesteps]
    np.testing.assert_allclose(settings.alpha_of_landing, formula, rtol=1e-5)
    if steps == 4:  # the figures: lands on 749, 416, 83, not on 666, 333, 0
        assert settings.prev_timesteps == (749, 416, 83, -1)
        np.testing.assert_allclose(settings.alpha_of_landing[:3:2], [0.0034, 0.925], atol=5e-4)
        run = sample(denoiser, sampler="scheduler", num_inference_steps=4)
        assert frame_caption(run, 0) == "frame 1 of 4 · t = 1000 → 750"
        assert frame_caption(run, 1).startswith("frame 2 of 4 · t = 667 → 417 · x_t lies at t = 750")


# --- item 3: guided x̂₀ under Karras σ ----------------------------------------------------------------------


class _Guided(TinyUNetDenoiser):
    """A conditional stand-in: f_c = the UNet's output, f_u = 0.3 of it plus x_t/4; guided f̂ = f_u + w (f_c − f_u)."""

    guidance_scale = 3.0

    def predict(self, x_t: torch.Tensor, timestep) -> DenoiserOutput:
        conditional = super().predict(x_t, timestep).prediction
        unconditional = 0.3 * conditional + 0.25 * x_t.float()
        guided = unconditional + self.guidance_scale * (conditional - unconditional)
        return DenoiserOutput(guided, conditional=conditional, unconditional=unconditional)


@pytest.mark.parametrize("class_name", ["DPMSolverMultistepScheduler", "UniPCMultistepScheduler"])
def test_guided_x0_is_the_mix_of_the_two_x0_under_karras_sigmas(class_name: str) -> None:
    denoiser = tiny(class_name, _Guided("epsilon", schedule=Schedule.from_diffusers_config(LINEAR)))
    denoiser.scheduler_config["use_karras_sigmas"] = True
    run = sample(denoiser, sampler="scheduler", num_inference_steps=6, batch_size=2, seed=4)
    sigmas = theirs(denoiser, 6).sigmas.double()
    compact = run.compact()
    w = _Guided.guidance_scale
    for k, step in enumerate(run):
        a = 1.0 / (1.0 + float(sigmas[k]) ** 2)  # the step's own ᾱ (its σ), float64
        x_t = step.x_t.double()

        def x0(eps: torch.Tensor, x_t=x_t, a=a) -> torch.Tensor:
            return (x_t - (1.0 - a) ** 0.5 * eps.double()) / a**0.5

        x0_c, x0_u = x0(step.conditional), x0(step.unconditional)
        torch.testing.assert_close(step.x0.double(), x0_u + w * (x0_c - x0_u), rtol=1e-5, atol=1e-5)
        mine_c, mine_u = run.guidance_x0(k)
        torch.testing.assert_close(mine_c.double(), x0_c, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(mine_u.double(), x0_u, rtol=1e-5, atol=1e-5)
        scale = 1e-3 * (1.0 + float(x0_c.abs().max()))  # float16 storage
        torch.testing.assert_close(compact.view("x0_conditional", k).double(), x0_c, rtol=0, atol=scale)


# --- item 4: Euler and Heun with Karras σ ------------------------------------------------------------------


@pytest.mark.parametrize("class_name", ["EulerDiscreteScheduler", "HeunDiscreteScheduler"])
def test_karras_refusal_says_what_is_true(class_name: str) -> None:
    for spacing in SPACINGS:
        denoiser = tiny(class_name, use_karras_sigmas=True, timestep_spacing=spacing)
        for steps in (3, 4, 7, 10, 25):
            values = theirs(denoiser, steps).timesteps.double()
            assert not torch.equal(values, values.round())  # diffusers: fractional for every n > 2
            with pytest.raises(ValueError, match="with use_karras_sigmas visits fractional timesteps") as refused:
                resolve_settings(denoiser, sampler="scheduler", num_inference_steps=steps)
            message = str(refused.value)
            assert "for every step count above 2, under every spacing" in message
            assert "(T − 1)/(n − 1)" not in message  # the advice that never worked
        settings = resolve_settings(denoiser, sampler="scheduler", num_inference_steps=2)  # what it says works
        values = theirs(denoiser, 2).timesteps
        assert settings.timesteps == tuple(int(v) for v in values)


# --- item 5: one clipping rule ------------------------------------------------------------------------------


def test_a_config_without_clip_sample_clips_as_diffusers_does_in_the_step_and_the_compact_record() -> None:
    denoiser = tiny("DDIMScheduler", timestep_spacing="leading")  # no clip_sample key
    assert diffusers.DDIMScheduler.from_config(denoiser.scheduler_config).config.clip_sample is True
    run = sample(denoiser, sampler="scheduler", num_inference_steps=5, batch_size=2, seed=3)
    assert run.settings.clip_sample and run.settings.clip_range == 1.0
    compact = run.compact()
    for k, step in enumerate(run):
        assert float(step.x0.abs().max()) > 1.0  # the tiny model's x̂₀ leaves [−1, 1]
        clipped = compact.view("x0_clipped", k)
        assert float(clipped.abs().max()) <= 1.0
        torch.testing.assert_close(clipped, step.x0_clipped, rtol=0, atol=2e-3)  # diffusers' pred_original_sample
        share = ((step.x0 - step.x0_clipped).abs() > 1e-4).reshape(2, -1).double().mean(dim=1)  # what it clipped
        torch.testing.assert_close(compact.clipped_fraction[k].double(), share, rtol=0, atol=1e-3)
    assert all("clipped to [−1, 1]:" in text for text in frame_texts(compact))


def test_a_scheduler_class_without_clipping_records_none() -> None:
    denoiser = tiny("PNDMScheduler", skip_prk_steps=True)
    run = sample(denoiser, sampler="scheduler", num_inference_steps=4, seed=1)
    assert not run.settings.clip_sample
    compact = run.compact()
    assert float(compact.clipped_fraction.abs().max()) == 0.0
    torch.testing.assert_close(compact.view("x0_clipped", 0), compact.view("x0", 0), rtol=0, atol=0)
    assert all("x̂₀ not clipped" in text for text in frame_texts(compact))
