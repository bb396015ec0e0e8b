"""The package's promises: importable without gradio, its public names (explorer.__all__), no unsafe patterns."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import explorer

ROOT = Path(__file__).resolve().parent.parent


def test_explorer_imports_without_gradio() -> None:
    code = "import sys, explorer; assert 'gradio' not in sys.modules, 'explorer imported gradio'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_public_api_names() -> None:
    for name in ("Schedule", "Prediction", "convert", "load", "sample", "catalogue", "teacher_force", "true_reverse"):
        assert hasattr(explorer, name), name
    assert set(explorer.__all__) <= set(dir(explorer))


# Each pattern is spelled as two halves, so that this file does not itself contain what it looks for.
_UNSAFE = [
    "".join(pair)
    for pair in [
        ("pickle", ".load"),
        ("torch", ".load("),
        ("weights_only", "=False"),
        ("trust_remote_code", "=True"),
        ("allow_pickle", "=True"),
        ("share", "=True"),
    ]
]


def unsafe_lines(root: Path) -> list[str]:
    """`path:line: pattern` for every unsafe pattern in any file under `root`'s explorer/ and ui/, and app.py.

    Every file is read (Python, JavaScript, CSS, data), at any depth: a loader can hide in a subpackage."""
    files = [path for folder in ("explorer", "ui") for path in sorted((root / folder).rglob("*")) if path.is_file()]
    files += [root / "app.py"] if (root / "app.py").is_file() else []
    found = []
    for path in files:
        if "__pycache__" in path.parts:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            squeezed = line.replace(" ", "")
            found += [f"{path.relative_to(root)}:{number}: {pattern}" for pattern in _UNSAFE if pattern in squeezed]
    return found


def test_no_pickle_loading_or_remote_code_in_the_sources() -> None:
    assert unsafe_lines(ROOT) == []


@pytest.mark.parametrize(
    "halves", [("torch.lo", "ad(path)"), ("pickle.lo", "ad(handle)"), ("load(trust_remote_code = ", "True)")]
)
def test_the_scan_finds_a_planted_unsafe_load_in_a_subpackage(tmp_path: Path, halves: tuple[str, str]) -> None:
    """The scan above is only worth something if it reads explorer/models/: plant a load there and see it caught."""
    planted = "".join(halves)
    shutil.copytree(ROOT / "explorer", tmp_path / "explorer", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "ui", tmp_path / "ui", ignore=shutil.ignore_patterns("__pycache__"))
    assert unsafe_lines(tmp_path) == []
    target = tmp_path / "explorer" / "models" / "checkpoint.py"
    target.write_text(target.read_text() + f"\n\ndef _planted(path, handle):\n    return {planted}\n")
    found = unsafe_lines(tmp_path)
    assert len(found) == 1 and found[0].startswith("explorer/models/checkpoint.py:"), found


# --- the architecture: what imports what, and how wide the handlers are ---------------------------------------

VIEWS = ("schedules", "posterior", "sampling", "parameterizations", "bound", "memorization")
MAX_PARAMETERS = 8


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every project module `path` imports, at module level or inside a function."""
    import ast

    found: set[str] = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    paths = [*ROOT.glob("explorer/**/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("tools/*.py"), ROOT / "app.py"]
    modules = {_module_name(path): path for path in paths}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_anywhere() -> None:
    graph = _graph()
    assert "explorer.diffusion.sampler" in graph and "ui.sampling" in graph  # the walk sees the tree
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check itself can fail


def test_layers_point_one_way() -> None:
    """diffusion needs nothing else of the project but validation; models and figures build on it; ui on all."""
    for name, targets in _graph().items():
        if name.startswith("explorer.diffusion"):
            assert all(t.startswith(("explorer.diffusion", "explorer.validation")) for t in targets), (name, targets)
        if name.startswith("explorer"):
            assert not any(t.startswith(("ui", "app", "tools")) for t in targets), (name, targets)
        if name.startswith("tools"):
            assert not any(t.startswith(("ui", "app")) for t in targets), (name, targets)


def test_no_view_imports_another_view() -> None:
    graph = _graph()
    for view in VIEWS:
        others = {f"ui.{other}" for other in VIEWS if other != view}
        assert not graph[f"ui.{view}"] & others, f"ui.{view} imports {graph[f'ui.{view}'] & others}"


def test_no_handler_takes_more_than_eight_parameters() -> None:
    import ast

    for path in [*ROOT.glob("ui/*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                count = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
                count -= bool(a.args and a.args[0].arg in ("self", "cls"))
                assert count <= MAX_PARAMETERS, f"{path.name}:{node.lineno} {node.name} takes {count} parameters"


def test_importing_explorer_changes_no_other_library() -> None:
    code = (
        "import huggingface_hub.utils._http as http\n"
        "before = http._GLOBAL_CLIENT_FACTORY\n"
        "import sys, explorer, explorer.models.hub, explorer.models.loader\n"
        "assert http._GLOBAL_CLIENT_FACTORY is before, 'importing explorer replaced the Hub client'\n"
        "assert 'gradio' not in sys.modules and 'diffusers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
