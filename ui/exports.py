"""Exports of a run: a GIF and an MP4 of x_t and x̂₀ (sized, captioned, the last frame held), a PNG of one frame,
and the sweep of the files they leave in the temporary directory."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from explorer.diffusion.indexing import frame_of
from explorer.diffusion.views import STEP_VIEWS, X0, X_T
from explorer.figures.images import export_gif, export_mp4, image_grid, labelled_row, scatter_frame, with_caption
from explorer.models.decoders import Decoder
from explorer.validation import check_int
from ui.common import user_errors
from ui.frames import caption, frame_index
from ui.pictures import PIXELS, Drawing, drawing_of
from ui.state import stored_run

EXPORT_ROOT = Path(tempfile.gettempdir()) / "explorer-exports"
EXPORT_AGE_SECONDS = 300.0  # Gradio copies a served file into its own (swept) cache as the handler returns
LATENT_EXPORT_FRAMES = 24  # a latent run's export decodes x_t and x̂₀ of each frame with the model's own decoder
EXPORT_FRAMES = 120
EXPORT_FPS = 12.0
HOLD_LAST = 1.0  # seconds the exported GIF and MP4 stay on their last frame
MAX_EXPORT_SCALE = 8


def _scaled_panel(batch: torch.Tensor, half_range: float, scale: int, drawing: Drawing = PIXELS) -> Image.Image:
    """One view of the batch for an export, `scale`× its native size with nearest neighbour."""
    if batch.ndim == 2:  # points [B, 2]
        return scatter_frame(batch, size=64 * scale, extent=3.5 * half_range)
    pictures = drawing.pixels(batch, half_range)
    return image_grid(pictures, columns=math.ceil(math.sqrt(batch.shape[0])), scale=scale)


def _export_folder() -> Path:
    sweep_exports(EXPORT_AGE_SECONDS)
    EXPORT_ROOT.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(dir=EXPORT_ROOT))


@user_errors
def export(scale: float = 4, request: gr.Request = None):
    """The run as a GIF and an MP4: x_t and x̂₀ side by side at `scale`× native size (1–8, nearest neighbour), at
    most EXPORT_FRAMES frames, each with its caption inside; the final samples are held HOLD_LAST seconds."""
    factor = check_int("export size", scale, 1, MAX_EXPORT_SCALE)
    stored = stored_run(request)
    compact = stored.compact
    drawing = drawing_of(stored.model, Decoder.EXACT)  # a latent run's frames through its own decoder, in batches
    count = min(LATENT_EXPORT_FRAMES if drawing.latent else EXPORT_FRAMES, len(compact))
    indices = np.unique(np.round(np.linspace(0, len(compact) - 1, count)).astype(int))
    note = f" · drawn by {drawing.name}" if drawing.latent else ""
    pictures = [
        with_caption(
            labelled_row(
                [(v.symbol, _scaled_panel(compact.view(v.name, int(k)), 1.0, factor, drawing)) for v in (X_T, X0)]
            ),
            caption(compact, int(k)) + note,
        )
        for k in indices
    ]
    final = _scaled_panel(compact.samples, 1.0, factor, drawing)
    pictures.append(with_caption(labelled_row([("x₀", final), ("final", final)]), "final samples (t = 0)"))
    folder = _export_folder()
    gif = export_gif(pictures, folder / "run.gif", fps=EXPORT_FPS, hold_last=HOLD_LAST)
    return str(gif), str(export_mp4(pictures, folder / "run.mp4", fps=EXPORT_FPS, hold_last=HOLD_LAST))


@user_errors
def frame_png(frame: float, scale: float = 4, request: gr.Request = None) -> str:
    """The frame shown as a PNG file: every view at `scale`× native size (1–8), its caption inside."""
    factor = check_int("export size", scale, 1, MAX_EXPORT_SCALE)
    stored = stored_run(request)
    compact = stored.compact
    index = frame_index(compact, frame)
    drawing = drawing_of(stored.model)
    views = [
        (v.title_for(compact.prediction), _scaled_panel(compact.view(v.name, index), v.half_range, factor, drawing))
        for v in STEP_VIEWS
    ]
    path = _export_folder() / f"frame-{frame_of(index)}.png"
    note = f" · drawn by {drawing.name}" if drawing.latent else ""
    with_caption(labelled_row(views), caption(compact, index) + note).save(path)
    return str(path)


def sweep_exports(age: float | None = None) -> int:
    """Remove export folders older than `age` seconds (all with None, as at startup); returns how many went.

    Also removes the `explorer-export-*` folders earlier versions left in the temporary directory.
    """
    now, removed = time.time(), 0
    folders = [*EXPORT_ROOT.glob("*"), *Path(tempfile.gettempdir()).glob("explorer-export-*")]
    for folder in folders:
        try:
            if folder.is_dir() and not folder.is_symlink() and (age is None or now - folder.stat().st_mtime > age):
                shutil.rmtree(folder)
                removed += 1
        except OSError:  # another process removed it first
            continue
    return removed
