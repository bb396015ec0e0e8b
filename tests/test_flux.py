"""FLUX.1 against diffusers' FluxPipeline on tiny offline checkpoints in the real layout, schnell-like (no guidance
embedding, static shift 1) and dev-like (embedded guidance, dynamic shift): the packed-patch flow model runs through
the explorer's VP machinery at equal SNR and every step equals the pipeline's."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from test_hub import FakeHub, pickle_payload, write_json
from test_latent_models import copy_repo, one_sentence
from tiny_pipelines import FLUX_DEV, FLUX_SCHNELL, flux_repos  # noqa: F401 (flux_repos: a fixture)
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

import explorer
from explorer.models import loader as loader_module
from explorer.models.errors import CheckpointError, CheckpointProblem
from explorer.models.pipelines import Family

STEPS = 4
PROMPT = "a lighthouse at dusk"
SIDE = 8  # latent side of the runs (16 packed tokens); the pipeline's height = SIDE × the VAE's factor 2
TOLERANCE = {"rtol": 1e-4, "atol": 5e-5}


def flux_pipeline(snapshot) -> FluxPipeline:
    pipe = FluxPipeline(
        transformer=FluxTransformer2DModel.from_pretrained(snapshot / "transformer"),
        vae=AutoencoderKL.from_pretrained(snapshot / "vae"),
        text_encoder=CLIPTextModel.from_pretrained(snapshot / "text_encoder"),
        text_encoder_2=T5EncoderModel.from_pretrained(snapshot / "text_encoder_2"),
        tokenizer=CLIPTokenizer.from_pretrained(snapshot / "tokenizer"),
        tokenizer_2=T5TokenizerFast.from_pretrained(snapshot / "tokenizer_2"),
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(snapshot / "scheduler"),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] → [B, (h/2)(w/2), 4C], by diffusers' own packing."""
    b, c, h, w = latents.shape
    return FluxPipeline._pack_latents(latents, b, c, h, w)


def unpack(tokens: torch.Tensor, side: int) -> torch.Tensor:
    """The inverse, by diffusers' own unpacking (its arguments are pixel sizes and the VAE factor 2)."""
    return FluxPipeline._unpack_latents(tokens, side * 2, side * 2, 2)


def test_flux_loads_as_a_flow_model_on_packed_latents(flux_repos):  # noqa: F811
    schnell, dev = explorer.load(FLUX_SCHNELL, device="cpu"), explorer.load(FLUX_DEV, device="cpu")
    for model in (schnell, dev):
        assert model.family is Family.FLUX and model.prediction is explorer.Prediction.FLOW
        assert model.sample_shape == (16, 128, 128) and model.image_shape == (3, 256, 256)  # default_sample_size 128
        assert len(model.parts.text_encoders) == 2 and model.default_steps == 28
        assert model.scaling_factor == pytest.approx(0.3611) and model.shift_factor == pytest.approx(0.1159)
    assert schnell.guidance_scale == 1.0 and dev.guidance_scale == 3.5  # FluxPipeline's default, embedded
    with pytest.raises(ValueError, match="latent"):
        dev.resized(7, 8)


@pytest.mark.parametrize("repo", [FLUX_SCHNELL, FLUX_DEV])
def test_flux_embeddings_are_the_pipelines(flux_repos, repo):  # noqa: F811
    bound = explorer.load(repo, device="cpu").condition(explorer.Conditioning(prompt=PROMPT))
    with torch.no_grad():  # as FluxPipeline.__call__ runs it (with gradients on, SDPA takes another CPU kernel)
        embeds, pooled, text_ids = flux_pipeline(flux_repos[repo]).encode_prompt(PROMPT, None, device="cpu")
    mine = bound.embeddings()
    assert embeds.shape == (1, 512, 32) and not text_ids.any()
    torch.testing.assert_close(mine["conditional"], embeds)
    torch.testing.assert_close(mine["pooled"], pooled)


