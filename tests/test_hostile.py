"""Hostile input through the API route and the page's queue route, as a table generated from the app's events.

Every input of every server-side event gets NaN, ±inf, huge, negative and non-integer numbers; paths, URLs,
10,000 characters and control characters as text; values outside a dropdown's choices; files outside the app.
Each must be refused with a short, readable message, and must change nothing for anyone else: a bystander's
stored run is untouched and the server keeps answering. The app runs as on a hosted Space (SPACE_ID set).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from app_fixtures import api_arguments, ensure_models, free_port
from raw_gradio import Answer, call_api, call_page, dependencies, new_session

ensure_models()
import app  # noqa: E402 (after the bundled models exist: the model dropdown lists them)
from ui import admission, restore, sessions, state  # noqa: E402
from ui.launch import launch  # noqa: E402

CONFIG = app.demo.get_config_file()
RUN = {"sampler": "ddim", "steps": 3, "spacing": "trailing", "batch": 2}
BRANCH = {"sampler": "ddim", "frame_slider": 1}
# Valid arguments per event (by api_name): the page's own values with these changes (by elem_id or label); each
# hostile row changes one of them. An event missing here fails `test_every_event_has_valid_arguments`, so a new
# endpoint cannot slip past the table.
CHANGES: dict[str, dict[str, Any]] = {
    "schedules": {},
    "update_schedules": {},
    "posterior": {"post_index": 3},
    "update_posterior": {"post_index": 3},
    "update_posterior_1": {"post_index": 3},
    "run": RUN,
    "open_frame": RUN,  # its url_frame input is a State: the server's, whatever the client sends
    "branch": BRANCH,
    "frame": {"frame_slider": 1},
    "previous_frame": {"frame_slider": 2},
    "next_frame": {"frame_slider": 1},
    "frames_after": {"frame_slider": 1},  # after run, branch, Stop and a page load: the page's frames
    "frames_after_1": {"frame_slider": 1},
    "frames_after_2": {"frame_slider": 1},
    "frames_after_3": {"frame_slider": 1},
    "choose": {"run_choice": "run", "frame_slider": 1},
    "export": {},
    "frame_png": {"frame_slider": 1},
    "compare": {"cmp_data": "ring", "cmp_steps": 3, "cmp_t": 10},
    "compare_picture": {"cmp_data": "ring", "cmp_t": 10},
    "parameterization_table": {"cmp_data": "ring"},
    "open_tab": {"cmp_data": "ring", "cmp_steps": 3, "cmp_t": 10},  # the Parameterizations tab opened
    "open_if_shown": {"cmp_data": "ring", "cmp_steps": 3, "cmp_t": 10},  # a page load (tab from the URL)
    "bound": {"bound_data": "ring"},
    "show_bound": {"bound_data": "ring"},  # the Bound tab opened
    "open_bound_if_shown": {"bound_data": "ring"},  # a page load (tab from the URL)
    "memorization_twins": {"mem_data": "ring", "mem_n": 2},
    "memorization": {"mem_data": "ring", "mem_n": 2},
    "open_memorization": {"mem_data": "ring", "mem_n": 2},  # the Memorization tab opened
    "open_memorization_if_shown": {"mem_data": "ring", "mem_n": 2},  # a page load (tab from the URL)
    "cloud": {"cloud_point": 0},
    "flow_paths": {},  # after the cloud: a flow run's straight and exact paths (no inputs)
    "model_schedule": {"schedule_model": "digits-eps"},
    "open_schedules": {},  # a page load: the Schedules view redrawn when a link changed a control
    "model_changed": {},
    "model_changed_1": {},  # a page load: the model box for the model a link names
    "model_info": {},  # after a run: the model box names what loaded
    "decode_frame": {"frame_slider": 1, "decoder": "exact"},
    "compare_checkpoints": {},  # every hostile value is refused before a checkpoint loads
    "link": {},
    "tab_selected": {},
    "restore": {},
}
GOOD = {name: api_arguments(CONFIG, name, **changes) for name, changes in CHANGES.items()}
LONG = "a" * 10_000
CONTROL = "\x00\x07\x1b[2J\r\n\u202edigits-eps"
TEXT = {
    "path": "/etc/passwd",
    "traversal": "../../../../etc/passwd",
    "home": "~/.ssh/id_rsa",
    "url": "https://evil.example/model.safetensors",
    "repo-path": "owner/../../etc",
    "long-10k": LONG,
    "control": CONTROL,
    "not-a-string": 12345,
}
PROSE = {"long-10k": LONG, "control": CONTROL}  # a prompt: any words (and digits: Gradio sends 12345 as text) are valid
FREE_TEXT = {"prompt", "negative_prompt"}
CHOICE = {
    "outside": "not-a-choice",
    "traversal": "../../../../etc/passwd",
    "long-10k": LONG,
    "control": CONTROL,
    "not-a-string": 7,
}
CHECKBOX = {"string": "yes", "number": 2, "null": None}
FILE = {
    "path-outside": {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
    "url-loopback": {"url": "http://127.0.0.1:1/x.png", "meta": {"_type": "gradio.FileData"}},
    "not-a-file": "/etc/passwd",
}
# Known faults, each a strict xfail until fixed (docs/hardening.md says where and how).
GRADIO_STRING = (
    "gradio 6.31 Slider/Number.preprocess compares a str with its bounds: TypeError, so the refusal reaches the "
    "client without a message (upstream; refused and harmless)"
)
GRADIO_FILE = (
    "gradio 6.31 refuses a FileData outside its upload folder, or a URL, without a message (upstream; no file is read)"
)
GRADIO_ECHO = "gradio 6.31 Dropdown/Radio.preprocess echoes the whole refused value (10,000 characters) (upstream)"
# Events that answer a refused reference in their own line rather than with an error toast (the model box: a
# toast per keystroke would pile up); the line must say so, short and escaped.
SAID_IN_PLACE = {"model_changed", "model_changed_1", "model_info"}
# Copy link never fails as a whole: a value that cannot travel is left out of the link (a warning names it).
LEFT_OUT = {"link"}
MAX_MESSAGE = 1_000  # a clear message is short: no echo of a 10,000-character input, no traceback
COMPONENTS = {component["id"]: component for component in CONFIG["components"]}
EVENTS = [dep for dep in dependencies(CONFIG) if dep.get("api_name") in GOOD or dep["inputs"]]
# The page route runs the same preprocessing and handler as the API route: it gets every row for events only it
# reaches (private ones with their own function), and a transport sample (the first input) for the rest.
PUBLIC_FUNCTIONS = {app.demo.fns[dep["fn_index"]].fn for dep in EVENTS if dep.get("api_visibility") == "public"}


def page_gets_all_rows(dep: dict[str, Any]) -> bool:
    return dep.get("api_visibility") != "public" and app.demo.fns[dep["fn_index"]].fn not in PUBLIC_FUNCTIONS


def numbers(props: dict[str, Any]) -> dict[str, Any]:
    """Hostile numbers for a slider or number box: non-finite, huge, below range and (integer steps) fractional."""
    low = props.get("minimum")
    values: dict[str, Any] = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf, "huge": 1e308}
    values["huge-int"] = 10**30
    values["negative"] = -1 if low is not None and low >= 0 else -1e9
    step = props.get("step")
    if step is not None and float(step).is_integer():
        values["non-integer"] = 2.5
    values["string"] = "1; rm -rf /"
    return values


def hostile_values(component: dict[str, Any]) -> dict[str, Any]:
    """The table's columns for one input component, chosen by its type (State inputs never come from a client)."""
    kind, props = component["type"], component.get("props", {})
    if kind in ("slider", "number"):
        return numbers(props)
    if kind == "textbox":
        return PROSE if props.get("elem_id") in FREE_TEXT else TEXT
    if kind in ("dropdown", "radio"):
        return {**CHOICE, **({"path": "/etc/passwd"} if props.get("allow_custom_value") else {})}
    if kind == "checkbox":
        return CHECKBOX
    if kind in ("image", "file"):
        return FILE
    return {}


