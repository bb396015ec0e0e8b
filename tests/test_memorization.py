"""Memorization: twin halves, the distances (against float64 NumPy written here), twin training options, twin
sampling from the same noise, and the shipped curves re-measured."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from explorer.data import MAX_TWIN_POINTS, Dataset, Half, twin_half
from explorer.diffusion.noise import initial_noise
from explorer.memorization import (
    COPY_FRACTION,
    SLOPE_SIZES,
    chance_copy_fraction,
    compare_twins,
    distance_slopes,
    loglog_slope,
    median_spacing,
    nearest,
)
from explorer.models.twins import twin_samples, twin_sizes
from tools.train import (
    LrDecay,
    TrainConfig,
    build_model,
    learning_rate_factor,
    parse_args,
    scheduler_config,
    training_data,
)

ROOT = Path(__file__).resolve().parents[1]
CURVES = ROOT / "docs" / "data" / "memorization.json"


# --- twin halves ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["moons", "ring"])
def test_twin_halves_are_disjoint_nested_and_cover_both_moons(data):
    a, b = twin_half(data, 512, "a"), twin_half(data, 512, "b")
    assert a.shape == b.shape == (512, 2)
    distances = torch.cdist(a.double(), b.double())
    assert float(distances.min()) > 0  # no example in both halves
    assert torch.equal(twin_half(data, 64, "a"), a[:64])  # a larger N only adds examples
    if data == "moons":  # the raw draw is ordered by moon: the halves must be shuffled, so both moons appear
        assert (a[:8, 1] > 0.3).any() and (a[:8, 1] < 0.3).any()


@pytest.mark.parametrize("n", [0, MAX_TWIN_POINTS + 1, 2.5, True])
def test_twin_half_refuses_a_size_out_of_range(n):
    with pytest.raises(ValueError, match=r"train size \(N\) must be an integer in \[1, 8192\]"):
        twin_half("moons", n, "a")


# --- distances -----------------------------------------------------------------------------------------------


def _reference_nearest(queries: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1))
    return d.min(axis=1), d.argmin(axis=1)


def test_nearest_and_spacing_match_a_brute_force_reference():
    rng = np.random.default_rng(0)
    queries, data = rng.normal(size=(300, 5)), rng.normal(size=(70, 5))
    distance, index = nearest(torch.from_numpy(queries), torch.from_numpy(data))
    want_distance, want_index = _reference_nearest(queries, data)
    np.testing.assert_allclose(distance.numpy(), want_distance, rtol=1e-12)
    np.testing.assert_array_equal(index.numpy(), want_index)
    pairwise = np.sqrt(((data[:, None] - data[None]) ** 2).sum(-1)) + np.diag(np.full(len(data), np.inf))
    assert median_spacing(torch.from_numpy(data)) == pytest.approx(np.median(pairwise.min(axis=1)), rel=1e-12)


def test_images_are_compared_flattened():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float64).reshape(2, 3, 4, 4)
    distance, index = nearest(images[:1] + 0.5, images)
    assert index.tolist() == [0] and distance.item() == pytest.approx(0.5 * math.sqrt(48))


def test_twins_that_copy_their_own_halves_copy_and_disagree():
    train_a = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    train_b = torch.tensor([[2.0, 2.0], [6.0, 2.0], [2.0, 6.0]])
    result = compare_twins(train_a[[0, 1, 2, 0]], train_b[[0, 1, 2, 0]], train_a, train_b)
    assert result.copies_a.all() and result.copies_b.all() and result.copy_fraction == 1.0
    assert result.agreement == 0.0  # ‖a − b‖ = √8 > 0 = each one's distance to its own nearest example
    np.testing.assert_allclose(result.twin, math.sqrt(8))
    np.testing.assert_array_equal(result.nearest_own_a, [0, 1, 2, 0])
    assert result.spacing_a == pytest.approx(4.0)


def test_twins_that_make_the_same_new_sample_agree_and_do_not_copy():
    train_a = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    train_b = train_a + 0.5
    new = torch.tensor([[2.0, 2.0], [-1.0, -1.0]])  # far from every example
    result = compare_twins(new, new + 1e-3, train_a, train_b)
    assert result.agreement == 1.0 and result.copy_fraction == 0.0
    # one sample 1e-3 from its own nearest example copies; the pair no longer agrees (‖a − b‖ ≈ 2.8 > 1e-3)
    close = compare_twins(torch.tensor([[4.001, 0.0]]), torch.tensor([[2.0, 2.0]]), train_a, train_b)
    assert close.copies_a.tolist() == [True] and close.agreement == 0.0


def test_digit_twins_are_drawn_as_a_table_of_pictures_with_their_nearest_examples():
    """Pictures go through the same figure call as points: one PNG, one column per noise, six rows, and the tile
    under twin a is its nearest training example (read back from the PNG)."""
    import base64
    import io

    from PIL import Image

    from explorer.figures.memorization import DIGIT_SCALE, twins_figure
    from explorer.models.twins import TwinSamples

    generator = torch.Generator().manual_seed(0)
    train_a, train_b = (torch.rand(6, 1, 16, 16, generator=generator, dtype=torch.float64) * 2 - 1 for _ in "ab")
    samples_a = train_a[[3, 1, 4]] + 0.01  # copies of examples 3, 1 and 4 of a
    samples_b = train_b[[0, 0, 2]] - 0.01
    drawn = TwinSamples(Dataset.DIGITS, 6, samples_a, samples_a, samples_b, samples_a, samples_b, train_a, train_b)
    comparison = compare_twins(samples_a, samples_b, train_a, train_b)
    figure = twins_figure(drawn, comparison)
    (image,) = figure.data
    assert (
        image.type == "image"
        and "N = 6 per twin" in figure.layout.title.text
        and "100% of samples copy" in (figure.layout.title.text)
    )
    picture = Image.open(io.BytesIO(base64.b64decode(image.source.split(",", 1)[1]))).convert("L")
    tile = 16 * DIGIT_SCALE
    assert picture.height >= 6 * tile and picture.width >= 3 * tile
    pixels = np.asarray(picture, dtype=np.int64)
    # find the first column's tiles by their content: twin a's sample and, under it, example 3 of a
    expected = (
        ((train_a[3, 0].numpy() + 1) * 127.5).round().astype(np.int64).repeat(DIGIT_SCALE, 0).repeat(DIGIT_SCALE, 1)
    )
    hits = [
        (y, x)
        for y in range(pixels.shape[0] - tile + 1)
        for x in range(0, min(pixels.shape[1] - tile + 1, 400))
        if pixels[y, x] == expected[0, 0] and np.array_equal(pixels[y : y + tile, x : x + tile], expected)
    ]
    assert len(hits) == 1  # example 3 is drawn once, as the nearest training example of noise 0's twin a


def test_chance_copy_fraction_is_the_share_of_fresh_points_within_the_threshold():
    rng = np.random.default_rng(1)
    train, fresh = rng.normal(size=(200, 2)), rng.normal(size=(1000, 2))
    pairwise = np.sqrt(((train[:, None] - train[None]) ** 2).sum(-1)) + np.diag(np.full(len(train), np.inf))
    threshold = COPY_FRACTION * np.median(pairwise.min(axis=1))
    want = float((_reference_nearest(fresh, train)[0] < threshold).mean())
    assert chance_copy_fraction(torch.from_numpy(fresh), torch.from_numpy(train)) == pytest.approx(want)


# --- training options ------------------------------------------------------------------------------------------


def _argv(*extra: str) -> list[str]:
    return ["--data", "moons", "--prediction", "epsilon", "--steps", "100", "--out", "x", *extra]


def test_loglog_slope_is_the_least_squares_exponent_and_refuses_what_has_none():
    sizes = np.array([256, 1024, 4096])
    assert loglog_slope(sizes, 3.0 * sizes**-0.5) == pytest.approx(-0.5, abs=1e-12)  # an exact power law
    values = np.array([0.07, 0.063, 0.034])
    x, y = np.log(sizes), np.log(values)  # the normal equations of a straight-line fit, written out
    expected = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert loglog_slope(sizes, values) == pytest.approx(expected, rel=1e-12)
    for bad in ([1.0], [0.1, 0.0, 0.2]):
        with pytest.raises(ValueError, match="a slope needs"):
            loglog_slope(sizes[: len(bad)], bad)


def test_distance_slopes_fit_the_largest_sizes_only():
    sizes = [4, 16, 64, 256, 1024]
    curves = {  # the two smallest sizes break the power law: they must not count
        "sizes": sizes,
        "median_twin_distance": [9.0, 0.001] + [2.0 * n**-0.25 for n in sizes[2:]],
        "median_own_distance": [1e-6, 5.0] + [0.7 * n**-0.5 for n in sizes[2:]],
    }
    assert SLOPE_SIZES == 3
    slopes = distance_slopes(curves)
    assert slopes["median_twin_distance"] == pytest.approx(-0.25, abs=1e-12)
    assert slopes["median_own_distance"] == pytest.approx(-0.5, abs=1e-12)
    fewer = {key: values[-(SLOPE_SIZES - 1) :] for key, values in curves.items()}
    assert distance_slopes(fewer) == {}  # too few sizes for an exponent: none, not a fit through two points


def test_the_curves_figure_draws_both_distances_with_their_measured_exponents():
    from explorer.figures.memorization import curves_figure

    curves = _record(0.12)["datasets"]["moons"]
    figure = curves_figure(curves, "moons")
    slopes = distance_slopes(curves)
    by_name = {trace.name: trace for trace in figure.data if trace.xaxis == "x4"}  # the log-log panel
    twin = by_name[f"‖a − b‖ ∝ N<sup>{slopes['median_twin_distance']:+.2f}</sup>".replace("-", "−")]
    own = by_name[f"to nearest own ∝ N<sup>{slopes['median_own_distance']:+.2f}</sup>".replace("-", "−")]
    assert list(twin.y) == curves["median_twin_distance"] and list(own.y) == curves["median_own_distance"]
    assert figure.layout.yaxis4.type == "log" and figure.layout.xaxis4.type == "log"
    agreement = [trace for trace in figure.data if trace.xaxis == "x2" and trace.name == "twins (networks)"]
    assert list(agreement[0].y) == curves["agreement"]


def test_twin_options_parse_into_the_config_and_default_to_the_old_behaviour():
    old = parse_args(_argv())
    assert old.train_size is None and old.lr_decay is LrDecay.CONSTANT and old.hidden_dim == 128
    config = parse_args(_argv("--train-size", "64", "--subset", "b", "--hidden-dim", "32", "--lr-decay", "cosine"))
    assert config.train_size == 64 and config.subset is Half.B and config.hidden_dim == 32
    assert torch.equal(training_data(config.data, 0, config.train_size, config.subset), twin_half("moons", 64, "b"))
    assert sum(p.numel() for p in build_model(Dataset.MOONS, config).parameters()) < 10_000


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--train-size", "0"), r"--train-size must be an integer in [1, 8192]"),
        (("--data", "digits", "--train-size", "2001"), r"--train-size must be an integer in [1, 2000]"),
        (("--subset", "c"), "invalid choice"),
        (("--time-embed-dim", "15"), "--time-embed-dim must be even"),
    ],
)
def test_twin_options_refuse_bad_values(extra, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(_argv(*extra))
    assert message in capsys.readouterr().err


def test_cosine_decay_warms_up_then_falls_to_zero_at_the_last_step():
    config = TrainConfig(Dataset.MOONS, parse_args(_argv()).prediction, 1000, 0, "x", warmup_steps=100)
    cosine = TrainConfig(**{**config.__dict__, "lr_decay": LrDecay.COSINE})
    assert [learning_rate_factor(config, s) for s in (0, 99, 500, 999)] == [0.01, 1.0, 1.0, 1.0]
    assert learning_rate_factor(cosine, 99) == 1.0 and learning_rate_factor(cosine, 100) == 1.0
    assert learning_rate_factor(cosine, 550) == pytest.approx(0.5)  # half-way through the decay
    assert learning_rate_factor(cosine, 1000) == pytest.approx(0.0, abs=1e-12)


# --- twin sampling -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_twins(tmp_path_factory) -> Path:
    """Random-weight twins of moons at N = 4 and N = 16 (and a lone a at N = 64), saved as the shipped ones are."""
    root = tmp_path_factory.mktemp("twins")
    config = parse_args(_argv("--hidden-dim", "8", "--hidden-layers", "1", "--time-embed-dim", "4"))
    for n, halves in ((4, "ab"), (16, "ab"), (64, "a")):
        for half in halves:
            folder = root / f"moons-n{n:04d}-{half}"
            torch.manual_seed(0)
            build_model(Dataset.MOONS, config).save_pretrained(folder, safe_serialization=True)
            DDPMScheduler(**scheduler_config(Dataset.MOONS, config.prediction)).save_pretrained(folder)
    return root


def test_twin_sizes_lists_only_complete_pairs(tiny_twins):
    assert twin_sizes("moons", tiny_twins) == (4, 16) and twin_sizes("ring", tiny_twins) == ()


def test_twins_and_exact_denoisers_start_from_the_same_noise(tiny_twins):
    drawn = twin_samples("moons", 4, count=50, seed=3, root=tiny_twins)
    assert drawn.model_a.shape == drawn.model_b.shape == drawn.exact_a.shape == (50, 2)
    torch.testing.assert_close(drawn.noise, initial_noise(3, (50, 2)).double())  # x_T of seed 3, as every run draws it
    # identical weights (the same seed) on the same noise: the same samples, whatever the data
    torch.testing.assert_close(drawn.model_a, drawn.model_b)
    # the exact denoiser of 4 points copies them: every sample within the copy threshold of its own half
    exact = compare_twins(drawn.exact_a, drawn.exact_b, drawn.train_a, drawn.train_b)
    assert exact.copy_fraction == 1.0
    own, _ = _reference_nearest(drawn.exact_a.numpy(), drawn.train_a.numpy())
    np.testing.assert_allclose(exact.own_a, own, rtol=1e-9, atol=1e-12)


# --- the shipped twins and curves -------------------------------------------------------------------------------


@pytest.mark.skipif(not CURVES.is_file(), reason="the curves were not measured yet")
def test_the_shipped_curves_are_what_the_shipped_twins_measure_now():
    """Re-measure the smallest N of moons with the script's settings: the JSON holds measured numbers."""
    from scripts.memorization import checks, measure

    record = json.loads(CURVES.read_text())
    curves = record["datasets"]["moons"]
    assert tuple(curves["sizes"]) == twin_sizes("moons")
    again = measure(Dataset.MOONS, record["samples"], record["seed"], sizes=curves["sizes"][:1])
    for key in ("copy_fraction", "agreement", "exact_copy_fraction"):  # counts of samples: exact
        assert again[key][0] == pytest.approx(curves[key][0], abs=1e-9), key
    # A float32 network's output: equal to float32 rounding (threads may sum in another order).
    assert again["median_twin_distance"][0] == pytest.approx(curves["median_twin_distance"][0], rel=1e-6)
    assert checks(curves) == curves["checks"]
    for name, measured in record["datasets"].items():  # the exponents the script wrote are those of its curves
        assert measured["slopes"] == pytest.approx(distance_slopes(measured), rel=1e-12), name


