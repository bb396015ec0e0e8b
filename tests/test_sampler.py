"""explorer.sample against diffusers' DDPMScheduler and DDIMScheduler, step by step, plus the run's invariants."""

from __future__ import annotations

import numpy as np
import pytest
import reference
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.schedulers import scheduling_ddpm
from tiny_models import TinyUNetDenoiser

from explorer import Schedule
from explorer.diffusion.sampler import branch, iterate, resolve_settings, sample

PREDICTIONS = ("epsilon", "sample", "v_prediction")


def zero_noise_ddpm_step(scheduler: DDPMScheduler, output: torch.Tensor, t: int, x_t: torch.Tensor):
    original = scheduling_ddpm.randn_tensor
    scheduling_ddpm.randn_tensor = lambda shape, **kw: torch.zeros(shape, dtype=kw.get("dtype"))
    try:
        return scheduler.step(output, t, x_t)
    finally:
        scheduling_ddpm.randn_tensor = original


SHORT = Schedule.from_name("linear", 100)  # a full-length chain in 100 steps keeps the test fast


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize(("steps", "clip"), [(100, False), (13, True)])
def test_every_ddpm_step_matches_diffusers(prediction: str, variance: str, steps: int, clip: bool) -> None:
    denoiser = TinyUNetDenoiser(prediction, schedule=SHORT)
    trajectory = sample(denoiser, num_inference_steps=steps, variance=variance, batch_size=2, seed=3, clip_sample=clip)
    # diffusers' own step, its tables recomputed in float64 (see tests/reference.py).
    scheduler = reference.float64_scheduler(
        "linear", 100, False, prediction_type=prediction, variance_type=variance, clip_sample=clip
    )
    scheduler.set_timesteps(steps)
    np.testing.assert_array_equal(trajectory.timesteps, scheduler.timesteps.numpy())
    for step in trajectory:
        theirs = zero_noise_ddpm_step(scheduler, step.model_output.double(), step.timestep, step.x_t.double())
        torch.testing.assert_close(step.mean.double(), theirs.prev_sample, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(step.x0_clipped.double(), theirs.pred_original_sample, rtol=1e-5, atol=1e-6)
        if step.timestep > 0:
            expected = scheduler._get_variance(step.timestep, variance_type=variance).float()
            torch.testing.assert_close(step.std.square().flatten(), expected.expand(2), rtol=1e-5, atol=1e-12)
        else:
            assert torch.all(step.std == 0)


def test_float32_diffusers_agrees_within_its_rounding() -> None:
    denoiser = TinyUNetDenoiser("epsilon", clip_sample=True)
    trajectory = sample(denoiser, num_inference_steps=20, batch_size=2)
    scheduler = DDPMScheduler(clip_sample=True)
    scheduler.set_timesteps(20)
    for step in trajectory:
        theirs = zero_noise_ddpm_step(scheduler, step.model_output, step.timestep, step.x_t)
        torch.testing.assert_close(step.mean, theirs.prev_sample, rtol=1e-3, atol=2e-4)


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [False, True])
def test_every_ddim_step_matches_diffusers(prediction: str, eta: float, clip: bool) -> None:
    denoiser = TinyUNetDenoiser(prediction)
    trajectory = sample(denoiser, sampler="ddim", num_inference_steps=20, eta=eta, batch_size=2, clip_sample=clip)
    scheduler = DDIMScheduler(prediction_type=prediction, clip_sample=clip)
    scheduler.set_timesteps(20)
    np.testing.assert_array_equal(trajectory.timesteps, scheduler.timesteps.numpy())
    for step in trajectory:
        theirs = scheduler.step(step.model_output, step.timestep, step.x_t, eta=eta, variance_noise=step.noise)
        if step.prev_timestep >= 0:  # diffusers also adds σz on the final step; DDIM's own final step has σ = 0
            torch.testing.assert_close(step.x_prev, theirs.prev_sample, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(step.x0_clipped, theirs.pred_original_sample, rtol=1e-4, atol=1e-5)


def test_learned_range_variance_matches_diffusers() -> None:
    denoiser = TinyUNetDenoiser("epsilon", learned=True)
    trajectory = sample(denoiser, num_inference_steps=10, batch_size=2)
    assert trajectory.settings.variance == "learned_range"
    scheduler = DDPMScheduler(variance_type="learned_range", clip_sample=False)
    scheduler.set_timesteps(10)
    for step in trajectory[:-1]:
        raw = denoiser.unet(step.x_t, step.timestep).sample * 3.0
        full = torch.cat([raw[:, :1], raw[:, 1:].tanh()], dim=1)
        log_var = scheduler._get_variance(step.timestep, predicted_variance=full[:, 1:])
        torch.testing.assert_close(step.std, (0.5 * log_var).exp(), rtol=1e-4, atol=1e-6)
        assert step.std.shape == step.x_t.shape


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_records_chain_and_reconstruct(sampler: str) -> None:
    trajectory = sample(
        TinyUNetDenoiser("v_prediction"), sampler=sampler, eta=0.7, num_inference_steps=15, batch_size=3
    )
    for k, step in enumerate(trajectory):
        torch.testing.assert_close(step.x_prev, step.mean + step.std * step.noise, rtol=0, atol=1e-6)
        if k + 1 < len(trajectory):
            torch.testing.assert_close(trajectory[k + 1].x_t, step.x_prev, rtol=0, atol=1e-6)
            assert trajectory[k + 1].timestep == step.prev_timestep
        for name in ("x_t", "model_output", "eps", "x0", "x0_clipped", "v", "mean", "noise", "x_prev"):
            tensor = getattr(step, name)
            assert tensor.device.type == "cpu" and tensor.dtype == torch.float32 and tensor.shape == (3, 1, 8, 8)
    assert trajectory[-1].prev_timestep == -1 and trajectory.samples.shape == (3, 1, 8, 8)


def test_same_seed_same_run_and_shared_noise_across_models() -> None:
    a = sample(TinyUNetDenoiser("epsilon", seed=1), num_inference_steps=8, batch_size=2, seed=11)
    b = sample(TinyUNetDenoiser("epsilon", seed=1), num_inference_steps=8, batch_size=2, seed=11)
    other = sample(TinyUNetDenoiser("sample", seed=2), num_inference_steps=8, batch_size=4, seed=11)
    different = sample(TinyUNetDenoiser("epsilon", seed=1), num_inference_steps=8, batch_size=2, seed=12)
    torch.testing.assert_close(a.samples, b.samples, rtol=0, atol=0)
    torch.testing.assert_close(a.x_T, other.x_T[:2], rtol=0, atol=0)  # a bigger batch keeps the first samples
    for k in range(8):
        torch.testing.assert_close(a[k].noise, other[k].noise[:2], rtol=0, atol=0)
    assert not torch.allclose(a.x_T, different.x_T)


def test_iterate_streams_and_can_stop_between_steps() -> None:
    denoiser = TinyUNetDenoiser("epsilon")
    seen: list[tuple[int, int]] = []
    stream = iterate(denoiser, num_inference_steps=50, progress=lambda done, total: seen.append((done, total)))
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert denoiser.calls == 3 and seen == [(1, 50), (2, 50), (3, 50)]
    full = sample(TinyUNetDenoiser("epsilon"), num_inference_steps=50)
    torch.testing.assert_close(first[2].x_prev, full[2].x_prev, rtol=0, atol=0)


def test_branch_reuses_the_prefix_and_the_noise_stream() -> None:
    denoiser = TinyUNetDenoiser("epsilon")
    run = sample(denoiser, sampler="ddpm", num_inference_steps=20, batch_size=2, seed=5)
    same = branch(run, denoiser, 7)
    torch.testing.assert_close(same.samples, run.samples, rtol=1e-5, atol=1e-5)  # restarts from the fp32 record
    changed = branch(run, denoiser, 7, sampler="ddim", eta=0.0, remaining_steps=5)
    assert len(changed) == 7 + 5 and changed.timesteps[7] == run.timesteps[7] and changed.timesteps[-1] == 0
    assert all(changed[k] is run[k] for k in range(7))
    torch.testing.assert_close(changed[7].x_t, run[7].x_t)
    ddpm_branch = branch(run, denoiser, 7, eta=0.0, clip_sample=True)
    for k in range(7, 20):
        torch.testing.assert_close(ddpm_branch[k].noise, run[k].noise, rtol=0, atol=0)
    with pytest.raises(ValueError, match="from_index"):
        branch(run, denoiser, 20)
    with pytest.raises(ValueError, match="branch can change only"):
        branch(run, denoiser, 3, seed=1)


def test_schedule_mismatch_runs_and_changes_the_result() -> None:
    denoiser = TinyUNetDenoiser("epsilon")
    own = sample(denoiser, num_inference_steps=10)
    cosine = sample(denoiser, num_inference_steps=10, schedule=Schedule.from_name("cosine", 1000))
    assert cosine.settings.schedule.name == "squaredcos_cap_v2"
    assert not torch.allclose(own.samples, cosine.samples)
    with pytest.raises(ValueError, match="T = 1000"):
        sample(denoiser, schedule=Schedule.from_name("linear", 500))


def test_zero_terminal_snr_refuses_epsilon_at_T_but_not_v() -> None:
    zsnr = Schedule.from_name("linear", 1000, rescale_zero_terminal_snr=True)
    with pytest.raises(ValueError, match="zero terminal SNR"):
        sample(TinyUNetDenoiser("epsilon", schedule=zsnr), num_inference_steps=10, spacing="trailing")
    leading = sample(TinyUNetDenoiser("epsilon", schedule=zsnr), num_inference_steps=10, spacing="leading")
    assert torch.isfinite(leading.samples).all()
    v_run = sample(TinyUNetDenoiser("v_prediction", schedule=zsnr), num_inference_steps=10, spacing="trailing")
    assert v_run.timesteps[0] == 999 and torch.isfinite(v_run[0].x0).all()
    torch.testing.assert_close(v_run[0].eps, v_run[0].x_t)  # no signal at ᾱ = 0: ε̂ = x_T


def test_one_step_and_full_length_runs() -> None:
    one = sample(TinyUNetDenoiser("sample"), num_inference_steps=1)
    assert len(one) == 1 and one[0].timestep == 0
    torch.testing.assert_close(one.samples, one[0].x0)
    ddim_one = sample(TinyUNetDenoiser("sample"), sampler="ddim", num_inference_steps=1, spacing="trailing")
    torch.testing.assert_close(ddim_one.samples, ddim_one[0].x0)


def test_nan_output_stops_the_run_naming_the_step() -> None:
    denoiser = TinyUNetDenoiser("epsilon")
    original = denoiser.predict

    def broken(x_t, timestep):
        out = original(x_t, timestep)
        return type(out)(out.prediction * (float("nan") if denoiser.calls >= 3 else 1.0))

    denoiser.predict = broken  # type: ignore[method-assign]
    with pytest.raises(FloatingPointError, match="step 3 of 10"):
        sample(denoiser, num_inference_steps=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_inference_steps=0), r"num_inference_steps must be a whole number in \[1, 1000\]"),
        (dict(num_inference_steps=1001), r"\[1, 1000\]"),
        (dict(num_inference_steps=10.5), "num_inference_steps"),
        (dict(eta=float("nan")), r"eta must be a finite number in \[0, 1\]"),
        (dict(eta=1.5), "eta"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=10**6), "batch_size"),
        (dict(seed=-1), "seed"),
        (dict(sampler="euler"), "ddpm, ddim"),
        (dict(variance="learned_range"), "learned-variance"),
        (dict(variance="tiny"), "fixed_small, fixed_large, learned_range"),
        (dict(spacing="random"), "leading, trailing, linspace"),
        (dict(timesteps=[5, 9]), "descending"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_settings(TinyUNetDenoiser("epsilon"), **kwargs)


def test_compact_form_keeps_the_views_and_fits_the_budget() -> None:
    trajectory = sample(TinyUNetDenoiser("epsilon", clip_sample=True), num_inference_steps=30, batch_size=4)
    compact = trajectory.compact()
    assert len(compact) == 30 and compact.x_t.shape == (30, 4, 1, 8, 8) and compact.x0.dtype == torch.float16
    assert compact.x_t.dtype == torch.float32  # exact restarts for branches
    assert compact.nbytes < trajectory.nbytes / 2
    for k in (0, 15, 29):
        for name in ("x_t", "x0", "eps", "v", "mean", "noise", "x0_clipped", "x_prev"):
            torch.testing.assert_close(compact.view(name, k), getattr(trajectory[k], name), rtol=2e-3, atol=2e-3)
    assert compact.clipped_fraction.shape == (30, 4) and float(compact.clipped_fraction[0].max()) > 0
    with pytest.raises(ValueError, match="step must be"):
        compact.view("x_t", 30)


def test_a_1000_step_batch_16_digits_run_fits_64_mib_in_compact_form() -> None:
    from explorer.diffusion.oracle import OptimalDenoiser

    digits_shaped = OptimalDenoiser(torch.rand(8, 1, 16, 16) * 2 - 1, Schedule.from_name("linear", 1000))
    run = sample(digits_shaped, num_inference_steps=1000, batch_size=16)
    compact = run.compact()
    assert len(compact) == 1000 and compact.nbytes < 64 * 2**20 < run.nbytes


# --- the denoiser contract and the one sampler entry --------------------------------------------------------


class PlainNetwork:
    """What a user writes around their own network: no base class, just the four attributes and a call."""

    def __init__(self, unet) -> None:
        self.unet = unet
        self.prediction = "epsilon"
        self.schedule = SHORT
        self.sample_shape = (1, 8, 8)
        self.name = "mine"

    def __call__(self, x_t: torch.Tensor, timestep) -> torch.Tensor:
        with torch.inference_mode():
            return self.unet(x_t.float(), timestep).sample * 3.0


def test_a_user_written_wrapper_and_a_plain_object_sample_like_a_denoiser() -> None:
    from explorer import wrap

    reference_model = TinyUNetDenoiser("epsilon", schedule=SHORT)
    expected = sample(reference_model, num_inference_steps=5, batch_size=2, seed=4)
    plain = PlainNetwork(reference_model.unet)
    wrapped = wrap(plain, prediction="epsilon", schedule=SHORT, sample_shape=(1, 8, 8), name="mine")
    for model in (wrapped, plain):  # the one-line wrapper, and the duck-typed object as it is
        run = sample(model, num_inference_steps=5, batch_size=2, seed=4)
        assert run.denoiser_name == "mine" and len(run) == 5
        torch.testing.assert_close(run.samples, expected.samples, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match=r"needs \.schedule"):
        sample(object.__new__(type("Partial", (), {"prediction": "epsilon", "sample_shape": (2,), "name": "p"})))
    with pytest.raises(ValueError, match="shaped like x_t"):
        sample(wrap(lambda x, t: x[:, :1], prediction="sample", schedule=SHORT, sample_shape=(2,)), batch_size=2)


def test_settings_are_checked_once_and_the_same_object_drives_every_entry() -> None:
    from explorer import CompactRecorder

    denoiser = TinyUNetDenoiser("v_prediction", schedule=SHORT, clip_sample=True)
    settings = resolve_settings(denoiser, sampler="ddim", num_inference_steps=7, eta=0.5, batch_size=3, seed=2)
    run = sample(denoiser, settings)
    assert run.settings is settings and run.timesteps.tolist() == list(settings.timesteps)
    recorder = CompactRecorder(denoiser.name, denoiser.prediction, settings)
    for step in iterate(denoiser, settings):
        recorder.add(step)
    compact = recorder.finish()
    from_run = run.compact()
    assert compact.nbytes == from_run.nbytes
    for name in ("x_t", "x0", "eps", "v", "mean", "noise", "std", "samples"):
        assert torch.equal(getattr(compact, name), getattr(from_run, name)), name
    with pytest.raises(ValueError, match="not both"):
        sample(denoiser, settings, num_inference_steps=3)
    with pytest.raises(ValueError, match="stopped after 2 of 7"):
        partial = CompactRecorder(denoiser.name, denoiser.prediction, settings)
        for step, _ in zip(iterate(denoiser, settings), range(2), strict=False):
            partial.add(step)
        partial.finish()


def test_a_compact_run_turns_back_into_a_trajectory_and_branches_directly() -> None:
    from explorer.diffusion.trajectory import compact_nbytes

    denoiser = TinyUNetDenoiser("sample", schedule=SHORT)
    run = sample(denoiser, num_inference_steps=8, batch_size=2, seed=1)
    compact = run.compact()
    assert compact.nbytes == compact_nbytes(8, 2, (1, 8, 8))  # what a run will need is known before it starts
    head = compact.to_trajectory(4)
    assert len(head) == 5 and head.settings is run.settings
    assert torch.equal(head[4].x_t, run[4].x_t)  # the restart state is the recorded float32 state itself
    torch.testing.assert_close(head[2].model_output, run[2].model_output, rtol=2e-3, atol=2e-3)
    rerun = branch(head, denoiser, 4)
    torch.testing.assert_close(rerun.samples, run.samples, rtol=0, atol=1e-5)


def test_a_branch_recorded_compactly_as_it_goes_equals_the_compacted_branch() -> None:
    from explorer import CompactRecorder
    from explorer.diffusion.sampler import branch_settings, iterate_branch

    denoiser = TinyUNetDenoiser("epsilon", schedule=SHORT, clip_sample=True)
    compact = sample(denoiser, num_inference_steps=9, batch_size=2, seed=5).compact()
    expected = branch(compact.to_trajectory(4), denoiser, 4, sampler="ddim", eta=0.3, remaining_steps=3).compact()
    settings = branch_settings(compact.settings, denoiser, 4, sampler="ddim", eta=0.3, remaining_steps=3)
    recorder = CompactRecorder.continuing(compact, 4, settings)
    for step in iterate_branch(denoiser, settings, compact.x_t[4], 4):
        recorder.add(step)
    got = recorder.finish()
    assert len(got) == 7 and got.timesteps.tolist() == expected.timesteps.tolist()
    for name in ("x_t", "x0", "eps", "v", "mean", "noise", "std", "clipped_fraction", "samples"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=0, atol=2e-3, msg=name)
    torch.testing.assert_close(got.x_t[:4], compact.x_t[:4], rtol=0, atol=0)  # the kept steps are the run's own
    with pytest.raises(ValueError, match="first 4 timesteps"):
        CompactRecorder.continuing(compact, 4, resolve_settings(denoiser, num_inference_steps=20))
