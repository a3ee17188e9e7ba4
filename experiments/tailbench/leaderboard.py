"""tailbench's leaderboard: ``leaderboard.json``, ``leaderboard.md`` and the plots, read back
from the stored studies of a run folder (:mod:`experiments.tailbench.bench`).

Per (task, noise) and method: the final report metric (mean ± 95% CI over the report seeds,
n stated), its AUC (:func:`scores.auc`), the fraction of diverged seeds, the normalised
quality, the difference with bi2clip and Welch's p, the round time relative to fedavg.
Per method: the robustness score (worst normalised quality over the noise laws, mean over
tasks; the ranking), the optimizer state of a node and of the server and the bytes a node
sends and receives per round (as multiples of the model's parameter bytes, and in bytes in
the JSON). Per (task, noise): the measured tail index of the gradients and pseudo-gradients.
"""

from __future__ import annotations

import json
import math
import os
import statistics

from experiments import stats as stats_lib
from experiments import tables
from experiments.report import BYTES
from experiments.study_runs import load_runs
from experiments.tailbench import scores

REFERENCE = "bi2clip"
BASELINE = "fedavg"


def _run_numbers(summary, rows) -> dict:
  metric = summary["report_metric"]
  final = None if summary["diverged"] else summary["final"].get(metric)
  final = final if final is not None and math.isfinite(final) else None
  curve = [(r["round"], r[metric]) for r in rows if metric in r]
  done = max(int(summary.get("done") or 0), 1)
  sent = [r[BYTES] for r in rows if BYTES in r]
  return dict(
    final=final,
    auc=None if final is None else scores.auc(curve),
    curve=curve,
    round_s=summary["wall_s"] / done,
    bytes_per_round=float(sent[-1]) / done if sent else None,
  )


def _summary_dict(s: stats_lib.Summary) -> dict:
  return {"n": s.n, "mean": s.mean, "ci95": s.ci95, "diverged": s.diverged}


def study_numbers(study: str) -> dict:
  """One (task, noise) folder: per method its per-seed numbers and summaries."""
  sweep = json.load(open(os.path.join(study, "sweep.json")))
  out = {"methods": {}, "sweep": sweep}
  for label, info in sweep["methods"].items():
    runs = [_run_numbers(s, rows) for _, s, rows in load_runs(study, info["runs"])]
    finals = [r["final"] for r in runs]
    out["methods"][label] = dict(
      kept=info["best_point"],
      edges=[e for e in info["edges"] if e["status"] == "open"],
      finals=finals,
      final=_summary_dict(stats_lib.summarize(finals)),
      auc=_summary_dict(stats_lib.summarize([r["auc"] for r in runs])),
      diverged=scores.diverged_fraction(finals),
      round_s=statistics.median(r["round_s"] for r in runs) if runs else math.nan,
      bytes_per_round=runs[0]["bytes_per_round"] if runs else None,
      curves=[r["curve"] for r in runs],
    )
  out["mode"] = sweep["config"]["report_mode"]
  out["metric"] = sweep["config"]["report_metric"]
  for name in ("tail_index", "costs"):
    path = os.path.join(study, f"{name}.json")
    out[name] = json.load(open(path)) if os.path.exists(path) else None
  return out


def _compare(methods: dict, mode: str) -> None:
  """Adds normalised quality, the Welch test against bi2clip and the round-time ratio."""
  best = scores.best_mean({k: m["finals"] for k, m in methods.items()}, mode)
  ref = methods.get(REFERENCE)
  base = methods.get(BASELINE)
  for label, m in methods.items():
    m["nq"] = scores.normalised_quality(m["finals"], best, mode)
    if ref is not None and label != REFERENCE:
      m["vs_ref"] = dict(
        diff=m["final"]["mean"] - ref["final"]["mean"],
        p=stats_lib.welch_p(m["finals"], ref["finals"]),
      )
    m["time_vs_fedavg"] = m["round_s"] / base["round_s"] if base else math.nan


