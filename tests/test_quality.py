"""tools.quality, .metrics, .classifier and .model_card: the bundled checkpoints and their cards' figures."""

import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

from explorer.data import digits, ring, two_moons
from explorer.diffusion.parameterization import Prediction
from explorer.diffusion.schedules import Schedule
from explorer.models.refs import PRETRAINED_DIR
from tools.classifier import load_classifier
from tools.metrics import (
    CONFIDENCE_TARGET,
    ENERGY_RATIO_LIMIT,
    DigitsQuality,
    PointsQuality,
    energy_distance,
    frechet_distance,
    nearest_distance,
)
from tools.model_card import render_card
from tools.quality import MODEL_NAMES, ddpm_sample, evaluate, load_model, main, sample_shape
from tools.train import training_schedule

MAX_FOLDER_BYTES = 8 * 1024 * 1024
SUFFIX_PREDICTION = {"eps": Prediction.EPSILON, "x0": Prediction.SAMPLE, "v": Prediction.V_PREDICTION}
SUFFIX_PREDICTION["flow"] = Prediction.FLOW
DIGITS_MODELS = [name for name in MODEL_NAMES if name.startswith("digits")]
POINT_MODELS = [name for name in MODEL_NAMES if not name.startswith("digits")]
CONFIDENCE_TOLERANCE = 0.1  # 64 samples vs the card's 1,000: the standard error of the mean is ≈ 0.03
RATIO_TOLERANCE = 2.0  # 500 samples vs the card's 2,000: a fresh ratio may be up to twice the card's


# --- metrics ------------------------------------------------------------------------------------------


def test_frechet_distance_is_zero_for_one_set_and_the_squared_shift_for_a_shifted_copy():
    a = np.random.default_rng(0).normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(5.0, rel=1e-6)


def test_energy_distance_is_zero_for_one_set_and_grows_with_a_shift():
    x = ring(500, 0)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    near, far = energy_distance(x, ring(500, 1)), energy_distance(x, ring(500, 1) + 0.5)
    assert 0 < near < far
    assert energy_distance(x, two_moons(500, 1)) > 5 * near


def test_nearest_distance_finds_exact_copies():
    references = torch.randn(20, 3, 4)
    queries = torch.cat([references[:2], references[:1] + 1.0])
    distances = nearest_distance(queries, references)
    assert distances[:2].tolist() == [0.0, 0.0] and distances[2] > 0


def test_classifier_recognises_held_out_digits():
    classifier = load_classifier()
    held_out = digits("held_out")
    with torch.no_grad():
        logits = classifier(held_out.images)
        features = classifier.features(held_out.images[:8])
    assert logits.shape == (1000, 10) and features.shape == (8, 128)
    assert float((logits.argmax(dim=1) == held_out.labels).double().mean()) >= 0.95


# --- the bundled checkpoints --------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bundled_folder_has_the_files_and_loads(name):
    folder = PRETRAINED_DIR / name
    for file in ("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json", "README.md"):
        assert (folder / file).is_file(), f"{name}/{file}"
    assert sum(path.stat().st_size for path in folder.iterdir()) <= MAX_FOLDER_BYTES
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))

    prediction = SUFFIX_PREDICTION[name.split("-")[1]]
    if prediction is Prediction.FLOW:  # rectified flow on σ = t/T, unshifted: the VP schedule of equal SNR
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(folder)
        assert scheduler.config.shift == 1.0 and not scheduler.config.use_dynamic_shifting
        config = {"_class_name": "FlowMatchEulerDiscreteScheduler", **scheduler.config}
        a = Schedule.from_diffusers_config(config).alphas_cumprod
        sigma = np.arange(1, 1001) / 1000
        np.testing.assert_allclose(a, (1 - sigma) ** 2 / ((1 - sigma) ** 2 + sigma**2), rtol=1e-9, atol=1e-15)
    else:
        scheduler = DDPMScheduler.from_pretrained(folder)
        assert scheduler.config.prediction_type == prediction.value
        assert scheduler.config.variance_type == "fixed_small"
        assert scheduler.config.clip_sample is name.startswith("digits")
        schedule = Schedule.from_diffusers_config(dict(scheduler.config))
        np.testing.assert_allclose(schedule.betas, training_schedule().betas)

    model = load_model(folder)
    shape = (1, 16, 16) if name.startswith("digits") else (2,)
    assert sample_shape(model) == shape
    assert next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        out = model(torch.zeros(3, *shape), torch.tensor([0, 500, 999]))
    out = out.sample if hasattr(out, "sample") else out
    assert out.shape == (3, *shape) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_card_shows_its_measured_quality(name):
    folder = PRETRAINED_DIR / name
    card = (folder / "README.md").read_text()
    assert card == render_card(folder)  # the card is what the quality script writes, not hand-edited
    record = json.loads((folder / "quality.json").read_text())
    training = json.loads((folder / "training.json").read_text())
    assert f"--steps {training['steps']}" in card and "python -m tools.train" in card
    if name.startswith("digits"):
        assert f"{record['quality']['mean_confidence']:.3f}" in card
        quality = DigitsQuality(**{**record["quality"], "class_fractions": tuple(record["quality"]["class_fractions"])})
    else:
        assert f"{record['quality']['ratio']:.2f}" in card
        quality = PointsQuality(**record["quality"])
    assert record["passes"] is quality.passes
    assert f"Targets met: **{'yes' if quality.passes else 'no'}**" in card


