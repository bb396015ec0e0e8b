"""Latent and conditional checkpoints in the app: a prompted run, its frames, on-demand decoding, branches, exports.

The tiny Stable Diffusion and LDM checkpoints of tests/tiny_pipelines.py are loaded by repo id from the offline
Hugging Face cache, through the same handlers the page calls.
"""

from __future__ import annotations

import base64
import io

import pytest
import torch
from app_fixtures import FakeRequest, no_progress
from PIL import Image
from tiny_pipelines import LDM, SD_EPS, SD_V, tiny_repos  # noqa: F401 (tiny_repos: a fixture)

import explorer
from explorer.models.decoders import Decoder, linear_rgb
from explorer.models.loader import clear_cache
from ui import frames, sampling, state
from ui.controls import RunValues, ScheduleValues, StepValues
from ui.models import CONDITIONING_CONTROLS
from ui.pictures import drawing_of
from ui.runs import parse_run

PROMPT = "a red cube"


@pytest.fixture(scope="module")
def sd_run(tiny_repos):  # noqa: F811
    clear_cache()
    values = RunValues(typed=SD_EPS, prompt=PROMPT, guidance=3.0, steps=4, batch=2, seed=5)
    request = FakeRequest("latent-sd")
    outputs = list(
        sampling.run(values, StepValues(sampler="ddim"), ScheduleValues(), request=request, progress=no_progress)
    )
    return values, request, outputs


def test_a_prompted_run_is_the_apis_run_with_the_same_prompt(sd_run):
    values, request, _outputs = sd_run
    stored = state.stored_run(request)
    denoiser, _settings = parse_run(values, StepValues(sampler="ddim"), ScheduleValues())
    assert denoiser.conditioning.prompt == PROMPT and denoiser.guidance_scale == 3.0
    reference = explorer.sample(
        explorer.load(SD_EPS),
        prompt=PROMPT,
        guidance_scale=3.0,
        sampler="ddim",
        num_inference_steps=4,
        batch_size=2,
        seed=5,
    )
    torch.testing.assert_close(stored.compact.samples, reference.samples.float(), rtol=1e-4, atol=1e-4)
    assert stored.values == values  # kept for its branches


def test_latent_frames_are_drawn_by_the_linear_projection_and_say_so(sd_run):
    _, request, outputs = sd_run
    stored = state.stored_run(request)
    drawing = drawing_of(stored.model)
    assert drawing.latent and drawing.used is Decoder.LINEAR
    payload = frames.payload(stored, 0)
    assert "linear latent→RGB projection" in payload["note"]
    x_t = stored.compact.view("x_t", 0)
    expected = linear_rgb(x_t.float(), drawing.model.family)  # [B, 3, h, w] in [−1, 1]
    strip = Image.open(io.BytesIO(base64.b64decode(payload["frames"]["0"].split(",", 1)[1]))).convert("RGB")
    first = torch.tensor(list(strip.getdata()), dtype=torch.float32).reshape(strip.height, strip.width, 3)
    h, w = x_t.shape[-2:]
    tile = first[:h, :w].permute(2, 0, 1) / 127.5 - 1  # the first sample's x_t, top-left of the first panel
    torch.testing.assert_close(tile, expected[0], atol=1.5 / 127.5, rtol=0)
    assert outputs[-1].picture is not None


def test_decode_this_frame_uses_the_models_own_decoder_and_caches(sd_run):
    _, request, _ = sd_run
    stored = state.stored_run(request)
    decoded = sampling.decode_frame(2, "exact", request=request)
    model = drawing_of(stored.model).model
    height = model.image_shape[1]
    assert decoded.height >= height  # full decoded size (two grids of the batch, labelled)
    assert sampling.decode_frame(2, "exact", request=request) is decoded  # cached
    x0 = stored.compact.view("x0", 1).float()
    exact = model.parts.decoder.decode(x0 / model.scaling_factor).sample.clamp(-1, 1)
    torch.testing.assert_close(model.decode(x0, Decoder.EXACT), exact, atol=1e-5, rtol=0)
    with pytest.raises(Exception, match="decoder must be one of"):
        sampling.decode_frame(2, "jpeg", request=request)


def test_a_branch_keeps_the_runs_prompt(sd_run):
    values, request, _ = sd_run
    list(sampling.branch(2, StepValues(sampler="ddim"), ScheduleValues(), None, request=request, progress=no_progress))
    runs = state.session_runs(request)
    run, branched = runs.run.compact, runs.branch.compact
    # the same settings from frame 2 on the same noise: the branch retraces the run, prompt included
    torch.testing.assert_close(branched.samples, run.samples, rtol=1e-4, atol=1e-4)
    assert runs.branch.values == values


