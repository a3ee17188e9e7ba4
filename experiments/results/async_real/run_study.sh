#!/usr/bin/env bash
# Reproduces experiments/results/async_real/ (the asynchronous image and language studies,
# issue 12 items 3-4). Every run is experiments.train (the one loop, async engine) of
# configs/async_fashion_mnist.py:study or configs/async_movie_reviews.py:study with the fields
# of experiments/async_study.py:run_config. Per family:
#   phase tune : every method's grid at straggler slowdown S = 4 on seed 0 (fashion_mnist 60
#                runs, movie_reviews 84; the grids are the robustness sweep)
#   phase final: each method's kept point on seeds 1 and 2 (24 runs; seed 0 is reused)
#   phase report: tables.md, results.json, accuracy_vs_time_S4.png, accuracy_vs_steps_S4.png,
#                robustness_boxplot.png, robustness_heatmaps.png
# Two processes per family, both families at once (4 processes), niced; see README.md for
# the wall-clock it took on a shared 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NICE=${NICE:-10}
fam_study() {  # family
  local fam=$1 runs=${RUNS_PREFIX:-runs/async_}$1
  mkdir -p "$runs"
  for phase in tune final; do
    nice -n "$NICE" python -m experiments.async_study --family "$fam" --workdir "$runs" \
      --phase $phase --shard 0/2 &
    nice -n "$NICE" python -m experiments.async_study --family "$fam" --workdir "$runs" \
      --phase $phase --shard 1/2
    wait
  done
  python -m experiments.async_study --family "$fam" --workdir "$runs" --phase edges
  python -m experiments.async_study --family "$fam" --workdir "$runs" --phase report \
    --out "experiments/results/async_real/$fam"
}
fam_study movie_reviews > "${LOG_PREFIX:-/tmp/async_real_}movie_reviews.log" 2>&1 &
fam_study fashion_mnist > "${LOG_PREFIX:-/tmp/async_real_}fashion_mnist.log" 2>&1 &
wait
