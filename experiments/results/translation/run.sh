#!/usr/bin/env bash
# The translation comparison in README.md here: FedAvg vs Bi2Clip on the KJV -> Reina-Valera
# task (configs/bible_translation.py:study). A learning-rate grid per method (Bi2Clip also
# over the outer threshold u), widened until the best point is interior, on seed 0; the
# best point of each on seeds 1 and 2. Each run takes 1.5-6 minutes on 2 CPU cores.
# Needs: python -m experiments.data.fetch bible-translation.  Run from the repository root.
set -euo pipefail
OUT=${OUT:-/tmp/translation_runs}
run() {  # name, extra flags...
  local name=$1; shift
  python -m experiments.main --config configs/bible_translation.py:study \
    --workdir "$OUT/$name" --config.progress=false "$@" > "$OUT/$name.log" 2>&1
  echo "$name done"
}
fedavg() { run "fedavg_lr$1${2:+_seed$2}" --config.method=fedavg --config.hparams.inner_lr="$1" \
  --config.seed="${2:-0}"; }
bi2clip() { run "bi2clip_lr$1_u$2${3:+_seed$3}" --config.method=bi2clip \
  --config.hparams.inner_lr="$1" --config.hparams.outer_upper="$2" --config.seed="${3:-0}"; }
mkdir -p "$OUT"
# Seed 0: the grids (first pass: fedavg 0.3, 1.0; bi2clip lr 0.1 with u 0.01, 0.03).
for lr in 0.3 0.6 1.0 3.0; do fedavg $lr; done
for u in 0.003 0.01 0.03; do bi2clip 0.1 $u; bi2clip 0.3 $u; done
bi2clip 1.0 0.01
bi2clip 3.0 0.01
# Seeds 1 and 2: FedAvg's best point (lr 1.0) and Bi2Clip's (lr 1.0, u 0.01).
for s in 1 2; do fedavg 1.0 $s; bi2clip 1.0 0.01 $s; done
# Bi2Clip lr 0.1, u 0.01 (the first pass's best) on seeds 1 and 2 too:
for s in 1 2; do bi2clip 0.1 0.01 $s; done
python experiments/results/translation/summarize.py "$OUT" > experiments/results/translation/results.md
