"""Large weights (`explorer.models.memory`): a run sized before it starts is within a factor of 2 of the peak memory
a real CPU run of the tiny family checkpoints holds, an oversize run is refused with what fits, and the weight
dtype and model CPU offload follow the device's facts.

Measured here: the weights' bytes (every parameter and buffer) plus the peak of the bytes held by the tensors that
ops create during a whole real CPU run, compact record included (`memory.PeakBytes` over real tensors; the estimate
traces one model call on the meta device and adds the step and record by formula). No GPU is lent to
these tests: the CUDA decisions run on mocked device facts, and offload runs its hooks with the CPU as the
execution device; moving weights to a real GPU is untested here.
"""

from __future__ import annotations

import re

import pytest
import torch
from tiny_pipelines import FLUX_DEV, SD3, SDXL, build_flux, build_sd3, build_sdxl

import explorer
from explorer.diffusion.settings import resolve_settings
from explorer.diffusion.trajectory import CompactRecorder
from explorer.models import memory
from explorer.models.device import weight_dtype
from explorer.models.memory import DeviceFacts, choose_placement

FACTOR = 2.0  # the stated bound: measured / FACTOR ≤ estimate ≤ measured × FACTOR


@pytest.fixture(scope="module")
def repos():
    return {SD3: build_sd3(), SDXL: build_sdxl(), FLUX_DEV: build_flux(FLUX_DEV, guidance=True, seed=70)}


def measured_peak(model, sampler: str, steps: int, batch: int) -> int:
    """The weights plus the peak of live tensors of a real CPU run recorded compactly, as the app records it."""
    settings = resolve_settings(model, sampler=sampler, num_inference_steps=steps, batch_size=batch)
    weights = sum(
        t.numel() * t.element_size()
        for m in (model.parts.network, model.parts.decoder, *model.parts.text_encoders)
        for t in (*m.parameters(), *m.buffers())
    )
    with memory.PeakBytes() as live:
        recorder = CompactRecorder(model.name, model.prediction, settings)
        for step in explorer.iterate(model, settings):
            recorder.add(step)
        recorder.finish()
    return weights + live.peak


@pytest.mark.parametrize(
    ("repo", "guidance", "side", "batch", "sampler"),
    [
        (SD3, 5.0, 32, 2, "scheduler"),
        (SD3, 1.0, 32, 4, "ddim"),
        (SDXL, 5.0, 32, 2, "ddim"),
        (FLUX_DEV, 3.0, 64, 1, "scheduler"),
    ],
)
def test_a_run_is_sized_within_a_factor_of_2_of_its_measured_peak(repos, repo, guidance, side, batch, sampler):
    model = explorer.load(repo, device="cpu").resized(side, side)
    model = model.condition(explorer.Conditioning(prompt="a lighthouse", guidance_scale=guidance))
    size = memory.size_run(model, 4, batch)
    measured = measured_peak(model, sampler, 4, batch)
    assert measured / FACTOR <= size.total <= measured * FACTOR, (size, measured)
    assert size.activations > 0 and size.record > 0


def test_an_oversize_run_is_refused_naming_what_fits(repos):
    model = explorer.load(SD3, device="cpu").resized(32, 32).condition(explorer.Conditioning(prompt="x"))
    size = memory.size_run(model, 20, 4)
    available = size.total - size.record // 2  # half the record short
    with pytest.raises(ValueError, match="GiB are available") as caught:
        memory.check_run_fits(model, 20, 4, available)
    named = re.search(r"batch (\d+) at 20 steps or (\d+) steps at batch 4", str(caught.value))
    batch, steps = int(named.group(1)), int(named.group(2))
    assert (
        memory.size_run(model, 20, batch).total <= available and memory.size_run(model, 20, batch + 1).total > available
    )
    assert memory.size_run(model, steps, 4).total <= available
    assert "a smaller latent size" in str(caught.value)
    assert memory.check_run_fits(model, 20, 4, size.total) == size
    with pytest.raises(ValueError, match="the weights alone do not fit"):
        memory.check_run_fits(model, 20, 4, size.weights // 2)


CUDA = torch.device("cuda")


@pytest.mark.parametrize(
    ("facts", "dtype", "offload"),
    [
        (DeviceFacts(torch.device("cpu"), bf16=False, free_bytes=None), torch.float32, False),
        (DeviceFacts(torch.device("mps"), bf16=False, free_bytes=None), torch.float32, False),
        (DeviceFacts(CUDA, bf16=True, free_bytes=80 << 30), torch.bfloat16, False),  # 12 B weights: 24 GB fit
        (DeviceFacts(CUDA, bf16=False, free_bytes=80 << 30), torch.float16, False),  # e.g. a T4: no bfloat16
        (DeviceFacts(CUDA, bf16=True, free_bytes=16 << 30), torch.bfloat16, True),  # 24 GB of weights, 16 GB free
    ],
)
def test_the_placement_follows_the_device(facts, dtype, offload):
    placement = choose_placement(12_000_000_000, facts)
    assert placement.dtype is dtype and placement.offload is offload
    assert ("offload" in placement.reason) is offload


def test_auto_dtype_asks_the_gpu_which_16_bit_type_it_has(monkeypatch):
    """Mocked device queries (no GPU here): what `dtype='auto'` resolves to."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 << 30, 80 << 30))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert weight_dtype("auto", CUDA) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert weight_dtype("auto", CUDA) is torch.float16
    assert weight_dtype("auto", torch.device("cpu")) is torch.float32
    with pytest.raises(ValueError, match="'auto'"):
        weight_dtype("half-ish")


def test_a_checkpoint_too_large_for_the_gpu_is_offloaded_and_offload_changes_nothing(repos, monkeypatch):
    """place_parts on a (mocked) small GPU chooses offload; the offload hooks, run with the CPU as the execution
    device, give the same prediction as the model without them."""
    model = explorer.load(SD3, device="cpu").condition(explorer.Conditioning(prompt="x", guidance_scale=3.0))
    x = torch.randn(1, *model.sample_shape, generator=torch.Generator().manual_seed(0))
    before = model(x, 500)
    chosen = []
    monkeypatch.setattr(memory, "device_facts", lambda device: DeviceFacts(CUDA, bf16=True, free_bytes=1 << 10))
    monkeypatch.setattr(memory, "offload_parts", lambda parts, device: chosen.append(device))
    placement = memory.place_parts(model.parts, CUDA)
    assert placement.offload and chosen == [CUDA]
    monkeypatch.undo()
    memory.offload_parts(model.parts, torch.device("cpu"))
    torch.testing.assert_close(model(x, 500), before)
    assert hasattr(model.parts.network, "_hf_hook")  # accelerate's hook is on the network


def test_available_memory_is_the_gpus_free_memory_or_the_machines(monkeypatch):
    assert memory.available_bytes("cpu") > 1 << 20
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 << 30, 80 << 30))  # mocked: no GPU here
    assert memory.available_bytes(CUDA) == 3 << 30
