r"""Elastic membership on the simulated clock: worker failures and rejoins, and the quorum
server's adaptive grace window.

**Failures** (:class:`Timeline`). Worker ``w`` alternates up and down periods: up for
:math:`U \sim \mathrm{Exp}(\lambda)` seconds (``ClockConfig.failure_rate`` = :math:`\lambda`,
failures per second of up time), then down for :math:`D \sim \mathrm{Exp}(\mu)` seconds
(``rejoin_rate`` = :math:`\mu`), drawn from its own stream ``default_rng([seed, 2, w])`` (so
the job durations, stream ``[seed, 1, w]``, are those of the run without failures), or at the
fixed times of ``ClockConfig.failures`` (``(worker, down_at, up_at)`` triples). A job running
when its worker goes down is lost (its Delta never arrives; the work done is counted as
wasted); the worker rejoins at the end of the down period, pulls the newest model and starts
a new job. Failures are a property of the workers' time line, not of the jobs: the same
worker fails at the same instants under every scheme [our decision].

**Grace window** (:func:`grace_window`). The ``'quorum'`` server steps once it holds at least
Q updates and the window since its last step has passed, or once it holds K (the cap, as
FedBuff's K). The window adapts to the workers: :math:`g = \mathrm{median}(d) + k \cdot
\mathrm{MAD}(d)` over the delays :math:`d` (arrival time minus the time the buffer it landed
in opened) of the last ``grace_window`` arrivals, fixed when the buffer opens; before any
arrival it is infinite (the first step waits for K). Median and MAD make it robust to the
stragglers it is meant not to wait for (a mean and standard deviation would grow with them).
This is the rule users of hivemind ask for (a minimum number of peers, then a timeout that
follows the observed arrival times) written as a server policy [our decision].
"""

from __future__ import annotations

import bisect
from typing import Optional, Sequence

import numpy as np


class Timeline:
  """One worker's down periods ``[down_i, up_i)`` in increasing order, drawn lazily.

  Args:
    failure_rate, rejoin_rate: :math:`\\lambda` and :math:`\\mu` (0 failure rate: never down).
    rng: the worker's failure stream.
    fixed: explicit ``[(down_at, up_at), ...]`` periods instead of the random ones.
  """

  def __init__(self, failure_rate: float, rejoin_rate: float, rng, fixed: Optional[list] = None):
    self.lam, self.mu, self.rng = float(failure_rate), float(rejoin_rate), rng
    self.down: list[float] = []
    self.up: list[float] = []
    self.fixed = fixed is not None
    for a, b in sorted(fixed or []):
      self.down.append(float(a))
      self.up.append(float(b))
    self._drawn_to = 0.0  # random periods are known up to this time

  def _extend(self, t: float) -> None:
    """Draws random periods until one starts after ``t``."""
    if self.fixed or self.lam <= 0:
      return
    while not self.down or self.down[-1] <= t:
      start = self.up[-1] if self.up else 0.0
      d = start + float(self.rng.exponential(1.0 / self.lam))
      self.down.append(d)
      self.up.append(d + float(self.rng.exponential(1.0 / self.mu)))

  def up_at(self, t: float) -> float:
    """``t`` if the worker is up at ``t``, else the end of the down period holding ``t``."""
    self._extend(t)
    i = bisect.bisect_right(self.down, t) - 1
    if i >= 0 and t < self.up[i]:
      return self.up[i]
    return t

  def next_failure(self, t: float) -> tuple[float, float]:
    """``(down_at, up_at)`` of the first down period starting after ``t`` (the worker up
    at ``t``); ``(inf, inf)`` if none."""
    self._extend(t)
    i = bisect.bisect_right(self.down, t)
    if i >= len(self.down):
      return float("inf"), float("inf")
    return self.down[i], self.up[i]


def timelines(clock) -> list:
  """The :class:`Timeline` of every worker of a :class:`.clock.ClockConfig`."""
  fixed: dict = {}
  for w, a, b in clock.failures or ():
    fixed.setdefault(int(w), []).append((a, b))
  out = []
  for w in range(clock.num_workers):
    rng = np.random.default_rng([clock.seed, 2, w])
    f = fixed.get(w, []) if clock.failures is not None else None
    out.append(Timeline(clock.failure_rate, clock.rejoin_rate, rng, f))
  return out


def grace_window(delays: Sequence[float], k: float) -> float:
  r"""``median(d) + k * MAD(d)`` with ``MAD(d) = median(|d - median(d)|)``; infinite for an
  empty history."""
  if len(delays) == 0:
    return float("inf")
  d = np.asarray(delays, np.float64)
  med = float(np.median(d))
  return med + float(k) * float(np.median(np.abs(d - med)))
