"""The API by name, against the app as `python app.py` starts it: every endpoint's parameters are called by the
controls they set (their URL parameters), with defaults; the README's gradio_client example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
README_SECTION = "## Using the app from Python (gradio_client)"
README_URL = "http://127.0.0.1:7860/"
UNNAMED = re.compile(r"^(given|param_\d+|parameter_\d+)$")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`python app.py` in a fresh process on a free port (offline: the bundled models only)."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"python app.py did not serve {url}: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def control_names(config: dict) -> set[str]:
    """Every control's URL parameter: its elem_id, and `frame` for the frame slider (ui.restore)."""
    names = {c["props"]["elem_id"] for c in config["components"] if c.get("props", {}).get("elem_id")}
    return names | {"frame"}


def test_every_parameter_is_named_after_its_control_with_a_default(server):
    info = httpx.get(f"{server}gradio_api/info", timeout=30).json()
    config = httpx.get(f"{server}config", timeout=30).json()
    names = control_names(config)
    endpoints = info["named_endpoints"]
    assert {"/schedules", "/posterior", "/run", "/branch", "/frame", "/next_frame", "/export"} <= set(endpoints)
    for endpoint, details in endpoints.items():
        for parameter in details["parameters"]:
            name = parameter["parameter_name"]
            assert not UNNAMED.match(name), f"{endpoint}: {name}"
            assert name in names, f"{endpoint}: {name} is not a control's URL parameter"
            assert parameter["parameter_has_default"], f"{endpoint}: {name} has no default"
    run = [p["parameter_name"] for p in endpoints["/run"]["parameters"]]
    assert {"model", "steps", "sampler", "eta", "seed", "batch", "T1", "family1"} <= set(run)
    assert [p["parameter_name"] for p in endpoints["/next_frame"]["parameters"]] == ["frame"]
    steps = next(p for p in endpoints["/run"]["parameters"] if p["parameter_name"] == "steps")
    assert steps["parameter_default"] == 50


def readme_example() -> str:
    """The Python block of the README's gradio_client section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(README_SECTION) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README's gradio_client section has no Python block"
    return match.group(1)


def test_the_readme_client_example_runs_steps_branches_and_exports(server):
    code = readme_example()
    assert README_URL in code and "/run" in code and "/branch" in code and "/export" in code
    script = code.replace(README_URL, server)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    gif, mp4, png = done.stdout.split()[-3:]
    assert gif.endswith(".gif") and mp4.endswith(".mp4") and png.endswith(".png")
    assert all(Path(path).stat().st_size > 0 for path in (gif, mp4, png))
