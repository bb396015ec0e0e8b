"""tools.train: targets, the command line, and tiny real training runs."""

import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from explorer.data import Dataset
from explorer.diffusion.parameterization import Prediction, convert, x0_from_v
from explorer.diffusion.posterior import q_sample
from explorer.models.mlp import PointDenoiserMLP
from tools.train import (
    LossWeighting,
    TrainConfig,
    build_model,
    loss_weights,
    model_output,
    parse_args,
    pick_device,
    scheduler_config,
    seed_everything,
    train,
    training_data,
    training_schedule,
    training_target,
    weighted_mse,
)


def test_schedule_is_the_shared_linear_one():
    schedule = training_schedule()
    assert schedule.num_train_timesteps == 1000
    assert schedule.betas[0] == pytest.approx(1e-4) and schedule.betas[-1] == pytest.approx(0.02)


def test_a_flow_model_trains_on_the_vp_schedule_of_equal_snr_to_sigma_t_over_T():
    sigma = np.arange(1, 1001) / 1000
    expected = (1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2)
    np.testing.assert_allclose(training_schedule(Prediction.FLOW).alphas_cumprod, expected, rtol=1e-12, atol=1e-15)
    assert scheduler_config(Dataset.MOONS, Prediction.FLOW) == {"num_train_timesteps": 1000, "shift": 1.0}


@pytest.mark.parametrize("prediction", list(Prediction))
def test_training_target_matches_the_parameterization(prediction):
    schedule = training_schedule()
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(8, 2, generator=generator), torch.randn(8, 2, generator=generator)
    timestep = torch.randint(0, 1000, (8,), generator=generator)
    x_t = q_sample(schedule, x0, timestep, noise)
    target = training_target(prediction, schedule, x0, noise, timestep)
    if prediction is Prediction.EPSILON:
        torch.testing.assert_close(target, noise)
    elif prediction is Prediction.SAMPLE:
        torch.testing.assert_close(target, x0)
    elif prediction is Prediction.FLOW:  # rectified flow's velocity
        torch.testing.assert_close(target, noise - x0)
    else:  # v turns back into x0 through the inverse converter
        alpha_cumprod = torch.from_numpy(schedule.alphas_cumprod[timestep.numpy()])
        torch.testing.assert_close(x0_from_v(x_t, target, alpha_cumprod), x0, atol=1e-5, rtol=1e-5)


def test_parse_args_builds_a_config():
    config = parse_args(["--data", "ring", "--prediction", "v_prediction", "--steps", "5", "--out", "x"])
    assert config.data is Dataset.RING and config.prediction is Prediction.V_PREDICTION and config.steps == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "spiral", "--prediction", "epsilon", "--steps", "5", "--out", "x"], "invalid choice"),
        (["--data", "moons", "--prediction", "x0", "--steps", "5", "--out", "x"], "invalid choice"),
        (["--data", "moons", "--prediction", "epsilon", "--steps", "0", "--out", "x"], r"--steps must be an integer"),
        (["--data", "moons", "--prediction", "epsilon", "--steps", "5", "--out", "x", "--lr", "nan"], "--lr must"),
    ],
)
def test_parse_args_refuses_bad_values(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message.replace("\\", "") in capsys.readouterr().err or message in capsys.readouterr().err


def test_pick_device_honours_a_request_and_falls_back_to_what_exists():
    assert pick_device("cpu").type == "cpu"
    assert pick_device().type in {"cuda", "mps", "cpu"}


def _fixed_batch_loss(model, prediction, x0, seed=123):
    schedule = training_schedule()
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=generator)
    timestep = torch.randint(0, 1000, (x0.shape[0],), generator=generator)
    x_t = q_sample(schedule, x0, timestep, noise)
    target = training_target(prediction, schedule, x0, noise, timestep)
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(model_output(model, x_t, timestep), target))


def test_a_short_run_writes_a_loadable_folder_and_lowers_the_loss(tmp_path):
    out = tmp_path / "moons-eps"
    config = TrainConfig(
        data=Dataset.MOONS,
        prediction=Prediction.EPSILON,
        steps=60,
        seed=0,
        out=str(out),
        batch_size=128,
        lr=3e-3,
        warmup_steps=10,
        ema_decay=0.5,  # a short EMA, so the saved weights are the last few steps'
        log_every=20,
    )
    seed_everything(0)
    initial = build_model(Dataset.MOONS).eval()  # the same initial weights the run starts from
    result = train(config)
    assert result.steps == 60 and result.last_loss < result.first_loss

    for name in ("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json", "README.md"):
        assert (out / name).exists(), name
    assert json.loads((out / "config.json").read_text())["_class_name"] == "PointDenoiserMLP"
    scheduler = DDPMScheduler.from_pretrained(out)
    assert scheduler.config.prediction_type == "epsilon" and scheduler.config.clip_sample is False
    assert scheduler.config.variance_type == "fixed_small"
    trained = PointDenoiserMLP.from_pretrained(out, use_safetensors=True).eval()

    x0 = training_data(Dataset.MOONS, seed=99)[:512]
    before = _fixed_batch_loss(initial, Prediction.EPSILON, x0)
    after = _fixed_batch_loss(trained, Prediction.EPSILON, x0)
    assert after < 0.7 * before
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 60 and "--steps 60" in (out / "README.md").read_text()


def test_a_digits_run_writes_a_unet_with_clipping(tmp_path):
    out = tmp_path / "digits-v"
    config = TrainConfig(
        data=Dataset.DIGITS, prediction=Prediction.V_PREDICTION, steps=2, seed=0, out=str(out), batch_size=4
    )
    train(config)
    model = UNet2DModel.from_pretrained(out, use_safetensors=True)
    assert model.config.sample_size == 16 and model.config.in_channels == 1
    scheduler = DDPMScheduler.from_pretrained(out)
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.clip_sample is True
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 16, 16), torch.tensor([0, 999])).sample.shape == (2, 1, 16, 16)


@pytest.mark.parametrize("prediction", list(Prediction))
def test_min_snr_weights_turn_every_target_into_the_same_x0_loss(prediction):
    schedule = training_schedule()
    generator = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(16, 2, generator=generator), torch.randn(16, 2, generator=generator)
    timestep = torch.randint(0, 1000, (16,), generator=generator)
    x_t = q_sample(schedule, x0, timestep, noise)
    target = training_target(prediction, schedule, x0, noise, timestep)
    output = target + 0.1 * torch.randn(target.shape, generator=generator)  # an imperfect prediction
    alpha_cumprod = torch.from_numpy(schedule.alphas_cumprod[timestep.numpy()])
    x0_error = (convert(output, prediction, Prediction.SAMPLE, x_t, alpha_cumprod) - x0).pow(2).mean(dim=1)
    snr = torch.from_numpy(schedule.snr[timestep.numpy()])
    expected = (snr.clamp(max=5.0) * x0_error).mean()
    weights = loss_weights(LossWeighting.MIN_SNR, prediction, schedule, timestep, gamma=5.0)
    torch.testing.assert_close(weighted_mse(output, target, weights).double(), expected, rtol=1e-3, atol=1e-6)
    uniform = loss_weights(LossWeighting.UNIFORM, prediction, schedule, timestep, gamma=5.0)
    torch.testing.assert_close(weighted_mse(output, target, uniform), torch.nn.functional.mse_loss(output, target))
