"""The asynchronous study's report: the sections :mod:`experiments.report` does not have.

An async study's ``sweep.json`` names this module (``report_module``), so
``python -m experiments.report DIR`` writes one ``report.md``: the common part (per
severity, the metric at every simulated-time budget with n and 95% CIs, every method against
synchronous Bi²Clip and every claim's comparison by Welch's test, the curves against
simulated time, every grid point) and then :func:`extra_sections`:

* quality and goodput against the condition (the straggler slowdown, or the failure rate):
  per method and setting, the metric at the report length and the goodput of a run (useful ÷
  all local steps), each mean ± 95% CI over the report runs, and ``quality_goodput.png``;
* time to each target (mean ± 95% CI over the seeds that reach it; k/n reach it);
* staleness (mean and max tau) and server steps per method and severity;
* robustness over each tuning grid (one tuning seed per cell, so descriptive only): its
  spread (accuracy: max − min, IQR, cells within 1 and 2 points of the best; loss: worst /
  best, cells within 2x of the best), the matched sub-grids, every two-axis grid as a table,
  ``robustness_heatmaps.png`` and ``robustness_boxplot.png``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from experiments import report as report_lib
from experiments import stats as stats_lib
from experiments import tables


def extra_sections(sweep_dir: str, sweep: dict, by_setting: dict) -> str:
  """The async sections of ``report.md`` (and their plots in ``sweep_dir``)."""
  info = sweep.get("study") or {}
  mode = _mode(by_setting)
  condition = info.get("condition", "clock.straggler_slowdown")
  text = f"\n## Quality and goodput against {condition}\n\n"
  text += quality_goodput(sweep_dir, sweep, by_setting)
  text += "\n## Time to target\n\n" + time_to_target(by_setting, info.get("targets", []), mode)
  text += "\n## Staleness and server steps\n\n" + staleness_table(sweep_dir, sweep)
  text += "\n## Robustness over the tuning grids\n\n" + robustness(sweep_dir, sweep, mode)
  return text


def _mode(by_setting: dict) -> str:
  for stats in by_setting.values():
    for s in stats.values():
      return s["mode"]
  return "min"


def time_to(curve, target: float, mode: str):
  """The first x at which the curve reaches ``target`` (at or below it for 'min', at or
  above for 'max'); None if it never does."""
  for x, y in curve:
    if y is not None and math.isfinite(y) and (y <= target if mode == "min" else y >= target):
      return float(x)
  return None


def time_to_target(by_setting: dict, targets, mode: str) -> str:
  """Per target, methods × settings: simulated seconds to reach it, mean ± 95% CI over the
  seeds that reach it, and how many of the n seeds do."""
  out = []
  settings = list(by_setting)
  for target in targets:
    methods = []
    for stats in by_setting.values():
      methods += [m for m in stats if m not in methods]
    rows = []
    for m in methods:
      cells = []
      for st in settings:
        s = by_setting[st].get(m)
        times = [time_to(c, target, mode) for c in s["curves"]] if s else []
        hit = [t for t in times if t is not None]
        summary = stats_lib.summarize(hit)
        cell = "—" if not hit else stats_lib.fmt(summary, 3)
        cells.append(f"{cell} ({len(hit)}/{len(times)})" if s else "not run")
      rows.append([m] + cells)
    sign = "≤" if mode == "min" else "≥"
    out.append(
      f"Simulated seconds to {sign} {target:g} (mean ± 95% CI over the seeds that reach it; "
      "(k/n) = seeds that reach it within the run)\n\n"
      + tables.md_table(["method"] + [st or "all" for st in settings], rows)
    )
  return "\n".join(out)


def _final(stats: dict):
  """The summary of a method's metric at its longest budget."""
  return stats["budgets"][max(stats["budgets"])]["summary"]


