"""A public Space under abuse, the parts that are not about queues: no decoded picture bombs, no picture input on a
Space at all, no model loaded or downloaded by opening a link, local folders only on loopback, exports and the
cache swept, runs sized before they start."""

from __future__ import annotations

import base64
import gc
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import gradio as gr
import httpx
import pytest
from app_fixtures import FakeRequest, api_arguments, ensure_models, free_port, no_progress
from raw_gradio import call_api, new_session

ensure_models()
import app  # noqa: E402 (after the bundled models exist)
from ui import exports, models, sampling  # noqa: E402
from ui.controls import RunValues, ScheduleValues, StepValues  # noqa: E402
from ui.launch import launch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = app.demo.get_config_file()
MIB = 1 << 20


def bomb_png(side: int) -> bytes:
    """A grey PNG of side × side black pixels, compressed row by row (never held decoded): 13000² is ~165 KB."""
    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def rss() -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) * 1024


@pytest.fixture(scope="module")
def server():
    port = free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            yield http
    finally:
        app.demo.close()


def upload(http: httpx.Client, name: str, payload: bytes) -> dict:
    answer = http.post("/gradio_api/upload", files={"files": (name, payload, "image/png")})
    assert answer.status_code == 200, answer.text[:200]
    return {"path": answer.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


# --- pictures ---------------------------------------------------------------------------------------------------


def test_a_picture_bomb_is_refused_before_it_is_decoded(server):
    bomb = bomb_png(13_000)
    assert len(bomb) < 400_000  # 169 M pixels in a few hundred KB
    picture = upload(server, "bomb.png", bomb)
    gc.collect()
    before = rss()
    answer = call_api(server, "posterior", api_arguments(CONFIG, "posterior", post_source="uploaded image",
                                                         post_upload=picture), new_session())  # fmt: skip
    grown = rss() - before
    assert not answer.ok and "13000×13000 pixels" in (answer.message or "")
    assert grown < 500 * MIB, f"the server grew by {grown / MIB:.0f} MiB"


def test_a_data_url_gets_the_same_cap_as_an_upload(server):
    big = "data:image/png;base64," + base64.b64encode(b"\0" * (20 * MIB)).decode()
    inline = {"url": big, "path": None, "meta": {"_type": "gradio.FileData"}}
    answer = call_api(
        server,
        "posterior",
        api_arguments(CONFIG, "posterior", post_source="uploaded image", post_upload=inline),
        new_session(),
    )
    assert not answer.ok and "at most 5 MB" in (answer.message or "")
    bomb = "data:image/png;base64," + base64.b64encode(bomb_png(13_000)).decode()
    answer = call_api(
        server,
        "posterior",
        api_arguments(CONFIG, "posterior", post_source="uploaded image", post_upload={**inline, "url": bomb}),
        new_session(),
    )
    assert not answer.ok and "pixels" in (answer.message or "")


def test_a_small_picture_is_still_accepted(server, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48), "white").save(tmp_path / "ok.png")
    picture = upload(server, "ok.png", (tmp_path / "ok.png").read_bytes())
    answer = call_api(
        server,
        "posterior",
        api_arguments(CONFIG, "posterior", post_source="uploaded image", post_upload=picture),
        new_session(),
    )
    assert answer.ok, answer.message


def test_on_a_space_the_posterior_takes_no_picture_at_all():
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "import app\n"
        "from app_fixtures import endpoint_inputs\n"
        "config = app.demo.get_config_file()\n"
        "kinds = [c['type'] for c in endpoint_inputs(config, 'posterior')]\n"
        "assert 'image' not in kinds and 'boundedimage' not in kinds, kinds\n"
        "assert not any(c['type'] == 'image' and c['props'].get('interactive') is not False\n"
        "               for c in config['components']), 'an image input exists on the Space'\n"
        "print('inputs', len(kinds))\n"
    )
    env = {**os.environ, "SPACE_ID": "someone/explorer"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inputs 12" in result.stdout  # schedule 1's six controls and the view's own six


# --- links --------------------------------------------------------------------------------------------------------


@pytest.fixture
def nothing_loads(monkeypatch):
    """Fail the test if anything loads a model or talks to the Hub."""
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded or downloaded")

    monkeypatch.setattr("ui.runs.load_model", refuse)
    monkeypatch.setattr("explorer.models.loader.load", refuse)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)


def test_a_link_to_a_hub_model_shows_it_and_loads_nothing(nothing_loads):
    request = FakeRequest("hub-link")
    request.query_params = {"tab": "sampling", "model": "someone/not-cached-anywhere", "frame": "5"}
    _tab, _tab_id, frame, _large, *values = app.restore_page(request)
    model = dict(zip(app.controls, values, strict=True))["model"]
    assert model == "someone/not-cached-anywhere" and frame == 5
    outputs = list(
        sampling.open_frame(frame, RunValues(model=model), StepValues(), ScheduleValues(), request=request,
                            progress=no_progress)
    )  # fmt: skip
    (said,) = outputs
    assert "press **Run**" in said.status and "someone/not-cached-anywhere" in said.status


