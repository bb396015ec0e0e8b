"""A checkpoint's training schedule read into the Schedules controls, checked against diffusers' own tables."""

from __future__ import annotations

import numpy as np
import pytest
from diffusers import DDPMScheduler

from ui.controls import schedule_values_of

CONFIGS = {
    "stable diffusion 1.5": {
        "_class_name": "PNDMScheduler",
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "num_train_timesteps": 1000,
        "steps_offset": 1,
    },
    "ddpm cifar10": {"_class_name": "DDPMScheduler", "beta_schedule": "linear", "num_train_timesteps": 1000},
    "zero terminal snr v": {
        "_class_name": "DDIMScheduler",
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "rescale_betas_zero_snr": True,
        "prediction_type": "v_prediction",
    },
    "cosine": {"_class_name": "DDPMScheduler", "beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 500},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_the_controls_reproduce_diffusers_training_schedule(name):
    config = CONFIGS[name]
    schedule = schedule_values_of(config).parse(1)
    reference = DDPMScheduler.from_config({k: v for k, v in config.items() if k != "_class_name"})
    np.testing.assert_allclose(schedule.alphas_cumprod, reference.alphas_cumprod.double().numpy(), rtol=1e-5, atol=1e-7)


def test_an_early_format_config_is_read_and_a_beta_table_is_refused_by_name():
    values = schedule_values_of({"_class_name": "GaussianDDPMScheduler", "timesteps": 500, "beta_schedule": "linear"})
    assert values.T == 500 and values.family == "linear"
    with pytest.raises(ValueError, match="trained_betas"):
        schedule_values_of({"trained_betas": [0.1] * 10}, "someone/model")
    with pytest.raises(ValueError, match="beta_schedule"):
        schedule_values_of({"beta_schedule": "exponential"})
