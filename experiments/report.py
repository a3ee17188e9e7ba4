"""Tables and plots of a study, regenerated from its stored runs; ``--check`` tests its rules.

    python -m experiments.report DIR                  # every study (sweep.json) under DIR,
                                                      # and DIR/table.md when there are several
    python -m experiments.report DIR --check          # exit 1 with one line per problem
    python -m experiments.report --combine OUT A B .. # several studies -> one table
    python -m experiments.report RUNS --export OUT    # copy a study's per-seed runs to OUT
    python -m experiments.report --time OUT.png A=run1 A=run2 B=run3   # any runs, sync and
                                                      # async mixed, against simulated time

For a study (``sweep.json`` from :mod:`experiments.sweep`) it writes ``report.md``:

* the kept point of each method, the grid edges it sits on (if any), and the report metric
  at every budget: ``mean ± h`` over the report seeds, with ``n`` stated and ``h`` the
  half-width of the 95% t interval (:mod:`experiments.stats`); diverged seeds counted;
* every method against the reference method at every budget: the difference of means and
  Welch's p-value;
* every tried grid point's tuning score;
* ``curves_<metric>.png`` (mean over report seeds with the 95% band), and the same against
  simulated time (``*_sim_time.png``) when the runs log ``sim_time``;
* when the runs log ``train/bytes_cumulative``, quality against bytes per grid point.

A study may report its methods in several settings (``settings`` in ``sweep.json``, e.g. the
straggler severities of :mod:`experiments.async_study`: one section per setting), count its
budgets in simulated seconds (``unit: 'time'``: the first evaluation at or past each budget),
list the comparisons its claims rest on (``claims``: a table of Welch tests) and name a
module under ``experiments`` whose ``extra_sections`` it appends (``report_module``).

``--check`` (:mod:`experiments.study_check`) lists every rule a study breaks: a kept point on
an open grid edge, too few or reused report seeds, runs of mixed code, length or config, a
budget or CI that cannot be computed, a folder with no study in it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np

from experiments import stats as stats_lib
from experiments import tables
from experiments.metrics_log import read_jsonl
from experiments.study_runs import (  # noqa: F401 -- also this module's API
  _load,
  find_studies,
  value_at,
  _finite_or_none,
  unit_of,
  unit_label,
  run_length,
  settings_of,
  runs_by_setting,
  all_runs,
  load_runs,
)


def method_stats(sweep_dir: str, setting: str = "") -> dict:
  """Per method (in ``setting``): kept point, edges, metric, and per budget the per-seed
  values and their :class:`experiments.stats.Summary`."""
  sweep = json.load(open(os.path.join(sweep_dir, "sweep.json")))
  budgets = sweep.get("budgets") or []
  unit = unit_of(sweep)
  x = "round" if unit == "round" else "time"
  out = {}
  for method, info in sweep["methods"].items():
    runs = [
      (s, rows) for _, s, rows in load_runs(sweep_dir, runs_by_setting(info).get(setting, []))
    ]
    if not runs:
      continue
    metric = runs[0][0]["report_metric"]
    per_budget = {}
    for b in budgets or [runs[0][0].get("done")]:
      values = [value_at(rows, metric, b, unit, s.get("total")) for s, rows in runs]
      per_budget[b if unit == "time" else int(b)] = dict(
        values=values, summary=stats_lib.summarize(values)
      )
    out[method] = dict(
      best_setting=info["best"],
      edges=info.get("edges", []),
      metric=metric,
      mode=runs[0][0]["report_mode"],
      budgets=per_budget,
      seeds=len(runs),
      curves=[[(r[x], r[metric]) for r in rows if metric in r] for _, rows in runs],
      # The same on the simulated clock (tailopt.timing), when the runs logged it.
      time_curves=[
        [(r["sim_time"], r[metric]) for r in rows if metric in r and "sim_time" in r]
        for _, rows in runs
      ],
      grid=info["grid"],
      wall_s=sum(s["wall_s"] for s, _ in runs),
    )
  return out


def _edges_text(edges) -> str:
  if not edges:
    return "interior"
  return "; ".join(f"{e['field'].split('.')[-1]} {e['side']} edge ({e['status']})" for e in edges)


def _better(mode: str):
  return (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)


def _b(b) -> str:
  """A budget as written in a table (``180``, ``7.5``)."""
  return f"{b:g}" if isinstance(b, float) else str(b)


def markdown_table(stats: dict, sweep: dict) -> str:
  """The kept points and the metric at every budget, mean ± 95% CI over the report seeds."""
  if not stats:
    return "(no finished runs)\n"
  first = next(iter(stats.values()))
  metric, mode = first["metric"], first["mode"]
  budgets = sorted(first["budgets"])
  last = budgets[-1]
  unit = unit_label(sweep)
  lines = [
    f"Metric: `{metric}` ({'lower' if mode == 'min' else 'higher'} is better) at "
    f"{', '.join(map(_b, budgets))} {unit}. {_seeds_text(stats, sweep)} {_code_text(sweep)}",
    "",
    "| method | kept point | grid edges | "
    + " | ".join(f"{_b(b)} {unit}" for b in budgets)
    + " | n |",
    "|---|---|---|" + "---|" * len(budgets) + "---|",
  ]
  key = lambda m: stats[m]["budgets"][last]["summary"].mean
  sign = 1 if mode == "min" else -1
  order = sorted(
    stats, key=lambda m: (math.isnan(key(m)), sign * key(m) if not math.isnan(key(m)) else 0)
  )
  for m in order:
    s = stats[m]
    cells = " | ".join(stats_lib.fmt(s["budgets"][b]["summary"]) for b in budgets)
    lines.append(
      f"| {m} | {s['best_setting']} | {_edges_text(s['edges'])} | {cells} | {s['seeds']} |"
    )
  return "\n".join(lines) + "\n"


def _seeds_text(stats: dict, sweep: dict) -> str:
  """How the table's numbers were made: tuning seeds and length, report seeds, n."""
  unit, tune = unit_label(sweep), sweep.get("tune_seeds", [])
  where = f" in setting {sweep['tune_setting']}" if sweep.get("tune_setting") else ""
  ns = {s["seeds"] for s in stats.values()}
  own = {
    tuple(sweep["methods"].get(m, {}).get("report_seeds") or sweep.get("report_seeds") or [])
    for m in stats
  }
  seeds = list(own.pop()) if len(own) == 1 else sweep.get("report_seeds")
  if len(ns) == 1:
    over = f"over n = {ns.pop()} report seeds {seeds}"
  else:
    over = f"over each method's n report seeds (column n; from {seeds})"
  return (
    f"Tuned on seed(s) {tune} at {_b(sweep.get('tune_rounds'))} {unit}{where}; mean ± 95% CI "
    f"(t, n − 1) {over}, none a tuning seed."
  )