def test_opening_the_page_loads_nothing(nothing_loads):
    outputs = list(sampling.open_frame(None, RunValues(), StepValues(), ScheduleValues(), request=FakeRequest("open")))
    assert len(outputs) == 1


@pytest.mark.parametrize("value", ["/etc", "../x", "~/models", "./local"])
def test_a_link_to_a_local_path_is_ignored(value):
    request = FakeRequest("path-link")
    request.query_params = {"model": value, "typed_model": value}
    _tab, _tab_id, _frame, _large, *values = app.restore_page(request)
    model, typed = (dict(zip(app.controls, values, strict=True))[name] for name in ("model", "typed_model"))
    assert not isinstance(typed, str), f"the link set the typed box to {typed!r}"
    assert not isinstance(model, str), f"the link set the model box to {model!r}"


# --- local folders ------------------------------------------------------------------------------------------------


@pytest.fixture
def local_model(tmp_path):
    from diffusers import DDPMScheduler

    from explorer.data import Dataset
    from tools.train import build_model

    folder = tmp_path / "my-moons"
    build_model(Dataset.MOONS).save_pretrained(folder, safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder)
    yield str(folder)
    models.allow_local_folders(None)


def _run_typed(typed: str) -> list:
    values = RunValues(typed=typed, steps=2, batch=4)
    return list(
        sampling.run(values, StepValues(), ScheduleValues(), request=FakeRequest("local"), progress=no_progress)
    )


def test_local_folders_only_on_loopback_or_when_asked(local_model):
    assert not models.allow_local_folders("0.0.0.0")
    with pytest.raises(gr.Error, match="local folder") as refused:
        _run_typed(local_model)
    assert local_model not in str(refused.value)  # no server path in the answer
    assert models.allow_local_folders("0.0.0.0", flag=True)
    assert "Frame 2 of 2" in _run_typed(local_model)[-1].status
    assert models.allow_local_folders("127.0.0.1")
    assert "Frame 2 of 2" in _run_typed(local_model)[-1].status


def test_by_default_a_typed_path_is_refused():
    models.allow_local_folders(None)
    with pytest.raises(gr.Error, match="local folder"):
        _run_typed("/etc")


# --- disk ---------------------------------------------------------------------------------------------------------


def test_exports_are_swept_and_the_cache_is_aged():
    assert app.demo.delete_cache == app.CACHE_SWEEP
    request = FakeRequest("export-sweep")
    list(
        sampling.run(RunValues(steps=3, batch=2), StepValues(), ScheduleValues(), request=request, progress=no_progress)
    )
    gif, mp4 = sampling.export(request=request)
    folder = Path(gif).parent
    assert folder.parent == exports.EXPORT_ROOT and Path(mp4).is_file()
    legacy = Path(exports.tempfile.mkdtemp(prefix="explorer-export-"))
    assert exports.sweep_exports(None) >= 2
    assert not folder.exists() and not legacy.exists()


# --- runs sized before they start ---------------------------------------------------------------------------------


def test_the_largest_run_the_controls_allow_is_refused_at_once(server):
    gc.collect()
    before = rss()
    biggest = api_arguments(CONFIG, "run", steps=1000, batch=64)
    answer = call_api(server, "run", biggest, new_session())
    assert not answer.ok and "would fit" in (answer.message or "")
    assert rss() - before < 300 * MIB


def test_a_point_model_takes_the_largest_point_batch(server):
    answer = call_api(
        server, "run", api_arguments(CONFIG, "run", model="moons-eps", steps=2, batch=1024), new_session()
    )
    assert answer.ok, answer.message


def test_on_a_space_the_upload_route_takes_nothing(tmp_path):
    """Nothing on a Space takes a file, so Gradio's /upload refuses every file: no client can fill the disk."""
    code = (
        "import sys, httpx; sys.path.insert(0, 'tests')\n"
        "from app_fixtures import free_port\n"
        "import app\n"
        "from ui.launch import launch\n"
        "port = free_port()\n"
        "launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)\n"
        "answer = httpx.post(f'http://127.0.0.1:{port}/gradio_api/upload', files={'files': ('a.png', b'x' * 1024)})\n"
        "print('status', answer.status_code)\n"
        "app.demo.close()\n"
    )
    env = {**os.environ, "SPACE_ID": "someone/explorer"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert "status 413" in result.stdout, result.stdout[-500:] + result.stderr[-2000:]
