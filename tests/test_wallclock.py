"""experiments.wallclock: the study's pipeline end to end on the tiny task (tuning with a grid
extension, report runs, the synchronous runs retimed to the other bandwidth, sweep.json, the
report and its check) with a fake run maker whose curves and clock are known, so the
time-to-target table is checked against a hand computation."""

import dataclasses
import json
import math
import os

import pytest

from experiments import report, retime, study_check
from experiments import stats as stats_lib
from experiments.wallclock import jobs, study
from experiments.wallclock import report as wc_report

# The tiny task's clock with no job noise: a round's compute is the straggler's z steps,
# 5 x 4 x the balanced step time of 51 float32 parameters at 1 Gb/s.
BASE = 2 * 51 * 4 * 8 / 1e9 / 5
COMPUTE = 5 * 4 * BASE
BYTES = {"fedavg": 204.0, "bi2clip-int4": 36.0}  # per round, each way (made up)
SCALE = {"fedavg": 2.0, "bi2clip-int4": 1.5, "async-bi2clip": 3.0}


def _arm(c) -> str:
  if c.get("mode") == "async":
    return "async-bi2clip"
  return "bi2clip-int4" if c.compression.kind == "int" else "fedavg"


def _loss(arm, lr, seed, r) -> float:
  """A made-up curve: best at lr 0.003 or 0.01 (each arm's grid), odd seeds 1.2x worse."""
  lr_penalty = 1 + abs(math.log10(lr / (0.003 if arm == "fedavg" else 0.01)))
  per = 10 if arm == "async-bi2clip" else 5  # evaluated every 10 server steps / 5 rounds
  return SCALE[arm] * lr_penalty * (1.2 if seed % 2 else 1.0) * per / r


def async_time(v, bandwidth):
  """The fake asynchronous run's clock: v server steps."""
  return v * (4e-6 + 8 * 408 / (bandwidth * 1e9))


def fake_runner(config, run_dir):
  """Writes the run folder a run of ``config`` would (rows, summary, config), with the made
  up curve and a sync run's real clock (retime.sim_times) without job noise."""
  os.makedirs(run_dir, exist_ok=True)
  config.clock.job_noise = "none"
  arm, lr, seed = _arm(config), config.hparams.inner_lr, config.seed
  every = config.eval_every
  if arm == "async-bi2clip":
    n = config.server_steps
    bw = config.network.bandwidth_gbps
    rows = [
      {"round": v, "time": async_time(v, bw), "sim_time": async_time(v, bw)}
      for v in range(1, n + 1)
    ]
  else:
    n = config.rounds
    b = BYTES[arm]
    rows = [
      {"round": r, "train/bytes_up": b, "train/bytes_down": b, "train/bytes_cumulative": 2 * b * r}
      for r in range(1, n + 1)
    ]
    for r, t in zip(rows, retime.sim_times(config, rows)):
      r["sim_time"] = float(t)
  for r in rows:
    if r["round"] % every == 0:
      r["eval/loss"] = _loss(arm, lr, seed, r["round"])
  with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  json.dump(config.to_dict(), open(os.path.join(run_dir, "config.json"), "w"))
  summary = dict(
    report_metric="eval/loss",
    report_mode="min",
    final={"eval/loss": rows[-1]["eval/loss"]},
    diverged=False,
    total=n,
    done=n,
    sim_time=rows[-1]["sim_time"],
    wall_s=0.0,
    code=[{"commit": "0" * 40, "dirty": False}],
    engine_rows=[],
  )
  json.dump(summary, open(os.path.join(run_dir, "summary.json"), "w"))
  return summary


def _round_time(arm, bandwidth):
  return COMPUTE + 8 * 2 * BYTES[arm] / (bandwidth * 1e9)