def gather(root: str, layout: dict) -> dict:
  """Everything of the leaderboard; ``layout``: ``{task: [noise label, ...]}``."""
  studies = {}
  for task, noises in layout.items():
    for noise in noises:
      d = os.path.join(root, task, noise)
      if os.path.exists(os.path.join(d, "sweep.json")):
        num = study_numbers(d)
        _compare(num["methods"], num["mode"])
        studies[(task, noise)] = num
  complete = [t for t, noises in layout.items() if all((t, n) in studies for n in noises)]
  ranked = {k: v for k, v in studies.items() if k[0] in complete}
  missing = {t: [n for n in noises if (t, n) not in studies] for t, noises in layout.items()}
  missing = {t: n for t, n in missing.items() if n}
  return {"studies": studies, "ranking": _ranking(ranked), "missing": missing}


def _ranking(studies: dict) -> list:
  labels = []
  for s in studies.values():
    labels += [k for k in s["methods"] if k not in labels]
  rows = []
  for label in labels:
    nq = {}
    finals, ratios, node, server, sent = [], [], [], [], []
    for (task, noise), s in studies.items():
      m = s["methods"].get(label)
      if m is None:
        continue
      nq.setdefault(task, {})[noise] = m["nq"]
      finals += m["finals"]
      if m["time_vs_fedavg"] == m["time_vs_fedavg"]:
        ratios.append(m["time_vs_fedavg"])
      c = (s["costs"] or {}).get("entries", {}).get(label)
      p = (s["costs"] or {}).get("param_bytes")
      if c and p:
        node.append(c["node_state_bytes"] / p)
        server.append(c["server_state_bytes"] / p)
        if m["bytes_per_round"]:
          sent.append(m["bytes_per_round"] / p)
    by_task = {t: scores.robustness(v) for t, v in nq.items()}
    all_nq = [v for t in nq.values() for v in t.values()]
    rows.append(
      dict(
        method=label,
        robustness=scores.overall_robustness(by_task),
        robustness_by_task=by_task,
        mean_nq=sum(all_nq) / len(all_nq) if all_nq else math.nan,
        diverged=scores.diverged_fraction(finals),
        seeds=len(finals),
        node_state_x_params=max(node) if node else None,
        server_state_x_params=max(server) if server else None,
        bytes_per_round_x_params=max(sent) if sent else None,
        time_vs_fedavg=math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None,
      )
    )
  rows.sort(key=lambda r: -r["robustness"] if r["robustness"] == r["robustness"] else 1)
  return rows


def _x(v, digits=2) -> str:
  return "—" if v is None or v != v else f"{v:.{digits}f}"


def ranking_table(rows: list) -> str:
  header = [
    "rank",
    "method",
    "robustness",
    "mean NQ",
    "diverged",
    "node state",
    "server state",
    "bytes/round/node",
    "round time vs fedavg",
  ]
  body = [
    [
      i + 1,
      r["method"],
      _x(r["robustness"], 3),
      _x(r["mean_nq"], 3),
      f"{r['diverged']:.0%} of {r['seeds']}",
      f"{_x(r['node_state_x_params'])}×P",
      f"{_x(r['server_state_x_params'])}×P",
      f"{_x(r['bytes_per_round_x_params'])}×P",
      f"{_x(r['time_vs_fedavg'])}×",
    ]
    for i, r in enumerate(rows)
  ]
  return tables.md_table(header, body)


def _fmt(s: dict) -> str:
  return stats_lib.fmt(stats_lib.Summary(s["n"], s["mean"], s["ci95"], s["diverged"]))


