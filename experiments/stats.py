"""Statistics of a study's per-seed results: mean with a 95% t interval, Welch's t-test.

Every table of :mod:`experiments.report` states ``n`` and gives ``mean ± h``, where
``h = t_{0.975, n-1} s / sqrt(n)`` (``s`` the sample standard deviation, ``ddof = 1``), and
every comparison with the study's reference method carries Welch's two-sided p-value
(unequal variances; Welch 1947). Both come from scipy.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence


class Summary(NamedTuple):
  n: int  # finite values (diverged seeds are not among them)
  mean: float
  ci95: float  # half-width of the 95% t interval; nan when n < 2
  diverged: int  # seeds whose value is missing or not finite


def summarize(values: Sequence[Optional[float]]) -> Summary:
  """``Summary`` of per-seed values; ``None`` or a non-finite value is a diverged seed."""
  import numpy as np
  from scipy import stats

  finite = [float(v) for v in values if v is not None and math.isfinite(v)]
  diverged = len(values) - len(finite)
  if not finite:
    return Summary(0, math.nan, math.nan, diverged)
  x = np.asarray(finite)
  if len(x) < 2:
    return Summary(1, float(x[0]), math.nan, diverged)
  half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
  return Summary(len(x), float(x.mean()), half, diverged)


def welch_p(a: Sequence[Optional[float]], b: Sequence[Optional[float]]) -> float:
  """Two-sided p-value of Welch's t-test on the finite values of ``a`` and ``b``; nan when
  either has fewer than 2 (or both have zero variance and equal means)."""
  from scipy import stats

  fa = [float(v) for v in a if v is not None and math.isfinite(v)]
  fb = [float(v) for v in b if v is not None and math.isfinite(v)]
  if len(fa) < 2 or len(fb) < 2:
    return math.nan
  p = stats.ttest_ind(fa, fb, equal_var=False).pvalue
  return float(p)


def fmt(s: Summary, digits: int = 4) -> str:
  """``mean ± ci95`` (or ``diverged``), with the diverged seeds counted."""
  if s.n == 0:
    return "diverged"
  text = f"{s.mean:.{digits}g} ± {s.ci95:.2g}" if s.n > 1 else f"{s.mean:.{digits}g} (n=1)"
  return text + (f" ({s.diverged} div.)" if s.diverged else "")


def fmt_p(p: float) -> str:
  if math.isnan(p):
    return "p = n/a"
  return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
