"""Benchmark the app on this machine and print a Markdown table (copy it into docs/benchmarks.md).

    python scripts/bench_app.py [--skip-startup] [--skip-browser] [--browser-only] [--steps 1000] [--batch 16]
                                [--frames 50,250,1000] [--loads 5] [--talk-loads 3]

Measures: startup (`import app`, and `python app.py` until the first page is served); the Schedules handler
(median of 10 calls) and its figure's JSON size for T = 1000 and 4000; the handler rows of scripts/bench_handlers.py;
the per-session memory of a stored run on digits-eps (the compact run's bytes, process RSS before and after); the
bytes a finished run sends to the page for client-side frames (digits-eps, batch 16, per step count in --frames);
and, in Chromium through Playwright: page open until the first plot is drawn, for the app and for a bare Gradio page
with one plot (the same theme, the same server process, alternating which goes first, a fresh browser context each
time; median of --loads, and the ratio, goal ≤ 1.5×); a talk link (`TALK_LINK`, a bundled model) from navigation
until its frame is shown (median of --talk-loads, goal ≤ 5 s on an idle machine); the longest main-thread task (Long
Tasks API) from pressing Run until a 400-step run's last frame is drawn; and the latency of 55 ArrowRight presses
from the key's event until the page's player has drawn the new frame (no server call). The load average is printed
before and after the browser rows (the machine may be shared). --browser-only prints the browser rows alone.
Uses the bundled checkpoints in pretrained/ (offline).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # app_fixtures: the Chromium path and flags the browser tests use
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MIB = 1 << 20
KEY_GOAL_MS = 50
FIRST_PLOT_GOAL = 1.5  # the app's page open → first plot, at most this × a bare Gradio page's
TALK_GOAL_S = 5  # a talk link with a bundled model: navigation → its frame shown, on an idle machine
TALK_FRAME, TALK_STEPS = 5, 30
TALK_LINK = f"?tab=sampling&model=digits-eps&steps={TALK_STEPS}&batch=16&frame={TALK_FRAME}"
LONG_RUN_STEPS = 400  # the run during which the longest main-thread task is measured
# The frame a talk link names is shown: its line says so and its picture is on screen (the streamed picture, or the
# page's player once it holds the run).
FRAME_SHOWN_JS = """([frame, total]) => {
  const line = document.getElementById('frame_text');
  if (!line || !line.textContent.includes(`Frame ${frame} of ${total}`)) return false;
  const shown = (element) => element && element.getClientRects().length > 0 && element.offsetWidth > 0;
  return shown(document.querySelector(`#frame canvas[data-frame='${frame}']`))
    || shown(document.querySelector('#frame_stream img'));
}"""
# Records every main-thread task over 50 ms (Long Tasks API) from the page's start: [start ms, duration ms].
LONG_TASKS_JS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push([entry.startTime, entry.duration]);
}).observe({type: 'longtask', buffered: true});
"""
# Records when each key event was made (its timeStamp, on the clock of performance.now()), whichever handler hears it
# first.
KEY_CLOCK_JS = """() => {
  window.__keyAt = [];
  window.addEventListener('keydown', (event) => window.__keyAt.push(event.timeStamp), true);
}"""
# Resolves, once the player has drawn `n` frames in all, with the ms from the last key event to that drawing.
DRAWN_JS = """async (n) => {
  const F = window.explorerFrames;
  while (F.draws < n) await new Promise((resolve) => setTimeout(resolve, 1));
  return F.lastDraw - window.__keyAt[window.__keyAt.length - 1];
}"""


def rss_bytes() -> int:
    """This process's resident set size after a collection and a heap trim."""
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_schedules(T: int, repeats: int = 10) -> tuple[float, int]:
    """Median handler time (ms) and figure JSON size (bytes) with all three schedules at T."""
    from ui import schedules
    from ui.controls import ScheduleValues

    view = schedules.ViewValues(show2=True, show3=True, t=T // 2, num_steps=50)
    slots = (ScheduleValues(T=T), ScheduleValues("squaredcos_cap_v2", T=T), ScheduleValues(T=T, zero_snr=True))
    times, figure = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        figure, *_ = schedules.update_schedules(view, *slots)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), len(figure.to_json())


