"""A checkpoint's training schedule read into the Schedules controls, checked against diffusers' own tables."""

from __future__ import annotations

import numpy as np
import pytest
from diffusers import DDPMScheduler
from tiny_pipelines import SD_V, SD_ZSNR, tiny_repos  # noqa: F401 (tiny_repos: a fixture)

from ui.controls import ScheduleValues, schedule_values_of

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


def test_the_schedules_tab_reads_a_loaded_models_training_schedule(tiny_repos):  # noqa: F811
    from explorer.models.loader import load
    from ui.schedules import SCHEDULE_FIELDS, model_schedule

    for ref in ("digits-eps", SD_V, SD_ZSNR):
        values = ScheduleValues(**dict(zip(SCHEDULE_FIELDS, model_schedule(ref), strict=True)))
        np.testing.assert_allclose(values.parse(1).alphas_cumprod, load(ref).schedule.alphas_cumprod, rtol=1e-12)
    assert model_schedule(SD_V)[:1] == ("scaled_linear",) and model_schedule(SD_ZSNR)[-1] is True
    with pytest.raises(Exception, match="local folder"):
        model_schedule("../../etc")
