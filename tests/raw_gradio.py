"""A minimal raw-HTTP Gradio client for hardening tests: the API route and the page's queue route, any payload.

`gradio_client` refuses or rewrites some hostile payloads before they leave the machine; this sends exactly what
it is given (NaN and ±inf as JSON literals) and reports what the server answered, so a test can see the bytes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

API = "/gradio_api"
TIMEOUT = 60.0


@dataclass(frozen=True)
class Answer:
    """What the server answered one event: success with outputs, or an error with its message (None: hidden)."""

    ok: bool
    output: Any = None
    message: str | None = None
    queue_full: bool = False


def new_session() -> str:
    """A fresh session hash, as a browser tab or an API client makes one."""
    return uuid.uuid4().hex[:11]


def _body(data: list[Any], **extra: Any) -> str:
    return json.dumps({"data": data, **extra}, allow_nan=True)  # NaN/Infinity literals, as a hostile client sends


def _start(http: httpx.Client, url: str, body: str) -> tuple[str, Answer | None]:
    """POST an event; its id, or the answer when the server refused it at once (503: the queue is full)."""
    response = http.post(url, content=body, headers={"content-type": "application/json"})
    if response.status_code == 503:
        return "", Answer(False, message=response.text, queue_full=True)
    if response.status_code != 200:
        return "", Answer(False, message=f"HTTP {response.status_code}: {response.text[:300]}")
    return response.json()["event_id"], None


def call_api(http: httpx.Client, api_name: str, data: list[Any], session: str | None = None) -> Answer:
    """POST /gradio_api/call/<name> then read its event stream: the public API route."""
    extra = {"session_hash": session} if session else {}
    event_id, refused = _start(http, f"{API}/call/{api_name.lstrip('/')}", _body(data, **extra))
    if refused is not None:
        return refused
    event, payload = None, None
    with http.stream("GET", f"{API}/call/{api_name.lstrip('/')}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line.removeprefix("data:").strip())
                break
    if event == "complete":
        return Answer(True, output=payload)
    error = payload.get("error") if isinstance(payload, dict) else payload
    return Answer(False, message=error if isinstance(error, str) and error else None)


def call_page(http: httpx.Client, fn_index: int, data: list[Any], session: str) -> Answer:
    """What a browser tab does: POST /gradio_api/queue/join with a fn_index, then read /queue/data for it."""
    body = _body(data, fn_index=fn_index, session_hash=session, event_data=None, trigger_id=None)
    event_id, refused = _start(http, f"{API}/queue/join", body)
    if refused is not None:
        return refused
    with http.stream("GET", f"{API}/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line.removeprefix("data:").strip())
            if message.get("event_id") not in (None, event_id):
                continue
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                if message.get("success"):
                    return Answer(True, output=output.get("data"))
                error = output.get("error")
                return Answer(False, message=error if isinstance(error, str) and error else None)
            if message.get("msg") == "unexpected_error":
                return Answer(False, message=message.get("message"))
    return Answer(False, message=None)


def dependencies(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The app's server-side events, each with its fn_index (its position in config["dependencies"])."""
    return [
        {**dep, "fn_index": dep.get("id", index)}
        for index, dep in enumerate(config["dependencies"])
        if dep.get("backend_fn")
    ]
