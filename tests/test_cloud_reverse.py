"""The cloud draws the reverse the run's sampler follows (issue 20 item 8), and animates Heun and PNDM runs.

References are independent of the explorer: the exact x̂₀ = Σ_n w_n x_n and DDPM's posterior mean are float64
formulas written here; DDIM's step is diffusers' DDIMScheduler.step; the noise level each Heun call lands on is
diffusers' HeunDiscreteScheduler.sigmas.
"""

from __future__ import annotations

import math

import diffusers
import numpy as np
import pytest
import torch
from app_fixtures import FakeRequest, ensure_models

from explorer.data import exact_training_set
from explorer.diffusion.indexing import paper_t
from explorer.diffusion.oracle import OptimalDenoiser
from explorer.diffusion.sampler import sample
from explorer.diffusion.schedules import Schedule
from explorer.figures.cloud import TRACES, cloud_figure, frame_name, run_cloud
from ui import cloud as cloud_view
from ui.state import keep_run

SCHEDULE = Schedule.from_name("linear", 1000)
LINEAR = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_timesteps": 1000}
MOONS = exact_training_set("moons")  # [1000, 2]
HIGHLIGHTED = 3


def exact_x0(x_t: torch.Tensor, a_t: float) -> torch.Tensor:
    """E[x₀ | x_t] of the moons set, float64: softmax of −‖x_t − √ᾱ x_n‖² / (2(1 − ᾱ)) over n. x_t: [B, 2]."""
    data = MOONS.double()
    squared = ((x_t.double()[:, None, :] - math.sqrt(a_t) * data[None]) ** 2).sum(-1)  # [B, N]
    return torch.softmax(-squared / (2 * (1 - a_t)), dim=-1) @ data


def drawn_means(cloud) -> list[np.ndarray | None]:
    """The mean marker as the figure draws it, per frame ([2], or None where nothing is drawn)."""
    figure = cloud_figure(cloud)
    means = []
    for frame in figure.frames:
        trace = frame["data"][TRACES.index("exact mean")]
        means.append(np.array([trace["x"][0], trace["y"][0]]) if len(trace["x"]) else None)
    return means


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_the_drawn_mean_is_the_ddim_step_of_the_exact_denoiser(eta):
    with torch.no_grad():
        run = sample(OptimalDenoiser(MOONS, SCHEDULE), sampler="ddim", eta=eta, num_inference_steps=10, batch_size=8)
    compact = run.compact()
    cloud = run_cloud(compact, MOONS, highlighted=HIGHLIGHTED, max_frames=10)
    scheduler = diffusers.DDIMScheduler(**LINEAR, prediction_type="sample", clip_sample=False, set_alpha_to_one=True)
    scheduler.set_timesteps(10)
    assert [int(t) for t in scheduler.timesteps] == compact.timesteps.tolist()
    means = drawn_means(cloud)
    for k, t in enumerate(scheduler.timesteps):
        x_t = compact.x_t[k, HIGHLIGHTED : HIGHLIGHTED + 1]  # [1, 2] float32
        x0 = exact_x0(x_t, float(scheduler.alphas_cumprod[int(t)])).float()
        zero = torch.zeros_like(x_t)  # the step's mean: DDIM without its noise
        expected = scheduler.step(x0, t, x_t, eta=eta, variance_noise=zero).prev_sample[0].double().numpy()
        np.testing.assert_allclose(cloud.frames[k].exact_mean, expected, rtol=0, atol=2e-5)
        np.testing.assert_allclose(means[k], expected, rtol=0, atol=2e-5)  # float32 in the figure
    assert means[-1] is None  # the final samples: no step
    if eta == 0:
        assert all(frame.reverse is None for frame in cloud.frames)  # point masses: no contours
    else:
        assert cloud.frames[0].reverse is not None


