"""The catalogue: the static Hub table checked against published configs, bundled entries read from folders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from explorer import Prediction
from explorer.models.catalogue import (
    HUB_ENTRIES,
    LATENT_ENTRIES,
    CatalogueEntry,
    Source,
    catalogue,
    count_parameters,
    read_model_card,
)
from explorer.models.loader import clear_cache, load
from explorer.models.refs import PRETRAINED_DIR

DATA = Path(__file__).parent / "data"
CIFAR_CONFIG = json.loads((DATA / "ddpm-cifar10-32.unet-config.json").read_text())
DDPM_256_CONFIG = {  # google/ddpm-{celebahq,church,bedroom,cat}-256 share this architecture
    **CIFAR_CONFIG,
    "block_out_channels": [128, 128, 256, 256, 512, 512],
    "down_block_types": ["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4,
    "sample_size": 256,
}
SUFFIX_PREDICTION = {"eps": Prediction.EPSILON, "x0": Prediction.SAMPLE, "v": Prediction.V_PREDICTION}
SUFFIX_PREDICTION["flow"] = Prediction.FLOW


def parameters_of(config: dict) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in UNet2DModel.from_config(config).parameters())


def test_hub_table_lists_the_google_ddpm_models():
    names = [entry.name for entry in HUB_ENTRIES]
    assert names == [
        "google/ddpm-cifar10-32",
        "google/ddpm-celebahq-256",
        "google/ddpm-church-256",
        "google/ddpm-bedroom-256",
        "google/ddpm-cat-256",
    ]
    for entry in HUB_ENTRIES:
        assert entry.source is Source.HUB and entry.repo_id == entry.name
        assert entry.prediction is Prediction.EPSILON
        assert entry.revision is None or len(entry.revision) == 40


def test_hub_figures_match_the_published_configs():
    cifar, *large = HUB_ENTRIES
    assert cifar.sample_shape == (3, 32, 32)
    assert cifar.num_parameters == parameters_of(CIFAR_CONFIG)
    assert round(cifar.num_parameters / 1e6, 1) == 35.7  # the DDPM paper's figure
    for entry in large:
        assert entry.sample_shape == (3, 256, 256)
        assert entry.num_parameters == parameters_of(DDPM_256_CONFIG)
        assert round(entry.num_parameters / 1e6) == 114  # the DDPM paper's figure


def test_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        HUB_ENTRIES[0].name = "other"  # type: ignore[misc]


def _bundled_folder(root: Path, name: str, prediction: str, readme: str | None) -> UNet2DModel:
    torch.manual_seed(0)
    unet = UNet2DModel(
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=8,
        in_channels=1,
        out_channels=1,
    )
    unet.save_pretrained(root / name, safe_serialization=True)
    DDPMScheduler(prediction_type=prediction).save_pretrained(root / name)
    if readme is not None:
        (root / name / "README.md").write_text(readme)
    return unet


def test_bundled_entries_are_read_from_their_folders(tmp_path):
    readme = "---\nlicense: mit\ndatasets:\n- digits\n---\n# tiny-v\n\nA tiny v-prediction model\nfor tests.\n"
    unet = _bundled_folder(tmp_path, "tiny-v", "v_prediction", readme)
    _bundled_folder(tmp_path, "plain-eps", "epsilon", None)
    (tmp_path / "still-training").mkdir()  # no weights yet: skipped
    (tmp_path / "still-training" / "config.json").write_text("{}")
    (tmp_path / "catalogue.json").write_text("{}")  # files beside the folders are ignored
    classifier = tmp_path / "digits-classifier"  # weights but no scheduler: not a denoiser, skipped
    _bundled_folder(tmp_path, classifier.name, "epsilon", None)
    (classifier / "scheduler_config.json").unlink()
    entries = catalogue(tmp_path)
    bundled = [entry for entry in entries if entry.source is Source.BUNDLED]
    assert [entry.name for entry in bundled] == ["plain-eps", "tiny-v"]
    assert entries[len(bundled) :] == HUB_ENTRIES + LATENT_ENTRIES
    tiny = bundled[1]
    assert tiny == CatalogueEntry(
        name="tiny-v",
        source=Source.BUNDLED,
        repo_id=None,
        revision=None,
        prediction=Prediction.V_PREDICTION,
        sample_shape=(1, 8, 8),
        num_parameters=sum(p.numel() for p in unet.parameters()),
        dataset="digits",
        description="A tiny v-prediction model for tests.",
    )
    assert bundled[0].dataset == "plain" and bundled[0].description == ""


def test_parameter_count_reads_only_the_header(tmp_path):
    unet = _bundled_folder(tmp_path, "m", "epsilon", None)
    assert count_parameters(tmp_path / "m" / "diffusion_pytorch_model.safetensors") == sum(
        p.numel() for p in unet.parameters()
    )


def test_model_card_without_front_matter(tmp_path):
    (tmp_path / "README.md").write_text("# Title\n\n| table |\n\nFirst prose.\n\nSecond.\n")
    assert read_model_card(tmp_path / "README.md") == ({}, "First prose.")
    assert read_model_card(tmp_path / "missing.md") == ({}, "")


@pytest.mark.parametrize("entry", [e for e in catalogue() if e.source is Source.BUNDLED], ids=lambda e: e.name)
def test_shipped_bundled_checkpoints_load_as_catalogued(entry):
    """Every checkpoint shipped in pretrained/ loads and agrees with its catalogue entry (none yet: no cases)."""
    assert (PRETRAINED_DIR / entry.name).is_dir()
    suffix = entry.name.rsplit("-", 1)[-1]
    if suffix in SUFFIX_PREDICTION:
        assert entry.prediction is SUFFIX_PREDICTION[suffix]
    clear_cache()
    denoiser = load(entry.name, device="cpu")
    assert denoiser.prediction is entry.prediction
    assert denoiser.sample_shape == entry.sample_shape
    assert denoiser.num_parameters == entry.num_parameters
    x_t = torch.randn(4, *entry.sample_shape)
    assert denoiser(x_t, 0).shape == x_t.shape
    clear_cache()


# The published configs of the large latent families' transformers (stabilityai/stable-diffusion-3.5-medium's
# transformer/config.json; black-forest-labs/FLUX.1-schnell's), built on the meta device to count parameters.
SD35_MEDIUM_TRANSFORMER = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "out_channels": 16,
    "pos_embed_max_size": 384,
    "dual_attention_layers": tuple(range(13)),
    "qk_norm": "rms_norm",
}


def test_the_model_box_lists_sdxl_sd35_medium_and_flux_schnell_with_licence_and_download_size():
    from diffusers import SD3Transformer2DModel

    from ui.models import conditioning_controls

    entries = {entry.name: entry for entry in catalogue()}
    for name in ("moons-flow", "ring-flow", "digits-flow"):  # the bundled flow models
        assert entries[name].source is Source.BUNDLED and entries[name].prediction is Prediction.FLOW
    sd35 = entries["stabilityai/stable-diffusion-3.5-medium"]
    with torch.device("meta"):
        transformer = SD3Transformer2DModel(**SD35_MEDIUM_TRANSFORMER)
    stored = sum(t.numel() for t in transformer.state_dict().values())  # the positional embedding is stored too
    assert 2.4e9 < stored < 2.6e9  # the model card's 2.5 B
    assert sd35.family.value == "sd3" and sd35.prediction is Prediction.FLOW and sd35.sample_shape == (16, 128, 128)
    assert sd35.num_parameters > stored + 4.7e9  # T5-XXL, both CLIPs and the VAE besides
    assert conditioning_controls(sd35.name) >= {"prompt", "negative_prompt", "guidance"}
    sizes = {}
    for name, licence in [
        ("stabilityai/stable-diffusion-xl-base-1.0", "RAIL"),
        ("stabilityai/stable-diffusion-3.5-medium", "Community"),
        ("black-forest-labs/FLUX.1-schnell", "Apache-2.0"),
    ]:
        entry = entries[name]
        assert licence in entry.licence and entry.download_bytes >= 2 * entry.num_parameters
        sizes[name] = entry.download_bytes / 1e9
    assert 13 < sizes["stabilityai/stable-diffusion-xl-base-1.0"] < 15  # float32 files
    assert 15 < sizes["stabilityai/stable-diffusion-3.5-medium"] < 17  # 16-bit files
    assert 33 < sizes["black-forest-labs/FLUX.1-schnell"] < 35
