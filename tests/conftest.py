"""Test-wide settings. The Hub is never reached: these variables are read once, when huggingface_hub,
diffusers or gradio is first imported, so they are set here before anything imports them."""

import os
import socket
import tempfile
from collections.abc import Iterator

_HF_HOME = tempfile.mkdtemp(prefix="explorer-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["DIFFUSERS_DISABLE_REMOTE_CODE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.pop("SPACE_ID", None)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def hf_home() -> str:
    """The offline Hugging Face home every test shares (its hub cache is `hf_home/hub`)."""
    return _HF_HOME


@pytest.fixture
def silent_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A 'Hub' on 127.0.0.1 that accepts connections and never answers; online mode pointed at it."""
    import huggingface_hub.constants as constants

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes handshakes; nobody ever reads or answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", url)
        yield url


# --- the app in Chromium (the browser tests share these; each test module gets its own server and browser) ---


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    """The app started exactly as `python app.py` starts it (ui.launch.launch), on a free port of this machine."""
    from app_fixtures import ensure_models, free_port

    ensure_models()
    import app
    from ui.launch import launch

    port = free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.demo.close()


@pytest.fixture(scope="module")
def browser(app_url: str):
    """Debian's Chromium through Playwright (`playwright install` cannot download browsers here)."""
    from app_fixtures import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
