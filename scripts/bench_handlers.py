"""Benchmark the Schedules and Posterior handlers, as a drag on their sliders calls them; print a Markdown table.

    python scripts/bench_handlers.py [--repeats 20] [--threads N]

Each row is the median of `repeats` calls (after three warm-up calls) of the handler plus the JSON of its figures,
which Gradio builds in the same request (`gr.Plot` calls `to_json()`). Run it on an idle machine: the load average
is printed above the table. `handler_rows()` is imported by scripts/bench_app.py. Nothing here is asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SCHEDULE_GOAL_MS = 20
POSTERIOR_GOAL_MS = 50


def median_ms(call: Callable[[], Sequence], repeats: int) -> tuple[float, float, float]:
    """Median milliseconds of `call()`, of the JSON of the figures it returns (anything with `to_json`), and the
    process CPU time of both (all threads): on a busy machine the CPU time is the better guess of the idle wall time."""
    for _ in range(3):
        call()
    handler, serialise, cpu = [], [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        outputs = call()
        middle = time.perf_counter()
        for output in outputs:
            if hasattr(output, "to_json"):
                output.to_json()
        end = time.perf_counter()
        cpu.append(1000 * (time.process_time() - cpu_start))
        handler.append(1000 * (middle - start))
        serialise.append(1000 * (end - middle))
    return statistics.median(handler), statistics.median(serialise), statistics.median(cpu)


def schedules_call(T: int) -> Callable[[], Sequence]:
    """The Schedules handler with three schedules at T (linear, cosine, linear with zero terminal SNR), t = T/2."""
    from ui import schedules
    from ui.controls import ScheduleValues

    view = schedules.ViewValues(show2=True, show3=True, t=T // 2, num_steps=50)
    slots = (ScheduleValues(T=T), ScheduleValues("squaredcos_cap_v2", T=T), ScheduleValues(T=T, zero_snr=True))
    return lambda: schedules.update_schedules(view, *slots)


def posterior_call(source: str) -> Callable[[], Sequence]:
    """The Posterior handler on the default linear schedule at t = 200 (2-D data: a jump of Δ = 10)."""
    from ui import posterior
    from ui.controls import ScheduleValues

    values = posterior.PosteriorValues(source=source, index=3, t=200, pixel=120, step=10)
    return lambda: posterior.update_posterior(values, ScheduleValues())


def _row(name: str, call: Callable[[], Sequence], goal_ms: float, repeats: int) -> tuple[str, str, str]:
    handler, serialise, cpu = median_ms(call, repeats)
    total = handler + serialise
    measured = (
        f"{total:.1f} ms (handler {handler:.1f} + figure JSON {serialise:.1f}; CPU {cpu:.1f} ms), median of {repeats}"
    )
    return name, measured, f"≤ {goal_ms} ms" + ("" if total <= goal_ms else " (missed)")


def handler_rows(repeats: int = 20) -> list[tuple[str, str, str]]:
    """(name, measured, goal) for the Schedules handler at T = 1000 and 4000 and the Posterior handler on digits
    and on moons; each measured value is the median of `repeats` calls, figure JSON included."""
    rows = [
        _row(f"Schedules handler, 3 schedules, T = {T}", schedules_call(T), SCHEDULE_GOAL_MS, repeats)
        for T in (1000, 4000)
    ]
    for source in ("digit", "moons"):
        rows.append(_row(f"Posterior handler, {source}, t = 200", posterior_call(source), POSTERIOR_GOAL_MS, repeats))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="calls per row (median); at least 20 is sensible")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)  # on a busy machine, 2 OpenMP threads can spin far longer than 1 works
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    import torch

    threads = torch.get_num_threads()
    print(f"Load average before (1, 5, 15 min): {load} on {os.cpu_count()} CPUs; torch threads: {threads}\n")
    print("| handler | measured | goal |")
    print("|---|---|---|")
    for name, measured, goal in handler_rows(args.repeats):
        print(f"| {name} | {measured} | {goal} |")


if __name__ == "__main__":
    main()
