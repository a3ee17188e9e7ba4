"""Tables and plots from run directories.

    python -m experiments.report runs/sweep_dir            # one sweep -> report.md, PNGs
    python -m experiments.report --combine out/ a/ b/ ...  # several sweeps -> one table

For a sweep (``sweep.json`` written by :mod:`experiments.sweep`) it writes
``report.md`` (best setting per method; mean ± std over seeds of the final and of the
best value of the report metric; diverged seeds counted) and ``curves_<metric>.png``
(metric vs round per method, mean with a min-max band over seeds). When the runs log
``train/bytes_cumulative`` it adds a table of every grid point's final metric against the
bytes a node sent and received, and ``quality_vs_bytes.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np

from experiments.metrics_log import read_jsonl


def _load(run_dir):
  summary = json.load(open(os.path.join(run_dir, "summary.json")))
  rows = read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
  return summary, rows


def _mean_std(values):
  v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
  if not len(v):
    return math.nan, math.nan
  return float(v.mean()), float(v.std())


def method_stats(sweep_dir: str) -> dict:
  sweep = json.load(open(os.path.join(sweep_dir, "sweep.json")))
  out = {}
  for method, info in sweep["methods"].items():
    runs = [
      _load(os.path.join(sweep_dir, r))
      for r in info["runs"]
      if os.path.exists(os.path.join(sweep_dir, r, "summary.json"))
    ]
    if not runs:
      continue
    metric = runs[0][0]["report_metric"]
    finals = [s["final"].get(metric) if not s["diverged"] else None for s, _ in runs]
    bests = [s.get("best") for s, _ in runs]
    curves = []
    for _, rows in runs:
      pts = [(r["round"], r[metric]) for r in rows if metric in r]
      curves.append(pts)
    out[method] = dict(
      best_setting=info["best"],
      metric=metric,
      mode=runs[0][0]["report_mode"],
      final=_mean_std(finals),
      best=_mean_std(bests),
      seeds=len(runs),
      diverged=sum(s["diverged"] for s, _ in runs),
      curves=curves,
      grid=info["grid"],
      wall_s=sum(s["wall_s"] for s, _ in runs),
    )
  return out


def _fmt(ms):
  m, s = ms
  return "diverged" if math.isnan(m) else f"{m:.4g} ± {s:.2g}"


def markdown_table(stats: dict, title: str = "") -> str:
  if not stats:
    return "(no finished runs)\n"
  metric = next(iter(stats.values()))["metric"]
  mode = next(iter(stats.values()))["mode"]
  lines = [
    f"### {title}" if title else "",
    f"Metric: `{metric}` ({'lower' if mode == 'min' else 'higher'} is better); "
    "mean ± std over seeds at the best grid setting (tuned on the first seed).",
    "",
    "| method | best setting | final | best during run | seeds | diverged |",
    "|---|---|---|---|---|---|",
  ]
  key = lambda m: stats[m]["final"][0] if mode == "min" else -stats[m]["final"][0]
  order = sorted(stats, key=lambda m: (math.isnan(stats[m]["final"][0]), key(m)))
  for m in order:
    s = stats[m]
    lines.append(
      f"| {m} | {s['best_setting']} | {_fmt(s['final'])} | {_fmt(s['best'])} | "
      f"{s['seeds']} | {s['diverged']} |"
    )
  return "\n".join(lines) + "\n"


def grid_table(stats: dict) -> str:
  lines = ["| method | grid point | score (first seed; lower is better) |", "|---|---|---|"]
  for m, s in stats.items():
    for name, g in sorted(s["grid"].items(), key=lambda kv: kv[1]["score"]):
      lines.append(f"| {m} | {name} | {g['score']:.4g} |")
  return "\n".join(lines) + "\n"


def plot_curves(stats: dict, path: str, title: str = ""):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.5))
  for m, s in stats.items():
    curves = [c for c in s["curves"] if c]
    if not curves:
      continue
    rounds = sorted({r for c in curves for r, _ in c})
    mat = np.full((len(curves), len(rounds)), np.nan)
    for i, c in enumerate(curves):
      d = dict(c)
      for j, r in enumerate(rounds):
        v = d.get(r)
        mat[i, j] = v if v is not None and math.isfinite(v) else np.nan
    with np.errstate(all="ignore"):
      mean = np.nanmean(mat, 0)
    (line,) = ax.plot(rounds, mean, label=f"{m}{' (diverged)' if s['diverged'] else ''}")
    ax.fill_between(
      rounds, np.nanmin(mat, 0), np.nanmax(mat, 0), alpha=0.15, color=line.get_color()
    )
  metric = next(iter(stats.values()))["metric"]
  ax.set_xlabel("round")
  ax.set_ylabel(metric)
  if next(iter(stats.values()))["mode"] == "min":
    ax.set_yscale("log")
  ax.set_title(title or metric)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


BYTES = "train/bytes_cumulative"


def cost_stats(sweep_dir: str) -> list[dict]:
  """Per method and grid point: the final report metric (mean ± std over seeds) and the
  bytes one node sent and received over the run (``train/bytes_cumulative``)."""
  sweep = json.load(open(os.path.join(sweep_dir, "sweep.json")))
  groups = {}
  for method, info in sweep["methods"].items():
    for point_name in info["grid"]:  # every grid point's runs: <method>/<point>/seed<s>
      point_dir = os.path.join(sweep_dir, method, point_name)
      runs = sorted(
        os.path.join(point_dir, d)
        for d in (os.listdir(point_dir) if os.path.isdir(point_dir) else [])
      )
      for run in runs:
        if not os.path.exists(os.path.join(run, "summary.json")):
          continue
        _cost_row(groups, method, run)
  out = []
  for g in groups.values():
    finals = g.pop("finals")
    g["seeds"] = len(finals)
    g["final"] = _mean_std(finals)
    out.append(g)
  return out


def _cost_row(groups, method, run):
  summary, rows = _load(run)
  point = os.path.basename(os.path.dirname(os.path.normpath(run)))
  total = [row[BYTES] for row in rows if BYTES in row]
  final = None if summary["diverged"] else summary["final"].get(summary["report_metric"])
  g = groups.setdefault(
    (method, point),
    dict(
      method=method, point=point, metric=summary["report_metric"], finals=[], bytes=None, diverged=0
    ),
  )
  g["finals"].append(final)
  g["diverged"] += int(summary["diverged"])
  if total:
    g["bytes"] = float(total[-1])


def cost_table(rows: list[dict]) -> str:
  lines = [
    "| method | setting | total bytes per node | final | seeds | diverged |",
    "|---|---|---|---|---|---|",
  ]
  for g in sorted(rows, key=lambda g: (g["method"], -(g["bytes"] or 0))):
    b = "—" if g["bytes"] is None else f"{g['bytes']:,.0f}"
    lines.append(
      f"| {g['method']} | {g['point']} | {b} | {_fmt(g['final'])} | "
      f"{g['seeds']} | {g['diverged']} |"
    )
  return "\n".join(lines) + "\n"


def plot_quality_vs_bytes(rows: list[dict], path: str, title: str = ""):
  """Final metric (mean, with a std bar over seeds) against total bytes, per method."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7.5, 4.5))
  for method in sorted({g["method"] for g in rows}):
    pts = sorted(
      (g for g in rows if g["method"] == method and g["bytes"]), key=lambda g: g["bytes"]
    )
    x = [g["bytes"] for g in pts]
    y = [g["final"][0] for g in pts]
    e = [g["final"][1] for g in pts]
    ax.errorbar(x, y, yerr=e, fmt="o", ms=4, capsize=2, label=method, alpha=0.85)
  metric = rows[0]["metric"] if rows else "metric"
  ax.set_xscale("log")
  finals = [g["final"][0] for g in rows if math.isfinite(g["final"][0])]
  if finals and min(finals) > 0 and max(finals) / min(finals) > 10:
    ax.set_yscale("log")
  ax.set_xlabel("bytes sent + received per node over the run")
  ax.set_ylabel(f"final {metric}")
  ax.set_title(title or f"final {metric} vs bytes")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_report(sweep_dir: str) -> str:
  stats = method_stats(sweep_dir)
  name = os.path.basename(os.path.normpath(sweep_dir))
  metric = next(iter(stats.values()))["metric"] if stats else "metric"
  png = f"curves_{metric.replace('/', '_')}.png"
  if stats:
    plot_curves(stats, os.path.join(sweep_dir, png), title=name)
  text = (
    f"# Sweep {name}\n\n" + markdown_table(stats) + f"\n![curves]({png})\n\n"
    "## Every grid point\n\n" + grid_table(stats)
  )
  costs = cost_stats(sweep_dir) if stats else []
  if any(g["bytes"] for g in costs):
    plot_quality_vs_bytes(costs, os.path.join(sweep_dir, "quality_vs_bytes.png"), name)
    text += (
      "\n## Quality against bytes\n\nEvery grid point, mean ± std over its seeds."
      "\n\n" + cost_table(costs) + "\n![quality vs bytes](quality_vs_bytes.png)\n"
    )
  with open(os.path.join(sweep_dir, "report.md"), "w") as f:
    f.write(text)
  with open(os.path.join(sweep_dir, "results.json"), "w") as f:
    json.dump(
      {m: {k: v for k, v in s.items() if k != "curves"} for m, s in stats.items()}, f, indent=2
    )
  return text


def combine(out_dir: str, sweep_dirs: list[str]) -> str:
  """One table (methods x sweeps) of final metric mean ± std, plus each sweep's plot."""
  os.makedirs(out_dir, exist_ok=True)
  all_stats = {os.path.basename(os.path.normpath(d)): method_stats(d) for d in sweep_dirs}
  methods = []
  for s in all_stats.values():
    methods += [m for m in s if m not in methods]
  cols = list(all_stats)
  lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  for m in methods:
    cells = []
    for c in cols:
      s = all_stats[c].get(m)
      cells.append(
        "—"
        if s is None
        else _fmt(s["final"]) + (f" ({s['diverged']} div.)" if s["diverged"] else "")
      )
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  table = "\n".join(lines) + "\n"
  for c, s in all_stats.items():
    if s:
      plot_curves(s, os.path.join(out_dir, f"curves_{c}.png"), title=c)
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(table)
  return table


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("dirs", nargs="+")
  p.add_argument("--combine", default=None, help="output folder for a combined table")
  args = p.parse_args(argv)
  if args.combine:
    print(combine(args.combine, args.dirs))
  else:
    for d in args.dirs:
      print(write_report(d))


if __name__ == "__main__":
  main()