def known_fault(name: str, position: int, component: dict[str, Any], kind: str) -> str | None:
    """Why this row is expected to fail today, or None."""
    kind_of, props = component["type"], component.get("props", {})
    bounded = props.get("minimum") is not None or props.get("maximum") is not None
    if kind == "string" and kind_of in ("slider", "number") and bounded:
        return GRADIO_STRING
    if kind_of in ("image", "file"):
        return GRADIO_FILE
    if kind == "long-10k" and not (kind_of == "textbox" or props.get("allow_custom_value")):
        return GRADIO_ECHO
    return None


def rows() -> Iterator[Any]:
    """(route, event, position, value) for every hostile value of every input of every event."""
    for dep in EVENTS:
        name = dep.get("api_name")
        public, page_all = dep.get("api_visibility") == "public", page_gets_all_rows(dep)
        for position, component_id in enumerate(dep["inputs"]):
            component = COMPONENTS[component_id]
            label = (component.get("props", {}).get("label") or component["type"]).split(" (")[0]
            for kind, value in hostile_values(component).items():
                fault = known_fault(name, position, component, kind)
                marks = [pytest.mark.xfail(strict=True, reason=fault)] if fault else []
                routes = (["api"] if public else []) + (["page"] if page_all or position == 0 else [])
                for route in routes:
                    row_id = f"{route}:{name}:{position}:{label}:{kind}"
                    yield pytest.param(route, dep, position, value, id=row_id, marks=marks)


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    """The app on 127.0.0.1 as on a hosted Space, with a bystander's and a hostile session's runs stored."""
    port = free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)  # the app's own configuration
    with pytest.MonkeyPatch.context() as patch, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        patch.setenv("SPACE_ID", "explorer/hardening-test")
        # The table is about input checks, hundreds of posts from one client in a row: the admission's per-client
        # limit (tests/test_abuse.py) would answer some of them 429 before Gradio sees the value.
        patch.setattr(admission.LEDGER, "per_client", 10_000)
        patch.setattr(admission.LEDGER, "in_all", 10_000)
        patch.setattr(admission.EVENTS, "per_client", 10_000)
        patch.setattr(admission.EVENTS, "in_all", 10_000)
        patch.setattr(sessions.LEDGER, "per_client", 10_000)  # a new session per row (tests/test_abuse.py: the cap)
        bystander, hostile = new_session(), new_session()
        for session in (bystander, hostile):
            assert call_api(http, "run", GOOD["run"], session).ok
        try:
            yield {
                "http": http,
                "bystander": bystander,
                "hostile": hostile,
                "store": state.STORE,
                "runs": {s: state.STORE.get(s) for s in (bystander, hostile)},
            }
        finally:
            app.demo.close()