@pytest.mark.slow  # a study end to end (10 s), not an entry path (CI runs the slow tests)
def test_tiny_study_end_to_end_against_a_hand_computation(tmp_path):
  wd = str(tmp_path / "study")
  record = jobs.study(wd, "tiny", log=lambda s: None, runner=fake_runner)
  # fedavg's best (0.003) sat on the low edge of [0.003, 0.01]: extended once, to 0.0009.
  assert record["methods"]["fedavg"]["best_point"] == {"hparams.inner_lr": 0.003}
  assert {c["point"]["hparams.inner_lr"] for c in record["methods"]["fedavg"]["grid"].values()} == {
    0.0009,
    0.003,
    0.01,
  }
  runs = record["methods"]["fedavg"]["runs"]
  assert runs["1Gbps"][0] == "fedavg/inner_lr=0.003/seed1"
  assert runs["0.1Gbps"][0] == "fedavg/inner_lr=0.003/0.1Gbps_seed1"  # retimed
  assert record["methods"]["async-bi2clip"]["report_rounds"] == 40  # 2 x 20 rounds
  report.write_report(wd)
  assert study_check.check(wd) == []
  text = open(os.path.join(wd, "report.md")).read()
  # The bytes table counts each report run once, not once per bandwidth it was retimed to.
  cost = {(g["method"], g["point"], g["rounds"]): g for g in report.cost_stats(wd)}
  assert cost[("fedavg", "inner_lr=0.003", 20)]["final"].n == 5
  assert cost[("fedavg", "inner_lr=0.003", 20)]["bytes"] == 2 * 204 * 20
  assert "## Time to target" in text and os.path.exists(os.path.join(wd, "quality_vs_time.png"))

  sweep = json.load(open(os.path.join(wd, "sweep.json")))
  by_setting = {st: report.method_stats(wd, st) for st in ("0.1Gbps", "1Gbps")}
  tabs = wc_report.time_tables(sweep, by_setting)
  seeds = [1, 2, 3, 4, 5]
  for bw, st in ((0.1, "0.1Gbps"), (1.0, "1Gbps")):
    # Target 1.0: fedavg (2, 1, 0.67, 0.5 / odd seeds x1.2) at round 10 / 15; int4 (1.5, 0.75,
    # ...) at round 10 / 10; async (3, 1.5, 1, 0.75 per 10 steps / x1.2) at step 30 / 40.
    fed = [(15 if s % 2 else 10) * _round_time("fedavg", bw) for s in seeds]
    int4 = [10 * _round_time("bi2clip-int4", bw) for s in seeds]
    asy = [async_time(40 if s % 2 else 30, bw) for s in seeds]
    got = tabs[st][1.0]["arms"]
    for name, want in (("fedavg", fed), ("bi2clip-int4", int4), ("async-bi2clip", asy)):
      assert got[name]["times"] == pytest.approx(want, rel=1e-12), (st, name)
    w = tabs[st][1.0]["winner"]
    assert (w["winner"], w["runner_up"], w["decided"]) == ("bi2clip-int4", "fedavg", True)
    assert w["p"] == pytest.approx(stats_lib.welch_p(int4, fed))
    # Target 0.5: only int4 reaches it on every seed (round 15 / 20); fedavg's odd seeds and
    # every async run miss it, but ran past int4's mean time: decided.
    w = tabs[st][0.5]["winner"]
    assert (w["winner"], w["runner_up"], w["decided"]) == ("bi2clip-int4", None, True)
    int4_half = [(20 if s % 2 else 15) * _round_time("bi2clip-int4", bw) for s in seeds]
    assert tabs[st][0.5]["arms"]["bi2clip-int4"]["times"] == pytest.approx(int4_half, rel=1e-12)
  # At 0.1 Gb/s int4's rounds are 2.4x shorter than fedavg's; at 1 Gb/s 1.2x.
  assert "| 0.1Gbps | **bi2clip-int4** (faster than fedavg" in text
  # The exported study (what is committed: evaluated rows only) keeps the rules and tables.
  out = str(tmp_path / "exported")
  report.export(wd, out)
  assert study_check.check(out) == []
  exported = {st: report.method_stats(out, st) for st in ("0.1Gbps", "1Gbps")}
  again = wc_report.time_tables(sweep, exported)
  assert (
    again["0.1Gbps"][1.0]["arms"]["fedavg"]["times"]
    == tabs["0.1Gbps"][1.0]["arms"]["fedavg"]["times"]
  )
  assert open(os.path.join(out, "report.md")).read() == text.replace(
    "# Study study", "# Study exported"
  )