def test_a_branch_with_another_guidance_scale_applies_it_and_says_so(sd_run):
    from ui import branches

    values, request, _ = sd_run  # guided at w = 3
    step = StepValues(sampler="ddim")
    list(sampling.branch(2, step, ScheduleValues(), None, 6.0, request=request, progress=no_progress))
    session = state.session_runs(request)
    run, branched = session.run.compact, session.branch.compact
    assert session.branch.values.guidance == 6.0 and session.run.values == values
    assert "guidance scale 6 (run: 3)" in branches.branch_note(session)
    assert torch.equal(branched.x_t[:2], run.x_t[:2])  # frames 1 and 2 kept
    # the first recomputed step guides with w = 6: f_u + 6 (f_c − f_u), from the recorded conditional and
    # unconditional x̂₀ of that step (x̂₀ is linear in the model output at a fixed x_t)
    cond, uncond = branched.x0_conditional[1].float(), branched.x0_unconditional[1].float()
    torch.testing.assert_close(branched.x0[1].float(), uncond + 6.0 * (cond - uncond), atol=3e-2, rtol=1e-2)
    with pytest.raises(Exception, match="guidance scale"):
        list(sampling.branch(2, step, ScheduleValues(), None, 1.0, request=request, progress=no_progress))


def test_a_pixel_run_refuses_decoding_by_name():
    request = FakeRequest("latent-pixel")
    list(
        sampling.run(RunValues(steps=2, batch=1), StepValues(), ScheduleValues(), request=request, progress=no_progress)
    )
    with pytest.raises(Exception, match="pixel space"):
        sampling.decode_frame(1, "exact", request=request)


def test_an_ldm_run_draws_its_three_channel_latents_as_channels(tiny_repos):  # noqa: F811
    request = FakeRequest("latent-ldm")
    list(
        sampling.run(
            RunValues(typed=LDM, steps=2, batch=1),
            StepValues(),
            ScheduleValues(),
            request=request,
            progress=no_progress,
        )
    )
    stored = state.stored_run(request)
    assert drawing_of(stored.model).used is Decoder.CHANNELS
    assert "raw latent channels" in frames.payload(stored, 0)["note"]
    gif, mp4 = sampling.export(1, request=request)  # exact decoding, batched per frame
    assert gif.endswith(".gif") and mp4.endswith(".mp4")


def test_a_guided_run_is_sized_with_its_guidance_views(tiny_repos):  # noqa: F811
    from explorer.diffusion.trajectory import compact_nbytes
    from ui.estimate import is_guided

    guided, _ = parse_run(
        RunValues(typed=SD_EPS, prompt=PROMPT, guidance=3.0, steps=2, batch=1), StepValues(), ScheduleValues()
    )
    plain, _ = parse_run(
        RunValues(typed=SD_EPS, prompt=PROMPT, guidance=1.0, steps=2, batch=1), StepValues(), ScheduleValues()
    )
    assert is_guided(guided) and not is_guided(plain)
    shape = guided.sample_shape
    assert compact_nbytes(2, 1, shape, True) > compact_nbytes(2, 1, shape)


def test_the_parameterizations_view_compares_an_eps_and_a_v_checkpoint_on_the_last_run(sd_run):
    from explorer.diffusion.parameterization import Prediction
    from explorer.diffusion.teacher import teacher_force
    from ui import parameterizations
    from ui.runs import bind_model

    values, request, _ = sd_run
    figure, summary = parameterizations.compare_checkpoints(SD_EPS, SD_V, 3, 0, request=request)
    assert f"{SD_EPS} (epsilon)" in summary and f"{SD_V} (v_prediction)" in summary
    # the same numbers as teacher forcing the two bound checkpoints on the run's final latents, done by hand
    run = state.session_runs(request).run
    models = [bind_model(explorer.load(ref), values) for ref in (SD_EPS, SD_V)]
    assert [m.prediction for m in models] == [Prediction.EPSILON, Prediction.V_PREDICTION]
    expected = teacher_force(models, x0=run.compact.samples[:8], timesteps=[0, 500, 999], seed=0)
    v_errors = [float(torch.tensor(m.v_mse).nanmean()) for m in expected.models]
    assert all(f"{error:.4g}" in summary for error in v_errors)
    assert figure is not None
    with pytest.raises(Exception, match="checkpoint 1"):
        parameterizations.compare_checkpoints("x" * 300, SD_V, 3, 0, request=request)
    with pytest.raises(Exception, match="samples"):
        parameterizations.compare_checkpoints(LDM, SD_V, 3, 0, request=request)  # another latent space


def test_after_a_run_the_model_box_names_what_loaded_and_shows_only_its_controls(sd_run):
    """A typed Hub id is unknown until it loads (every conditioning control shown); once it ran, the line names its
    family, prediction, scheduler class and T read from its configs, and the class label is hidden."""
    from explorer.models.loader import loaded
    from ui.model_box import model_changed

    said = model_changed("digits-eps", SD_EPS)
    line = said.line
    updates = said.updates()
    model = loaded(SD_EPS, dtype=torch.float32)
    assert model is not None and line.startswith(f"`{SD_EPS}` (loaded): Stable Diffusion")
    config = model.scheduler_config  # what the checkpoint's own files say, read back independently
    assert f"· {config['_class_name']} ·" in line and f"T = {config['num_train_timesteps']}" in line
    assert f"· {config.get('prediction_type', 'epsilon')} ·" in line
    shown = {name for name in CONDITIONING_CONTROLS if updates[name]["visible"]}
    assert updates["box"].visible is True and "class_label" not in shown and {"prompt", "guidance"} <= shown
    assert shown == said.shown
    unknown = model_changed("digits-eps", "someone/not-loaded-yet")  # before a load: everything, and says so
    assert "read from its configs when it loads" in unknown.line and unknown.shown == set(CONDITIONING_CONTROLS)
