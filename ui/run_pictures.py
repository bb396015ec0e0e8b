"""Pictures of a run, drawn from its compact record: one frame's views of the whole batch, and the final samples
beside their nearest training examples (sizes in screen pixels; batches are [B, C, H, W] images or [B, 2] points)."""

from __future__ import annotations

import math

import torch
from PIL import Image

from explorer.data import Dataset, exact_training_set, nearest
from explorer.diffusion.trajectory import CompactTrajectory
from explorer.diffusion.views import STEP_VIEWS
from explorer.figures.images import image_grid, labelled_grid, labelled_row, scatter_frame, with_caption
from explorer.figures.sampling import frame_caption
from explorer.models.decoders import Decoder
from ui.pictures import PIXELS, Drawing

PANEL_PIXELS = 200  # one view of a frame is drawn about this wide

# --- pictures of one frame --------------------------------------------------------------------


def panel(batch: torch.Tensor, half_range: float, drawing: Drawing = PIXELS) -> Image.Image:
    """One view of the whole batch: an image grid (latents drawn by `drawing`), or a scatter of points."""
    if batch.ndim == 2:  # points [B, 2]
        return scatter_frame(batch, size=PANEL_PIXELS, extent=3.5 * half_range)
    pictures = drawing.pixels(batch, half_range)
    count, _, height, _ = pictures.shape
    columns = math.ceil(math.sqrt(count))
    scale = max(1, PANEL_PIXELS // (columns * (height + 2)))
    return image_grid(pictures, columns=columns, scale=scale)


def frame_picture(compact: CompactTrajectory, index: int, drawing: Drawing = PIXELS) -> Image.Image:
    """Step `index` of a compact run: every view of the whole batch, side by side with titles, and its caption
    ("frame k of S · t = …", and for a latent run the decoder that drew it) inside the picture."""
    views = [
        (view.title_for(compact.prediction), panel(compact.view(view.name, index), view.half_range, drawing))
        for view in STEP_VIEWS
    ]
    note = f" · drawn by {drawing.name}" if drawing.latent else ""
    return with_caption(labelled_row(views), frame_caption(compact, index) + note)


FINALS_PIXELS = 480  # the final samples' grid is drawn about this wide (at least 2× native)
MAX_FINALS_WIDTH = 760  # …and at most this wide per panel, so samples and neighbours fit a page side by side


def finals_distances(samples: torch.Tensor, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Each final sample's nearest example of `data` (index int64 [B]) and its L2 distance (float64 [B]), and one
    sentence with the median distance (a copy of a training example lies at 0)."""
    index, distance = nearest(samples, data)
    median = float(distance.median())
    verdict = "copies of training examples" if median < 1e-3 else "new samples, not copies"
    return index, distance, f"median distance to the nearest training example {median:.3g}: {verdict}"


def _finals_grid(images: torch.Tensor, labels: list[str], drawing: Drawing = PIXELS) -> Image.Image:
    """A batch of images as one grid at least 2× native (up to MAX_FINALS_WIDTH), each with its label under it."""
    pictures = drawing.pixels(images, 1.0)
    count, width = pictures.shape[0], pictures.shape[-1]
    columns = math.ceil(math.sqrt(count))
    scale = max(2, FINALS_PIXELS // (columns * (width + 2)))
    scale = max(1, min(scale, MAX_FINALS_WIDTH // (columns * (width + 2))))
    tiles = [image_grid(pictures[k : k + 1], columns=1, scale=scale) for k in range(count)]
    return labelled_grid(tiles, labels, columns=columns)


def finals_picture(samples: torch.Tensor, dataset: Dataset | None, drawing: Drawing = PIXELS) -> Image.Image:
    """The final samples, at least 2× native; for a model of a bundled data set, beside each sample's nearest
    example of the set the exact denoiser reverses, each with its distance under it and the median in the title."""
    if dataset is None:
        if samples.ndim == 2:  # points of a model whose data set is not known here
            return labelled_row([("final samples", scatter_frame(samples, size=PANEL_PIXELS * 3, extent=3.5))])
        if not drawing.latent:
            return _finals_grid(samples, [f"sample {k}" for k in range(len(samples))])
        exact = Drawing(drawing.model, Decoder.EXACT)  # a latent model's samples: decoded by its own VAE
        labels = [f"sample {k}" for k in range(len(samples))]
        return labelled_row([(f"final samples · drawn by {exact.name}", _finals_grid(samples, labels, exact))])
    data = exact_training_set(dataset)
    index, distance, sentence = finals_distances(samples, data)
    what = "training digit" if dataset is Dataset.DIGITS else f"of the {len(data):,} training points"
    if samples.ndim == 2:  # points: the samples over the finite set, grey
        picture = scatter_frame(samples, size=PANEL_PIXELS * 3, extent=3.5, reference=data.numpy())
        return labelled_row([(f"final samples (blue) over the training set (grey) · {sentence}", picture)])
    labels = [f"d = {float(d):.2f}" for d in distance]
    return labelled_row(
        [
            (f"final samples · {sentence}", _finals_grid(samples, labels)),
            (f"nearest {what} of each", _finals_grid(data[index], [f"#{int(k)}" for k in index])),
        ]
    )
