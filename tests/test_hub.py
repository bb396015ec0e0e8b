"""Loading checkpoints offline: a Hugging Face cache laid out as the Hub lays it out, random-weight models.

conftest.py points HF_HOME at a temporary folder and sets HF_HUB_OFFLINE=1 before huggingface_hub is imported.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import huggingface_hub
import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from huggingface_hub import constants, errors

from explorer import Prediction, Schedule, VarianceType
from explorer.models import hub as hub_module
from explorer.models import refs as refs_module
from explorer.models.cache import ModelCache
from explorer.models.checkpoint import variance_type_of
from explorer.models.device import pick_device, weight_dtype
from explorer.models.errors import CheckpointError, CheckpointProblem
from explorer.models.hub import hub_error
from explorer.models.loader import clear_cache, load
from explorer.models.refs import check_repo_id

DATA = Path(__file__).parent / "data"
TINY_UNET = {
    "block_out_channels": (32, 64),
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 16,
}


def cache_repo(repo_id: str) -> Path:
    """An empty snapshot folder for `repo_id` in the offline Hub cache, with refs/main pointing at it."""
    sha = hashlib.sha1(repo_id.encode()).hexdigest()
    storage = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(sha)
    snapshot = storage / "snapshots" / sha
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def tiny_unet(seed: int = 0, **overrides) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(**{**TINY_UNET, **overrides}).eval()


def pickle_payload(marker: Path) -> bytes:
    """A pickle whose loading would create `marker` (what a malicious .bin does, but harmless)."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Payload())


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def cifar_unet() -> UNet2DModel:
    """A random-weight UNet with google/ddpm-cifar10-32's published config, cached flat under its repo id."""
    torch.manual_seed(0)
    unet = UNet2DModel.from_config(json.loads((DATA / "ddpm-cifar10-32.unet-config.json").read_text())).eval()
    snapshot = cache_repo("google/ddpm-cifar10-32")
    unet.save_pretrained(snapshot, safe_serialization=True)
    scheduler = DDPMScheduler.from_config(json.loads((DATA / "ddpm-cifar10-32.scheduler-config.json").read_text()))
    scheduler.save_pretrained(snapshot)
    return unet


@pytest.fixture(scope="module")
def pipeline_unet() -> UNet2DModel:
    """A small v-prediction UNet in the pipeline layout (model_index.json, unet/, scheduler/)."""
    unet = tiny_unet(seed=1)
    snapshot = cache_repo("explorer-test/pipeline-v")
    unet.save_pretrained(snapshot / "unet", safe_serialization=True)
    DDPMScheduler(
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=False,
        variance_type="fixed_small",
    ).save_pretrained(snapshot / "scheduler")
    index = {
        "_class_name": "DDPMPipeline",
        "unet": ["diffusers", "UNet2DModel"],
        "scheduler": ["diffusers", "DDPMScheduler"],
    }
    write_json(snapshot / "model_index.json", index)
    return unet


# --- Hub checkpoints from the offline cache ---------------------------------------------------------


def test_flat_layout_loads_with_the_checkpoints_own_settings(cifar_unet):
    denoiser = load("google/ddpm-cifar10-32", device="cpu")
    assert denoiser.prediction is Prediction.EPSILON
    assert denoiser.sample_shape == (3, 32, 32)
    assert denoiser.resolution == 32
    assert denoiser.variance_type is VarianceType.FIXED_LARGE
    assert denoiser.clip_sample is True
    assert denoiser.learned_variance is False
    assert denoiser.num_parameters == sum(p.numel() for p in cifar_unet.parameters()) == 35_746_307
    expected = Schedule.from_name("linear", 1000)
    for table in ("betas", "alphas_cumprod", "posterior_variance", "posterior_mean_coef_x0"):
        np.testing.assert_allclose(getattr(denoiser.schedule, table), getattr(expected, table), rtol=1e-12, atol=0)


