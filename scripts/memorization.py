"""Measure the shipped twin models against training-set size N and write the curves the Memorization tab reads.

    PYTHONPATH=. python scripts/memorization.py [--data moons ring] [--samples 1000] [--seed 7]
                                                [--out docs/data/memorization.json]

For each data set and each N with both twins shipped (`pretrained/twins/`), it draws `--samples` samples of each
twin and of each half's exact denoiser from the same noise (DDIM, η = 0, `explorer.models.twins`), and prints and
writes, per N:

    copy        fraction of the twins' samples within COPY_FRACTION × (their training set's median spacing) of one
                of their own training examples (`explorer.memorization`)
    chance      the same fraction for fresh draws from the data distribution: what a model that never saw its
                training set would score
    own/other   median distance of a sample to the nearest example of its own half, and of the other half: equal
                when a model does not prefer its own data
    agree       fraction of noises from which the twins' samples are closer to each other than each is to its own
                nearest training example
    exact_copy, exact_agree   the same for the exact denoisers of the two halves

and the exponents p of median ‖a − b‖ ∝ N^p and median own ∝ N^p over the largest N (`distance_slopes`): agreement
at large N needs the twins to come together faster than the nearest training example comes closer.

Then it prints the two checks of the issue: at the smallest N, ≥ 90 % of each twin's samples copy; at the largest N
the twins agree on most (> 50 %) samples. Nothing is trained here: the twins come from `tools/train_twins.sh`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from explorer.data import Dataset, digits, points
from explorer.memorization import COPY_FRACTION, SLOPE_SIZES, chance_copy_fraction, compare_twins, distance_slopes
from explorer.models.twins import TWIN_SPACING, TWIN_STEPS, twin_samples, twin_sizes

COPY_TARGET = 0.9  # at the smallest N, at least this fraction of each twin's samples copy
AGREE_TARGET = 0.5  # at the largest N, the twins agree on more than this fraction ("most samples")
FRESH_SEED = 99  # fresh 2-D draws for the chance copy fraction (the twin halves use explorer.data.TWIN_SEED)
FRESH_POINTS = 4000


def fresh_data(dataset: Dataset) -> torch.Tensor:
    """Draws from the data distribution that no twin trained on: new 2-D points, or the held-out digits."""
    if dataset is Dataset.DIGITS:
        return digits("held_out").images
    return points(dataset, FRESH_POINTS, FRESH_SEED)


def measure(dataset: Dataset, samples: int, seed: int, sizes: list[int] | None = None) -> dict:
    """The curves of one data set: one entry per N of `sizes` (default: every shipped N, ascending)."""
    sizes = twin_sizes(dataset) if sizes is None else sizes
    fresh = fresh_data(dataset)
    rows: dict[str, list] = {
        key: []
        for key in (
            "sizes",
            "copy_fraction",
            "copy_fraction_a",
            "copy_fraction_b",
            "chance_copy_fraction",
            "agreement",
            "exact_copy_fraction",
            "exact_agreement",
            "median_twin_distance",
            "median_own_distance",
            "median_other_distance",
            "exact_median_own_distance",
            "median_spacing",
        )
    }
    for n in sizes:
        drawn = twin_samples(dataset, n, count=samples, seed=seed)
        model = compare_twins(drawn.model_a, drawn.model_b, drawn.train_a, drawn.train_b)
        exact = compare_twins(drawn.exact_a, drawn.exact_b, drawn.train_a, drawn.train_b)
        rows["sizes"].append(n)
        rows["copy_fraction"].append(model.copy_fraction)
        rows["copy_fraction_a"].append(float(model.copies_a.mean()))
        rows["copy_fraction_b"].append(float(model.copies_b.mean()))
        rows["chance_copy_fraction"].append(chance_copy_fraction(fresh, drawn.train_a))
        rows["agreement"].append(model.agreement)
        rows["exact_copy_fraction"].append(exact.copy_fraction)
        rows["exact_agreement"].append(exact.agreement)
        rows["median_twin_distance"].append(float(np.median(model.twin)))
        rows["median_own_distance"].append(float(np.median(np.concatenate([model.own_a, model.own_b]))))
        rows["median_other_distance"].append(float(np.median(np.concatenate([model.other_a, model.other_b]))))
        rows["exact_median_own_distance"].append(float(np.median(np.concatenate([exact.own_a, exact.own_b]))))
        rows["median_spacing"].append(0.5 * (model.spacing_a + model.spacing_b))
    return rows


def print_table(name: str, rows: dict) -> None:
    print(f"\n{name}: copy = within {COPY_FRACTION:g} × median spacing of its own training set")
    print(
        "     N   copy  (a / b)        chance  agree   exact copy  exact agree  median ‖a−b‖  median own  "
        "median other  spacing"
    )
    for i, n in enumerate(rows["sizes"]):
        print(
            f"{n:6d}  {rows['copy_fraction'][i]:5.3f} ({rows['copy_fraction_a'][i]:.3f} / "
            f"{rows['copy_fraction_b'][i]:.3f})  {rows['chance_copy_fraction'][i]:6.3f}  {rows['agreement'][i]:5.3f}"
            f"   {rows['exact_copy_fraction'][i]:10.3f}  {rows['exact_agreement'][i]:11.3f}"
            f"  {rows['median_twin_distance'][i]:12.4f}  {rows['median_own_distance'][i]:10.4f}"
            f"  {rows['median_other_distance'][i]:12.4f}"
            f"  {rows['median_spacing'][i]:7.4f}"
        )


def checks(rows: dict) -> dict:
    """The issue's two checks on measured curves: smallest-N copying, largest-N agreement."""
    if not rows["sizes"]:
        return {"copies_at_smallest_n": False, "agree_at_largest_n": False}
    smallest = min(rows["copy_fraction_a"][0], rows["copy_fraction_b"][0])
    return {
        "copies_at_smallest_n": bool(smallest >= COPY_TARGET),
        "agree_at_largest_n": bool(rows["agreement"][-1] > AGREE_TARGET),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["moons", "ring", "digits"], choices=[d.value for d in Dataset])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="docs/data/memorization.json")
    args = parser.parse_args(argv)
    if not 1 <= args.samples <= 10_000:
        parser.error(f"--samples must be an integer in [1, 10000]; got {args.samples}")
    torch.set_num_threads(1)
    start = time.perf_counter()
    result: dict = {
        "copy_fraction_of_spacing": COPY_FRACTION,
        "copy_target": COPY_TARGET,
        "agree_target": AGREE_TARGET,
        "samples": args.samples,
        "seed": args.seed,
        "sampler": f"DDIM, eta 0, {TWIN_STEPS} steps, {TWIN_SPACING} spacing",
        "command": " ".join(["PYTHONPATH=. python scripts/memorization.py", *(sys.argv[1:] if argv is None else argv)]),
        "datasets": {},
    }
    for name in args.data:
        dataset = Dataset.parse(name)
        rows = measure(dataset, args.samples, args.seed)
        slopes = distance_slopes(rows)
        result["datasets"][dataset.value] = {**rows, "checks": checks(rows), "slopes": slopes}
        print_table(dataset.value, rows)
        if slopes:
            print(
                f"  over the {SLOPE_SIZES} largest N: median ‖a−b‖ ∝ N^{slopes['median_twin_distance']:+.2f}, "
                f"median own ∝ N^{slopes['median_own_distance']:+.2f}"
            )
        check = result["datasets"][dataset.value]["checks"]
        if rows["sizes"]:
            print(
                f"  smallest N = {rows['sizes'][0]}: each twin copies ≥ {COPY_TARGET:.0%}: "
                f"{'yes' if check['copies_at_smallest_n'] else 'NO'}; largest N = {rows['sizes'][-1]}: twins agree "
                f"on > {AGREE_TARGET:.0%}: {'yes' if check['agree_at_largest_n'] else 'NO'}"
            )
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out} in {result['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