# --- the cards' figures, reproduced on smaller samples --------------------------------------------------
# Each test first checks that a fresh, smaller measurement agrees with the card, then that the model meets its
# target; a model whose card records a missed target is reported as an expected failure, with the figures.


@pytest.mark.parametrize("name", POINT_MODELS)
def test_point_model_reproduces_its_energy_distance_ratio(name):
    folder = PRETRAINED_DIR / name
    card = json.loads((folder / "quality.json").read_text())
    quality = evaluate(folder, samples=500, steps=1000, seed=1, batch_size=500)
    assert quality.ratio <= max(ENERGY_RATIO_LIMIT, RATIO_TOLERANCE * card["quality"]["ratio"])
    if not card["passes"]:
        pytest.xfail(f"{name}: the card records ratio {card['quality']['ratio']:.2f} > {ENERGY_RATIO_LIMIT:g}")
    assert quality.ratio <= ENERGY_RATIO_LIMIT


@pytest.mark.slow
@pytest.mark.parametrize("name", DIGITS_MODELS)
def test_digits_model_reproduces_its_confidence(name):
    folder = PRETRAINED_DIR / name
    card = json.loads((folder / "quality.json").read_text())
    quality = evaluate(folder, samples=64, steps=1000, seed=1, batch_size=64)
    assert abs(quality.mean_confidence - card["quality"]["mean_confidence"]) <= CONFIDENCE_TOLERANCE
    if not card["passes"]:
        pytest.xfail(f"{name}: the card records mean confidence {card['quality']['mean_confidence']:.3f}")
    assert quality.mean_confidence >= CONFIDENCE_TARGET - CONFIDENCE_TOLERANCE


# --- sampling and the command line ----------------------------------------------------------------------


def test_sampling_is_chunked_seeded_and_cached(tmp_path):
    folder = PRETRAINED_DIR / "moons-eps"
    first = ddpm_sample(folder, 6, steps=5, seed=3, batch_size=3, cache=tmp_path)
    assert first.shape == (6, 2) and torch.isfinite(first).all()
    assert len(list(tmp_path.glob("*.npy"))) == 2
    torch.testing.assert_close(ddpm_sample(folder, 3, steps=5, seed=3, batch_size=3), first[:3])
    torch.testing.assert_close(ddpm_sample(folder, 6, steps=5, seed=3, batch_size=3, cache=tmp_path), first)
    assert not torch.equal(ddpm_sample(folder, 3, steps=5, seed=4, batch_size=3), first[:3])


def test_a_flow_model_samples_in_chunks_each_on_a_fresh_scheduler_loop():
    """The flow scheduler counts its steps: every chunk runs the whole σ grid again, the same as alone."""
    folder = PRETRAINED_DIR / "moons-flow"
    both = ddpm_sample(folder, 6, steps=10, seed=3, batch_size=3)
    assert both.shape == (6, 2) and torch.isfinite(both).all()
    torch.testing.assert_close(ddpm_sample(folder, 3, steps=10, seed=3, batch_size=3), both[:3])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "moons-eps.bin"], "--model must be one of"),
        (["--model", "moons-eps", "--samples", "1"], r"--samples must be an integer in \[2, "),
        (["--model", "moons-eps", "--steps", "1001"], r"--steps must be an integer in \[1, 1000\]"),
    ],
)
def test_command_line_refuses_bad_values(argv, message):
    with pytest.raises(ValueError, match=message):
        main(argv)