def test_flat_layout_forward_equals_the_unets_own(cifar_unet):
    denoiser = load("google/ddpm-cifar10-32", device="cpu")
    x_t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    timesteps = torch.tensor([0, 999])
    with torch.no_grad():
        expected = cifar_unet(x_t, timesteps).sample
    output = denoiser(x_t, timesteps)
    assert output.shape == (2, 3, 32, 32) and output.dtype == torch.float32
    torch.testing.assert_close(output, expected, rtol=0, atol=0)


def test_pipeline_layout_loads_v_prediction(pipeline_unet):
    denoiser = load("explorer-test/pipeline-v", device="cpu")
    assert denoiser.prediction is Prediction.V_PREDICTION
    assert denoiser.sample_shape == (3, 16, 16)
    assert denoiser.clip_sample is False
    assert denoiser.variance_type is VarianceType.FIXED_SMALL
    np.testing.assert_allclose(denoiser.schedule.betas, Schedule.from_name("cosine").betas, rtol=1e-12)
    x_t = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = pipeline_unet(x_t, torch.tensor([5, 5, 5])).sample
    torch.testing.assert_close(denoiser(x_t, 5), expected, rtol=0, atol=0)  # a scalar is expanded to [B]
    # float64 input gives float64 output; bad shapes and timesteps are refused
    assert denoiser(x_t.double(), 5).dtype == torch.float64
    with pytest.raises(ValueError, match="shape"):
        denoiser(torch.zeros(1, 3, 8, 8), 5)
    with pytest.raises(ValueError, match="timestep"):
        denoiser(x_t, 1000)


def test_learned_variance_model_splits_its_output():
    unet = tiny_unet(seed=2, out_channels=6)
    snapshot = cache_repo("explorer-test/learned-range")
    unet.save_pretrained(snapshot, safe_serialization=True)
    DDPMScheduler(variance_type="learned_range").save_pretrained(snapshot)
    denoiser = load("explorer-test/learned-range", device="cpu")
    assert denoiser.learned_variance is True
    assert denoiser.variance_type is VarianceType.LEARNED_RANGE
    assert denoiser.sample_shape == (3, 16, 16)
    x_t = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        raw = unet(x_t, torch.tensor([7, 7])).sample  # [2, 6, 16, 16]
    output = denoiser.predict(x_t, 7)
    torch.testing.assert_close(output.prediction, raw[:, :3], rtol=0, atol=0)
    torch.testing.assert_close(output.variance_values, raw[:, 3:], rtol=0, atol=0)
    torch.testing.assert_close(denoiser(x_t, 7), raw[:, :3], rtol=0, atol=0)


def test_weights_load_in_the_requested_dtype(pipeline_unet):
    denoiser = load("explorer-test/pipeline-v", device="cpu", dtype="bfloat16")
    assert denoiser.dtype == torch.bfloat16
    output = denoiser(torch.randn(1, 3, 16, 16), 3)
    assert output.dtype == torch.float32  # float32 or better at the boundary


