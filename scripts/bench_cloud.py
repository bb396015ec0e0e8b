"""Size and build time of the animated cloud (ui/cloud.py) for runs of the bundled moons model: prints a table.

    python scripts/bench_cloud.py [--threads N]

For each (steps, batch) it samples a run, then times `run_cloud` (the exact densities), `cloud_figure` and the
JSON that gr.Plot sends, and reports that JSON's size (frames included: the page adds them client-side).
"""

from __future__ import annotations

import argparse
import time

import torch

from explorer import load, sample
from explorer.data import exact_training_set
from explorer.figures.cloud import cloud_figure, run_cloud

CASES = ((50, 256), (200, 1024), (1000, 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, data = load("moons-eps"), exact_training_set("moons")
    print(f"torch threads {torch.get_num_threads()}")
    print("| steps | batch | frames | densities s | figure s | JSON s | JSON bytes | per frame |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for steps, batch in CASES:
        with torch.no_grad():
            compact = sample(model, num_inference_steps=steps, batch_size=batch, seed=0).compact()
        start = time.perf_counter()
        cloud = run_cloud(compact, data, highlighted=0)
        built = time.perf_counter()
        figure = cloud_figure(cloud, token="bench")
        drawn = time.perf_counter()
        text = figure.to_json()
        sent = time.perf_counter()
        frames = len(cloud.frames)
        print(
            f"| {steps} | {batch} | {frames} | {built - start:.2f} | {drawn - built:.2f} | {sent - drawn:.2f} | "
            f"{len(text):,} | {len(text) // frames:,} |"
        )


if __name__ == "__main__":
    main()
