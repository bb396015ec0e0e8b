"""Pictures of samples: image grids and 2-D scatter frames as PIL images, and GIF/MP4 export.

Images are [B, C, H, W] tensors in [−1, 1] (values outside are clipped for display only). Upscaling is
nearest-neighbour so that one pixel of noise stays one sharp block; frames are meant to be saved as PNG
(lossy WebP smears noise).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

GRID_GAP = 2  # pixels between tiles, before upscaling
GAP_VALUE = 255  # white gaps: tiles of noise stay distinguishable
TITLE_SIZE = 15  # px, a picture title's font size
MIN_TITLE_SIZE = 9  # px: a title shrinks no further, it wraps (and a word that still does not fit is broken)
LINE_GAP = 3


def to_uint8(images: torch.Tensor, *, symmetric: bool = False) -> np.ndarray:
    """[B, C, H, W] in [−1, 1] → uint8 [B, H, W, C]. `symmetric` maps [−m, m] (m = max |x|) instead."""
    array = images.detach().to(torch.float32).cpu()
    if symmetric:
        scale = float(array.abs().amax()) or 1.0
        array = array / scale
    array = torch.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0).clamp(-1, 1)
    return ((array + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def png_data_url(picture: Image.Image) -> str:
    """A picture as a PNG data URL (lossless: noise stays noise)."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def upscale(picture: Image.Image, factor: int) -> Image.Image:
    """`picture` `factor`× larger with nearest neighbour (one pixel stays one sharp block)."""
    if factor == 1:
        return picture
    return picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)


