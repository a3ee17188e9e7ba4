"""experiments/async_study/: the study table, its run configs, the jobs under the study rules,
the CLI on a tiny study, and ``experiments.report --check`` on async study folders."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest

from experiments import async_study as S
from experiments import report, study_check, sweep
from experiments.async_study import __main__ as cli
from experiments.async_study import study
from _async_study_helpers import fake_run_cell as _fake_run_cell
from _async_study_helpers import run_study as _study
from experiments.validate import validate
from experiments import tasks

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


def test_synthetic_study_is_the_committed_one():
  f = S.family("synthetic")
  assert f.methods is S.METHODS and f.budget == S.BUDGET == 700.0 and f.length == 1400.0
  assert f.severities == (1.0, 4.0, 16.0) and f.tune_seeds == (0,)
  assert f.budget_points() == [180.0, 360.0, 700.0, 1400.0]  # 25/50/100% and the long run
  assert len(S.tune_jobs()) == sum(len(S.grid_points(g)) for _, g, _ in S.METHODS.values())
  # Report seeds are fresh: 5 per method, 8 for the methods of the small-effect claims (3b).
  assert f.seeds_of("fedbuff") == (1, 2, 3, 4, 5)
  assert f.seeds_of("bi2clip-B+rate") == tuple(range(1, 9))
  # A run of the study (its config.json fields).
  c = S.run_config(
    "bi2clip-A+rate+comp", {"hparams.inner_lr": 0.01, "hparams.outer_upper": 0.01}, 16.0, 1
  )
  assert (c.task, c.method, c.seed, c.clock.seed) == ("synthetic", "bi2clip", 1, 1)
  assert (c.time_budget, c.eval_every_time, c.chunk) == (700.0, 20.0, 5)
  assert c.clock.straggler_slowdown == 16.0 and c.asynchronous.rate.family == "polynomial"
  assert c.asynchronous.compensation.kind == "adaptive"


@pytest.mark.parametrize("name", ["fashion_mnist", "movie_reviews"])
def test_real_families_cover_the_methods_and_validate(name):
  f = S.family(name)
  want = {"sync-bi2clip", "fedbuff", "fedasync", "dcasgd"} | {
    f"bi2clip-{s}{e}" for s in "AB" for e in ("", "+rate", "+comp", "+rate+comp")
  }
  assert set(f.methods) == want
  assert f.metric == "eval/accuracy" and f.higher_is_better
  assert f.severities == (1.0, 4.0, 16.0) and f.tune_severity == 4.0
  dirs = {S.run_dir("w", *job) for job in S.tune_jobs(f)}
  assert len(dirs) == len(S.tune_jobs(f))  # no two runs share a directory
  row = S.tune_jobs(f, 1, {"hparams.inner_lr": 0.1})  # one grid row on another seed
  assert row and all(j[1]["hparams.inner_lr"] == 0.1 and j[2:] == (4.0, 1) for j in row)
  assert len(row) < len(S.tune_jobs(f)) and not S.tune_jobs(f, where={"hparams.inner_lr": 5.0})
  for m in S.MR_FULL if name == "movie_reviews" else S.FM_FULL:  # the robustness grids
    assert all(len(v) >= 3 for v in f.methods[m][1].values()), m
  assert f.seeds_of("sync-bi2clip") == (1, 2, 3, 4, 5) and len(f.seeds_of("bi2clip-B")) == 8
  assert not set(f.tune_seeds) & set(f.report_seeds)
  for m, (_, grid, _) in f.methods.items():
    assert len(grid) == 2 and all(len(v) >= 1 for v in grid.values()), m
    c = S.run_config(m, S.grid_points(grid)[0], f.tune_severity, 1, f)
    validate(c, tasks.TASKS)
    assert c.mode == "async" and c.seed == 1 and c.time_budget == f.budget
    assert c.clock.straggler_fraction == 0.25 and c.clock.straggler_slowdown == 4.0
  a = S.run_config("bi2clip-B+rate+comp", S.grid_points(f.methods["sync-bi2clip"][1])[0], 4.0, 0, f)
  assert a.asynchronous.scheme == "async" and a.asynchronous.rate.family == "polynomial"
  assert a.asynchronous.compensation.kind == "adaptive" and a.method == "bi2clip"
  assert (
    S.run_config(
      "sync-bi2clip", S.grid_points(f.methods["sync-bi2clip"][1])[0], 4.0, 0, f
    ).asynchronous.scheme
    == "sync"
  )
  d = S.run_config(
    "dcasgd", {"hparams.outer_lr": 0.1, "asynchronous.compensation.lam": 0.16}, 4.0, 0, f, 120.0
  )
  assert d.asynchronous.compensation.lam == 0.16 and d.local_steps == 1 and d.time_budget == 120


def test_unknown_family_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown family 'cifar'"):
    S.family("cifar")


def test_a_family_that_breaks_the_rules_is_refused():
  with pytest.raises(ValueError, match="claim 3a names a method the family does not run"):
    dataclasses.replace(study.TINY, methods={"bi2clip-A": study.TINY.methods["bi2clip-A"]})
  bad = dataclasses.replace(study.TINY, report_seeds=(0, 1, 2, 3, 4))
  with pytest.raises(sweep.ConfigError, match=r"family 'tiny'.report_seeds share \[0\]"):
    bad.check_seeds()


def test_spread_stats():
  st = S.spread_stats([0.80, 0.795, 0.79, 0.70, math.nan], chance=0.1)
  assert st["cells"] == 5 and st["diverged"] == 1
  assert st["best"] == 0.80 and st["worst"] == 0.1 and math.isclose(st["range"], 0.7)
  assert st["within_1pt"] == pytest.approx(3 / 5) and st["median"] == 0.79
  st = S.spread_stats([0.02, 0.03, 0.05, math.nan], mode="min")  # a loss grid
  assert st["best"] == 0.02 and st["worst"] == math.inf and st["diverged"] == 1
  assert st["within_2x"] == pytest.approx(2 / 4)


# ------------------------------------------------------------ the CLI on a tiny study (fakes)
TINY_ACC = dataclasses.replace(
  study.TINY,
  name="tiny_acc",
  config="async_fashion_mnist",
  methods={
    m: (v, {"hparams.inner_lr": [0.01, 0.03], "hparams.outer_upper": [0.1, 1.0]}, "u~")
    for m, (v, _, _) in study.TINY.methods.items()
  },
  bounds={"*": ["hparams.outer_upper=None,1.0"]},
  metric="eval/accuracy",
  targets=(0.5, 0.9),
  chance=0.1,
  matched=study._matched("2 × 2", [0.01, 0.03], {"bi2clip-A": [0.1, 1.0]}),
)


def test_the_cli_runs_a_tiny_study_under_the_rules_and_it_passes_the_check(
  tmp_path, monkeypatch, capsys
):
  out = _study(tmp_path, monkeypatch)
  sw = json.load(open(out / "sweep.json"))
  assert sw["rules"] == 2 and sw["unit"] == "time" and list(sw["settings"]) == ["S1", "S4"]
  assert sw["budgets"] == [5.0, 10.0, 20.0, 30.0] and sw["report_rounds"] == 30.0
  a = sw["methods"]["bi2clip-A"]
  # 0.03 was the high edge: the axis was extended (0.09, worse) so the kept point is interior.
  assert a["best_point"] == {"hparams.inner_lr": 0.03} and a["edges"] == []
  assert a["grid"]["inner_lr=0.09"]["extension"]
  assert a["runs"]["S1"] == [f"bi2clip-A/inner_lr=0.03/S1_seed{s}" for s in range(1, 6)]
  assert (out / "bi2clip-A/inner_lr=0.03/S4_seed0/summary.json").exists()  # tuning run too
  text = (out / "report.md").read_text()
  for part in (
    "## S1: clock.straggler_slowdown = 1.0",
    "| 5 simulated s | 10 simulated s | 20 simulated s | 30 simulated s | n |",
    "Tuned on seed(s) [0] at 20 simulated s in setting S4",
    "## Claims",
    "| 3a | bi2clip-A − sync-bi2clip | S4 | 30 |",
    "## Quality and goodput against clock.straggler_slowdown",
    "| bi2clip-A | 0.1",  # the loss at 30 s; goodput 1 without failures (faked)
    "goodput 1 ± 0 (n = 5)",
    "## Time to target",
    "## Staleness and server steps",
    "## Robustness over the tuning grids",
  ):
    assert part in text, part
  assert "p < 0.001, bi2clip-A better" in text
  assert (out / "curves_eval_loss_S4.png").stat().st_size > 1000
  assert study_check.check(str(out)) == []
  assert report.main([str(out), "--check"]) == 0
  # The one command that regenerates the tables from the stored runs gives the same report.
  assert report.main([str(out)]) == 0
  assert (out / "report.md").read_text() == text


def test_an_accuracy_study_has_its_robustness_grids(tmp_path, monkeypatch):
  out = _study(tmp_path, monkeypatch, TINY_ACC)
  text = (out / "report.md").read_text()
  assert (
    "within 1 pt" in text and "Matched sub-grids" in text and "| 2 × 2: bi2clip-A | 4 |" in text
  )
  assert "**bi2clip-A** (rows inner_lr, columns u~; * = kept)" in text
  assert "Simulated seconds to ≥ 0.5" in text
  for png in ("robustness_heatmaps.png", "robustness_boxplot.png", "curves_eval_accuracy_S1.png"):
    assert (out / png).stat().st_size > 1000
  assert study_check.check(str(out)) == []


def test_check_fails_on_an_async_study_with_an_open_edge(tmp_path, monkeypatch):
  out = _study(tmp_path, monkeypatch, dataclasses.replace(study.TINY, max_extensions=0))
  problems = study_check.check(str(out))
  assert any(
    ": edge: bi2clip-A kept inner_lr=0.03, on the open high edge of hparams.inner_lr; extend "
    "the grid or declare the bound in the bounds of family 'tiny'" in p
    for p in problems
  ), problems
  assert report.main([str(out), "--check"]) == 1


def test_check_of_a_folder_with_no_study_names_its_run_study_sh(tmp_path):
  (tmp_path / "run_study.sh").write_text("")
  (line,) = study_check.check(str(tmp_path))
  assert (
    line == f"{tmp_path}: study: no sweep.json here; re-run it with bash {tmp_path}/run_study.sh"
  )


def test_check_fails_on_an_async_study_with_too_few_seeds(tmp_path, monkeypatch):
  out = _study(tmp_path, monkeypatch)
  sw = json.load(open(out / "sweep.json"))
  a = sw["methods"]["bi2clip-A"]
  a["runs"]["S4"] = a["runs"]["S4"][:4]
  a["report_seeds"] = a["report_seeds"][:4]
  json.dump(sw, open(out / "sweep.json", "w"))
  problems = study_check.check(str(out))
  assert f"{out}: seeds: bi2clip-A has 4 report seeds; report on at least 5" in problems
  assert any("claim 3a needs 5 report seeds of bi2clip-A in S4, it has 4" in p for p in problems)


def test_check_fails_on_an_async_study_with_a_claim_short_of_seeds(tmp_path, monkeypatch):
  claim = dataclasses.replace(study.TINY.claims[0], min_seeds=8)
  f = dataclasses.replace(study.TINY, claims=(claim,))
  out = _study(tmp_path, monkeypatch, f)
  assert study_check.check(str(out)) == []  # the claim's methods ran on 8 seeds
  sw = json.load(open(out / "sweep.json"))
  sw["methods"]["sync-bi2clip"]["runs"]["S1"] = sw["methods"]["sync-bi2clip"]["runs"]["S1"][:5]
  json.dump(sw, open(out / "sweep.json", "w"))
  problems = study_check.check(str(out))
  assert any("claim 3a needs 8 report seeds of sync-bi2clip in S1, it has 5" in p for p in problems)
  assert any("sync-bi2clip has 5 report runs in S1 for its 8 report seeds" in p for p in problems)


def test_check_fails_on_an_async_study_of_mixed_commits(tmp_path, monkeypatch):
  out = _study(tmp_path, monkeypatch)
  rel = json.load(open(out / "sweep.json"))["methods"]["sync-bi2clip"]["runs"]["S4"][1]
  s = json.load(open(out / rel / "summary.json"))
  s["code"] = [{"commit": "b" * 40, "dirty": False}]
  json.dump(s, open(out / rel / "summary.json", "w"))
  (line,) = study_check.check(str(out))
  assert ": code: runs from 2 code versions (aaaaaaaaaa, bbbbbbbbbb)" in line


def test_check_fails_on_an_async_run_of_another_length_or_missing(tmp_path, monkeypatch):
  out = _study(tmp_path, monkeypatch)
  rel = json.load(open(out / "sweep.json"))["methods"]["bi2clip-A"]["runs"]["S1"][0]
  s = json.load(open(out / rel / "summary.json"))
  s["horizon"]["time_budget"] = 20.0
  json.dump(s, open(out / rel / "summary.json", "w"))
  (line,) = study_check.check(str(out))
  assert f": budget: run {rel} is 20.0 simulated s long, the study's are 30.0" in line
  os.remove(out / rel / "summary.json")
  assert any(f"run {rel} is missing" in p for p in study_check.check(str(out)))


def test_sharded_tuning_extends_once_every_shard_is_done(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(sweep, "run_cell", _fake_run_cell())
  w = str(tmp_path / "runs")
  base = ["--family", "tiny", "--workdir", w, "--phase", "tune"]
  assert cli.main(base + ["--shard", "0/2"]) == 0
  assert "other shards not finished" in capsys.readouterr().out
  assert cli.main(base + ["--shard", "1/2"]) == 0  # every cell done: it extends its methods
  assert cli.main(base + ["--shard", "0/2"]) == 0  # and this one the rest
  tuned, todo = S.kept_points(w, "tiny")
  assert todo == [] and all(t["edges"] == [] for t in tuned.values())
  assert cli.main(["--family", "tiny", "--workdir", w, "--phase", "edges"]) == 0
  assert "every kept point is inside its grid" in capsys.readouterr().out


@pytest.mark.parametrize(
  "argv,message",
  [
    (["--shard", "2/2"], "--shard '2/2': give i/n with 0 <= i < n"),
    (["--methods", "fedbuf"], "--methods: fedbuf not in family tiny"),
    (["--severities", "2"], "--severities 2: the family's are 1, 4"),
    (["--phase", "final"], "error: the tuning of sync-bi2clip, bi2clip-A is not finished"),
    (["--phase", "report"], "error: no method's tuning is finished in"),
  ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
  code = None
  try:
    code = cli.main(["--family", "tiny", "--workdir", str(tmp_path), *argv])
  except SystemExit as e:  # argparse
    code = e.code
  err = capsys.readouterr().err
  assert code == 2 and message in err, err
  assert "Traceback" not in err


@pytest.mark.slow  # a MiniLM forward pass: about 90 s on the shared CPU
def test_encode_once_is_the_head_only_minilm():
  """configs/async_movie_reviews.py's ``encode_once``: the same loss and metrics as the
  head-only MiniLM at the same parameters (the encoder's output computed once)."""
  import jax
  from _data_helpers import need
  from configs import async_movie_reviews

  need("vader")
  need("minilm")
  c = async_movie_reviews.get_config("runlocal")
  c.data.limit = 40
  assert c.data.encode_once and c.model.kwargs.trainable == "head"
  data_h, head = tasks.TASKS[c.task](c)
  c.data.encode_once = False
  data_b, full = tasks.TASKS[c.task](c)
  params = full.init(jax.random.key(3))
  assert jax.tree.all(
    jax.tree.map(lambda a, b: bool((a == b).all()), params, head.init(jax.random.key(3)))
  )
  params = jax.tree.map(lambda x: x + 0.3, params)  # not the initial head
  batch_b, batch_h = data_b.test, data_h.test  # 8 sentences
  assert batch_h["x"].shape == (len(batch_b["y"]), 384) and len(batch_b["y"]) >= 4
  np.testing.assert_allclose(head.loss(params, batch_h), full.loss(params, batch_b), rtol=1e-4)
  mh, mb = head.evaluate(params, batch_h), full.evaluate(params, batch_b)
  assert set(mh) == set(mb)
  for k in mh:
    np.testing.assert_allclose(mh[k], mb[k], rtol=1e-4, atol=1e-5)