def _code_text(sweep) -> str:
  code = sweep.get("code") or {}
  if not code.get("commit"):
    return "Code version unknown."
  return f"Code: commit {code['commit'][:10]}{' (with local edits)' if code.get('dirty') else ''}."


def welch_cell(a: dict, r: dict, name_a: str, name_r: str, mode: str) -> str:
  """``a`` against ``r`` (one budget's ``{values, summary}`` each): the difference of means,
  Welch's p-value, and which is better at p < 0.05."""
  sa, sr = a["summary"], r["summary"]
  if sa.n == 0 or sr.n == 0:
    return "diverged" if sa.n == 0 else f"{name_r} diverged"
  p = stats_lib.welch_p(a["values"], r["values"])
  verdict = ""
  if not math.isnan(p) and p < 0.05:
    verdict = f", {name_a} better" if _better(mode)(sa.mean, sr.mean) else f", {name_r} better"
  return f"{sa.mean - sr.mean:+.3g} ({stats_lib.fmt_p(p)}{verdict})"


def comparison_table(stats: dict, reference: str, unit: str = "rounds") -> str:
  """Every method against ``reference`` at every budget: difference of means (method −
  reference) and Welch's two-sided p-value over the report seeds."""
  if reference not in stats or len(stats) < 2:
    return ""
  ref = stats[reference]
  budgets = sorted(ref["budgets"])
  rows = [
    [m]
    + [welch_cell(s["budgets"][b], ref["budgets"][b], m, reference, ref["mode"]) for b in budgets]
    for m, s in stats.items()
    if m != reference
  ]
  return (
    f"Each method against **{reference}**: difference of means (method − {reference}), "
    "Welch's two-sided p-value, and which is better at p < 0.05 (else: no difference shown).\n\n"
    + tables.md_table(["method"] + [f"{_b(b)} {unit}" for b in budgets], rows)
  )


