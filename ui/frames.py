"""Client-side frames: a finished run's frames as compact pictures the page holds, and the player that steps them.

A frame on the page is a *strip*: the seven step views (x_t, x̂₀, ε̂, v̂, û, μ, z) of the whole batch side by side
at native size (image grids with white gaps, or small scatter pictures of 2-D points), one PNG per frame. The page
draws it on a canvas upscaled with nearest neighbour to the container's width, with the view titles above and the
caption "frame k of S · t = …" inside the picture, and swaps frames in the browser: ◀/▶, ← →, the slider and Play
never call the server. A run whose pictures pass `FRAME_BUDGET` bytes sends an evenly spaced subset; a frame the
page does not hold is fetched by the player from `fetch_frames` (a server function of the player component, keyed
by the stored run's unguessable key), and the page says so under the picture.

    payload field   meaning
    key             the stored run's key (`ui.state.StoredRun.key`)
    which           "run" or "branch"
    total, first    S frames, numbered first..first+S−1 (frame k is run position k − first)
    start           the position shown when the payload arrives
    width, height   a strip's native size in pixels; panels: [title, left, width] per view
    frames          {position: PNG data URL} for the positions the page holds
    captions, texts per position: the caption drawn in the picture, and the Markdown line under it
    note, notice    what the page holds (subset or all), and a status line shown once (e.g. after Stop)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from explorer.diffusion.indexing import frame_of
from explorer.diffusion.trajectory import CompactTrajectory
from explorer.diffusion.views import STEP_VIEWS
from explorer.figures.images import grid, png_data_url
from explorer.figures.sampling import frame_caption
from explorer.validation import check_int
from ui.admission import client_of_request
from ui.gate import Limiter, refuse
from ui.pictures import PIXELS, Drawing, drawing_of
from ui.runs import frame_index, frame_text, frame_texts  # noqa: F401 (frame_index, frame_text: for callers)
from ui.state import NO_RUN, Kept, StoredRun, run_by_key

FRAME_BUDGET = 8_000_000  # bytes of PNG a run sends to the page at most (then an evenly spaced subset)
SCATTER_PIXELS = 128  # side of a 2-D points panel in a strip
PANEL_GAP = 4  # white pixels between the panels of a strip
FETCH_WINDOW = 16  # frames the page fetches at once around one it does not hold
SIZE_SAMPLES = 6  # frames encoded up front to estimate a run's bytes
# The player asks for one window at a time, as the visitor steps past what the page holds; stepping at 30 fps
# through a run the page holds a tenth of needs about 2 windows a second.
FETCH_LIMIT = Limiter("fetch_frames", rate=4.0, burst=8, per_client=2, in_all=4)


def _points_panel(points: np.ndarray, extent: float) -> np.ndarray:
    """2-D points [B, 2] as an RGB picture [P, P, 3] of [−extent, extent]², 3×3-pixel blue dots on white with grey
    axes (numpy only: a run of 1000 frames is drawn in a blink)."""
    size = SCATTER_PIXELS
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    canvas[size // 2, :] = canvas[:, size // 2] = 225
    finite = points[np.all(np.isfinite(points), axis=1)]
    pixels = np.round((finite + extent) / (2 * extent) * (size - 1)).astype(np.int64)  # [N, 2] as (x, y)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            x, y = pixels[:, 0] + dx, size - 1 - pixels[:, 1] + dy
            inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            canvas[y[inside], x[inside]] = (31, 119, 180)
    return canvas


class Strips:
    """Every step of a run as a native-size picture of its seven views side by side, drawn from uint8 views computed
    once for the whole run ([S, B, H, W, C] per view for images)."""

    def __init__(
        self, compact: CompactTrajectory, low: int = 0, high: int | None = None, drawing: Drawing = PIXELS
    ) -> None:
        """Steps low..high−1 (all by default) can be drawn; latent views through `drawing`'s decoder."""
        self.low = low
        self.points = compact.x_t.ndim == 3  # [S, B, 2]
        self.views = []
        for view in STEP_VIEWS:
            title = view.title_for(compact.prediction)  # a prediction view says whether it was predicted or converted
            stack = getattr(compact, view.name)[low:high]  # [S', B, *shape]
            if self.points:
                self.views.append((title, stack.float().numpy(), 3.5 * view.half_range))
            else:
                pictures = drawing.pixels(stack.flatten(0, 1), view.half_range)  # every frame at once
                pictures = pictures.unflatten(0, stack.shape[:2]).numpy()  # [S', B, C, H, W]
                scaled = np.nan_to_num(pictures, nan=0.0, posinf=1.0, neginf=-1.0).clip(-1, 1)
                tiles = np.round((scaled + 1) * 127.5).astype(np.uint8).transpose(0, 1, 3, 4, 2)  # [S, B, H, W, C]
                self.views.append((title, tiles, 0.0))

    def panels(self, index: int) -> list[tuple[str, Image.Image]]:
        index -= self.low
        if self.points:
            return [(title, Image.fromarray(_points_panel(data[index], extent))) for title, data, extent in self.views]
        columns = math.ceil(math.sqrt(self.views[0][1].shape[1]))
        return [(title, grid(data[index], columns=columns, scale=1)) for title, data, _ in self.views]

    def strip(self, index: int) -> tuple[Image.Image, list[tuple[str, int, int]]]:
        """Step `index` as one picture, and its panels (title, left, width)."""
        pictures = self.panels(index)
        mode = "L" if all(picture.mode == "L" for _, picture in pictures) else "RGB"
        width = sum(picture.width for _, picture in pictures) + PANEL_GAP * (len(pictures) - 1)
        canvas = Image.new(mode, (width, max(picture.height for _, picture in pictures)), "white")
        panels, left = [], 0
        for title, picture in pictures:
            canvas.paste(picture.convert(mode), (left, 0))
            panels.append((title, left, picture.width))
            left += picture.width + PANEL_GAP
        return canvas, panels

    def encoded(self, positions) -> dict[str, str]:
        """{position: PNG data URL} of these steps."""
        return {str(int(k)): data_url(self.strip(int(k))[0]) for k in positions}