def goodputs(sweep_dir: str, info: dict, setting: str) -> list:
  """The goodput of each finished report run of a method in a setting (runs whose summary
  has none, from before goodput was logged, are left out)."""
  rels = report_lib.runs_by_setting(info).get(setting, [])
  out = []
  for _, s, _ in report_lib.load_runs(sweep_dir, rels):
    g = (s.get("goodput") or {}).get("goodput")
    if g is not None:
      out.append(float(g))
  return out


def _heading(sweep: dict, setting: str) -> str:
  note = ((sweep.get("study") or {}).get("notes") or {}).get(setting)
  return f"{setting} ({note})" if note else setting or "all"


def quality_goodput(sweep_dir: str, sweep: dict, by_setting: dict) -> str:
  """Methods × settings: the metric at the report length and the goodput of a report run
  (useful ÷ all local steps: work lost to failures or abandoned by a closing round is
  wasted), each mean ± 95% CI over the n report runs; and ``quality_goodput.png``."""
  settings = list(by_setting)
  metric = (sweep.get("study") or {}).get("metric", "metric")
  rows, table = [], {}
  for m, info in sweep["methods"].items():
    cells = []
    for st in settings:
      s = by_setting[st].get(m)
      if s is None:
        cells.append("not run")
        continue
      q, g = _final(s), stats_lib.summarize(goodputs(sweep_dir, info, st))
      table[(m, st)] = (q, g)
      good = stats_lib.fmt(g, 3) if g.n else "not logged"
      cells.append(f"{stats_lib.fmt(q, 4)}; goodput {good} (n = {q.n + q.diverged})")
    rows.append([m] + cells)
  text = (
    f"`{metric}` at {report_lib._b(float(sweep['report_rounds']))} "
    f"{report_lib.unit_label(sweep)}; goodput: useful ÷ all local steps of a report run (work "
    "lost to a failure or abandoned by a closing round is wasted); each mean ± 95% CI over "
    "the n report runs\n\n"
    + tables.md_table(["method"] + [_heading(sweep, st) for st in settings], rows)
  )
  if table and len(settings) > 1:
    png = plot_quality_goodput(sweep_dir, sweep, settings, table, metric)
    text += f"\n![quality and goodput]({png})\n"
  return text


def plot_quality_goodput(sweep_dir, sweep, settings, table, metric) -> str:
  """``quality_goodput.png``: the metric and the goodput (mean, 95% CI bars) of each method
  against the settings of the condition."""
  plt = tables.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  x = np.arange(len(settings))
  methods = list(dict.fromkeys(m for m, _ in table))
  for k, m in enumerate(methods):
    for ax, i in zip(axes, (0, 1)):
      pts = [(j, table[(m, st)][i]) for j, st in enumerate(settings) if (m, st) in table]
      xs = [x[j] + 0.04 * (k - len(methods) / 2) for j, _ in pts]
      ys = [p.mean for _, p in pts]
      err = [p.ci95 if math.isfinite(p.ci95) else 0.0 for _, p in pts]
      ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=3, label=m)
  for ax, title in zip(axes, (metric, "goodput (useful ÷ all local steps)")):
    ax.set_xticks(x, [_heading(sweep, st) for st in settings], fontsize=7, rotation=15)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
  if metric == "eval/loss":
    axes[0].set_yscale("log")
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(sweep_dir, "quality_goodput.png"), dpi=90)
  plt.close(fig)
  return "quality_goodput.png"


def staleness_table(sweep_dir: str, sweep: dict) -> str:
  """Per method and setting: each run's mean tau (mean ± 95% CI over the report runs), the
  largest tau of any, and the mean server steps of a report run."""
  settings = report_lib.settings_of(sweep)
  rows = []
  for m, info in sweep["methods"].items():
    by = report_lib.runs_by_setting(info)
    cells = []
    for st in settings:
      runs = report_lib.load_runs(sweep_dir, by.get(st, []))
      if not runs:
        cells.append("not run")
        continue
      tau = stats_lib.summarize([s["tau"]["mean"] for _, s, _ in runs])
      steps = np.mean([s["server_steps"] for _, s, _ in runs])
      top = max(s["tau"]["max"] for _, s, _ in runs)
      cells.append(f"{stats_lib.fmt(tau, 3)} / {top} ({steps:.0f} steps, n = {len(runs)})")
    rows.append([m] + cells)
  return (
    "Mean tau of a run (mean ± 95% CI over the n report runs) / the largest tau of any; "
    "mean server steps of a report run\n\n"
  ) + tables.md_table(["method"] + [st or "all" for st in settings], rows)


