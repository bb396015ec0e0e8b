"""Teacher forcing: the truth scores zero, the oracle scores best, views agree with each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import TinyUNetDenoiser

from explorer import Denoiser, DenoiserOutput, Prediction, Schedule
from explorer.diffusion.oracle import OptimalDenoiser
from explorer.diffusion.parameterization import v_from_x0_eps
from explorer.diffusion.sampler import sample
from explorer.diffusion.teacher import teacher_force

SCHEDULE = Schedule.from_name("linear", 1000)


class TruthDenoiser(Denoiser):
    """Knows the clean sample: outputs the exact x₀ (or its ε / v) for any x_t."""

    def __init__(self, x0: torch.Tensor, prediction: str) -> None:
        self.x0, self.prediction = x0.double(), Prediction.parse(prediction)
        self.name, self.schedule, self.sample_shape = f"truth-{prediction}", SCHEDULE, tuple(x0.shape[1:])

    def predict(self, x_t, timestep) -> DenoiserOutput:
        from explorer.diffusion.parameterization import convert

        t = torch.as_tensor(timestep).expand(x_t.shape[0])
        batch = self.x0.repeat(x_t.shape[0] // self.x0.shape[0], *([1] * (self.x0.ndim - 1)))
        a = torch.from_numpy(SCHEDULE.alphas_cumprod[t.numpy()])
        return DenoiserOutput(convert(batch, "sample", self.prediction, x_t.double(), a))


def test_the_truth_itself_has_zero_error_in_every_space() -> None:
    x0 = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    models = [TruthDenoiser(x0, p) for p in ("epsilon", "sample", "v_prediction")]
    result = teacher_force(models, x0=x0, timesteps=[0, 10, 500, 998], seed=4)
    for model in result.models:
        for errors in (model.eps_mse, model.x0_mse, model.v_mse, model.u_mse):
            # Zero up to the float32 rounding of x_t at the model boundary (amplified by 1/√(1−ᾱ) at t = 1).
            assert errors.shape == (4,) and np.all(errors < 1e-9)
        assert np.isnan(model.kl[0]) and np.all(np.abs(model.kl[1:]) < 1e-9)


def test_shared_inputs_are_q_samples_with_the_seeded_noise() -> None:
    x0 = torch.randn(2, 2, generator=torch.Generator().manual_seed(1))
    result = teacher_force([OptimalDenoiser(x0, SCHEDULE)], x0=x0, timesteps=[5, 700], seed=9)
    a = torch.from_numpy(SCHEDULE.alphas_cumprod[[5, 700]]).float()
    for k in range(2):
        expected = a[k].sqrt() * x0 + (1 - a[k]).sqrt() * result.eps[k]
        torch.testing.assert_close(result.x_t[k], expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result.v[k], v_from_x0_eps(x0, result.eps[k], a[k]), rtol=1e-5, atol=1e-6)
    again = teacher_force([OptimalDenoiser(x0, SCHEDULE)], x0=x0, timesteps=[5, 700], seed=9)
    torch.testing.assert_close(again.x_t, result.x_t, rtol=0, atol=0)
    rms = result.target_rms()
    assert set(rms) == {"eps", "x0", "v", "u"} and rms["eps"].shape == (2,)
    u = result.eps.double() - x0.double()  # the flow velocity ε − x₀, the same at every level
    torch.testing.assert_close(rms["u"], u.pow(2).reshape(2, -1).mean(1).sqrt().numpy(), rtol=1e-6, atol=0)


def test_oracle_beats_a_random_network_and_kl_is_positive() -> None:
    data = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(2)).clamp(-1, 1)
    result = teacher_force(
        [OptimalDenoiser(data, SCHEDULE), TinyUNetDenoiser("epsilon")], x0=data[:4], timesteps=[1, 100, 400, 900]
    )
    oracle, random = result.models
    assert np.all(oracle.x0_mse <= random.x0_mse) and np.all(random.kl[np.isfinite(random.kl)] > 0)
    # Views of one model agree with each other.
    a = float(SCHEDULE.alphas_cumprod[400])
    torch.testing.assert_close(
        random.x0[2], (result.x_t[2] - (1 - a) ** 0.5 * random.eps[2]) / a**0.5, atol=1e-4, rtol=1e-4
    )


def test_forcing_on_a_sampled_trajectory() -> None:
    run = sample(TinyUNetDenoiser("sample"), num_inference_steps=10, batch_size=2)
    result = teacher_force([TinyUNetDenoiser("epsilon"), TinyUNetDenoiser("v_prediction")], trajectory=run)
    assert result.eps is None and result.models[0].x0_mse is None
    assert result.models[1].x0.shape == (10, 2, 1, 8, 8)
    torch.testing.assert_close(result.x_t[3], run[3].x_t)
    with pytest.raises(ValueError, match="target sizes"):
        result.target_rms()


def test_zero_snr_epsilon_views_are_nan_not_inf() -> None:
    zsnr = Schedule.from_name("linear", 1000, rescale_zero_terminal_snr=True)
    model = TinyUNetDenoiser("epsilon", schedule=zsnr)
    result = teacher_force([model], x0=torch.zeros(1, 1, 8, 8), timesteps=[999, 500], schedule=zsnr)
    assert torch.isnan(result.models[0].x0[0]).all() and torch.isfinite(result.models[0].x0[1]).all()


def test_bad_calls_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        teacher_force([TinyUNetDenoiser()])
    with pytest.raises(ValueError, match="at least one"):
        teacher_force([], x0=torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        teacher_force([TinyUNetDenoiser()], x0=torch.zeros(1, 1, 8, 8), timesteps=[1000])
