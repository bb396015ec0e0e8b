"""Benchmark the app on this machine and print a Markdown table (copy it into docs/benchmarks.md).

    python scripts/bench_app.py [--skip-startup] [--skip-browser] [--steps 1000] [--batch 16]

Measures: startup (`import app`, and `python app.py` until the first page is served); the Schedules handler
(median of 10 calls) and its figure's JSON size for T = 1000 and 4000; the per-session memory of a stored run on
digits-eps (the compact run's bytes, process RSS before and after); and, in Chromium through Playwright, the
latency of 50 next-frame steps, from the click until the frame image's src changes.
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
# Resolves with the milliseconds from the click on "Next ▶" until the frame image's src changes.
NEXT_FRAME_JS = """
async () => {
  const src = () => document.querySelector('#frame img')?.getAttribute('src');
  const before = src();
  const start = performance.now();
  document.getElementById('next_frame').click();
  return await new Promise((resolve) => {
    const check = () => (src() !== before ? resolve(performance.now() - start) : setTimeout(check, 1));
    check();
  });
}
"""


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


def bench_browser(count: int = 50, steps: int = 60) -> list[float]:
    """Milliseconds per next-frame step in Chromium, after a `steps`-step run at batch 4 on digits-eps."""
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
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#schedule_plot .js-plotly-plot", timeout=120_000)
            page.get_by_role("tab", name="Reverse sampling").click()
            for elem, value in (("#steps", str(steps)), ("#batch", "4")):
                page.locator(f"{elem} input[type=number]").fill(value)
                page.locator(f"{elem} input[type=number]").press("Enter")
            page.click("#run")
            page.wait_for_selector(f"#frame_text:has-text('Frame {steps} of {steps}')", timeout=300_000)
            page.locator("#frame_slider input[type=number]").fill("1")
            page.locator("#frame_slider input[type=number]").press("Enter")
            page.wait_for_selector(f"#frame_text:has-text('Frame 1 of {steps}')", timeout=60_000)
            page.evaluate(NEXT_FRAME_JS)  # warm-up step, not counted
            latencies = [page.evaluate(NEXT_FRAME_JS) for _ in range(count)]
            browser.close()
    finally:
        app.demo.close()
    return latencies


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
    parser.add_argument("--steps", type=int, default=1000, help="steps of the run whose memory is measured")
    parser.add_argument("--batch", type=int, default=16)
    options = parser.parse_args()
    import torch

    rows = []
    if not options.skip_startup:
        imported, served = bench_startup()
        rows.append(("startup: `import app` in a fresh process", f"{imported:.1f} s"))
        rows.append(("startup: `python app.py` until the first page is served", f"{served:.1f} s"))
    for T in (1000, 4000):
        median, size = bench_schedules(T)
        rows.append(
            (f"Schedules handler, 3 schedules, T = {T}", f"{median:.0f} ms median of 10; figure {size / 1024:.0f} KiB")
        )
    memory = bench_memory(options.steps, options.batch)
    rows.append(
        (
            f"stored run, digits-eps, {options.steps} steps × batch {options.batch}",
            f"compact run {memory['nbytes'] / MIB:.1f} MiB; RSS {memory['before'] / MIB:.0f} → "
            f"{memory['after'] / MIB:.0f} MiB (+{(memory['after'] - memory['before']) / MIB:.1f}); "
            f"run took {memory['seconds']:.0f} s",
        )
    )
    if not options.skip_browser:
        latencies = bench_browser()
        rows.append(
            (
                f"next-frame step in Chromium ({len(latencies)} steps, click → new image src)",
                f"p50 {percentile(latencies, 0.5):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms",
            )
        )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}\n"
    )
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
