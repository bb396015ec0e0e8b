"""Animations written a frame at a time (explorer.figures.streams): what Pillow and imageio read back."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
from PIL import Image

from explorer.figures.streams import GifStream, Mp4Stream


def few_colours(seed: int, size: tuple[int, int] = (37, 23)) -> np.ndarray:
    """An RGB picture [H, W, 3] of at most 16 colours: an adaptive palette keeps it exactly."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    return palette[rng.integers(0, 16, (size[1], size[0]))]


def test_a_streamed_gif_reads_back_frame_by_frame(tmp_path):
    frames = [few_colours(seed) for seed in range(5)]
    gif = GifStream(tmp_path / "a.gif", (37, 23))
    for k, frame in enumerate(frames):
        gif.add(Image.fromarray(frame), 83 if k < 4 else 1083)
    path = gif.close()
    assert gif.bytes_written == path.stat().st_size
    with Image.open(path) as animation:
        assert animation.n_frames == 5 and animation.size == (37, 23) and animation.info.get("loop") == 0
        for k, frame in enumerate(frames):
            animation.seek(k)
            assert animation.info["duration"] == (80 if k < 4 else 1080)
            assert np.array_equal(np.asarray(animation.convert("RGB")), frame), f"frame {k}"


def test_frames_are_pasted_on_the_first_frames_canvas(tmp_path):
    gif = GifStream(tmp_path / "b.gif", (20, 10))
    big, small = few_colours(1, (30, 12)), few_colours(2, (8, 6))
    gif.add(Image.fromarray(big), 100)
    gif.add(Image.fromarray(small), 100)
    with Image.open(gif.close()) as animation:
        animation.seek(0)
        assert np.array_equal(np.asarray(animation.convert("RGB")), big[:10, :20])  # cropped
        animation.seek(1)
        second = np.asarray(animation.convert("RGB"))
        assert np.array_equal(second[:6, :8], small) and (second[6:] == 255).all()  # on white


def test_a_streamed_mp4_has_every_frame_and_even_sides(tmp_path):
    mp4 = Mp4Stream(tmp_path / "c.mp4", (37, 23), fps=12)
    for seed in range(3):
        mp4.add(Image.fromarray(few_colours(seed)), repeats=2 if seed == 2 else 1)
    path = mp4.close()
    reader = imageio.get_reader(path)
    assert reader.count_frames() == 4 and reader.get_data(0).shape == (24, 38, 3)
