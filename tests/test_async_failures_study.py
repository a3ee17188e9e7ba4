"""The failures study (experiments/async_study/, families ``failures_*``): the failure rate
as the condition axis of a family, and the whole pipeline (tune, final, report, --check) on
the tiny failures family with faked runs, in seconds."""

import json

import numpy as np
import pytest

from experiments import async_study as S
from experiments import report, study_check, tasks
from experiments.async_study import study
from experiments.engines import asynchronous as async_engine
from experiments.validate import validate
from tailopt.asynchronous import membership

from _async_study_helpers import run_study


def test_the_failure_rate_is_the_condition_of_the_failures_families():
  f = S.family("failures_synthetic")
  assert set(f.methods) == {"sync-bi2clip", "quorum-bi2clip", "fedbuff", "bi2clip-A"}
  assert f.severities == (0.0, 0.0025, 0.0125, 0.05) and f.tune_severity == 0.0125
  assert f.setting(0.0125) == "F0.0125" and f.setting(0.0) == "F0"
  # Hand-checked: lambda / (lambda + mu) with mu = 0.05: 0.0025/0.0525, 0.0125/0.0625, 0.05/0.1.
  assert f.notes == {
    0.0: "0% of time down",
    0.0025: "5% of time down",
    0.0125: "20% of time down",
    0.05: "50% of time down",
  }
  point = {"hparams.inner_lr": 0.003, "hparams.outer_upper": 0.03}
  c = S.run_config("quorum-bi2clip", point, 0.0125, 1, f)
  assert (c.clock.failure_rate, c.clock.rejoin_rate) == (0.0125, 0.05)
  assert (c.clock.straggler_fraction, c.clock.straggler_slowdown) == (0.25, 1.0)
  a = c.asynchronous
  assert (a.scheme, a.buffer_size, a.min_quorum, a.grace_k) == ("quorum", 8, 4, 3.0)
  assert (c.seed, c.clock.seed, c.time_budget, c.hparams.inner_lr) == (1, 1, 700.0, 0.003)
  clock = async_engine.clock_config(c)  # what the simulator gets
  assert (clock.failure_rate, clock.rejoin_rate, clock.straggler_slowdown) == (0.0125, 0.05, 1.0)
  assert S.run_rel("quorum-bi2clip", point, 0.0125, 1, f) == (
    "quorum-bi2clip/inner_lr=0.003,outer_upper=0.03/F0.0125_seed1"
  )
  assert S.run_config("sync-bi2clip", point, 0.0, 2, f).clock.failure_rate == 0.0
  # The straggler families are unchanged: their condition and folder names.
  s = S.run_config("bi2clip-A", point, 16.0, 1)
  assert (s.clock.straggler_slowdown, s.clock.failure_rate) == (16.0, 0.0)
  assert S.run_rel("bi2clip-A", point, 16.0, 1).endswith("/S16_seed1")


def test_the_down_fraction_of_the_notes_is_the_simulators():
  """A worker of the failures study at lambda = 0.0125, mu = 0.05 is down about 20% of a
  long horizon (the alternating exponential periods of ``membership.Timeline``)."""
  horizon = 200_000.0  # ~2,000 up/down cycles of 100 s on average
  fractions = []
  for w in range(3):
    t = membership.Timeline(0.0125, 0.05, np.random.default_rng([7, 2, w]))
    t.up_at(horizon)
    down = sum(min(u, horizon) - d for d, u in zip(t.down, t.up) if d < horizon)
    fractions.append(down / horizon)
  np.testing.assert_allclose(fractions, 0.2, atol=0.02)


@pytest.mark.parametrize("name", ["failures_synthetic", "failures_movie_reviews"])
def test_every_run_of_the_failures_families_validates(name):
  f = S.family(name)
  assert f.condition == "clock.failure_rate" and len(f.severities) == 4
  assert f.severities[0] == 0.0 and f.seeds_of("fedbuff") == (1, 2, 3, 4, 5)
  assert not set(f.tune_seeds) & set(f.report_seeds)
  for m, (_, grid, _) in f.methods.items():
    assert 3 <= len(grid["hparams.inner_lr"]) <= 4, m
    for v in f.severities:
      validate(S.run_config(m, S.grid_points(grid)[0], v, 1, f), tasks.TASKS)
  (f1,) = [c for c in f.claims if c.name == "F1"]
  assert (f1.a, f1.b, f1.severities) == ("quorum-bi2clip", "sync-bi2clip", f.severities[1:])


def test_a_family_with_a_bad_condition_is_refused():
  import dataclasses

  with pytest.raises(ValueError, match="notes name values not in severities"):
    dataclasses.replace(study.TINY_FAILURES, notes={0.3: "x"})
  with pytest.raises(ValueError, match="claim F1 is at values not in"):
    claim = dataclasses.replace(study.TINY_FAILURES.claims[0], severities=(0.3,))
    dataclasses.replace(study.TINY_FAILURES, claims=(claim,))


@pytest.mark.slow  # a study end to end, not an entry path (CI runs the slow tests)
def test_the_tiny_failures_study_runs_end_to_end_and_passes_the_check(tmp_path, monkeypatch):
  out = run_study(tmp_path, monkeypatch, study.TINY_FAILURES)
  sw = json.load(open(out / "sweep.json"))
  assert sw["settings"] == {
    "F0": {"clock.failure_rate": 0.0},
    "F0.05": {"clock.failure_rate": 0.05},
  }
  assert sw["tune_setting"] == "F0.05" and sw["study"]["condition"] == "clock.failure_rate"
  assert sw["study"]["notes"] == {"F0": "0% of time down", "F0.05": "20% of time down"}
  q = sw["methods"]["quorum-bi2clip"]
  assert q["best_point"] == {"hparams.inner_lr": 0.03} and q["edges"] == []
  assert q["runs"]["F0.05"] == [f"quorum-bi2clip/inner_lr=0.03/F0.05_seed{s}" for s in range(1, 6)]
  cfg = json.load(open(out / q["runs"]["F0.05"][0] / "config.json"))
  assert cfg["clock"]["failure_rate"] == 0.05 and cfg["clock"]["rejoin_rate"] == 0.2
  text = (out / "report.md").read_text()
  for part in (
    "## F0.05: clock.failure_rate = 0.05 (20% of time down)",
    "## Quality and goodput against clock.failure_rate",
    "| method | F0 (0% of time down) | F0.05 (20% of time down) |",
    # The faked goodput, by hand: 1 - 2 * 0.05 (quorum), 1 - 4 * 0.05 (wait-for-all).
    "goodput 0.9 ± 0 (n = 5)",
    "goodput 0.8 ± 0 (n = 5)",
    # The faked loss, by hand: wait-for-all 0.2 + 2 * 0.05 worse, quorum 0.05 worse.
    "| F1 | quorum-bi2clip − sync-bi2clip | F0.05 | 30 | -0.25 (p < 0.001, quorum-bi2clip better)",
  ):
    assert part in text, part
  assert (out / "quality_goodput.png").stat().st_size > 1000
  assert study_check.check(str(out)) == []
  assert report.main([str(out), "--check"]) == 0
