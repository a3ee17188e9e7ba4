"""experiments.report and experiments.study_check: tables with n, 95% CIs and Welch p-values,
quality against bytes, and one failing line per broken study rule."""

import json
import math
import os
import subprocess
import sys

import pytest
from scipy import stats as sps

from experiments import report, stats, study_check

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

CLEAN = [{"commit": "a" * 40, "dirty": False}]


def _run(d, values, total, diverged=False, code=CLEAN, seed=0, method="bi2clip", cfg=None):
  """A run folder: eval/loss logged at the rounds of ``values`` ({round: value})."""
  os.makedirs(d, exist_ok=True)
  final = values[max(values)] if values else math.nan
  json.dump(
    {
      "report_metric": "eval/loss",
      "report_mode": "min",
      "diverged": diverged,
      "final": {"eval/loss": final},
      "best": final,
      "wall_s": 1.0,
      "total": total,
      "done": total,
      "code": code,
    },
    open(os.path.join(d, "summary.json"), "w"),
  )
  json.dump(
    dict(cfg or {"task": "synthetic", "noise": {"alpha": 1.5}}, method=method, seed=seed),
    open(os.path.join(d, "config.json"), "w"),
  )
  with open(os.path.join(d, "metrics.jsonl"), "w") as f:
    for r, v in sorted(values.items()):
      f.write(json.dumps({"round": r, "train/bytes_cumulative": 100.0 * r, "eval/loss": v}) + "\n")


# Report values per method and seed at rounds 5 and 10.
VALUES = {
  "bi2clip": [(0.50, 0.30), (0.52, 0.31), (0.49, 0.29), (0.51, 0.30), (0.50, 0.32)],
  "fedavg": [(0.60, 0.50), (0.62, 0.52), (0.58, 0.49), (0.61, 0.51), (0.60, 0.50)],
}


def make_study(root, edges=None, report_seeds=(1, 2, 3, 4, 5), tune_seeds=(0,)):
  """A finished study on disk: 2 methods, tuned on seed 0 at 10 rounds, 5 report seeds."""
  os.makedirs(root, exist_ok=True)
  methods = {}
  for method, per_seed in VALUES.items():
    runs = []
    for seed, (v5, v10) in zip(report_seeds, per_seed):
      rel = f"{method}/lr=0.1/seed{seed}"
      _run(os.path.join(root, rel), {5: v5, 10: v10}, 10, seed=seed, method=method)
      runs.append(rel)
    tune_rel = f"{method}/lr=0.1/seed{tune_seeds[0]}"
    _run(os.path.join(root, tune_rel), {5: 0.5, 10: 0.4}, 10, seed=tune_seeds[0], method=method)
    methods[method] = {
      "grid": {
        "lr=0.1": {"point": {"hparams.inner_lr": 0.1}, "score": 0.4, "runs": [tune_rel]},
        "lr=0.03": {"point": {"hparams.inner_lr": 0.03}, "score": 0.6, "runs": []},
        "lr=0.3": {"point": {"hparams.inner_lr": 0.3}, "score": 0.7, "runs": []},
      },
      "best": "lr=0.1",
      "best_point": {"hparams.inner_lr": 0.1},
      "edges": (edges or {}).get(method, []),
      "runs": runs,
    }
  json.dump(
    {
      "rules": 2,
      "tune_seeds": list(tune_seeds),
      "report_seeds": list(report_seeds),
      "tune_rounds": 10,
      "report_rounds": 10,
      "budgets": [5, 10],
      "reference": "bi2clip",
      "code": CLEAN[0],
      "methods": methods,
    },
    open(os.path.join(root, "sweep.json"), "w"),
  )
  return root


