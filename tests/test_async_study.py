"""experiments/async_study.py: the families, their run configs, and the accuracy report."""

import json
import math
import os

import numpy as np
import pytest

from experiments import async_study as S
from experiments.validate import validate
from experiments import tasks


def test_synthetic_study_is_the_committed_one():
  f = S.family("synthetic")
  assert f.methods is S.METHODS and f.budget == S.BUDGET == 700.0
  assert f.severities == (1.0, 4.0, 16.0) and f.seeds == (0, 1)
  assert len(S.tune_jobs()) == sum(len(S.grid_points(g)) for _, g, _ in S.METHODS.values())
  # The run of the committed run_study.sh's example (its config.json fields).
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
  assert f.metric == "eval/accuracy" and f.higher_is_better and len(f.seeds) >= 3
  assert f.severities == (1.0, 4.0, 16.0) and f.tune_severity == 4.0
  dirs = {S.run_dir("w", *job) for job in S.tune_jobs(f)}
  assert len(dirs) == len(S.tune_jobs(f))  # no two runs share a directory
  row = S.tune_jobs(f, 1, {"hparams.inner_lr": 0.1})  # one grid row on another seed
  assert row and all(j[1]["hparams.inner_lr"] == 0.1 and j[2:] == (4.0, 1) for j in row)
  assert len(row) < len(S.tune_jobs(f)) and not S.tune_jobs(f, where={"hparams.inner_lr": 5.0})
  for m in S.MR_FULL if name == "movie_reviews" else S.FM_FULL:  # the robustness grids
    assert all(len(v) >= 3 for v in f.methods[m][1].values()), m
  assert set(f.final_methods) <= set(f.methods) and "sync-bi2clip" in f.final_methods
  assert f.seeds_of("sync-bi2clip") == (0, 1, 2)
  assert f.seeds_of("dcasgd") == (0, 1, 2)  # every method on 3 seeds, both families
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
    "dcasgd", {"hparams.outer_lr": 0.1, "asynchronous.compensation.lam": 0.16}, 4.0, 0, f
  )
  assert d.asynchronous.compensation.lam == 0.16 and d.local_steps == 1


def test_unknown_family_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown family 'cifar'"):
    S.family("cifar")


def test_spread_stats():
  st = S.spread_stats([0.80, 0.795, 0.79, 0.70, math.nan], chance=0.1)
  assert st["cells"] == 5 and st["diverged"] == 1
  assert st["best"] == 0.80 and st["worst"] == 0.1 and math.isclose(st["range"], 0.7)
  assert st["within_1pt"] == pytest.approx(3 / 5) and st["median"] == 0.79


def _fake_run(d, acc_curve, steps=10):
  os.makedirs(d, exist_ok=True)
  with open(os.path.join(d, "metrics.jsonl"), "w") as fh:
    for i, (t, a) in enumerate(acc_curve):
      fh.write(json.dumps({"round": i + 1, "time": t, "eval/accuracy": a}) + "\n")
  json.dump(
    {
      "final": {"eval/accuracy": acc_curve[-1][1]},
      "diverged": False,
      "report_metric": "eval/accuracy",
      "report_mode": "max",
      "server_steps": steps,
      "sim_time": acc_curve[-1][0],
    },
    open(os.path.join(d, "summary.json"), "w"),
  )
  json.dump({"max": 3, "mean": 1.5}, open(os.path.join(d, "tau.json"), "w"))


def test_accuracy_report_end_to_end(tmp_path):
  g = {"hparams.inner_lr": [0.1, 0.3, 1.0], "hparams.outer_upper": [0.01, 0.1]}
  methods = {
    "sync-bi2clip": ("sync", g, "u~"),
    "bi2clip-A": ("", g, "u~"),
    "bi2clip-B+rate+comp": ("scheme_b,rate,comp", g, "u~"),
    "bi2clip-A+rate+comp": ("rate,comp", g, "u~"),
    "fedbuff": (
      "fedbuff",
      {"hparams.inner_lr": [0.1, 0.3, 1.0], "hparams.outer_lr": [0.5, 1.0]},
      "server lr",
    ),
    "fedasync": ("fedasync", g, "a"),
    "dcasgd": ("dcasgd", g, "lam"),
  }
  f = S.Family(
    name="fake",
    config="async_fashion_mnist",
    base="study",
    methods=methods,
    budget=60.0,
    eval_every_time=5.0,
    severities=(1.0, 4.0, 16.0),
    tune_severity=4.0,
    seeds=(0, 1, 2),
    metric="eval/accuracy",
    targets=(0.7, 0.8),
    out="",
    baselines=("sync-bi2clip", "fedbuff", "fedasync", "dcasgd"),
    bi2clip=("bi2clip-A", "bi2clip-B+rate+comp", "bi2clip-A+rate+comp"),
    chance=0.1,
    title="fake",
    matched=S._matched("2 × 2", [0.1, 0.3], {"bi2clip-A": [0.01, 0.1], "fedbuff": [0.5, 1.0]}),
  )
  rng = np.random.default_rng(0)
  for m, (_, grid, _) in methods.items():
    for k, p in enumerate(S.grid_points(grid)):
      top = 0.6 + 0.05 * k * (p.get("hparams.inner_lr") != 1.0)  # best cell inside
      for seed in f.seeds:
        curve = [(5.0 * i, top * (1 - 0.5**i) + 0.01 * rng.random()) for i in range(1, 13)]
        _fake_run(S.run_dir(str(tmp_path / "w"), m, p, 4.0, seed), curve)
  assert all(
    "high edge" not in e and "low edge" not in e or "outer" in e
    for e in S.edge_report(str(tmp_path / "w"), f)
  )
  # The final phase at some severities only (--severities): kept points, every seed.
  jobs = S.final_jobs(str(tmp_path / "w"), f, only=["fedbuff", "dcasgd"], severities=[16.0])
  assert len(jobs) == 6 and {j[2] for j in jobs} == {16.0}
  assert {j[0] for j in jobs} == {"fedbuff", "dcasgd"}
  with pytest.raises(ValueError, match="severities"):
    S.final_jobs(str(tmp_path / "w"), f, severities=[2.0])
  for m, p, sev, seed in jobs:  # S = 16 for two methods only; S = 1 for none
    _fake_run(S.run_dir(str(tmp_path / "w"), m, p, sev, seed), [(5.0, 0.3), (60.0, 0.5)])
  out = tmp_path / "out"
  text = S.report(str(tmp_path / "w"), str(out), f)
  assert "Robustness" in text and "| fedbuff |" in text and "within 1 pt" in text
  res = json.load(open(out / "results.json"))
  assert set(res["grids"]) == set(methods) and len(res["methods"]["dcasgd"]["runs"]["4"]) == 3
  assert res["grids"]["fedbuff"]["stats"]["cells"] == 6
  assert [(g["method"], g["stats"]["cells"]) for g in res["matched"]] == [
    ("bi2clip-A", 4),
    ("fedbuff", 4),
  ]
  assert "matched sub-grids" in text
  assert (
    len(res["methods"]["fedbuff"]["runs"]["16"]) == 3
    and res["methods"]["fedbuff"]["runs"]["1"] == []
  )
  assert res["methods"]["bi2clip-A"]["runs"]["16"] == [] and "not run" in text
  for png in (
    "accuracy_vs_time_S1.png",
    "accuracy_vs_time_S16.png",
    "accuracy_vs_time_S4.png",
    "accuracy_vs_steps_S4.png",
    "robustness_boxplot.png",
    "robustness_heatmaps.png",
  ):
    assert (out / png).stat().st_size > 1000


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
