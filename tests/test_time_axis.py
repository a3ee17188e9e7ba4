"""experiments.time_axis and report --time: runs of both engines on one simulated-time axis."""

import json
import os

import numpy as np
import pytest

from experiments import report, time_axis
from experiments.errors import UserError


def _run(d, rows, metric="eval/loss"):
  os.makedirs(d, exist_ok=True)
  json.dump(
    {"report_metric": metric, "report_mode": "min"}, open(os.path.join(d, "summary.json"), "w")
  )
  with open(os.path.join(d, "metrics.jsonl"), "w") as f:
    for r in rows:
      f.write(json.dumps(r) + "\n")
  return str(d)


def test_sync_and_async_runs_on_one_axis_by_hand(tmp_path):
  # Two synchronous seeds (rounds at 10 s and 20 s) and one asynchronous run (`time` and
  # `sim_time`, evaluated at 5 s and 30 s).
  s1 = _run(
    tmp_path / "s1",
    [
      {"round": 1, "sim_time": 10.0, "eval/loss": 4.0},
      {"round": 2, "sim_time": 20.0, "eval/loss": 2.0},
    ],
  )
  s2 = _run(
    tmp_path / "s2",
    [
      {"round": 1, "sim_time": 10.0, "eval/loss": 6.0},
      {"round": 2, "sim_time": 20.0, "train/loss": 9.0},  # no evaluation: not a point
      {"round": 3, "sim_time": 30.0, "eval/loss": 1.0},
    ],
  )
  a = _run(
    tmp_path / "a",
    [
      {"round": 4, "time": 5.0, "sim_time": 5.0, "eval/loss": 3.0},
      {"round": 9, "time": 30.0, "sim_time": 30.0, "eval/loss": 0.5},
    ],
  )
  groups = time_axis.parse_groups([f"sync={s1}", f"sync={s2}", f"async={a}"])
  assert groups == {"sync": [s1, s2], "async": [a]}
  png = str(tmp_path / "t.png")
  out = time_axis.plot_quality_vs_time(groups, png, points=7)  # 0, 5, ..., 30 s
  assert os.path.getsize(png) > 0
  x, sync = out["sync"]
  np.testing.assert_allclose(x, [0, 5, 10, 15, 20, 25, 30])
  # Each run holds its last evaluation; s1 ends at 20 s (nothing after), s2 holds 6 to 30 s.
  np.testing.assert_allclose(sync, [np.nan, np.nan, 5, 5, 4, 6, 1])
  np.testing.assert_allclose(out["async"][1], [np.nan, 3, 3, 3, 3, 3, 0.5])
  assert time_axis.time_to_target(time_axis.time_curve(a, "eval/loss"), 1.0) == 30.0
  assert time_axis.time_to_target(time_axis.time_curve(s1, "eval/loss"), 3.0) == 20.0
  assert time_axis.time_to_target(time_axis.time_curve(s1, "eval/loss"), 0.1) is None
  assert time_axis.time_to_target([(1.0, 0.7), (2.0, 0.9)], 0.8, mode="max") == 2.0


def test_report_cli_time_plot_and_one_line_errors(tmp_path, capsys):
  run = _run(tmp_path / "r", [{"round": 1, "sim_time": 2.0, "eval/loss": 1.0}])
  assert report.main(["--time", str(tmp_path / "t.png"), run]) == 0
  old = _run(tmp_path / "old", [{"round": 1, "eval/loss": 1.0}])
  capsys.readouterr()
  assert report.main(["--time", str(tmp_path / "u.png"), old]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "has no sim_time: the run predates the simulated clock" in err[0]
  with pytest.raises(UserError, match="is not a run folder"):
    time_axis.parse_groups([f"x={tmp_path / 'missing'}"])


@pytest.mark.slow
def test_a_study_of_runs_with_sim_time_gets_its_curves_on_the_clock(tmp_path):
  from test_report import make_study

  make_study(tmp_path)
  assert "simulated clock" not in report.write_report(str(tmp_path))  # rows without it
  for d, _, files in os.walk(tmp_path):
    if "metrics.jsonl" in files:
      path = os.path.join(d, "metrics.jsonl")
      rows = [json.loads(line) for line in open(path)]
      with open(path, "w") as f:
        for r in rows:
          f.write(json.dumps(dict(r, sim_time=3.0 * r["round"])) + "\n")
  text = report.write_report(str(tmp_path))
  assert "![curves on the simulated clock](curves_eval_loss_sim_time.png)" in text
  assert os.path.getsize(tmp_path / "curves_eval_loss_sim_time.png") > 0
  stats = report.method_stats(str(tmp_path))
  assert stats["bi2clip"]["time_curves"][0] == [(15.0, 0.50), (30.0, 0.30)]
  out = tmp_path / "exported"
  report.export(str(tmp_path), str(out))
  row = json.loads(open(out / "bi2clip/lr=0.1/seed1/metrics.jsonl").readline())
  assert row["sim_time"] == 15.0  # exported with the runs