def settings_table(sweep: dict, stats_by_setting: dict) -> str:
  """Each method in every setting against itself in the baseline setting
  (``sweep['setting_baseline']``, :mod:`experiments.sweep` rule 4) at the last budget: mean ±
  95% CI, difference of means, Welch's two-sided p-value and n."""
  base = sweep.get("setting_baseline")
  if not base or base not in stats_by_setting:
    return ""
  rows, budget = [], None
  for method, ref in stats_by_setting[base].items():
    budget = max(ref["budgets"])
    for setting, stats in stats_by_setting.items():
      if method not in stats:  # a setting only some methods run (or not finished)
        continue
      v = stats[method]["budgets"][budget]
      diff = (
        "" if setting == base else welch_cell(v, ref["budgets"][budget], setting, base, ref["mode"])
      )
      rows.append([method, setting, stats_lib.fmt(v["summary"]), diff, str(v["summary"].n)])
  if not rows:
    return ""
  return (
    f"## Every setting against {base}\n\nEach method at its kept point, at {_b(budget)} "
    f"{unit_label(sweep)}: mean ± 95% CI over the report seeds; the difference of means "
    f"(setting − {base}) with Welch's two-sided p-value, and which is better at p < 0.05.\n\n"
    + tables.md_table(["method", "setting", "final", f"− {base} (p)", "n"], rows)
  )


def claims_table(sweep: dict, stats_by_setting: dict) -> str:
  """The comparisons the study's claims rest on (``sweep['claims']``: ``a`` against ``b`` in
  some settings): per setting and budget, the difference of means, Welch's p and n."""
  rows = []
  for c in sweep.get("claims") or []:
    for setting in c.get("settings") or settings_of(sweep):
      st = stats_by_setting.get(setting, {})
      if c["a"] not in st or c["b"] not in st:
        rows.append([c["name"], f"{c['a']} − {c['b']}", setting or "—", "not run", ""])
        continue
      a, b = st[c["a"]], st[c["b"]]
      for budget in sorted(a["budgets"]):
        cell = welch_cell(a["budgets"][budget], b["budgets"][budget], c["a"], c["b"], a["mode"])
        n = f"{a['budgets'][budget]['summary'].n} / {b['budgets'][budget]['summary'].n}"
        rows.append(
          [c["name"], f"{c['a']} − {c['b']}", setting or "—", _b(budget), f"{cell}, n {n}"]
        )
  if not rows:
    return ""
  texts = "".join(f"- **{c['name']}**: {c['text']}\n" for c in sweep["claims"])
  return (
    f"{texts}\nDifference of means (a − b), Welch's two-sided p-value over the report "
    "seeds, and n of each (finite values).\n\n"
    + tables.md_table(["claim", "a − b", "setting", unit_label(sweep), "a − b (p), n a / b"], rows)
  )