data_url = png_data_url  # a picture as a PNG data URL


def held_positions(total: int, bytes_per_frame: float, budget: int = FRAME_BUDGET) -> np.ndarray:
    """The positions a page holds of a run of `total` frames: all when they fit `budget`, else an evenly spaced
    subset (first and last included) of budget / bytes_per_frame frames."""
    fits = max(2, int(budget // max(bytes_per_frame, 1.0)))
    if total <= fits:
        return np.arange(total)
    return np.unique(np.round(np.linspace(0, total - 1, fits)).astype(np.int64))


PAYLOADS_KEPT = 4  # runs whose page payload is kept: frames_after, Stop and the run/branch selector reuse it
_payloads: Kept[tuple[str, int], dict[str, Any]] = Kept(PAYLOADS_KEPT)


def payload(stored: StoredRun, start: int, *, which: str = "run", notice: str = "") -> dict[str, Any]:
    """What the page needs to step through `stored` without the server, starting at position `start`.

    Drawn once per run and kept (the last PAYLOADS_KEPT runs): asking again, from any frame, costs one strip at
    most (the start frame when the page would not hold it), however often a client asks."""
    total = len(stored.compact)
    start = min(max(int(start), 0), total - 1)
    kept = _payloads.get((stored.key, FRAME_BUDGET), lambda: _fresh_payload(stored, start))
    frames = kept["frames"]
    if str(start) not in frames:
        frames = frames | Strips(stored.compact, start, start + 1, drawing_of(stored.model)).encoded([start])
    return {**kept, "frames": frames, "which": which, "start": start, "notice": notice}


def _fresh_payload(stored: StoredRun, start: int, *, which: str = "run", notice: str = "") -> dict[str, Any]:
    """`payload` drawn from scratch."""
    compact = stored.compact
    drawing = drawing_of(stored.model)
    strips = Strips(compact, drawing=drawing)
    total = len(compact)
    start = min(max(int(start), 0), total - 1)
    probe = np.unique(np.round(np.linspace(0, total - 1, min(SIZE_SAMPLES, total))).astype(np.int64))
    frames = strips.encoded(probe)
    held = {*held_positions(total, np.mean([len(url) for url in frames.values()]), FRAME_BUDGET).tolist(), start}
    frames = {k: url for k, url in frames.items() if int(k) in held} | strips.encoded(
        k for k in sorted(held) if str(k) not in frames
    )
    if len(held) < total:
        note = (
            f"This run's {total} frames would pass {FRAME_BUDGET / 1e6:.0f} MB: the page holds {len(held)} evenly "
            "spaced ones and fetches the others from the server when shown."
        )
    else:
        note = f"All {total} frames are held by the page: stepping never calls the server."
    if drawing.latent:
        note += f" Latent frames are drawn by the {drawing.name}; “Decode this frame” draws the one shown exactly."
    picture, panels = strips.strip(start)
    return {
        "key": stored.key,
        "which": which,
        "total": total,
        "first": frame_of(0),
        "start": start,
        "width": picture.width,
        "height": picture.height,
        "panels": panels,
        "frames": frames,
        "captions": [frame_caption(compact, k) for k in range(total)],
        "texts": frame_texts(compact),
        "note": note,
        "notice": notice,
    }


def page_value(payload: dict[str, Any]) -> dict[str, Any]:
    """What the player component's value holds of a payload: everything but the frames other than the start one.
    The player asks for the rest at once (`held_frames`): a value of megabytes would be copied and compared by the
    page's framework on the main thread, where a server function's answer is only parsed."""
    start = str(payload["start"])
    return {**payload, "frames": {start: payload["frames"][start]}}


def _refusal(error: ValueError, name: str) -> Exception:
    """Server function `name`'s ValueError as a 4xx with one sentence (404 when the run is gone)."""
    status = 404 if str(error) == NO_RUN else 400
    return refuse(status, str(error).split("; got ", 1)[0], name)


def held_frames(query: Any, request: gr.Request = None) -> dict[str, str]:
    """The player's server function: a stored run's key → the PNG data URLs of every frame the page holds of it
    (`payload`'s frames, drawn once and kept). Limited and refused like `fetch_frames`."""
    with FETCH_LIMIT.use(client_of_request(request, getattr(request, "session_hash", None))):
        try:
            stored = run_by_key(query)
        except ValueError as error:
            raise _refusal(error, "held_frames") from None
        return payload(stored, 0)["frames"]


def fetch_frames(query: Any, request: gr.Request = None) -> dict[str, str]:
    """The player's server function: [key, position] → PNG data URLs of up to FETCH_WINDOW frames from there on.

    Not queued (Gradio runs server functions beside the queue): limited per client (`FETCH_LIMIT`, 429), and any
    bad query is a 4xx with one sentence (`ui.gate`), never a 500."""
    with FETCH_LIMIT.use(client_of_request(request, getattr(request, "session_hash", None))):
        try:
            if not isinstance(query, list | tuple) or len(query) != 2:
                raise ValueError("fetch_frames takes [key, position]")
            stored = run_by_key(query[0])
            compact = stored.compact
            start = check_int("position", query[1], 0, len(compact) - 1)
        except ValueError as error:
            raise _refusal(error, "fetch_frames") from None
        end = min(start + FETCH_WINDOW, len(compact))
        return Strips(compact, start, end, drawing_of(stored.model)).encoded(range(start, end))


PLAYER_HTML = '<div class="frames-player"><canvas></canvas><div class="frames-note"></div></div>'
PLAYER_CSS = """
canvas { display: block; max-width: 100%; image-rendering: pixelated; }
.frames-note { font-size: 0.85em; opacity: 0.75; }
"""
PLAYER_JS = (Path(__file__).parent / "browser" / "player.js").read_text()  # the player's js_on_load
PLAY_FPS = (0.5, 4.0, 30.0)  # Play's speed in frames per second: slowest, default, fastest
PLAY_LABELS = ("▶ Play", "⏸ Pause")


JS_ONLY: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
# The js-only events: each calls the page's frame player (ui/browser/player.js) when it is there.
ON_PLAYER = {
    "computing": "() => { window.explorerFrames?.computing(); }",
    "stopped": "() => { window.explorerFrames?.stopped(); }",
    "previous": "() => { window.explorerFrames?.step(-1); }",
    "next": "() => { window.explorerFrames?.step(1); }",
    "show": "(frame) => { window.explorerFrames?.showFrame(frame); }",
    "play": "(fps) => { window.explorerFrames?.play(fps); }",
    "speed": "(fps) => { window.explorerFrames?.speed(fps); }",
    "synced": "() => window.explorerFrames.synced()",
    "decoding": "(frame, decoder) => { window.explorerFrames?.decoding(); return [frame, decoder]; }",
    "decoded": "() => [window.explorerFrames?.decodedNow()]",
}


def player_config(*, stream_id: str, play_id: str, stopped: str, finished: str) -> dict[str, Any]:
    """The player's one configuration (`props.config` in ui/browser/player.js): the elements it reveals and labels
    by id, what it says after Stop (`stopped` when a run was computing, else `finished`), and the constants it
    shares with this module."""
    slowest, default, fastest = PLAY_FPS
    play, pause = PLAY_LABELS
    return {
        "fetch_window": FETCH_WINDOW,
        "panel_gap": PANEL_GAP,
        "stream_id": stream_id,
        "play_id": play_id,
        "play_label": play,
        "pause_label": pause,
        "fps": default,
        "min_fps": slowest,
        "max_fps": fastest,
        "stopped": stopped,
        "finished": finished,
    }


@dataclass(frozen=True)
class FrameStage:
    """The frame and its stepping controls: `#frame` holds `#frame_stream` (the pictures streamed while a run
    computes, and an API client's frame) and the player (`#frame canvas`, once a run finished); below them ◀, Play,
    ▶, Play's speed and the frame slider."""

    picture: gr.Image
    player: gr.HTML
    frame: gr.Slider  # the frame shown, 1..S
    previous: gr.Button
    play: gr.Button
    following: gr.Button
    fps: gr.Slider

    @classmethod
    def build(cls, *, stopped: str, finished: str) -> FrameStage:
        """Lay out the stage; `stopped` and `finished`: what the status line says after Stop (`player_config`)."""
        with gr.Column(elem_id="frame"):
            picture = gr.Image(
                label="frame", format="png", type="pil", interactive=False, show_label=False, elem_id="frame_stream"
            )
            config = player_config(stream_id="frame_stream", play_id="play", stopped=stopped, finished=finished)

            def configuration(_query: Any = None) -> dict[str, Any]:
                """The player's configuration again, for a remount whose props lost it (a server function: Gradio
                passes the call's arguments as one value, unused here)."""
                return config

            configuration.__name__ = "player_config"
            player = gr.HTML(
                None,
                html_template=PLAYER_HTML,
                css_template=PLAYER_CSS,
                js_on_load=PLAYER_JS,
                server_functions=[fetch_frames, held_frames, configuration],
                elem_id="frame_player",
                config=config,
            )
        slowest, default_fps, fastest = PLAY_FPS
        with gr.Row():
            previous = gr.Button("◀ Previous", elem_id="prev_frame", size="sm")
            play = gr.Button(PLAY_LABELS[0], elem_id="play", size="sm")
            following = gr.Button("Next ▶", elem_id="next_frame", size="sm")
            fps = gr.Slider(
                slowest,
                fastest,
                value=default_fps,
                step=0.5,
                label="Play speed (frames per second)",
                elem_id="play_fps",
            )
            frame = gr.Slider(1, 2, value=1, step=1, label="frame (step of the run)", elem_id="frame_slider", scale=4)
        return cls(picture, player, frame, previous, play, following, fps)

    def wire(self, status: gr.Markdown, decoded: gr.Image) -> None:
        """Stepping in the page: the buttons, the slider and Play drive the player, whose `stepped` event copies the
        frame number and its line into the slider and `status`, and clears `decoded` once it shows another frame
        than the one decoded (no server call)."""
        player, frame, fps = self.player, self.frame, self.fps
        synced = [frame, status, decoded]
        player.stepped(None, None, synced, js=ON_PLAYER["synced"], trigger_mode="always_last", **JS_ONLY)
        self.previous.click(None, None, None, js=ON_PLAYER["previous"], trigger_mode="multiple", **JS_ONLY)
        self.following.click(None, None, None, js=ON_PLAYER["next"], trigger_mode="multiple", **JS_ONLY)
        for trigger in (frame.input, frame.release):
            trigger(None, [frame], None, js=ON_PLAYER["show"], trigger_mode="always_last", **JS_ONLY)
        self.play.click(None, [fps], None, js=ON_PLAYER["play"], **JS_ONLY)
        fps.input(None, [fps], None, js=ON_PLAYER["speed"], trigger_mode="always_last", **JS_ONLY)
