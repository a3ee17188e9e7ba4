#!/usr/bin/env bash
# Reproduces experiments/results/synthetic/ (about 20 minutes on a 2-core CPU).
# Four noise settings x 8 methods, each tuned on its grid (configs/synthetic.py,
# STUDY_GRIDS) on seed 0, then 3 seeds at the best point.
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-runs/synthetic_study}
for a in 1.1 1.5 1.9; do
  python -m experiments.sweep --config configs/synthetic.py:study \
    --workdir "$RUNS/stable_alpha$a" --set noise.distribution=stable --set noise.alpha=$a
done
python -m experiments.sweep --config configs/synthetic.py:study \
  --workdir "$RUNS/gaussian" --set noise.distribution=gaussian
python -m experiments.report --combine experiments/results/synthetic \
  "$RUNS/stable_alpha1.1" "$RUNS/stable_alpha1.5" "$RUNS/stable_alpha1.9" "$RUNS/gaussian"
for d in "$RUNS"/*/; do
  n=$(basename "$d"); mkdir -p experiments/results/synthetic/$n
  cp "$d/report.md" "$d/results.json" "$d/sweep.json" "$d"/curves_*.png experiments/results/synthetic/$n/
done