@pytest.mark.parametrize(("repo", "side"), [(FLUX_SCHNELL, 8), (FLUX_DEV, 8), (FLUX_DEV, 64), (FLUX_DEV, 128)])
def test_flux_sigmas_equal_the_pipelines_dynamic_shift_included(flux_repos, repo, side):  # noqa: F811
    """FluxPipeline's grid: linspace(1, 1/n, n) shifted by the scheduler, dev's μ from (side/2)² packed tokens."""
    pipe = flux_pipeline(flux_repos[repo])
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def callback(pipe, index, timestep, tensors):
        seen.append((pipe.scheduler.sigmas.clone(), pipe.scheduler.timesteps.clone()))
        return tensors

    pipe.transformer.forward = lambda hidden_states, **_: (torch.zeros_like(hidden_states),)  # only the grid matters
    pipe(
        PROMPT,
        num_inference_steps=STEPS,
        height=2 * side,
        width=2 * side,
        output_type="latent",
        callback_on_step_end=callback,
    )
    sigmas, timesteps = seen[0]
    grid = explorer.load(repo, device="cpu").resized(side, side).pipeline_sigmas(STEPS)
    torch.testing.assert_close(torch.from_numpy(grid.sigmas).float(), sigmas, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(torch.from_numpy(grid.timesteps).float(), timesteps, rtol=1e-6, atol=1e-4)
    if repo == FLUX_DEV:  # the dynamic shift: e^μ / (e^μ + 1/σ − 1), μ = 0.5 + 0.65 (L − 256) / 3840
        mu = 0.5 + 0.65 * ((side // 2) ** 2 - 256) / 3840
        linear = torch.linspace(1, 1 / STEPS, STEPS, dtype=torch.float64)
        expected = math.exp(mu) / (math.exp(mu) + 1 / linear - 1)
        torch.testing.assert_close(torch.from_numpy(grid.sigmas[:-1]), expected)
    else:  # schnell: shift 1, the linear grid itself
        torch.testing.assert_close(grid.sigmas[:-1].tolist(), torch.linspace(1, 1 / STEPS, STEPS).tolist())


@pytest.mark.parametrize(("repo", "guidance"), [(FLUX_SCHNELL, None), (FLUX_DEV, 1.0), (FLUX_DEV, 4.0)])
def test_flux_steps_equal_the_pipelines_and_initial_noise_replays_the_run(flux_repos, repo, guidance):  # noqa: F811
    """DDIM (η = 0) on the VP schedule of equal SNR at the pipeline's σ grid is its flow Euler; dev's guidance is an
    input of its transformer (one pass per step, no unconditional batch)."""
    model = explorer.load(repo, device="cpu").resized(SIDE, SIDE)
    grid = model.pipeline_sigmas(STEPS).sigmas
    options = {} if guidance is None else {"guidance_scale": guidance}
    run = explorer.sample(
        model.on_sigmas(grid[:-1]), prompt=PROMPT, sampler="ddim", eta=0.0, num_inference_steps=STEPS, seed=3, **options
    )
    recorded: list[torch.Tensor] = []

    def callback(pipe, index, timestep, tensors):
        recorded.append(unpack(tensors["latents"], SIDE))
        return tensors

    pipe = flux_pipeline(flux_repos[repo])
    final = pipe(
        PROMPT,
        num_inference_steps=STEPS,
        guidance_scale=3.5 if guidance is None else guidance,  # schnell: ignored by the pipeline (no guidance input)
        latents=pack(run.initial_noise),
        height=model.image_shape[1],
        width=model.image_shape[2],
        output_type="latent",
        callback_on_step_end=callback,
    ).images
    torch.testing.assert_close(run.x_T, run.initial_noise)  # σ = 1 first: the VP x_T is the unit Gaussian itself
    assert len(recorded) == len(run) == STEPS
    for step, latents, sigma in zip(run, recorded, grid[1:], strict=True):
        c = math.sqrt((1 - sigma) ** 2 + sigma**2)  # x_σ = c(σ) x_VP
        torch.testing.assert_close(step.x_prev * c, latents, **TOLERANCE)
        assert step.unconditional is None and step.conditional is not None
    torch.testing.assert_close(unpack(final, SIDE), run.samples, **TOLERANCE)  # σ = 0 last: c = 1


def test_dev_guidance_changes_the_prediction_and_schnell_refuses_it(flux_repos):  # noqa: F811
    dev = explorer.load(FLUX_DEV, device="cpu").resized(SIDE, SIDE)
    x = torch.randn(1, *dev.sample_shape, generator=torch.Generator().manual_seed(0))
    low, high = (dev.condition(explorer.Conditioning(prompt=PROMPT, guidance_scale=w))(x, 500) for w in (1.0, 6.0))
    assert not torch.allclose(low, high)
    schnell = explorer.load(FLUX_SCHNELL, device="cpu")
    for conditioning, field in [
        (explorer.Conditioning(prompt=PROMPT, guidance_scale=2.0), "guidance_scale"),
        (explorer.Conditioning(prompt=PROMPT, negative_prompt="fog"), "negative_prompt"),
        (explorer.Conditioning(prompt=PROMPT, guidance_rescale=0.5), "guidance_rescale"),
    ]:
        with pytest.raises(ValueError, match=field):
            schnell.condition(conditioning)
    with pytest.raises(ValueError, match="negative_prompt"):
        dev.condition(explorer.Conditioning(prompt=PROMPT, negative_prompt="fog"))


def test_flux_decode_is_the_pipelines_vae_decode(flux_repos):  # noqa: F811
    model = explorer.load(FLUX_DEV, device="cpu").resized(SIDE, SIDE)
    latents = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    vae = AutoencoderKL.from_pretrained(flux_repos[FLUX_DEV] / "vae")
    with torch.no_grad():  # FluxPipeline: latents / scaling_factor + shift_factor, then vae.decode
        expected = vae.decode(latents / vae.config.scaling_factor + vae.config.shift_factor).sample.clamp(-1, 1)
    torch.testing.assert_close(model.decode(latents), expected, rtol=1e-4, atol=1e-5)
    assert model.decode(latents, "linear").shape == (2, 3, SIDE, SIDE)


@pytest.mark.parametrize(
    ("pipeline", "words"),
    [
        ("FluxFillPipeline", "masked image's latents"),
        ("FluxControlNetPipeline", "a FLUX ControlNet needs a second network"),
        ("FluxKontextPipeline", "edits an input image"),
    ],
)
def test_flux_variants_are_refused_in_one_sentence_and_their_payload_never_runs(
    flux_repos,  # noqa: F811
    tmp_path,
    monkeypatch,
    pipeline,
    words,
):
    marker = tmp_path / "payload-ran"
    snapshot = copy_repo(flux_repos[FLUX_DEV], "explorer-test/flux-variant")
    write_json(
        snapshot / "model_index.json", {"_class_name": pipeline, "transformer": ["diffusers", "FluxTransformer2DModel"]}
    )
    (snapshot / "transformer" / "diffusion_pytorch_model.bin").write_bytes(pickle_payload(marker))
    monkeypatch.setattr(loader_module, "load_pipeline", lambda *a, **k: pytest.fail("weights were loaded"))
    with pytest.raises(CheckpointError) as caught:
        explorer.load("explorer-test/flux-variant", device="cpu")
    assert caught.value.problem is CheckpointProblem.UNSUPPORTED and words in one_sentence(caught.value)
    assert not marker.exists()


def test_flux_without_its_t5_is_named_as_missing(flux_repos):  # noqa: F811
    snapshot = copy_repo(flux_repos[FLUX_SCHNELL], "explorer-test/flux-no-t5")
    index = json.loads((snapshot / "model_index.json").read_text())
    write_json(snapshot / "model_index.json", {**index, "text_encoder_2": [None, None], "tokenizer_2": [None, None]})
    with pytest.raises(CheckpointError) as caught:
        explorer.load("explorer-test/flux-no-t5", device="cpu")
    assert caught.value.problem is CheckpointProblem.MISSING_FILES
    assert "text_encoder_2, tokenizer_2" in one_sentence(caught.value)


def test_a_planted_pickle_beside_flux_safetensors_never_runs(flux_repos, tmp_path):  # noqa: F811
    marker = tmp_path / "payload-ran"
    snapshot = copy_repo(flux_repos[FLUX_SCHNELL], "explorer-test/flux-planted")
    for folder, name in (("transformer", "diffusion_pytorch_model.bin"), ("text_encoder_2", "pytorch_model.bin")):
        (snapshot / folder / name).write_bytes(pickle_payload(marker))
    model = explorer.load("explorer-test/flux-planted", device="cpu")
    assert model.family is Family.FLUX and not marker.exists()


def test_flux_runs_on_its_own_schedule_at_any_even_size(flux_repos):  # noqa: F811
    """Without binding the pipeline's grid, the model steps its training schedule: σ = i/T shifted by e^μ at its own
    size (dev's dynamic shift), so a resized model has another schedule."""
    dev = explorer.load(FLUX_DEV, device="cpu")
    small, large = dev.resized(4, 6), dev.resized(64, 64)
    a = torch.tensor(small.schedule.alphas_cumprod)
    mu = 0.5 + 0.65 * (2 * 3 - 256) / 3840  # 6 packed tokens
    train = torch.arange(1, 1001, dtype=torch.float64) / 1000
    torch.testing.assert_close(
        (1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt()), math.exp(mu) / (math.exp(mu) + 1 / train - 1)
    )
    assert (large.schedule.alphas_cumprod[:-1] < small.schedule.alphas_cumprod[:-1]).all()  # more shift: noisier
    run = explorer.sample(small, prompt=PROMPT, sampler="ddim", num_inference_steps=2, batch_size=2)
    assert run.samples.shape == (2, 16, 4, 6) and small.decode(run.samples).shape == (2, 3, 8, 12)


def test_the_catalogue_offers_flux_schnell_with_its_controls():
    from ui.models import conditioning_controls

    entry = next(entry for entry in explorer.catalogue() if entry.name == "black-forest-labs/FLUX.1-schnell")
    assert entry.family is Family.FLUX and entry.prediction is explorer.Prediction.FLOW
    assert entry.sample_shape == (16, 128, 128) and entry.num_parameters > 16e9
    assert conditioning_controls(entry.name) == {"prompt", "latent_size"}  # no guidance, no negative prompt


def flux_hub_repo(source, folder):
    """FLUX.1-schnell's repo as the Hub holds it: T5 in shards with an index, the single-file checkpoints at the root
    (flux1-schnell.safetensors, ae.safetensors), a SentencePiece model beside tokenizer.json, and a pickle."""
    shutil.copytree(source, folder)
    shutil.rmtree(folder / "text_encoder_2")
    T5EncoderModel.from_pretrained(source / "text_encoder_2").save_pretrained(
        folder / "text_encoder_2", safe_serialization=True, max_shard_size="40KB"
    )
    for name in (
        "flux1-schnell.safetensors",
        "ae.safetensors",
        "tokenizer_2/spiece.model",
        "text_encoder/pytorch_model.bin",
    ):
        (folder / name).write_bytes(b"never downloaded")
    return folder


def test_online_flux_downloads_only_what_it_loads_sized_first(flux_repos, tmp_path, monkeypatch):  # noqa: F811
    repo = flux_hub_repo(flux_repos[FLUX_SCHNELL], tmp_path / "repo")
    shards = sorted(p.name for p in (repo / "text_encoder_2").glob("model-*.safetensors"))
    assert len(shards) > 1
    hub = FakeHub(repo, tmp_path / "snapshots")
    hub.sizes = {"flux1-schnell.safetensors": 23 << 30, "ae.safetensors": 1 << 30}  # never counted: never loaded
    hub.install(monkeypatch)
    model = explorer.load("someone/flux-schnell", device="cpu")
    assert model.family is Family.FLUX and hub.info_calls == [(hub.sha, True)]  # sizes listed before the weights
    got = {p.relative_to(hub.destination / hub.sha).as_posix() for p in hub.destination.rglob("*") if p.is_file()}
    assert {f"text_encoder_2/{shard}" for shard in shards} | {"tokenizer_2/tokenizer.json"} <= got
    assert {"transformer/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"} <= got
    assert not got & {"flux1-schnell.safetensors", "ae.safetensors", "tokenizer_2/spiece.model"}
    assert not any(name.endswith(".bin") for name in got)


def test_online_an_oversize_flux_is_refused_before_its_weights(flux_repos, tmp_path, monkeypatch):  # noqa: F811
    repo = flux_hub_repo(flux_repos[FLUX_SCHNELL], tmp_path / "repo")
    hub = FakeHub(repo, tmp_path / "snapshots")
    shard = next(p.name for p in (repo / "text_encoder_2").glob("model-*.safetensors"))
    hub.sizes = {"transformer/diffusion_pytorch_model.safetensors": 3 << 29, f"text_encoder_2/{shard}": 1 << 29}
    hub.install(monkeypatch)
    with pytest.raises(CheckpointError) as caught:
        explorer.load("someone/big-flux", device="cpu")
    assert caught.value.problem is CheckpointProblem.TOO_LARGE and "more than the 2.0 GiB" in one_sentence(caught.value)
    fetched = {p.name for p in hub.destination.rglob("*") if p.is_file()}
    assert not any(name.endswith(".safetensors") for name in fetched)  # configs and the shard index only
