#!/bin/bash
# Train the twin models of the Memorization view: for each data set and N, twins a and b on the disjoint halves
# `explorer.data.twin_half(data, N, a|b)`, with the same seed (same initial weights, minibatches, noise, timesteps),
# two processes at a time, one torch thread each. Usage (from the repository root):
#     nice bash tools/train_twins.sh [STEPS] [SIZES...]
# 2-D (DATASETS="moons ring", the default): the small point MLP below, 15000 steps, N = 4 16 64 256 1024 4096.
# Digits (DATASETS=digits): the bundled digits UNet (160k parameters, 16×16), 15000 steps (about 10 minutes a pair on a
# 2-core CPU), N = 4 16 64 256 1024 2000 (2,000 is the largest half of the 4,000 training digits).
# Logs go to $LOGS (default /tmp/twin-logs); then `PYTHONPATH=. python scripts/memorization.py` measures them.
set -euo pipefail
DATASETS=${DATASETS:-"moons ring"}
if [ "$DATASETS" = digits ]; then
  STEPS=${1:-15000}; DEFAULT_SIZES="4 2000 16 1024 64 256"
  RECIPE="--batch-size 64 --lr 2e-3 --warmup-steps 200 --ema-decay 0.999 --lr-decay cosine --log-every 500"
else
  STEPS=${1:-15000}; DEFAULT_SIZES="4 4096 16 1024 64 256"
  RECIPE="--batch-size 256 --lr 3e-3 --warmup-steps 200 --ema-decay 0.999 --lr-decay cosine --log-every 2500
    --hidden-dim 32 --hidden-layers 3 --time-embed-dim 16"
fi
shift || true
SIZES=${*:-$DEFAULT_SIZES}
PYTHON=${PYTHON:-python}
LOGS=${LOGS:-/tmp/twin-logs}
mkdir -p "$LOGS"
for n in $SIZES; do
  for data in $DATASETS; do
    for half in a b; do
      out=$(printf "pretrained/twins/%s-n%04d-%s" "$data" "$n" "$half")
      # shellcheck disable=SC2086  # RECIPE is a list of options
      PYTHONPATH=. "$PYTHON" -m tools.train --data "$data" --prediction epsilon --steps "$STEPS" --seed 0 \
        --out "$out" --train-size "$n" --subset "$half" --threads 1 $RECIPE > "$LOGS/$(basename "$out").log" 2>&1 &
    done
    wait
  done
done
