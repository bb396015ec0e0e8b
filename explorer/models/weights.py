"""Weight-file safety: every file diffusers would read from a model folder is checked before diffusers sees it.

What is checked, in order (`plan_weights`, then `check_weights` on disk; the Hub runs `plan_weights` and
`check_weight_size` on its file list before downloading any weights):

1. Which files a load reads, found as diffusers finds them: a shard index first (per variant), else the single
   `diffusion_pytorch_model.safetensors`. An index may name only plain `.safetensors` files in the same folder,
   and every shard it names must be there. A folder whose only weights are pickles (.bin, .ckpt, .pt, …) is
   refused by name: pickled weights can run arbitrary code when loaded, and nothing here ever unpickles.
2. Every other shard index in the folder is held to the same rule, so diffusers cannot pick one that names a pickle.
3. Every `.safetensors` file must start as safetensors do (an 8-byte length, then a JSON header; a bounded read):
   a pickle renamed `.safetensors` is refused before diffusers opens it.
4. The files read must fit in `max_weight_bytes()` (EXPLORER_MAX_WEIGHT_BYTES, else 2 GiB), so one load cannot
   fill the memory or the disk.

Why: every file diffusers would read must be a real safetensors file, so a pickle, whatever it is named, is refused
before diffusers sees the folder; and sizes are bounded. Refusals are `CheckpointError`s (see `errors`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.models.errors import CheckpointError, CheckpointProblem, broken_files, missing_files, read_json

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+, and torch.save's zip archive
WEIGHTS_STEM = "diffusion_pytorch_model"


def weight_entries(stem: str = WEIGHTS_STEM) -> dict[str | None, tuple[str, ...]]:
    """Per variant, in the order diffusers (stem diffusion_pytorch_model) and transformers (stem model) look: shard
    indexes (the current name, the legacy name, and the name this app used to look for), then the single weights
    file. An index, when present, is what the library reads."""
    return {
        None: (f"{stem}.safetensors.index.json", f"{stem}.safetensors"),
        "fp16": (
            f"{stem}.safetensors.index.fp16.json",
            f"{stem}.safetensors.fp16.index.json",
            f"{stem}.fp16.safetensors.index.json",
            f"{stem}.fp16.safetensors",
        ),
    }


WEIGHT_ENTRIES = weight_entries()
MAX_WEIGHT_BYTES = 2 << 30  # the default; EXPLORER_MAX_WEIGHT_BYTES overrides it, read at each load
MAX_HEADER_BYTES = 16 << 20  # a safetensors header (tensor names, shapes, offsets) is kilobytes for these models
_SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def max_weight_bytes() -> int:
    """The most weight bytes one load reads: EXPLORER_MAX_WEIGHT_BYTES when set, else MAX_WEIGHT_BYTES."""
    text = os.environ.get("EXPLORER_MAX_WEIGHT_BYTES", "").strip()
    if not text:
        return MAX_WEIGHT_BYTES
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise ValueError(f"EXPLORER_MAX_WEIGHT_BYTES must be a positive whole number of bytes; got {text[:40]!r}.")
    return int(text)


def _amount(size: int) -> str:
    """A byte count for people: '812 bytes', '3.5 MiB', '2.0 GiB'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size} bytes"


def check_weight_size(total: int, name: str) -> None:
    """Refuse weights larger than `max_weight_bytes()` in all (sizes from the Hub's listing or from the disk)."""
    limit = max_weight_bytes()
    if total > limit:
        raise CheckpointError(
            CheckpointProblem.TOO_LARGE,
            f"{name!r} has {_amount(total)} of weights, more than the {_amount(limit)} this server loads.",
        )


def _not_safetensors(name: str, files: list[str]) -> CheckpointError:
    shown = ", ".join(repr(file)[1:-1][:60] for file in files[:3])
    return CheckpointError(
        CheckpointProblem.PICKLE_ONLY,
        f"{name!r} has weights that are not safetensors files ({shown}); pickled weights can run arbitrary code when "
        "loaded, and the explorer loads safetensors weights only.",
    )


@dataclass(frozen=True)
class WeightPlan:
    """The weight files a diffusers load of one model folder reads: names inside that folder, and the variant."""

    variant: str | None
    index_files: tuple[str, ...]  # shard indexes diffusers may read (empty for one file)
    files: tuple[str, ...]  # the safetensors files it reads: the shards, or the single file


