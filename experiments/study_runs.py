"""Reading a study's stored runs: where the studies under a folder are, each run's
summary and metric rows, a metric at a budget. Shared by the report
(:mod:`experiments.report`) and the rule checks (:mod:`experiments.study_check`)."""

from __future__ import annotations

import json
import math
import os

from experiments.metrics_log import read_jsonl


def _load(run_dir):
  summary = json.load(open(os.path.join(run_dir, "summary.json")))
  rows = read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
  return summary, rows


def find_studies(root: str) -> list[str]:
  """Every folder under ``root`` (itself included) holding a ``sweep.json``, sorted."""
  found = []
  for d, dirs, files in os.walk(root):
    if "sweep.json" in files:
      found.append(d)
      dirs[:] = []  # a study's run folders hold no studies
    dirs.sort()
  return sorted(found)


def value_at(rows, metric: str, budget, unit: str = "round", end=None):
  """The metric at ``budget`` (None if the run never logged it there: diverged or short).

  ``unit='round'``: the value logged at round ``budget``. ``unit='time'`` (simulated
  seconds, the asynchronous runs): the first evaluation at or past ``budget`` (an async run
  evaluates at the first chunk end past each multiple of its interval); when there is none,
  the evaluation at the run's last step ``end`` (its whole length), if it logged one."""
  if unit == "time":
    ev = [r for r in rows if metric in r]
    hit = [r for r in ev if r["time"] >= budget] or [r for r in ev if r.get("round") == end]
    return _finite_or_none(hit[0][metric]) if hit else None
  for r in rows:
    if r.get("round") == budget and metric in r:
      return _finite_or_none(r[metric])
  return None


def _finite_or_none(v):
  return v if v is not None and math.isfinite(v) else None


def unit_of(sweep: dict) -> str:
  """What a study's budgets and run lengths count: ``'round'`` or ``'time'`` (simulated s)."""
  return sweep.get("unit", "round")


def unit_label(sweep: dict) -> str:
  return "rounds" if unit_of(sweep) == "round" else "simulated s"


def run_length(summary: dict, unit: str):
  """A run's length in ``unit``: its rounds, or its simulated-time budget."""
  if unit == "time":
    return (summary.get("horizon") or {}).get("time_budget")
  return summary.get("total")


def settings_of(sweep: dict) -> list[str]:
  """The settings a study reports each method in (e.g. straggler severities); ``[""]`` for a
  study with one setting."""
  return list(sweep.get("settings") or {}) or [""]


def runs_by_setting(info: dict) -> dict:
  """A method's report runs per setting: ``info['runs']`` is a list (one setting, ``""``)
  or ``{setting: [run folders]}``."""
  runs = info.get("runs") or []
  return dict(runs) if isinstance(runs, dict) else {"": list(runs)}


def all_runs(info: dict) -> list[str]:
  """Every run folder of a method: its report runs and its tuning runs."""
  out = [r for rels in runs_by_setting(info).values() for r in rels]
  return out + [r for cell in info["grid"].values() for r in cell.get("runs", [])]


def load_runs(sweep_dir: str, rels) -> list:
  """``(rel, summary, rows)`` of the finished runs among ``rels``."""
  return [
    (rel, *_load(os.path.join(sweep_dir, rel)))
    for rel in rels
    if os.path.exists(os.path.join(sweep_dir, rel, "summary.json"))
  ]
