"""Markdown tables and per-seed curve bands, shared by the study reports
(:mod:`experiments.report` for every study, :mod:`experiments.async_study.report` for the
asynchronous study's own sections).

A band is the mean over seeds with the half-width of the 95% t interval (the same interval
as :func:`experiments.stats.summarize`, per x).
"""

from __future__ import annotations

import math

import numpy as np


def md_table(header, rows) -> str:
  """A markdown table: ``| h1 | h2 |``, ``|---|---|``, then one line per row."""
  lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines) + "\n"


def pyplot():
  """matplotlib's pyplot on the Agg backend (files only, no display)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def seed_matrix(curves, xs=None):
  """``(xs, matrix)``: one row per seed's curve (a list of ``(x, y)``). Without ``xs``, the
  columns are every x any curve has (a curve without it: nan); with ``xs``, each curve's
  last value at or before each x (nan before its first). Non-finite values are nan."""
  curves = [c for c in curves if c]
  if xs is None:
    xs = sorted({x for c in curves for x, _ in c})
    mat = np.full((len(curves), len(xs)), np.nan)
    for i, c in enumerate(curves):
      d = dict(c)
      for j, x in enumerate(xs):
        mat[i, j] = _finite(d.get(x))
    return np.asarray(xs, float), mat
  xs = np.asarray(xs, float)
  mat = np.full((len(curves), len(xs)), np.nan)
  for i, c in enumerate(curves):
    cx = np.asarray([x for x, _ in c], float)
    cy = np.asarray([_finite(y) for _, y in c], float)
    idx = np.searchsorted(cx, xs, side="right") - 1
    mat[i] = np.where(idx >= 0, cy[np.maximum(idx, 0)], np.nan)
  return xs, mat


def _finite(v) -> float:
  return float(v) if v is not None and math.isfinite(v) else np.nan


def mean_band(mat):
  """Per column: the mean over the finite values and the 95% t half-width."""
  import warnings

  from scipy import stats as sps

  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # a column with no finite value: nan
    mean = np.nanmean(mat, 0)
    n = np.sum(np.isfinite(mat), 0)
    half = sps.t.ppf(0.975, np.maximum(n - 1, 1)) * np.nanstd(mat, 0, ddof=1) / np.sqrt(n)
  return mean, half


def plot_band(ax, xs, mat, label, **style):
  """The mean over seeds as a line, the 95% t interval as a band."""
  mean, half = mean_band(mat)
  (line,) = ax.plot(xs, mean, label=label, **style)
  ax.fill_between(xs, mean - half, mean + half, alpha=0.15, color=line.get_color())
  return line
