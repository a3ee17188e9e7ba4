#!/usr/bin/env bash
# Reproduces experiments/results/async/ (about 19 minutes wall-clock on a shared 2-core CPU:
# 190 runs of 5-20 s each, mostly XLA compilation, two processes at a time). Every run is
# experiments.train (the one loop) of configs/async_synthetic.py:study with the fields of
# experiments/async_study.py:run_config.
#   phase tune : every method's grid at straggler slowdown S = 4, seed 0 (120 runs; the
#                grids of bi2clip-A+rate+comp, FedBuff and FedAsync are the heatmaps)
#   phase final: each method's best point at S = 1, 4, 16 on seeds 0 and 1 (84 runs, the
#                14 at S = 4 / seed 0 are reused from tuning)
#   phase report: tables.md, results.json, loss_vs_time_S*.png, loss_vs_steps_S4.png,
#                sensitivity_heatmap.png
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-runs/async_study}
mkdir -p "$RUNS"
for phase in tune final; do
  python -m experiments.async_study --workdir "$RUNS" --phase $phase --shard 0/2 &
  python -m experiments.async_study --workdir "$RUNS" --phase $phase --shard 1/2
  wait
done
python -m experiments.async_study --workdir "$RUNS" --phase report --out experiments/results/async
# Any single run is an ordinary command-line run; e.g. bi2clip-A+rate+comp at S = 16, seed 1
# (its config.json in $RUNS gives the fields; this reproduces its final eval loss 0.0325592):
#   python -m experiments.main --config configs/async_synthetic.py:study,rate,comp \
#     --workdir /tmp/a --config.time_budget=700 --config.eval_every=0 \
#     --config.eval_every_time=20 --config.chunk=5 --config.clock.straggler_slowdown=16 \
#     --config.seed=1 --config.clock.seed=1 --config.hparams.inner_lr=0.01 \
#     --config.hparams.outer_upper=0.01
