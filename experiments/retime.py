"""A stored synchronous run on another network: the same rounds, the ``sim_time`` a run with
those links would have logged.

A synchronous run's numbers do not depend on ``config.network``: the links only set the
simulated clock (:class:`tailopt.timing.SyncClock`), a function of each round's logged
``train/bytes_up`` and ``train/bytes_down``, the clock's compute draws and the overlap delay.
So a run made once can be put on the time axis of any bandwidth without running it again:

    from experiments import retime
    retime.retime_run("runs/bi2clip/seed1", "runs/bi2clip/bw10_seed1", bandwidth_gbps=10)

writes a run folder (``config.json`` with the new ``network``, ``summary.json``,
``metrics.jsonl`` with every row's ``sim_time`` recomputed, ``code.json``) equal to what the
run at those links writes, ``sim_time`` bit for bit (tests/test_retime.py checks it against
real runs). It needs every round's row (a full ``metrics.jsonl``, not an exported one) and
full participation (the sampled participants are not logged); asynchronous runs cannot be
retimed (their event order depends on the links).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from experiments.errors import UserError
from experiments.metrics_log import read_jsonl
from experiments.rundir import atomic_write

BYTE_KEYS = ("train/bytes_up", "train/bytes_down")


def _config(run_dir: str):
  from ml_collections import config_dict

  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise UserError(f"{run_dir} has no config.json; give a run folder of experiments.main.")
  return config_dict.ConfigDict(json.load(open(path)))


def _check_retimable(run_dir: str, config) -> None:
  if config.get("mode", "sync") != "sync":
    raise UserError(
      f"{run_dir} is an asynchronous run: its event order depends on the links; run it "
      "again with --config.network.* set instead of retiming it."
    )
  if config.get("participation"):
    raise UserError(
      f"{run_dir} samples {config.participation} clients a round, and the participants "
      "are not logged; retime only runs with config.participation=0, or run it again."
    )


def sim_times(config, rows: list[dict]) -> np.ndarray:
  """The simulated time at the end of every round ``1..n`` of a synchronous run of
  ``config`` whose per-round rows (``round``, ``train/bytes_up``, ``train/bytes_down``) are
  ``rows``: :meth:`tailopt.timing.SyncClock.times` from round 0 (what the run logs)."""
  from experiments.engines import build

  per_round = {int(r["round"]): r for r in rows if all(k in r for k in BYTE_KEYS)}
  n = max(per_round, default=0)
  missing = [t for t in range(1, n + 1) if t not in per_round]
  if missing or not n:
    raise UserError(
      f"retime: the run's metrics.jsonl lacks the bytes of rounds {missing[:5] or 'all'}; "
      "retime the full run folder (an exported study keeps only its evaluated rows)."
    )
  clock = build.sync_clock(config)
  up = [float(per_round[t]["train/bytes_up"]) for t in range(1, n + 1)]
  down = [float(per_round[t]["train/bytes_down"]) for t in range(1, n + 1)]
  return clock.times(0, 0.0, up, down)


def _retimed_summary(summary: dict, config, sim_time: float) -> dict:
  """``summary`` with the simulated time and the fingerprint of ``config`` (its wall time
  stays the original run's: the compute it cost)."""
  from experiments import checkpoint

  summary = dict(summary, sim_time=sim_time)
  summary["fingerprint"] = checkpoint.config_fingerprint(config.to_dict())
  summary["engine_rows"] = [
    [k, f"{sim_time:.1f} s"] if k == "simulated time" else [k, v]
    for k, v in summary.get("engine_rows", [])
  ]
  return summary


def retime_run(run_dir: str, out_dir: str, **network) -> dict:
  """Writes ``run_dir`` at the links ``network`` (fields of ``config.network``, e.g.
  ``bandwidth_gbps=10``) to ``out_dir``; returns its summary. Raises a one-line UserError
  for a run that cannot be retimed, or whose logged ``sim_time`` its own links do not
  reproduce (made by other code)."""
  config = _config(run_dir)
  _check_retimable(run_dir, config)
  summary_path = os.path.join(run_dir, "summary.json")
  if not os.path.exists(summary_path):
    raise UserError(f"{run_dir} has no summary.json: the run is not finished; finish it first.")
  rows = read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
  logged = [r["sim_time"] for r in rows if r.get("round", 0) > 0 and "sim_time" in r]
  own = sim_times(config, rows)
  if list(own[[int(r["round"]) - 1 for r in rows if r.get("round", 0) > 0]]) != logged:
    raise UserError(
      f"{run_dir}: its logged sim_time is not what its own links give; it was made by other "
      "code: run it again with this code before retiming it."
    )
  unknown = set(network) - set(config.network.keys())
  if unknown:
    raise UserError(f"retime: {sorted(unknown)} are not fields of config.network.")
  config.network.update(network)
  times = sim_times(config, rows)
  summary = _retimed_summary(json.load(open(summary_path)), config, float(times[-1]))
  summary.update(workdir=os.path.abspath(out_dir), retimed_from=os.path.abspath(run_dir))
  os.makedirs(out_dir, exist_ok=True)
  lines = []
  for r in rows:
    r = dict(r)
    if "sim_time" in r:
      r["sim_time"] = 0.0 if int(r["round"]) == 0 else float(times[int(r["round"]) - 1])
    lines.append(json.dumps(r))
  atomic_write(os.path.join(out_dir, "metrics.jsonl"), "\n".join(lines) + "\n")
  atomic_write(
    os.path.join(out_dir, "config.json"), json.dumps(config.to_dict(), indent=2, default=str)
  )
  if os.path.exists(os.path.join(run_dir, "code.json")):
    shutil.copyfile(os.path.join(run_dir, "code.json"), os.path.join(out_dir, "code.json"))
  atomic_write(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2))
  return summary