def study_table(s: dict) -> str:
  rows = []
  order = sorted(
    s["methods"].items(), key=lambda kv: -kv[1]["nq"] if kv[1]["nq"] == kv[1]["nq"] else 1
  )
  for label, m in order:
    lr = m["kept"].get("hparams.inner_lr")
    ref = m.get("vs_ref")
    vs = "—" if ref is None else f"{ref['diff']:+.4g} ({stats_lib.fmt_p(ref['p'])})"
    edge = " (open edge)" if m["edges"] else ""
    rows.append(
      [
        label,
        f"{lr:g}{edge}",
        _fmt(m["final"]),
        _fmt(m["auc"]),
        f"{m['diverged']:.0%}",
        _x(m["nq"], 3),
        vs,
        f"{_x(m['time_vs_fedavg'])}×",
      ]
    )
  header = ["method", "kept lr", f"final {s['metric']} (n)", "AUC", "diverged", "NQ"]
  header += [f"vs {REFERENCE}: Δ mean (Welch)", "round time vs fedavg"]
  return tables.md_table(header, rows)


def reference_table(studies: dict, alpha: float = 0.05) -> str:
  """Per (task, noise): the reference's final value and rank by NQ, and the methods whose
  mean final value differs from it with Welch p < ``alpha`` (better / worse), with p."""
  rows = []
  for (task, noise), s in studies.items():
    ref = s["methods"].get(REFERENCE)
    if ref is None:
      continue
    ranked = sorted(s["methods"], key=lambda k: -s["methods"][k]["nq"])
    better, worse = [], []
    for label, m in s["methods"].items():
      v = m.get("vs_ref")
      if v is None or not v["p"] < alpha:
        continue
      good = (v["diff"] < 0) == (s["mode"] == "min")
      (better if good else worse).append(f"{label} ({stats_lib.fmt_p(v['p'])})")
    rows.append(
      [
        task,
        noise,
        _fmt(ref["final"]),
        f"{ranked.index(REFERENCE) + 1} of {len(ranked)}",
        ", ".join(better) or "none",
        ", ".join(worse) or "none",
      ]
    )
  header = ["task", "noise", f"{REFERENCE} final (n)", "rank (NQ)"]
  header += [f"better than {REFERENCE} (Welch p < {alpha})", f"worse than {REFERENCE}"]
  return tables.md_table(header, rows)


def tail_table(studies: dict) -> str:
  rows = []
  for (task, noise), s in studies.items():
    t = s["tail_index"]
    if t:
      rows.append([task, noise, t["draws"], _x(t["gradients"]), _x(t["pseudo_gradients"])])
  header = ["task", "noise", "draws K", "α̂ gradients", "α̂ pseudo-gradients"]
  return tables.md_table(header, rows)