def grid_table(stats: dict) -> str:
  rows = [
    [m, name, f"{g['score']:.4g}", "extension" if g.get("extension") else ""]
    for m, s in stats.items()
    for name, g in sorted(s["grid"].items(), key=lambda kv: kv[1]["score"])
  ]
  header = [
    "method",
    "grid point",
    "tuning score (mean over tuning seeds; lower is better)",
    "added",
  ]
  return tables.md_table(header, rows)


def plot_curves(stats: dict, path: str, title: str = "", xlabel: str = "round", xs=None):
  """The metric against rounds (or ``xs``: simulated times, each run's last evaluation at
  or before each) per method: mean over report seeds, 95% t band."""
  plt = tables.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for m, s in stats.items():
    curves = [c for c in s["curves"] if c]
    if not curves:
      continue
    x, mat = tables.seed_matrix(curves, xs)
    diverged = sum(1 for c in curves if not c or not math.isfinite(c[-1][1]))
    tables.plot_band(ax, x, mat, f"{m}{f' ({diverged} diverged)' if diverged else ''}")
  metric = next(iter(stats.values()))["metric"]
  ax.set_xlabel(xlabel)
  ax.set_ylabel(f"{metric} (mean, 95% CI over report seeds)")
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
  """Per method and grid point: the final report metric over its runs (every seed it ran
  on) and the bytes one node sent and received over the run (``train/bytes_cumulative``).
  A study with settings compared with a baseline setting (:mod:`experiments.sweep` rule 4):
  per method and setting, over its report runs."""
  sweep = json.load(open(os.path.join(sweep_dir, "sweep.json")))
  groups = {}
  if sweep.get("setting_baseline"):
    for method, info in sweep["methods"].items():
      for setting, rels in runs_by_setting(info).items():
        for rel in rels:
          if os.path.exists(os.path.join(sweep_dir, rel, "summary.json")):
            _cost_row(groups, method, os.path.join(sweep_dir, rel), setting)
    return [dict(g, final=stats_lib.summarize(g.pop("finals"))) for g in groups.values()]
  for method, info in sweep["methods"].items():
    for point_name in info["grid"]:  # every grid point's runs: <method>/<point>/seed<s>
      point_dir = os.path.join(sweep_dir, method, point_name)
      runs = sorted(
        os.path.join(point_dir, d)
        for d in (os.listdir(point_dir) if os.path.isdir(point_dir) else [])
      )
      for run in runs:
        if os.path.exists(os.path.join(run, "summary.json")):
          _cost_row(groups, method, run)
  out = []
  for g in groups.values():
    g["final"] = stats_lib.summarize(g.pop("finals"))
    out.append(g)
  return out


def _cost_row(groups, method, run, point=None):
  summary, rows = _load(run)
  if summary.get("retimed_from"):  # a copy of a run on another clock (experiments.retime)
    return
  point = point or os.path.basename(os.path.dirname(os.path.normpath(run)))
  total = [row[BYTES] for row in rows if BYTES in row]
  final = None if summary["diverged"] else summary["final"].get(summary["report_metric"])
  g = groups.setdefault(
    (method, point, summary.get("done")),
    dict(method=method, point=point, rounds=summary.get("done"), metric=summary["report_metric"]),
  )
  g.setdefault("finals", []).append(final)
  if total:
    g["bytes"] = float(total[-1])


def cost_table(rows: list[dict]) -> str:
  lines = [
    "| method | setting | rounds | total bytes per node | final (mean ± 95% CI) | n |",
    "|---|---|---|---|---|---|",
  ]
  for g in sorted(rows, key=lambda g: (g["method"], g["rounds"] or 0, -(g.get("bytes") or 0))):
    b = "—" if g.get("bytes") is None else f"{g['bytes']:,.0f}"
    s = g["final"]
    lines.append(
      f"| {g['method']} | {g['point']} | {g['rounds']} | {b} | {stats_lib.fmt(s)} | "
      f"{s.n + s.diverged} |"
    )
  return "\n".join(lines) + "\n"


