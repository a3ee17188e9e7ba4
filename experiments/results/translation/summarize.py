"""Table of the translation runs: python summarize.py RUNS_DIR > results.md."""

import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1])
print("| run | round | eval/bleu | eval/loss | eval/accuracy | wall s |")
print("|---|---|---|---|---|---|")
for run in sorted(p for p in root.iterdir() if (p / "summary.json").is_file()):
  s = json.loads((run / "summary.json").read_text())
  for line in (run / "metrics.jsonl").read_text().splitlines():
    m = json.loads(line)
    if "eval/bleu" in m:
      wall = f"{s['wall_s']:.0f}" if m["round"] == s["rounds_done"] else ""
      print(
        f"| {run.name} | {m['round']} | {m['eval/bleu']:.2f} | {m['eval/loss']:.3f} | "
        f"{m['eval/accuracy']:.3f} | {wall} |"
      )
