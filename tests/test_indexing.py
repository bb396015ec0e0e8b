"""The index convention (`explorer.diffusion.indexing`): its conversions, and no inline offset anywhere else.

The page shows paper t (1..T) and frames (1..S); code indexes tables by diffusers' 0-based timestep and runs by
position k (0..S−1). A ±1 written inline is how those get mixed up, so this test reads the package, the views and
the app, and fails on any ±1 applied to a step number outside `indexing.py`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from explorer.diffusion.indexing import frame_of, paper_t, position_of, previous_t, timestep_of

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("explorer/**/*.py"), *ROOT.glob("ui/*.py"), ROOT / "app.py"])
CONVENTION = ROOT / "explorer" / "diffusion" / "indexing.py"
# Names that hold a paper step, a timestep or a frame number: ±1 on them is a conversion.
STEP_NUMBER = re.compile(r"^(t|s|chosen|first|last|timesteps?|prev_timesteps?|frames?|steps|frame_number)$")
# Names that hold a position in a run: ±1 is the neighbouring step, except when shown (in an f-string).
POSITION = re.compile(r"^(k|i|j|index|current|until)$")


def _name(node: ast.AST) -> str | None:
    """The variable a number comes from: `t`, `step.timestep`, `steps.astype(...)`, `int(t)`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute) and node.func.attr == "astype":
            return _name(node.func.value)
        if isinstance(node.func, ast.Name) and node.func.id == "int" and node.args:
            return _name(node.args[0])
    if isinstance(node, ast.Subscript):
        return _name(node.value)
    return None


def inline_offsets(source: str) -> list[tuple[int, str]]:
    """(line, expression) of every ±1 on a step number, and of every shown ±1 on a run position."""
    tree = ast.parse(source)
    shown: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FormattedValue):
            shown.update(id(inner) for inner in ast.walk(node.value))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub)):
            continue
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if not (isinstance(other, ast.Constant) and other.value == 1 and type(other.value) is int):
                continue
            name = _name(side)
            if name and (STEP_NUMBER.match(name) or (POSITION.match(name) and id(node) in shown)):
                found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_checker_catches_what_it_is_for():
    snippet = """
i = t - 1
label = f"x<sub>{t - 1}</sub>"
text = f"Frame {index + 1} of {n}"
paper = (steps + 1).astype(str)
after = settings.timesteps[k + 1]
fine = frame_of(index), previous_t(t), count - 1
"""
    found = [expression for _, expression in inline_offsets(snippet)]
    assert found == ["t - 1", "t - 1", "index + 1", "steps + 1"]


@pytest.mark.parametrize("path", [p for p in SOURCES if p != CONVENTION], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_inline_offset_outside_the_convention(path):
    found = inline_offsets(path.read_text())
    assert not found, f"{path.relative_to(ROOT)}: use explorer.diffusion.indexing instead of " + ", ".join(
        f"line {line}: {expression}" for line, expression in found
    )


def test_conversions_round_trip_on_ints_and_arrays():
    assert paper_t(0) == 1 and timestep_of(1) == 0 and paper_t(-1) == 0  # −1 (the data) is paper t = 0
    assert frame_of(0) == 1 and position_of(1) == 0 and previous_t(1) == 0
    steps = np.array([999, 500, 0])
    assert paper_t(steps).tolist() == [1000, 501, 1] and timestep_of(paper_t(steps)).tolist() == steps.tolist()
    assert frame_of(np.arange(3)).tolist() == [1, 2, 3]
    assert isinstance(paper_t(np.int64(4)), int)
