"""Runs on one simulated-time axis: quality against ``sim_time`` for any set of runs,
synchronous and asynchronous mixed, and the time each run takes to reach a target.

    python -m experiments.report --time OUT.png fedavg=runs/fedavg/seed* async=runs/async/seed*

Every run logs ``sim_time`` (simulated seconds, :mod:`tailopt.timing`) in its
``metrics.jsonl``; a group of runs (``LABEL=DIR ...``, e.g. the seeds of one method) is drawn
as its mean with the 95% t band (:func:`experiments.tables.plot_band`) on a shared grid of
times, each run holding its last evaluation until its next one (and none past its end).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from experiments import tables
from experiments.errors import UserError
from experiments.metrics_log import read_jsonl


def run_metric(run_dir: str) -> tuple[str, str]:
  """``(report metric, mode)`` of a run, from its ``summary.json`` or ``config.json``."""
  for name in ("summary.json", "config.json"):
    path = os.path.join(run_dir, name)
    if os.path.exists(path):
      d = json.load(open(path))
      return d.get("report_metric", "eval/loss"), d.get("report_mode", "min")
  raise UserError(f"{run_dir} has no summary.json or config.json; give a run folder.")


def time_curve(run_dir: str, metric: str) -> list[tuple[float, float]]:
  """``[(sim_time, value)]`` of every row of the run that logged ``metric``."""
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    raise UserError(f"{run_dir} has no metrics.jsonl; give a run folder of experiments.main.")
  rows = [r for r in read_jsonl(path) if metric in r]
  if rows and not all("sim_time" in r or "time" in r for r in rows):
    raise UserError(
      f"{run_dir}/metrics.jsonl has no sim_time: the run predates the simulated clock; "
      "run it again with this code."
    )
  return [(float(r.get("sim_time", r.get("time"))), float(r[metric])) for r in rows]


def time_to_target(curve, target: float, mode: str = "min"):
  """The first simulated time at which the curve reaches ``target`` (``<=`` for mode
  'min', ``>=`` for 'max'), or None if it never does."""
  for t, v in curve:
    if math.isfinite(v) and (v <= target if mode == "min" else v >= target):
      return t
  return None


def parse_groups(args: list[str]) -> dict:
  """``{label: [run folders]}`` from ``LABEL=DIR`` (or a bare ``DIR``, labelled by its
  folder name) arguments; a label given several times collects its folders."""
  groups: dict = {}
  for a in args:
    label, sep, path = a.partition("=")
    if not sep:
      label, path = os.path.basename(os.path.normpath(a)), a
    if not os.path.isdir(path):
      raise UserError(f"--time: {path!r} is not a run folder; give LABEL=DIR or DIR.")
    groups.setdefault(label, []).append(path)
  return groups


def plot_quality_vs_time(groups: dict, path: str, metric: str = "", points: int = 200) -> dict:
  """Draws each group's metric against simulated time into ``path``; returns ``{label:
  (times, mean)}``. ``metric``: default the first run's report metric."""
  first = next(iter(groups.values()))[0]
  metric, mode = (metric, run_metric(first)[1]) if metric else run_metric(first)
  curves = {label: [time_curve(d, metric) for d in dirs] for label, dirs in groups.items()}
  horizon = max((c[-1][0] for cs in curves.values() for c in cs if c), default=0.0)
  if horizon <= 0:
    raise UserError(f"--time: no run logged {metric} at a simulated time > 0.")
  xs = np.linspace(0.0, horizon, points)
  plt = tables.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  out = {}
  for label, cs in curves.items():
    kept = [c for c in cs if c]
    x, mat = tables.seed_matrix(kept, xs)
    for i, c in enumerate(kept):  # a run ends at its last row: no value past it
      mat[i, x > c[-1][0]] = np.nan
    tables.plot_band(ax, x, mat, f"{label} (n={len(cs)})")
    out[label] = (x, tables.mean_band(mat)[0])
  ax.set_xlabel("simulated time (s)")
  ax.set_ylabel(f"{metric} (mean, 95% CI over runs)")
  if mode == "min" and all(np.nanmin(m) > 0 for _, m in out.values() if np.isfinite(m).any()):
    ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return out