def markdown(board: dict, header: dict) -> str:
  """``leaderboard.md``: the ranking, the tail indices, one table per (task, noise)."""
  h = header
  text = f"# tailbench leaderboard: suite {h['suite']}\n\n"
  text += (
    f"Leaderboard written by {h['code']}. {h['rounds']} rounds, learning rate tuned on {h['lrs']} (edges "
    f"extended) with tuning seed(s) {h['tune_seeds']} at {h['tuned_on']}, reported at "
    "every noise law on fresh seeds "
    f"{h['report_seeds']} (n = {len(h['report_seeds'])} per cell)."
  )
  commits = {}
  for (task, noise), st in board["studies"].items():
    code = st["sweep"].get("code") or {}
    key = f"{(code.get('commit') or '?')[:10]}{' (dirty)' if code.get('dirty') else ''}"
    commits.setdefault(key, []).append(f"{task}/{noise}")
  if commits:
    text += " Studies run by: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in commits.items())
    text += "."
  if h["wall_s"] is not None:
    workers = h.get("workers", 1)
    text += (
      f" Wall time {h['wall_s'] / 60:.1f} min with {workers} worker process"
      f"{'es' if workers > 1 else ''} (this invocation; finished runs are read back)."
    )
  text += "\n\n"
  for task, t in (h.get("tasks") or {}).items():
    fields = ", ".join(f"{k}={v}" for k, v in t.items() if k != "config")
    text += f"- `{task}`: `{t['config']}` with {fields}\n"
  text += "\n" if h.get("tasks") else ""
  text += (
    "**Robustness** = mean over tasks of the worst normalised quality over the noise laws; "
    "**NQ** (normalised quality) = mean over seeds of min(1, best/final) for a loss "
    "(min(1, final/best) for an accuracy), best = the best method's mean on that (task, "
    "noise), a diverged seed = 0. State and bytes are multiples of the model's parameter "
    "bytes P (largest over tasks); round time is the median wall time per round of the "
    "report runs over fedavg's, geometric mean over (task, noise): noisy on a shared "
    "machine.\n\n"
  )
  text += "## Ranking\n\n"
  if board["missing"]:
    gaps = "; ".join(f"{t}: {', '.join(n)}" for t, n in board["missing"].items())
    text += (
      f"**Incomplete**: not run yet ({gaps}); the ranking counts only the tasks with every "
      "noise law; the finished studies of the others are listed below.\n\n"
    )
  text += ranking_table(board["ranking"]) + "\n"
  text += "## Measured tail index (stable estimator, all params)\n\n"
  text += tail_table(board["studies"]) + "\n"
  from experiments.tailbench import plots

  if any(plots.is_stable(s) for s in board["studies"].values()):
    text += "![quality vs alpha](quality_vs_alpha.png)\n\n"
  if any(REFERENCE in s["methods"] for s in board["studies"].values()):
    text += f"## {REFERENCE} against the others\n\n" + reference_table(board["studies"]) + "\n"
  last = {task: noise for (task, noise) in board["studies"]}  # each task's last study
  for (task, noise), s in board["studies"].items():
    text += f"## {task}, {noise}\n\n" + study_table(s) + "\n"
    text += f"![curves](curves_{task}.png)\n\n" if noise == last[task] else ""
  return text


def to_json(board: dict, header: dict) -> dict:
  """``leaderboard.json``: the header, the ranking and every (task, noise) cell's numbers."""
  cells = []
  for (task, noise), s in board["studies"].items():
    for label, m in s["methods"].items():
      cells.append(
        dict(
          task=task,
          noise=noise,
          method=label,
          metric=s["metric"],
          mode=s["mode"],
          **{k: v for k, v in m.items() if k != "curves"},
          node_state_bytes=((s["costs"] or {}).get("entries", {}).get(label) or {}).get(
            "node_state_bytes"
          ),
          server_state_bytes=((s["costs"] or {}).get("entries", {}).get(label) or {}).get(
            "server_state_bytes"
          ),
        )
      )
  tails = [
    dict(task=t, noise=n, **s["tail_index"])
    for (t, n), s in board["studies"].items()
    if s["tail_index"]
  ]
  return dict(
    header=header, ranking=board["ranking"], cells=cells, tail_index=tails, missing=board["missing"]
  )


def write(root: str, layout: dict, header: dict) -> dict:
  """Writes ``leaderboard.md``, ``leaderboard.json`` and the plots into ``root``."""
  from experiments.rundir import atomic_write
  from experiments.tailbench import plots

  board = gather(root, layout)
  if not board["studies"]:
    from experiments.errors import UserError

    raise UserError(f"no finished tailbench study in {root}; run the suite there first.")
  board["layout"] = layout
  atomic_write(os.path.join(root, "leaderboard.md"), markdown(board, header))
  atomic_write(
    os.path.join(root, "leaderboard.json"),
    json.dumps(to_json(board, header), indent=2, default=_json_default),
  )
  alpha_plot = os.path.join(root, "quality_vs_alpha.png")
  if not plots.quality_vs_alpha(board, alpha_plot) and os.path.exists(alpha_plot):
    os.remove(alpha_plot)  # (from an earlier selection of tasks)
  for task in {t for (t, _) in board["studies"]}:  # (a task with no finished study: none)
    plots.curves(board, task, os.path.join(root, f"curves_{task}.png"))
  return board


def _json_default(v):
  return float(v) if isinstance(v, (int, float)) else str(v)