@pytest.mark.skipif(not CURVES.is_file(), reason="the curves were not measured yet")
def test_the_shipped_twins_are_small_and_carry_cards_with_their_n():
    folders = sorted((ROOT / "pretrained" / "twins").iterdir())
    points = [folder for folder in folders if not folder.name.startswith("digits")]
    assert sum(f.stat().st_size for folder in points for f in folder.iterdir()) < 1_200_000  # 24 small MLPs
    for folder in set(folders) - set(points):  # the bundled digits UNet (160,345 float32 weights) and its card
        assert sum(f.stat().st_size for f in folder.iterdir()) < 700_000, folder.name
    for folder in folders:
        assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
        n = json.loads((folder / "training.json").read_text())["recipe"]["train_size"]
        assert f"N = {n:,} examples" in (folder / "README.md").read_text()


# --- the view's words come from the measured numbers ------------------------------------------------------------------


def _record(agree_last: float) -> dict:
    curves = {
        "sizes": [4, 64, 4096],
        "copy_fraction": [0.97, 0.4, 0.03],
        "copy_fraction_a": [0.96, 0.4, 0.02],
        "copy_fraction_b": [0.98, 0.4, 0.04],
        "chance_copy_fraction": [0.2, 0.06, 0.05],
        "agreement": [0.0, 0.31, agree_last],
        "exact_copy_fraction": [1.0, 0.9, 0.2],
        "exact_agreement": [0.0, 0.0, 0.01],
        "median_twin_distance": [0.9, 0.1, 0.0354],
        "median_own_distance": [0.01, 0.05, 0.0115],
        "median_other_distance": [0.5, 0.06, 0.0113],
        "exact_median_own_distance": [0.0, 0.01, 0.005],
        "median_spacing": [1.0, 0.1, 0.0114],
    }
    from scripts.memorization import checks

    curves["checks"] = checks(curves)
    return {
        "samples": 10,
        "sampler": "DDIM",
        "command": "cmd",
        "copy_target": 0.9,
        "agree_target": 0.5,
        "datasets": {"moons": curves},
    }


