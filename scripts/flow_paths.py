"""How curved the exact paths of rectified flow are on the bundled 2-D sets, and what Euler steps along them reach.

    python scripts/flow_paths.py [--paths K] [--seed S] [--threads N]

For K starting noises ε ~ N(0, I) (seeded), `explorer.diffusion.flow_paths` integrates dx/dσ = u*(x, σ) of the
exact training set from σ = 1 to 0 and prints, per data set: the gap between each path and its straight chord
(1 − σ) x₀* + σ ε (median and largest), the path's length over the chord's (median), the RMS distance from the
exact endpoints after n Euler steps along u*, and the fewest steps measured within EULER_TOLERANCE, with the time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from explorer.data import Dataset, exact_training_set
from explorer.diffusion.flow_paths import EULER_TOLERANCE, flow_paths

SHOWN_STEPS = (1, 4, 16, 64, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=64, help="starting noises (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.paths} paths from ε ~ N(0, I), seed {args.seed}, torch threads {torch.get_num_threads()}\n")
    header = " | ".join(f"Euler {n}" for n in SHOWN_STEPS)
    print(f"| data | gap median | gap max | length ÷ chord | {header} | steps within {EULER_TOLERANCE:g} | s |")
    print("|---" * (6 + len(SHOWN_STEPS)) + "|")
    for dataset in (Dataset.MOONS, Dataset.RING):
        eps = torch.randn(args.paths, 2, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
        began = time.perf_counter()
        paths = flow_paths(exact_training_set(dataset), eps)
        seconds = time.perf_counter() - began
        errors = dict(zip(paths.euler_steps.tolist(), paths.euler_error.tolist(), strict=True))
        cells = " | ".join(f"{errors[n]:.3g}" for n in SHOWN_STEPS)
        print(
            f"| {dataset.value} | {np.median(paths.gap):.3g} | {paths.gap.max():.3g} | "
            f"{np.median(paths.length_ratio):.3g} | {cells} | {paths.steps_to_reach()} | {seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