def plot_quality_vs_bytes(rows: list[dict], path: str, title: str = ""):
  """Final metric (mean, 95% CI bar) against total bytes, per method."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7.5, 4.5))
  for method in sorted({g["method"] for g in rows}):
    pts = sorted(
      (g for g in rows if g["method"] == method and g.get("bytes")), key=lambda g: g["bytes"]
    )
    x = [g["bytes"] for g in pts]
    y = [g["final"].mean for g in pts]
    e = [0.0 if math.isnan(g["final"].ci95) else g["final"].ci95 for g in pts]
    ax.errorbar(x, y, yerr=e, fmt="o", ms=4, capsize=2, label=method, alpha=0.85)
  metric = rows[0]["metric"] if rows else "metric"
  ax.set_xscale("log")
  finals = [g["final"].mean for g in rows if math.isfinite(g["final"].mean)]
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
  """Writes ``report.md``, ``results.json`` and the plots of one study; returns the text.

  A study with settings (``sweep['settings']``, e.g. straggler severities) gets one section
  per setting; its claims (``sweep['claims']``) one table of Welch tests; a study naming a
  ``report_module`` (a module under ``experiments``) gets that module's
  ``extra_sections(sweep_dir, sweep, stats_by_setting)`` appended."""
  from experiments.rundir import atomic_write

  sweep = json.load(open(os.path.join(sweep_dir, "sweep.json")))
  name = os.path.basename(os.path.normpath(sweep_dir))
  by_setting = {st: method_stats(sweep_dir, st) for st in settings_of(sweep)}
  text = f"# Study {name}\n\n"
  for setting, stats in by_setting.items():
    text += _setting_section(sweep_dir, sweep, name, setting, stats)
  against = settings_table(sweep, by_setting)
  if against:
    text += against + "\n"
  claims = claims_table(sweep, by_setting)
  if claims:
    text += "## Claims\n\n" + claims + "\n"
  grids = {m: {"grid": i["grid"]} for m, i in sweep["methods"].items() if _ran(m, by_setting)}
  text += "## Every grid point\n\n" + grid_table(grids)
  costs = cost_stats(sweep_dir) if grids else []
  if any(g.get("bytes") for g in costs):
    plot_quality_vs_bytes(costs, os.path.join(sweep_dir, "quality_vs_bytes.png"), name)
    over = "Every grid point, mean ± 95% CI over its runs."
    if sweep.get("setting_baseline"):
      over = "Each method in every setting, mean ± 95% CI over its report runs."
    text += (
      f"\n## Quality against bytes\n\n{over}"
      "\n\n" + cost_table(costs) + "\n![quality vs bytes](quality_vs_bytes.png)\n"
    )
  if sweep.get("report_module"):
    text += _report_module(sweep["report_module"]).extra_sections(sweep_dir, sweep, by_setting)
  atomic_write(os.path.join(sweep_dir, "report.md"), text)
  results = {st: _results(stats) for st, stats in by_setting.items()}
  results = results[""] if list(results) == [""] else results
  atomic_write(os.path.join(sweep_dir, "results.json"), json.dumps(results, indent=2))
  return text


def _ran(method: str, by_setting: dict) -> bool:
  return any(method in stats for stats in by_setting.values())


def _setting_section(sweep_dir, sweep, name, setting, stats) -> str:
  """One setting's table, its comparison with the reference and its curves."""
  metric = next(iter(stats.values()))["metric"] if stats else "metric"
  png = f"curves_{metric.replace('/', '_')}{f'_{setting}' if setting else ''}.png"
  title = f"{name} {setting}".strip()
  if stats and unit_of(sweep) == "time":
    xs = np.linspace(0, float(sweep["report_rounds"]), 141)[1:]
    plot_curves(stats, os.path.join(sweep_dir, png), title, "simulated time (s)", xs)
  elif stats:
    plot_curves(stats, os.path.join(sweep_dir, png), title=title)
  timed = ""
  if stats and unit_of(sweep) == "round" and all(any(s["time_curves"]) for s in stats.values()):
    timed = png.replace(".png", "_sim_time.png")
    on_clock = {m: dict(s, curves=s["time_curves"]) for m, s in stats.items()}
    end = max(c[-1][0] for s in stats.values() for c in s["time_curves"] if c)
    xs = np.linspace(0, end, 141)[1:]
    plot_curves(on_clock, os.path.join(sweep_dir, timed), title, "simulated time (s)", xs)
  head = ""
  if setting:
    fields = (sweep.get("settings") or {}).get(setting) or {}
    note = ((sweep.get("study") or {}).get("notes") or {}).get(setting)
    head = f"## {setting}: " + ", ".join(f"{k} = {v}" for k, v in fields.items())
    head += (f" ({note})" if note else "") + "\n\n"
  reference = sweep.get("reference") or next(iter(stats), "")
  text = head + markdown_table(stats, sweep)
  comparison = comparison_table(stats, reference, unit_label(sweep))
  if comparison:
    text += "\n" + comparison
  if timed:
    text += f"\n![curves on the simulated clock]({timed})\n"
  return text + f"\n![curves]({png})\n\n"