def test_report_gives_n_ci_and_welch_p_at_every_budget(tmp_path):
  make_study(tmp_path)
  text = report.write_report(str(tmp_path))
  b = [v[1] for v in VALUES["bi2clip"]]
  f = [v[1] for v in VALUES["fedavg"]]
  mean = sum(b) / 5
  half = sps.t.ppf(0.975, 4) * sps.tstd(b) / math.sqrt(5)  # by hand: t_{0.975,4} s / sqrt(n)
  assert f"{mean:.4g} ± {half:.2g}" in text
  assert "n = 5 report seeds" in text and "| 5 rounds | 10 rounds | n |" in text
  p = sps.ttest_ind(f, b, equal_var=False).pvalue
  assert p < 0.001 and f"+{sum(f) / 5 - mean:.3g} (p < 0.001, bi2clip better)" in text
  assert "Code: commit aaaaaaaaaa." in text
  results = json.load(open(tmp_path / "results.json"))
  assert results["fedavg"]["budgets"]["5"]["n"] == 5
  assert results["fedavg"]["budgets"]["5"]["values"] == [v[0] for v in VALUES["fedavg"]]


def test_stats_by_hand():
  s = stats.summarize([1.0, 2.0, 3.0, None, float("nan")])
  assert (s.n, s.mean, s.diverged) == (3, 2.0, 2)
  assert abs(s.ci95 - 4.302652729911275 * 1.0 / math.sqrt(3)) < 1e-9  # t_{0.975,2} = 4.3027
  assert math.isnan(stats.welch_p([1.0], [2.0, 3.0]))
  assert stats.fmt(stats.summarize([None, None])) == "diverged"


def test_a_clean_study_passes_the_check(tmp_path):
  make_study(tmp_path / "s")
  assert study_check.check(str(tmp_path)) == []
  out = subprocess.run(
    [sys.executable, "-m", "experiments.report", str(tmp_path), "--check"],
    capture_output=True,
    text=True,
  )
  assert out.returncode == 0, out.stdout + out.stderr


def _problems(root):
  return study_check.check(str(root))


def test_check_fails_on_an_open_edge(tmp_path):
  edge = dict(field="hparams.inner_lr", side="low", value=0.1, status="open")
  make_study(tmp_path, edges={"fedavg": [edge]})
  (line,) = _problems(tmp_path)
  assert ": edge: fedavg kept lr=0.1, on the open low edge of hparams.inner_lr" in line
  make_study(tmp_path, edges={"fedavg": [dict(edge, status="diverges past it")]})
  assert _problems(tmp_path) == []


def test_check_fails_on_too_few_or_reused_seeds(tmp_path):
  make_study(tmp_path / "few", report_seeds=(1, 2, 3, 4))
  assert any(": seeds: 4 report seeds" in p for p in _problems(tmp_path / "few"))
  make_study(tmp_path / "reuse", tune_seeds=(1,))
  assert any(
    ": seeds: report seeds [1] are tuning seeds" in p for p in _problems(tmp_path / "reuse")
  )
  make_study(tmp_path / "gone")
  os.remove(tmp_path / "gone" / "fedavg" / "lr=0.1" / "seed3" / "summary.json")
  assert any("run fedavg/lr=0.1/seed3 is missing" in p for p in _problems(tmp_path / "gone"))


def test_check_fails_on_a_mixed_budget(tmp_path):
  make_study(tmp_path)
  _run(tmp_path / "fedavg/lr=0.1/seed2", {5: 0.6, 10: 0.5, 15: 0.4}, 15, seed=2, method="fedavg")
  (line,) = _problems(tmp_path)
  assert ": budget: run fedavg/lr=0.1/seed2 is 15 rounds long, the study's are 10" in line
  make_study(tmp_path)
  _run(tmp_path / "fedavg/lr=0.1/seed2", {10: 0.5}, 10, seed=2, method="fedavg")
  (line,) = _problems(tmp_path)
  assert "logged no eval/loss at rounds [5]" in line


def _set_study(root, **fields):
  path = os.path.join(root, "sweep.json")
  sweep = json.load(open(path))
  sweep.update(fields)
  json.dump(sweep, open(path, "w"))


