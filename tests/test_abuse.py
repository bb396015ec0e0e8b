"""One client must not shut everyone out: fair admission of model work (`ui.admission`), through the raw HTTP API.

The server runs as on a hosted Space (SPACE_ID set), so a client is the last X-Forwarded-For address. A flood of
model jobs from one address, whose answers are never read, gets two jobs and a clear refusal for the rest; other
addresses keep getting answers; the flooder's slots come back when its jobs end, fail, are cancelled or lose their
client. The bookkeeping itself (limits, release, expiry, who a client is) is tested without a server first.
"""

from __future__ import annotations

import asyncio
import gc
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from app_fixtures import api_arguments, ensure_models, free_port
from raw_gradio import API, call_api, new_session
from starlette.datastructures import Headers

ensure_models()
import app  # noqa: E402 (after the bundled models exist: the model dropdown lists them)
from ui import admission, state  # noqa: E402
from ui.admission import Ledger, Refused, client_key, last_forwarded  # noqa: E402
from ui.common import MODEL_WORK, VIEW_WORK  # noqa: E402
from ui.launch import QUEUE_SIZE, launch  # noqa: E402

CONFIG = app.demo.get_config_file()
FLOOD = 40
SMALL = {"model": "digits-eps", "steps": 3, "batch": 2, "sampler": "ddim", "spacing": "trailing"}
TOO_MANY = admission.too_many(admission.PER_CLIENT)
MIB = 1 << 20


def rss() -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) * 1024


# --- the bookkeeping, without a server -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_limit_then_a_clear_refusal():
    ledger = Ledger(per_client=2, in_all=5)
    ledger.reserve("a"), ledger.reserve("a")
    refusal = r"you already have 2 model jobs waiting or running \(runs, comparisons, exports\): wait for them, or "
    refusal += "press Stop"
    with pytest.raises(Refused, match=refusal):
        ledger.reserve("a")
    ledger.reserve("b")  # another client is not held up by the first
    assert ledger.jobs("a") == 2 and ledger.jobs("b") == 1 and ledger.jobs() == 3


def test_the_total_is_capped_below_the_queue():
    ledger = Ledger(per_client=2, in_all=3)
    for client in "aab":
        ledger.reserve(client)
    with pytest.raises(Refused, match="the server is busy: 3 model jobs"):
        ledger.reserve("c")
    with pytest.raises(Refused, match="you already have"):  # a client at its own limit hears about its own jobs
        ledger.reserve("a")
    assert admission.IN_ALL + 40 <= QUEUE_SIZE, "30 honest users waiting on views must fit beside all model work"
    assert MODEL_WORK["concurrency_id"] != VIEW_WORK["concurrency_id"]


def test_slots_follow_the_event_and_unbound_reservations_expire():
    clock = Clock()
    ledger = Ledger(per_client=2, in_all=12, unbound_seconds=120, max_seconds=3600, clock=clock)
    live = {"e1", "e2"}
    first, second = ledger.reserve("a"), ledger.reserve("a")
    ledger.bind(first, "e1"), ledger.bind(second, "e2")
    clock.now += 600  # queued or running for ten minutes: still held while Gradio holds the event
    ledger.sweep(live.__contains__)
    assert ledger.jobs("a") == 2
    live.discard("e1")  # ended, failed, cancelled (Stop) or dropped with its client: Gradio let go of it
    ledger.sweep(live.__contains__)
    assert ledger.jobs("a") == 1
    never = ledger.reserve("a")  # its push never returned an event id
    clock.now += 119
    ledger.sweep(live.__contains__)
    assert ledger.jobs("a") == 2
    clock.now += 2
    ledger.sweep(live.__contains__)
    assert ledger.jobs("a") == 1 and never.event_id is None
    clock.now += 3600  # a backstop: nothing is held for ever, whatever the event table says
    ledger.sweep(live.__contains__)
    assert ledger.jobs() == 0


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["203.0.113.7"], "203.0.113.7"),
        (["6.6.6.6, 7.7.7.7, 203.0.113.7"], "203.0.113.7"),  # whatever the client wrote, the proxy's entry is last
        (["6.6.6.6", "203.0.113.7"], "203.0.113.7"),  # two header lines read as one list
        ([" , 203.0.113.7 , "], "203.0.113.7"),
        ([], None),
        ([" , "], None),
    ],
)
def test_the_last_forwarded_address(lines, expected):
    assert last_forwarded(lines) == expected