def spread_stats(values, chance: float = 0.0, mode: str = "max") -> dict:
  """Robustness of one method's grid from the metric of every cell (nan: diverged).
  Accuracy (``max``; a diverged cell counts as ``chance``): best, median, worst, max − min,
  interquartile range, fractions of cells within 1 and 2 points (0.01, 0.02) of the best.
  Loss (``min``; a diverged cell is worst): best, median, worst, worst / best, fraction of
  cells within 2x of the best."""
  v = np.asarray(values, float)
  diverged = int((~np.isfinite(v)).sum())
  if mode == "min":
    finite = v[np.isfinite(v)]
    best = float(finite.min()) if finite.size else math.nan
    worst = math.inf if diverged else float(finite.max())
    return dict(
      cells=int(v.size),
      diverged=diverged,
      best=best,
      median=float(np.median(np.where(np.isfinite(v), v, np.inf))),
      worst=worst,
      ratio=worst / best if finite.size else math.nan,
      within_2x=float(np.mean(np.isfinite(v) & (v <= 2 * best))),
    )
  v = np.where(np.isfinite(v), v, chance)
  best = float(v.max())
  q1, q3 = np.percentile(v, [25, 75])
  return dict(
    cells=int(v.size),
    diverged=diverged,
    best=best,
    median=float(np.median(v)),
    worst=float(v.min()),
    range=float(best - v.min()),
    iqr=float(q3 - q1),
    within_1pt=float(np.mean(v >= best - 0.01)),
    within_2pt=float(np.mean(v >= best - 0.02)),
  )


def cell_values(info: dict, mode: str) -> dict:
  """``{cell name: metric}`` of a method's tuning cells (mean over the tuning seeds; nan:
  diverged), from their scores (lower is better, sign-flipped for 'max')."""
  out = {}
  for name, c in info["grid"].items():
    v = c["score"] if mode == "min" else -c["score"]
    out[name] = float(v) if math.isfinite(v) else math.nan
  return out


def _spread_row(label, stats: dict, mode: str, pct: float) -> list:
  st = stats
  n = st["cells"]
  head = [
    label,
    n,
    f"{pct * st['best']:.4g}",
    f"{pct * st['median']:.4g}",
    f"{pct * st['worst']:.4g}",
  ]
  if mode == "min":
    return head + [f"{st['ratio']:.3g}", f"{st['within_2x'] * n:.0f}/{n}", st["diverged"]]
  return head + [
    f"{pct * st['range']:.1f}",
    f"{pct * st['iqr']:.1f}",
    f"{st['within_1pt'] * n:.0f}/{n}",
    f"{st['within_2pt'] * n:.0f}/{n}",
    st["diverged"],
  ]


def _spread_header(mode: str) -> list:
  head = ["method", "cells", "best", "median", "worst"]
  if mode == "min":
    return head + ["worst / best", "within 2x of best", "diverged"]
  return head + ["max − min (pt)", "IQR (pt)", "within 1 pt", "within 2 pt", "diverged"]