class Request:
    """What the handlers read from gr.Request when called directly."""

    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash
        self.query_params: dict[str, str] = {}


def run_args(steps: int, batch: int) -> tuple:
    from ui.controls import RunValues, ScheduleValues, StepValues

    return RunValues(steps=steps, seed=0, batch=batch), StepValues(), ScheduleValues()


def bench_memory(steps: int, batch: int) -> dict[str, float]:
    """RSS before and after one stored run of `steps` steps at `batch`, and the run's compact bytes."""
    from ui import sampling, state

    def quiet(*args, **kwargs) -> None:
        pass

    list(sampling.run(*run_args(2, batch), request=Request("warm-up"), progress=quiet))
    state.STORE.drop("warm-up")
    before = rss_bytes()
    start = time.perf_counter()
    list(sampling.run(*run_args(steps, batch), request=Request("bench"), progress=quiet))
    seconds = time.perf_counter() - start
    after = rss_bytes()
    stored = state.STORE.get("bench")
    return {"nbytes": stored.compact.nbytes, "before": before, "after": after, "seconds": seconds}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bench_frame_bytes(steps: int, batch: int = 16) -> tuple[int, int, int]:
    """Bytes of the page's frame payload of one digits-eps run (JSON as sent), frames held, frames in all."""
    import json

    from ui import frames, sampling, state

    def quiet(*args, **kwargs) -> None:
        pass

    session = f"bytes-{steps}"
    list(sampling.run(*run_args(steps, batch), request=Request(session), progress=quiet))
    payload = frames.payload(state.stored_run(Request(session)), steps - 1)
    state.STORE.drop(session)
    return len(json.dumps(payload).encode()), len(payload["frames"]), payload["total"]


def bare_page():
    """A bare Gradio page with one plot, drawn when the page loads (the yardstick of the app's first plot)."""
    import gradio as gr
    import plotly.graph_objects as go

    def figure():
        return go.Figure(go.Scatter(x=list(range(1000)), y=[k * k for k in range(1000)]))

    with gr.Blocks() as bare:
        plot = gr.Plot(elem_id="bare_plot")
        bare.load(figure, None, plot)
    return bare


def first_plot_seconds(browser, url: str, selector: str) -> float:
    """Seconds from navigation to the first plot drawn, in a fresh browser context (nothing cached)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_selector(selector, timeout=120_000)
        return time.perf_counter() - start
    finally:
        context.close()


def bench_first_plot(loads: int = 5) -> tuple[float, float]:
    """Median seconds from page open to the first plot drawn: the app, and a bare Gradio page with one plot, each
    launched like the app (ui.launch) in this process, loaded alternately."""
    from app_fixtures import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    import app
    from ui.launch import launch

    bare = bare_page()
    ports = free_port(), free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=ports[0], quiet=True)
    launch(bare, prevent_thread_lock=True, server_port=ports[1], quiet=True)
    pages = (
        (f"http://127.0.0.1:{ports[0]}/", "#schedule_plot .main-svg"),
        (f"http://127.0.0.1:{ports[1]}/", "#bare_plot .main-svg"),
    )
    times: tuple[list[float], list[float]] = ([], [])
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for url, selector in pages:  # warm-up: the server's first answers, the browser's first start
                first_plot_seconds(browser, url, selector)
            for round_ in range(loads):  # app first, then bare first, …: neither always meets a warmer machine
                order = [0, 1] if round_ % 2 == 0 else [1, 0]
                for k in order:
                    url, selector = pages[k]
                    times[k].append(first_plot_seconds(browser, url, selector))
            browser.close()
    finally:
        bare.close()
        app.demo.close()
    return statistics.median(times[0]), statistics.median(times[1])


def bench_browser(count: int = 55, steps: int = 60) -> tuple[float, list[float]]:
    """Seconds from navigation to the first plot drawn, and ms per ArrowRight press until the page's player has drawn
    the new frame, after a `steps`-step run at batch 4 on digits-eps."""
    from app_fixtures import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    import app
    from ui.launch import launch

    port = free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#schedule_plot .main-svg", timeout=120_000)
            loaded = time.perf_counter() - start
            page.get_by_role("tab", name="Reverse sampling").click()
            for elem, value in (("#steps", str(steps)), ("#batch", "4")):
                page.locator(f"{elem} input[type=number]").fill(value)
                page.locator(f"{elem} input[type=number]").press("Enter")
            page.click("#run")
            page.wait_for_selector(f"#frame canvas[data-frame='{steps}']", timeout=600_000)
            page.locator("#frame_slider input[type=number]").fill("1")
            page.locator("#frame_slider input[type=number]").press("Enter")
            page.wait_for_selector("#frame canvas[data-frame='1']", timeout=60_000)
            page.locator("#frame canvas").click()  # the focus leaves the number box: the keys step frames
            page.evaluate(KEY_CLOCK_JS)
            latencies = []
            for _ in range(min(count, steps - 1)):
                drawn = page.evaluate("window.explorerFrames.draws")
                page.keyboard.press("ArrowRight")
                latencies.append(page.evaluate(DRAWN_JS, drawn + 1))
            browser.close()
    finally:
        app.demo.close()
    return loaded, latencies


def talk_seconds(browser, url: str) -> float:
    """Seconds from navigation to `url` (a talk link) until its frame is shown, in a fresh browser context."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function(FRAME_SHOWN_JS, arg=[TALK_FRAME, TALK_STEPS], timeout=600_000, polling=10)
        return time.perf_counter() - start
    finally:
        context.close()


