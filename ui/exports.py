"""Exports of a run: a GIF and an MP4 of the views the visitor chooses (x_t and x̂₀ by default; sized, captioned,
the last frame held), a PNG of one frame with every view, their controls, and the sweep of the files they leave in
the temporary directory. A latent run's exports are decoded exactly (the model's own VAE/VQ decoder), and each
picture's caption says so.

An export is sized before it starts (frames × the first frame's pixels, which grow with the export size squared:
memory per frame and disk in all), refused with the size that fits, streamed to disk a frame at a time (never held
whole), stopped between batches when its event is cancelled, and counted against a per-client and a global disk
budget (`DISK`) until its files are swept.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from explorer.diffusion.indexing import frame_of
from explorer.diffusion.views import STEP_VIEWS, X0, X_T, StepView
from explorer.figures.images import image_grid, labelled_row, scatter_frame, with_caption
from explorer.figures.sampling import frame_caption
from explorer.figures.streams import GifStream, Mp4Stream
from explorer.models.decoders import Decoder
from explorer.validation import check_int
from ui import admission
from ui.api_names import named
from ui.common import MODEL_WORK, user_errors
from ui.frames import frame_index
from ui.pictures import PIXELS, Drawing, drawing_of
from ui.state import stored_run

EXPORT_ROOT = Path(tempfile.gettempdir()) / "explorer-exports"
EXPORT_AGE_SECONDS = 300.0  # Gradio copies a served file into its own (swept) cache as the handler returns
LATENT_EXPORT_FRAMES = 24  # a latent run's export decodes x_t and x̂₀ of each frame with the model's own decoder
EXPORT_FRAMES = 120
EXPORT_FPS = 12.0
HOLD_LAST = 1.0  # seconds the exported GIF and MP4 stay on their last frame
MAX_EXPORT_SCALE = 8
EXPORT_BATCH = 8  # frames drawn and encoded between two checks for cancellation
FRAME_PAUSE = 0.02  # seconds an export sleeps after each frame, so that the cheap views keep answering beside it
MIB = 1 << 20
FRAME_MEMORY_PER_PIXEL = 16  # RGB picture + canvas + palette copy + the MP4 encoder's copy, with margin
DISK_PER_PIXEL = 1.0  # GIF (LZW of an adaptive palette, at most ~0.9 on noise) and MP4 together, per frame pixel
ABANDON_SECONDS = 30.0  # an export not resumed this long after a yield was dropped (cancelled): its files go
MAX_FRAME_BYTES = 256 * MIB  # memory one frame of an export may take while it is drawn
MAX_EXPORT_BYTES = int(os.environ.get("EXPLORER_EXPORT_MAX_MIB", "160")) * MIB  # disk one export may take
EXPORT_BYTES_PER_CLIENT = int(os.environ.get("EXPLORER_EXPORT_CLIENT_MIB", "320")) * MIB  # a client's live exports
EXPORT_BYTES_IN_ALL = int(os.environ.get("EXPLORER_EXPORT_ALL_MIB", "2048")) * MIB  # everyone's live exports


EXPORT_VIEWS = {view.name: view for view in STEP_VIEWS}  # what the GIF and MP4 may show, by record field
DEFAULT_EXPORT_VIEWS = (X_T.name, X0.name)


def export_views(chosen: Any) -> tuple[StepView, ...]:
    """The views a GIF and MP4 show, in the frame's order: `chosen` is a list of record fields (x_t, x0, eps, v, u,
    mean, noise), at least one; anything else is refused by name."""
    allowed = f"export views must be a non-empty list of {', '.join(EXPORT_VIEWS)}"
    if isinstance(chosen, str) or not isinstance(chosen, list | tuple) or not chosen:
        raise ValueError(f"{allowed}; got {chosen!r}")
    unknown = [name for name in chosen if not isinstance(name, str) or name not in EXPORT_VIEWS]
    if unknown:
        raise ValueError(f"{allowed}; got {unknown[0]!r}")
    return tuple(view for view in STEP_VIEWS if view.name in chosen)


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


@dataclass(frozen=True)
class ExportPlan:
    """An export sized before it starts: `frames` pictures of `width` × `height` pixels (the first frame's), the
    memory one frame takes while it is drawn and encoded, and the disk both files may take at most."""

    scale: int
    frames: int
    width: int
    height: int

    @property
    def frame_bytes(self) -> int:
        """Transient memory per frame: the RGB picture, its white canvas, the palette copy and the encoders' copy."""
        return self.width * self.height * FRAME_MEMORY_PER_PIXEL

    @property
    def disk_bytes(self) -> int:
        """What the GIF and the MP4 together may write (`DISK_PER_PIXEL` bytes per pixel of every frame)."""
        return math.ceil(self.frames * self.width * self.height * DISK_PER_PIXEL)

    def fitting_scale(self, limit: int) -> int:
        """The largest export size whose disk estimate fits `limit` bytes (0 when none does); sides grow with the
        scale, so the estimate grows with its square."""
        return max((k for k in range(1, self.scale + 1) if self.disk_bytes * k * k <= limit * self.scale**2), default=0)


def plan_export(frames: int, first: Image.Image, scale: int) -> ExportPlan:
    """Size an export of `frames` pictures like `first` at `scale`; ValueError with the size that fits when it
    passes the per-frame memory or the per-export disk cap."""
    plan = ExportPlan(scale, frames, first.width, first.height)
    if plan.frame_bytes > MAX_FRAME_BYTES or plan.disk_bytes > MAX_EXPORT_BYTES:
        fits = plan.fitting_scale(MAX_EXPORT_BYTES)
        while fits > 1 and plan.frame_bytes * fits * fits > MAX_FRAME_BYTES * scale * scale:
            fits -= 1
        what = f"export size {fits} or smaller fits" if fits else "a run with fewer frames or a smaller batch fits"
        raise ValueError(
            f"an export of this run at size {scale} would write about {plan.disk_bytes / MIB:.0f} MiB "
            f"({frames} frames of {plan.width}×{plan.height} pixels); one export may write at most "
            f"{MAX_EXPORT_BYTES / MIB:.0f} MiB: {what}"
        )
    return plan


class DiskBudget:
    """Bytes of export files on disk per client and in all, counted from the moment an export is sized until its
    folder is swept (`sweep_exports`) or the export is cancelled: `reserve` refuses what would not fit."""

    def __init__(self, per_client: int, in_all: int, abandon_seconds: float = ABANDON_SECONDS) -> None:
        self.per_client, self.in_all, self.abandon_seconds = per_client, in_all, abandon_seconds
        self._folders: dict[Path, tuple[str, int]] = {}
        self._writing: dict[Path, tuple[list[Any], float]] = {}  # streams open, and when the export last yielded
        self._lock = threading.Lock()

    def _forget_gone(self) -> None:
        """Forget swept folders; close and remove exports left at a yield for `abandon_seconds` (Gradio dropped
        a cancelled export's generator there, and collects it only when nothing else holds it)."""
        now = time.monotonic()
        for folder, (streams, seen) in list(self._writing.items()):
            if now - seen > self.abandon_seconds:
                for stream in streams:
                    stream.close()
                del self._writing[folder]
                shutil.rmtree(folder, ignore_errors=True)
        for folder in [folder for folder in self._folders if not folder.exists()]:
            del self._folders[folder]

    def writing(self, folder: Path, streams: list[Any], *, busy: bool = False) -> None:
        """The export in `folder` writes `streams`: at a yield now, or (`busy`) in a batch, never abandoned."""
        with self._lock:
            self._writing[folder] = (streams, math.inf if busy else time.monotonic())

    def used(self, client: str | None = None) -> int:
        with self._lock:
            self._forget_gone()
            return sum(n for who, n in self._folders.values() if client is None or who == client)

    def reserve(self, client: str, nbytes: int) -> Path:
        """A new export folder holding `nbytes` of this client's budget, or ValueError saying what is in use."""
        folder = _export_folder()
        with self._lock:
            self._forget_gone()
            mine = sum(n for who, n in self._folders.values() if who == client)
            everyone = sum(n for _, n in self._folders.values())
            if mine + nbytes > self.per_client or everyone + nbytes > self.in_all:
                shutil.rmtree(folder, ignore_errors=True)
                own = mine + nbytes > self.per_client
                whose, used, limit = ("your", mine, self.per_client) if own else ("everyone's", everyone, self.in_all)
                raise ValueError(
                    f"this export needs about {nbytes / MIB:.0f} MiB of disk and {whose} exports already use "
                    f"{used / MIB:.0f} of {limit / MIB:.0f} MiB; exports are deleted {EXPORT_AGE_SECONDS / 60:.0f} "
                    "minutes after they are made: try again then, or a smaller size"
                )
            self._folders[folder] = (client, nbytes)
        return folder

    def settle(self, folder: Path, nbytes: int) -> None:
        """The export finished: it holds what it wrote."""
        with self._lock:
            self._writing.pop(folder, None)
            if folder in self._folders:
                self._folders[folder] = (self._folders[folder][0], nbytes)

    def drop(self, folder: Path) -> None:
        """The export did not finish: its folder goes, and its bytes."""
        shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            self._writing.pop(folder, None)
            self._folders.pop(folder, None)


DISK = DiskBudget(per_client=EXPORT_BYTES_PER_CLIENT, in_all=EXPORT_BYTES_IN_ALL)


def _batches(items: list[int], size: int) -> list[list[int]]:
    return [items[k : k + size] for k in range(0, len(items), size)]


def _drawn_by(drawing: Drawing) -> str:
    """What a caption adds for a latent run: the decoder that drew its pictures."""
    return f" · drawn by {drawing.name}" if drawing.latent else ""


@user_errors
def export_steps(scale: float = 4, views: Any = DEFAULT_EXPORT_VIEWS, request: gr.Request = None):
    """The run as a GIF and an MP4, streamed to disk: the chosen `views` (record fields; x_t and x̂₀ by default) side
    by side at `scale`× native size (1–8, nearest neighbour), at most EXPORT_FRAMES frames, each with its caption
    inside; the final samples are held HOLD_LAST seconds. A latent run is decoded exactly (the model's own decoder).
    Sized before it starts (`plan_export`, `DISK`); yields (skip, skip) between batches of frames, where Gradio
    stops it when its event is cancelled, and each batch holds its client's admission slot while it runs; the last
    value is (GIF path, MP4 path)."""
    factor = check_int("export size", scale, 1, MAX_EXPORT_SCALE)
    shown = export_views(list(views) if isinstance(views, tuple) else views)
    stored = stored_run(request)
    compact = stored.compact
    drawing = drawing_of(stored.model, Decoder.EXACT)  # a latent run's frames through its own decoder, in batches
    count = min(LATENT_EXPORT_FRAMES if drawing.latent else EXPORT_FRAMES, len(compact))
    indices = np.unique(np.round(np.linspace(0, len(compact) - 1, count)).astype(int)).tolist()
    note = _drawn_by(drawing)

    def picture(k: int) -> Image.Image:
        panels = [
            (v.title_for(compact.prediction), _scaled_panel(compact.view(v.name, k), v.half_range, factor, drawing))
            for v in shown
        ]
        return with_caption(labelled_row(panels), frame_caption(compact, k) + note)

    with admission.working(request):
        first = picture(indices[0])
        final = _scaled_panel(compact.samples, 1.0, factor, drawing)
        last = with_caption(labelled_row([("x₀: the final samples", final)]), "final samples (t = 0)" + note)
    size = (max(first.width, last.width), max(first.height, last.height))  # every frame is pasted on this canvas
    plan = plan_export(len(indices) + 1, Image.new("1", size), factor)
    folder = DISK.reserve(admission.client_of(request), plan.disk_bytes)
    gif = mp4 = None
    finished = False
    try:
        gif = GifStream(folder / "run.gif", size)
        mp4 = Mp4Stream(folder / "run.mp4", size, EXPORT_FPS)
        step = max(20, round(1000 / EXPORT_FPS))
        for batch in _batches(indices, EXPORT_BATCH):
            DISK.writing(folder, [gif, mp4], busy=True)
            with admission.working(request):
                for k in batch:
                    frame = first if k == indices[0] else picture(k)
                    gif.add(frame, step)
                    mp4.add(frame)
                    time.sleep(FRAME_PAUSE)  # gives the interpreter to the server's other threads between frames
                if gif.bytes_written + mp4.bytes_written > plan.disk_bytes:
                    budget = plan.disk_bytes / MIB
                    raise ValueError(f"this export passed its {budget:.0f} MiB of disk: try a smaller size")
            DISK.writing(folder, [gif, mp4])
            yield gr.skip(), gr.skip()  # Gradio stops here when the event was cancelled
        DISK.writing(folder, [gif, mp4], busy=True)
        with admission.working(request):
            gif.add(last, step + round(1000 * HOLD_LAST))
            mp4.add(last, 1 + round(HOLD_LAST * EXPORT_FPS))
            paths = str(gif.close()), str(mp4.close())
        DISK.settle(folder, sum(path.stat().st_size for path in folder.iterdir()))
        finished = True
        yield paths
    finally:
        for stream in (gif, mp4):
            if stream is not None:
                stream.close()
        if not finished:
            DISK.drop(folder)


def export(scale: float = 4, views: Any = DEFAULT_EXPORT_VIEWS, request: gr.Request = None) -> tuple[str, str]:
    """`export_steps` run to its end: (GIF path, MP4 path)."""
    *_, paths = export_steps(scale, views, request=request)
    return paths


def frame_picture_for_export(stored, index: int, factor: int) -> Image.Image:
    """Step `index` of a stored run with every view at `factor`× native size, its caption inside; a latent run
    decoded exactly (the model's own decoder), as the caption says."""
    compact = stored.compact
    drawing = drawing_of(stored.model, Decoder.EXACT)
    views = [
        (v.title_for(compact.prediction), _scaled_panel(compact.view(v.name, index), v.half_range, factor, drawing))
        for v in STEP_VIEWS
    ]
    return with_caption(labelled_row(views), frame_caption(compact, index) + _drawn_by(drawing))


@user_errors
def frame_png(frame: float, scale: float = 4, request: gr.Request = None) -> str:
    """The frame shown as a PNG file: every view at `scale`× native size (1–8), its caption inside; a latent run
    decoded exactly."""
    factor = check_int("export size", scale, 1, MAX_EXPORT_SCALE)
    stored = stored_run(request)
    index = frame_index(stored.compact, frame)
    path = _export_folder() / f"frame-{frame_of(index)}.png"
    with admission.working(request):
        frame_picture_for_export(stored, index, factor).save(path)
    return str(path)


def export_controls(frame: gr.Slider) -> None:
    """The export controls of the Reverse sampling view, wired: the size, the views the GIF and MP4 show, the
    buttons and the files; `frame` is the frame slider (the PNG's frame)."""
    with gr.Row():
        scale = gr.Slider(
            1, MAX_EXPORT_SCALE, value=4, step=1, label="export size (× native pixels)", elem_id="export_scale"
        )
        views = gr.CheckboxGroup(
            [(view.title, view.name) for view in STEP_VIEWS],
            value=list(DEFAULT_EXPORT_VIEWS),
            label="views in the GIF and MP4 (the PNG holds every view)",
            elem_id="export_views",
        )
    with gr.Row():
        export_button = gr.Button("Export GIF + MP4", elem_id="export")
        png_button = gr.Button("PNG of this frame", elem_id="export_png")
    with gr.Row():
        gif = gr.File(label="GIF")
        mp4 = gr.File(label="MP4")
        png = gr.File(label="PNG of this frame")
    export_inputs = [scale, views]
    export_button.click(named(export_steps, export_inputs), export_inputs, [gif, mp4], api_name="export", **MODEL_WORK)
    png_button.click(named(frame_png, [frame, scale]), [frame, scale], [png], api_name="frame_png", **MODEL_WORK)


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
