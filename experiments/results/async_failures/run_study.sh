#!/usr/bin/env bash
# Runs experiments/results/async_failures/ (quality and goodput against the failure rate) under
# the study rules and writes its reports:
#   bash experiments/results/async_failures/run_study.sh
#   FAMILIES=failures_synthetic bash experiments/results/async_failures/run_study.sh  # one family
# Every run is experiments.engines.loop (the one loop, async engine) of
# configs/async_synthetic.py:study or configs/async_movie_reviews.py:study with the fields of
# experiments/async_study/jobs.py:run_config; the study table is experiments/async_study/study.py
# (FAMILIES["failures_synthetic"], FAMILIES["failures_movie_reviews"]). The condition is the
# failure rate lambda (clock.failure_rate, per second of a worker's up time) at a fixed rejoin
# rate mu (clock.rejoin_rate; synthetic 0.05, mean down time 20 s = 4 jobs; movie reviews 0.2,
# 5 s = 2.5 jobs), no stragglers (S = 1): a worker is down lambda / (lambda + mu) of the time,
# 0 / 5% / 20% / 50% at lambda = 0, 0.0025, 0.0125, 0.05 (synthetic) and 0, 0.01, 0.05, 0.2
# (movie reviews). Methods: sync-bi2clip (wait-for-all; a lost job is redone), quorum-bi2clip
# (Q = 4 of a cap K = 8, grace window median + 3 MAD), fedbuff (K = 4), bi2clip-A (K = 4).
# Per family:
#   tune  : every method's learning-rate line (3 points) at 20% of time down on tuning seed 0
#           (synthetic 700, movie reviews 60 simulated s); a kept point on a grid edge extends
#           its axis until it is interior. The second pass extends the grids whose cells the
#           other shards had not finished in the first.
#   final : each kept point at the 4 failure rates on report seeds 1-5 (synthetic 700, movie
#           reviews 120 simulated s).
#   report: sweep.json and every per-seed run exported to async_failures/<family>/, report.md
#           (per failure rate: n and 95% CIs, Welch p against wait-for-all; quality and
#           goodput against the failure rate, quality_goodput.png; the claims F1-F4 by Welch's
#           test; time to target, staleness, grids); then the check of the rules over both.
# Tables and plots again from the stored runs, and the check alone:
#   python -m experiments.report experiments/results/async_failures
#   python -m experiments.report experiments/results/async_failures --check
# Time (estimated, not yet run as a whole; single runs timed on this 2-core machine shared
# with other jobs, load 6-9): per family ~16 tuning runs (12 grid cells + ~4 extensions) and
# 80 report runs (4 methods x 4 failure rates x 5 seeds).
#   failures_synthetic: 14 CPU-s (15 s wall) a run without failures, 32-34 CPU-s (36-63 s
#     wall) with failures, 13 CPU-s for wait-for-all at 50% down (9 rounds): ~96 runs,
#     ~2,700 CPU-s;
#   failures_movie_reviews: 15 CPU-s (21-23 s wall) without failures, 13-30 CPU-s (21-46 s
#     wall) with failures, one outlier of 124 CPU-s (184 s wall) during a load spike; the
#     sentences' MiniLM encodings are cached in ~/.cache/tailopt (a seed not encoded yet adds
#     ~120 CPU-s once): ~96 runs, ~2,600 CPU-s.
#   Both: ~5,300 CPU-s, about 45 minutes (0.7-1.5 h) with 2 shards on an idle 2-core
#   machine; about twice that on a loaded one. Rerunning resumes: finished runs are read back.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NICE=${NICE:-10}
SHARDS=${SHARDS:-2}
OUT=experiments/results/async_failures
fam_study() {  # one family, SHARDS processes
  local fam=$1 runs=${RUNS_PREFIX:-runs/async_}$1
  study() {
    nice -n "$NICE" python -m experiments.async_study --family "$fam" --workdir "$runs" \
      --out "$OUT/${fam#failures_}" "$@"
  }
  for phase in tune tune final; do
    for ((i = 0; i < SHARDS; i++)); do study --phase "$phase" --shard "$i/$SHARDS" & done
    wait
  done
  study --phase report > /dev/null
}
FAMILIES=${FAMILIES:-"failures_synthetic failures_movie_reviews"}
for fam in $FAMILIES; do
  fam_study "$fam" > "${LOG_PREFIX:-/tmp/async_failures_}$fam.log" 2>&1
done
python -m experiments.report "$OUT" --check
