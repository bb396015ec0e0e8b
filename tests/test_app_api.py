"""The app through gradio_client against a server on 127.0.0.1: every named endpoint, good and bad input."""

from __future__ import annotations

import math

import pytest
from app_fixtures import DEFAULT_SCHEDULE, ensure_models, free_port
from gradio_client import Client

SCHEDULE_ARGS = [*DEFAULT_SCHEDULE, True, "squaredcos_cap_v2", 1000, 1e-4, 0.02, 0.008, False]
SCHEDULE_ARGS += [False, "linear", 1000, 1e-4, 0.02, 0.008, False, "t", 500, 50]


@pytest.fixture(scope="module")
def client():
    ensure_models()
    import app

    port = free_port()
    app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        app.demo.close()


def test_named_endpoints_are_public(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/schedules", "/posterior", "/run", "/branch", "/frame", "/next_frame", "/compare", "/export"} <= names


def test_schedules_endpoint(client):
    plot, table, *_ = client.predict(*SCHEDULE_ARGS, api_name="/schedules")
    assert plot["type"] == "plotly" and "β_t" in table


@pytest.mark.parametrize(("position", "value"), [(-2, math.nan), (-2, 50.5), (1, 1)])
def test_schedules_endpoint_refuses_bad_input(client, position, value):
    args = list(SCHEDULE_ARGS)
    args[position] = value
    with pytest.raises(Exception):  # noqa: B017 (NaN is refused by the JSON layer or the handler)
        client.predict(*args, api_name="/schedules")


def test_posterior_endpoint(client):
    picture, _, numbers, product, _ = client.predict(
        "digit", 3, None, *DEFAULT_SCHEDULE, 200, 0, 120, 1, api_name="/posterior"
    )
    assert picture.endswith(".png") and "β̃" in numbers and product["type"] == "plotly"
    with pytest.raises(Exception):  # noqa: B017 (the slider or the handler names the field)
        client.predict("digit", 3, None, *DEFAULT_SCHEDULE, 200, -1, 120, 1, api_name="/posterior")


def test_run_then_frames_and_compare(client):
    run_args = ["digits-eps", "", "ddim", 3, 0.0, "model default", "model default", "the model's own"]
    outputs = client.predict(*run_args, *DEFAULT_SCHEDULE, "trailing", 0, 2, api_name="/run")
    assert outputs[0].endswith(".png") and "Frame 3 of 3" in outputs[1]
    _picture, text = client.predict(1, api_name="/frame")
    assert "Frame 1 of 3" in text
    new, _, text = client.predict(1, 1, api_name="/next_frame")
    assert new == 2 and "Frame 2 of 3" in text
    with pytest.raises(Exception):  # noqa: B017
        client.predict(4, api_name="/frame")
    with pytest.raises(Exception):  # noqa: B017
        client.predict(*run_args[:3], 2.5, *run_args[4:], *DEFAULT_SCHEDULE, "trailing", 0, 2, api_name="/run")
    figure, _, summary, _ = client.predict("ring", 3, 0, 10, api_name="/compare")
    assert figure["type"] == "plotly" and "ring-" in summary


def test_model_work_and_views_each_share_one_bounded_queue():
    """Model work shares two workers, the schedule and posterior views four; frame stepping is never held up."""
    ensure_models()
    import app

    queues: dict[str, set[tuple[object, object]]] = {}
    for block_fn in app.demo.fns.values():
        if block_fn.fn is not None:
            queues.setdefault(block_fn.fn.__name__, set()).add((block_fn.concurrency_id, block_fn.concurrency_limit))
    for name in ("run", "branch", "open_frame", "compare", "picture_at", "export"):
        assert queues[name] == {("model", 2)}, name
    for name in ("update_schedules", "update_posterior", "rescale_t_sliders"):
        assert queues[name] == {("views", 4)}, name
    for name in ("show_frame", "step_frame", "tick"):
        assert {limit for _id, limit in queues[name]} == {None}, name
