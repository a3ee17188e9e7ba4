"""The wall-clock study's tables and plots, from its stored runs: time to each target at each
bandwidth, which arm reaches it first, and quality against simulated time.

``experiments.report DIR`` appends :func:`extra_sections` to the study's ``report.md``
(``sweep.json`` names this module): per bandwidth, every arm's simulated time to each target
(:func:`experiments.time_axis.time_to_target` on each report seed's evaluations: mean ± 95%
t interval over the seeds that reached it, and how many did), the winner of each bandwidth
and target (:func:`winner`), and ``quality_vs_time.png`` (one panel per bandwidth, log time).
"""

from __future__ import annotations

import math
import os

import numpy as np

from experiments import stats as stats_lib
from experiments import tables
from experiments.time_axis import time_to_target


def arm_times(curves: list, target: float, mode: str) -> dict:
  """One arm's seeds (their ``[(sim_time, value)]`` evaluations) against ``target``:
  ``times`` (per seed, None = not reached), ``ends`` (each run's last evaluation time) and
  the :class:`~experiments.stats.Summary` of the reached times."""
  times = [time_to_target(c, target, mode) for c in curves]
  ends = [c[-1][0] if c else 0.0 for c in curves]
  return dict(times=times, ends=ends, summary=stats_lib.summarize(times), n=len(curves))


def winner(per_arm: dict) -> dict:
  """Who reaches the target first, from :func:`arm_times` of every arm.

  Candidates are the arms that reached it on every seed; the winner has the lowest mean
  time. It is ``decided`` unless an arm that missed it on some seed stopped (its run's last
  evaluation) before the winner's mean time: that arm might have got there first. ``p`` is
  Welch's two-sided p of the winner's times against the runner-up's (the next candidate);
  ``tied`` when p >= 0.05."""
  full = {m: a for m, a in per_arm.items() if a["n"] and all(t is not None for t in a["times"])}
  if not full:
    return dict(winner=None, decided=False, runner_up=None, p=math.nan, tied=False, open=[])
  order = sorted(full, key=lambda m: full[m]["summary"].mean)
  best = order[0]
  mean = full[best]["summary"].mean
  open_ = sorted(
    m
    for m, a in per_arm.items()
    if m not in full and any(t is None and e < mean for t, e in zip(a["times"], a["ends"]))
  )
  runner = order[1] if len(order) > 1 else None
  p = stats_lib.welch_p(full[best]["times"], full[runner]["times"]) if runner else math.nan
  return dict(
    winner=best,
    decided=not open_,
    runner_up=runner,
    p=p,
    tied=runner is not None and not (p < 0.05),
    open=open_,
  )


def time_tables(sweep: dict, by_setting: dict) -> dict:
  """``{setting: {target: {"arms": {arm: arm_times}, "winner": winner}}}``."""
  targets = sweep["study"]["targets"]
  out = {}
  for st, stats in by_setting.items():
    if not stats:
      continue
    mode = next(iter(stats.values()))["mode"]
    out[st] = {}
    for target in targets:
      per_arm = {m: arm_times(s["time_curves"], target, mode) for m, s in stats.items()}
      out[st][target] = dict(arms=per_arm, winner=winner(per_arm))
  return out


def _time_cell(a: dict) -> str:
  s, n = a["summary"], a["n"]
  if s.n == 0:
    return f"not reached (0/{n}; runs end by {max(a['ends']):.3g} s)"
  text = f"{s.mean:.3g} ± {s.ci95:.2g} s" if s.n > 1 else f"{s.mean:.3g} s"
  return text if s.n == n else f"{text} ({s.n}/{n} reached)"


def verdict(w: dict) -> str:
  """A winner as one table cell."""
  if w["winner"] is None:
    return "no arm reached it on every seed"
  text = f"**{w['winner']}**"
  if w["runner_up"]:
    rel = "tied with" if w["tied"] else "faster than"
    text += f" ({rel} {w['runner_up']}, {stats_lib.fmt_p(w['p'])})"
  if not w["decided"]:
    text += f"; undecided: {', '.join(w['open'])} stopped earlier without reaching it"
  return text


def extra_sections(sweep_dir: str, sweep: dict, by_setting: dict) -> str:
  """The time-to-target tables, the winners and the plot, as markdown."""
  tabs = time_tables(sweep, by_setting)
  if not tabs:
    return ""
  metric = next(iter(next(iter(by_setting.values())).values()))["metric"]
  targets = sweep["study"]["targets"]
  head = [f"{metric} target {t:g}" for t in targets]
  text = (
    "## Time to target\n\nSimulated seconds until each report seed's evaluation first "
    f"reaches the target ({metric}): mean ± 95% CI over the seeds that reached it "
    "(how many, when not all). Synchronous runs evaluate every "
    "eval_every rounds, so a time is the end of the first evaluated round at the target. "
    "Asynchronous Bi²Clip runs twice the rounds in server steps (the same client work); "
    "in the round tables above its budget is server steps.\n\n"
  )
  text += "### Winners\n\n" + tables.md_table(
    ["bandwidth"] + head,
    [[st] + [verdict(tabs[st][t]["winner"]) for t in targets] for st in tabs],
  )
  for st, per_target in tabs.items():
    arms = list(next(iter(per_target.values()))["arms"])
    rows = [[m] + [_time_cell(per_target[t]["arms"][m]) for t in targets] for m in arms]
    text += f"\n### {st}\n\n" + tables.md_table(["arm"] + head, rows)
  plot_quality_vs_time(by_setting, os.path.join(sweep_dir, "quality_vs_time.png"), targets)
  return text + "\n![quality against simulated time](quality_vs_time.png)\n"


def plot_quality_vs_time(by_setting: dict, path: str, targets=()) -> None:
  """One panel per bandwidth: every arm's metric (mean, 95% band over its report seeds)
  against simulated time on a log axis, the targets as dotted lines."""
  plt = tables.pyplot()
  n = len(by_setting)
  cols = min(n, 2)
  rows = math.ceil(n / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
  for ax, (st, stats) in zip(axes.flat, by_setting.items()):
    curves = [c for s in stats.values() for c in s["time_curves"] if c]
    if not curves:
      continue
    lo = min(c[0][0] for c in curves)
    hi = max(c[-1][0] for c in curves)
    xs = np.geomspace(max(lo, 1e-12), hi, 200)
    for m, s in stats.items():
      kept = [c for c in s["time_curves"] if c]
      x, mat = tables.seed_matrix(kept, xs)
      for i, c in enumerate(kept):  # no value past a run's end
        mat[i, x > c[-1][0]] = np.nan
      tables.plot_band(ax, x, mat, m)
    for t in targets:
      ax.axhline(t, color="grey", ls=":", lw=0.8)
    first = next(iter(stats.values()))
    metric = first["metric"]
    ys = [y for c in curves for _, y in c if math.isfinite(y)]
    if first["mode"] == "min" and ys and min(ys) > 0:  # a loss: log scale, as the report's
      ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_title(st)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[n:]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
