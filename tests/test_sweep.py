"""Studies: grids, tuning seeds apart from report seeds, grids extended to interior optima,
budgets, resumability, reports."""

import json
import math
import os

import pytest

from configs import synthetic as synthetic_config
from experiments import report, sweep
from experiments.validate import ConfigError

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


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


@pytest.mark.parametrize(
  "field,value,message",
  [
    ("report_seeds", [1, 2, 3, 4], "at least 5 distinct report seeds"),
    ("report_seeds", [0, 1, 2, 3, 4], r"share \[0\] with tune_seeds"),
    ("budgets", [4, 6], r"budgets \[4\] are not evaluation rounds"),
    ("report_rounds", 3, "below config.rounds=6"),
    ("tune_seeds", [], "tune_seeds is empty"),
  ],
)
def test_study_plan_refuses_what_breaks_the_rules(field, value, message):
  c = tiny_config()
  c.sweep[field] = value
  with pytest.raises(ConfigError, match=message):
    sweep.study_plan(c)


def test_study_plan_defaults_budgets_and_reference():
  c = tiny_config()
  c.rounds, c.eval_every, c.sweep.report_rounds = 40, 10, 80
  plan = sweep.study_plan(c, ["fedavg", "bi2clip"])
  assert plan["budgets"] == [10, 20, 40, 80] and plan["reference"] == "bi2clip"
  assert plan["tune_seeds"] == [0] and plan["report_seeds"] == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------- grids extended to interior
def _fake_runs(monkeypatch, loss_of_lr, diverge_above=math.inf):
  """run_cell replaced by a known score of the learning rate (no training)."""
  calls = []

  def run_cell(cfg, workdir, quiet=True):
    lr = cfg.hparams.inner_lr
    calls.append(lr)
    return {
      "diverged": lr > diverge_above,
      "final": {"eval/loss": loss_of_lr(lr)},
      "report_metric": "eval/loss",
      "report_mode": "min",
    }

  monkeypatch.setattr(sweep, "run_cell", run_cell)
  return calls


def _tune(grid, bounds=None, max_extensions=4):
  c = tiny_config()
  c.sweep.grids = {"fedavg": [f"hparams.inner_lr={grid}"]}
  c.sweep.bounds = bounds or []
  c.sweep.max_extensions = max_extensions
  return sweep.tune(c, "/nonexistent", "fedavg", sweep.study_plan(c), log=lambda _: None)


def test_an_edge_optimum_extends_its_axis_geometrically_until_interior(monkeypatch):
  calls = _fake_runs(monkeypatch, lambda lr: (math.log10(lr) - math.log10(0.003)) ** 2)
  t = _tune("0.1,0.3,1.0")
  # 0.1 is the low edge: steps of the edge's neighbour ratio (3) down to 0.00123, past 0.003.
  assert calls == [0.1, 0.3, 1.0, 0.0333, 0.0111, 0.0037, 0.00123]
  assert t["best_point"] == {"hparams.inner_lr": 0.0037} and t["edges"] == []
  assert all(t["cells"][sweep.cell_name({"hparams.inner_lr": v})]["extension"] for v in calls[3:])


def test_a_second_axis_is_extended_around_an_extension_point(monkeypatch):
  """The kept point is an extension along one axis, so along the other only it was tried:
  both sides of that axis are then tried too (steps of the grid's edge ratios)."""
  calls = []

  def run_cell(cfg, workdir, quiet=True):
    lr, u = cfg.hparams.inner_lr, cfg.hparams.inner_upper
    calls.append((lr, u))
    loss = (math.log10(lr / 0.03)) ** 2 + (math.log10(u / 0.011)) ** 2
    return dict(
      diverged=False, final={"eval/loss": loss}, report_metric="eval/loss", report_mode="min"
    )

  monkeypatch.setattr(sweep, "run_cell", run_cell)
  c = tiny_config()
  c.sweep.grids = {
    "avg-biclip": ["hparams.inner_lr=0.01,0.03,0.1", "hparams.inner_upper=0.1,0.3,1.0"]
  }
  t = sweep.tune(c, "/nonexistent", "avg-biclip", sweep.study_plan(c), log=lambda _: None)
  assert calls[9:] == [
    (0.03, 0.0333),  # u's low edge
    (0.01, 0.0333),  # around it along lr (only 0.03 was tried there), then u's edge again
    (0.1, 0.0333),
    (0.03, 0.0111),
    (0.01, 0.0111),
    (0.1, 0.0111),
    (0.03, 0.0037),
  ]
  assert t["best_point"] == {"hparams.inner_lr": 0.03, "hparams.inner_upper": 0.0111}
  assert t["edges"] == []


