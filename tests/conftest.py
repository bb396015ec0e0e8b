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