def robustness(sweep_dir: str, sweep: dict, mode: str) -> str:
  """The spread of each grid, the matched sub-grids, every two-axis grid, and the plots."""
  from experiments.sweep import cell_name

  info = sweep.get("study") or {}
  chance = info.get("chance", 0.0)
  pct = 100.0 if mode == "max" else 1.0
  grids = {m: cell_values(i, mode) for m, i in sweep["methods"].items() if len(i["grid"]) > 1}
  where = f"setting {sweep.get('tune_setting') or ''}, tuning seed(s) {sweep.get('tune_seeds')}"
  rows = [
    _spread_row(m, spread_stats(list(v.values()), chance, mode), mode, pct)
    for m, v in grids.items()
  ]
  text = (
    f"Every cell of each grid with more than one point ({where}; one tuning run per cell and "
    "seed, so differences of a few points are within seed noise"
    + (f"; a diverged cell counts as chance, {pct * chance:g}" if mode == "max" else "")
    + ").\n\n"
    + tables.md_table(_spread_header(mode), rows)
  )
  matched = []
  for g in info.get("matched", []):
    from experiments.async_study.study import grid_points

    vals = [grids.get(g["method"], {}).get(cell_name(p)) for p in grid_points(g["grid"])]
    if vals and all(v is not None for v in vals):
      matched.append(
        _spread_row(f"{g['label']}: {g['method']}", spread_stats(vals, chance, mode), mode, pct)
      )
  if matched:
    text += (
      "\nMatched sub-grids (the same learning rates and as many values of the second parameter)\n\n"
    )
    text += tables.md_table(
      ["sub-grid: " + _spread_header(mode)[0]] + _spread_header(mode)[1:], matched
    )
  for m, i in sweep["methods"].items():
    if m in grids:
      text += "\n" + grid_matrix_table(m, i, mode, pct, info.get("labels", {}).get(m))
  if grids:
    for png in plot_robustness(sweep_dir, sweep, grids, mode, chance):
      text += f"\n![{png[:-4]}]({png})\n"
  return text


def grid_axes(info: dict) -> list[str]:
  """The fields a method's grid varies (more than one value among its cells)."""
  cells = list(info["grid"].values())
  fields = list(cells[0]["point"]) if cells else []
  return [f for f in fields if len({c["point"][f] for c in cells}) > 1]


def grid_matrix(info: dict, mode: str):
  """``(rows field, cols field, row values, col values, matrix)`` of a two-axis grid (nan:
  not tried or diverged), or None."""
  axes = grid_axes(info)
  if len(axes) != 2:
    return None
  a, b = axes
  values = cell_values(info, mode)
  rv = sorted({c["point"][a] for c in info["grid"].values()})
  cv = sorted({c["point"][b] for c in info["grid"].values()})
  mat = np.full((len(rv), len(cv)), np.nan)
  for name, c in info["grid"].items():
    mat[rv.index(c["point"][a]), cv.index(c["point"][b])] = values[name]
  return a, b, rv, cv, mat


def grid_matrix_table(method: str, info: dict, mode: str, pct: float, label=None) -> str:
  g = grid_matrix(info, mode)
  if g is None:
    return ""
  a, b, rv, cv, mat = g
  kept = (info["best_point"][a], info["best_point"][b])
  tried = {(c["point"][a], c["point"][b]) for c in info["grid"].values()}
  rows = []
  for i, x in enumerate(rv):
    row = [f"{x:g}"]
    for j, y in enumerate(cv):
      v = mat[i, j]
      cell = "" if (x, y) not in tried else "div" if not math.isfinite(v) else f"{pct * v:.4g}"
      row.append(cell + (" *" if (x, y) == kept else ""))
    rows.append(row)
  short = lambda f: f.split(".")[-1]
  return (
    f"**{method}** (rows {short(a)}, columns {label or short(b)}; * = kept)\n\n"
    + tables.md_table([f"{short(a)} \\ {short(b)}"] + [f"{y:g}" for y in cv], rows)
  )


