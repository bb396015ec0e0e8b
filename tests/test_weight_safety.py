"""Weight files are checked before diffusers reads them: shard indexes that point at pickles, files that only claim
to be safetensors, weights over the size limit, and local paths that must not reveal anything about the disk.

Offline throughout: the Hub is the offline cache, or `FakeHub` (tests/test_hub.py) standing in for it when online.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import save_file
from test_hub import FakeHub, cache_repo, pickle_payload, tiny_unet, write_json

from explorer.models import checkpoint as checkpoint_module
from explorer.models.errors import CheckpointError, CheckpointProblem
from explorer.models.loader import clear_cache, load
from explorer.models.refs import LOCAL_UNLOADABLE, local_folders_allowed
from explorer.models.weights import check_safetensors_file, max_weight_bytes

INDEX = "diffusion_pytorch_model.safetensors.index.json"
INDEX_NAMES = [
    INDEX,
    "diffusion_pytorch_model.fp16.safetensors.index.json",
    "diffusion_pytorch_model.safetensors.index.fp16.json",  # diffusers' own name for a variant's index
]
PICKLE_SHARD = "diffusion_pytorch_model-00001-of-00002.bin"
LAYOUTS = ["flat", "pipeline"]


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def diffusers_unreached(monkeypatch) -> None:
    """Fail the test if a load gets as far as diffusers (the model class or its from_pretrained)."""

    def reached(*args, **kwargs):
        raise AssertionError("diffusers was asked to load the weights")

    monkeypatch.setattr(checkpoint_module, "_module_class", reached)
    monkeypatch.setattr(UNet2DModel, "from_pretrained", reached)


def write_configs(root: Path, layout: str) -> Path:
    """Configs of a tiny UNet checkpoint in `root` (flat, or pipeline with unet/ and scheduler/); the model folder."""
    if layout == "flat":
        tiny_unet().save_config(root)
        DDPMScheduler().save_pretrained(root)
        return root
    write_json(root / "model_index.json", {"unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "X"]})
    tiny_unet().save_config(root / "unet")
    DDPMScheduler().save_pretrained(root / "scheduler")
    return root / "unet"


def index_to(model_folder: Path, shard: str, content: bytes, index: str = INDEX) -> None:
    """A shard index whose weight_map sends a tensor to `shard`, holding `content`."""
    write_json(model_folder / index, {"metadata": {}, "weight_map": {"conv_in.weight": shard}})
    if "/" not in shard and ".." not in shard:
        (model_folder / shard).write_bytes(content)


def downloaded(hub: FakeHub) -> set[str]:
    return {p.relative_to(hub.destination / hub.sha).as_posix() for p in hub.destination.rglob("*") if p.is_file()}


# --- a shard index that points at a pickle ---------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index", INDEX_NAMES)
@pytest.mark.parametrize("shard", [PICKLE_SHARD, "x.safetensors", "weights"])
def test_an_index_to_a_pickle_is_refused_from_the_cache(layout, index, shard, tmp_path, diffusers_unreached):
    marker = tmp_path / "payload-ran"
    repo = f"explorer-test/index-{layout}-{INDEX_NAMES.index(index)}-{shard.replace('.', '-')}"
    index_to(write_configs(cache_repo(repo), layout), shard, pickle_payload(marker), index)
    with pytest.raises(CheckpointError, match="pickled weights") as caught:
        load(repo, device="cpu")
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY
    assert shard in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_index_to_a_pickle_is_refused_in_a_local_folder(layout, tmp_path, diffusers_unreached):
    marker = tmp_path / "payload-ran"
    folder = tmp_path / "my-model"
    index_to(write_configs(folder, layout), PICKLE_SHARD, pickle_payload(marker))
    with pytest.raises(CheckpointError, match="pickled weights") as caught:
        load(str(folder), device="cpu", allow_local=True)
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY
    assert "'my-model'" in str(caught.value) and str(tmp_path) not in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index", INDEX_NAMES)
def test_online_an_index_to_a_pickle_is_refused_before_the_shard_is_downloaded(
    layout, index, tmp_path, monkeypatch, diffusers_unreached
):
    marker = tmp_path / "payload-ran"
    repo = tmp_path / "repo"
    model_folder = write_configs(repo, layout)
    index_to(model_folder, PICKLE_SHARD, pickle_payload(marker), index)
    hub = FakeHub(repo, tmp_path / "snapshots")
    hub.install(monkeypatch)
    with pytest.raises(CheckpointError, match=r"not safetensors files \(diffusion_pytorch_model-00001") as caught:
        load("someone/index-to-pickle", device="cpu")
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY
    assert hub.info_calls == [(hub.sha, True)]  # the file list, at the configs' commit, with sizes
    patterns = [pattern for _, call in hub.calls for pattern in call]
    assert all(pattern.endswith(".json") for pattern in patterns)  # configs, then the index alone
    prefix = "" if layout == "flat" else "unet/"
    assert prefix + index in downloaded(hub) and prefix + PICKLE_SHARD not in downloaded(hub)
    assert not marker.exists()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_online_a_pickle_named_safetensors_is_refused_before_diffusers(
    layout, tmp_path, monkeypatch, diffusers_unreached
):
    marker = tmp_path / "payload-ran"
    repo = tmp_path / "repo"
    index_to(write_configs(repo, layout), "diffusion_pytorch_model-00001-of-00001.safetensors", pickle_payload(marker))
    FakeHub(repo, tmp_path / "snapshots").install(monkeypatch)
    with pytest.raises(CheckpointError, match="not safetensors files") as caught:
        load("someone/fake-safetensors", device="cpu")
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY
    assert not marker.exists()


@pytest.mark.parametrize(
    ("case", "shard", "problem"),
    [
        ("parent", "../diffusion_pytorch_model.safetensors", CheckpointProblem.BROKEN_FILES),
        ("subfolder", "sub/diffusion_pytorch_model.safetensors", CheckpointProblem.BROKEN_FILES),
        ("absolute", "/etc/passwd", CheckpointProblem.BROKEN_FILES),
        ("absent", "diffusion_pytorch_model-00002-of-00002.safetensors", CheckpointProblem.MISSING_FILES),
    ],
)
def test_an_index_may_name_only_files_in_its_own_folder(case, shard, problem, diffusers_unreached):
    repo = f"explorer-test/index-shard-{case}"
    snapshot = cache_repo(repo)
    write_configs(snapshot, "flat")
    write_json(snapshot / INDEX, {"metadata": {}, "weight_map": {"conv_in.weight": shard}})
    with pytest.raises(CheckpointError) as caught:
        load(repo, device="cpu")
    assert caught.value.problem is problem


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_pickle_named_like_the_safetensors_file_is_refused(layout, tmp_path, diffusers_unreached):
    marker = tmp_path / "payload-ran"
    repo = f"explorer-test/fake-plain-{layout}"
    model_folder = write_configs(cache_repo(repo), layout)
    (model_folder / "diffusion_pytorch_model.safetensors").write_bytes(pickle_payload(marker))
    with pytest.raises(CheckpointError, match="not safetensors files") as caught:
        load(repo, device="cpu")
    assert caught.value.problem is CheckpointProblem.PICKLE_ONLY
    assert not marker.exists()


def test_the_header_check_reads_only_the_header(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.zeros(3)}, str(good))
    check_safetensors_file(good, "m")
    torch_zip = tmp_path / "zip.safetensors"
    torch.save({"w": torch.zeros(3)}, torch_zip)
    cases = {
        "pickle.safetensors": (pickle_payload(tmp_path / "ran"), CheckpointProblem.PICKLE_ONLY),
        "zip.safetensors": (torch_zip.read_bytes(), CheckpointProblem.PICKLE_ONLY),
        "short.safetensors": (b"\x02\x00", CheckpointProblem.BROKEN_FILES),
        "overlong.safetensors": ((1000).to_bytes(8, "little") + b"{}", CheckpointProblem.BROKEN_FILES),
        "not-json.safetensors": ((2).to_bytes(8, "little") + b"[]", CheckpointProblem.BROKEN_FILES),
        "empty.safetensors": (b"", CheckpointProblem.BROKEN_FILES),
    }
    for filename, (content, problem) in cases.items():
        (tmp_path / filename).write_bytes(content)
        with pytest.raises(CheckpointError) as caught:
            check_safetensors_file(tmp_path / filename, "m")
        assert caught.value.problem is problem, filename
    os.mkfifo(tmp_path / "fifo.safetensors")  # a read would block: refused without opening it
    with pytest.raises(CheckpointError):
        check_safetensors_file(tmp_path / "fifo.safetensors", "m")
    assert not (tmp_path / "ran").exists()


# --- real sharded checkpoints still load -------------------------------------------------------------------


@pytest.mark.parametrize("variant", [None, "fp16"])
def test_a_sharded_safetensors_checkpoint_loads(variant):
    unet = tiny_unet(seed=5)
    snapshot = cache_repo(f"explorer-test/sharded-{variant}")
    unet.save_pretrained(snapshot, safe_serialization=True, max_shard_size="1MB", variant=variant)
    DDPMScheduler().save_pretrained(snapshot)
    assert len(list(snapshot.glob("diffusion_pytorch_model*-of-*.safetensors"))) > 1
    denoiser = load(f"explorer-test/sharded-{variant}", device="cpu")
    x_t = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = unet(x_t, torch.tensor([9, 9])).sample
    torch.testing.assert_close(denoiser(x_t, 9), expected, rtol=0, atol=0)


def test_online_a_sharded_checkpoint_downloads_its_index_then_exactly_its_shards(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    tiny_unet(seed=6).save_pretrained(repo / "unet", safe_serialization=True, max_shard_size="1MB")
    DDPMScheduler().save_pretrained(repo / "scheduler")
    write_json(repo / "model_index.json", {"unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "X"]})
    (repo / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"never downloaded")
    hub = FakeHub(repo, tmp_path / "snapshots")
    hub.install(monkeypatch)
    assert load("someone/sharded", device="cpu").sample_shape == (3, 16, 16)
    (_, configs), (_, index), (_, weights) = hub.calls
    assert all(p.endswith(".json") for p in configs) and index == [f"unet/{INDEX}"]
    shards = sorted(json.loads((repo / "unet" / INDEX).read_text())["weight_map"].values())
    assert sorted(weights) == sorted({f"unet/{INDEX}", *(f"unet/{s}" for s in shards)})
    assert "unet/diffusion_pytorch_model.bin" not in downloaded(hub)


# --- the size limit ------------------------------------------------------------------------------------------


def test_online_an_oversize_model_is_refused_before_its_weights_are_downloaded(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    tiny_unet().save_pretrained(repo, safe_serialization=True)
    DDPMScheduler().save_pretrained(repo)
    hub = FakeHub(repo, tmp_path / "snapshots")
    hub.sizes = {"diffusion_pytorch_model.safetensors": 5 << 30}
    hub.install(monkeypatch)
    with pytest.raises(CheckpointError, match=r"5\.0 GiB of weights, more than the 2\.0 GiB") as caught:
        load("someone/huge", device="cpu")
    assert caught.value.problem is CheckpointProblem.TOO_LARGE
    assert len(hub.calls) == 1 and "diffusion_pytorch_model.safetensors" not in downloaded(hub)


def test_online_oversize_shards_are_refused_after_the_index_and_before_the_shards(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    tiny_unet().save_pretrained(repo, safe_serialization=True, max_shard_size="1MB")
    DDPMScheduler().save_pretrained(repo)
    shards = sorted(set(json.loads((repo / INDEX).read_text())["weight_map"].values()))
    monkeypatch.setenv("EXPLORER_MAX_WEIGHT_BYTES", str(10 << 20))
    hub = FakeHub(repo, tmp_path / "snapshots")
    hub.sizes = dict.fromkeys(shards, 4 << 20)
    hub.install(monkeypatch)
    with pytest.raises(CheckpointError, match=r"MiB of weights, more than the 10\.0 MiB") as caught:
        load("someone/huge-shards", device="cpu")
    assert caught.value.problem is CheckpointProblem.TOO_LARGE
    assert downloaded(hub).isdisjoint(shards)


def test_an_oversize_model_on_disk_is_refused(tmp_path, monkeypatch, diffusers_unreached):
    snapshot = cache_repo("explorer-test/oversize")
    tiny_unet().save_pretrained(snapshot, safe_serialization=True)
    DDPMScheduler().save_pretrained(snapshot)
    folder = tmp_path / "local-model"
    tiny_unet().save_pretrained(folder, safe_serialization=True)
    DDPMScheduler().save_pretrained(folder)
    monkeypatch.setenv("EXPLORER_MAX_WEIGHT_BYTES", "1000")
    for ref, allow_local in (("explorer-test/oversize", False), (str(folder), True)):
        with pytest.raises(CheckpointError, match=r"MiB of weights, more than the 1000 bytes") as caught:
            load(ref, device="cpu", allow_local=allow_local)
        assert caught.value.problem is CheckpointProblem.TOO_LARGE
        assert str(tmp_path) not in str(caught.value)


@pytest.mark.parametrize("value", ["lots", "-1", "0", "1e9", "²"])
def test_a_bad_size_limit_is_a_clear_error(value, monkeypatch):
    monkeypatch.setenv("EXPLORER_MAX_WEIGHT_BYTES", value)
    with pytest.raises(ValueError, match="EXPLORER_MAX_WEIGHT_BYTES"):
        max_weight_bytes()


# --- local folders -------------------------------------------------------------------------------------------


def local_refusals(tmp_path: Path) -> dict[str, str]:
    """Paths that are not loadable checkpoint folders, each for a different reason."""
    (tmp_path / "a-file.txt").write_text("hello")
    (tmp_path / "no-config").mkdir()
    (tmp_path / "bad-json").mkdir()
    (tmp_path / "bad-json" / "config.json").write_text("{not json")
    (tmp_path / "other-tool").mkdir()
    write_json(tmp_path / "other-tool" / "config.json", {"theme": "dark"})
    escaping = tmp_path / "escaping"
    tiny_unet().save_pretrained(tmp_path / "elsewhere", safe_serialization=True)
    DDPMScheduler().save_pretrained(escaping)
    (escaping / "config.json").symlink_to(tmp_path / "elsewhere" / "config.json")
    (escaping / "diffusion_pytorch_model.safetensors").symlink_to(
        tmp_path / "elsewhere" / "diffusion_pytorch_model.safetensors"
    )
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    no_weights = tmp_path / "no-weights"
    tiny_unet().save_config(no_weights)
    DDPMScheduler().save_pretrained(no_weights)
    return {
        "missing": str(tmp_path / "nothing-here"),
        "etc": "/etc",
        "root": "/",
        "proc": "/proc/self",
        "file": str(tmp_path / "a-file.txt"),
        "no config.json": str(tmp_path / "no-config"),
        "broken config.json": str(tmp_path / "bad-json"),
        "another tool's config.json": str(tmp_path / "other-tool"),
        "links outside": str(escaping),
        "symlink loop": str(tmp_path / "loop"),
        "no weights": str(no_weights),
        "unknown user": "~nobody-by-this-name/x",
        "relative": "./no/such/folder",
    }


def test_every_local_path_refusal_reads_the_same_and_names_no_path(tmp_path, diffusers_unreached):
    messages = {}
    for why, path in local_refusals(tmp_path).items():
        with pytest.raises(CheckpointError) as caught:
            load(path, device="cpu", allow_local=True)
        assert caught.value.problem is CheckpointProblem.NOT_FOUND, why
        messages[why] = str(caught.value)
    assert set(messages.values()) == {LOCAL_UNLOADABLE}, messages
    assert "/" not in LOCAL_UNLOADABLE and str(os.getpid()) not in LOCAL_UNLOADABLE


def test_an_unreadable_local_folder_reads_the_same(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    tiny_unet().save_pretrained(folder, safe_serialization=True)
    DDPMScheduler().save_pretrained(folder)
    listing = Path.iterdir

    def iterdir(self: Path):
        if self.name == "locked":  # what chmod 000 does, also when the tests run as root
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(CheckpointError) as caught:
        load(str(folder), device="cpu", allow_local=True)
    assert str(caught.value) == LOCAL_UNLOADABLE


def test_a_local_checkpoint_is_named_by_what_was_typed(tmp_path, monkeypatch):
    folder = tmp_path / "my-model"
    tiny_unet().save_pretrained(folder, safe_serialization=True)
    DDPMScheduler().save_pretrained(folder)
    monkeypatch.chdir(tmp_path)
    denoiser = load("./my-model", device="cpu", allow_local=True)
    assert denoiser.name == "my-model" and str(tmp_path) not in denoiser.description
    write_json(folder / "config.json", {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 8})
    clear_cache()
    with pytest.raises(CheckpointError, match="'my-model' cannot be explored") as caught:
        load(str(folder), device="cpu", allow_local=True)
    assert str(tmp_path) not in str(caught.value)


def test_local_folders_stay_refused_on_a_space(tmp_path, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/explorer")
    with pytest.raises(CheckpointError, match="hosted Space") as caught:
        load(str(tmp_path), device="cpu", allow_local=True)
    assert caught.value.problem is CheckpointProblem.LOCAL_REFUSED


def test_diffusers_errors_show_no_server_paths():
    text = "Error no file named diffusion_pytorch_model.safetensors found in directory /home/me/.cache/hub/x/unet."
    shown = checkpoint_module._without_paths(text)
    assert "/home" not in shown and shown.endswith("in directory …/unet.")
    assert checkpoint_module._without_paths("HTTP/1.1 and 3/4") == "HTTP/1.1 and 3/4"


@pytest.mark.parametrize(
    ("server_name", "flag", "space", "allowed"),
    [
        ("127.0.0.1", False, False, True),
        ("127.0.0.2", False, False, True),
        ("::1", False, False, True),
        ("[::1]", False, False, True),
        ("localhost", False, False, True),
        ("LocalHost", False, False, True),
        ("0.0.0.0", False, False, False),
        ("::", False, False, False),
        ("192.168.1.20", False, False, False),
        ("10.0.0.5", False, False, False),
        ("example.org", False, False, False),
        ("", False, False, False),
        (None, False, False, False),
        ("0.0.0.0", True, False, True),
        (None, True, False, True),
        ("127.0.0.1", False, True, False),
        ("127.0.0.1", True, True, False),
        ("0.0.0.0", True, True, False),
    ],
)
def test_local_folders_allowed(server_name, flag, space, allowed, monkeypatch):
    if space:
        monkeypatch.setenv("SPACE_ID", "someone/explorer")
    assert local_folders_allowed(server_name, flag) is allowed
