"""The checkpoint's own scheduler (explorer.diffusion.shipped) against a plain diffusers loop, call by call."""

from __future__ import annotations

import inspect

import diffusers
import pytest
import torch
from tiny_models import TinyUNetDenoiser

from explorer import Schedule
from explorer.diffusion.noise import generator_for, initial_noise, step_noise
from explorer.diffusion.parameterization import Prediction, convert
from explorer.diffusion.sampler import branch, iterate, resolve_settings, sample
from explorer.diffusion.shipped import SCHEDULERS

SHAPE = (2, 1, 8, 8)
LINEAR = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_timesteps": 1000}
SD_LIKE = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
SINGLE_STEP = ("DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler")
MULTISTEP = tuple(name for name, kind in SCHEDULERS.items() if kind.multistep)


def tiny(class_name: str, prediction: str = "epsilon", **config) -> TinyUNetDenoiser:
    """The tiny UNet with a scheduler config of `class_name` (a pixel model given the config a checkpoint ships)."""
    base = SD_LIKE if config.pop("sd_like", False) else LINEAR
    schedule = Schedule.from_diffusers_config(base)
    denoiser = TinyUNetDenoiser(prediction, schedule=schedule)
    denoiser.scheduler_config = {"_class_name": class_name, **base, "prediction_type": prediction, **config}
    return denoiser


