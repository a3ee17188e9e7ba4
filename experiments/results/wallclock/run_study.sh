#!/usr/bin/env bash
# The wall-clock study (issue 23 item 4): time to a target quality at 0.1, 1, 10 and 100 Gb/s
# for fedavg, diloco, bi2clip (float32, int4, Bi²Clip's fixed grid, top-k), streaming with and
# without overlap and asynchronous Bi²Clip, on the synthetic task and on movie reviews:
#   bash experiments/results/wallclock/run_study.sh
#   TASKS=synthetic bash experiments/results/wallclock/run_study.sh     # one task
#   SEQUENTIAL=1 bash experiments/results/wallclock/run_study.sh        # one task at a time
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
# Time, measured on this 2-core machine while two other jobs ran (load average 6-10), one
# run's time including its build (experiments.wallclock.jobs.run_one), 13 runs:
#   synthetic     : 100-round run 8-18 s, 200-round 10.5-11.8 s; asynchronous 200 server
#                   steps 95 s, 400 steps 48-54 s;
#   movie reviews : 100-round run 7-21 s, 200-round 16.7-23 s; asynchronous 200 steps 97 s,
#                   400 steps 52 s, but 227 s as the first run of its process (19 s of it
#                   training: the rest is building the task; the study makes its
#                   asynchronous runs last, after the synchronous ones).
# Tuning probes (fedavg, diloco, bi2clip on both tasks) kept interior points after 0-1
# extension per arm. A task is then ~28 synchronous tuning runs (24 cells + ~4 extensions),
# ~4 asynchronous tuning runs, 40 synchronous and 20 asynchronous report runs (retiming
# takes no time): synthetic ~28x12 + 4x95 + 40x11 + 20x52 = ~2,200 s, movie reviews
# ~28x12 + 4x97 + 40x20 + 20x52 + 200 = ~2,800 s: ~85 min one after the other on that loaded
# machine. User CPU was 40-60% of the wall time there, so on an idle 2-core machine ~45 min
# in a row, or ~25-30 min with the two tasks side by side (the default; SEQUENTIAL=1 runs
# them in a row). The asynchronous runs are about half of it.
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
pids=()
for t in $TASKS; do
  if [[ -n "${SEQUENTIAL:-}" ]]; then one "$t"; else one "$t" & pids+=($!); fi
done
for p in "${pids[@]}"; do wait "$p"; done  # a failed task fails the script
python -m experiments.report "$OUT" --check
