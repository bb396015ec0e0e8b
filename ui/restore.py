"""Every control's state in the URL, for talks and for sharing: `?tab=sampling&model=moons-eps&steps=8&frame=5`.

Each control with an `elem_id` is a URL parameter of that name (`T1`, `post_t`, `steps`, `seed`, `prompt`, …;
`schedule` and `t` are kept as the older names of `family1` and `sched_t`), plus `tab`, `frame` (run a bundled model
when the page opens and show that frame; a Hub model in a link waits for Run, whatever its prompt) and `present`
(presentation mode). A value out of its control's range is clamped to the range with a warning; anything else that
does not parse (a prompt over its box's `max_length` characters among them) is ignored with a warning. A prompt is
put back into its box as text: a box shows HTML as text, and opening a link never runs a prompt.

"Copy link" writes the parameters that differ from the page's defaults. A value that cannot travel (a local folder, a
prompt that would make the link longer than `MAX_QUERY` characters) is left out of the link, never the whole link,
and a warning names what was left out and why.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import gradio as gr

from explorer.diffusion.schedules import BetaSchedule
from explorer.validation import check_bool, check_float, check_int, check_text
from ui.controls import MAX_STEPS
from ui.models import is_bundled

TABS = ("schedules", "posterior", "sampling", "parameterizations", "bound", "memorization")
ALIASES = {"schedule": "family1", "t": "sched_t"}  # the names of the first talk links
SPECIAL = ("tab", "frame", "present")
MODEL_BOXES = ("model", "typed_model")  # a link carries bundled names and Hub ids, never a folder of this machine
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
TEXT_LIMIT = 1000  # characters of a text box without its own max_length (the prompt boxes hold 1000)
MAX_QUERY = 8000  # characters of a copied link's query: under the 8 KB request line of common servers and proxies
# The copied link: the page's address and the query `make_link` wrote, put on the clipboard where the browser lets the
# page (a secure context), and the box says which happened (#link_state under the link, for STATE_SECONDS; in
# presentation mode the box is shown only while it says so: ui/browser/stage.css).
STATE_SECONDS = 8
COPY_LINK_JS = """async (query) => {
  const url = location.origin + location.pathname + query;
  let said = 'select the link and copy it';
  try {
    await navigator.clipboard.writeText(url);
    said = 'copied';
  } catch (error) {
    console.info('the clipboard was not written', error);
  }
  const box = document.getElementById('link');
  let state = document.getElementById('link_state');
  if (box && !state) {
    state = document.createElement('span');
    state.id = 'link_state';
    state.setAttribute('aria-live', 'polite');
    state.style.cssText = 'display: block; font-size: var(--text-sm); padding-top: var(--spacing-sm);';
    box.appendChild(state);
  }
  if (state) {
    state.textContent = said;
    clearTimeout(window.explorerLinkState);
    window.explorerLinkState = setTimeout(() => state.remove(), STATE_SECONDS * 1000);
  }
  return url;
}""".replace("STATE_SECONDS", str(STATE_SECONDS))


def _choices(component: gr.components.Component) -> list[str]:
    return [choice[1] if isinstance(choice, tuple | list) else choice for choice in component.choices]


def parse_parameter(component: gr.components.Component, name: str, text: str) -> tuple[Any, str | None]:
    """The value a URL parameter sets on `component`, and a warning when it had to be clamped (ValueError: ignored).

    Sliders clamp to their range (rounded to whole steps when the step is 1); dropdowns and radios take one of their
    choices (a model box also a valid Hub id, never a path); checkboxes take 1/0, true/false, yes/no, on/off.
    """
    if isinstance(component, gr.Slider):
        number = check_float(name, text, -math.inf, math.inf)
        low, high = float(component.minimum), float(component.maximum)
        clamped = min(max(number, low), high)
        if float(component.step).is_integer():
            clamped = float(round(clamped))
        value: Any = int(clamped) if clamped.is_integer() else clamped
        changed = f"URL parameter {name} is outside [{low:g}, {high:g}]: {value} is used" if clamped != number else None
        return value, changed
    if isinstance(component, gr.Checkbox):
        lowered = text.strip().lower()
        if lowered not in TRUE + FALSE:
            raise ValueError(f"{name} must be one of {', '.join(TRUE + FALSE)}")
        return check_bool(name, lowered in TRUE), None
    if isinstance(component, gr.Dropdown | gr.Radio):
        value = text.strip()
        if name.startswith("family"):  # schedule names have aliases: cosine is squaredcos_cap_v2
            value = BetaSchedule.parse(value, name).value
        if value in _choices(component):
            return value, None
        if getattr(component, "allow_custom_value", False) and name == "model":
            is_bundled(value)  # a bundled name or a Hub id: string checks only, nothing loads
            return value, None
        raise ValueError(f"{name} must be one of {', '.join(_choices(component))}")
    if isinstance(component, gr.Number):
        return check_float(
            name, text, float(component.minimum or -math.inf), float(component.maximum or math.inf)
        ), None
    if isinstance(component, gr.Textbox) and name == "typed_model":
        value = text.strip()
        if value:
            is_bundled(value)  # a Hub id, never a path
        return value, None
    if isinstance(component, gr.Textbox):  # a prompt: text, shown as text, at most its box's length
        return check_text(name, text, component.max_length or TEXT_LIMIT), None
    raise ValueError(f"{name} cannot be set from a URL")


def check_value(component: gr.components.Component, name: str, value: Any) -> Any:
    """A control's value as the page holds it, checked strictly (no clamping, no strings for numbers): what a link
    may carry. ValueError names the control."""
    if isinstance(component, gr.Checkbox):
        return check_bool(name, value)
    if isinstance(component, gr.Slider | gr.Number):
        if isinstance(value, str):
            raise ValueError(f"{name} must be a number; got {value[:40]!r}")
        low = -math.inf if component.minimum is None else float(component.minimum)
        high = math.inf if component.maximum is None else float(component.maximum)
        whole = isinstance(component, gr.Slider) and float(component.step).is_integer()
        return check_int(name, value, int(low), int(high)) if whole else check_float(name, value, low, high)
    if isinstance(component, gr.Textbox) and value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text; got {type(value).__name__}")
    if isinstance(component, gr.Textbox):
        return parse_parameter(component, name, value)[0] if value.strip() else ""
    return parse_parameter(component, name, value)[0]


def reason(error: ValueError, value: str) -> str:
    """Why a URL value was ignored, without the value: the checks' messages end in "; got <value>", which a
    link's author controls, so that part is cut; a message that still quotes the value says only that it is not
    accepted (and `warn` escapes whatever is left)."""
    text = str(error).split("; got ", 1)[0][:200]
    quoted = value.strip()
    return "not an accepted value" if quoted and quoted in text else text


def warn(message: str) -> None:
    """A warning toast; Gradio renders a toast's text as HTML, so the text is escaped (a URL value is never put in
    it, and a control's name or choices are ours, but nothing reaches the page unescaped)."""
    gr.Warning(html.escape(message, quote=False))


