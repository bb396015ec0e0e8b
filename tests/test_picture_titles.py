"""Picture titles never run past their own panel: measured on the drawn PNG pixels, at the sizes the app uses."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from explorer.figures.images import MIN_TITLE_SIZE, labelled_row, title_lines, with_caption

# Titles the app draws (frames, decoded panels, final samples, exports), the longest ones included.
TITLES = [
    "x_t · the model's own VAE decoder",
    "x̂₀ · the model's own VAE decoder",
    "final samples · drawn by the linear latent→RGB projection",
    "nearest training digit (exact denoiser)",
    "ε̂ (±3)",
    "v̂ (±3)",
    "ε̂ (±3) predicted",
    "û (±4) from ε̂",
    "μ",
    "noise z",
    "x_{t−1}",
    "Supercalifragilisticexpialidocious_without_any_space_at_all",
]
WIDTHS = [16, 34, 64, 96, 128, 256, 512]  # native 16² and 28²-ish tiles up to ×8 panels
GAP = 8


def _ink_columns(row: Image.Image, header: int) -> np.ndarray:
    """Columns holding dark (text) pixels in the header band above the panels."""
    band = np.asarray(row.convert("L"))[:header]
    return np.flatnonzero((band < 128).any(axis=0))


@pytest.mark.parametrize("width", WIDTHS)
def test_no_title_runs_past_its_panel(width):
    panels = [(title, Image.new("RGB", (width, width), (128, 128, 128))) for title in TITLES]
    row = labelled_row(panels, gap=GAP)
    header = row.height - width
    assert header > 0
    columns = _ink_columns(row, header)
    assert len(columns) > 0  # titles were drawn
    starts = [k * (width + GAP) for k in range(len(panels))]
    inside = np.zeros(row.width, dtype=bool)
    for start in starts:
        inside[start : start + width] = True
    outside = columns[~inside[columns]]
    assert outside.size == 0, f"title ink in gap or neighbour columns {outside[:10]} at panel width {width}"
    # and every panel got its own ink: no title was dropped
    for start in starts:
        assert ((columns >= start) & (columns < start + width)).any()


def test_titles_wrap_at_spaces_and_break_only_words_too_wide():
    from explorer.figures.images import _title_font

    font = _title_font(MIN_TITLE_SIZE)
    lines = title_lines("x_t · the model's own VAE decoder", 60, font)
    assert " ".join(lines) == "x_t · the model's own VAE decoder" and len(lines) > 1
    broken = title_lines("a" * 80, 40, font)
    assert "".join(broken) == "a" * 80 and len(broken) > 1


def test_a_caption_is_never_cut():
    caption = "frame 30 of 30 · t = 20 → 0 · branch from frame 10 · drawn by the linear latent→RGB projection"
    picture = with_caption(Image.new("RGB", (64, 64), "white"), caption)
    band = np.asarray(picture.convert("L"))[64:]
    ink = np.flatnonzero((band < 128).any(axis=0))
    assert ink.size > 0 and ink.max() < picture.width - 1  # the picture widened to hold it, nothing clipped