def longest_task_of_run(browser, url: str, steps: int = LONG_RUN_STEPS) -> tuple[float, int]:
    """The longest main-thread task (ms) and the number of tasks over 50 ms, from pressing Run until the page's
    player has drawn the last frame of a `steps`-step run (digits-eps, batch 16)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        context.add_init_script(LONG_TASKS_JS)
        page = context.new_page()
        page.goto(f"{url}?tab=sampling&model=digits-eps&steps={steps}&batch=16")
        page.wait_for_selector("#run", state="visible", timeout=120_000)
        page.wait_for_function(f"() => document.querySelector('#steps input[type=number]')?.value === '{steps}'")
        started = page.evaluate("performance.now()")
        page.click("#run")
        page.wait_for_selector(f"#frame canvas[data-frame='{steps}']", timeout=1_200_000)
        tasks = [duration for start, duration in page.evaluate("window.__longTasks") if start >= started]
        return max(tasks, default=0.0), len(tasks)
    finally:
        context.close()


def bench_talk(loads: int) -> tuple[float, tuple[float, int]]:
    """Median seconds of a talk link until its frame is shown (after one warm-up: the model loaded once), and the
    longest task of a run (`longest_task_of_run`), on the app launched like `python app.py`."""
    from app_fixtures import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    import app
    from ui.launch import launch

    port = free_port()
    launch(app.demo, prevent_thread_lock=True, server_port=port, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            talk_seconds(browser, url + TALK_LINK)  # warm-up: the model's first load, the browser's first start
            times = [talk_seconds(browser, url + TALK_LINK) for _ in range(loads)]
            longest = longest_task_of_run(browser, url)
            browser.close()
    finally:
        app.demo.close()
    return statistics.median(times), longest


def load_average() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def bench_startup(timeout: float = 300) -> tuple[float, float]:
    """Seconds for `import app` alone, and from `python app.py` to the first page served (HTTP 200)."""
    import subprocess
    import urllib.request

    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(free_port())}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env, check=True, capture_output=True)
    imported = time.perf_counter() - start
    url = f"http://{env['GRADIO_SERVER_NAME']}:{env['GRADIO_SERVER_PORT']}/"
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200 and b"gradio" in response.read().lower():
                        return imported, time.perf_counter() - start
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"python app.py served nothing on {url} within {timeout:.0f} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--browser-only", action="store_true", help="only the page open and key press rows")
    parser.add_argument("--loads", type=int, default=5, help="page opens measured per page (median)")
    parser.add_argument("--talk-loads", type=int, default=3, help="talk links opened (median)")
    parser.add_argument("--steps", type=int, default=1000, help="steps of the run whose memory is measured")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", default="50,250,1000", help="step counts whose frame payload is measured")
    options = parser.parse_args()
    rows = []
    if options.browser_only:
        print_table(browser_rows(options.loads, options.talk_loads))
        return
    if not options.skip_startup:
        imported, served = bench_startup()
        rows.append(("startup: `import app` in a fresh process", f"{imported:.1f} s", "—"))
        rows.append(("startup: `python app.py` until the first page is served", f"{served:.1f} s", "—"))
    for T in (1000, 4000):
        median, size = bench_schedules(T)
        rows.append(
            (
                f"Schedules handler, 3 schedules, T = {T}",
                f"{median:.0f} ms median of 10; figure {size / 1024:.0f} KiB",
                "—",
            )
        )
    if (ROOT / "scripts" / "bench_handlers.py").is_file():
        sys.path.insert(0, str(ROOT / "scripts"))
        from bench_handlers import handler_rows

        rows += handler_rows()
    memory = bench_memory(options.steps, options.batch)
    rows.append(
        (
            f"stored run, digits-eps, {options.steps} steps × batch {options.batch}",
            f"compact run {memory['nbytes'] / MIB:.1f} MiB; RSS {memory['before'] / MIB:.0f} → "
            f"{memory['after'] / MIB:.0f} MiB (+{(memory['after'] - memory['before']) / MIB:.1f}); "
            f"run took {memory['seconds']:.0f} s",
            "—",
        )
    )
    for steps in (int(s) for s in options.frames.split(",") if s):
        size, held, total = bench_frame_bytes(steps)
        rows.append(
            (
                f"bytes sent to the page for client-side frames, digits-eps, batch 16, {steps} steps",
                f"{size / 1e6:.2f} MB ({held} of {total} frames held{'' if held >= total else ', rest on demand'})",
                "≤ ~8 MB, then a subset",
            )
        )
    if not options.skip_browser:
        rows += browser_rows(options.loads, options.talk_loads)
    print_table(rows)


def browser_rows(loads: int, talk_loads: int) -> list[tuple[str, str, str]]:
    """Page open → first plot (the app against a bare Gradio page), talk link → frame, the longest task of a run and
    ArrowRight → frame, in Chromium; the load average (1, 5, 15 min) before and after."""
    before = load_average()
    app_seconds, bare_seconds = bench_first_plot(loads)
    ratio = app_seconds / bare_seconds
    talk, (longest, long_tasks) = bench_talk(talk_loads)
    _loaded, latencies = bench_browser()
    return [
        ("load average (1 / 5 / 15 min) before → after the browser rows", f"{before} → {load_average()}", "—"),
        (f"page open → first plot drawn, the app (Chromium, median of {loads})", f"{app_seconds:.2f} s", "—"),
        (
            f"page open → first plot drawn, a bare Gradio page with one plot (median of {loads})",
            f"{bare_seconds:.2f} s",
            "—",
        ),
        ("the app's first plot / the bare page's", f"{ratio:.2f}×", f"≤ {FIRST_PLOT_GOAL}×"),
        (
            f"talk link `{TALK_LINK}` → frame {TALK_FRAME} shown (median of {talk_loads}, model already loaded)",
            f"{talk:.2f} s",
            f"≤ {TALK_GOAL_S} s (idle machine)",
        ),
        (
            f"longest main-thread task from Run until a {LONG_RUN_STEPS}-step run's last frame (digits-eps, batch 16)",
            f"{longest:.0f} ms ({long_tasks} tasks over 50 ms)",
            "—",
        ),
        (
            f"ArrowRight → new frame drawn in Chromium ({len(latencies)} presses, no server call)",
            f"p50 {percentile(latencies, 0.5):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms",
            f"p95 ≤ {KEY_GOAL_MS} ms",
        ),
    ]


def print_table(rows: list[tuple[str, str, str]]) -> None:
    import torch

    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}\n"
    )
    print("| measurement | result | goal |\n|---|---|---|")
    for name, value, goal in rows:
        print(f"| {name} | {value} | {goal} |")


if __name__ == "__main__":
    main()