def headers(*forwarded: str) -> Headers:
    return Headers(raw=[(b"x-forwarded-for", value.encode()) for value in forwarded])


def test_who_a_client_is():
    on_space = {"on_space": True}
    flooder = client_key(headers("203.0.113.7"), "10.0.0.1", "s1", **on_space)
    assert client_key(headers("1.2.3.4, 203.0.113.7"), "10.0.0.2", "s2", **on_space) == flooder  # spoofing ignored
    assert client_key(headers("203.0.113.8"), "10.0.0.1", "s1", **on_space) != flooder
    no_header = client_key(headers(), "198.51.100.4", "s1", **on_space)
    assert no_header == client_key(headers("198.51.100.4"), "10.0.0.9", "s9", **on_space)  # the connection's address
    v6 = client_key(headers("2001:db8:1:2::1"), None, None, **on_space)
    assert v6 == client_key(headers("2001:db8:1:2:ffff::9"), None, None, **on_space)  # one /64, one client
    assert v6 != client_key(headers("2001:db8:1:3::1"), None, None, **on_space)
    assert client_key(headers("::ffff:203.0.113.7"), None, None, **on_space) == flooder
    local = {"on_space": False}  # locally: the session hash; X-Forwarded-For is not trusted
    assert client_key(headers("203.0.113.7"), "127.0.0.1", "s1", **local) != client_key(
        headers("203.0.113.7"), "127.0.0.1", "s2", **local
    )
    assert "s1" not in client_key(headers(), "127.0.0.1", "s1", **local)  # a digest, never the bearer token


def test_64_addresses_in_one_ipv6_64_are_one_client():
    """IPv6 counts per /64 (a subscriber holds one whole): 64 addresses of one /64 share one client's two slots."""
    prefix = "2001:db8:4:7"
    addresses = [f"{prefix}:{k:x}:{(k * 7919) % 65536:x}:{k * 31:x}:{k + 1:x}" for k in range(64)]
    keys = {client_key(headers(f"6.6.6.{k}, {a}"), "10.0.0.1", f"s{k}", on_space=True) for k, a in enumerate(addresses)}
    assert len(keys) == 1
    ledger = Ledger(per_client=2, in_all=12)
    granted, refused = [], []
    for address in addresses:
        try:
            granted.append(ledger.reserve(client_key(headers(address), None, None, on_space=True)))
        except Refused as refusal:
            refused.append(refusal.message)
    assert len(granted) == 2 and set(refused) == {TOO_MANY} and len(refused) == 62
    neighbour = client_key(headers("2001:db8:4:8::1"), None, None, on_space=True)  # the next /64: another client
    assert ledger.reserve(neighbour) and ledger.jobs() == 3