def test_check_fails_on_studies_of_one_task_with_different_budgets(tmp_path):
  for name in ("a", "b"):
    make_study(tmp_path / name)
    _set_study(tmp_path / name, config={"task": "least_squares"})
  _set_study(tmp_path / "b", budgets=[10])  # the same runs, read at fewer budgets
  (line,) = _problems(tmp_path)
  assert "its studies of least_squares use different run lengths or budgets" in line
  # Another task may run for another length: each task's studies share one budget.
  _set_study(tmp_path / "b", config={"task": "movie_reviews"})
  assert _problems(tmp_path) == []


def test_each_leaderboard_folder_is_its_own_table(tmp_path):
  """Two tailbench suites (folders with a leaderboard.json) may run one task for different
  lengths; inside one suite the studies of a task still share one budget."""
  for suite, name in (("small", "a"), ("full", "b"), ("full", "c")):
    make_study(tmp_path / suite / name)
    _set_study(tmp_path / suite / name, config={"task": "least_squares"})
  _set_study(tmp_path / "full" / "b", budgets=[10])
  _set_study(tmp_path / "full" / "c", budgets=[10])
  (line,) = _problems(tmp_path)  # no leaderboards yet: one folder, two budgets
  assert "its studies of least_squares use different run lengths or budgets" in line
  for suite in ("small", "full"):
    (tmp_path / suite / "leaderboard.json").write_text("{}")
  assert _problems(tmp_path) == []
  _set_study(tmp_path / "full" / "c", budgets=[5, 10])  # a mix inside one suite
  (line,) = _problems(tmp_path)
  assert line.startswith(f"{tmp_path / 'full'}: budget: its studies of least_squares")


def test_check_fails_on_mixed_or_dirty_code_and_mixed_configs(tmp_path):
  make_study(tmp_path)
  other = [{"commit": "b" * 40, "dirty": False}]
  _run(tmp_path / "fedavg/lr=0.1/seed2", {5: 0.6, 10: 0.5}, 10, code=other, seed=2)
  (line,) = _problems(tmp_path)
  assert ": code: runs from 2 code versions (aaaaaaaaaa, bbbbbbbbbb)" in line
  make_study(tmp_path)
  dirty = [{"commit": "a" * 40, "dirty": True}]
  _run(tmp_path / "fedavg/lr=0.1/seed2", {5: 0.6, 10: 0.5}, 10, code=dirty, seed=2)
  assert any("with local edits; commit, then re-run" in p for p in _problems(tmp_path))
  make_study(tmp_path)
  cfg = {"task": "synthetic", "noise": {"alpha": 1.1}}
  _run(tmp_path / "fedavg/lr=0.1/seed2", {5: 0.6, 10: 0.5}, 10, seed=2, cfg=cfg)
  (line,) = _problems(tmp_path)
  assert ": config: report runs differ beyond method, seed, length and grid fields" in line


def test_check_fails_on_studies_of_different_code_in_one_folder(tmp_path):
  make_study(tmp_path / "a")
  make_study(tmp_path / "b")
  sweep = json.load(open(tmp_path / "b" / "sweep.json"))
  for info in sweep["methods"].values():
    for rel in info["runs"] + [r for c in info["grid"].values() for r in c["runs"]]:
      s = json.load(open(tmp_path / "b" / rel / "summary.json"))
      s["code"] = [{"commit": "c" * 40, "dirty": False}]
      json.dump(s, open(tmp_path / "b" / rel / "summary.json", "w"))
  (line,) = _problems(tmp_path)
  assert "its studies come from different code versions" in line


@pytest.mark.parametrize("content", [None, {"methods": {}}])
def test_check_fails_on_a_folder_without_a_study_under_the_rules(tmp_path, content):
  if content is not None:
    json.dump(content, open(tmp_path / "sweep.json", "w"))
  (line,) = _problems(tmp_path)
  assert ": study: " in line and "experiments.sweep" in line


def test_check_names_a_missing_folder(tmp_path):
  (line,) = _problems(tmp_path / "typo")
  assert line.endswith(
    "typo: no such folder; give a results folder (e.g. experiments/results/async)"
  )


