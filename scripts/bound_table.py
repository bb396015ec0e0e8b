"""The variational bound of every bundled model, in bits/dim, on training and held-out data: a Markdown table.

    python scripts/bound_table.py [--digits 32] [--points 256] [--seed 0] [--threads 1]

For each data set: its bundled models and the exact denoiser of its training set, each with σ² = β̃_t (fixed_small)
and σ² = β_t (fixed_large); every one of the T = 1,000 terms (ui.bound.measure, explorer.vlb). Digits: 8-bit
discretized decoder (a probability: bits/dim as papers report them); points: a Gaussian density (bits/dim of a
density, can be negative). Mean ± standard error over the examples. Writes docs/data/bound.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.data import Dataset  # noqa: E402
from explorer.diffusion.posterior import VarianceType  # noqa: E402
from explorer.figures.bound import VARIANCE_NAMES  # noqa: E402
from ui.bound import SPLITS, measure  # noqa: E402

OUT = ROOT / "docs" / "data" / "bound.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=32, help="digits per split")
    parser.add_argument("--points", type=int, default=256, help="2-D points per split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the x_t draws")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print("| data | model | variance | training (bits/dim) | held-out (bits/dim) | examples | seconds |")
    print("|---|---|---|---:|---:|---:|---:|")
    for dataset in Dataset:
        count = args.digits if dataset is Dataset.DIGITS else args.points
        start = time.perf_counter()
        results = measure(dataset, args.seed, count)
        seconds = time.perf_counter() - start
        by_row: dict[tuple[str, str], dict] = {}
        for split in SPLITS:
            for bound in results[split]:
                row = by_row.setdefault(
                    (bound.model, bound.variance.value),
                    {
                        "data": dataset.value,
                        "model": bound.model,
                        "variance": bound.variance.value,
                        "likelihood": bound.likelihood.value,
                        "dims": bound.dims,
                        "examples": count,
                        "seed": args.seed,
                    },
                )
                row[split] = {
                    "bits_per_dim": bound.mean_bits_per_dim(),
                    "standard_error": bound.standard_error(),
                    "decoder_bits_per_dim": float(bound.decoder.mean() / (bound.dims * math.log(2))),
                    "prior_bits_per_dim": float(bound.prior.mean() / (bound.dims * math.log(2))),
                }
        for row in by_row.values():
            cells = [f"{row[s]['bits_per_dim']:.4g} ± {row[s]['standard_error']:.2g}" for s in SPLITS]
            variance = VARIANCE_NAMES[VarianceType(row["variance"])]
            print(
                f"| {dataset.value} | {row['model']} | {variance} | {cells[0]} | {cells[1]} | {count} | {seconds:.0f} |"
            )
            rows.append(row)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"splits": list(SPLITS), "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