def test_a_few_clients_cannot_keep_every_slot_while_another_waits():
    """Six clients at their limit hold two thirds of the twelve slots, not all: a newcomer is admitted at once. When
    every slot is taken, a newcomer waits in line and gets the next slot that frees, before a client that holds
    one and posts again at once."""
    ledger = Ledger(per_client=2, in_all=12, wait_seconds=5)
    live: set[str] = set()
    alive = live.__contains__
    granted = 0
    for k in range(12):
        try:
            ticket = ledger.reserve(f"hog{k % 6}")
        except Refused as refusal:
            assert "the server is busy" in refusal.message
            continue
        ledger.bind(ticket, f"hog{k}")
        live.add(f"hog{k}")
        granted += 1
    assert granted == ledger.jobs() == 8  # six first slots, then second slots only while a third are free

    async def scenario() -> str:
        for k in range(4):  # newcomers at once, until every slot is taken
            ticket = await asyncio.wait_for(ledger.admit(f"new{k}", alive), 1)
            ledger.bind(ticket, f"new{k}")
            live.add(f"new{k}")
        assert ledger.jobs() == 12
        honest = asyncio.create_task(ledger.admit("honest", alive))
        await asyncio.sleep(0.3)
        assert not honest.done() and ledger.waiting() == 1
        live.discard("hog0")  # one of hog0's jobs ends; hog0 posts again at once, the honest client waited first
        again = asyncio.create_task(ledger.admit("hog0", alive))
        ticket = await asyncio.wait_for(honest, 2)
        with pytest.raises(Refused, match="the server is busy"):
            await again  # nothing freed for it within its wait
        return ticket.client

    ledger.wait_seconds = 1
    assert asyncio.run(scenario()) == "honest"


def test_cancelled_work_still_running_holds_its_slot():
    ledger = Ledger(per_client=2, in_all=12)
    live = {"e1", "e2"}
    for event in live:
        ledger.bind(ledger.reserve("a"), event)
    with ledger.working("a"), ledger.working("a"):  # both exports are in a batch
        live.clear()  # ... when their events are cancelled: the threads finish the batch
        ledger.sweep(live.__contains__)
        with pytest.raises(Refused, match="you already have 2"):
            ledger.reserve("a")
    assert ledger.reserve("a")  # the batches ended: the slots are free


class FakeQueue:
    """Gradio's queue as the hook sees it: `push`, the table of events it still holds, and the waiting list of
    each concurrency group (one group here), which the fair order reorders."""

    def __init__(self) -> None:
        self.event_ids_to_events: dict[str, object] = {}
        self.event_queue_per_concurrency_id = {"default": SimpleNamespace(queue=[])}
        self.answer: Any = "queue"
        self.ids = count()
        self.sent: list[tuple[str, str]] = []

    async def push(self, body, request, username):
        if self.answer == "raise":
            raise RuntimeError("push failed")
        if self.answer == "full":
            return False, "Queue is full.", "queue_full"
        event_id = f"e{next(self.ids)}"
        event = SimpleNamespace(_id=event_id, concurrency_id="default")
        self.event_ids_to_events[event_id] = event
        self.event_queue_per_concurrency_id["default"].queue.append(event)
        return True, event_id, "success"

    def send_message(self, event, message) -> None:
        self.sent.append((event._id, message.msg))


def fake_demo() -> SimpleNamespace:
    model = SimpleNamespace(concurrency_id="model", inputs=[], batch=False, api_name="run")
    view = SimpleNamespace(concurrency_id="views", inputs=[], batch=False, api_name="schedules")
    return SimpleNamespace(_queue=FakeQueue(), fns={0: model, 1: view})


def post(demo, fn_index: int, address: str = "203.0.113.7"):
    request = SimpleNamespace(headers=headers(address), client=SimpleNamespace(host="10.0.0.1"))
    body = SimpleNamespace(fn_index=fn_index, data=[], session_hash=new_session())
    return asyncio.run(demo._queue.push(body, request, None))


def test_the_hook_frees_a_slot_when_gradio_lets_the_event_go(monkeypatch):
    from fastapi import HTTPException

    monkeypatch.setenv("SPACE_ID", "explorer/abuse-test")
    demo, ledger = fake_demo(), Ledger(per_client=2, in_all=12)
    admission.install(demo, ledger)
    admission.install(demo, ledger)  # installing twice wraps once
    events = demo._queue.event_ids_to_events
    _, first, _ = post(demo, 0)
    post(demo, 0)
    with pytest.raises(HTTPException) as refused:
        post(demo, 0)
    assert refused.value.status_code == 429 and refused.value.detail == TOO_MANY
    assert post(demo, 1)[0] and post(demo, 1)[0]  # views are never counted
    del events[first]  # the job ended, failed, was cancelled or lost its client
    assert post(demo, 0)[0]
    assert admission.held(demo, ledger=ledger) == 2
    events.clear()
    demo._queue.answer = "full"  # a push that did not queue the job frees its slot at once
    assert not post(demo, 0)[0] and admission.held(demo, ledger=ledger) == 0
    demo._queue.answer = "raise"
    with pytest.raises(RuntimeError):
        post(demo, 0)
    assert admission.held(demo, ledger=ledger) == 0
    with pytest.raises(HTTPException) as unknown:
        post(demo, 7)
    assert unknown.value.status_code == 404


