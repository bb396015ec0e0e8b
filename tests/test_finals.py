"""The final samples as the page draws them: large enough to judge, each with its nearest-training distance."""

from __future__ import annotations

import numpy as np
import torch

from explorer.data import Dataset, exact_training_set
from ui.run_pictures import finals_distances, finals_picture


def test_each_final_sample_gets_its_nearest_training_distance_and_the_median_is_said():
    data = exact_training_set(Dataset.DIGITS)
    samples = torch.randn((9, *data.shape[1:]), generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    index, distance, sentence = finals_distances(samples, data)
    flat = data.reshape(len(data), -1).double().numpy()
    for k, sample in enumerate(samples.reshape(9, -1).double().numpy()):  # brute force, one sample at a time
        gaps = np.sqrt(((flat - sample) ** 2).sum(axis=1))
        assert int(index[k]) == int(gaps.argmin()) and abs(float(distance[k]) - gaps.min()) < 1e-9
    assert f"{float(np.median(distance.numpy())):.3g}" in sentence and "not copies" in sentence
    _, copies, said = finals_distances(data[[3, 40, 7]].clone(), data)
    assert float(copies.max()) < 1e-6 and "copies of training examples" in said


def test_final_digits_are_drawn_at_least_twice_native_beside_their_neighbours():
    data = exact_training_set(Dataset.DIGITS)
    side = data.shape[-1]
    for count in (4, 16, 64):
        picture = finals_picture(data[:count].clone(), Dataset.DIGITS)
        columns = int(np.ceil(np.sqrt(count)))
        assert picture.width >= 2 * (2 * columns * side), (count, picture.size)  # two grids, each ≥ 2× native


def test_final_points_are_drawn_large_with_the_median_distance():
    data = exact_training_set(Dataset.MOONS)
    picture = finals_picture(data[:64].clone(), Dataset.MOONS)
    assert min(picture.size) >= 480


def test_final_points_of_a_model_without_a_known_data_set_are_drawn_too():
    points = torch.randn((32, 2), generator=torch.Generator().manual_seed(1))
    picture = finals_picture(points, None)
    assert min(picture.size) >= 480
