"""Hostile clients for `scripts/load_test.py --abuse MODE`: one mode per way a determined attacker tried to get
around the Space's limits (issue 22), and the honest client that must stay served beside each.

Every attacker runs from its own addresses (the proxy's last X-Forwarded-For entry, as on a Space) until the
deadline and counts what the server answered. `HonestProbe` calls `/schedules` once a second and `/run` every
`RUN_EVERY` seconds from its own address: it reports the p95 of `/schedules` and the longest time `/run` was
refused in a row (the limits say: p95 under 2 s, and no run refused for more than 30 s).

    mode            attack (issue 22 item)
    export-cancel   an ×8 export posted, cancelled after 0.5 s and posted again, in a loop (1)
    export          two ×8 exports at a time from one client, answers read (2)
    frames-after    the page's private frame route (frames_after) posted as fast as possible, never read (3)
    fetch-frames    the player's server function fetch_frames from 8 threads (4)
    ipv6            runs of 1000 steps × 1024 points from six IPv6 /64 prefixes, never read (5)
    html            the page and its load event with HTML in every URL value and name (6)
    bad-keys        fetch_frames with unknown keys and hostile values, 8 threads (7)
    sessions        a fresh session hash for every /schedules call, never read (8)
    flood           runs from one address, a new session each, never read (the first abuse test)
    none            no attacker: the honest client alone, the baseline of the machine it runs on
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from typing import Any
from urllib.parse import urlencode

API = "/gradio_api"
RUN_EVERY = 15.0
EXPORT_VIEWS = ["x_t", "x0", "eps", "v", "u", "mean", "noise"]  # every view: the largest export there is
HEAVY_RUN = {"model": "moons-eps", "sampler": "ddim", "steps": 1000, "spacing": "trailing", "batch": 1024}
EXPORT_RUN = {"model": "moons-eps", "sampler": "ddim", "steps": 200, "spacing": "trailing", "batch": 1024}
SMALL_RUN = {"model": "digits-eps", "sampler": "ddim", "steps": 10, "spacing": "trailing", "batch": 4}
HOSTILE_VALUES = [
    "<img src=/probe.png>",
    "<a href=//x.example>go</a>",
    "<form><input></form>",
    '<div style="position:fixed;inset:0">',
]
MODES = (
    "export-cancel",
    "export",
    "frames-after",
    "fetch-frames",
    "ipv6",
    "html",
    "bad-keys",
    "sessions",
    "flood",
    "none",
)


def session() -> str:
    return uuid.uuid4().hex[:11]


def config_of(url: str) -> dict:
    with urllib.request.urlopen(f"{url.rstrip('/')}/config", timeout=60) as answer:
        return json.load(answer)


def dependency(config: dict, api_name: str) -> int:
    return next(dep["id"] for dep in config["dependencies"] if dep.get("api_name") == api_name)


def component(config: dict, elem_id: str) -> int:
    return next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def read(http: Any, url: str, name: str, event_id: str) -> str:
    """Read an event's answer stream (server `url`) to its end: "complete", "error" or what it ended on."""
    last = ""
    with http.stream("GET", f"{url}{API}/call/{name}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                last = line.removeprefix("event:").strip()
                if last in ("complete", "error"):
                    break
    return last


class Honest(threading.Thread):
    """One honest client: /schedules every second, /run every RUN_EVERY seconds, from its own address."""

    def __init__(self, url: str, deadline: float, address: str = "198.51.100.200") -> None:
        super().__init__(daemon=True)
        from app_fixtures import api_arguments

        config = config_of(url)
        self.schedules = api_arguments(config, "schedules")
        self.run_data = api_arguments(config, "run", **SMALL_RUN)
        self.url, self.deadline, self.headers = url.rstrip("/"), deadline, {"x-forwarded-for": address}
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.runs = 0
        self.refused_since: float | None = None
        self.longest_refusal = 0.0
        self.refusals = 0

    def _call(self, http: Any, name: str, data: list) -> tuple[int, str]:
        body = {"data": data, "session_hash": session()}
        posted = http.post(f"{self.url}{API}/call/{name}", json=body, headers=self.headers)
        if posted.status_code != 200:
            return posted.status_code, ""
        return 200, read(http, self.url, name, posted.json()["event_id"])

    def _run_once(self, http: Any) -> None:
        now = time.monotonic()
        status, outcome = self._call(http, "run", self.run_data)
        if status == 200 and outcome == "complete":
            self.runs += 1
            if self.refused_since is not None:
                self.longest_refusal = max(self.longest_refusal, time.monotonic() - self.refused_since)
            self.refused_since = None
            return
        self.refusals += 1
        self.refused_since = self.refused_since or now
        self.longest_refusal = max(self.longest_refusal, time.monotonic() - self.refused_since)
        if status != 429:
            self.failures.append(f"/run {status} {outcome}")

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=120) as http:
            runner = threading.Thread(target=self._runs, args=(http,), daemon=True)
            runner.start()
            while time.monotonic() < self.deadline:
                began = time.monotonic()
                try:
                    status, outcome = self._call(http, "schedules", self.schedules)
                    if status == 200 and outcome == "complete":
                        self.latencies.append(time.monotonic() - began)
                    else:
                        self.failures.append(f"/schedules {status} {outcome}")
                except Exception as error:
                    self.failures.append(f"/schedules {type(error).__name__}")
                time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
            runner.join(150)

    def _runs(self, http: Any) -> None:
        while time.monotonic() < self.deadline:
            began = time.monotonic()
            try:
                self._run_once(http)
            except Exception as error:
                self.failures.append(f"/run {type(error).__name__}")
            time.sleep(max(0.0, RUN_EVERY - (time.monotonic() - began)))

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        p95 = statistics.quantiles(ordered, n=100, method="inclusive")[94] if len(ordered) > 1 else float("nan")
        return {
            "schedules": len(ordered),
            "schedules_p50_s": statistics.median(ordered) if ordered else float("nan"),
            "schedules_p95_s": p95,
            "runs": self.runs,
            "run_refusals": self.refusals,
            "longest_refusal_s": self.longest_refusal,
            "failures": len(self.failures),
            "first_failures": self.failures[:5],
        }