def test_a_completed_job_frees_its_slot_before_gradio_forgets_it(monkeypatch):
    """Gradio sends an event's completion, then cleans up before it drops the event; the page posts a chain's next
    event (`.then`) as soon as it reads the completion. The finished job must not count then."""
    from fastapi import HTTPException
    from gradio.server_messages import ProcessCompletedMessage, ProgressMessage

    monkeypatch.setenv("SPACE_ID", "explorer/abuse-test")
    demo, ledger = fake_demo(), Ledger(per_client=2, in_all=12)
    admission.install(demo, ledger)
    post(demo, 0)  # a tab's own job, still running
    _, chained, _ = post(demo, 0)  # the page load's chain, one job at a time
    queue = demo._queue
    queue.send_message(queue.event_ids_to_events[chained], ProgressMessage(progress_data=[]))
    with pytest.raises(HTTPException):  # progress is not completion: the client holds 2
        post(demo, 0)
    queue.send_message(queue.event_ids_to_events[chained], ProcessCompletedMessage(output={}, success=True))
    assert chained in queue.event_ids_to_events  # Gradio still holds it (cleanup) ...
    assert post(demo, 0)[0]  # ... and the chain's next job is admitted
    assert admission.held(demo, ledger=ledger) == 2
    assert queue.sent == [(chained, "progress"), (chained, "process_completed")]  # every message still goes out
    completed = admission.Completed(limit=2)
    for event_id in ("a", "b", "c"):
        completed.note(event_id)
    assert "a" not in completed and "b" in completed and "c" in completed  # only the last few are kept


# --- through the server ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http():
    port = free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)  # the app's own configuration
    with pytest.MonkeyPatch.context() as patch, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=90) as client:
        patch.setenv("SPACE_ID", "explorer/abuse-test")
        admission.LEDGER.clear()
        # Warm up (first model load, first figure) so that the timings below measure waiting, not start-up.
        assert call_api(client, "schedules", api_arguments(CONFIG, "schedules"), new_session()).ok
        assert call_api(client, "run", api_arguments(CONFIG, "run", **SMALL), new_session()).ok
        try:
            yield client
        finally:
            app.demo.close()


def as_address(address: str, spoofed: str = "6.6.6.6") -> dict[str, str]:
    """Headers as a Space's proxy passes them on: the client's own claims first, the proxy's entry last."""
    return {"x-forwarded-for": f"{spoofed}, {address}"}


def post_run(http: httpx.Client, address: str, changes: dict[str, Any], session: str | None = None) -> httpx.Response:
    body = {"data": api_arguments(CONFIG, "run", **changes), "session_hash": session or new_session()}
    return http.post(f"{API}/call/run", json=body, headers=as_address(address, spoofed=new_session()))