def test_the_summary_reads_the_measured_numbers_and_says_when_a_check_fails():
    from ui.memorization import TwinData, curves_markdown

    failing = curves_markdown(_record(0.12), TwinData.MOONS)
    assert "96% of twin a's and 98% of twin b's" in failing and "at most 31% (N = 64)" in failing
    assert "at the largest N: **no**" in failing and "0.0354" in failing and "Why the twins rarely agree" in failing
    own = loglog_slope([4, 64, 4096], [0.01, 0.05, 0.0115])  # the record's three sizes, the largest
    twin = loglog_slope([4, 64, 4096], [0.9, 0.1, 0.0354])
    assert f"comes closer as N^{own:+.2f}".replace("-", "−") in failing
    assert f"come together only as N^{twin:+.2f}".replace("-", "−") in failing
    assert "digits twins" not in failing  # no digits curves in this record
    with_digits = _record(0.12)
    with_digits["datasets"]["digits"] = {**with_digits["datasets"]["moons"], "sizes": [4, 64, 2000]}
    with_digits["datasets"]["digits"]["agreement"] = [0.0, 0.1, 0.73]
    assert "agree on 73% of the noises at N = 2000" in curves_markdown(with_digits, TwinData.MOONS)
    passing = curves_markdown(_record(0.8), TwinData.MOONS)
    assert "at the largest N: **yes**" in passing and "Why the twins rarely agree" not in passing
    assert "copies ≥ 90% at the smallest N: **yes**" in passing
    assert "lands between a few of its own examples: median distance 0.0050" in failing  # 0.005 > 0.25 × 0.0114
    copying = _record(0.8)
    copying["datasets"]["moons"]["exact_median_own_distance"][-1] = 0.0  # far apart examples: the exact one copies
    assert "so it lands on one of them (median distance 0.0000)" in curves_markdown(copying, TwinData.MOONS)