def test_an_edge_the_method_diverges_past_is_a_hard_bound(monkeypatch):
  _fake_runs(monkeypatch, lambda lr: 1.0 / lr, diverge_above=2.0)
  t = _tune("0.1,0.3,1.0")
  assert t["best_point"] == {"hparams.inner_lr": 1.0}
  assert t["edges"] == [
    dict(field="hparams.inner_lr", side="high", value=1.0, status="diverges past it")
  ]


def test_declared_bounds_zero_and_exhausted_extensions(monkeypatch):
  calls = _fake_runs(monkeypatch, lambda lr: 1.0 / (lr + 1e-9))
  t = _tune("0.1,0.3,1.0", bounds=["hparams.inner_lr=None,1.0"])
  assert calls == [0.1, 0.3, 1.0]  # nothing run past a declared bound
  assert t["edges"][0]["status"] == "declared bound"
  calls.clear()
  t = _tune("0.1,0.3,1.0", max_extensions=2)  # still improving after 2 steps: left open
  assert calls == [0.1, 0.3, 1.0, 3.33, 11.1]
  assert t["edges"][0]["status"] == "open" and t["best_point"] == {"hparams.inner_lr": 11.1}
  _fake_runs(monkeypatch, lambda lr: lr)
  t = _tune("0.0,0.05")
  assert t["edges"][0]["status"] == "zero"


# ----------------------------------------------------------------- a real study, end to end
def test_study_tunes_reports_on_fresh_seeds_resumes_and_checks(tmp_path):
  c = tiny_config()
  c.sweep.report_rounds = 9
  logs = []
  res = sweep.sweep(c, str(tmp_path), methods=["fedavg"], log=logs.append)
  m = res["methods"]["fedavg"]
  # inner_lr = 0 never moves the model, so 0.05 wins; the zero edge is a hard bound and the
  # high edge is extended (0.05 -> 0.1 ...) until 0.05 or a later value is interior.
  assert m["best"] != "inner_lr=0.0" and all(e["status"] != "open" for e in m["edges"])
  assert len(m["runs"]) == 5 and all(f"seed{s}" in r for s, r in zip(range(1, 6), m["runs"]))
  for rel in m["runs"]:
    summary = json.load(open(tmp_path / rel / "summary.json"))
    assert summary["total"] == 9 and summary["seed"] in (1, 2, 3, 4, 5)
    assert summary["code"][0]["commit"]  # provenance recorded
  text = (tmp_path / "report.md").read_text()
  assert "n = 5 report seeds" in text and "| 3 rounds | 6 rounds | 9 rounds |" in text
  assert "95% CI" in text and (tmp_path / "curves_eval_loss.png").stat().st_size > 1000
  results = json.load(open(tmp_path / "results.json"))
  assert sorted(results["fedavg"]["budgets"]) == ["3", "6", "9"]  # 25/50/100% of 6, and 9
  assert results["fedavg"]["budgets"]["9"]["n"] == 5
  # A second call finds every cell finished and trains nothing.
  mtimes = {p: os.path.getmtime(p) for p in tmp_path.glob("*/*/seed*/summary.json")}
  sweep.sweep(c, str(tmp_path), methods=["fedavg"], log=lambda _: None)
  assert mtimes == {p: os.path.getmtime(p) for p in tmp_path.glob("*/*/seed*/summary.json")}
  # Exported with its runs, the study regenerates its report from the stored files.
  report.export(str(tmp_path), str(tmp_path / "exported"))
  exported = (tmp_path / "exported" / "report.md").read_text()
  assert exported.split("\n", 1)[1] == text.split("\n", 1)[1]  # all but the title (the folder)
  assert not list((tmp_path / "exported").glob("**/checkpoints"))


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