def test_point_mlp_loads_bundled_and_from_the_hub(tmp_path, monkeypatch):
    from explorer.models.mlp import PointDenoiserMLP

    torch.manual_seed(3)
    mlp = PointDenoiserMLP(hidden_dim=32, num_hidden_layers=2, time_embed_dim=16).eval()
    monkeypatch.setattr(refs_module, "PRETRAINED_DIR", tmp_path)
    for folder in (tmp_path / "moons-x0", cache_repo("explorer-test/moons-x0")):
        mlp.save_pretrained(folder, safe_serialization=True)
        DDPMScheduler(prediction_type="sample", beta_schedule="squaredcos_cap_v2", clip_sample=False).save_pretrained(
            folder
        )
    x_t = torch.randn(5, 2, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = mlp(x_t, torch.full((5,), 123))
    for ref in ("moons-x0", "explorer-test/moons-x0"):
        denoiser = load(ref, device="cpu")
        assert denoiser.sample_shape == (2,) and denoiser.resolution is None
        assert denoiser.prediction is Prediction.SAMPLE and denoiser.clip_sample is False
        assert denoiser.num_parameters == sum(p.numel() for p in mlp.parameters())
        torch.testing.assert_close(denoiser(x_t, 123), expected, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_load_matches_cpu_and_returns_on_the_callers_device(pipeline_unet):
    cpu = load("explorer-test/pipeline-v", device="cpu")
    gpu = load("explorer-test/pipeline-v", device="cuda")
    assert gpu.device.type == "cuda" and gpu is not cpu
    x_t = torch.randn(2, 3, 16, 16)
    output = gpu(x_t, 500)
    assert output.device == x_t.device and output.dtype == torch.float32
    torch.testing.assert_close(output, cpu(x_t, 500), rtol=1e-3, atol=1e-3)


# --- safety -----------------------------------------------------------------------------------------


def test_pickle_only_repo_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    snapshot = cache_repo("explorer-test/pickle-only")
    tiny_unet().save_config(snapshot)
    DDPMScheduler().save_pretrained(snapshot)
    (snapshot / "diffusion_pytorch_model.bin").write_bytes(pickle_payload(marker))
    with pytest.raises(CheckpointError, match="pickled weights") as caught:
        load("explorer-test/pickle-only", device="cpu")
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY
    assert not marker.exists()


def test_safetensors_win_over_a_planted_pickle(tmp_path):
    marker = tmp_path / "payload-ran"
    snapshot = cache_repo("explorer-test/both-formats")
    tiny_unet().save_pretrained(snapshot, safe_serialization=True)
    DDPMScheduler().save_pretrained(snapshot)
    (snapshot / "diffusion_pytorch_model.bin").write_bytes(pickle_payload(marker))
    assert load("explorer-test/both-formats", device="cpu").sample_shape == (3, 16, 16)
    assert not marker.exists()


class FakeHub:
    """Stands in for the Hub when online: serves a source folder through `snapshot_download`'s filter, and lists
    its files with their sizes through `HfApi.model_info` (`sizes` overrides a file's listed size)."""

    def __init__(self, source: Path, destination: Path) -> None:
        self.source, self.destination, self.calls = source, destination, []
        self.sha = "c" * 40
        self.sizes: dict[str, int] = {}
        self.info_calls: list[tuple[str | None, bool]] = []

    def snapshot_download(self, repo_id: str, *, revision: str | None = None, allow_patterns=None) -> str:
        self.calls.append((revision, list(allow_patterns)))
        folder = self.destination / self.sha
        for path in self.source.rglob("*"):
            relative = path.relative_to(self.source).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(relative, p) for p in allow_patterns):
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, folder / relative)
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    def model_info(self, repo_id: str, *, revision: str | None = None, files_metadata: bool = False, **_):
        self.info_calls.append((revision, files_metadata))
        files = sorted(p.relative_to(self.source).as_posix() for p in self.source.rglob("*") if p.is_file())
        sizes = {name: self.sizes.get(name, (self.source / name).stat().st_size) for name in files}
        siblings = [{"rfilename": name, **({"size": sizes[name]} if files_metadata else {})} for name in files]
        return huggingface_hub.hf_api.ModelInfo(id=repo_id, sha=self.sha, siblings=siblings)

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda _, *a, **k: self.model_info(*a, **k))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_online_downloads_only_json_then_the_models_safetensors(tmp_path, monkeypatch, pipeline_unet):
    repo = tmp_path / "repo"
    pipeline_unet.save_pretrained(repo / "unet", safe_serialization=True)
    DDPMScheduler().save_pretrained(repo / "scheduler")
    write_json(repo / "model_index.json", {"unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "X"]})
    (repo / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"never downloaded")
    (repo / "README.md").write_text("never downloaded")
    hub = FakeHub(repo, tmp_path / "snapshots")
    hub.install(monkeypatch)
    denoiser = load("someone/online-model", device="cpu", revision="main")
    assert denoiser.sample_shape == (3, 16, 16)
    (configs_revision, config_patterns), (weights_revision, weight_patterns) = hub.calls
    assert configs_revision == "main" and weights_revision == hub.sha  # the weights come from the same commit
    assert hub.info_calls == [(hub.sha, True)]  # names and sizes listed before any weights are downloaded
    assert all(p.endswith(".json") for p in config_patterns)
    assert all(p.startswith("unet/") and p.endswith((".safetensors", ".json")) for p in weight_patterns)
    downloaded = {p.name for p in (tmp_path / "snapshots").rglob("*") if p.is_file()}
    assert "diffusion_pytorch_model.bin" not in downloaded and "README.md" not in downloaded


def test_online_a_text_conditioned_unet_outside_a_pipeline_is_refused_before_its_weights(tmp_path, monkeypatch):
    """Text-conditioned checkpoints load as StableDiffusionPipeline repos (tests/test_latent_models.py); a
    model_index.json that names no pipeline class is read as a pixel checkpoint, and its text encoder refused."""
    repo = tmp_path / "repo"
    write_json(repo / "model_index.json", {"unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["t", "C"]})
    write_json(repo / "unet" / "config.json", {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 768})
    (repo / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"large")
    hub = FakeHub(repo, tmp_path / "snapshots")
    hub.install(monkeypatch)
    with pytest.raises(CheckpointError, match="text-conditioned checkpoints load only in the Stable Diffusion"):
        load("someone/text-model", device="cpu")
    assert len(hub.calls) == 1  # configs only


def test_online_pickle_only_repo_is_named_as_such(tmp_path, monkeypatch):
    marker = tmp_path / "payload-ran"
    repo = tmp_path / "repo"
    tiny_unet().save_config(repo)
    DDPMScheduler().save_pretrained(repo)
    (repo / "diffusion_pytorch_model.bin").write_bytes(pickle_payload(marker))
    FakeHub(repo, tmp_path / "snapshots").install(monkeypatch)
    with pytest.raises(CheckpointError, match=r"pickled weights \(diffusion_pytorch_model.bin\)") as caught:
        load("someone/pickle-model", device="cpu")
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY
    assert not marker.exists()


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (lambda: _http_error(errors.RepositoryNotFoundError, 401), CheckpointProblem.NOT_FOUND),
        (lambda: _http_error(errors.GatedRepoError, 403), CheckpointProblem.GATED),
        (lambda: _http_error(errors.RevisionNotFoundError, 404), CheckpointProblem.REVISION_NOT_FOUND),
    ],
)
def test_online_hub_errors_reach_the_caller_as_checkpoint_errors(error, problem, monkeypatch):
    def refuse(*args, **kwargs):
        raise error()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(CheckpointError) as caught:
        load("someone/unreachable", device="cpu", revision="v1")
    assert caught.value.problem is problem and "someone/unreachable" in str(caught.value)


BAD_IDS = ["/etc", "../x", "a/b/c", "", "a/" + "b" * 95, "bad id!", "~", "/", "..", "./x", "a/../b", "a//b", "x/.git"]


def spy_on_file_access(monkeypatch) -> list[str]:
    """Make the filesystem and Hub entry points record and fail when touched; return the record."""
    touched: list[str] = []

    def spy(name):
        def refuse(*args, **kwargs):
            touched.append(name)
            raise AssertionError(f"{name} was touched")

        return refuse

    for module, names in (
        (os, ("stat", "lstat", "listdir", "scandir", "open")),
        (os.path, ("exists", "isdir", "isfile", "realpath", "expanduser")),
        (pathlib.Path, ("stat", "iterdir", "is_dir", "is_file", "exists", "resolve", "expanduser", "open")),
        (huggingface_hub, ("snapshot_download", "hf_hub_download")),
        (UNet2DModel, ("from_pretrained",)),
    ):
        for name in names:
            monkeypatch.setattr(module, name, spy(f"{getattr(module, '__name__', module)}.{name}"))
    return touched


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("allow_local", [False, True])
def test_bad_ids_are_refused_before_any_file_access(bad, allow_local, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/explorer")  # a hosted Space: local folders are never accepted
    touched = spy_on_file_access(monkeypatch)
    with pytest.raises(CheckpointError) as caught:
        load(bad, device="cpu", allow_local=allow_local)
    assert caught.value.problem in (CheckpointProblem.INVALID_REF, CheckpointProblem.LOCAL_REFUSED)
    assert isinstance(caught.value, ValueError)
    assert touched == []


def test_the_file_access_spy_catches_a_valid_id(monkeypatch):
    touched = spy_on_file_access(monkeypatch)
    with pytest.raises(AssertionError, match="was touched"):
        load("google/ddpm-cifar10-32", device="cpu")
    assert touched


@pytest.mark.parametrize("revision", ["../../etc", "/main", "a//b", "main/", "bad rev", ""])
def test_bad_revisions_are_refused(revision):
    with pytest.raises(CheckpointError, match="revision") as caught:
        load("google/ddpm-cifar10-32", revision=revision, device="cpu")
    assert caught.value.problem is CheckpointProblem.INVALID_REF


def test_a_valid_id_passes_both_checks():
    assert check_repo_id("google/ddpm-cifar10-32") == "google/ddpm-cifar10-32"


def test_local_folders_only_when_allowed_and_not_on_a_space(tmp_path, monkeypatch):
    folder = tmp_path / "my-model"
    tiny_unet().save_pretrained(folder, safe_serialization=True)
    DDPMScheduler(prediction_type="sample").save_pretrained(folder)
    with pytest.raises(CheckpointError) as caught:
        load(folder, device="cpu")
    assert caught.value.problem is CheckpointProblem.LOCAL_REFUSED
    monkeypatch.setenv("SPACE_ID", "someone/explorer")
    with pytest.raises(CheckpointError, match="hosted Space"):
        load(str(folder), device="cpu", allow_local=True)
    monkeypatch.delenv("SPACE_ID")
    denoiser = load(str(folder), device="cpu", allow_local=True)
    assert denoiser.prediction is Prediction.SAMPLE and denoiser.name == "my-model"
    with pytest.raises(CheckpointError) as caught:
        load(str(tmp_path / "nothing-here"), device="cpu", allow_local=True)
    assert caught.value.problem is CheckpointProblem.NOT_FOUND and str(tmp_path) not in str(caught.value)


def test_bundled_checkpoints_load_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(refs_module, "PRETRAINED_DIR", tmp_path)
    tiny_unet().save_pretrained(tmp_path / "tiny-x0", safe_serialization=True)
    DDPMScheduler(prediction_type="sample").save_pretrained(tmp_path / "tiny-x0")
    write_json(tmp_path / "digits-classifier" / "config.json", {"_class_name": "DigitClassifier"})  # not a denoiser
    assert refs_module.bundled_names() == ("tiny-x0",)
    assert load("tiny-x0", device="cpu").prediction is Prediction.SAMPLE
    with pytest.raises(CheckpointError, match="tiny-x0") as caught:
        load("no-such-model", device="cpu")
    assert caught.value.problem is CheckpointProblem.NOT_FOUND


# --- refusals and errors ------------------------------------------------------------------------------


def test_missing_repo_offline_says_offline():
    with pytest.raises(CheckpointError, match="cannot be reached") as caught:
        load("explorer-test/never-downloaded", device="cpu")
    assert caught.value.problem is CheckpointProblem.OFFLINE


def test_uncached_revision_offline_says_offline(cifar_unet):
    with pytest.raises(CheckpointError, match="revision 'v2'") as caught:
        load("google/ddpm-cifar10-32", revision="v2", device="cpu")
    assert caught.value.problem is CheckpointProblem.OFFLINE


def test_a_silent_hub_falls_back_to_the_cache_within_the_budget(cifar_unet, silent_hub, monkeypatch):
    """The Hub accepts connections and never answers: a cached checkpoint still loads, in about the budget."""
    monkeypatch.setattr(hub_module, "HUB_BUDGET_SECONDS", 2.0)
    started = time.monotonic()
    denoiser = load("google/ddpm-cifar10-32", device="cpu")
    assert denoiser.sample_shape == (3, 32, 32)
    assert time.monotonic() - started < 2.0 + 8.0  # budget, one backoff sleep, loading the weights


def test_a_silent_hub_without_a_cache_says_offline(silent_hub, monkeypatch):
    monkeypatch.setattr(hub_module, "HUB_BUDGET_SECONDS", 1.0)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="cannot be reached") as caught:
        load("explorer-test/silent-and-uncached", device="cpu")
    assert caught.value.problem is CheckpointProblem.OFFLINE
    assert time.monotonic() - started < 1.0 + 8.0  # budget and at most one backoff sleep


def test_the_deadline_shortens_each_request_and_then_refuses():
    request = httpx2.Request("GET", "http://127.0.0.1:9/x")
    with hub_module.hub_deadline(3.0):
        hub_module._enforce_deadline(request)
    assert 0 < request.extensions["timeout"]["read"] <= 3.0
    with hub_module.hub_deadline(0.0), pytest.raises(hub_module.HubDeadlineExceeded):
        hub_module._enforce_deadline(request)
    untouched = httpx2.Request("GET", "http://127.0.0.1:9/x")
    hub_module._enforce_deadline(untouched)  # outside a deadline: the client's own timeout stands
    assert untouched.extensions.get("timeout") is None


@pytest.mark.parametrize(
    ("name", "files", "reason"),
    [
        ("text-unet", {"config.json": {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 768}}, "text"),
        ("cross-attn", {"config.json": {"_class_name": "UNet2DModel", "cross_attention_dim": 512}}, "text"),
        (
            "text-pipeline",
            {"model_index.json": {"unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["x", "CLIP"]}},
            "load only in the Stable Diffusion pipeline layout",
        ),
        (
            "latent",
            {"model_index.json": {"unet": ["diffusers", "UNet2DModel"], "vqvae": ["diffusers", "VQModel"]}},
            "names LDMPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline or DiTPipeline",
        ),
        ("unknown-class", {"config.json": {"_class_name": "EvilModel"}}, "model class"),
        ("class-cond", {"config.json": {"_class_name": "UNet2DModel", "num_class_embeds": 10}}, "as a DiTPipeline"),
        (
            "score-sde",
            {
                "config.json": {"_class_name": "UNet2DModel"},
                "scheduler_config.json": {"_class_name": "ScoreSdeVeScheduler"},
            },
            "β schedule",
        ),
    ],
)
def test_unsupported_models_are_refused_with_the_reason(name, files, reason):
    snapshot = cache_repo(f"explorer-test/{name}")
    files = {"scheduler_config.json": {"_class_name": "DDPMScheduler"}, **files}
    for filename, content in files.items():
        write_json(snapshot / filename, content)
    with pytest.raises(CheckpointError, match=reason) as caught:
        load(f"explorer-test/{name}", device="cpu")
    assert caught.value.problem is CheckpointProblem.UNSUPPORTED


def test_missing_weights_say_what_is_missing():
    snapshot = cache_repo("explorer-test/no-weights")
    tiny_unet().save_config(snapshot)
    DDPMScheduler().save_pretrained(snapshot)
    with pytest.raises(CheckpointError, match="safetensors") as caught:
        load("explorer-test/no-weights", device="cpu")
    assert caught.value.problem is CheckpointProblem.MISSING_FILES


def _http_error(kind: type, status: int) -> Exception:
    request = httpx2.Request("GET", "https://huggingface.co/api/models/a/b")
    return kind("hub said no", response=httpx2.Response(status, request=request))


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (lambda: _http_error(errors.RepositoryNotFoundError, 404), CheckpointProblem.NOT_FOUND),
        (lambda: _http_error(errors.GatedRepoError, 403), CheckpointProblem.GATED),
        (lambda: _http_error(errors.RevisionNotFoundError, 404), CheckpointProblem.REVISION_NOT_FOUND),
        (lambda: _http_error(errors.RemoteEntryNotFoundError, 404), CheckpointProblem.MISSING_FILES),
        (lambda: _http_error(errors.HfHubHTTPError, 401), CheckpointProblem.UNAUTHORIZED),
        (lambda: _http_error(errors.HfHubHTTPError, 503), CheckpointProblem.HUB_ERROR),
        (lambda: errors.LocalEntryNotFoundError("not cached"), CheckpointProblem.OFFLINE),
        (lambda: errors.OfflineModeIsEnabled("offline"), CheckpointProblem.OFFLINE),
    ],
)
def test_hub_errors_map_to_one_sentence_each(error, problem):
    typed = error()
    wrapped = OSError("diffusers wraps Hub errors in a plain OSError")
    wrapped.__cause__ = typed
    for raised in (typed, wrapped):
        mapped = hub_error(raised, "a/b", "main")
        assert mapped is not None and mapped.problem is problem
        message = str(mapped)
        assert message.endswith(".") and message.count(". ") == 0 and "a/b" in message
    assert hub_error(RuntimeError("unrelated"), "a/b", None) is None


# --- cache, device, dtype -------------------------------------------------------------------------------


def test_cache_returns_the_same_object_per_key(pipeline_unet):
    first = load("explorer-test/pipeline-v", device="cpu")
    assert load("explorer-test/pipeline-v", device="cpu") is first
    assert load("explorer-test/pipeline-v", device="cpu", dtype=torch.bfloat16) is not first
    clear_cache()
    assert load("explorer-test/pipeline-v", device="cpu") is not first


def test_cache_is_bounded_and_least_recently_used_goes_first():
    cache = ModelCache(max_entries=2)
    for key in ("a", "b"):
        cache.get_or_load(key, lambda key=key: key)
    cache.get_or_load("a", lambda: "reloaded")  # a hit: "a" becomes the most recent
    cache.get_or_load("c", lambda: "c")
    assert cache.keys() == ("a", "c")
    assert cache.get_or_load("a", lambda: "reloaded") == "a"


def test_concurrent_loads_of_one_key_load_once():
    cache = ModelCache(max_entries=4)
    calls: list[int] = []

    def slow_loader() -> object:
        calls.append(1)
        time.sleep(0.05)
        return object()

    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load("k", slow_loader))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(results) == 8 and all(r is results[0] for r in results)


def test_a_failed_load_leaves_nothing_behind_and_is_retried():
    cache = ModelCache(max_entries=2)

    def failing() -> object:
        raise CheckpointError(CheckpointProblem.OFFLINE, "offline.")

    with pytest.raises(CheckpointError):
        cache.get_or_load("k", failing)
    assert cache.keys() == () and cache.loading() == 0
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"


@pytest.mark.parametrize(
    ("value", "learned", "expected"),
    [
        (None, False, VarianceType.FIXED_SMALL),
        ("fixed_small", False, VarianceType.FIXED_SMALL),
        ("fixed_small_log", False, VarianceType.FIXED_SMALL),
        ("fixed_large", False, VarianceType.FIXED_LARGE),
        ("fixed_large_log", False, VarianceType.FIXED_LARGE),
        ("learned_range", True, VarianceType.LEARNED_RANGE),
        ("fixed_small", True, VarianceType.LEARNED_RANGE),  # the extra output channels decide
    ],
)
def test_variance_type_follows_the_checkpoint(value, learned, expected):
    assert variance_type_of({"variance_type": value}, learned, "m") is expected


@pytest.mark.parametrize(("value", "learned"), [("learned", True), ("learned_range", False), ("learned", False)])
def test_inconsistent_variance_settings_are_refused(value, learned):
    with pytest.raises(CheckpointError):
        variance_type_of({"variance_type": value}, learned, "m")


def test_device_and_dtype_are_parsed_at_the_edge():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(None).type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="device"):
        pick_device("tpu")
    assert weight_dtype(None) == torch.float32 and weight_dtype("bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        weight_dtype("int8")


def test_first_loads_from_many_threads_at_once_all_succeed(hf_home):
    """In a fresh process (diffusers not yet imported), eight threads load models at once: none may fail.

    diffusers' lazy first import is not thread-safe; the load test saw "cannot import name 'UNet2DModel'".
    """
    code = """
import threading
import explorer
names = ["digits-eps", "moons-eps", "digits-x0", "ring-v"] * 2
errors = []
def load(name):
    try:
        explorer.load(name, device="cpu")
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=load, args=(name,)) for name in names]
for thread in threads: thread.start()
for thread in threads: thread.join()
assert "diffusers" in __import__("sys").modules
print("errors:", errors)
"""
    env = {**os.environ, "HF_HOME": hf_home, "HF_HUB_OFFLINE": "1"}
    root = Path(__file__).parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "errors: []" in result.stdout, result.stdout
