"""Picture titles never run past their panel, over a neighbour, over a picture or out of the picture.

Every picture kind the app draws is drawn through its own handler (frames, streamed frames, decoded panels, final
samples with and without their data set, 2-D, pixel and latent runs, the PNG and GIF exports at every size) while
Pillow's `ImageDraw.text` and `Image.paste` are watched: each text's ink box is measured with the very font it was
drawn in (`font.getbbox`), and checked against the canvas it was drawn on and the pictures pasted there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from app_fixtures import FakeRequest, ensure_models, no_progress
from PIL import Image, ImageDraw
from tiny_pipelines import LDM, SD_EPS, tiny_repos  # noqa: F401 (tiny_repos: a fixture)

ensure_models()
from explorer.data import Dataset  # noqa: E402
from explorer.figures.images import MIN_TITLE_SIZE, labelled_row, title_lines, with_caption  # noqa: E402
from ui import exports, parameterizations, run_pictures, sampling, state  # noqa: E402
from ui.controls import RunValues, ScheduleValues, StepValues  # noqa: E402
from ui.pictures import drawing_of  # noqa: E402

SCALES = range(1, exports.MAX_EXPORT_SCALE + 1)
ALL_VIEWS = list(exports.EXPORT_VIEWS)

Box = tuple[float, float, float, float]  # left, top, right, bottom (pixels; right and bottom exclusive)


@dataclass
class Canvas:
    """What was drawn on one picture: its texts (ink box, text, font size) and the pictures pasted into it."""

    image: Image.Image
    texts: list[tuple[Box, str, int]] = field(default_factory=list)
    pastes: list[Box] = field(default_factory=list)


class Watch:
    """Records every text drawn and every picture pasted, per target picture (Pillow itself is patched)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.canvases: dict[int, Canvas] = {}
        text, paste = ImageDraw.ImageDraw.text, Image.Image.paste

        def canvas(image: Image.Image) -> Canvas:
            return self.canvases.setdefault(id(image), Canvas(image))

        def watched_text(draw, xy, string, *args, font=None, **kwargs):
            x, y = xy
            left, top, right, bottom = font.getbbox(string)  # the ink box, in the font it is drawn in
            canvas(draw._image).texts.append(((x + left, y + top, x + right, y + bottom), string, font.size))
            return text(draw, xy, string, *args, font=font, **kwargs)

        def watched_paste(image, picture, box=None, mask=None):
            if isinstance(picture, Image.Image) and isinstance(box, tuple) and len(box) == 2:
                x, y = box
                canvas(image).pastes.append((x, y, x + picture.width, y + picture.height))
            return paste(image, picture, box, mask)

        monkeypatch.setattr(ImageDraw.ImageDraw, "text", watched_text)
        monkeypatch.setattr(Image.Image, "paste", watched_paste)

    def problems(self) -> list[str]:
        found = []
        for canvas in self.canvases.values():
            found += _problems(canvas)
        self.canvases.clear()
        return found


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _problems(canvas: Canvas) -> list[str]:
    """Texts cut by the picture's edge, texts over texts or pictures, titles over a neighbour's column, pictures
    cut or over each other."""
    width, height = canvas.image.size
    found = []
    for box, text, size in canvas.texts:
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            found.append(f"{text!r} ({size} px) cut: ink {box} on a {width}×{height} picture")
        found += [f"{text!r} covers a picture at {paste}" for paste in canvas.pastes if _overlap(box, paste)]
        below = [paste for paste in canvas.pastes if paste[1] >= box[3]]
        if below:  # a title: the first row of pictures under it; its ink may lie over one column only
            row = min(paste[1] for paste in below)
            under = [paste for paste in below if paste[1] == row and paste[0] < box[2] and box[0] < paste[2]]
            if len(under) > 1:
                found.append(f"{text!r} ({size} px) runs over {len(under)} panels: ink {box}, panels {under}")
    for k, (box, text, _) in enumerate(canvas.texts):
        found += [
            f"{text!r} overlaps {other!r}" for other_box, other, _ in canvas.texts[k + 1 :] if _overlap(box, other_box)
        ]
    for k, paste in enumerate(canvas.pastes):
        if paste[0] < 0 or paste[1] < 0 or paste[2] > width or paste[3] > height:
            found.append(f"a picture pasted at {paste} is cut by the {width}×{height} picture")
        found += [
            f"pictures at {paste} and {other} overlap" for other in canvas.pastes[k + 1 :] if _overlap(paste, other)
        ]
    return found


def _run(session: str, **values) -> FakeRequest:
    request = FakeRequest(session)
    run = RunValues(**{"steps": 4, "batch": 4, "seed": 0, **values})
    list(sampling.run(run, StepValues(), ScheduleValues(), request=request, progress=no_progress))  # streams frames
    return request