def test_cost_stats_table_and_plot(tmp_path):
  make_study(tmp_path)
  rows = {(g["method"], g["point"]): g for g in report.cost_stats(str(tmp_path))}
  g = rows[("fedavg", "lr=0.1")]
  assert g["bytes"] == 1000.0 and g["final"].n == 6  # 5 report seeds + the tuning seed
  text = report.write_report(str(tmp_path))
  assert "| fedavg | lr=0.1 | 10 | 1,000 |" in text
  assert (tmp_path / "quality_vs_bytes.png").stat().st_size > 1000


def test_combine_gives_one_table_per_shared_budget(tmp_path):
  make_study(tmp_path / "alpha1.1")
  make_study(tmp_path / "gaussian")
  out = subprocess.run(
    [sys.executable, "-m", "experiments.report", str(tmp_path)], capture_output=True, text=True
  )
  assert out.returncode == 0, out.stderr
  table = (tmp_path / "table.md").read_text()
  assert "### 5 rounds" in table and "### 10 rounds" in table
  assert "| method | alpha1.1 | gaussian |" in table
  mean = sum(v[1] for v in VALUES["fedavg"]) / 5
  assert f"| fedavg | {mean:.4g} ± " in table and "(n=5)" in table
  assert (tmp_path / "curves_gaussian.png").exists()


def test_report_refuses_to_overwrite_a_study_made_before_the_rules(tmp_path):
  json.dump({"methods": {}}, open(tmp_path / "sweep.json", "w"))
  (tmp_path / "report.md").write_text("old tables")
  out = subprocess.run(
    [sys.executable, "-m", "experiments.report", str(tmp_path)], capture_output=True, text=True
  )
  assert out.returncode == 1 and "predate the study rules" in out.stdout
  assert (tmp_path / "report.md").read_text() == "old tables"


def _tail_folder(root, readings, code=None, families=("synthetic_mlp",)):
  code = code or {"commit": "a" * 40, "dirty": False}
  os.makedirs(root, exist_ok=True)
  ref = {
    "tolerance": 0.1,
    "code": code,
    "readings": {
      name: {"stable_alpha": got, "stable_alpha_orderings": {"median": got}, "known_alpha": a}
      for name, (a, got) in readings.items()
    },
  }
  json.dump(ref, open(os.path.join(root, "reference.json"), "w"))
  fams = {f: {"gradients": {}, "pseudo_gradients": {}, "code": code} for f in families}
  json.dump(fams, open(os.path.join(root, "tail_index.json"), "w"))
  return study_check.check(str(root))


GOOD_ALPHAS = {"g": (2.0, 1.95), "s18": (1.8, 1.78), "s15": (1.5, 1.49), "s11": (1.1, 1.12)}


def test_tail_index_folder_checks_known_alphas_and_code(tmp_path):
  """A tail-index folder passes only when the estimator reads every known alpha within
  0.1 and every reading comes from one clean commit."""
  assert _tail_folder(tmp_path / "ok", GOOD_ALPHAS) == []
  bad = dict(GOOD_ALPHAS, s11=(1.1, 1.25))
  (p,) = _tail_folder(tmp_path / "far", bad)
  assert "tail: the estimator reads 1.250 on s11 (known 1.1), outside +-0.1" in p
  few = {k: GOOD_ALPHAS[k] for k in ("g", "s15")}
  (p,) = _tail_folder(tmp_path / "few", few)
  assert "checks 2 known alphas" in p
  dirty = _tail_folder(tmp_path / "dirty", GOOD_ALPHAS, code={"commit": "b" * 40, "dirty": True})
  assert any("with local edits" in p for p in dirty)
  (p,) = _tail_folder(tmp_path / "unknown", GOOD_ALPHAS, code={"commit": None, "dirty": None})
  assert "unknown code" in p


def test_check_fails_on_tables_left_without_a_sweep_json(tmp_path):
  make_study(tmp_path / "new")
  old = tmp_path / "old"
  old.mkdir()
  (old / "tables.md").write_text("| method | final |\n")
  (line,) = _problems(tmp_path)
  assert line.startswith(f"{old}: study: tables without a sweep.json")
  (old / "tables.md").unlink()
  assert _problems(tmp_path) == []