def _report_module(name: str):
  import importlib

  if not name.startswith("experiments."):
    raise SystemExit(f"error: sweep.json report_module {name!r} is not under experiments.")
  return importlib.import_module(name)


def _results(stats: dict) -> dict:
  return {
    m: {
      "best_setting": s["best_setting"],
      "edges": s["edges"],
      "metric": s["metric"],
      "budgets": {
        str(b): {"values": v["values"], **v["summary"]._asdict()} for b, v in s["budgets"].items()
      },
    }
    for m, s in stats.items()
  }


def combine(out_dir: str, sweep_dirs: list[str]) -> str:
  """Methods × studies tables, one per setting and budget the studies share: the metric's
  mean ± 95% CI over the report seeds (n stated); plus each study's curves. Written to
  ``out_dir/table.md`` (each study's ``report.md`` has the p-values)."""
  os.makedirs(out_dir, exist_ok=True)
  names = [os.path.basename(os.path.normpath(d)) for d in sweep_dirs]
  sweeps = [json.load(open(os.path.join(d, "sweep.json"))) for d in sweep_dirs]
  settings = [st for st in settings_of(sweeps[0]) if all(st in settings_of(w) for w in sweeps)]
  unit = unit_label(sweeps[0])
  parts = []
  for st in settings:
    all_stats = {n: method_stats(d, st) for n, d in zip(names, sweep_dirs)}
    parts += _combined_tables(all_stats, names, f"{st}, " if st else "", unit)
    for n, s in all_stats.items():
      if s:
        png = f"curves_{n}{f'_{st}' if st else ''}.png"
        plot_curves(s, os.path.join(out_dir, png), title=f"{n} {st}".strip())
  table = "\n".join(parts)
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(table)
  return table


def _combined_tables(all_stats: dict, names: list, prefix: str, unit: str) -> list[str]:
  methods = []
  for s in all_stats.values():
    methods += [m for m in s if m not in methods]
  shared = None
  for s in all_stats.values():
    for m in s.values():
      shared = set(m["budgets"]) if shared is None else shared & set(m["budgets"])
  parts = []
  for b in sorted(shared or []):
    rows = []
    for m in methods:
      cells = []
      for n in names:
        s = all_stats[n].get(m)
        cells.append(
          "—" if s is None else f"{stats_lib.fmt(s['budgets'][b]['summary'])} (n={s['seeds']})"
        )
      rows.append([m] + cells)
    parts.append(f"### {prefix}{_b(b)} {unit}\n\n" + tables.md_table(["method"] + names, rows))
  return parts


