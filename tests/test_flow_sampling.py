"""A flow-matching model through the explorer's VP machinery: DDIM (η = 0) on the VP schedule of equal SNR is
diffusers' FlowMatchEulerDiscreteScheduler step for step, and the exact velocity of a finite set copies its data."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

import explorer
from explorer.diffusion import flow
from explorer.diffusion.schedules import Schedule

T = 50
DATA = torch.tensor([[-1.0, 0.5], [1.2, -0.3], [0.1, 1.4], [-0.6, -1.1]], dtype=torch.float64)


def _flow_model(x_sigma: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A smooth stand-in network in flow coordinates: u(x_σ, σ)."""
    return torch.tanh(x_sigma) * (1 + sigma[:, None]) - 0.4 * x_sigma + 0.2 * sigma[:, None]


def _as_vp(network):
    """The explorer's convention for a flow model: x_t is the VP point x_σ / c(σ), timestep i stands for σ = (i+1)/T."""

    def fn(x_t: torch.Tensor, timestep) -> torch.Tensor:
        index = torch.as_tensor(timestep).expand(x_t.shape[0]).double()
        sigma = (index + 1) / T
        c = ((1 - sigma) ** 2 + sigma**2).sqrt()[:, None]
        return network(x_t.double() * c, sigma).to(x_t.dtype)

    return fn


def _schedule() -> Schedule:
    return Schedule.from_diffusers_config({"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": T})


def test_the_flow_schedule_is_the_vp_schedule_of_equal_snr():
    sigma = torch.arange(1, T + 1, dtype=torch.float64) / T
    expected = (1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2)
    torch.testing.assert_close(torch.tensor(_schedule().alphas_cumprod), expected, rtol=1e-12, atol=1e-15)
    assert _schedule().terminal_snr_is_zero  # σ = 1 is pure noise


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_the_training_grid_of_a_shifted_config_is_the_shifted_sigmas(shift):
    config = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": T, "shift": shift}
    theirs = FlowMatchEulerDiscreteScheduler(num_train_timesteps=T, shift=shift).sigmas.double().flip(0)  # ascending
    a = torch.tensor(Schedule.from_diffusers_config(config).alphas_cumprod)
    torch.testing.assert_close((1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt()), theirs, rtol=0, atol=1e-6)


def test_ddim_on_a_flow_model_is_flow_euler_step_for_step():
    model = explorer.wrap(_as_vp(_flow_model), prediction="flow_prediction", schedule=_schedule(), sample_shape=(2,))
    run = explorer.sample(model, sampler="ddim", eta=0.0, num_inference_steps=T, batch_size=6, seed=3)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=T)
    scheduler.set_timesteps(T)
    x = run.x_T.clone()  # σ = 1: x_σ = ε = x_VP
    for k, timestep in enumerate(scheduler.timesteps):
        sigma = float(timestep) / T
        x = scheduler.step(_flow_model(x.double(), torch.full((6,), sigma)).float(), timestep, x).prev_sample
        landing = float(scheduler.sigmas[k + 1])
        c = math.sqrt((1 - landing) ** 2 + landing**2)
        assert run[k].timestep == round(float(timestep)) - 1
        torch.testing.assert_close(run[k].x_prev, x / c, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(run.samples, x, rtol=1e-5, atol=1e-5)  # σ = 0: both are x₀


def test_the_exact_velocity_as_a_model_copies_the_training_set():
    """u*(x_σ) = (x_σ − E[x₀|x_σ])/σ: flow Euler with the exact velocity ends on the data points themselves."""

    def exact(x_sigma: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return flow.exact_velocity(DATA, x_sigma, sigma)

    model = explorer.wrap(_as_vp(exact), prediction="flow_prediction", schedule=_schedule(), sample_shape=(2,))
    run = explorer.sample(model, sampler="ddim", eta=0.0, num_inference_steps=T, batch_size=16, seed=0)
    distances = torch.cdist(run.samples.double(), DATA).min(dim=1).values
    assert distances.max() < 1e-3, distances


def test_a_flow_model_starts_at_sigma_one_by_default_as_its_pipelines_do():
    """A FlowMatchEulerDiscreteScheduler config has no timestep_spacing; diffusers' flow pipelines pass
    σ = linspace(1, 1/n, n), so the first step is at σ = 1 (t = T), whatever n."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    import explorer
    from explorer.diffusion.indexing import paper_t
    from explorer.diffusion.settings import resolve_settings

    model = explorer.load("moons-flow")
    assert model.scheduler_config["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    T = model.schedule.num_train_timesteps
    for n in (4, 7, 28):
        settings = resolve_settings(model, num_inference_steps=n)
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(dict(model.scheduler_config))
        scheduler.set_timesteps(sigmas=[1.0 - k / n for k in range(n)])  # FluxPipeline's linspace(1, 1/n, n)
        assert settings.timesteps[0] == T - 1  # 0-based: paper t = T, σ = t/T = 1
        ours = torch.tensor([paper_t(t) for t in settings.timesteps], dtype=torch.float64)
        torch.testing.assert_close(ours, scheduler.timesteps.double(), atol=0.5, rtol=0)  # σ·T, rounded to the grid
