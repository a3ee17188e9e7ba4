#!/usr/bin/env bash
# Re-runs experiments/results/async/ under the study rules and regenerates its tables and plots:
#   bash experiments/results/async/run_study.sh
# Every run is experiments.engines.loop (the one loop, async engine) of configs/async_synthetic.py:study
# with the fields of experiments/async_study/jobs.py:run_config; the study table (methods,
# grids, severities, seeds, budgets, claims) is experiments/async_study/study.py (SYNTHETIC).
#   tune  : every method's grid at straggler slowdown S = 4 on tuning seed 0 (700 simulated s);
#           a kept point on a grid edge extends its axis geometrically until it is interior
#           (experiments.sweep.tune_grid). The second pass extends the grids whose cells the
#           other shards had not finished in the first.
#   final : each kept point at S = 1, 4 and 16 on fresh report seeds: 1-5, and 1-8 for the
#           methods of claim 3b (small effects); 1400 simulated s, read at 180/360/700/1400 s.
#   report: sweep.json, every per-seed run (summary, config, code version, evaluated rows)
#           exported here, report.md (n and 95% CIs per budget and severity, Welch p against
#           sync Bi²Clip and for every claim, time to target, staleness, robustness grids),
#           curves_eval_loss_S*.png, robustness_*.png; then the check of the rules.
# Tables and plots again from the stored runs, and the check alone:
#   python -m experiments.report experiments/results/async
#   python -m experiments.report experiments/results/async --check
# Time (estimated, not yet run): about 410 runs, 120 grid cells + ~25 extension cells (tuning,
# 15-20 CPU-s each) and 264 report runs (3 severities x (6 methods x 8 seeds + 8 x 5); 14-23
# CPU-s each, timed on this 2-core machine under load), ~7,200 CPU-s: about
# 1 hour (0.7-1.3 h) with the 2 shards on an idle 2-core machine. Rerunning resumes: finished
# runs are read back. README.md is the write-up of the pre-rules study; rewrite it from
# report.md.
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-runs/async_study}
SHARDS=${SHARDS:-2}
OUT=experiments/results/async
study() { python -m experiments.async_study --family synthetic --workdir "$RUNS" --out "$OUT" "$@"; }
for phase in tune tune final; do
  for ((i = 0; i < SHARDS; i++)); do study --phase "$phase" --shard "$i/$SHARDS" & done
  wait
done
# The pre-rules study's outputs (one tuning seed reused for reporting, 2 seeds, no CIs).
rm -f "$OUT"/tables.md "$OUT"/loss_vs_time_S*.png "$OUT"/loss_vs_steps_S*.png \
  "$OUT"/sensitivity_heatmap.png
study --phase report > /dev/null
python -m experiments.report "$OUT" --check
