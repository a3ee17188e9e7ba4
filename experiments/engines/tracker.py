"""What the loop tracks row by row: the best value and time to target of the report
metric, the last value of every metric, and divergence."""

from __future__ import annotations

import math

# A run whose training loss grows past this multiple of its first value has diverged.
DIVERGENCE_FACTOR = 1e6


class Tracker:
  """Best value / time to target of ``config.report_metric``, the last value of every
  metric, and divergence (a non-finite or exploding training loss), fed row by row
  (a resumed run's history first)."""

  def __init__(self, config):
    self.metric = config.report_metric
    self.sign = 1.0 if config.report_mode == "min" else -1.0
    self.target = config.get("target")
    self.best = self.best_at = self.best_time = self.time_to_target = None
    self.first_loss = None
    self.diverged = None  # a one-line reason once diverged
    self.last: dict = {}
    self.seen: set = set()

  def __call__(self, row: dict):
    self.last.update(row)
    self.seen.update(row)
    if self.diverged is None:
      self.diverged = self._divergence(row)
    v = row.get(self.metric)
    if v is None or not math.isfinite(v):
      return
    if self.best is None or self.sign * v < self.sign * self.best:
      self.best, self.best_at, self.best_time = v, row["round"], row.get("time")
    if (
      self.target is not None
      and self.time_to_target is None
      and (self.sign * v <= self.sign * self.target)
    ):
      self.time_to_target = row.get("time", row["round"])

  def _divergence(self, row: dict):
    """The reason ``row`` shows divergence, or None (records the first finite loss)."""
    loss = row.get("train/loss")
    if loss is not None:
      if self.first_loss is None and math.isfinite(loss):
        self.first_loss = loss
      if not math.isfinite(loss):
        return f"train/loss={loss} at {row['round']}"
      if self.first_loss is not None and abs(loss) > DIVERGENCE_FACTOR * max(
        abs(self.first_loss), 1e-12
      ):
        return (
          f"train/loss={loss:.3g} at {row['round']} is more than "
          f"{DIVERGENCE_FACTOR:.0e} x its first value {self.first_loss:.3g}"
        )
    dn = row.get("train/delta_norm")
    if dn is not None and not math.isfinite(dn):
      return f"train/delta_norm={dn} at {row['round']}"
    return None