def export(sweep_dir: str, out_dir: str) -> None:
  """Copies a study to ``out_dir`` with every per-seed run (tuning and report) it used:
  ``sweep.json`` and per run ``summary.json``, ``config.json``, ``code.json`` and the
  ``metrics.jsonl`` rows that hold an ``eval/`` metric, with their ``train/bytes_cumulative``
  and ``sim_time`` (and, for a study in simulated time, their ``time``; no checkpoints, event files or
  per-round training rows); then writes the report there. ``python -m experiments.report
  OUT`` regenerates it."""
  sweep = json.load(open(os.path.join(sweep_dir, "sweep.json")))
  keys = {"round", BYTES, "sim_time"} | ({"time"} if unit_of(sweep) == "time" else set())
  runs = {rel for info in sweep["methods"].values() for rel in all_runs(info)}
  for rel in sorted(runs):
    src, dst = os.path.join(sweep_dir, rel), os.path.join(out_dir, rel)
    if not os.path.exists(os.path.join(src, "summary.json")):
      continue  # not run (yet): the check names it
    os.makedirs(dst, exist_ok=True)
    for f in ("summary.json", "config.json", "code.json"):
      if os.path.exists(os.path.join(src, f)):
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
    rows = read_jsonl(os.path.join(src, "metrics.jsonl"))
    with open(os.path.join(dst, "metrics.jsonl"), "w") as f:
      for r in rows:  # the evaluated rounds (the last round is always one)
        if any(k.startswith("eval/") for k in r):
          keep = {k: v for k, v in r.items() if k in keys or k.startswith("eval/")}
          f.write(json.dumps(keep) + "\n")
  shutil.copyfile(os.path.join(sweep_dir, "sweep.json"), os.path.join(out_dir, "sweep.json"))
  write_report(out_dir)


def main(argv=None):
  p = argparse.ArgumentParser(
    prog="python -m experiments.report", description=__doc__.splitlines()[0]
  )
  p.add_argument("dirs", nargs="+")
  p.add_argument("--combine", default=None, help="output folder for a combined table")
  p.add_argument("--check", action="store_true", help="exit 1 listing every broken study rule")
  p.add_argument("--export", default=None, help="copy the study in DIR (runs included) here")
  p.add_argument(
    "--time",
    default=None,
    help="plot the run folders given (LABEL=DIR or DIR; one label groups seeds) against "
    "simulated time (sim_time) into this PNG",
  )
  p.add_argument("--metric", default="", help="with --time: the metric (default: report metric)")
  args = p.parse_args(argv)
  if args.time:
    from experiments import time_axis
    from experiments.errors import UserError

    try:
      time_axis.plot_quality_vs_time(time_axis.parse_groups(args.dirs), args.time, args.metric)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    print(f"wrote {args.time}")
    return 0
  if args.check:
    from experiments import study_check

    problems = [line for d in args.dirs for line in study_check.check(d)]
    for line in problems:
      print(line)
    print(f"{len(problems)} problem(s) in {', '.join(args.dirs)}", file=sys.stderr)
    return 1 if problems else 0
  if args.export:
    if len(args.dirs) != 1:
      p.error("--export takes one study folder")
    export(args.dirs[0], args.export)
    return 0
  if args.combine:
    print(combine(args.combine, args.dirs))
    return 0
  for d in args.dirs:
    studies = find_studies(d)
    if not studies:
      print(f"error: no sweep.json under {d}; give a study folder made by experiments.sweep")
      return 1
    old = [s for s in studies if json.load(open(os.path.join(s, "sweep.json"))).get("rules") != 2]
    if old:  # their runs were not stored: regenerating would overwrite their tables
      print(
        f"error: {', '.join(old)} predate the study rules (no stored runs); their tables are "
        "kept as they are: re-run the study with experiments.sweep"
      )
      return 1
    for s in studies:
      print(write_report(s))
    if len(studies) > 1:  # one study in several settings: the side-by-side table too
      print(combine(d, studies))
  return 0


if __name__ == "__main__":
  sys.exit(main())
