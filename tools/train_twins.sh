#!/bin/bash
# Train the twin models of the Memorization view: for each data set and N, twins a and b on the disjoint halves
# `explorer.data.twin_half(data, N, a|b)`, with the same seed (same initial weights, minibatches, noise, timesteps),
# two processes at a time, one torch thread each. Usage (from the repository root):
#     nice bash tools/train_twins.sh [STEPS] [SIZES...]      default: 15000 steps, N = 4 16 64 256 1024 4096
# Logs go to $LOGS (default /tmp/twin-logs); then `PYTHONPATH=. python scripts/memorization.py` measures them.
set -euo pipefail
STEPS=${1:-15000}
shift || true
SIZES=${*:-"4 4096 16 1024 64 256"}
PYTHON=${PYTHON:-python}
LOGS=${LOGS:-/tmp/twin-logs}
mkdir -p "$LOGS"
for n in $SIZES; do
  for data in moons ring; do
    for half in a b; do
      out=$(printf "pretrained/twins/%s-n%04d-%s" "$data" "$n" "$half")
      PYTHONPATH=. "$PYTHON" -m tools.train --data "$data" --prediction epsilon --steps "$STEPS" --seed 0 \
        --out "$out" --batch-size 256 --lr 3e-3 --warmup-steps 200 --ema-decay 0.999 --lr-decay cosine \
        --train-size "$n" --subset "$half" --hidden-dim 32 --hidden-layers 3 --time-embed-dim 16 \
        --threads 1 --log-every 2500 > "$LOGS/$(basename "$out").log" 2>&1 &
    done
    wait
  done
done
