"""experiments.retime: a synchronous run put on another network's clock equals the run made
at that network (sim_time bit for bit), and runs that cannot be retimed say why."""

import json
import os

import pytest

from experiments import retime
from experiments.errors import UserError
from experiments.metrics_log import read_jsonl

# What a retimed summary may differ in from the real run's: where it is and the wall clock.
OWN = {"workdir", "wall_s", "per_s", "rounds_per_s", "retimed_from"}


def _config(bandwidth, **fields):
  from configs.common import load
  from experiments.cli import set_field

  c = load("configs/synthetic.py:runlocal,wallclock")
  c.rounds, c.eval_every, c.progress = 6, 3, False
  c.network.bandwidth_gbps = bandwidth
  for k, v in fields.items():
    set_field(c, k, v)
  return c


def _run(tmp_path, name, bandwidth, **fields):
  from experiments.engines.loop import train

  d = str(tmp_path / name)
  train(_config(bandwidth, **fields), d, quiet=True)
  return d


def _same_run(retimed, real):
  assert read_jsonl(os.path.join(retimed, "metrics.jsonl")) == read_jsonl(
    os.path.join(real, "metrics.jsonl")
  )
  a = json.load(open(os.path.join(retimed, "summary.json")))
  b = json.load(open(os.path.join(real, "summary.json")))
  assert {k: v for k, v in a.items() if k not in OWN} == {
    k: v for k, v in b.items() if k not in OWN
  }
  assert json.load(open(os.path.join(retimed, "config.json"))) == json.load(
    open(os.path.join(real, "config.json"))
  )


# Overlapped streaming is the hardest case: the bytes change from round to round (two
# fragments of 200 and 4 bytes) and the clock carries each client's own times across rounds.
OVERLAPPED = {"fragments": 2, "overlap.delay": 1, "overlap.alpha": 0.5}


@pytest.mark.slow  # two real runs: ~10 s idle, ~20 s on the loaded 2-core machine
def test_retimed_overlapped_streaming_run_equals_the_run_at_that_bandwidth(tmp_path):
  fast = _run(tmp_path, "fast", 1.0, **OVERLAPPED)
  slow = _run(tmp_path, "slow", 0.1, **OVERLAPPED)
  out = str(tmp_path / "retimed")
  s = retime.retime_run(fast, out, bandwidth_gbps=0.1)
  _same_run(out, slow)
  assert s["retimed_from"] == os.path.abspath(fast)
  t_fast = [r["sim_time"] for r in read_jsonl(os.path.join(fast, "metrics.jsonl"))]
  t_slow = [r["sim_time"] for r in read_jsonl(os.path.join(out, "metrics.jsonl"))]
  assert all(b > a for a, b in zip(t_fast, t_slow))  # the slow link did change the clock
  with pytest.raises(UserError, match="not fields of config.network"):
    retime.retime_run(fast, str(tmp_path / "x"), bandwith_gbps=10)


@pytest.mark.slow
@pytest.mark.parametrize(
  "fields",
  [
    {},
    {
      "compression.kind": "int",
      "compression.bits": 4,
      "compression.block": 64,
      "compression.down": "int",
      "network.latency_ms": 5.0,
    },
  ],
  ids=["fp32", "int4-latency"],
)
def test_retimed_runs_equal_real_runs(tmp_path, fields):
  real = _run(tmp_path, "real", 100.0, **fields)
  base = _run(tmp_path, "base", 1.0, **fields)
  out = str(tmp_path / "retimed")
  retime.retime_run(base, out, bandwidth_gbps=100.0)
  _same_run(out, real)


def _fake(d, config: dict, rows):
  os.makedirs(d, exist_ok=True)
  json.dump(config, open(os.path.join(d, "config.json"), "w"))
  json.dump({"report_metric": "eval/loss"}, open(os.path.join(d, "summary.json"), "w"))
  with open(os.path.join(d, "metrics.jsonl"), "w") as f:
    for r in rows:
      f.write(json.dumps(r) + "\n")
  return d


def test_runs_that_cannot_be_retimed_say_why(tmp_path):
  c = _config(1.0).to_dict()
  rows = [{"round": 1, "sim_time": 1.0, "train/bytes_up": 4.0, "train/bytes_down": 4.0}]
  with pytest.raises(UserError, match="asynchronous run"):
    retime.retime_run(
      _fake(str(tmp_path / "a"), dict(c, mode="async"), rows), "o", bandwidth_gbps=1
    )
  with pytest.raises(UserError, match="participation=0"):
    retime.retime_run(_fake(str(tmp_path / "p"), dict(c, participation=4), rows), "o")
  exported = [{"round": 3, "sim_time": 1.0, "eval/loss": 1.0}]  # an exported study's rows
  with pytest.raises(UserError, match="lacks the bytes of rounds"):
    retime.retime_run(_fake(str(tmp_path / "e"), c, exported), "o")
  with pytest.raises(UserError, match="not what its own links give"):  # sim_time is wrong
    retime.retime_run(_fake(str(tmp_path / "w"), c, rows), "o")
