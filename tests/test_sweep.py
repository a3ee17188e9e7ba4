"""Sweeps: grids, best-point selection, resumability, reports."""

import json
import os

from configs import synthetic as synthetic_config
from experiments import report, sweep


def tiny_config():
  c = synthetic_config.get_config("runlocal")
  c.rounds, c.eval_every, c.checkpoint_every, c.devices = 6, 3, 0, 1
  c.synthetic.examples_per_client, c.synthetic.test_examples, c.synthetic.dim = 64, 128, 8
  c.sweep.grids = {"*": ["hparams.inner_lr=0.0,0.05"]}
  c.noise.distribution = "none"  # so the better grid point is known in advance
  return c


def test_method_grid_is_a_cartesian_product():
  c = tiny_config()
  c.sweep.grids = {"*": ["hparams.inner_lr=0.1,0.2"], "bi2clip": ["hparams.outer_upper=1,2,3"]}
  assert len(sweep.method_grid(c, "bi2clip")) == 6
  assert len(sweep.method_grid(c, "fedavg")) == 2
  assert sweep.method_grid(c, "fedavg", ["hparams.inner_lr=0.5"]) == [{"hparams.inner_lr": 0.5}]


def test_sweep_picks_best_point_resumes_and_reports(tmp_path):
  c = tiny_config()
  logs = []
  res = sweep.sweep(c, str(tmp_path), methods=["fedavg", "bi2clip"], seeds=[0, 1], log=logs.append)
  # inner_lr = 0 never moves the model, so the 0.05 point must win for both methods.
  for m in ("fedavg", "bi2clip"):
    assert res["methods"][m]["best"] == "inner_lr=0.05"
    assert os.path.exists(tmp_path / m / "inner_lr=0.05" / "seed1" / "summary.json")
    assert not os.path.exists(tmp_path / m / "inner_lr=0.0" / "seed1")
  assert len(logs) == 6  # 2 methods x (2 grid points on seed 0 + 1 more seed)
  text = (tmp_path / "report.md").read_text()
  assert "| fedavg | inner_lr=0.05 |" in text and "| bi2clip | inner_lr=0.05 |" in text
  assert (tmp_path / "curves_eval_loss.png").stat().st_size > 1000
  stats = json.load(open(tmp_path / "results.json"))
  assert stats["bi2clip"]["seeds"] == 2
  # A second call finds every cell finished and trains nothing.
  mtimes = {p: os.path.getmtime(p) for p in tmp_path.glob("*/*/seed*/summary.json")}
  sweep.sweep(c, str(tmp_path), methods=["fedavg", "bi2clip"], seeds=[0, 1], log=lambda _: None)
  assert mtimes == {p: os.path.getmtime(p) for p in tmp_path.glob("*/*/seed*/summary.json")}
  table = report.combine(str(tmp_path / "combined"), [str(tmp_path)])
  assert "| fedavg |" in table


def test_score_ranks_diverged_last():
  s = {"diverged": True, "final": {}, "report_metric": "eval/loss", "report_mode": "min"}
  assert sweep.score(s) == float("inf")
  s = {
    "diverged": False,
    "final": {"eval/accuracy": 0.9},
    "report_metric": "eval/accuracy",
    "report_mode": "max",
  }
  assert sweep.score(s) == -0.9
