"""explorer.data: the fixed digits split and the seeded 2-D point sets."""

import math

import pytest
import torch

from explorer.data import Dataset, Split, digits, points, ring, two_moons


def test_digits_split_sizes_shapes_and_range():
    train, held_out = digits("train"), digits(Split.HELD_OUT)
    assert train.images.shape == (4000, 1, 16, 16) and held_out.images.shape == (1000, 1, 16, 16)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    for part in (train, held_out):
        assert float(part.images.min()) == -1.0 and float(part.images.max()) <= 1.0
        assert float(part.images.max()) > 0.9  # strokes reach full intensity
    assert torch.bincount(held_out.labels, minlength=10).tolist() == [100] * 10
    assert torch.bincount(train.labels, minlength=10).tolist() == [400] * 10


def test_digits_split_is_fixed_and_disjoint():
    first, second = digits("held_out"), digits("held_out")
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    train = digits("train").images.flatten(1)
    held_out = first.images.flatten(1)
    assert float(torch.cdist(held_out, train).min()) > 0.0  # no held-out digit is also a training digit


def test_digits_are_copies():
    images = digits("train").images
    images[0] = 5.0
    assert float(digits("train").images.max()) <= 1.0


def test_bad_split_names_the_choices():
    with pytest.raises(ValueError, match="train, held_out"):
        digits("test")


@pytest.mark.parametrize("make", [two_moons, ring])
def test_points_are_seeded_and_roughly_unit_scale(make):
    a, b, c = make(5000, 1), make(5000, 1), make(5000, 2)
    assert a.shape == (5000, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.mean(dim=0).abs().max() < 0.1
    assert ((a.std(dim=0) > 0.5) & (a.std(dim=0) < 1.5)).all()


def test_ring_has_eight_modes_on_its_circle():
    x = ring(8000, 0)
    radius = x.norm(dim=1)
    assert (radius - math.sqrt(2)).abs().mean() < 0.15
    sector = torch.round(torch.atan2(x[:, 1], x[:, 0]) / (2 * math.pi / 8)).long() % 8
    counts = torch.bincount(sector, minlength=8)
    assert counts.min() > 800 and counts.max() < 1200


def test_moons_has_two_halves():
    x = two_moons(1001, 0)
    upper, lower = x[:501], x[501:]
    assert upper[:, 1].mean() > lower[:, 1].mean()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_counts_are_refused(bad):
    with pytest.raises(ValueError, match="n"):
        two_moons(bad, 0)


def test_points_dispatch_and_refuse_digits():
    assert torch.equal(points("moons", 10, 3), two_moons(10, 3))
    assert torch.equal(points(Dataset.RING, 10, 3), ring(10, 3))
    with pytest.raises(ValueError, match="2-D"):
        points("digits", 10, 0)
    with pytest.raises(ValueError, match="digits, moons, ring"):
        Dataset.parse("spiral")