def plot_robustness(sweep_dir: str, sweep: dict, grids: dict, mode: str, chance: float):
  """``robustness_boxplot.png`` (every cell of every grid) and ``robustness_heatmaps.png``
  (every two-axis grid, if any); returns the files written."""
  plt = tables.pyplot()
  pct = 100.0 if mode == "max" else 1.0
  fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(grids) + 2), 4.6))
  fill = chance if mode == "max" else np.nan
  data = [
    pct * np.where(np.isfinite(v := np.asarray(list(g.values()), float)), v, fill)
    for g in grids.values()
  ]
  ax.boxplot([d[np.isfinite(d)] for d in data], whis=(0, 100))
  for i, d in enumerate(data):
    ax.scatter(
      np.full(len(d), i + 1) + np.linspace(-0.12, 0.12, len(d)),
      d,
      s=9,
      color="k",
      alpha=0.6,
      zorder=3,
    )
  ax.set_xticks(range(1, len(grids) + 1), list(grids), rotation=35, ha="right", fontsize=8)
  if mode == "min":
    ax.set_yscale("log")
  ax.set_ylabel(f"{(sweep.get('study') or {}).get('metric', 'metric')} over the grid")
  ax.set_title("Every cell of each tuning grid (box = quartiles, whiskers = min/max)", fontsize=9)
  ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  fig.savefig(os.path.join(sweep_dir, "robustness_boxplot.png"), dpi=90)
  plt.close(fig)
  return ["robustness_boxplot.png"] + _plot_heatmaps(sweep_dir, sweep, mode, pct)


def _plot_heatmaps(sweep_dir: str, sweep: dict, mode: str, pct: float):
  plt = tables.pyplot()
  hms = {m: g for m, i in sweep["methods"].items() if (g := grid_matrix(i, mode)) is not None}
  if not hms:
    return []
  cols = min(4, len(hms))
  rows = -(-len(hms) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), squeeze=False)
  fig.subplots_adjust(hspace=0.45, wspace=0.35)
  show = lambda v: np.log10(v) if mode == "min" else pct * v
  finite = np.concatenate([show(g[4][np.isfinite(g[4])]) for g in hms.values()] or [np.zeros(1)])
  lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
  cmap = "viridis_r" if mode == "min" else "viridis"
  for ax, (m, (a, b, rv, cv, mat)) in zip(axes.flat, hms.items()):
    v = show(mat)
    im = ax.imshow(np.where(np.isfinite(v), v, np.nan), vmin=lo, vmax=hi, cmap=cmap, aspect="auto")
    for i in range(v.shape[0]):
      for j in range(v.shape[1]):
        text = "" if not np.isfinite(mat[i, j]) else f"{pct * mat[i, j]:.3g}"
        dark = (v[i, j] - lo) / max(hi - lo, 1e-12) < 0.5  # viridis is dark at its low end
        dark = dark if mode == "max" else not dark
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w" if dark else "k")
    ax.set_xticks(range(len(cv)), [f"{c:g}" for c in cv])
    ax.set_yticks(range(len(rv)), [f"{r:g}" for r in rv])
    ax.set_xlabel(b.split(".")[-1], fontsize=8)
    ax.set_ylabel(a.split(".")[-1], fontsize=8)
    ax.set_title(m, fontsize=9)
  for ax in list(axes.flat)[len(hms) :]:
    ax.axis("off")
  label = "log10 " if mode == "min" else ""
  fig.colorbar(
    im, ax=axes, label=f"{label}{(sweep.get('study') or {}).get('metric', '')}", shrink=0.8
  )
  fig.savefig(os.path.join(sweep_dir, "robustness_heatmaps.png"), dpi=80, bbox_inches="tight")
  plt.close(fig)
  return ["robustness_heatmaps.png"]


def write(workdir: str, out: str | None = None, fam="synthetic", log=print) -> str:
  """Writes the study record (``<workdir>/sweep.json``) and its report: in ``out`` with
  every per-seed run exported there (``experiments.report --export``), or in ``workdir``.
  Returns the report's text."""
  from experiments.async_study import jobs

  jobs.write_study(workdir, fam, log)
  if out and os.path.abspath(out) != os.path.abspath(workdir):
    report_lib.export(workdir, out)
    return open(os.path.join(out, "report.md")).read()
  return report_lib.write_report(workdir)
