"""experiments.report: the quality-against-bytes section of a sweep report."""

import json
import os

from experiments import report


def _run(d, final, total, diverged=False):
  os.makedirs(d, exist_ok=True)
  json.dump(
    {
      "report_metric": "eval/loss",
      "report_mode": "min",
      "diverged": diverged,
      "final": {"eval/loss": final},
      "best": final,
      "wall_s": 1.0,
    },
    open(os.path.join(d, "summary.json"), "w"),
  )
  with open(os.path.join(d, "metrics.jsonl"), "w") as f:
    for r, b in ((1, total / 2), (2, total)):
      f.write(json.dumps({"round": r, "train/bytes_cumulative": b, "eval/loss": final}) + "\n")


def test_cost_stats_table_and_plot(tmp_path):
  runs = {"bits=32": (0.5, 800.0), "bits=4": (0.6, 110.0)}
  names = []
  for point, (final, total) in runs.items():
    for seed, delta in ((0, 0.0), (1, 0.2)):
      rel = f"bi2clip/{point}/seed{seed}"
      _run(tmp_path / rel, final + delta, total)
      names.append(rel)
  json.dump(
    {
      "methods": {
        "bi2clip": {
          "runs": names,
          "best": "bits=32",
          "grid": {"bits=32": {"score": 0.6}, "bits=4": {"score": 0.7}},
        }
      }
    },
    open(tmp_path / "sweep.json", "w"),
  )
  rows = {g["point"]: g for g in report.cost_stats(str(tmp_path))}
  assert rows["bits=4"]["bytes"] == 110.0 and rows["bits=4"]["seeds"] == 2
  assert abs(rows["bits=4"]["final"][0] - 0.7) < 1e-9
  assert abs(rows["bits=4"]["final"][1] - 0.1) < 1e-9
  text = report.write_report(str(tmp_path))
  assert "| bi2clip | bits=4 | 110 | 0.7 ± 0.1 | 2 | 0 |" in text
  assert (tmp_path / "quality_vs_bytes.png").stat().st_size > 1000