class Attacker(threading.Thread):
    """One hostile mode: `threads` workers doing `step` until the deadline; what the server said, counted."""

    def __init__(self, mode: str, url: str, deadline: float, threads: int = 1) -> None:
        super().__init__(daemon=True)
        from app_fixtures import api_arguments

        self.mode, self.url, self.deadline, self.threads = mode, url.rstrip("/"), deadline, threads
        self.config = config_of(url)
        self.args = api_arguments
        self.statuses: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.key: str | None = None
        self.session = session()

    def count(self, status: Any) -> None:
        with self.lock:
            self.statuses[str(status)] += 1

    def headers(self, address: str = "203.0.113.66") -> dict[str, str]:
        spoofed = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        return {"x-forwarded-for": f"{spoofed}, {address}"}

    def prepare(self, http: Any) -> None:
        """A run of its own first, where the mode needs one (exports and frames read the session's run)."""
        if self.mode not in ("export-cancel", "export", "frames-after", "fetch-frames"):
            return
        changes = EXPORT_RUN
        body = {"data": self.args(self.config, "run", **changes), "session_hash": self.session}
        posted = http.post(f"{self.url}{API}/call/run", json=body, headers=self.headers())
        ok = posted.status_code == 200
        outcome = read(http, self.url, "run", posted.json()["event_id"]) if ok else posted.status_code
        self.count(f"own run: {outcome}")
        if self.mode == "fetch-frames":
            self.key = self._player_key(http)

    def _player_key(self, http: Any) -> str | None:
        """The run's key as the page learns it: the payload of frames_after on the page route."""
        fn = next(d["id"] for d in self.config["dependencies"] if d.get("api_name") == "frames_after")
        join = {"data": [1], "fn_index": fn, "session_hash": self.session}
        joined = http.post(f"{self.url}{API}/queue/join", json=join, headers=self.headers())
        if joined.status_code != 200:
            return None
        with http.stream("GET", f"{self.url}{API}/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if '"process_completed"' in line:
                    message = json.loads(line.removeprefix("data:"))
                    data = message.get("output", {}).get("data") or [{}]
                    return (data[0] or {}).get("key")
        return None

    def get_ready(self) -> None:
        """`prepare` (before the clock starts: a run of its own takes minutes on a busy machine)."""
        import httpx

        with httpx.Client(timeout=600) as http:
            try:
                self.prepare(http)
            except Exception as error:
                self.count(f"prepare: {type(error).__name__}")

    def run(self) -> None:
        workers = [threading.Thread(target=self._work, args=(k,), daemon=True) for k in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max(1.0, self.deadline - time.monotonic() + 30))

    def _work(self, index: int) -> None:
        import httpx

        step = getattr(self, "_" + self.mode.replace("-", "_"))
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < self.deadline:
                try:
                    step(http, index)
                except Exception as error:
                    self.count(type(error).__name__)

    # --- the modes ---

    def _export_cancel(self, http: Any, index: int) -> None:
        fn = dependency(self.config, "export")
        join = {"data": [8, EXPORT_VIEWS], "fn_index": fn, "session_hash": self.session}
        joined = http.post(f"{self.url}{API}/queue/join", json=join, headers=self.headers())
        self.count(joined.status_code)
        time.sleep(0.5)
        if joined.status_code == 200:
            cancel = {"session_hash": self.session, "fn_index": fn, "event_id": joined.json()["event_id"]}
            http.post(f"{self.url}{API}/cancel", json=cancel)

    def _export(self, http: Any, index: int) -> None:
        body = {"data": [8, EXPORT_VIEWS], "session_hash": self.session}
        posted = http.post(f"{self.url}{API}/call/export", json=body, headers=self.headers())
        if posted.status_code != 200:
            self.count(posted.status_code)
            time.sleep(1.0)
            return
        self.count(f"export {read(http, self.url, 'export', posted.json()['event_id'])}")

    def _frames_after(self, http: Any, index: int) -> None:
        fn = next(d["id"] for d in self.config["dependencies"] if d.get("api_name") == "frames_after")
        join = {"data": [1], "fn_index": fn, "session_hash": self.session}
        self.count(http.post(f"{self.url}{API}/queue/join", json=join, headers=self.headers()).status_code)

    def _fetch(self, http: Any, data: Any, address: str = "203.0.113.66") -> None:
        body = {"data": data, "component_id": component(self.config, "frame_player"), "session_hash": self.session}
        body["fn_name"] = "fetch_frames"
        answer = http.post(f"{self.url}{API}/component_server", json=body, headers=self.headers(address))
        self.count(answer.status_code)

    def _fetch_frames(self, http: Any, index: int) -> None:
        self._fetch(http, [self.key or "missing", random.randint(0, 980)])

    def _bad_keys(self, http: Any, index: int) -> None:
        hostile = random.choice([[session(), 0], [None, 0], ["k", "x"], "text", [["k"], 0, 9], [{"a": 1}, -1]])
        self._fetch(http, hostile, f"198.18.{random.randint(0, 255)}.{random.randint(1, 254)}")

    def _ipv6(self, http: Any, index: int) -> None:
        address = f"2001:db8:66:{index % 6:x}::{random.randint(1, 65535):x}"  # six /64 prefixes
        body = {"data": self.args(self.config, "run", **HEAVY_RUN), "session_hash": session()}
        posted = http.post(f"{self.url}{API}/call/run", json=body, headers=self.headers(address))
        self.count(posted.status_code)
        if posted.status_code != 200:
            time.sleep(0.2)

    def _html(self, http: Any, index: int) -> None:
        query = {name: random.choice(HOSTILE_VALUES) for name in ("tab", "model", "sampler", "steps", "family1")}
        query[random.choice(HOSTILE_VALUES)] = "1"
        page = http.get(f"{self.url}/?{urlencode(query)}", headers=self.headers())
        self.count(f"page {page.status_code}")

    def _sessions(self, http: Any, index: int) -> None:
        body = {"data": self.args(self.config, "schedules"), "session_hash": session()}
        self.count(http.post(f"{self.url}{API}/call/schedules", json=body, headers=self.headers()).status_code)

    def _none(self, http: Any, index: int) -> None:
        time.sleep(1.0)
        self.count("idle")

    def _flood(self, http: Any, index: int) -> None:
        body = {"data": self.args(self.config, "run", **SMALL_RUN), "session_hash": session()}
        self.count(http.post(f"{self.url}{API}/call/run", json=body, headers=self.headers()).status_code)

    def summary(self) -> str:
        parts = ", ".join(f"{count} × {status}" for status, count in sorted(self.statuses.items()))
        return f"attacker ({self.mode}, {self.threads} threads): {parts}"


THREADS = {"fetch-frames": 8, "bad-keys": 8, "ipv6": 6, "export": 2, "frames-after": 4, "sessions": 4, "html": 2}
