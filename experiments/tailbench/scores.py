"""tailbench's scores, pure functions of per-seed numbers (hand-checked in tests/test_tailbench.py).

* :func:`auc`: the area under one seed's curve of the report metric over rounds, divided by
  the rounds it spans (the trapezoid rule; the curve's mean level: lower is better for a
  loss, higher for an accuracy); ``None`` for a diverged seed.
* :func:`diverged_fraction`: the fraction of seeds whose final value is missing or not finite.
* :func:`normalised_quality`: per seed ``min(1, best / v)`` for a metric to minimise
  (``min(1, v / best)`` to maximise), ``best`` the best method's mean final value on this
  (task, noise); a diverged seed scores 0; the mean over seeds. 1 = as good as the best.
* :func:`robustness`: the worst normalised quality over the noise laws of a task, and
  :func:`overall_robustness` its mean over tasks (the leaderboard's ranking).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence


def _finite(v) -> bool:
  return v is not None and math.isfinite(v)


def auc(curve: Sequence[tuple]) -> Optional[float]:
  """Mean level of ``[(round, value), ...]`` (trapezoids over rounds / span); a single
  point is its value; ``None`` when any value is not finite or there is none."""
  pts = sorted(curve)
  if not pts or not all(_finite(v) for _, v in pts):
    return None
  if len(pts) == 1:
    return float(pts[0][1])
  area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))
  return float(area / (pts[-1][0] - pts[0][0]))


def diverged_fraction(finals: Sequence[Optional[float]]) -> float:
  """Fraction of seeds whose final value is None or not finite (nan for no seeds)."""
  if not finals:
    return math.nan
  return sum(not _finite(v) for v in finals) / len(finals)


def best_mean(finals_by_method: dict, mode: str) -> Optional[float]:
  """The best mean over finite seeds among the methods (``mode``: 'min' or 'max')."""
  means = []
  for finals in finals_by_method.values():
    f = [float(v) for v in finals if _finite(v)]
    if f:
      means.append(sum(f) / len(f))
  if not means:
    return None
  return min(means) if mode == "min" else max(means)


def normalised_quality(finals: Sequence[Optional[float]], best: Optional[float], mode: str):
  """Mean over seeds of ``min(1, best / v)`` ('min') or ``min(1, v / best)`` ('max'); a
  diverged seed scores 0. ``best`` must be positive (a loss or an accuracy)."""
  if not finals or best is None:
    return math.nan
  if not best > 0:
    raise ValueError(f"normalised_quality: best={best} must be > 0 (a loss or an accuracy).")
  per_seed = []
  for v in finals:
    if not _finite(v):
      per_seed.append(0.0)
    elif mode == "min":
      per_seed.append(min(1.0, best / v) if v > 0 else 1.0)
    else:
      per_seed.append(min(1.0, max(v, 0.0) / best))
  return sum(per_seed) / len(per_seed)


def robustness(nq_by_noise: dict) -> float:
  """The worst normalised quality over the noise laws of one task."""
  vals = [v for v in nq_by_noise.values() if not math.isnan(v)]
  return min(vals) if vals else math.nan


def overall_robustness(robustness_by_task: dict) -> float:
  """Mean over tasks of :func:`robustness`."""
  vals = [v for v in robustness_by_task.values() if not math.isnan(v)]
  return sum(vals) / len(vals) if vals else math.nan
