"""Round robin across clients inside Gradio's queue (`ui.fair_queue`): the ordering rule on lists, then a real
Gradio server whose one worker serves a flooding client and an honest one."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import defaultdict

import gradio as gr
import httpx
import pytest
from app_fixtures import free_port
from raw_gradio import API, new_session

from ui import admission
from ui.admission import Ledger
from ui.fair_queue import round_robin


def test_round_robin_keeps_each_clients_order_and_serves_every_kth_before_any_k_plus_first():
    rng = random.Random(0)
    for _trial in range(200):
        clients = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        items = list(range(len(clients)))  # an item is its arrival position
        ordered = round_robin(items, clients)
        assert sorted(ordered) == items, "a permutation"
        for client in set(clients):  # each client's own order of arrival is kept
            mine = [item for item in ordered if clients[item] == client]
            assert mine == sorted(mine)
        # the rank of an item: how many of its client's items arrived before it; ranks never decrease
        ranks = [sum(clients[other] == clients[item] for other in range(item)) for item in ordered]
        assert ranks == sorted(ranks)
        for first, second in itertools.pairwise(ordered):  # equal ranks: earlier arrival first
            if ranks[ordered.index(first)] == ranks[ordered.index(second)]:
                assert first < second
    assert round_robin(["a1", "a2", "a3", "b1"], ["a", "a", "a", "b"]) == ["a1", "b1", "a2", "a3"]
    with pytest.raises(ValueError, match="one client per item"):
        round_robin([1, 2], ["a"])


@pytest.fixture()
def one_worker(monkeypatch):
    """A Gradio app with one worker for one slow event, behind the app's admission hook, keyed as on a Space."""
    monkeypatch.setenv("SPACE_ID", "explorer/fair-queue-test")
    served: list[str] = []
    lock, posted = threading.Lock(), threading.Event()

    def work(tag: str) -> str:
        posted.wait(60)  # the worker is held until every request is in the queue: the order is the queue's alone
        time.sleep(0.05)
        with lock:
            served.append(tag)
        return tag

    with gr.Blocks() as demo:
        tag, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(work, tag, out, api_name="work", concurrency_limit=1)
    demo.queue(default_concurrency_limit=1, max_size=64)
    admission.install(demo, Ledger(per_client=2, in_all=12), Ledger(per_client=16, in_all=48))
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http, served, posted
    finally:
        demo.close()


def post(http: httpx.Client, tag: str, address: str) -> str:
    answer = http.post(
        f"{API}/call/work",
        json={"data": [tag], "session_hash": new_session()},
        headers={"x-forwarded-for": address},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["event_id"]


def test_an_honest_request_waits_behind_one_event_of_a_flooding_client_not_all_of_them(one_worker):
    http, served, posted = one_worker
    flooder, honest = "203.0.113.9", "198.51.100.4"
    events = [post(http, f"flood-{k}", flooder) for k in range(8)]  # one address, eight fresh sessions
    events.append(post(http, "honest", honest))
    posted.set()
    results: dict[str, list[str]] = defaultdict(list)
    for event_id in events:  # read every answer (the events run whether or not they are read)
        with http.stream("GET", f"{API}/call/work/{event_id}") as stream:
            results[event_id] = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert all(lines and lines[-1] == "event: complete" for lines in results.values())
    position = served.index("honest")
    # First in, first out would serve it ninth (position 8); round robin serves it once the flooder's first waiting
    # event has run (position 1 or 2, depending on whether the first flood event was already taken by the worker).
    assert position <= 2, served
    assert [tag for tag in served if tag != "honest"] == [f"flood-{k}" for k in range(8)]  # the flooder's own order