def tab_selected(event: gr.SelectData) -> str:
    """The id of the tab the visitor opened (what a copied link's `tab=` says)."""
    if isinstance(event.index, int) and 0 <= event.index < len(TABS):
        return TABS[event.index]
    return TABS[0]


def make_restore(controls: Mapping[str, gr.components.Component]) -> Callable[[gr.Request], tuple]:
    """The page-load handler: (tab, the tab's id for the link, frame, present, then each control in `controls`'
    order) from the URL."""

    def restore(request: gr.Request) -> tuple:
        params = dict(request.query_params) if request is not None else {}
        for old, new in ALIASES.items():
            if old in params and new not in params:
                params[new] = params.pop(old)
        tab, tab_id = gr.skip(), gr.skip()
        if "tab" in params:
            if params["tab"] in TABS:
                tab, tab_id = gr.Tabs(selected=params["tab"]), params["tab"]
            else:
                warn(f"URL parameter tab ignored: it must be one of {', '.join(TABS)}")
        frame, present = None, gr.skip()
        if "frame" in params:
            try:
                frame = check_int("frame", params["frame"], 1, MAX_STEPS)
            except ValueError as error:
                warn(f"URL parameter frame ignored: {reason(error, params['frame'])}")
        if "present" in params:
            present = params["present"].strip().lower() in TRUE
        values = []
        for name, component in controls.items():
            if name not in params:
                values.append(gr.skip())
                continue
            try:
                value, warning = parse_parameter(component, name, params[name])
            except ValueError as error:
                warn(f"URL parameter {name} ignored: {reason(error, params[name])}")
                values.append(gr.skip())
                continue
            if warning:
                warn(warning)
            values.append(value)
        unknown = sorted(set(params) - set(controls) - set(SPECIAL))
        if unknown:
            count = f"{len(unknown)} URL parameters were" if len(unknown) > 1 else "1 URL parameter was"
            warn(f"{count} ignored: not the name of a control of this page")
        return (tab, tab_id, frame, present, *values)

    return restore


def _shorter(params: dict[str, str], texts: list[str]) -> list[str]:
    """Drop text values from `params` (longest first, in place) until its query fits in MAX_QUERY characters;
    returns the names dropped."""
    dropped = []
    for name in sorted(texts, key=lambda name: len(urlencode({name: params[name]})), reverse=True):
        if len(urlencode(params)) <= MAX_QUERY:
            break
        del params[name]
        dropped.append(name)
    return dropped


def make_link(
    controls: Mapping[str, gr.components.Component],
    tab_state: gr.State,
    frame_slider: gr.Slider,
    present: gr.Checkbox | None = None,
) -> Callable[[dict], str]:
    """The "copy link" handler: the query string ("" when nothing differs) of every control that differs from its
    page default, the tab, the frame shown (on the sampling tab) and `present=1` in presentation mode. Its inputs are
    the set of `controls`, `tab_state`, `frame_slider` and `present` (one dict). A value that cannot travel is left
    out with a warning that names it; the link itself is always given."""
    defaults = {name: check_value(component, name, component.value) for name, component in controls.items()}

    def link(given: dict) -> str:
        tab = given.get(tab_state)
        params = {"tab": tab} if tab in TABS and tab != TABS[0] else {}
        left_out = []
        for name, component in controls.items():
            raw = given.get(component)
            try:
                value = check_value(component, name, raw)
            except ValueError as error:
                why = "only bundled names and Hub ids travel in a link" if name in MODEL_BOXES else None
                left_out.append(f"{name} ({why or reason(error, raw if isinstance(raw, str) else '')})")
                continue
            if value != defaults[name]:
                params[name] = str(value).lower() if isinstance(value, bool) else str(value)
        if tab == "sampling":
            try:
                params["frame"] = str(check_int("frame", given.get(frame_slider), 1, MAX_STEPS))
            except ValueError as error:
                left_out.append(f"frame ({reason(error, '')})")
        if present is not None and given.get(present) is True:
            params["present"] = "1"
        texts = [name for name in params if isinstance(controls.get(name), gr.Textbox)]
        left_out += [f"{name} (the link would be over {MAX_QUERY} characters)" for name in _shorter(params, texts)]
        if left_out:
            warn(f"Left out of the link: {'; '.join(left_out)}. The rest of the view is in it.")
        return "?" + urlencode(params) if params else ""

    return link
