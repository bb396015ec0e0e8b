"""Animations written one frame at a time: a looping GIF and an H.264 MP4 that never hold more than one frame.

Both take the canvas size up front (the first frame's); each frame is pasted on a white canvas of that size
(cropped where larger), as `export_mp4` does. `GifStream` encodes each frame by itself with Pillow (an adaptive
palette of its own, as `export_gif` quantizes) and copies its image block into one file with a local colour table,
a graphic-control extension (its duration, in hundredths of a second) and the NETSCAPE2.0 loop extension.
`bytes_written` lets a caller stop a stream that passes its disk budget.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def _skip_blocks(data: bytes, at: int) -> int:
    """The offset just past a chain of GIF data sub-blocks starting at `at` (the 0 terminator included)."""
    while data[at] != 0:
        at += data[at] + 1
    return at + 1


def _image_block(data: bytes) -> tuple[int, bytes, bytes]:
    """From a one-frame GIF: (descriptor flags, colour table, LZW code size + data sub-blocks)."""
    flags = data[10]
    table_end = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    table, at = data[13:table_end], table_end
    while data[at] == 0x21:  # extensions before the image (Pillow may write one): skipped
        at = _skip_blocks(data, at + 2)
    if data[at] != 0x2C:
        raise ValueError("not a GIF image block")
    descriptor = data[at : at + 10]
    image_flags = descriptor[9]
    at += 10
    if image_flags & 0x80:  # a local table already
        local_end = at + (3 << ((image_flags & 7) + 1))
        table, at = data[at:local_end], local_end
        size_bits = image_flags & 7
    else:
        size_bits = flags & 7
    end = _skip_blocks(data, at + 1)
    return 0x80 | (image_flags & 0x40) | size_bits, table, data[at:end]


class GifStream:
    """A looping GIF written frame by frame: `add(picture, milliseconds)`, then `close()`."""

    def __init__(self, path: str | Path, size: tuple[int, int]) -> None:
        self.path, self.size = Path(path), size
        self._file = self.path.open("wb")
        width, height = size
        self._file.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0))  # no global colour table
        self._file.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop for ever
        self.frames = 0

    def add(self, picture: Image.Image, milliseconds: int) -> None:
        canvas = Image.new("RGB", self.size, "white")
        canvas.paste(picture.convert("RGB"))
        buffer = io.BytesIO()
        canvas.convert("P", palette=Image.Palette.ADAPTIVE).save(buffer, format="GIF")
        flags, table, pixels = _image_block(buffer.getvalue())
        delay = max(2, round(milliseconds / 10))
        self._file.write(b"\x21\xf9\x04\x04" + struct.pack("<H", delay) + b"\x00\x00")  # keep the frame
        self._file.write(b"\x2c" + struct.pack("<HHHH", 0, 0, *self.size) + bytes([flags]) + table + pixels)
        self.frames += 1

    @property
    def bytes_written(self) -> int:
        return self.path.stat().st_size if self._file.closed else self._file.tell()

    def close(self) -> Path:
        if not self._file.closed:
            self._file.write(b"\x3b")
            self._file.close()
        return self.path


class Mp4Stream:
    """An H.264 MP4 (imageio's bundled ffmpeg) written frame by frame; sides padded to even sizes."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float) -> None:
        import imageio.v2 as imageio

        self.path = Path(path)
        width, height = size
        self.size = (width + width % 2, height + height % 2)
        self._writer: Any = imageio.get_writer(
            self.path, fps=fps, codec="libx264", quality=8, macro_block_size=1, ffmpeg_params=["-threads", "1"]
        )  # one encoder thread: an export must not take every core from the server
        self.frames = 0

    def add(self, picture: Image.Image, repeats: int = 1) -> None:
        canvas = Image.new("RGB", self.size, "white")
        canvas.paste(picture.convert("RGB"))
        pixels = np.asarray(canvas)
        for _ in range(repeats):
            self._writer.append_data(pixels)
            self.frames += 1

    @property
    def bytes_written(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> Path:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.path
