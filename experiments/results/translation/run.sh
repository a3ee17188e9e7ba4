#!/usr/bin/env bash
# The translation comparison in README.md here: FedAvg vs Bi2Clip on the KJV -> Reina-Valera
# task (configs/bible_translation.py:study), one seed, two points per method.
# Needs: python -m experiments.data.fetch bible-translation.  Run from the repository root.
set -euo pipefail
OUT=${OUT:-/tmp/translation_runs}
run() {  # name, extra flags...
  local name=$1; shift
  python -m experiments.main --config configs/bible_translation.py:study \
    --workdir "$OUT/$name" --config.progress=false "$@" > "$OUT/$name.log" 2>&1
  echo "$name done"
}
mkdir -p "$OUT"
run fedavg_lr0.3 --config.method=fedavg --config.hparams.inner_lr=0.3
run bi2clip_lr0.1_u0.01 --config.method=bi2clip --config.hparams.inner_lr=0.1 --config.hparams.outer_upper=0.01
run fedavg_lr1.0 --config.method=fedavg --config.hparams.inner_lr=1.0
run bi2clip_lr0.1_u0.03 --config.method=bi2clip --config.hparams.inner_lr=0.1 --config.hparams.outer_upper=0.03
python experiments/results/translation/summarize.py "$OUT" > experiments/results/translation/results.md
