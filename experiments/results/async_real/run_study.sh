#!/usr/bin/env bash
# Re-runs experiments/results/async_real/ (the asynchronous image and language studies) under
# the study rules and regenerates their tables and plots:
#   bash experiments/results/async_real/run_study.sh
#   FAMILIES=fashion_mnist bash experiments/results/async_real/run_study.sh   # one family
# Every run is experiments.engines.loop (the one loop, async engine) of
# configs/async_fashion_mnist.py:study or configs/async_movie_reviews.py:study with the fields
# of experiments/async_study/jobs.py:run_config; the study table is
# experiments/async_study/study.py (FAMILIES["fashion_mnist"], FAMILIES["movie_reviews"]).
# Per family:
#   tune  : every method's grid at straggler slowdown S = 4 on tuning seed 0 (60 simulated s);
#           a kept point on a grid edge extends its axis until it is interior (FedAsync's
#           alpha is bounded by 1). The second pass extends the grids whose cells the other
#           shards had not finished in the first.
#   final : each kept point at S = 1, 4 and 16 on fresh report seeds: 1-5, and 1-8 for the
#           methods of claim 3b; 120 simulated s, read at 15/30/60/120 s.
#   report: sweep.json and every per-seed run exported to async_real/<family>/, report.md
#           (n and 95% CIs, Welch p against sync Bi²Clip and for every claim, time to target,
#           staleness, robustness over the grids), curves_eval_accuracy_S*.png,
#           robustness_*.png; then the check of the rules over both families.
# Tables and plots again from the stored runs, and the check alone:
#   python -m experiments.report experiments/results/async_real
#   python -m experiments.report experiments/results/async_real --check
# Time (estimated, not yet run; per-run CPU timed on this 2-core machine under load):
#   fashion_mnist: 74 grid cells + ~20 extensions (45-55 CPU-s each) and 234 report runs
#     (3 severities x (6 methods x 8 seeds + 6 x 5); 55-58 CPU-s each): ~18,000 CPU-s, about
#     2.5 hours with 2 shards on an idle 2-core machine;
#   movie_reviews: 85 cells + ~20 extensions and 234 report runs (14-20 CPU-s each once a
#     seed's sentences are encoded; ~120 CPU-s for the first run of each of the 9 seeds):
#     ~6,500 CPU-s, about 1 hour.
# Rerunning resumes: finished runs are read back. README.md is the write-up of the pre-rules
# study; rewrite it from the reports.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NICE=${NICE:-10}
SHARDS=${SHARDS:-2}
OUT=experiments/results/async_real
fam_study() {  # one family, SHARDS processes
  local fam=$1 runs=${RUNS_PREFIX:-runs/async_}$1
  study() {
    nice -n "$NICE" python -m experiments.async_study --family "$fam" --workdir "$runs" \
      --out "$OUT/$fam" "$@"
  }
  for phase in tune tune final; do
    for ((i = 0; i < SHARDS; i++)); do study --phase "$phase" --shard "$i/$SHARDS" & done
    wait
  done
  # The pre-rules study's outputs (3 seeds, the tuning seed among them, no CIs).
  rm -f "$OUT/$fam"/tables.md "$OUT/$fam"/accuracy_vs_*.png
  study --phase report > /dev/null
}
FAMILIES=${FAMILIES:-"movie_reviews fashion_mnist"}
for fam in $FAMILIES; do
  fam_study "$fam" > "${LOG_PREFIX:-/tmp/async_real_}$fam.log" 2>&1
done
python -m experiments.report "$OUT" --check
