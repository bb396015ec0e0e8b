"""Load test: many simulated users through gradio_client against `python app.py` on 127.0.0.1 (a benchmark, not CI).

    python scripts/load_test.py --users 30 --seconds 300
    python scripts/load_test.py --users 30 --seconds 120 --space            # as on a hosted Space
    python scripts/load_test.py --users 30 --seconds 120 --abuse            # the same, plus one flooding client
    python scripts/load_test.py --users 0 --seconds 90 --abuse export-cancel   # one hostile mode (abuse_modes.py)

Each user is one gradio_client session that, with a short think time, changes schedules, looks at posteriors,
runs bundled models and steps through the frames of its last run. The server is started here (or given with
--url) and its resident memory is sampled throughout. Prints a Markdown table: requests served, errors, fast
"queue full" answers, refusals by the admission of model work (HTTP 429), p50/p95 latency per kind, and server
memory at start, peak and after the users stop.

`--space` starts the server with SPACE_ID set and gives each user its own X-Forwarded-For address, so the
admission counts clients by address as on a Space. `--abuse` (implies `--space`) adds one flooding client: from
one address, with a fresh session hash each time, it posts runs to /gradio_api/call/run as fast as it can and
never reads an answer (the attack that once filled the queue for minutes).
`--abuse MODE` runs one of the hostile modes of `scripts/abuse_modes.py` (one per item of issue 22) beside an
honest client that calls /schedules every second and /run every 15 s (and `--users` simulated users, 0 allowed),
and prints one row: the honest client's /schedules p50/p95, its runs and the longest time /run was refused in a
row, the server's RSS (start, peak), its peak disk use (exports and Gradio's cache, in a temporary directory of
its own) and how much it logged, and what the attacker was answered.
Bounded in time (--seconds, plus a drain limit) and in count (--max-requests); never leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # app_fixtures (endpoint arguments by input name) imports explorer
sys.path.insert(0, str(ROOT / "scripts"))
from abuse_modes import MODES, THREADS, Attacker, Honest  # noqa: E402

FAMILIES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
MODELS = ("digits-eps", "digits-x0", "moons-eps", "moons-x0")
KINDS = {"schedules": 0.35, "posterior": 0.25, "run": 0.15, "frames": 0.25}
RUN_STEPS = 10
CALL_TIMEOUT = 120.0
FLOODER_ADDRESS = "203.0.113.66"  # TEST-NET-3: never a real client
DRAIN_SECONDS = 150.0  # after the deadline, wait at most this long for calls in flight


@dataclass
class Tally:
    """Latencies (seconds) and outcomes of one kind of request."""

    ok: list[float] = field(default_factory=list)
    queue_full: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_of(pid: int) -> int:
    """Resident memory of a process and its children, in bytes (0 once it is gone)."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{candidate}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except OSError:
        return []


class MemoryProbe(threading.Thread):
    """Samples a process's RSS twice a second."""

    def __init__(self, pid: int, disk: Path | None = None) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stopped = pid, [], threading.Event()
        self.disk, self.disk_peak = disk, 0

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.monotonic(), rss_of(self.pid)))
            if self.disk is not None:
                self.disk_peak = max(self.disk_peak, disk_of(self.disk))
            self.stopped.wait(0.5)


