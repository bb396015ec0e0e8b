"""The package's promises: importable without gradio, the public names of DESIGN.md, no unsafe patterns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import explorer

ROOT = Path(__file__).resolve().parent.parent


def test_explorer_imports_without_gradio() -> None:
    code = "import sys, explorer; assert 'gradio' not in sys.modules, 'explorer imported gradio'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_public_api_names() -> None:
    for name in ("Schedule", "Prediction", "convert", "load", "sample", "catalogue", "teacher_force", "true_reverse"):
        assert hasattr(explorer, name), name
    assert set(explorer.__all__) <= set(dir(explorer))


def test_no_pickle_loading_or_remote_code_in_the_sources() -> None:
    # Each pattern is spelled as two halves, so that this file does not itself contain what it looks for.
    halves = [("pickle", ".load"), ("weights_only", "=False"), ("trust_remote_code", "=True")]
    halves += [("allow_pickle", "=True"), ("share", "=True")]
    forbidden = ["".join(pair) for pair in halves]
    for path in [*ROOT.glob("explorer/*.py"), *ROOT.glob("ui/*.py"), ROOT / "app.py"]:
        text = path.read_text()
        for pattern in forbidden:
            assert pattern not in text, f"{path.name} contains {pattern}"
