"""Pictures of samples: image grids and 2-D scatter frames as PIL images, and GIF/MP4 export.

Images are [B, C, H, W] tensors in [−1, 1] (values outside are clipped for display only). Upscaling is
nearest-neighbour so that one pixel of noise stays one sharp block; frames are meant to be saved as PNG
(lossy WebP smears noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

GRID_GAP = 2  # pixels between tiles, before upscaling
GAP_VALUE = 255  # white gaps: tiles of noise stay distinguishable


def to_uint8(images: torch.Tensor, *, symmetric: bool = False) -> np.ndarray:
    """[B, C, H, W] in [−1, 1] → uint8 [B, H, W, C]. `symmetric` maps [−m, m] (m = max |x|) instead."""
    array = images.detach().to(torch.float32).cpu()
    if symmetric:
        scale = float(array.abs().amax()) or 1.0
        array = array / scale
    array = torch.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0).clamp(-1, 1)
    return ((array + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


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
    picture = Image.fromarray(canvas[..., 0] if channels == 1 else canvas)
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)


def image_grid(
    images: torch.Tensor, *, columns: int | None = None, scale: int = 4, symmetric: bool = False
) -> Image.Image:
    """A batch [B, C, H, W] in [−1, 1] as one upscaled grid picture."""
    return grid(to_uint8(images, symmetric=symmetric), columns=columns, scale=scale)


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


def export_gif(frames: Sequence[Image.Image], path: str | Path, *, fps: float = 12.0) -> Path:
    """Write frames as a looping GIF; returns the path."""
    path = Path(path)
    first, *rest = [frame.convert("P", palette=Image.Palette.ADAPTIVE) for frame in frames]
    first.save(path, save_all=True, append_images=rest, duration=max(20, round(1000 / fps)), loop=0)
    return path


def export_mp4(frames: Sequence[Image.Image], path: str | Path, *, fps: float = 12.0) -> Path:
    """Write frames as an H.264 MP4 with imageio's bundled ffmpeg; sides are padded to even sizes."""
    import imageio.v2 as imageio

    path = Path(path)
    width, height = frames[0].size
    even = (width + width % 2, height + height % 2)
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1) as writer:
        for frame in frames:
            canvas = Image.new("RGB", even, "white")
            canvas.paste(frame.convert("RGB"))
            writer.append_data(np.asarray(canvas))
    return path


def _title_font():
    """DejaVu Sans when installed (it has x̂₀, ε̂, μ), else Pillow's default font."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", 15)
    except OSError:
        return ImageFont.load_default(size=15)


def labelled_row(panels: Sequence[tuple[str, Image.Image]], *, gap: int = 8, header: int = 22) -> Image.Image:
    """Pictures side by side, each with a title above it (white background)."""
    font = _title_font()
    width = sum(p.width for _, p in panels) + gap * (len(panels) - 1)
    height = max(p.height for _, p in panels) + header
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    left = 0
    for title, picture in panels:
        draw.text((left + 2, 2), title, fill="black", font=font)
        canvas.paste(picture.convert("RGB"), (left, header))
        left += picture.width + gap
    return canvas