def test_the_drawn_mean_is_the_ddpm_posterior_mean_of_the_exact_denoiser():
    with torch.no_grad():
        run = sample(OptimalDenoiser(MOONS, SCHEDULE), sampler="ddpm", num_inference_steps=10, batch_size=8)
    compact = run.compact()
    cloud = run_cloud(compact, MOONS, highlighted=HIGHLIGHTED, max_frames=10)
    means = drawn_means(cloud)
    for k in range(10):
        t, s = int(compact.timesteps[k]), int(compact.prev_timesteps[k])
        a_t = float(np.prod(1 - np.linspace(1e-4, 0.02, 1000)[: t + 1]))  # ᾱ from β directly, float64
        a_s = 1.0 if s < 0 else float(np.prod(1 - np.linspace(1e-4, 0.02, 1000)[: s + 1]))
        x_t = compact.x_t[k, HIGHLIGHTED : HIGHLIGHTED + 1].double()
        x0 = exact_x0(x_t, a_t)
        beta = 1 - a_t / a_s
        expected = (math.sqrt(a_s) * beta * x0 + math.sqrt(a_t / a_s) * (1 - a_s) * x_t) / (1 - a_t)
        np.testing.assert_allclose(cloud.frames[k].exact_mean, expected[0].numpy(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(means[k], expected[0].numpy(), rtol=0, atol=2e-6)


def test_the_caption_and_legend_name_the_reverse_drawn():
    ensure_models()  # "exact-moons" is offered where a moons model is bundled
    names = {}
    for sampler, eta in (("ddpm", 0.0), ("ddim", 0.0)):
        with torch.no_grad():
            compact = sample(
                OptimalDenoiser(MOONS, SCHEDULE), sampler=sampler, eta=eta, num_inference_steps=6, batch_size=4
            ).compact()
        request = FakeRequest(f"cloud-reverse-{sampler}")
        keep_run(request, compact, "exact-moons")
        figure, caption = cloud_view.animate(1, request)
        legend = figure.data[TRACES.index("reverse")]["name"]
        names[sampler] = (caption, legend)
    ddpm_caption, ddpm_legend = names["ddpm"]
    ddim_caption, ddim_legend = names["ddim"]
    assert "exact q(x<sub>s</sub> | x<sub>t</sub>)" in ddpm_legend and "DDIM" not in ddpm_caption
    assert "DDIM's reverse (η = 0)" in ddim_legend and "DDIM's reverse (η = 0)" in ddim_caption
    assert "does not follow the Markov reverse" in ddim_caption and "point mass" in ddim_caption


def own_scheduler_run(class_name: str, **config):
    """A run of the exact moons denoiser (ε output) through diffusers' `class_name`, as a checkpoint ships it."""
    denoiser = OptimalDenoiser(MOONS, SCHEDULE, prediction="epsilon", name="exact-moons")
    denoiser.scheduler_config = {"_class_name": class_name, **LINEAR, "prediction_type": "epsilon", **config}
    with torch.no_grad():
        return sample(denoiser, sampler="scheduler", num_inference_steps=6, batch_size=8, seed=1).compact()


def test_a_heun_run_animates_with_the_levels_its_calls_land_on():
    config = {"timestep_spacing": "leading", "steps_offset": 1}
    compact = own_scheduler_run("HeunDiscreteScheduler", **config)
    cloud = run_cloud(compact, MOONS, highlighted=HIGHLIGHTED)  # raised "prev_timestep must be …" before
    heun = diffusers.HeunDiscreteScheduler(**LINEAR, **config)
    heun.set_timesteps(6)
    timesteps = [int(t) for t in heun.timesteps]
    assert len(timesteps) == len(compact) and len(set(timesteps)) < len(timesteps)  # 876, 751, 751, 626, …
    sigmas = heun.sigmas.double().numpy()  # call k sees σ_k and lands on σ_{k+1} (0 at the end: the data)
    for k, frame in enumerate(cloud.frames[:-1]):
        assert frame.t == paper_t(timesteps[k])
        assert frame.alpha_t == pytest.approx(1 / (1 + sigmas[k] ** 2), rel=1e-5)
        assert frame.alpha_s == pytest.approx(1 / (1 + sigmas[k + 1] ** 2), rel=1e-5)
        corrector = sigmas[k + 1] == sigmas[k]
        assert (frame.s == frame.t) == corrector
        assert (frame.exact_mean is None) == corrector
        assert corrector or frame.reverse is not None or frame.s == 0
    names = [frame_name(cloud, j) for j in range(len(cloud.frames))]
    assert len(set(names)) == len(names)  # Plotly finds frames by name
    figure = cloud_figure(cloud).validated()
    assert len(figure.frames) == len(cloud.frames)


def test_a_pndm_run_animates():
    compact = own_scheduler_run("PNDMScheduler", skip_prk_steps=True, timestep_spacing="leading", steps_offset=1)
    cloud = run_cloud(compact, MOONS, highlighted=HIGHLIGHTED)
    assert any(frame.s == frame.t for frame in cloud.frames[:-1])  # PNDM repeats its second timestep
    assert all(frame.s <= frame.t for frame in cloud.frames)
    names = [frame_name(cloud, j) for j in range(len(cloud.frames))]
    assert len(set(names)) == len(names)
    assert "own scheduler" in cloud.reverse.note  # labelled: not the scheduler's own update
