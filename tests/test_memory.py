"""Memory is bounded by design: per-session runs under a byte cap and a time to live, a global budget, and
memory back near its baseline once sessions expire or close. Measured with the store's own byte accounting and
the process's resident set size (VmRSS), after returning freed heap pages to the system (malloc_trim)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch
from app_fixtures import FakeRequest, api_arguments, ensure_models, free_port, no_progress
from raw_gradio import call_api, new_session

from ui import state
from ui.controls import RunValues, ScheduleValues, StepValues
from ui.state import MIB, SessionStore

RUN = (RunValues(steps=3, spacing="trailing", seed=0, batch=2), StepValues(sampler="ddim"), ScheduleValues())
STORE_CEILING = 1024 * MIB  # the stated ceiling for all sessions' runs together (docs/hardening.md)
SESSIONS = 6  # API clients that run once and never come back
SLACK = 24 * MIB  # allocator and interpreter noise allowed around a measurement


def rss() -> int:
    """This process's resident set size in bytes, after a collection and trimming the heap."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: measure as is
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class Clock:
    """A settable clock for the store's time to live."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def payload(nbytes: int) -> torch.Tensor:
    """A buffer whose pages are really touched (an untouched allocation costs no memory)."""
    return torch.ones(nbytes, dtype=torch.uint8)


@pytest.mark.parametrize(
    ("sessions", "entry_mib", "per_session_mib", "total_mib"),
    [(50, 1, 4, 16), (200, 2, 4, 64), (600, 1, 2, 32)],
    ids=["50x1MiB-cap16", "200x2MiB-cap64", "600x1MiB-cap32"],
)
def test_many_sessions_stay_under_the_budget_and_expire_to_baseline(sessions, entry_mib, per_session_mib, total_mib):
    clock = Clock()
    store = SessionStore(
        max_bytes_per_session=per_session_mib * MIB, max_total_bytes=total_mib * MIB, time_to_live=60, clock=clock
    )
    baseline = rss()
    peak = 0
    for k in range(sessions):
        clock.now += 0.01
        store.put(f"s{k}", payload(entry_mib * MIB), entry_mib * MIB)
        assert store.total_bytes <= total_mib * MIB
        if k % 50 == 0:
            peak = max(peak, rss() - baseline)
    assert peak <= total_mib * MIB + SLACK, f"grew {peak / MIB:.0f} MiB for a {total_mib} MiB budget"
    clock.now += 61  # every session's time to live passes: API clients that never come back
    assert store.get("anyone") is None  # any access expires what is stale
    assert len(store) == 0 and store.total_bytes == 0
    assert rss() - baseline <= SLACK, f"{(rss() - baseline) / MIB:.0f} MiB not returned after expiry"


def test_an_entry_above_the_session_cap_is_refused_and_stores_nothing():
    store = SessionStore(max_bytes_per_session=4 * MIB, max_total_bytes=16 * MIB)
    with pytest.raises(ValueError, match="at most 4 MiB"):
        store.put("big", payload(1), 5 * MIB)
    assert len(store) == 0


def test_dropping_sessions_returns_memory():
    store = SessionStore(max_bytes_per_session=8 * MIB, max_total_bytes=128 * MIB)
    baseline = rss()
    for k in range(24):
        store.put(f"tab{k}", payload(4 * MIB), 4 * MIB)
    assert rss() - baseline >= 64 * MIB
    for k in range(24):
        store.drop(f"tab{k}")  # what closing each tab should do
    assert store.total_bytes == 0 and rss() - baseline <= SLACK


def test_the_app_states_a_ceiling_for_all_sessions():
    store = state.STORE
    assert store.max_bytes_per_session <= store.max_total_bytes <= STORE_CEILING
    assert 0 < store.time_to_live <= 3600


@pytest.fixture
def small_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SessionStore, Clock]]:
    """The app's handlers on a store with a settable clock (the real one's caps, a 60 s time to live)."""
    ensure_models()
    clock = Clock()
    store = SessionStore(
        max_bytes_per_session=state.STORE.max_bytes_per_session,
        max_total_bytes=state.STORE.max_total_bytes,
        time_to_live=60,
        clock=clock,
    )
    monkeypatch.setattr(state, "STORE", store)
    yield store, clock


def test_app_runs_from_many_api_sessions_expire(small_store):
    from ui import sampling

    store, clock = small_store
    for _ in sampling.run(*RUN, request=FakeRequest("warm-up"), progress=no_progress):
        pass  # models and caches load once
    clock.now += 61
    store.get("x")
    baseline = rss()
    for k in range(SESSIONS):
        for _ in sampling.run(*RUN, request=FakeRequest(f"api-client-{k}"), progress=no_progress):
            pass
    assert len(store) == SESSIONS and store.total_bytes > 0
    clock.now += 61  # the clients never close: their runs expire
    assert store.get("api-client-0") is None and len(store) == 0
    assert rss() - baseline <= SLACK


@pytest.fixture(scope="module")
def server() -> Iterator[httpx.Client]:
    ensure_models()
    import app
    from ui.launch import launch

    port = free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http
    finally:
        app.demo.close()


def test_closing_a_tab_frees_its_run(server):
    import app

    session = new_session()
    run = api_arguments(app.demo.get_config_file(), "run", sampler="ddim", steps=3, spacing="trailing", batch=2)
    assert call_api(server, "run", run, session).ok
    assert state.STORE.get(session) is not None
    with server.stream("GET", f"/gradio_api/heartbeat/{session}") as beat:  # the tab's heartbeat
        next(beat.iter_lines())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _held(state.STORE, session):
        time.sleep(0.2)
    assert not _held(state.STORE, session)


def _held(store: Any, session: str) -> bool:
    return store.get(session) is not None
