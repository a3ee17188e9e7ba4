#!/usr/bin/env bash
# The wall-clock study (issue 23 item 4): time to a target quality at 0.1, 1, 10 and 100 Gb/s
# for fedavg, diloco, bi2clip (float32, int4, Bi²Clip's fixed grid, top-k), streaming with and
# without overlap and asynchronous Bi²Clip, on the synthetic task and on movie reviews:
#   bash experiments/results/wallclock/run_study.sh
#   TASKS=synthetic bash experiments/results/wallclock/run_study.sh     # one task
#   PARALLEL=1 bash experiments/results/wallclock/run_study.sh          # both tasks at once
# Run it from a clean checkout at one commit (the check rejects runs with local edits).
# Per task (experiments/wallclock/study.py; experiments/wallclock/jobs.py):
#   tune  : every arm's learning-rate line on seed 0 at 1 Gb/s, 100 rounds (asynchronous
#           Bi²Clip: 200 server steps, K = 4 of 8: the same client work); a kept point on a
#           grid edge extends the line (experiments.sweep.tune_grid);
#   report: the kept point on seeds 1-5 for 200 rounds (400 server steps). A synchronous run
#           is made once, at 1 Gb/s, and retimed to 0.1, 10 and 100 Gb/s (experiments.retime:
#           its numbers do not depend on the links, its sim_time is recomputed from the
#           logged bytes, bit for bit what a run at that bandwidth logs); asynchronous Bi²Clip
#           runs at every bandwidth (its event order depends on the links).
#   out   : the study exported to experiments/results/wallclock/<task>/ (sweep.json, every
#           run's evaluated rows, report.md with the time-to-target tables and winners,
#           quality_vs_time.png), then the check of the rules over both tasks.
# Tables and plots again from the stored runs, and the check alone:
#   python -m experiments.report experiments/results/wallclock
#   python -m experiments.report experiments/results/wallclock --check
# Time (measured on this 2-core machine while it ran two other jobs, load average 8-9; one
# run's wall time including its build): synthetic 100-round run ~8 s, 200-round ~11 s,
# asynchronous 400-step ~54 s; movie reviews 200-round ~22 s, asynchronous 400-step ~52 s.
# A task is ~32 tuning runs + ~4 asynchronous tuning runs + 40 synchronous and 20
# asynchronous report runs: synthetic ~2,000 s, movie reviews ~2,700 s, so ~80 min in a row
# on that loaded machine; on an idle 2-core machine about half (user CPU was ~55% of the wall
# time), ~40 min, or ~25 min with PARALLEL=1. The asynchronous runs are half of it.
# Rerunning resumes: finished runs are read back.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NICE=${NICE:-10}
OUT=experiments/results/wallclock
RUNS=${RUNS_PREFIX:-runs/wallclock_}
one() {
  nice -n "$NICE" python -m experiments.wallclock --task "$1" --workdir "$RUNS$1" \
    --out "$OUT/$1" > "${LOG_PREFIX:-/tmp/wallclock_}$1.log" 2>&1
}
TASKS=${TASKS:-"synthetic movie_reviews"}
for t in $TASKS; do
  if [[ -n "${PARALLEL:-}" ]]; then one "$t" & else one "$t"; fi
done
wait
python -m experiments.report "$OUT" --check