def grid(tiles: np.ndarray, *, columns: int | None = None, scale: int = 4) -> Image.Image:
    """Lay uint8 tiles [B, H, W, C] out in a grid with white gaps, upscaled `scale`× with nearest neighbour."""
    count, height, width, channels = tiles.shape
    columns = max(1, min(columns or count, count))
    rows = -(-count // columns)
    canvas = np.full(
        (rows * (height + GRID_GAP) - GRID_GAP, columns * (width + GRID_GAP) - GRID_GAP, channels),
        GAP_VALUE,
        dtype=np.uint8,
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + GRID_GAP), column * (width + GRID_GAP)
        canvas[top : top + height, left : left + width] = tiles[index]
    return upscale(Image.fromarray(canvas[..., 0] if channels == 1 else canvas), scale)


def image_grid(
    images: torch.Tensor, *, columns: int | None = None, scale: int = 4, symmetric: bool = False
) -> Image.Image:
    """A batch [B, C, H, W] in [−1, 1] as one upscaled grid picture."""
    return grid(to_uint8(images, symmetric=symmetric), columns=columns, scale=scale)


def labelled_grid(tiles: Sequence[Image.Image], labels: Sequence[str], *, columns: int, size: int = 11) -> Image.Image:
    """Pictures of one size in a grid, each with its short label (e.g. a distance) centred under it.

    The font shrinks (to MIN_TITLE_SIZE) until the widest label fits a tile; a label still wider widens every
    cell, so a label never runs under its neighbour."""
    width, height = tiles[0].size
    font_size = size
    while font_size > MIN_TITLE_SIZE and max(text_width(label, _title_font(font_size)) for label in labels) > width:
        font_size -= 1
    font = _title_font(font_size)
    ascent, descent = font.getmetrics()
    cell = max(width, max(round(text_width(label, font)) for label in labels))
    cell_w, cell_h = cell + 2 * GRID_GAP, height + ascent + descent + 2 * LINE_GAP + GRID_GAP
    rows = -(-len(tiles) // columns)
    canvas = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        left, top = (k % columns) * cell_w + GRID_GAP, (k // columns) * cell_h
        canvas.paste(tile.convert("RGB"), (left + (cell - width) // 2, top))
        text = text_width(label, font)
        draw.text((left + (cell - text) / 2, top + height + LINE_GAP), label, fill="black", font=font)
    return canvas


def scatter_frame(
    points: torch.Tensor | np.ndarray,
    *,
    size: int = 256,
    extent: float = 3.0,
    reference: np.ndarray | None = None,
) -> Image.Image:
    """2-D points [N, 2] drawn as dots on a square picture of [−extent, extent]², over grey reference data."""
    picture = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(picture)

    def pixels(xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, dtype=np.float64) + extent) / (2 * extent) * (size - 1)

    draw.line([(size / 2, 0), (size / 2, size)], fill=(225, 225, 225))
    draw.line([(0, size / 2), (size, size / 2)], fill=(225, 225, 225))
    if reference is not None:
        for x, y in pixels(reference):
            draw.point((x, size - 1 - y), fill=(190, 190, 190))
    values = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    for x, y in pixels(values[np.all(np.isfinite(values), axis=1)]):
        draw.ellipse((x - 1.5, size - 1 - y - 1.5, x + 1.5, size - 1 - y + 1.5), fill=(31, 119, 180))
    return picture


def export_gif(frames: Sequence[Image.Image], path: str | Path, *, fps: float = 12.0, hold_last: float = 0.0) -> Path:
    """Write frames as a looping GIF, the last one shown `hold_last` seconds longer; returns the path."""
    path = Path(path)
    first, *rest = [frame.convert("P", palette=Image.Palette.ADAPTIVE) for frame in frames]
    duration = max(20, round(1000 / fps))
    durations = [duration] * len(frames)
    durations[-1] += round(1000 * hold_last)
    first.save(path, save_all=True, append_images=rest, duration=durations, loop=0)
    return path


def export_mp4(frames: Sequence[Image.Image], path: str | Path, *, fps: float = 12.0, hold_last: float = 0.0) -> Path:
    """Write frames as an H.264 MP4 with imageio's bundled ffmpeg, the last one repeated for `hold_last` seconds;
    sides are padded to even sizes."""
    import imageio.v2 as imageio

    path = Path(path)
    width, height = frames[0].size
    even = (width + width % 2, height + height % 2)
    repeats = [1] * len(frames)
    repeats[-1] += round(hold_last * fps)
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1) as writer:
        for frame, count in zip(frames, repeats, strict=True):
            canvas = Image.new("RGB", even, "white")
            canvas.paste(frame.convert("RGB"))
            for _ in range(count):
                writer.append_data(np.asarray(canvas))
    return path


def _title_font(size: int = TITLE_SIZE):
    """DejaVu Sans when installed (it has x̂₀, ε̂, μ), else Pillow's default font."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def text_width(text: str, font) -> float:
    """The width `text` takes in `font`, in pixels (measured, as Pillow draws it)."""
    return ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font)


def title_lines(title: str, width: int, font) -> list[str]:
    """`title` broken into lines that each fit `width` pixels in `font`: at spaces and at ' · ' where possible,
    inside a word only when the word alone is wider than the panel. Pure layout, from measured text widths."""

    def fits(text: str) -> bool:
        return text_width(text, font) <= width

    lines: list[str] = []
    for word in title.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and fits(candidate):
            lines[-1] = candidate
            continue
        while not fits(word) and len(word) > 1:  # a word wider than the panel: break it where it stops fitting
            cut = max(1, next((k for k in range(len(word), 0, -1) if fits(word[:k])), 1))
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines or [""]


MAX_TITLE_WORD = 160  # px: a column widens for its title's longest word up to this; a longer word is broken


def title_column(title: str, width: int) -> int:
    """The width of a panel's column: the panel's `width`, or wider where the title's longest word (at
    MIN_TITLE_SIZE) needs it, so that a title wraps between words instead of inside one (up to MAX_TITLE_WORD)."""
    font = _title_font(MIN_TITLE_SIZE)
    longest = max((text_width(word, font) for word in title.split()), default=0.0)
    return max(width, min(math.ceil(longest) + 4, MAX_TITLE_WORD))


def _fitted_titles(titles: Sequence[str], widths: Sequence[int]) -> tuple[object, list[list[str]]]:
    """One font size for every title of a row (the largest from TITLE_SIZE down to MIN_TITLE_SIZE at which each
    title fits its column in at most two lines without breaking a word), and each title's lines at that size."""
    for size in range(TITLE_SIZE, MIN_TITLE_SIZE - 1, -1):
        font = _title_font(size)
        laid = [title_lines(title, max(width - 4, 1), font) for title, width in zip(titles, widths, strict=True)]
        unbroken = all(" ".join(lines).split() == title.split() for title, lines in zip(titles, laid, strict=True))
        if (unbroken and all(len(lines) <= 2 for lines in laid)) or size == MIN_TITLE_SIZE:
            return font, laid
    raise AssertionError("unreachable")


def labelled_row(panels: Sequence[tuple[str, Image.Image]], *, gap: int = 8) -> Image.Image:
    """Pictures side by side, each with its title above it (white background).

    Titles are laid out from their measured width: each panel has a column (`title_column`: wider than a narrow
    picture where the title's longest word needs it), titles shrink (to MIN_TITLE_SIZE) and wrap between words
    within their own column, never over a neighbour; the header is as tall as the longest title needs."""
    titles = [title for title, _ in panels]
    columns = [title_column(title, picture.width) for title, picture in panels]
    font, laid = _fitted_titles(titles, columns)
    ascent, descent = font.getmetrics()
    line_height = ascent + descent
    header = max(len(lines) for lines in laid) * line_height + 4
    width = sum(columns) + gap * (len(panels) - 1)
    height = max(p.height for _, p in panels) + header
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    left = 0
    for (_, picture), lines, column in zip(panels, laid, columns, strict=True):
        for row, line in enumerate(lines):
            draw.text((left + 2, 2 + row * line_height), line, fill="black", font=font)
        canvas.paste(picture.convert("RGB"), (left, header))
        left += column + gap
    return canvas


ROW_TITLE_WIDTH = 180  # px: a table's row titles wrap within this


def labelled_table(
    rows: Sequence[tuple[str, Sequence[Image.Image]]], columns: Sequence[str], *, gap: int = 6
) -> Image.Image:
    """Pictures of one size in a table: a line of column labels on top (e.g. "t = 981"), each row's title on its
    left. Laid out from measured text widths: the column labels shrink (to MIN_TITLE_SIZE) and then widen the
    columns; row titles wrap between words within ROW_TITLE_WIDTH."""
    width, height = rows[0][1][0].size
    size = TITLE_SIZE
    while size > MIN_TITLE_SIZE and max(text_width(label, _title_font(size)) for label in columns) > width:
        size -= 1
    label_font, title_font = _title_font(size), _title_font(TITLE_SIZE)
    cell = max(width, max(math.ceil(text_width(label, label_font)) for label in columns))
    titles = [title for title, _ in rows]
    left = min(ROW_TITLE_WIDTH, max(title_column(title, math.ceil(text_width(title, title_font))) for title in titles))
    laid = [title_lines(title, left - 4, title_font) for title in titles]
    label_line, title_line = sum(label_font.getmetrics()), sum(title_font.getmetrics())
    heights = [max(height, len(lines) * title_line) for lines in laid]
    header = label_line + LINE_GAP
    canvas = Image.new("RGB", (left + len(columns) * (cell + gap), header + sum(heights) + gap * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, label in enumerate(columns):
        x = left + k * (cell + gap) + (cell - text_width(label, label_font)) / 2
        draw.text((x, 0), label, fill="black", font=label_font)
    top = header
    for (_, pictures), lines, row_height in zip(rows, laid, heights, strict=True):
        for n, line in enumerate(lines):
            draw.text((2, top + n * title_line), line, fill="black", font=title_font)
        for k, picture in enumerate(pictures):
            canvas.paste(picture.convert("RGB"), (left + k * (cell + gap) + (cell - width) // 2, top))
        top += row_height + gap
    return canvas


CAPTION_BACKGROUND = (238, 238, 238)


def with_caption(picture: Image.Image, caption: str, *, size: int = 15) -> Image.Image:
    """`picture` with `caption` (e.g. "frame 3 of 50 · t = 941 → 921") drawn inside it, in a band along its bottom.

    The text shrinks to fit the width (down to 8 px; a narrower picture is widened with white); the band belongs
    to the picture, so exports and the fullscreen view carry it.
    """
    font, text_size = _title_font(size), size
    draw = ImageDraw.Draw(picture)
    while text_size > 8 and draw.textlength(caption, font=font) > picture.width - 4:
        text_size -= 1
        font = _title_font(text_size)
    width = max(picture.width, round(draw.textlength(caption, font=font)) + 4)
    band = text_size + 8
    canvas = Image.new("RGB", (width, picture.height + band), "white")
    canvas.paste(picture.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, picture.height, width, picture.height + band), fill=CAPTION_BACKGROUND)
    draw.text((2, picture.height + 3), caption, fill="black", font=font)
    return canvas