def index_shards(index: dict[str, Any], index_name: str, name: str) -> tuple[str, ...]:
    """The shard files an index's `weight_map` names: plain names in the same folder, each a .safetensors file."""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise broken_files(name, f"{index_name} has no weight_map from tensor names to file names")
    shards = sorted(set(weight_map.values()))
    outside = [shard for shard in shards if not _SHARD_NAME.fullmatch(shard) or ".." in shard]
    if outside:
        raise broken_files(name, f"{index_name} names {outside[0]!r:.60}, which is not a plain file name in its folder")
    pickles = [shard for shard in shards if not shard.endswith(".safetensors")]
    if pickles:
        raise _not_safetensors(name, pickles)
    return tuple(shards)


def plan_weights(
    names: Collection[str], name: str, read_index: Callable[[str], dict[str, Any]], stem: str = WEIGHTS_STEM
) -> WeightPlan:
    """What a diffusers load of a folder holding `names` reads, found as diffusers finds it (an index first).

    `read_index(index_name)` returns an index's JSON (from the disk, or downloaded alone from the Hub). Refuses
    indexes that name pickles or files outside the folder, shards that are not there, and folders whose only
    weights are pickled; nothing is ever unpickled.
    """
    for variant, (*indexes, single) in weight_entries(stem).items():
        present = tuple(index for index in indexes if index in names)
        if present:
            shards = sorted({shard for index in present for shard in index_shards(read_index(index), index, name)})
            missing = [shard for shard in shards if shard not in names]
            if missing:
                raise missing_files(name, f"the weight file {missing[0]} that its index names")
            return WeightPlan(variant, present, tuple(shards))
        if single in names:
            return WeightPlan(variant, (), (single,))
    pickles = sorted(n for n in names if n.lower().endswith(PICKLE_SUFFIXES))
    if pickles:
        raise CheckpointError(
            CheckpointProblem.PICKLE_ONLY,
            f"{name!r} has only pickled weights ({', '.join(pickles[:3])}), which can run arbitrary code when "
            "loaded, and the explorer loads safetensors weights only.",
        )
    raise missing_files(name, f"its weights ({stem}.safetensors)")


def check_safetensors_file(path: Path, name: str) -> None:
    """Refuse a file that does not start as safetensors do: an 8-byte little-endian length, then a JSON object.

    A bounded read of the header only; tensors are never loaded, and a pickle is never opened as one.
    """
    if not path.is_file():  # also refuses FIFOs and devices, which a read could block on
        raise missing_files(name, path.name)
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else 0
        if 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            try:
                header = json.loads(file.read(length))
            except ValueError:  # UnicodeDecodeError and JSONDecodeError
                header = None
            if isinstance(header, dict):
                return
    if head.startswith(PICKLE_MAGIC):
        raise _not_safetensors(name, [path.name])
    raise broken_files(name, f"{path.name} is not a safetensors file")


def check_weights(model_folder: Path, name: str, stem: str = WEIGHTS_STEM) -> str | None:
    """Check on disk every weight file a load of `model_folder` may read; return the variant to load.

    Every shard index (the library's names, and any other `<stem>*index*.json`) must name plain .safetensors files;
    every .safetensors file must have a safetensors header; the files read must fit in `max_weight_bytes()`. Run
    just before diffusers (or transformers) sees the folder.
    """
    variant, size = check_folder_weights(model_folder, name, stem)
    check_weight_size(size, name)
    return variant


def check_folder_weights(model_folder: Path, name: str, stem: str = WEIGHTS_STEM) -> tuple[str | None, int]:
    """`check_weights` without the size limit: the variant to load and the bytes a load of the folder reads."""
    names = {path.name for path in model_folder.iterdir()} if model_folder.is_dir() else set()
    plan = plan_weights(names, name, lambda index: read_json(model_folder / index, name), stem)
    for index in sorted(names - set(plan.index_files)):
        if index.startswith(stem) and index.endswith(".json") and "index" in index:
            index_shards(read_json(model_folder / index, name), index, name)
    for weights in sorted(n for n in names if n.endswith(".safetensors")):
        check_safetensors_file(model_folder / weights, name)
    return plan.variant, sum((model_folder / file).stat().st_size for file in plan.files)


def check_pipeline_weights(folder: Path, stems: dict[str, str], name: str) -> dict[str, str | None]:
    """Check every weight folder of a pipeline (component folder -> weight stem) as `check_weights` does, with one
    size limit for all of them together; return each component's variant."""
    checked = {component: check_folder_weights(folder / component, name, stem) for component, stem in stems.items()}
    check_weight_size(sum(size for _, size in checked.values()), name)
    return {component: variant for component, (variant, _) in checked.items()}
