"""The asynchronous study: asynchronous TailOPT against synchronous and asynchronous baselines.

    python -m experiments.async_study --workdir runs/async_study --phase tune --shard 0/2
    python -m experiments.async_study --workdir runs/async_study --phase final
    python -m experiments.async_study --workdir runs/async_study --phase report \\
        --out experiments/results/async

(``experiments/results/async/run_study.sh`` runs all of it.) Every run is an ordinary
run of the experiment loop (``experiments.sweep.run_cell``) of
``configs/async_synthetic.py:study`` with a few fields set (``run_config``), on the same
seeds, clock and simulated-time budget; a study is a sweep with its own grid and report.

Reduced, CPU-sized setting (our choice): least squares (d = 50, 8 clients, covariate-shift
split) with alpha-stable (alpha = 1.5) gradient noise; N = 8 workers, 2 of them stragglers
slowed S in {1, 4, 16} times; log-normal job noise (sigma 0.25); z = 5 local steps of batch
16; a budget of ``BUDGET`` simulated seconds (1 s per local step of a fast worker). Methods
(``METHODS``): synchronous FedAvg and Bi²Clip (wait-for-all on the same clock), FedAsync,
FedBuff (K = 4), DC-ASGD (z = 1, adaptive lambda is not used: DC-ASGD-c, lambda = 0.04),
async local SGD with Delayed Nesterov and dynamic local updates, and async Bi²Clip in scheme
A (buffered, K = 4) and scheme B (K = 1), each with and without the delay-aware rate
(polynomial, a = 0.5, max-reduced) and with and without (adaptive) delay compensation.

Protocol: every method's grid (``METHODS``) is run at S = 4 on seed 0 and the point with the
lowest final eval loss is kept ("tune"); that point then runs at every S on seeds 0 and 1
("final"). The grids of async Bi²Clip (A, rate + compensation: 4 x 4), FedBuff (4 x 3) and
FedAsync (4 x 4) are learning-rate x second-parameter grids and double as the sensitivity
heatmaps. (The grids were widened once, after a first pass put several optima on a grid
edge; every run of both passes is kept and counted.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time

import numpy as np

from experiments.cli import set_field
from experiments.metrics_log import read_jsonl
from experiments.sweep import run_cell, score

BUDGET = 700.0  # simulated seconds
EVAL_EVERY_TIME = 20.0  # simulated seconds
SEVERITIES = (1.0, 4.0, 16.0)
TUNE_SEVERITY = 4.0
SEEDS = (0, 1)
TARGETS = (0.1, 0.05, 0.03)  # eval/loss thresholds for the time-to-target table

BI_GRID = {"hparams.inner_lr": [0.001, 0.003, 0.01, 0.03], "hparams.outer_upper": [0.03, 0.1]}
LR4 = [0.0001, 0.0003, 0.001, 0.003]
# name -> (config variants of configs/async_synthetic.py, grid, heatmap axes or None)
METHODS = {
  "sync-fedavg": ("fedavg", {"hparams.inner_lr": [0.0003, 0.001, 0.003, 0.01]}, None),
  "sync-bi2clip": ("sync", BI_GRID, None),
  "fedasync": (
    "fedasync",
    {"hparams.inner_lr": [0.0003, 0.001, 0.003, 0.01], "hparams.outer_lr": [0.15, 0.3, 0.6, 0.9]},
    "alpha (mixing)",
  ),
  "fedbuff": (
    "fedbuff",
    {"hparams.inner_lr": [0.0003, 0.001, 0.003, 0.01], "hparams.outer_lr": [0.5, 1.0, 2.0]},
    "server lr",
  ),
  "dcasgd": ("dcasgd", {"hparams.outer_lr": LR4}, None),
  "delayed-nesterov": ("async_local_sgd", {"hparams.inner_lr": LR4}, None),
  "bi2clip-A": ("", BI_GRID, None),
  "bi2clip-A+rate": ("rate", BI_GRID, None),
  "bi2clip-A+comp": ("comp", BI_GRID, None),
  "bi2clip-A+rate+comp": (
    "rate,comp",
    {
      "hparams.inner_lr": [0.001, 0.003, 0.01, 0.03],
      "hparams.outer_upper": [0.003, 0.01, 0.03, 0.1],
    },
    "outer threshold u~",
  ),
  "bi2clip-B": ("scheme_b", BI_GRID, None),
  "bi2clip-B+rate": ("scheme_b,rate", BI_GRID, None),
  "bi2clip-B+comp": ("scheme_b,comp", BI_GRID, None),
  "bi2clip-B+rate+comp": ("scheme_b,rate,comp", BI_GRID, None),
}
BASELINES = ["sync-fedavg", "sync-bi2clip", "fedasync", "fedbuff", "dcasgd", "delayed-nesterov"]
BI2CLIP = [m for m in METHODS if m.startswith("bi2clip")]


def grid_points(grid: dict) -> list[dict]:
  keys = list(grid)
  return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def point_name(point: dict) -> str:
  return ",".join(f"{k.split('.')[-1]}={v:g}" for k, v in point.items())


def run_config(method: str, point: dict, severity: float, seed: int):
  """The config of one run (an ordinary configs/async_synthetic.py:study config)."""
  from configs import async_synthetic
  from experiments import async_train

  variants, _, _ = METHODS[method]
  c = async_synthetic.get_config(",".join(filter(None, ["study", variants])))
  c.seed = seed
  c.clock.seed = seed
  c.clock.straggler_fraction, c.clock.straggler_slowdown = 0.25, float(severity)
  c.time_budget, c.eval_every, c.eval_every_time = BUDGET, 0, EVAL_EVERY_TIME
  c.checkpoint_every, c.progress = 0, False
  for k, v in point.items():
    set_field(c, k, v)
  # About 40 dispatches per run: T from the budget, then whole chunks (< 2.5% over budget).
  c.chunk = 0
  t = async_train.resolve_steps(c, async_train.clock_config(c), async_train.async_config(c))
  c.chunk = max(1, t // 40)
  return c


def run_dir(workdir, method, point, severity, seed):
  return os.path.join(workdir, method, point_name(point), f"S{severity:g}_seed{seed}")


def run_one(workdir, method, point, severity, seed, log=print):
  d = run_dir(workdir, method, point, severity, seed)
  c = run_config(method, point, severity, seed)
  t0 = time.time()
  s = run_cell(c, d)
  log(
    f"{method:22s} {point_name(point):34s} S={severity:<4g} seed={seed} "
    f"T={s['server_steps']:5d} loss={s['final'].get('eval/loss', math.nan):.4g} "
    f"({time.time() - t0:.1f} s)"
  )
  return s


_score = score  # the sweep's rule: final report metric (eval/loss), a diverged run is worst


def tune_jobs():
  return [
    (m, p, TUNE_SEVERITY, 0) for m, (_, grid, _) in METHODS.items() for p in grid_points(grid)
  ]


def best_points(workdir) -> dict:
  out = {}
  for m, (_, grid, _) in METHODS.items():
    scored = []
    for p in grid_points(grid):
      f = os.path.join(run_dir(workdir, m, p, TUNE_SEVERITY, 0), "summary.json")
      if not os.path.exists(f):
        raise SystemExit(f"tuning run missing: {f}; run --phase tune first.")
      scored.append((_score(json.load(open(f))), p))
    out[m] = min(scored, key=lambda x: x[0])[1]
  return out


def final_jobs(workdir):
  best = best_points(workdir)
  return [(m, best[m], s, seed) for m in METHODS for s in SEVERITIES for seed in SEEDS]


# ---------------------------------------------------------------------------- report


def _curve(d):
  rows = read_jsonl(os.path.join(d, "metrics.jsonl"))
  ev = [(r["time"], r["round"], r["eval/loss"]) for r in rows if "eval/loss" in r]
  return np.asarray(ev, float).reshape(-1, 3)


def _time_to(curve, target):
  hit = np.flatnonzero(curve[:, 2] <= target)
  return float(curve[hit[0], 0]) if hit.size else None


def _interp(curve, grid_t):
  """eval loss at the times of grid_t (last eval at or before t; nan before the first)."""
  idx = np.searchsorted(curve[:, 0], grid_t, side="right") - 1
  out = np.where(idx >= 0, curve[np.maximum(idx, 0), 2], np.nan)
  return out


def collect(workdir) -> dict:
  best = best_points(workdir)
  res = {
    "budget": BUDGET,
    "targets": list(TARGETS),
    "seeds": list(SEEDS),
    "severities": list(SEVERITIES),
    "methods": {},
  }
  for m in METHODS:
    runs = {}
    for s in SEVERITIES:
      per_seed = []
      for seed in SEEDS:
        d = run_dir(workdir, m, best[m], s, seed)
        sm = json.load(open(os.path.join(d, "summary.json")))
        tau = json.load(open(os.path.join(d, "tau.json")))
        cur = _curve(d)
        per_seed.append(
          dict(
            seed=seed,
            final=_score(sm),
            diverged=sm["diverged"],
            server_steps=sm["server_steps"],
            sim_time=sm["sim_time"],
            tau_max=tau["max"],
            tau_mean=tau["mean"],
            time_to={str(t): _time_to(cur, t) for t in TARGETS},
            curve=cur.tolist(),
          )
        )
      runs[f"{s:g}"] = per_seed
    res["methods"][m] = {"point": best[m], "runs": runs}
  hm = {}
  for m, (_, grid, axis) in METHODS.items():
    if axis is None:
      continue
    keys = list(grid)
    vals = np.full((len(grid[keys[0]]), len(grid[keys[1]])), np.nan)
    for i, a in enumerate(grid[keys[0]]):
      for j, b in enumerate(grid[keys[1]]):
        p = {keys[0]: a, keys[1]: b}
        sm = json.load(open(os.path.join(run_dir(workdir, m, p, TUNE_SEVERITY, 0), "summary.json")))
        vals[i, j] = _score(sm)
    hm[m] = dict(
      rows=keys[0],
      cols=keys[1],
      row_values=grid[keys[0]],
      col_values=grid[keys[1]],
      col_label=axis,
      final_loss=vals.tolist(),
    )
  res["heatmaps"] = hm
  tune = {}
  for m, (_, grid, _) in METHODS.items():
    tune[m] = {
      point_name(p): _score(
        json.load(open(os.path.join(run_dir(workdir, m, p, TUNE_SEVERITY, 0), "summary.json")))
      )
      for p in grid_points(grid)
    }
  res["tuning"] = tune
  return res


def _fmt_t(v):
  return "—" if v is None else f"{v:.0f}"


def _mean_time(per_seed, target):
  """Mean time to target over seeds; None unless every seed reached it."""
  ts = [r["time_to"][str(target)] for r in per_seed]
  return None if any(t is None for t in ts) else float(np.mean(ts))


def write_tables(res, out) -> str:
  sev = [f"{s:g}" for s in res["severities"]]
  lines = [
    f"Budget {res['budget']:g} simulated seconds; mean over seeds {res['seeds']} at "
    f"the tuned point (tuned at S = {TUNE_SEVERITY:g}, seed 0).",
    "",
  ]
  lines += [
    "### Final eval loss (at the budget), mean ± std over seeds",
    "",
    "| method | tuned point | " + " | ".join(f"S = {s}" for s in sev) + " |",
    "|---|---|" + "---|" * len(sev),
  ]
  for m, info in res["methods"].items():
    cells = []
    for s in sev:
      v = np.asarray([r["final"] for r in info["runs"][s]], float)
      cells.append("diverged" if not np.all(np.isfinite(v)) else f"{v.mean():.4g} ± {v.std():.2g}")
    lines.append(f"| {m} | {point_name(info['point'])} | " + " | ".join(cells) + " |")
  for target in res["targets"]:
    lines += [
      "",
      f"### Simulated seconds to eval loss ≤ {target:g} (mean over seeds; — = "
      "not reached by every seed within the budget)",
      "",
      "| method | " + " | ".join(f"S = {s}" for s in sev) + " |",
      "|---|" + "---|" * len(sev),
    ]
    for m, info in res["methods"].items():
      lines.append(
        f"| {m} | " + " | ".join(_fmt_t(_mean_time(info["runs"][s], target)) for s in sev) + " |"
      )
  lines += [
    "",
    "### Staleness (mean / max tau over seeds) and server steps in the budget",
    "",
    "| method | " + " | ".join(f"S = {s}" for s in sev) + " |",
    "|---|" + "---|" * len(sev),
  ]
  for m, info in res["methods"].items():
    cells = []
    for s in sev:
      rs = info["runs"][s]
      cells.append(
        f"{np.mean([r['tau_mean'] for r in rs]):.2f} / "
        f"{max(r['tau_max'] for r in rs)} ({rs[0]['server_steps']} steps)"
      )
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  lines += ["", "### Sensitivity grids (S = 4, seed 0; final eval loss)", ""]
  for m, h in res["heatmaps"].items():
    v = np.asarray(h["final_loss"], float)
    best = np.nanmin(np.where(np.isfinite(v), v, np.nan))
    within = np.isfinite(v) & (v <= 2 * best)
    lines += [
      f"**{m}** (rows {h['rows'].split('.')[-1]}, columns {h['col_label']}): "
      f"best {best:.4g}; {int(within.sum())}/{v.size} cells within 2x of the best, "
      f"{int((~np.isfinite(v)).sum())} diverged; worst/best = "
      f"{(np.nanmax(np.where(np.isfinite(v), v, np.nan)) / best):.3g}",
      "",
      "| "
      + h["rows"].split(".")[-1]
      + " \\ "
      + h["cols"].split(".")[-1]
      + " | "
      + " | ".join(f"{c:g}" for c in h["col_values"])
      + " |",
      "|---|" + "---|" * len(h["col_values"]),
    ]
    for i, rv in enumerate(h["row_values"]):
      lines.append(
        f"| {rv:g} | "
        + " | ".join("div" if not math.isfinite(x) else f"{x:.4g}" for x in v[i])
        + " |"
      )
    lines.append("")
  lines += [
    "### Every tuning run (S = 4, seed 0; final eval loss; * = kept)",
    "",
    "| method | grid point | final eval loss |",
    "|---|---|---|",
  ]
  for m, pts in res["tuning"].items():
    kept = point_name(res["methods"][m]["point"])
    for p, v in sorted(pts.items(), key=lambda kv: kv[1]):
      lines.append(
        f"| {m} | {p}{' *' if p == kept else ''} | "
        f"{'diverged' if not math.isfinite(v) else f'{v:.4g}'} |"
      )
  text = "\n".join(lines)
  with open(os.path.join(out, "tables.md"), "w") as f:
    f.write(text + "\n")
  return text


def plot_all(res, out):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  tgrid = np.linspace(0, res["budget"], 141)[1:]
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"] + [
    "#000000",
    "#8b0000",
    "#00008b",
    "#556b2f",
  ]
  styles = {
    m: (colors[i % len(colors)], "-" if i < 10 else "--") for i, m in enumerate(res["methods"])
  }

  def band(ax, m, s, xkey="time"):
    runs = res["methods"][m]["runs"][s]
    if xkey == "time":
      ys = np.stack([_interp(np.asarray(r["curve"]), tgrid) for r in runs])
      x = tgrid
    else:
      n = min(len(r["curve"]) for r in runs)
      ys = np.stack([np.asarray(r["curve"])[:n, 2] for r in runs])
      x = np.asarray(runs[0]["curve"])[:n, 1]
    ys = np.where(np.isfinite(ys), ys, np.nan)
    c, ls = styles[m]
    ax.plot(x, np.nanmean(ys, 0), color=c, ls=ls, label=m, lw=1.4)
    ax.fill_between(x, np.nanmin(ys, 0), np.nanmax(ys, 0), color=c, alpha=0.15)

  groups = [
    ("baselines (and best async Bi²Clip)", BASELINES + ["bi2clip-A+rate+comp"]),
    ("async Bi²Clip variants (and synchronous Bi²Clip)", ["sync-bi2clip"] + BI2CLIP),
  ]
  for s in res["methods"]["sync-bi2clip"]["runs"]:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
    for ax, (title, ms) in zip(axes, groups):
      for m in ms:
        band(ax, m, s)
      ax.set_yscale("log")
      ax.set_ylim(0.015, 3)
      ax.set_xlabel("simulated time (s)")
      ax.set_title(title, fontsize=10)
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7, ncol=2)
    axes[0].set_ylabel("eval loss (mean, min-max band over seeds)")
    who = "no stragglers (S = 1)" if s == "1" else f"2 of 8 workers {s}x slower"
    fig.suptitle(f"Least squares, stable(1.5) gradient noise, {who}", fontsize=11)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"loss_vs_time_S{s}.png"), dpi=90)
    plt.close(fig)
  # Against server steps (S = 4): the same runs, x = server versions.
  fig, ax = plt.subplots(figsize=(7, 4.4))
  for m in ["sync-bi2clip", "fedbuff", "fedasync", "bi2clip-A+rate+comp", "bi2clip-B+rate+comp"]:
    band(ax, m, f"{TUNE_SEVERITY:g}", xkey="round")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("server steps (versions)")
  ax.set_ylabel("eval loss")
  ax.set_title(f"Same runs against server steps (S = {TUNE_SEVERITY:g})", fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(out, f"loss_vs_steps_S{TUNE_SEVERITY:g}.png"), dpi=90)
  plt.close(fig)
  # Sensitivity heatmaps.
  hms = res["heatmaps"]
  fig, axes = plt.subplots(1, len(hms), figsize=(4.8 * len(hms), 4.1))
  fig.subplots_adjust(wspace=0.4, top=0.86)
  vals = [np.asarray(h["final_loss"], float) for h in hms.values()]
  finite = np.concatenate([v[np.isfinite(v)] for v in vals])
  lo, hi = np.log10(finite.min()), np.log10(min(finite.max(), 10.0))
  for ax, (m, h), v in zip(np.atleast_1d(axes), hms.items(), vals):
    lv = np.log10(np.where(np.isfinite(v), np.minimum(v, 10.0), 10.0))
    im = ax.imshow(lv, vmin=lo, vmax=hi, cmap="viridis_r", aspect="auto")
    for i in range(v.shape[0]):
      for j in range(v.shape[1]):
        ax.text(
          j,
          i,
          "div" if not np.isfinite(v[i, j]) else f"{v[i, j]:.3g}",
          ha="center",
          va="center",
          fontsize=7,
          color="w" if lv[i, j] > (lo + hi) / 2 else "k",
        )
    ax.set_xticks(range(v.shape[1]), [f"{c:g}" for c in h["col_values"]])
    ax.set_yticks(range(v.shape[0]), [f"{r:g}" for r in h["row_values"]])
    ax.set_xlabel(h["col_label"])
    ax.set_ylabel("inner lr")
    ax.set_title(m, fontsize=10)
  fig.colorbar(im, ax=axes, label="log10 final eval loss", shrink=0.85)
  fig.suptitle(
    f"Sensitivity: final eval loss at S = {TUNE_SEVERITY:g}, seed 0", fontsize=10, y=0.98
  )
  fig.savefig(os.path.join(out, "sensitivity_heatmap.png"), dpi=90, bbox_inches="tight")
  plt.close(fig)


def report(workdir, out):
  import warnings

  warnings.filterwarnings("ignore", "Mean of empty slice")
  warnings.filterwarnings("ignore", "All-NaN slice")
  os.makedirs(out, exist_ok=True)
  res = collect(workdir)
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(res, f, default=lambda x: None if x is None else float(x))
  plot_all(res, out)
  return write_tables(res, out)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--workdir", default="runs/async_study")
  ap.add_argument("--out", default="experiments/results/async")
  ap.add_argument("--phase", choices=("tune", "final", "report", "all"), default="all")
  ap.add_argument("--shard", default="0/1", help="i/n: run every n-th job from the i-th")
  args = ap.parse_args(argv)
  i, n = (int(x) for x in args.shard.split("/"))
  phases = ["tune", "final", "report"] if args.phase == "all" else [args.phase]
  for ph in phases:
    if ph == "report":
      print(report(args.workdir, args.out))
      continue
    jobs = tune_jobs() if ph == "tune" else final_jobs(args.workdir)
    mine = jobs[i::n]
    t0 = time.time()
    for k, job in enumerate(mine):
      run_one(
        args.workdir, *job, log=lambda s: print(f"[{ph} {k + 1}/{len(mine)}] {s}", flush=True)
      )
    print(f"{ph}: {len(mine)} runs in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
  main()
