"""The app through gradio_client against a server on 127.0.0.1: every named endpoint, good and bad input."""

from __future__ import annotations

import math

import httpx
import pytest
from app_fixtures import api_arguments, ensure_models, free_port
from gradio_client import Client
from gradio_client.exceptions import AppError
from raw_gradio import call_api

ensure_models()
import app  # noqa: E402 (after the bundled models exist: the model dropdown lists them)
from ui.launch import launch  # noqa: E402

CONFIG = app.demo.get_config_file()


def arguments(api_name: str, **changes) -> list:
    return api_arguments(CONFIG, api_name, **changes)


@pytest.fixture(scope="module")
def client():
    port = free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        app.demo.close()


def test_named_endpoints_are_public(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/schedules", "/posterior", "/run", "/branch", "/frame", "/next_frame", "/compare", "/export"} <= names


def test_schedules_endpoint(client):
    plot, table, *_ = client.predict(*arguments("schedules", sched_t=123), api_name="/schedules")
    assert plot["type"] == "plotly" and "β_t" in table and "t = 123" in table


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("sched_t", 50.5, r"t must be a whole number in \[1, "), ("T1", 1, "minimum value 2")],
)
def test_schedules_endpoint_refuses_bad_input(client, name, value, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments("schedules", **{name: value}), api_name="/schedules")


def test_schedules_endpoint_refuses_nan_by_name(client):
    """gradio_client will not send NaN at all; a raw client does, and the handler names the field."""
    with httpx.Client(base_url=client.src, timeout=60) as http:
        answer = call_api(http, "/schedules", arguments("schedules", sched_t=math.nan))
    assert not answer.ok and answer.message is not None and "t must be" in answer.message, answer


def test_posterior_endpoint(client):
    good = arguments("posterior", post_index=3, post_t=200)
    picture, _, numbers, product, _, _ = client.predict(*good, api_name="/posterior")
    assert picture.endswith(".png") and "β̃" in numbers and product["type"] == "plotly" and "t = 200" in numbers
    with pytest.raises(AppError, match="less than minimum value 0"):
        client.predict(*arguments("posterior", post_seed=-1), api_name="/posterior")


def test_run_then_frames_and_compare(client):
    run = {"sampler": "ddim", "steps": 3, "spacing": "trailing", "batch": 2}
    outputs = client.predict(*arguments("run", **run), api_name="/run")
    assert outputs[0].endswith(".png") and "Frame 3 of 3" in outputs[1]
    _picture, text = client.predict(1, api_name="/frame")
    assert "Frame 1 of 3" in text
    new, _, text = client.predict(frame=1, api_name="/next_frame")
    assert new == 2 and "Frame 2 of 3" in text
    new, _, text = client.predict(frame=1, api_name="/previous_frame")
    assert new == 1 and "Frame 1 of 3" in text
    with pytest.raises(AppError, match="greater than maximum value 3"):
        client.predict(4, api_name="/frame")
    with pytest.raises(AppError, match=r"steps must be a whole number in \[1, 1000\]; got 2.5"):
        client.predict(*arguments("run", **{**run, "steps": 2.5}), api_name="/run")
    figure, _, summary, _ = client.predict("ring", 3, 0, 10, api_name="/compare")
    assert figure["type"] == "plotly" and "ring-" in summary


def test_model_work_and_views_each_share_one_bounded_queue():
    """Model work shares two workers, the schedule and posterior views four; frame stepping is never held up."""
    queues: dict[str, set[tuple[object, object]]] = {}
    for block_fn in app.demo.fns.values():
        if block_fn.fn is not None:
            queues.setdefault(block_fn.fn.__name__, set()).add((block_fn.concurrency_id, block_fn.concurrency_limit))
    for name in ("run", "branch", "open_frame", "compare", "picture_at", "export_steps", "frame_png"):
        assert queues[name] == {("model", 2)}, name
    for name in ("update_schedules", "open_schedules", "update_posterior"):
        assert queues[name] == {("views", 4)}, name
    for name in ("show_frame", "previous_frame", "next_frame"):
        assert {limit for _id, limit in queues[name]} == {None}, name


def test_a_press_of_compare_posts_one_model_job_and_the_table_follows_it():
    """The tab's own first job (comparison and table) plus one press stay within a visitor's 2 model jobs
    (`ui.admission.PER_CLIENT`): the press runs the comparison, and the measured table after it."""
    config = app.demo.config
    button = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "compare")
    pressed = [d for d in config["dependencies"] if (button, "click") in [tuple(t) for t in d["targets"]]]
    model = [d for d in pressed if app.demo.fns[d["id"]].concurrency_id == "model"]
    assert [d["api_name"] for d in model] == ["compare"]
    table = next(d for d in config["dependencies"] if d.get("api_name") == "parameterization_table")
    assert table["trigger_after"] == model[0]["id"] and app.demo.fns[table["id"]].concurrency_id == "model"