def test_every_event_has_valid_arguments(server):
    """The table covers the real endpoint list: every named endpoint and every event with inputs has a row set."""
    from gradio_client import Client

    url = str(server["http"].base_url)
    named = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    events = {dep.get("api_name") for dep in EVENTS}
    assert {name.lstrip("/") for name in named} <= events
    assert events <= set(GOOD), f"add valid arguments for {sorted(events - set(GOOD))} to GOOD"


def _answer(server: dict[str, Any], route: str, dep: dict[str, Any], data: list[Any]) -> Answer:
    if route == "api":
        return call_api(server["http"], dep["api_name"], data, server["hostile"])
    return call_page(server["http"], dep["fn_index"], data, server["hostile"])


@pytest.mark.parametrize(("route", "dep", "position", "value"), list(rows()))
def test_hostile_input_is_refused_clearly(server, route, dep, position, value):
    data = list(GOOD[dep["api_name"]])
    data[position] = value
    store, hostile = server["store"], server["hostile"]
    before = store.get(hostile)
    answer = _answer(server, route, dep, data)
    after = store.get(hostile)
    if after is not before:  # keep the next rows independent of this one
        server["runs"][hostile] = after
    if answer.ok and dep["api_name"] in SAID_IN_PLACE:
        line = str(answer.output[0])
        assert line.startswith("Not loaded:") and len(line) <= MAX_MESSAGE and "<" not in line, line[:200]
        assert after is before
        return
    if answer.ok and dep["api_name"] in LEFT_OUT:
        link = str(answer.output[0])
        name = COMPONENTS[dep["inputs"][position]].get("props", {}).get("elem_id")
        assert link == "" or (link.startswith("?") and len(link) <= restore.MAX_QUERY + 1), link[:200]
        assert name not in dict(parse_qsl(link.removeprefix("?"))), link[:200]  # the hostile value stayed out
        return
    assert not answer.ok, f"accepted: {str(answer.output)[:200]}"
    assert answer.message, "refused without a message (an unhandled exception, hidden from the user)"
    assert len(answer.message) <= MAX_MESSAGE, f"message of {len(answer.message)} characters"
    assert "Traceback" not in answer.message and "root:x:0:0" not in answer.message
    assert after is before, "a refused request replaced the session's run"


def test_others_are_unaffected(server):
    """After the whole table: the bystander's run is the same object and the server still answers everyone."""
    http, store, bystander = server["http"], server["store"], server["bystander"]
    assert store.get(bystander) is server["runs"][bystander]
    answer = call_api(http, "frame", [2], bystander)
    assert answer.ok and "Frame 2 of 3" in answer.output[1]
    assert call_api(http, "schedules", GOOD["schedules"], new_session()).ok


FILE_ROUTES = [
    "/gradio_api/file=/etc/passwd",
    "/file=/etc/passwd",
    "/gradio_api/file=../../etc/passwd",
    "/file=../../etc/passwd",
    "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=%252Fetc%252Fpasswd",
    "/gradio_api/file=....//....//etc/passwd",
    "/gradio_api/file=/proc/self/environ",
    f"/gradio_api/file={os.path.abspath(app.__file__)}",
    "/gradio_api/file=app.py",
    "/gradio_api/file=pretrained/digits-eps/config.json",
    "/gradio_api/file=/etc/passwd%00.png",
    "/static/../../../../etc/passwd",
    "/assets/..%2F..%2F..%2Fetc%2Fpasswd",
]


@pytest.mark.parametrize("path", FILE_ROUTES, ids=FILE_ROUTES)
def test_file_route_serves_nothing_outside_the_app(server, path):
    http: httpx.Client = server["http"]
    response = http.send(http.build_request("GET", path))  # raw: httpx would normalise "..", a hostile client not
    body = response.text
    for secret in ("root:x:0:0", "PATH=", "import gradio", '"sample_size"'):
        assert secret not in body, f"HTTP {response.status_code} returned file content"


def test_oversized_upload_is_refused(server):
    """A 64 MiB upload through the file route is refused (413) and leaves nothing behind."""
    payload = b"\x89PNG\r\n\x1a\n" + b"\0" * (64 << 20)
    response = server["http"].post("/gradio_api/upload", files={"files": ("big.png", payload, "image/png")})
    assert response.status_code in (400, 413), f"accepted a 64 MiB upload: HTTP {response.status_code}"