# ------------------------------------------------------- settings: conditions of the report
def test_settings_report_the_kept_point_in_each_condition_and_compare_it(tmp_path):
  from experiments import study_check

  c = tiny_config()
  c.compression.kind, c.compression.bits, c.compression.block = "int", 32, 4
  c.sweep.settings = [
    "f32: compression.bits=32",
    "int2: compression.bits=2",
    "int2+ef[fedavg]: compression.bits=2 compression.error_feedback=True",
  ]
  res = sweep.sweep(c, str(tmp_path), methods=["fedavg", "avg-l2clip"], log=lambda _: None)
  assert list(res["settings"]) == ["f32", "int2", "int2+ef"]
  assert res["settings"]["int2+ef"] == {"compression.bits": 2, "compression.error_feedback": True}
  runs = res["methods"]["fedavg"]["runs"]
  assert list(runs) == ["f32", "int2", "int2+ef"] and all(len(r) == 5 for r in runs.values())
  assert list(res["methods"]["avg-l2clip"]["runs"]) == ["f32", "int2"]  # int2+ef: fedavg only
  cfg = json.load(open(tmp_path / runs["int2+ef"][0] / "config.json"))
  assert cfg["compression"]["bits"] == 2 and cfg["compression"]["error_feedback"] is True
  tune_cfg = json.load(
    open(tmp_path / res["methods"]["fedavg"]["grid"]["inner_lr=0.05"]["runs"][0] / "config.json")
  )
  assert tune_cfg["compression"]["bits"] == 32  # tuning stays in the base config
  # 2-bit payloads are fewer bytes than float32 ones, on the same seeds.
  f32 = json.load(open(tmp_path / runs["f32"][0] / "summary.json"))
  two = json.load(open(tmp_path / runs["int2"][0] / "summary.json"))
  assert two["final"] != f32["final"]
  text = (tmp_path / "report.md").read_text()
  assert "## int2: compression.bits = 2" in text and "## Every setting against f32" in text
  table = text.split("## Every setting against f32")[1].split("##")[0]
  assert table.count("| fedavg |") == 3 and table.count("| avg-l2clip |") == 2
  assert "(p = " in table or "(p < " in table
  costs = {(g["method"], g["point"]): g for g in report.cost_stats(str(tmp_path))}
  assert costs[("fedavg", "int2")]["bytes"] < costs[("fedavg", "f32")]["bytes"]
  assert costs[("fedavg", "int2")]["final"].n == 5
  problems = [p for p in study_check.check(str(tmp_path)) if ": code:" not in p]
  assert problems == []


@pytest.mark.parametrize(
  "settings, message",
  [
    (["f32 compression.bits=32"], "must look like 'name: field=value"),
    (["a: compression.bits=32", "a: compression.bits=8"], "twice"),
    (["a: compression.bits=8,4"], "one value"),
    (["a: compression.bitz=8"], "no field 'compression.bitz'"),
    (["a[adam2]: compression.bits=8"], "names methods the study does not run (adam2)"),
  ],
)
def test_bad_settings_are_one_line_errors(tmp_path, settings, message):
  c = tiny_config()
  c.sweep.settings = settings
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    sweep.sweep(c, str(tmp_path), methods=["fedavg"], log=lambda _: None)
  assert not list(tmp_path.glob("fedavg"))  # refused before any run