def _every_picture_of_a_run(request: FakeRequest, watch: Watch, dataset: Dataset | None) -> None:
    stored = state.stored_run(request)
    compact, drawing = stored.compact, drawing_of(stored.model)
    for index in (0, len(compact) - 1):
        run_pictures.frame_picture(compact, index, drawing)
    run_pictures.finals_picture(compact.samples, None, drawing)
    if dataset is not None:
        run_pictures.finals_picture(compact.samples, dataset, drawing)
    parameterizations.trajectory_views(request)  # "your last run" on the Parameterizations tab
    for scale in SCALES:
        exports.frame_png(1, scale, request=request)
        exports.export(scale, ALL_VIEWS, request=request)
    exports.export(1, request=request)  # the default views


@pytest.mark.parametrize(("model", "dataset"), [("digits-eps", Dataset.DIGITS), ("moons-v", Dataset.MOONS)])
def test_no_title_of_a_pixel_or_2d_run_overflows(monkeypatch, model, dataset):
    watch = Watch(monkeypatch)
    request = _run(f"titles-{model}", model=model)
    _every_picture_of_a_run(request, watch, dataset)
    assert any(len(c.texts) > 1 for c in watch.canvases.values())  # titles were drawn and seen
    assert watch.problems() == []


@pytest.mark.parametrize("typed", [SD_EPS, LDM])
def test_no_title_of_a_latent_run_overflows(monkeypatch, tiny_repos, typed):  # noqa: F811
    watch = Watch(monkeypatch)
    request = _run(f"titles-{typed}", typed=typed, prompt="a red cube" if typed == SD_EPS else "", batch=2, steps=3)
    for decoder in ("exact", "linear", "channels"):
        sampling.decode_frame(2, decoder, request=request)
    _every_picture_of_a_run(request, watch, None)
    texts = [text for canvas in watch.canvases.values() for _, text, _ in canvas.texts]
    assert any("drawn by the model's own VAE decoder" in text for text in texts)  # exports say their decoder
    assert watch.problems() == []


def test_the_comparison_picture_titles_fit(monkeypatch):
    watch = Watch(monkeypatch)
    parameterizations.side_by_side(parameterizations._forced("ring", 0, t=10), 0)
    assert watch.problems() == []


# Titles the app draws, the longest ones included, on panels from a native 4² latent grid up to ×8 panels.
TITLES = [
    "x_t · the model's own VAE decoder",
    "x̂₀ · the model's own VAE decoder",
    "final samples · drawn by the linear latent→RGB projection",
    "nearest training digit of each",
    "ε̂ (±3) predicted",
    "v̂ (±3) from ε̂",
    "û (±4) from ε̂",
    "μ",
    "noise z (±3)",
    "Supercalifragilisticexpialidocious_without_any_space_at_all_and_longer_than_any_column",
]


@pytest.mark.parametrize("width", [10, 16, 34, 64, 96, 128, 256, 512])
def test_no_title_runs_past_its_panel(monkeypatch, width):
    watch = Watch(monkeypatch)
    with_caption(labelled_row([(title, Image.new("RGB", (width, width), (128, 128, 128))) for title in TITLES]), "c")
    assert watch.problems() == []


def test_a_title_wraps_between_words_and_breaks_only_a_word_wider_than_any_column():
    from explorer.figures.images import _title_font

    font = _title_font(MIN_TITLE_SIZE)
    lines = title_lines("x_t · the model's own VAE decoder", 60, font)
    assert " ".join(lines) == "x_t · the model's own VAE decoder" and len(lines) > 1
    broken = title_lines("a" * 80, 40, font)
    assert "".join(broken) == "a" * 80 and len(broken) > 1
    # a narrow panel (a 2 × 2 grid of 4² latents at native size) gets a column its title's words fit in
    row = labelled_row([("ε̂ (±3) predicted", Image.new("RGB", (10, 10))), ("x_t", Image.new("RGB", (10, 10)))])
    header = np.asarray(row.convert("L"))[: row.height - 10]
    assert row.width > 2 * 10 + 8 and (header < 128).any()


def test_a_caption_is_never_cut(monkeypatch):
    watch = Watch(monkeypatch)
    caption = "frame 30 of 30 · t = 20 → 0 · branch from frame 10 · drawn by the linear latent→RGB projection"
    picture = with_caption(Image.new("RGB", (64, 64), "white"), caption)
    assert picture.width > 64 and watch.problems() == []


def test_your_last_run_is_a_table_of_views_at_least_2x_native_each_column_under_its_t(monkeypatch):
    request = _run("titles-last-run", model="digits-eps", steps=12, batch=2)
    compact = state.stored_run(request).compact
    watch = Watch(monkeypatch)
    parameterizations.trajectory_views(request)
    table = next(c for c in watch.canvases.values() if any(text.startswith("t = ") for _, text, _ in c.texts))
    frames = np.unique(np.round(np.linspace(0, len(compact) - 1, 10)).astype(int))
    expected = [f"t = {int(compact.timesteps[k]) + 1}" for k in frames]  # the paper's t of each frame shown
    assert [text for _, text, _ in table.texts if text.startswith("t = ")] == expected
    native = compact.x_t.shape[-1]
    assert len(table.pastes) == 4 * len(frames) and min(p[2] - p[0] for p in table.pastes) >= 2 * native
    assert watch.problems() == []