def answer(http: httpx.Client, name: str, event_id: str) -> str:
    """Read an event's stream to its end: the final event name ("complete" or "error")."""
    event = ""
    with http.stream("GET", f"{API}/call/{name}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                if event in ("complete", "error"):
                    return event
    return event


def until(condition, seconds: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def test_a_flood_from_one_address_leaves_everyone_else_served(http):
    flooder, honest = "203.0.113.7", "198.51.100.20"
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # distinct sessions, streams never read
        responses = list(pool.map(lambda _: post_run(http, flooder, {**SMALL, "steps": 20}), range(FLOOD)))
    flood_seconds = time.monotonic() - started
    accepted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(accepted) == admission.PER_CLIENT and len(refused) == FLOOD - len(accepted), (
        f"{[r.status_code for r in responses]} in {flood_seconds:.2f} s"
    )
    assert {r.json()["detail"] for r in refused} == {TOO_MANY}
    assert all(r.headers.get("retry-after") for r in refused)

    began = time.monotonic()
    view = call_api(http, "schedules", api_arguments(CONFIG, "schedules"), new_session())
    assert view.ok and time.monotonic() - began < 10, f"/schedules took {time.monotonic() - began:.1f} s"
    began = time.monotonic()
    run = post_run(http, honest, {**SMALL, "steps": 5})
    assert run.status_code == 200, run.text
    assert answer(http, "run", run.json()["event_id"]) == "complete"
    assert time.monotonic() - began < 60, f"another address's run took {time.monotonic() - began:.0f} s"

    # The flood's jobs end on their own (nobody reads them); then the flooder may run again.
    assert until(lambda: admission.held(app.demo) == 0, 90), "the flood's slots were never freed"
    again = post_run(http, flooder, SMALL)
    assert again.status_code == 200, again.text
    assert answer(http, "run", again.json()["event_id"]) == "complete"


def test_the_total_cap_turns_away_new_addresses_but_not_views(http, monkeypatch):
    monkeypatch.setattr(admission.LEDGER, "in_all", 3)
    monkeypatch.setattr(admission.LEDGER, "wait_seconds", 1.0)  # a new address waits in line this long, then 429
    assert until(lambda: admission.held(app.demo) == 0, 90)
    responses = [post_run(http, f"192.0.2.{k}", {**SMALL, "steps": 400}) for k in range(1, 6)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert "the server is busy" in responses[-1].json()["detail"]
    began = time.monotonic()
    assert call_api(http, "schedules", api_arguments(CONFIG, "schedules"), new_session()).ok
    assert time.monotonic() - began < 10
    assert until(lambda: admission.held(app.demo) == 0, 90)


def test_a_page_that_goes_away_frees_its_slot_and_its_run_stops(http):
    """The page route: closing the event stream drops the job (Gradio stops a generator at its next step)."""
    session, address = new_session(), "203.0.113.99"
    long_run = {**SMALL, "steps": 1000, "batch": 4}  # about a minute; it yields every 25 steps
    fn_index = next(dep["id"] for dep in CONFIG["dependencies"] if dep.get("api_name") == "run")
    body = {"data": api_arguments(CONFIG, "run", **long_run), "fn_index": fn_index, "session_hash": session}
    joined = http.post(f"{API}/queue/join", json=body, headers=as_address(address))
    assert joined.status_code == 200, joined.text
    client = client_key(Headers(as_address(address)), "127.0.0.1", session, on_space=True)
    with http.stream("GET", f"{API}/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if "progress" in line or "process_generating" in line:
                break  # the run is computing; now the page goes away
    assert until(lambda: admission.held(app.demo, client) == 0, 30), "the closed page's job still holds its slot"
    assert state.STORE.get(session) is None  # it stopped long before its end (a finished run is kept)
    assert until(lambda: not any(app.demo._queue.active_jobs), 10), "a worker is still busy with the dropped run"


def test_unknown_endpoints_missing_arguments_and_the_direct_route(http):
    unknown = http.post(f"{API}/call/no_such_endpoint", json={"data": []})
    assert unknown.status_code == 404 and "no such API endpoint" in unknown.json()["detail"]
    missing = http.post(f"{API}/call/frame", json={"data": []})
    assert missing.status_code == 400
    assert missing.json()["detail"].startswith("/frame takes 1 value and got 0: missing frame")
    bad_index = http.post(f"{API}/queue/join", json={"data": [], "fn_index": 10_000, "session_hash": new_session()})
    assert bad_index.status_code == 404
    direct = http.post(f"{API}/run/run", json={"data": api_arguments(CONFIG, "run", **SMALL)})
    assert direct.status_code == 404  # no REST route past the queue and its admission


def test_the_session_hash_is_never_logged_or_echoed(http, capfd):
    session = new_session()
    assert call_api(http, "run", api_arguments(CONFIG, "run", **SMALL), session).ok
    texts = [call_api(http, "frame", [99], session).message or ""]  # refused: a message naming the frame
    texts.append(http.post(f"{API}/call/schedules", json={"data": [1], "session_hash": session}).text)
    texts.append(http.post(f"{API}/call/no_such_endpoint", json={"data": [], "session_hash": session}).text)
    for _ in range(admission.PER_CLIENT + 1):
        texts.append(post_run(http, "203.0.113.50", SMALL, session).text)
    out, err = capfd.readouterr()
    assert all(texts) and session not in "".join(texts) + out + err
    assert until(lambda: admission.held(app.demo) == 0, 90)


# --- the frame player's server function (not queued) ----------------------------------------------------------------


def player_id() -> int:
    return next(c["id"] for c in CONFIG["components"] if c.get("props", {}).get("elem_id") == "frame_player")


def fetch(http: httpx.Client, data: Any, address: str, **changes: Any) -> httpx.Response:
    body = {"data": data, "component_id": player_id(), "session_hash": "fetch-probe", "fn_name": "fetch_frames"}
    return http.post(f"{API}/component_server", json=body | changes, headers=as_address(address))


def test_unknown_fetch_frames_keys_get_one_sentence_and_a_quiet_log(http, capfd):
    capfd.readouterr()
    answers = [fetch(http, [f"no-such-key-{k}", 0], f"198.18.{k // 250}.{k % 250 + 1}") for k in range(1000)]
    assert {a.status_code for a in answers} == {404}, {a.status_code for a in answers}
    assert {a.json()["detail"] for a in answers} == {state.NO_RUN}
    out, err = capfd.readouterr()
    assert len((out + err).encode()) < 10_000, (out + err)[-2000:]
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("data", "changes"),
    [
        ([None, 0], {}),
        (["k", "x"], {}),
        ("not a list", {}),
        ([["k"], 0, 9], {}),
        ([{"a": 1}, float("nan")], {}),
        (["k", 0], {"component_id": 987654}),  # no such component: Gradio's KeyError
        (["k", 0], {"fn_name": "__init__"}),
    ],
)
def test_hostile_fetch_frames_values_get_a_4xx_sentence(http, capfd, data, changes):
    if isinstance(data, list) and data and isinstance(data[-1], float):
        body = '{"data": [{"a": 1}, NaN], "component_id": %d, "session_hash": "s", "fn_name": "fetch_frames"}'
        answer = http.post(f"{API}/component_server", content=body % player_id(), headers=as_address("198.18.9.9"))
    else:
        answer = fetch(http, data, "198.18.9.9", **changes)
    assert 400 <= answer.status_code < 500, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 200
    assert "Traceback" not in "".join(capfd.readouterr())


def test_fetch_frames_is_limited_per_client(http):
    session = new_session()
    assert call_api(http, "run", api_arguments(CONFIG, "run", **SMALL), session).ok
    key = state.STORE.get(session).run.key
    answers = [fetch(http, [key, 0], "198.18.10.10", session_hash=session) for _ in range(30)]
    codes = [a.status_code for a in answers]
    assert codes[0] == 200 and set(answers[0].json()) == {"0", "1", "2"}
    assert 429 in codes and all(code in (200, 429) for code in codes)
    assert fetch(http, [key, 0], "198.18.10.11", session_hash=session).status_code == 200  # another client is served


# --- exports: cancelled and posted again ----------------------------------------------------------------------------


def test_cancelling_and_reposting_an_x8_export_never_runs_more_than_admitted(http, monkeypatch):
    """An ×8 export cancelled and posted again 20 times: Gradio's cancel stops it between batches, a batch still
    running holds its client's slot, so at most `PER_CLIENT` exports run at once and memory stays flat."""
    import threading

    from ui import exports

    open_now, most = [0], [0]
    lock = threading.Lock()

    class CountedGif(exports.GifStream):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            with lock:
                open_now[0] += 1
                most[0] = max(most[0], open_now[0])

        def close(self):
            with lock:
                if not self._file.closed:
                    open_now[0] -= 1
            return super().close()

    monkeypatch.setattr(exports, "GifStream", CountedGif)
    session, address = new_session(), "203.0.113.120"
    run = {**SMALL, "model": "moons-eps", "steps": 120, "batch": 1024}
    body = {"data": api_arguments(CONFIG, "run", **run), "session_hash": session}
    posted = http.post(f"{API}/call/run", json=body, headers=as_address(address))
    assert answer(http, "run", posted.json()["event_id"]) == "complete"
    fn_index = next(dep["id"] for dep in CONFIG["dependencies"] if dep.get("api_name") == "export")
    gc.collect()
    before = rss()
    outcomes = []
    for _ in range(20):
        join = {"data": [8, list(exports.DEFAULT_EXPORT_VIEWS)], "fn_index": fn_index, "session_hash": session}
        joined = http.post(f"{API}/queue/join", json=join, headers=as_address(address))
        outcomes.append(joined.status_code)
        time.sleep(1.0)
        if joined.status_code == 200:
            cancel = {"session_hash": session, "fn_index": fn_index, "event_id": joined.json()["event_id"]}
            assert http.post(f"{API}/cancel", json=cancel).status_code == 200
    assert 200 in outcomes and set(outcomes) <= {200, 429}, outcomes

    def settled() -> bool:
        exports.DISK.used()  # closes the files of exports Gradio dropped at a yield (cancelled) 30 s ago
        return admission.held(app.demo) == 0 and open_now[0] == 0

    assert until(settled, 120), (admission.held(app.demo), open_now)
    gc.collect()
    grown = rss() - before
    assert most[0] <= admission.PER_CLIENT, f"{most[0]} exports ran at once"
    assert grown < 300 * MIB, f"RSS grew by {grown / MIB:.0f} MiB"
    assert exports.DISK.used(admission.client_of_request(SimpleNamespace(headers=Headers(as_address(address)),
                                                                         client=None), session)) == 0  # fmt: skip


# --- Gradio's session state -----------------------------------------------------------------------------------------


def post_view(http: httpx.Client, session: str, address: str) -> httpx.Response:
    body = {"data": api_arguments(CONFIG, "schedules"), "session_hash": session}
    return http.post(f"{API}/call/schedules", json=body, headers=as_address(address))


def test_session_state_is_capped_per_client_before_gradio_allocates(http, monkeypatch):
    """Fresh session hashes from one address: past its cap the client's own idle sessions give way, and while none
    is idle a new one is refused; Gradio's state holder never holds more than the cap for that client."""
    from ui import sessions

    ledger = sessions.SessionLedger(per_client=5, in_all=1000, idle_seconds=60)
    monkeypatch.setattr(sessions.GatedStates, "ledger", ledger)
    holder = app.demo.state_holder
    before = len(holder.session_data)
    answers = [post_view(http, f"fresh-{k}", "203.0.113.77") for k in range(12)]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}, codes
    assert "sessions open from your address" in answers[-1].json()["detail"]
    assert len(holder.session_data) - before <= 5 and ledger.sessions(ledger._owners["fresh-0"]) == 5
    assert post_view(http, "fresh-other", "198.51.100.77").status_code == 200  # another client is not held up
    ledger.idle_seconds = 0.0  # now the first client's sessions are idle: a new one takes the oldest one's place
    assert post_view(http, "fresh-again", "203.0.113.77").status_code == 200
    assert "fresh-0" not in holder.session_data and "fresh-again" in holder.session_data
