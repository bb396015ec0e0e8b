"""explorer.models.mlp: the 2-D point denoiser and its diffusers folder format."""

import json

import pytest
import torch

from explorer.models.mlp import PointDenoiserMLP, timestep_embedding


@pytest.fixture
def model():
    torch.manual_seed(0)
    return PointDenoiserMLP(hidden_dim=32, num_hidden_layers=2, time_embed_dim=16).eval()


def test_forward_shapes_with_batched_and_scalar_timesteps(model):
    x = torch.randn(5, 2)
    batched = model(x, torch.full((5,), 7))
    scalar = model(x, 7)
    assert type(batched) is torch.Tensor and batched.shape == (5, 2)
    torch.testing.assert_close(batched, scalar)


def test_output_depends_on_timestep(model):
    x = torch.randn(4, 2)
    assert not torch.allclose(model(x, 0), model(x, 999))


def test_bad_input_shape_is_refused(model):
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        model(torch.randn(4, 3), 0)


def test_embedding_shape_and_values():
    emb = timestep_embedding(torch.tensor([0, 1, 999]), 8)
    assert emb.shape == (3, 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos 0 = 1, sin 0 = 0
    assert not torch.allclose(emb[1], emb[2])
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(torch.tensor([0]), 7)


def test_save_and_load_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path, safe_serialization=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == "PointDenoiserMLP" and config["hidden_dim"] == 32
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = PointDenoiserMLP.from_pretrained(tmp_path, use_safetensors=True).eval()
    x, t = torch.randn(6, 2), torch.arange(6) * 100
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t), model(x, t))