def test_the_n_slider_picks_the_nearest_shipped_size_and_refuses_a_far_one(monkeypatch):
    import ui.memorization as view

    monkeypatch.setattr(view, "twin_sizes", lambda data: (4, 16))
    assert view._size(view.TwinData.RING, 4) == 16 and view._size(view.TwinData.RING, 2) == 4
    assert view._size(view.TwinData.RING, 3) == 4  # 8 is one octave from both: the smaller
    with pytest.raises(ValueError, match=r"no twins of ring near N = 64: the shipped sizes are 4 \(log₂ N = 2\)"):
        view._size(view.TwinData.RING, 6)
    with pytest.raises(ValueError, match=r"log₂ N must be a whole number in \[2, 12\]"):
        view._size(view.TwinData.RING, float("nan"))
    monkeypatch.setattr(view, "twin_sizes", lambda data: (4, 1024, 2000))  # the digits halves top out at 2,000
    assert view._size(view.TwinData.DIGITS, 12) == 2000 and view._size(view.TwinData.DIGITS, 10) == 1024


@pytest.mark.skipif(not CURVES.is_file(), reason="the curves were not measured yet")
def test_the_tab_fills_on_open_and_only_when_a_link_opens_on_it():
    import gradio as gr

    from ui.memorization import OPEN_OUTPUTS, open_memorization, open_memorization_if_shown

    twins, numbers, curves, summary = open_memorization("ring", 2, 0)
    assert "N = 4 per twin" in numbers and "N = 4 per twin" in twins.layout.title.text
    assert len(curves.data) == 8 and "What the curves show" in summary  # 6 curves, and 2 distances
    skipped = open_memorization_if_shown("sampling", "ring", 2, 0)
    assert len(skipped) == OPEN_OUTPUTS and all(isinstance(s, type(gr.skip())) for s in skipped)
    with pytest.raises(gr.Error, match="log₂ N"):
        open_memorization_if_shown("sampling", "ring", 13, 0)  # checked even when the tab is not shown


def test_a_link_restores_the_memorization_tab_and_its_slider():
    from app_fixtures import FakeRequest

    import app

    request = FakeRequest("memo-link")
    request.query_params = {"tab": "memorization", "mem_n": "6", "mem_data": "ring"}
    _tabs, tab_id, _frame, _present, *values = app.restore_page(request)
    got = dict(zip(app.controls, values, strict=True))
    assert tab_id == "memorization" and got["mem_n"] == 6 and got["mem_data"] == "ring"