def disk_of(folder: Path | None) -> int:
    """Bytes of the files under `folder` (0 without one)."""
    if folder is None:
        return 0
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def start_server(port: int, log: Path, *, space: bool = False, temp: Path | None = None) -> subprocess.Popen:
    """`python app.py` on 127.0.0.1:port, offline, its output in `log` (as on a Space with `space`); returns once
    it answers."""
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    env.update({"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"})
    env.pop("SPACE_ID", None)
    if space:
        env["SPACE_ID"] = "explorer/load-test"
    if temp is not None:  # exports and Gradio's cache where their size can be measured
        env.update({"TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(temp / "gradio")})
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"app.py exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except OSError:
            time.sleep(1)
    server.terminate()
    raise RuntimeError("app.py did not answer within 180 s")


class User(threading.Thread):
    """One simulated person: a gradio_client session issuing a random mix of requests until the deadline."""

    def __init__(
        self, url: str, seed: int, deadline: float, budget: list[int], tallies: dict, lock, *, address: str | None
    ) -> None:
        super().__init__(daemon=True)
        with urllib.request.urlopen(f"{url.rstrip('/')}/config", timeout=60) as answer:
            self.config = json.load(answer)
        self.url, self.random, self.deadline = url, random.Random(seed), deadline
        self.headers = {"x-forwarded-for": address} if address else None
        self.budget, self.tallies, self.lock = budget, tallies, lock
        self.frames = 0  # frames in this session's last run (0: no run yet)

    def _take(self) -> bool:
        with self.lock:
            if self.budget[0] <= 0:
                return False
            self.budget[0] -= 1
            return True

    def _request(self, client) -> tuple[str, list, str]:
        from app_fixtures import api_arguments

        pick, integer = self.random.random, self.random.randint
        kind = self.random.choices(list(KINDS), weights=list(KINDS.values()))[0]
        if kind == "frames" and not self.frames:
            kind = "run"
        if kind == "schedules":
            changes = {"family1": self.random.choice(FAMILIES), "T1": integer(50, 2000)}
            changes |= {"sched_t": integer(1, 1000), "sched_steps": integer(1, 100)}  # slider maxima
            return kind, api_arguments(self.config, "schedules", **changes), "/schedules"
        if kind == "posterior":
            changes = {"post_source": self.random.choice(("digit", "digit", "moons", "ring"))}
            changes |= {"post_index": integer(0, 99), "post_t": integer(2, 1000), "post_step": integer(1, 20)}
            return kind, api_arguments(self.config, "posterior", **changes), "/posterior"
        if kind == "run":
            model, sampler = self.random.choice(MODELS), self.random.choice(("ddim", "ddpm"))
            changes = {"model": model, "sampler": sampler, "steps": RUN_STEPS, "spacing": "trailing"}
            changes |= {"seed": integer(0, 999), "batch": 4 if model[0] == "d" else 64}
            return kind, api_arguments(self.config, "run", **changes), "/run"
        if pick() < 0.5:
            return kind, [self.random.randint(1, self.frames)], "/frame"
        return kind, [self.random.randint(1, self.frames)], self.random.choice(("/previous_frame", "/next_frame"))

    def run(self) -> None:
        from gradio_client import Client

        try:
            client = Client(self.url, verbose=False, headers=self.headers)
        except Exception as error:  # the page itself did not load: count it
            with self.lock:
                self.tallies["connect"].errors.append(repr(error)[:200])
            return
        while time.monotonic() < self.deadline and self._take():
            try:
                kind, args, api_name = self._request(client)
            except Exception as error:  # a fault of this script: counted, never a silently dead user
                with self.lock:
                    self.tallies["connect"].errors.append(f"building a request: {error!r}"[:200])
                return
            started = time.monotonic()
            try:
                client.submit(*args, api_name=api_name).result(timeout=CALL_TIMEOUT)
            except Exception as error:
                elapsed = time.monotonic() - started
                text = f"{type(error).__name__}: {error}"
                with self.lock:
                    if "queue" in text.lower() and "full" in text.lower():
                        self.tallies[kind].queue_full.append(elapsed)
                    elif "429" in text:
                        self.tallies[kind].refused.append(elapsed)
                    else:
                        self.tallies[kind].errors.append(f"{api_name} {text[:200]}")
            else:
                with self.lock:
                    self.tallies[kind].ok.append(time.monotonic() - started)
                if kind == "run":
                    self.frames = RUN_STEPS
            time.sleep(self.random.uniform(0.2, 1.0))  # think time


class Flooder(threading.Thread):
    """One abusive client: posts runs from one address as fast as it can, a new session each time, and never
    reads an answer. Counts what the server said to each post."""

    def __init__(self, url: str, deadline: float, address: str = FLOODER_ADDRESS) -> None:
        super().__init__(daemon=True)
        from app_fixtures import api_arguments

        with urllib.request.urlopen(f"{url.rstrip('/')}/config", timeout=60) as answer:
            config = json.load(answer)
        changes = {"model": "digits-eps", "sampler": "ddim", "steps": RUN_STEPS, "spacing": "trailing", "batch": 4}
        self.data = api_arguments(config, "run", **changes)
        self.url, self.deadline, self.address = url.rstrip("/"), deadline, address
        self.statuses: dict[str, int] = defaultdict(int)
        self.seconds = 0.0

    def run(self) -> None:
        import httpx

        began = time.monotonic()
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < self.deadline:
                spoofed = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
                body = {"data": self.data, "session_hash": uuid.uuid4().hex[:11]}
                try:
                    response = http.post(
                        f"{self.url}/gradio_api/call/run",
                        json=body,
                        headers={"x-forwarded-for": f"{spoofed}, {self.address}"},
                    )
                    self.statuses[str(response.status_code)] += 1
                except Exception as error:  # a refused connection is an outcome too
                    self.statuses[type(error).__name__] += 1
        self.seconds = time.monotonic() - began

    def summary(self) -> str:
        posts = sum(self.statuses.values())
        parts = ", ".join(f"{count} × {status}" for status, count in sorted(self.statuses.items()))
        return (
            f"Flooder (one address, a new session per post, answers never read): {posts} posts in "
            f"{self.seconds:.0f} s ({posts / max(self.seconds, 1e-9):.0f}/s): {parts} "
            "(200: queued; 429: refused by the admission of model work; 503: queue full)."
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def report(tallies: dict, memory: dict, args: argparse.Namespace, wall: float) -> str:
    """The Markdown table for docs/hardening.md."""
    where = "as on a Space (SPACE_ID set, one X-Forwarded-For address per user)" if args.space else "locally"
    lines = [
        f"Load test: {args.users} users × {args.seconds:.0f} s (wall {wall:.0f} s), think time 0.2–1.0 s, "
        f"runs of {RUN_STEPS} steps on bundled models; server `python app.py` on 127.0.0.1, {where}"
        + (", beside one flooding client." if args.abuse else "."),
        "",
        "| kind | served | errors | queue full (max s) | refused 429 | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    everything = Tally()
    for kind in [*KINDS, "connect"]:
        tally = tallies.get(kind) or Tally()
        if kind == "connect" and not tally.errors:
            continue
        everything.ok += tally.ok
        everything.errors += tally.errors
        everything.queue_full += tally.queue_full
        everything.refused += tally.refused
        lines.append(_row(kind, tally))
    lines.append(_row("**all**", everything))
    mib = 1 << 20
    lines += [
        "",
        f"Server memory (RSS): start {memory['start'] / mib:.0f} MiB, peak {memory['peak'] / mib:.0f} MiB, "
        f"after the users stopped {memory['after'] / mib:.0f} MiB (their runs stay in the session store until "
        "their time to live passes: API clients never close a tab).",
    ]
    if everything.errors:
        lines += ["", "First errors:", *[f"- `{error}`" for error in everything.errors[:10]]]
    return "\n".join(lines)


def _row(kind: str, tally: Tally) -> str:
    full = f"{len(tally.queue_full)} ({max(tally.queue_full):.2f})" if tally.queue_full else "0"
    ms = [1000 * v for v in tally.ok]
    p50, p95 = percentile(ms, 50), percentile(ms, 95)
    top = max(ms) if ms else float("nan")
    cells = f"{len(tally.ok)} | {len(tally.errors)} | {full} | {len(tally.refused)} | {p50:.0f} | {p95:.0f} | {top:.0f}"
    return f"| {kind} | {cells} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--max-requests", type=int, default=20_000, help="stop after this many requests in all")
    parser.add_argument("--url", help="an already running server on 127.0.0.1 (its memory is not measured)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--server-log", type=Path, default=Path("/tmp/load_test_server.log"), help="app.py output")
    parser.add_argument("--space", action="store_true", help="SPACE_ID set; each user its own X-Forwarded-For")
    parser.add_argument(
        "--abuse",
        nargs="?",
        const="flood",
        choices=MODES,
        help="add one hostile client (implies --space): flood (runs from one address) or a mode of abuse_modes.py",
    )
    args = parser.parse_args()
    args.space = args.space or bool(args.abuse)
    if not (0 if args.abuse else 1) <= args.users <= 200 or not 1 <= args.seconds <= 1800:
        parser.error("--users must be in [1, 200] ([0, 200] with --abuse) and --seconds in [1, 1800]")
    server, url, temp = None, args.url, None
    if url is None:
        port = free_port()
        temp = Path(tempfile.mkdtemp(prefix="explorer-load-"))
        server = start_server(port, args.server_log, space=args.space, temp=temp)
        url = f"http://127.0.0.1:{port}/"
    elif not url.startswith(("http://127.0.0.1", "http://localhost")):
        parser.error("--url must be on 127.0.0.1")
    if args.abuse and args.abuse != "flood":
        try:
            return abuse_mode(args, url, server, temp)
        finally:
            stop_server(server)
    probe = MemoryProbe(server.pid if server else os.getpid(), temp)
    probe.start()
    time.sleep(1.0)
    start_rss = rss_of(probe.pid)
    tallies: dict[str, Tally] = defaultdict(Tally)
    lock, budget = threading.Lock(), [args.max_requests]
    began = time.monotonic()
    deadline = began + args.seconds
    addresses = [f"10.1.{seed // 200}.{seed % 200 + 1}" if args.space else None for seed in range(args.users)]
    users = [User(url, seed, deadline, budget, tallies, lock, address=addresses[seed]) for seed in range(args.users)]
    flooder = Flooder(url, deadline) if args.abuse == "flood" else None
    try:
        if flooder is not None:
            flooder.start()  # the flood is already running when the lecture hall arrives
        for user in users:
            user.start()
            time.sleep(0.05)  # a lecture hall arrives within a couple of seconds
        for user in users:
            user.join(max(0.0, deadline + DRAIN_SECONDS - time.monotonic()))
        wall = time.monotonic() - began
        time.sleep(10)  # let the server settle once everyone stopped
        after = rss_of(probe.pid)
        probe.stopped.set()
        memory = {"start": start_rss, "peak": max(s for _, s in probe.samples), "after": after}
        if flooder is not None:
            flooder.join(30)
        print(report(tallies, memory, args, wall))
        if flooder is not None:
            print("\n" + flooder.summary())
        if args.json:
            raw = {kind: vars(tally) for kind, tally in tallies.items()}
            flood = dict(flooder.statuses) if flooder else None
            args.json.write_text(json.dumps({"memory": memory, "tallies": raw, "wall": wall, "flood": flood}, indent=1))
        stuck = sum(user.is_alive() for user in users)
        if server is not None:
            print(f"\nServer log: {args.server_log}")
        if stuck:
            print(f"\n{stuck} users still waiting after the drain limit")
        return 1 if stuck or any(t.errors for t in tallies.values()) else 0
    finally:
        stop_server(server)


def stop_server(server: subprocess.Popen | None) -> None:
    if server is not None:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def abuse_mode(args: argparse.Namespace, url: str, server: subprocess.Popen | None, temp: Path | None) -> int:
    """One hostile mode beside the honest client (and `--users` simulated users); prints its row."""
    probe = MemoryProbe(server.pid if server else os.getpid(), temp)
    probe.start()
    time.sleep(1.0)
    start_rss = rss_of(probe.pid)
    log_before = args.server_log.stat().st_size if server is not None and args.server_log.exists() else 0
    attacker = Attacker(args.abuse, url, 0.0, THREADS.get(args.abuse, 1))
    attacker.get_ready()  # its own run first, before the clock starts
    began = time.monotonic()
    deadline = attacker.deadline = began + args.seconds
    attacker.start()
    time.sleep(2.0)  # the attack is under way when the honest client arrives
    honest = Honest(url, deadline)
    tallies: dict[str, Tally] = defaultdict(Tally)
    lock, budget = threading.Lock(), [args.max_requests]
    users = [
        User(url, seed, deadline, budget, tallies, lock, address=f"10.1.0.{seed + 1}") for seed in range(args.users)
    ]
    honest.start()
    for user in users:
        user.start()
    honest.join(args.seconds + DRAIN_SECONDS)
    for user in users:
        user.join(max(0.0, deadline + DRAIN_SECONDS - time.monotonic()))
    attacker.join(30)
    probe.stopped.set()
    mib = 1 << 20
    peak = max(sample for _, sample in probe.samples)
    logged = (args.server_log.stat().st_size - log_before) if server is not None else 0
    result = honest.summary()
    row = (
        f"| {args.abuse} | {result['schedules']} | {1000 * result['schedules_p50_s']:.0f} / "
        f"{1000 * result['schedules_p95_s']:.0f} | {result['runs']} / {result['run_refusals']} | "
        f"{result['longest_refusal_s']:.0f} | {start_rss / mib:.0f} → {peak / mib:.0f} "
        f"(+{(peak - start_rss) / mib:.0f}) | "
        f"{probe.disk_peak / mib:.1f} | {logged / 1024:.1f} |"
    )
    print(
        "| mode | honest /schedules | p50 / p95 ms | honest runs ok / refused | longest refusal s | "
        "server RSS MiB (start → peak) | disk peak MiB | log KiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(row)
    print("\n" + attacker.summary())
    if result["first_failures"]:
        print("honest failures:", result["first_failures"])
    if users:
        memory = {"start": start_rss, "peak": peak, "after": rss_of(probe.pid)}
        print("\n" + report(tallies, memory, args, args.seconds))
    if args.json:
        raw = {"honest": result, "attacker": dict(attacker.statuses), "rss_start": start_rss, "rss_peak": peak}
        args.json.write_text(json.dumps(raw | {"disk_peak": probe.disk_peak, "logged": logged}, indent=1))
    ok = result["schedules_p95_s"] < 2.0 and result["longest_refusal_s"] <= 30.0 and not result["failures"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
