"""sampler='scheduler' on flow-matching checkpoints (SD3, FLUX.1 schnell and dev): the checkpoint's own
FlowMatchEulerDiscreteScheduler runs frame by frame, every step equals diffusers' pipeline (`callback_on_step_end`),
the network sees the pipeline's timesteps, and each recorded field is the flow step's, checked by float64 formulas:

    x_σ = c(σ) x_t, c(σ) = √((1 − σ)² + σ²)     x̂₀ = x_σ − σ û     ε̂ = x_σ + (1 − σ) û     ᾱ = (1 − σ)² / c²
    v̂ = √ᾱ ε̂ − √(1 − ᾱ) x̂₀                   Euler: x_{σ'} = x_σ + (σ' − σ) û, so û = Δx_σ / Δσ of the pipeline
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_flux import flux_pipeline, pack, unpack
from test_latent_models import copy_repo
from test_sd3 import sd3_pipeline
from tiny_pipelines import FLUX_DEV, FLUX_SCHNELL, SD3, build_flux, build_sd3

import explorer
from explorer.diffusion.landings import END_OF_RUN
from explorer.figures.sampling import frame_caption

STEPS = 4
PROMPT = "a lighthouse at dusk"
SIDE = 8  # FLUX latent side (16 packed tokens)
TOLERANCE = {"rtol": 1e-4, "atol": 5e-5}


@pytest.fixture(scope="module")
def repos():
    return {
        SD3: build_sd3(),
        FLUX_SCHNELL: build_flux(FLUX_SCHNELL, guidance=False, seed=60),
        FLUX_DEV: build_flux(FLUX_DEV, guidance=True, seed=70),
    }


def c_of(sigma: float) -> float:
    return math.sqrt((1 - sigma) ** 2 + sigma**2)


def timesteps_seen(network: torch.nn.Module) -> list[float]:
    """The first timestep value the network is called with, per call (a forward pre-hook)."""
    seen: list[float] = []
    network.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(float(kwargs["timestep"].reshape(-1)[0])), with_kwargs=True
    )
    return seen


def pipeline_run(repo, snapshot, run, model, guidance):
    """(the pipeline's latents entering each step and the final ones [S + 1], its scheduler's σ and timesteps,
    the timesteps its network saw); FLUX latents unpacked to [B, C, h, w]."""
    flux = repo != SD3
    pipe = flux_pipeline(snapshot) if flux else sd3_pipeline(snapshot, with_t5=True)
    seen = timesteps_seen(pipe.transformer)
    recorded: list[torch.Tensor] = []

    def callback(pipe, index, timestep, tensors):
        latents = tensors["latents"]
        recorded.append(unpack(latents, SIDE) if flux else latents.clone())
        return tensors

    pipe(
        PROMPT,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        latents=pack(run.initial_noise) if flux else run.initial_noise.clone(),
        height=model.image_shape[1],
        width=model.image_shape[2],
        output_type="latent",
        callback_on_step_end=callback,
    )
    return [run.initial_noise, *recorded], pipe.scheduler.sigmas.double(), pipe.scheduler.timesteps, seen


CASES = [(SD3, 1.0), (SD3, 5.0), (FLUX_SCHNELL, None), (FLUX_DEV, 1.0), (FLUX_DEV, 4.0)]


@pytest.mark.parametrize(("repo", "guidance"), CASES)
def test_the_own_flow_scheduler_equals_the_pipeline_step_for_step(repos, repo, guidance):
    model = explorer.load(repo, device="cpu")
    model = model.resized(SIDE, SIDE) if repo != SD3 else model
    mine = timesteps_seen(model.parts.network)
    options = {} if guidance is None else {"guidance_scale": guidance}
    run = explorer.sample(model, prompt=PROMPT, sampler="scheduler", num_inference_steps=STEPS, seed=5, **options)
    pipe_guidance = 3.5 if guidance is None else guidance  # schnell: no guidance input, the pipeline ignores it
    latents, sigmas, timesteps, seen = pipeline_run(repo, repos[repo], run, model, pipe_guidance)

    assert len(run) == STEPS == len(timesteps)
    torch.testing.assert_close(torch.tensor(mine), torch.tensor(seen), rtol=1e-6, atol=1e-6)  # the network's t
    if repo != SD3:  # FLUX hands σ = t / 1000 to its transformer
        torch.testing.assert_close(torch.tensor(seen), timesteps / 1000, rtol=1e-6, atol=1e-7)
    a_call = torch.tensor(run.settings.alpha_of_call, dtype=torch.float64)
    torch.testing.assert_close((1 - a_call).sqrt() / (a_call.sqrt() + (1 - a_call).sqrt()), sigmas[:-1])
    assert run.settings.alpha_of_landing[-1] == 1.0 and run.settings.prev_timesteps[-1] == END_OF_RUN
    assert run.settings.prev_timesteps[:-1] == run.settings.timesteps[1:]
    for k, step in enumerate(run):
        s, s_next = float(sigmas[k]), float(sigmas[k + 1])
        x_sigma, x_next = latents[k].double(), latents[k + 1].double()
        u = (x_next - x_sigma) / (s_next - s)  # the pipeline's guided velocity, from its own Euler step
        torch.testing.assert_close(step.x_t.double() * c_of(s), x_sigma, **TOLERANCE)
        torch.testing.assert_close(step.x_prev.double() * c_of(s_next), x_next, **TOLERANCE)
        torch.testing.assert_close(step.model_output.double(), u, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(step.u, step.model_output)
        x_sigma = step.x_t.double() * c_of(s)
        x0, eps = x_sigma - s * step.u.double(), x_sigma + (1 - s) * step.u.double()
        a = (1 - s) ** 2 / c_of(s) ** 2
        torch.testing.assert_close(a, run.settings.alpha_of_call[k])
        torch.testing.assert_close(run.settings.alpha_of_landing[k], (1 - s_next) ** 2 / c_of(s_next) ** 2)
        torch.testing.assert_close(step.x0.double(), x0, **TOLERANCE)
        torch.testing.assert_close(step.x0_clipped, step.x0)
        torch.testing.assert_close(step.eps.double(), eps, **TOLERANCE)
        torch.testing.assert_close(step.v.double(), math.sqrt(a) * eps - math.sqrt(1 - a) * x0, **TOLERANCE)
        assert not step.std.any()
        torch.testing.assert_close(step.mean, step.x_prev)  # Euler adds no noise
        assert (step.unconditional is not None) is (repo == SD3 and guidance > 1)
        # the frame's caption names the flow σ it runs between and the pipeline's timestep, not the bound index
        landing = "0 (data)" if k == STEPS - 1 else f"{s_next:.3f}"
        assert frame_caption(run, k) == (
            f"frame {k + 1} of {STEPS} · σ = {s:.3f} → {landing} (pipeline timestep {float(timesteps[k]):.0f})"
        )


def test_a_stochastic_flow_scheduler_records_its_noise(repos):
    """stochastic_sampling: x_{σ'} = (1 − σ') x̂₀ + σ' z, so in VP terms μ = √ᾱ_s x̂₀ and σ_z = √(1 − ᾱ_s)."""
    snapshot = copy_repo(repos[SD3], "explorer-test/sd3-stochastic")
    config_path = snapshot / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "stochastic_sampling": True}))
    model = explorer.load("explorer-test/sd3-stochastic", device="cpu")
    run = explorer.sample(model, prompt=PROMPT, sampler="scheduler", num_inference_steps=STEPS, seed=1)
    for k, step in enumerate(run):
        a_s = run.settings.alpha_of_landing[k]
        torch.testing.assert_close(
            step.std.double().flatten(), torch.full((1,), math.sqrt(1 - a_s), dtype=torch.float64)
        )
        torch.testing.assert_close(step.mean.double(), math.sqrt(a_s) * step.x0.double(), **TOLERANCE)
        torch.testing.assert_close(step.mean + step.std * step.noise, step.x_prev)


def test_a_flow_scheduler_run_branches_from_any_frame_and_refuses_what_it_cannot_change(repos):
    model = explorer.load(SD3, device="cpu")
    run = explorer.sample(model, prompt=PROMPT, sampler="scheduler", num_inference_steps=STEPS, seed=2)
    again = explorer.branch(run, model, 2)
    for old, new in zip(run, again, strict=True):
        torch.testing.assert_close(new.x_prev, old.x_prev)
    for options, field in [
        ({"num_inference_steps": 1}, "num_inference_steps"),
        ({"spacing": "leading"}, "spacing"),
        ({"eta": 0.5}, "eta"),
        ({"clip_sample": True}, "clip_sample"),
    ]:
        with pytest.raises(ValueError, match=field):
            explorer.sample(model, sampler="scheduler", **{"num_inference_steps": STEPS, **options})
    with pytest.raises(ValueError, match="remaining_steps"):
        explorer.branch(run, model, 1, remaining_steps=2)
