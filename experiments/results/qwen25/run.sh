#!/usr/bin/env bash
# Reproduces experiments/results/qwen25/: Qwen2.5-0.5B fine-tuned on the Gutenberg-8 works, one
# work per node (configs/qwen25.py:study). Each method's learning-rate grid on seed 0, then the
# best point on seeds 1 and 2 (the sweep's tune-first protocol). 3-13 minutes a run on 2 CPU
# cores, plus about 7 minutes once to encode the windows through the frozen blocks.
# Add diloco to --methods for the adaptive baseline (its grid is in the config; not run here).
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-runs/qwen25_study}
python -m experiments.data.fetch --config configs/qwen25.py:study
python -m experiments.sweep --config configs/qwen25.py:study --workdir "$RUNS" \
  --methods fedavg,bi2clip
cp "$RUNS/report.md" "$RUNS/results.json" "$RUNS/sweep.json" "$RUNS"/curves_*.png \
  experiments/results/qwen25/
