#!/usr/bin/env bash
# Re-runs experiments/results/translation/ under the study rules of experiments.sweep:
# FedAvg against Bi2Clip on the KJV -> Reina-Valera task (configs/bible_translation.py:study,
# 100 rounds, read at 25/50/100): each method's grid on tuning seed 0 (extended until the kept
# point is interior), the kept point on report seeds 1-5; every per-seed run exported here.
#   bash experiments/results/translation/run.sh
#   python -m experiments.report experiments/results/translation          # tables again
#   python -m experiments.report experiments/results/translation --check  # the rules
# Time on 2 CPU cores (measured at e600447): 23 runs of 53-127 s, about 36 minutes in all.
# README.md is the write-up, from report.md.
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-runs/translation_study}
python -m experiments.data.fetch bible-translation
python -m experiments.sweep --config configs/bible_translation.py:study --workdir "$RUNS"
rm -rf experiments/results/translation/runs experiments/results/translation/results.md
python -m experiments.report "$RUNS" --export experiments/results/translation
python -m experiments.report experiments/results/translation --check
# Greedy translations by seed 1 of each kept point, for reading by eye.
python experiments/results/translation/samples.py "$RUNS"/*/*/seed1 \
  > experiments/results/translation/samples.md