def test_winner_is_undecided_when_a_missing_arm_stopped_earlier():
  s = lambda xs: dict(times=xs, ends=[10.0] * len(xs), summary=stats_lib.summarize(xs), n=len(xs))
  a, b = s([4.0, 5.0, 6.0]), s([7.0, 8.0, 9.0])
  c = dict(times=[None, 3.0, 3.0], ends=[4.5, 9.0, 9.0], summary=None, n=3)
  w = wc_report.winner({"a": a, "b": b, "c": c})  # c's first run stopped at 4.5 < 5 (a's mean)
  assert (w["winner"], w["runner_up"], w["decided"], w["open"]) == ("a", "b", False, ["c"])
  assert "undecided: c" in wc_report.verdict(w)
  c["ends"][0] = 5.5  # stopped after a's mean: a is first
  assert wc_report.winner({"a": a, "b": b, "c": c})["decided"]
  assert wc_report.winner({"c": c})["winner"] is None


def test_tasks_are_valid_and_the_clock_is_balanced_at_the_tuning_bandwidth():
  from configs.common import load

  for t in study.TASKS.values():
    t.check_seeds()
    assert len(t.report_seeds) >= 5 and t.tune_bandwidth in t.bandwidths
  # The real tasks: the float32 model up and down a 1 Gb/s link takes z fast steps.
  for name, params in (("synthetic", 51), ("movie_reviews", 384 * 2 + 2)):
    c = load(study.TASKS[name].config)
    assert c.clock.base_step_time * c.local_steps == pytest.approx(2 * 4 * params * 8 / 1e9)
    assert c.network.bandwidth_gbps == study.TUNE_BANDWIDTH
  with pytest.raises(ValueError, match="tune_bandwidth"):
    dataclasses.replace(study.TINY, tune_bandwidth=3.0)
  cfg = jobs.run_config("tiny", "async-bi2clip", {"hparams.inner_lr": 0.01}, 2, 0.1, "report")
  sync = jobs.run_config("tiny", "fedavg", {"hparams.inner_lr": 0.01}, 2, 0.1, "report")
  assert cfg.server_steps == 2 * sync.rounds and cfg.asynchronous.buffer_size == 4
  assert cfg.clock.to_dict().items() >= sync.clock.to_dict().items()  # the task's clock


@pytest.mark.slow
def test_tiny_study_with_real_runs(tmp_path):
  # The synchronous arms for real (the asynchronous arm's runs take minutes here): tuned,
  # reported at 1 Gb/s, retimed to 0.1 Gb/s, checked (but for the worktree's local edits).
  wd = str(tmp_path / "study")
  record = jobs.study(wd, "tiny", log=lambda s: None, arms=["fedavg", "bi2clip-int4"])
  report.write_report(wd)
  problems = [p for p in study_check.check(wd) if ": code: " not in p]
  assert problems == []
  for arm in ("fedavg", "bi2clip-int4"):
    runs = record["methods"][arm]["runs"]
    for fast, slow in zip(runs["1Gbps"], runs["0.1Gbps"]):
      a = json.load(open(os.path.join(wd, fast, "summary.json")))
      b = json.load(open(os.path.join(wd, slow, "summary.json")))
      assert b["final"] == a["final"] and b["sim_time"] > a["sim_time"]


def test_cli_errors_are_one_line(tmp_path, capsys):
  from experiments.wallclock.__main__ import main

  assert main(["--task", "nope", "--workdir", str(tmp_path)]) == 2
  assert main(["--task", "tiny", "--workdir", str(tmp_path), "--arms", "foo"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [
    "error: --task: unknown task 'nope'; choose one of ['movie_reviews', 'synthetic', 'tiny'].",
    "error: --arms ['foo'] are not arms of task tiny; use fedavg, bi2clip-int4, async-bi2clip.",
  ]


def test_every_run_config_of_the_study_validates():
  from experiments import validate

  for t in study.TASKS.values():
    for arm, a in t.arms.items():
      point = study.grid_points(a.grid)[0]
      for bw in t.bandwidths:
        c = jobs.run_config(t, arm, point, 1, bw, "report")
        assert validate.problems(c) == [], (t.name, arm, bw)
        assert c.network.bandwidth_gbps == bw and c.clock.seed == 1