def diffusers_loop(denoiser: TinyUNetDenoiser, steps: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """A plain diffusers loop: x = init noise × init_noise_sigma; model on scale_model_input; step() with a
    generator seeded from the explorer's (seed, k). Returns, per model call, the model input, prev_sample and
    pred_original_sample (None where step() returns none)."""
    config = denoiser.scheduler_config
    scheduler = getattr(diffusers, config["_class_name"]).from_config(config)
    scheduler.set_timesteps(steps)
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    x = initial_noise(seed, SHAPE) * scheduler.init_noise_sigma
    calls = []
    with torch.no_grad():
        for k, t in enumerate(scheduler.timesteps):
            model_input = scheduler.scale_model_input(x, t)
            out = denoiser(model_input, int(t))
            kwargs = {"generator": generator_for(seed, k + 1)} if takes_generator else {}
            result = scheduler.step(out, t, x, **kwargs)
            x = result.prev_sample
            pred = getattr(result, "pred_original_sample", None)
            calls.append({"t": t, "input": model_input, "prev_sample": x, "pred_original_sample": pred})
    return calls


@pytest.mark.parametrize("class_name", list(SCHEDULERS))
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_every_call_matches_a_plain_diffusers_loop(class_name: str, prediction: str) -> None:
    denoiser = tiny(class_name, prediction, clip_sample=False, timestep_spacing="leading", steps_offset=1)
    run = sample(denoiser, sampler="scheduler", num_inference_steps=8, batch_size=2, seed=5)
    theirs = diffusers_loop(denoiser, 8, seed=5)
    assert [step.timestep for step in run] == [int(call["t"]) for call in theirs]
    assert len(run) == len(theirs)
    for step, call in zip(run, theirs, strict=True):
        torch.testing.assert_close(step.x_t, call["input"], rtol=0, atol=0)  # the model saw the same input
        if call["pred_original_sample"] is not None:
            torch.testing.assert_close(step.x0_clipped, call["pred_original_sample"], rtol=0, atol=0)
            # x̂₀ derived from the model output (float64, the scheduler's ᾱ) agrees with the scheduler's own
            torch.testing.assert_close(step.x0, call["pred_original_sample"], rtol=1e-5, atol=1e-4)
    for step, following in zip(run.steps, run.steps[1:], strict=False):
        torch.testing.assert_close(step.x_prev, following.x_t, rtol=0, atol=0)  # x_prev is the next model input
    torch.testing.assert_close(run.samples, theirs[-1]["prev_sample"], rtol=0, atol=0)  # σ = 0 at the end: equal


@pytest.mark.parametrize("class_name", list(SCHEDULERS))
def test_recorded_views_are_one_prediction_and_the_step_adds_the_recorded_noise(class_name: str) -> None:
    denoiser = tiny(class_name, "v_prediction", sd_like=True, clip_sample=False, timestep_spacing="leading")
    run = sample(denoiser, sampler="scheduler", num_inference_steps=6, batch_size=2, seed=2)
    for step in run:
        torch.testing.assert_close(step.noise, step_noise(2, step.index, SHAPE), rtol=0, atol=0)
        torch.testing.assert_close(step.mean + step.std * step.noise, step.x_prev, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(step.model_output, step.v)
        # ε̂ and x̂₀ are v̂ converted at one ᾱ: find it from x̂₀ = √ᾱ x_t − √(1−ᾱ) v̂ and ε̂ = √(1−ᾱ) x_t + √ᾱ v̂
        x_t, v = step.x_t.double(), step.v.double()
        sa = ((step.x0.double() * x_t + step.eps.double() * v).sum() / (x_t.square() + v.square()).sum()).item()
        a = sa * sa
        torch.testing.assert_close(
            convert(v, Prediction.V_PREDICTION, Prediction.SAMPLE, x_t, a), step.x0.double(), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(
            convert(v, Prediction.V_PREDICTION, Prediction.EPSILON, x_t, a), step.eps.double(), rtol=1e-5, atol=1e-5
        )


def test_ddpm_and_euler_ancestral_std_is_the_schedulers_own() -> None:
    ddpm = tiny("DDPMScheduler", clip_sample=True, variance_type="fixed_small")
    run = sample(ddpm, sampler="scheduler", num_inference_steps=10, batch_size=2, seed=1)
    scheduler = diffusers.DDPMScheduler.from_config(ddpm.scheduler_config)
    scheduler.set_timesteps(10)
    for step in run:
        expected = scheduler._get_variance(step.timestep).sqrt() if step.timestep > 0 else torch.tensor(0.0)
        torch.testing.assert_close(step.std.flatten(), expected.float().expand(2), rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(step.x0_clipped, step.x0.clamp(-1, 1), rtol=1e-5, atol=1e-5)  # DDPM clips x̂₀
    ancestral = tiny("EulerAncestralDiscreteScheduler")
    run = sample(ancestral, sampler="scheduler", num_inference_steps=10, batch_size=2, seed=1)
    scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(ancestral.scheduler_config)
    scheduler.set_timesteps(10)
    sigmas = scheduler.sigmas.double()
    for k, step in enumerate(run):
        sigma, after = sigmas[k], sigmas[k + 1]
        up = (after**2 * (sigma**2 - after**2) / sigma**2).sqrt()  # k-diffusion's σ_up
        torch.testing.assert_close(
            step.std.flatten().double(), (up / (after**2 + 1).sqrt()).expand(2), rtol=1e-4, atol=1e-5
        )  # σ_z is measured from float32 differences (see shipped.py): ~1e-6 absolute


def test_deterministic_schedulers_add_no_noise_and_heun_records_both_calls() -> None:
    heun = tiny("HeunDiscreteScheduler", timestep_spacing="leading")
    run = sample(heun, sampler="scheduler", num_inference_steps=5, seed=0)
    assert len(run) == 2 * 5 - 1  # a 1st- and a 2nd-order call per step, the last step 1st-order only
    assert heun.calls == len(run)
    assert all(torch.all(step.std == 0) for step in run)
    assert run.timesteps.tolist()[1] == run.timesteps.tolist()[2]  # the 2nd-order call and the next 1st-order one


def test_same_seed_same_run_and_initial_noise_scaled_by_init_noise_sigma() -> None:
    denoiser = tiny("EulerAncestralDiscreteScheduler", timestep_spacing="trailing")
    first = sample(denoiser, sampler="scheduler", num_inference_steps=6, batch_size=2, seed=9)
    again = sample(denoiser, sampler="scheduler", num_inference_steps=6, batch_size=2, seed=9)
    other = sample(denoiser, sampler="scheduler", num_inference_steps=6, batch_size=2, seed=10)
    assert all(torch.equal(a.x_prev, b.x_prev) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first.samples, other.samples)
    scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(denoiser.scheduler_config)
    scheduler.set_timesteps(6)
    sigma = scheduler.sigmas[0].double()
    expected = initial_noise(9, SHAPE).double() * scheduler.init_noise_sigma / (sigma**2 + 1).sqrt()
    torch.testing.assert_close(first.x_T.double(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("class_name", SINGLE_STEP)
def test_branch_from_a_single_step_scheduler_reproduces_the_run(class_name: str) -> None:
    denoiser = tiny(class_name, timestep_spacing="leading")
    run = sample(denoiser, sampler="scheduler", num_inference_steps=8, batch_size=2, seed=4)
    again = branch(run, denoiser, 3)
    exact = not SCHEDULERS[class_name].sigma_space  # σ-space: x_t·√(σ²+1) is rebuilt from float32 x_t
    for ours, theirs in zip(run.steps[3:], again.steps[3:], strict=True):
        tolerance = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-5, "atol": 1e-5}
        torch.testing.assert_close(theirs.x_prev, ours.x_prev, **tolerance)
        torch.testing.assert_close(theirs.noise, ours.noise, rtol=0, atol=0)


def test_branch_from_ddim_may_change_eta_only() -> None:
    denoiser = tiny("DDIMScheduler")
    run = sample(denoiser, sampler="scheduler", num_inference_steps=6, seed=4)
    noisy = branch(run, denoiser, 2, eta=1.0)
    assert noisy.settings.eta == 1.0 and float(noisy[3].std.max()) > 0
    with pytest.raises(ValueError, match="can change only eta"):
        branch(run, denoiser, 2, clip_sample=True)
    with pytest.raises(ValueError, match="remaining_steps"):
        branch(run, denoiser, 2, remaining_steps=3)
    with pytest.raises(ValueError, match="cannot switch to or from the checkpoint's own scheduler"):
        branch(run, denoiser, 2, sampler="ddpm")
    built_in = sample(denoiser, sampler="ddim", num_inference_steps=6)
    with pytest.raises(ValueError, match="cannot switch to or from the checkpoint's own scheduler"):
        branch(built_in, denoiser, 2, sampler="scheduler")


@pytest.mark.parametrize("class_name", MULTISTEP)
def test_branch_from_a_multistep_scheduler_is_refused_with_the_reason(class_name: str) -> None:
    denoiser = tiny(class_name, timestep_spacing="leading")
    run = sample(denoiser, sampler="scheduler", num_inference_steps=4, seed=0)
    with pytest.raises(ValueError, match="depends on earlier model outputs it keeps inside itself"):
        branch(run, denoiser, 1)


def test_heun_branches_from_first_order_frames_only() -> None:
    denoiser = tiny("HeunDiscreteScheduler", timestep_spacing="leading")
    run = sample(denoiser, sampler="scheduler", num_inference_steps=4, seed=0)
    with pytest.raises(ValueError, match="2nd-order call"):
        branch(run, denoiser, 1)
    again = branch(run, denoiser, 2)
    torch.testing.assert_close(again.samples, run.samples, rtol=1e-5, atol=1e-5)


def test_compact_record_and_iterate_of_a_scheduler_run() -> None:
    denoiser = tiny("PNDMScheduler", sd_like=True, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    run = sample(denoiser, sampler="scheduler", num_inference_steps=5, batch_size=2)
    assert run[-1].prev_timestep == 0  # set_alpha_to_one false: PNDM's last step lands on ᾱ at index 0
    compact = run.compact()
    torch.testing.assert_close(compact.view("x_prev", 2), run[2].x_prev)
    torch.testing.assert_close(compact.view("x0", 1), run[1].x0, rtol=1e-3, atol=1e-3)  # fp16
    stepped = list(iterate(denoiser, sampler="scheduler", num_inference_steps=5, batch_size=2))
    assert torch.equal(stepped[-1].x_prev, run.samples)


def test_options_the_scheduler_decides_itself_are_refused_by_name() -> None:
    denoiser = tiny("EulerDiscreteScheduler", timestep_spacing="leading")
    for option in ({"variance": "fixed_large"}, {"clip_sample": True}, {"timesteps": [10, 5]}):
        with pytest.raises(ValueError, match=f"{next(iter(option))} is the checkpoint's scheduler's own"):
            resolve_settings(denoiser, sampler="scheduler", **option)
    with pytest.raises(ValueError, match="eta applies to the DDIM scheduler only"):
        resolve_settings(denoiser, sampler="scheduler", eta=0.5)
    with pytest.raises(ValueError, match=r"num_inference_steps must be a whole number in \[1, 1000\]"):
        resolve_settings(denoiser, sampler="scheduler", num_inference_steps=0)


def test_fractional_timesteps_unknown_schedulers_and_missing_configs_are_refused() -> None:
    euler = tiny("EulerDiscreteScheduler", timestep_spacing="linspace")
    with pytest.raises(ValueError, match="fractional timesteps"):
        resolve_settings(euler, sampler="scheduler", num_inference_steps=20)
    assert len(resolve_settings(euler, sampler="scheduler", num_inference_steps=10).timesteps) == 10  # 999/9 = 111
    with pytest.raises(ValueError, match="'KarrasVeScheduler' is not one the explorer runs"):
        resolve_settings(tiny("KarrasVeScheduler"), sampler="scheduler")
    bare = TinyUNetDenoiser("epsilon")
    with pytest.raises(ValueError, match="has no scheduler config"):
        resolve_settings(bare, sampler="scheduler")
    mismatch = tiny("DDIMScheduler")
    mismatch.scheduler_config["prediction_type"] = "v_prediction"
    with pytest.raises(ValueError, match="prediction_type 'v_prediction' is not the model's 'epsilon'"):
        resolve_settings(mismatch, sampler="scheduler")


def test_early_format_scheduler_config_runs_as_diffusers_reads_it() -> None:
    old = {
        "_class_name": "GaussianDDPMScheduler",
        "timesteps": 1000,
        "beta_schedule": "linear",
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "variance_type": "fixed_small",
        "clip_predicted_image": False,
    }
    denoiser = TinyUNetDenoiser("epsilon", schedule=Schedule.from_diffusers_config(old))
    denoiser.scheduler_config = old
    run = sample(denoiser, sampler="scheduler", num_inference_steps=5, seed=3)
    theirs = diffusers.DDPMScheduler.from_config({**old, "_class_name": "DDPMScheduler", "clip_sample": False})
    theirs.set_timesteps(5)
    assert run.timesteps.tolist() == theirs.timesteps.tolist()
    assert not run.settings.clip_sample  # clip_predicted_image: false is read, not dropped


def test_learned_variance_channels_are_dropped_as_dits_pipeline_does() -> None:
    denoiser = TinyUNetDenoiser("epsilon", learned=True)
    denoiser.scheduler_config = {"_class_name": "DDIMScheduler", **LINEAR, "clip_sample": False}
    run = sample(denoiser, sampler="scheduler", num_inference_steps=4)
    assert run[0].model_output.shape == (1, 1, 8, 8)
    denoiser.scheduler_config = {"_class_name": "DDPMScheduler", **LINEAR, "variance_type": "learned_range"}
    with pytest.raises(ValueError, match="use sampler 'ddpm'"):
        sample(denoiser, sampler="scheduler", num_inference_steps=4)
