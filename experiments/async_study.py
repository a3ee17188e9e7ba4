"""The asynchronous studies: asynchronous TailOPT against synchronous and asynchronous
baselines on least squares and on the image and language families.

    python -m experiments.async_study --family synthetic --workdir runs/async_study \\
        --phase tune --shard 0/2
    python -m experiments.async_study --family fashion_mnist --workdir runs/async_fm \\
        --phase final
    python -m experiments.async_study --family movie_reviews --workdir runs/async_mr \\
        --phase report --out experiments/results/async_real/movie_reviews

(``experiments/results/async/run_study.sh`` and ``experiments/results/async_real/run_study.sh``
run all of it.) Every run is an ordinary run of the experiment loop
(``experiments.sweep.run_cell``) of a family's config (``FAMILIES``) with a few fields set
(``run_config``), on the same seeds, clock and simulated-time budget; a study is a sweep with
its own grid and report. ``--family synthetic`` (the default) is the least-squares study as
committed in ``experiments/results/async/``, unchanged.

Synthetic (reduced, CPU-sized; our choice): least squares (d = 50, 8 clients,
covariate-shift split) with alpha-stable (alpha = 1.5) gradient noise; N = 8 workers, 2 of
them stragglers slowed S in {1, 4, 16} times; log-normal job noise (sigma 0.25); z = 5 local
steps of batch 16; a budget of ``BUDGET`` simulated seconds (1 s per local step of a fast
worker). Methods (``METHODS``): synchronous FedAvg and Bi²Clip (wait-for-all on the same
clock), FedAsync, FedBuff (K = 4), DC-ASGD (z = 1, adaptive lambda is not used: DC-ASGD-c,
lambda = 0.04), async local SGD with Delayed Nesterov and dynamic local updates, and async
Bi²Clip in scheme A (buffered, K = 4) and scheme B (K = 1), each with and without the
delay-aware rate (polynomial, a = 0.5, max-reduced) and with and without (adaptive) delay
compensation. Protocol: every method's grid (``METHODS``) is run at S = 4 on seed 0 and the
point with the lowest final eval loss is kept ("tune"); that point then runs at every S on
seeds 0 and 1 ("final"). The grids of async Bi²Clip (A, rate + compensation: 4 x 4), FedBuff
(4 x 3) and FedAsync (4 x 4) are learning-rate x second-parameter grids and double as the
sensitivity heatmaps. (The grids were widened once, after a first pass put several optima on
a grid edge; every run of both passes is kept and counted.)

Image and language families (``fashion_mnist``: the CNN on Fashion-MNIST,
``configs/async_fashion_mnist.py:study``; ``movie_reviews``: MiniLM with a trained head on the
movie-review sentences, ``configs/async_movie_reviews.py:study``): the same protocol scored
by final eval accuracy (higher is better), methods ``REAL_METHODS`` (synchronous Bi²Clip, the
eight async Bi²Clip variants, FedBuff, FedAsync, DC-ASGD), every method on a two-parameter
grid (learning rate x clipping threshold for Bi²Clip, learning rate x its second parameter
for the baselines) that is also its robustness sweep: the spread of final accuracy over the
grid per method (max - min, interquartile range, fraction of cells within 1 point of the
best). Final phase: the kept point at S = 1, 4 and 16 (``--severities`` picks some) on seeds
0, 1, 2.
"""

from __future__ import annotations

import argparse
import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Family:
  """One study: a config, its methods and grids, the clock settings and the report."""

  name: str
  config: str  # module under configs/
  base: str  # config variants of every run
  methods: dict  # name -> (variants, grid, heatmap column label or None)
  budget: float  # simulated seconds
  eval_every_time: float  # simulated seconds
  severities: tuple
  tune_severity: float
  seeds: tuple  # final seeds (the tune seed is seeds[0])
  metric: str  # 'eval/loss' (lower is better) or 'eval/accuracy' (higher)
  targets: tuple  # time-to-target thresholds of ``metric``
  out: str  # default report folder
  baselines: tuple = ()
  bi2clip: tuple = ()
  chance: float = 0.0  # accuracy counted for a diverged cell in the robustness spread
  title: str = ""
  final_methods: tuple = ()  # methods run on every seed (empty: all); others on seeds[0]
  # Robustness on equal-shape sub-grids: (label, method, {axis: values}) each; the same
  # spread statistics as the full grids, over the cells of the sub-grid.
  matched: tuple = ()

  def seeds_of(self, method) -> tuple:
    if not self.final_methods or method in self.final_methods:
      return tuple(self.seeds)
    return tuple(self.seeds[:1])

  @property
  def higher_is_better(self) -> bool:
    return self.metric != "eval/loss"


SYNTHETIC = Family(
  name="synthetic",
  config="async_synthetic",
  base="study",
  methods=METHODS,
  budget=BUDGET,
  eval_every_time=EVAL_EVERY_TIME,
  severities=SEVERITIES,
  tune_severity=TUNE_SEVERITY,
  seeds=SEEDS,
  metric="eval/loss",
  targets=TARGETS,
  out="experiments/results/async",
  baselines=tuple(BASELINES),
  bi2clip=tuple(BI2CLIP),
  title="Least squares, stable(1.5) gradient noise",
)


def _real_methods(
  lrs,
  uppers,
  full,
  *,
  fedbuff_lr=(0.5, 1.0, 2.0),
  fedasync_alpha=(0.3, 0.6, 0.9),
  dc_lam=(0.01, 0.04, 0.16),
) -> dict:
  """Synchronous Bi²Clip, the eight asynchronous Bi²Clip variants, FedBuff, FedAsync and
  DC-ASGD. A method in ``full`` gets the two-parameter grid (lr x u~ for Bi²Clip, lr x its
  second parameter for a baseline); the others (compute) a learning-rate line at the middle
  value of the second parameter."""

  def grid(m, first, second, vals):
    vals = list(vals)
    return {first: list(lrs), second: vals if m in full else [vals[len(vals) // 2]]}

  ms = {
    "sync-bi2clip": (
      "sync",
      grid("sync-bi2clip", "hparams.inner_lr", "hparams.outer_upper", uppers),
      "outer threshold u~",
    )
  }
  for scheme, sv in (("A", ""), ("B", "scheme_b")):
    for extra, ev in (("", ""), ("+rate", "rate"), ("+comp", "comp"), ("+rate+comp", "rate,comp")):
      m = f"bi2clip-{scheme}{extra}"
      ms[m] = (
        ",".join(filter(None, [sv, ev])),
        grid(m, "hparams.inner_lr", "hparams.outer_upper", uppers),
        "outer threshold u~",
      )
  ms["fedbuff"] = (
    "fedbuff",
    grid("fedbuff", "hparams.inner_lr", "hparams.outer_lr", fedbuff_lr),
    "server lr",
  )
  ms["fedasync"] = (
    "fedasync",
    grid("fedasync", "hparams.inner_lr", "hparams.outer_lr", fedasync_alpha),
    "alpha (mixing)",
  )
  ms["dcasgd"] = (
    "dcasgd",
    grid("dcasgd", "hparams.outer_lr", "asynchronous.compensation.lam", dc_lam),
    "lambda",
  )
  return ms


def _reduce(methods: dict, keep: dict) -> dict:
  """``methods`` with each grid axis cut to ``keep[method][axis]`` (a list of values; an
  axis not named keeps its middle value, a method not named keeps every value)."""
  out = {}
  for m, (v, grid, axis) in methods.items():
    if m not in keep:
      out[m] = (v, grid, axis)
      continue
    out[m] = (
      v,
      {k: list(keep[m].get(k, [vals[len(vals) // 2]])) for k, vals in grid.items()},
      axis,
    )
  return out


# Compute: a run took 0.5-8 minutes of wall clock on the shared CPU (most of it
# compilation), so both studies have two-parameter grids for four methods only (the claim 3c
# comparison); the other variants run at one common point or on a learning-rate line.
# Every run that was started is kept and listed (``--phase report``, "every run").
_LR = "hparams.inner_lr"
# Image: the CNN on Fashion-MNIST (configs/async_fashion_mnist.py:study). The four
# methods of claim 3c (async Bi²Clip A, synchronous Bi²Clip, FedBuff, FedAsync) get the
# two-parameter robustness grid, lr {0.03, 0.1, 0.3, 1} x u~ or their second parameter
# (asyncstudy2; the first study had learning-rate lines only, every run kept), widened
# once where the kept point was on an edge (Bi²Clip A: lr 0.01, u~ 0.003; FedBuff: server lr
# 0.25; FedAsync: alpha 0.15); the other eight run at the grid centre, DC-ASGD at lr 0.1.
FM_LRS = [0.03, 0.1, 0.3, 1.0]
FM_FULL = ("sync-bi2clip", "bi2clip-A", "fedbuff", "fedasync")
FM_METHODS = _reduce(
  _real_methods(FM_LRS, [0.01, 0.03, 0.1], FM_FULL),
  {
    "bi2clip-A": {_LR: [0.01] + FM_LRS, "hparams.outer_upper": [0.003, 0.01, 0.03, 0.1]},
    "fedbuff": {_LR: FM_LRS, "hparams.outer_lr": [0.25, 0.5, 1.0, 2.0]},
    "fedasync": {_LR: FM_LRS, "hparams.outer_lr": [0.15, 0.3, 0.6, 0.9]},
    "bi2clip-A+rate+comp": {_LR: [0.03, 0.1, 0.3]},
    **{
      m: {_LR: [0.1]}
      for m in (
        "bi2clip-A+rate",
        "bi2clip-A+comp",
        "bi2clip-B",
        "bi2clip-B+rate",
        "bi2clip-B+comp",
        "bi2clip-B+rate+comp",
      )
    },
    "dcasgd": {"hparams.outer_lr": [0.1]},
  },
)
FM_FINAL = tuple(FM_METHODS)  # every method on every seed
# Language: MiniLM, trained head, movie-review sentences (configs/async_movie_reviews.py:study).
# (Widened in passes, every run kept: the first pass had lr {0.01, 0.03, 0.1}, whose optima
# were at 0.1, so 0.3 was added; then lr 1.0 and u~ 0.1 for async Bi²Clip A, whose optimum
# was at lr 0.3, u~ 0.03, then u~ 0.3 when it moved to u~ 0.1; lr 1.0 and server lr 4 for
# FedBuff, whose optimum was at the corner lr 0.3, server lr 2; lr 1.0 for FedAsync; then
# (asyncstudy2) u~ 1 and 3 for async Bi²Clip A, whose optimum was at the edge u~ 0.3.)
MR_LRS = [0.01, 0.03, 0.1, 0.3]
MR_FULL = ("sync-bi2clip", "bi2clip-A", "fedbuff", "fedasync")
MR_METHODS = _reduce(
  _real_methods(MR_LRS, [0.003, 0.01, 0.03], MR_FULL),
  {
    "bi2clip-A": {
      _LR: MR_LRS + [1.0],
      "hparams.outer_upper": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],  # 1, 3: asyncstudy2
    },
    "fedbuff": {_LR: [0.03, 0.1, 0.3, 1.0], "hparams.outer_lr": [0.5, 1.0, 2.0, 4.0]},
    "fedasync": {_LR: [0.03, 0.1, 0.3, 1.0], "hparams.outer_lr": [0.3, 0.6, 0.9]},
    **{
      m: {_LR: [0.1]}
      for m in (
        "bi2clip-A+rate",
        "bi2clip-A+comp",
        "bi2clip-A+rate+comp",
        "bi2clip-B",
        "bi2clip-B+rate",
        "bi2clip-B+comp",
        "bi2clip-B+rate+comp",
      )
    },
    "dcasgd": {"hparams.outer_lr": [0.03, 0.1, 0.3]},
  },
)
MR_FINAL = tuple(MR_METHODS)  # every method on every seed
_U, _SLR = "hparams.outer_upper", "hparams.outer_lr"


def _matched(label, lrs, second) -> tuple:
  """Equal-shape sub-grids for the robustness comparison: ``lrs`` x ``second[method]``."""
  return tuple(
    (label, m, {_LR: list(lrs), (_U if "bi2clip" in m else _SLR): list(v)})
    for m, v in second.items()
  )


FM_MATCHED = _matched(
  "4 × 3, lr 0.03–1",
  FM_LRS,
  {
    "bi2clip-A": [0.01, 0.03, 0.1],
    "sync-bi2clip": [0.01, 0.03, 0.1],
    "fedbuff": [0.5, 1.0, 2.0],
    "fedasync": [0.3, 0.6, 0.9],
  },
) + _matched(
  "3 × 3, lr 0.03–0.3",
  FM_LRS[:3],
  {
    "bi2clip-A": [0.01, 0.03, 0.1],
    "sync-bi2clip": [0.01, 0.03, 0.1],
    "fedbuff": [0.5, 1.0, 2.0],
    "fedasync": [0.3, 0.6, 0.9],
  },
)
MR_MATCHED = _matched(
  "3 × 3, lr 0.03–0.3",
  [0.03, 0.1, 0.3],
  {
    "bi2clip-A": [0.003, 0.01, 0.03],
    "sync-bi2clip": [0.003, 0.01, 0.03],
    "fedbuff": [0.5, 1.0, 2.0],
    "fedasync": [0.3, 0.6, 0.9],
  },
) + _matched(
  "4 × 3, lr 0.03–1",
  [0.03, 0.1, 0.3, 1.0],
  {"bi2clip-A": [0.003, 0.01, 0.03], "fedbuff": [0.5, 1.0, 2.0], "fedasync": [0.3, 0.6, 0.9]},
)
REAL_SEVERITIES = (1.0, 4.0, 16.0)  # straggler slowdowns of the final phase
REAL_BASELINES = ("sync-bi2clip", "fedbuff", "fedasync", "dcasgd")
REAL_BI2CLIP = tuple(m for m in FM_METHODS if m.startswith("bi2clip"))

FAMILIES = {
  "synthetic": SYNTHETIC,
  "fashion_mnist": Family(
    name="fashion_mnist",
    config="async_fashion_mnist",
    base="study",
    methods=FM_METHODS,
    budget=60.0,
    eval_every_time=5.0,
    severities=REAL_SEVERITIES,
    tune_severity=4.0,
    seeds=(0, 1, 2),
    metric="eval/accuracy",
    targets=(0.5, 0.6, 0.65, 0.7),
    out="experiments/results/async_real/fashion_mnist",
    baselines=REAL_BASELINES,
    bi2clip=REAL_BI2CLIP,
    chance=0.1,
    title="Fashion-MNIST, CNN",
    final_methods=FM_FINAL,
    matched=FM_MATCHED,
  ),
  "movie_reviews": Family(
    name="movie_reviews",
    config="async_movie_reviews",
    base="study",
    methods=MR_METHODS,
    budget=60.0,
    eval_every_time=5.0,
    severities=REAL_SEVERITIES,
    tune_severity=4.0,
    seeds=(0, 1, 2),
    metric="eval/accuracy",
    targets=(0.7, 0.75, 0.78),
    out="experiments/results/async_real/movie_reviews",
    baselines=REAL_BASELINES,
    bi2clip=REAL_BI2CLIP,
    chance=0.5,
    title="Movie reviews, MiniLM (trained head)",
    final_methods=MR_FINAL,
    matched=MR_MATCHED,
  ),
}


def family(name) -> Family:
  if isinstance(name, Family):
    return name
  if name not in FAMILIES:
    raise ValueError(f"unknown family {name!r}; choose one of {sorted(FAMILIES)}.")
  return FAMILIES[name]


def grid_points(grid: dict) -> list[dict]:
  keys = list(grid)
  return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def point_name(point: dict) -> str:
  return ",".join(f"{k.split('.')[-1]}={v:g}" for k, v in point.items())


def run_config(method: str, point: dict, severity: float, seed: int, fam="synthetic"):
  """The config of one run (an ordinary ``configs/<family config>.py:study`` config)."""
  import importlib
  from experiments import async_train

  f = family(fam)
  variants, _, _ = f.methods[method]
  module = importlib.import_module(f"configs.{f.config}")
  c = module.get_config(",".join(filter(None, [f.base, variants])))
  c.seed = seed
  c.clock.seed = seed
  c.clock.straggler_fraction, c.clock.straggler_slowdown = 0.25, float(severity)
  c.time_budget, c.eval_every, c.eval_every_time = f.budget, 0, f.eval_every_time
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


def run_one(workdir, method, point, severity, seed, log=print, fam="synthetic"):
  f = family(fam)
  d = run_dir(workdir, method, point, severity, seed)
  c = run_config(method, point, severity, seed, f)
  t0 = time.time()
  s = run_cell(c, d)
  short = f.metric.split("/")[-1].replace("accuracy", "acc")
  log(
    f"{method:22s} {point_name(point):34s} S={severity:<4g} seed={seed} "
    f"T={s['server_steps']:5d} {short}={s['final'].get(f.metric, math.nan):.4g}"
    f"{' DIVERGED' if s['diverged'] else ''} ({time.time() - t0:.1f} s)"
  )
  return s


_score = score  # the sweep's rule: final report metric (eval/loss), a diverged run is worst


def tune_jobs(fam="synthetic", seed=None, where=None):
  """Every grid cell at the tuning severity on the tuning seed (or ``seed``: a check of the
  grid on another seed, not used for selection), optionally only the cells whose fields
  match ``where`` ({field: value})."""
  f = family(fam)
  return [
    (m, p, f.tune_severity, f.seeds[0] if seed is None else seed)
    for m, (_, grid, _) in f.methods.items()
    for p in grid_points(grid)
    if all(p.get(k) == v for k, v in (where or {}).items())
  ]


def best_points(workdir, fam="synthetic", strict=True, only=None) -> dict:
  """Each method's kept point: the best final report metric (ties: the first in grid
  order) of its grid at the tuning severity on the first seed. ``strict=False`` (the
  report of a partial study) keeps the best of the finished cells and leaves out a method
  with none."""
  f = family(fam)
  out = {}
  for m, (_, grid, _) in f.methods.items():
    if only and m not in only:
      continue
    scored = []
    for p in grid_points(grid):
      path = os.path.join(run_dir(workdir, m, p, f.tune_severity, f.seeds[0]), "summary.json")
      if not os.path.exists(path):
        if strict:
          raise SystemExit(f"tuning run missing: {path}; run --phase tune first.")
        continue
      scored.append((_score(json.load(open(path))), p))
    if scored:
      out[m] = min(scored, key=lambda x: x[0])[1]
  return out


def final_jobs(workdir, fam="synthetic", only=None, severities=None):
  """The final phase: each method's kept point at every severity (or ``severities``, a
  subset of the family's) on its seeds."""
  f = family(fam)
  sev = f.severities if severities is None else tuple(severities)
  if not set(sev) <= set(f.severities):
    raise ValueError(f"severities {sev} are not all in the family's {f.severities}.")
  best = best_points(workdir, f, only=only)
  return [
    (m, best[m], s, seed) for m in f.methods if m in best for s in sev for seed in f.seeds_of(m)
  ]


def edge_report(workdir, fam) -> list[str]:
  """Methods whose kept point lies on an edge of a grid axis with more than one value
  (the grid should be widened there); one line each."""
  f = family(fam)
  best = best_points(workdir, f)
  out = []
  for m, (_, grid, _) in f.methods.items():
    for k, vals in grid.items():
      if len(vals) > 1 and best[m][k] in (vals[0], vals[-1]):
        out.append(
          f"{m}: {k}={best[m][k]:g} is at the "
          f"{'low' if best[m][k] == vals[0] else 'high'} edge of {vals}"
        )
  return out


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
  """The synthetic study's results (eval loss)."""
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


def _staleness_table(res, sev) -> list:
  """The staleness table of a study's report (both families): mean / max tau over the
  seeds and the server steps in the budget, per method and severity."""
  lines = [
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
        if rs
        else "not run"
      )
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return lines


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
  lines += _staleness_table(res, sev)
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


# ------------------------------------------------------ report: image and language families


def _curve_of(d, metric):
  rows = read_jsonl(os.path.join(d, "metrics.jsonl"))
  ev = [(r["time"], r["round"], r[metric]) for r in rows if metric in r]
  return np.asarray(ev, float).reshape(-1, 3)


def _time_to_acc(curve, target):
  hit = np.flatnonzero(curve[:, 2] >= target)
  return float(curve[hit[0], 0]) if hit.size else None


def _final_value(sm, metric):
  """The final value of ``metric``; nan for a diverged run."""
  v = sm["final"].get(metric)
  return math.nan if sm.get("diverged") or v is None or not math.isfinite(v) else float(v)


def spread_stats(values, chance: float) -> dict:
  """Robustness of one method's grid: final accuracies of every cell (a diverged cell
  counts as ``chance``): best, median, worst, max - min, interquartile range, and the
  fraction of cells within 1 and 2 points (0.01, 0.02) of the best."""
  v = np.asarray(values, float)
  diverged = int((~np.isfinite(v)).sum())
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


def collect_real(workdir, fam) -> dict:
  """An accuracy family's results: every final run's curve, the grids and their spread."""
  f = family(fam)
  best = best_points(workdir, f, strict=False)
  res = {
    "family": f.name,
    "metric": f.metric,
    "budget": f.budget,
    "targets": list(f.targets),
    "seeds": list(f.seeds),
    "severities": list(f.severities),
    "tune_severity": f.tune_severity,
    "methods": {},
    "grids": {},
  }
  for m in f.methods:
    if m not in best:
      continue
    runs = {}
    for s in f.severities:
      per_seed = []
      for seed in f.seeds_of(m):
        d = run_dir(workdir, m, best[m], s, seed)
        if not os.path.exists(os.path.join(d, "summary.json")):
          continue  # a partial study: this seed did not run
        sm = json.load(open(os.path.join(d, "summary.json")))
        tau = json.load(open(os.path.join(d, "tau.json")))
        cur = _curve_of(d, f.metric)
        per_seed.append(
          dict(
            seed=seed,
            final=_final_value(sm, f.metric),
            diverged=sm["diverged"],
            best=float(np.nanmax(cur[:, 2])) if len(cur) else math.nan,
            server_steps=sm["server_steps"],
            sim_time=sm["sim_time"],
            tau_max=tau["max"],
            tau_mean=tau["mean"],
            time_to={str(t): _time_to_acc(cur, t) for t in f.targets},
            curve=cur.tolist(),
          )
        )
      runs[f"{s:g}"] = per_seed
    res["methods"][m] = {"point": best[m], "runs": runs}
  for m, (_, grid, axis) in f.methods.items():
    keys = list(grid)
    cells, missing = {}, []
    for p in grid_points(grid):
      path = os.path.join(run_dir(workdir, m, p, f.tune_severity, f.seeds[0]), "summary.json")
      if not os.path.exists(path):
        missing.append(point_name(p))
        continue
      cells[point_name(p)] = _final_value(json.load(open(path)), f.metric)
    if not cells:
      continue
    entry = dict(
      keys=keys,
      values=[grid[k] for k in keys],
      col_label=axis,
      cells=cells,
      missing=missing,
      stats=spread_stats(list(cells.values()), f.chance),
    )
    if len(keys) == 2:
      a, b = keys
      entry["matrix"] = [
        [cells.get(point_name({a: x, b: y}), math.nan) for y in grid[b]] for x in grid[a]
      ]
    res["grids"][m] = entry
  res["matched"] = []
  for label, m, sub in f.matched:
    vals = [res["grids"].get(m, {}).get("cells", {}).get(point_name(p)) for p in grid_points(sub)]
    if vals and all(v is not None for v in vals):
      res["matched"].append(
        dict(label=label, method=m, grid=sub, stats=spread_stats(vals, f.chance))
      )
  res["all_runs"] = every_run(workdir, f)
  return res


def every_run(workdir, fam) -> list:
  """Every finished run under ``workdir`` (grid or not: first passes, widened grids), as
  (method, point, severity/seed folder, final metric); the count the write-up gives."""
  f = family(fam)
  out = []
  for m in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []:
    for p in sorted(os.listdir(os.path.join(workdir, m))):
      for r in sorted(os.listdir(os.path.join(workdir, m, p))):
        path = os.path.join(workdir, m, p, r, "summary.json")
        if os.path.exists(path):
          out.append([m, p, r, _final_value(json.load(open(path)), f.metric)])
  return out


def _pm(vals, digits=1, scale=100.0):
  v = np.asarray(vals, float) * scale
  if not np.all(np.isfinite(v)):
    return f"{int((~np.isfinite(v)).sum())} diverged"
  return (
    f"{v.mean():.{digits}f} ± {v.std():.{digits}f} [{v.min():.{digits}f}, {v.max():.{digits}f}]"
  )


def write_tables_real(res, fam, out) -> str:
  f = family(fam)
  sev = [f"{s:g}" for s in res["severities"]]
  lines = [
    f"{f.title}: budget {res['budget']:g} simulated seconds, 2 of 8 workers slowed S "
    f"times; tuned at S = {res['tune_severity']:g} on seed {res['seeds'][0]}, kept "
    f"point run on seeds {res['seeds']}. Accuracies in percent.",
    "",
  ]
  lines += [
    "### Final eval accuracy at the budget: mean ± std [min, max] over the seeds run (n)",
    "",
    "| method | kept point | "
    + " | ".join(f"S = {s}" for s in sev)
    + f" | best during the run (S = {res['tune_severity']:g}, mean) |",
    "|---|---|" + "---|" * len(sev) + "---|",
  ]
  for m, info in res["methods"].items():
    cells = [
      (_pm([r["final"] for r in info["runs"][s]]) + f" (n = {len(info['runs'][s])})")
      if info["runs"][s]
      else "not run"
      for s in sev
    ]
    tuned = info["runs"].get(f"{res['tune_severity']:g}", [])
    bests = np.mean([r["best"] for r in tuned] or [math.nan]) * 100
    lines.append(
      f"| {m} | {point_name(info['point'])} | " + " | ".join(cells) + f" | {bests:.1f} |"
    )
  for target in res["targets"]:
    lines += [
      "",
      f"### Simulated seconds to eval accuracy ≥ {100 * target:g}% (mean ± std "
      "over the seeds that reach it; (k/n) = seeds that reach it in the budget)",
      "",
      "| method | " + " | ".join(f"S = {s}" for s in sev) + " |",
      "|---|" + "---|" * len(sev),
    ]
    for m, info in res["methods"].items():
      cells = []
      for s in sev:
        ts = [r["time_to"][str(target)] for r in info["runs"][s]]
        hit = [t for t in ts if t is not None]
        cells.append(
          f"— (0/{len(ts)})"
          if not hit
          else f"{np.mean(hit):.1f} ± {np.std(hit):.1f} ({len(hit)}/{len(ts)})"
        )
      lines.append(f"| {m} | " + " | ".join(cells) + " |")
  lines += _staleness_table(res, sev)
  lines += [
    "",
    f"### Robustness: final eval accuracy over each method's grid (S = "
    f"{res['tune_severity']:g}, seed {res['seeds'][0]}; a diverged cell counts as "
    f"chance, {100 * f.chance:g}%)",
    "",
    "| method | grid | cells | best | median | worst | max − min | IQR | within 1 pt "
    "of best | within 2 pt | diverged |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for m, g in res["grids"].items():
    st = g["stats"]
    desc = " × ".join(
      f"{k.split('.')[-1]} {{{', '.join(f'{x:g}' for x in v)}}}"
      for k, v in zip(g["keys"], g["values"])
    )
    lines.append(
      f"| {m} | {desc} | {st['cells']} | {100 * st['best']:.1f} | "
      f"{100 * st['median']:.1f} | {100 * st['worst']:.1f} | "
      f"{100 * st['range']:.1f} | {100 * st['iqr']:.1f} | "
      f"{st['within_1pt'] * st['cells']:.0f}/{st['cells']} | "
      f"{st['within_2pt'] * st['cells']:.0f}/{st['cells']} | {st['diverged']} |"
      + (f" ({len(g['missing'])} cells not run)" if g.get("missing") else "")
    )
  if res.get("matched"):
    lines += [
      "",
      "### Robustness on matched sub-grids (the same learning rates and as many values of "
      "the second parameter; cells of the grids above)",
      "",
      "| sub-grid | method | grid | cells | best | median | worst | max − min | IQR | "
      "within 1 pt | within 2 pt |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in res["matched"]:
      st = g["stats"]
      desc = " × ".join(
        f"{k.split('.')[-1]} {{{', '.join(f'{x:g}' for x in v)}}}" for k, v in g["grid"].items()
      )
      lines.append(
        f"| {g['label']} | {g['method']} | {desc} | {st['cells']} | {100 * st['best']:.1f} | "
        f"{100 * st['median']:.1f} | {100 * st['worst']:.1f} | {100 * st['range']:.1f} | "
        f"{100 * st['iqr']:.1f} | {st['within_1pt'] * st['cells']:.0f}/{st['cells']} | "
        f"{st['within_2pt'] * st['cells']:.0f}/{st['cells']} |"
      )
  lines += ["", "### Every grid (final eval accuracy, %; * = kept point)", ""]
  for m, g in res["grids"].items():
    if "matrix" not in g:
      continue
    kept = point_name(res["methods"][m]["point"])
    a, b = g["keys"]
    lines += [
      f"**{m}** (rows {a.split('.')[-1]}, columns {g['col_label'] or b})",
      "",
      f"| {a.split('.')[-1]} \\ {b.split('.')[-1]} | "
      + " | ".join(f"{y:g}" for y in g["values"][1])
      + " |",
      "|---|" + "---|" * len(g["values"][1]),
    ]
    for i, x in enumerate(g["values"][0]):
      row = []
      for j, y in enumerate(g["values"][1]):
        v = g["matrix"][i][j]
        star = " *" if point_name({a: x, b: y}) == kept else ""
        row.append(("div" if not math.isfinite(v) else f"{100 * v:.1f}") + star)
      lines.append(f"| {x:g} | " + " | ".join(row) + " |")
    lines.append("")
  runs = res.get("all_runs", [])
  lines += [
    f"### Every run ({len(runs)}; final eval accuracy, %)",
    "",
    "| method | point | run | accuracy |",
    "|---|---|---|---|",
  ]
  for m, p, r, v in runs:
    lines.append(f"| {m} | {p} | {r} | {'div' if not math.isfinite(v) else f'{100 * v:.1f}'} |")
  text = "\n".join(lines)
  with open(os.path.join(out, "tables.md"), "w") as fh:
    fh.write(text + "\n")
  return text


def plot_real(res, fam, out):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  f = family(fam)
  tgrid = np.linspace(0, res["budget"], 121)[1:]
  names = list(res["methods"])
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"] + [
    "#000000",
    "#8b0000",
    "#00008b",
    "#556b2f",
  ]
  styles = {m: (colors[i % len(colors)], "-" if i < 10 else "--") for i, m in enumerate(names)}

  def interp(curve):
    idx = np.searchsorted(curve[:, 0], tgrid, side="right") - 1
    return np.where(idx >= 0, curve[np.maximum(idx, 0), 2], np.nan)

  def band(ax, m, s, xkey="time"):
    runs = res["methods"][m]["runs"].get(s)
    if not runs:
      return  # not run at this severity
    if xkey == "time":
      ys, x = np.stack([interp(np.asarray(r["curve"])) for r in runs]), tgrid
    else:
      k = min(len(r["curve"]) for r in runs)
      ys = np.stack([np.asarray(r["curve"])[:k, 2] for r in runs])
      x = np.asarray(runs[0]["curve"])[:k, 1]
    ys = 100 * np.where(np.isfinite(ys), ys, np.nan)
    c, ls = styles[m]
    ax.plot(x, np.nanmean(ys, 0), color=c, ls=ls, label=m, lw=1.4)
    ax.fill_between(x, np.nanmin(ys, 0), np.nanmax(ys, 0), color=c, alpha=0.15)

  finals = [
    100 * r["final"]
    for info in res["methods"].values()
    for rs in info["runs"].values()
    for r in rs
    if math.isfinite(r["final"])
  ]
  lo = max(100 * f.chance, min(finals) - 10) if finals else 0
  hi = min(100, max(finals) + 3) if finals else 100
  best_async = max(
    (m for m in f.bi2clip),
    key=lambda m: np.mean(
      [r["final"] for r in res["methods"][m]["runs"][f"{res['tune_severity']:g}"]]
    ),
  )
  groups = [
    (
      "baselines and synchronous Bi²Clip (and the best async Bi²Clip)",
      list(f.baselines) + [best_async],
    ),
    ("async Bi²Clip variants (and synchronous Bi²Clip)", ["sync-bi2clip"] + list(f.bi2clip)),
  ]
  for s in res["severities"]:
    s = f"{s:g}"
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
    for ax, (title, ms) in zip(axes, groups):
      for m in ms:
        band(ax, m, s)
      ax.set_ylim(lo, hi)
      ax.set_xlabel("simulated time (s)")
      ax.set_title(title, fontsize=10)
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7, ncol=2, loc="lower right")
    axes[0].set_ylabel(f"eval accuracy, % (mean, min-max band over {len(res['seeds'])} seeds)")
    who = "no stragglers (S = 1)" if s == "1" else f"2 of 8 workers {s}x slower"
    fig.suptitle(f"{f.title}, {who}", fontsize=11)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"accuracy_vs_time_S{s}.png"), dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for m in [
      "sync-bi2clip",
      "fedbuff",
      "fedasync",
      "dcasgd",
      "bi2clip-A+rate+comp",
      "bi2clip-B+rate+comp",
    ]:
      band(ax, m, s, xkey="round")
    ax.set_xscale("log")
    ax.set_ylim(lo, hi)
    ax.set_xlabel("server steps (versions)")
    ax.set_ylabel("eval accuracy, %")
    ax.set_title(f"{f.title}: the same runs against server steps (S = {s})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"accuracy_vs_steps_S{s}.png"), dpi=90)
    plt.close(fig)
  # Robustness: box plot of every grid, then one heatmap per method.
  grids = res["grids"]
  fig, ax = plt.subplots(figsize=(12, 4.6))
  data = [
    100 * np.where(np.isfinite(v := np.asarray(list(g["cells"].values()), float)), v, f.chance)
    for g in grids.values()
  ]
  ax.boxplot(data, whis=(0, 100))
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
  ax.set_ylabel("final eval accuracy over the grid, %")
  ax.set_title(
    f"{f.title}: robustness, every cell of each method's lr x second-parameter "
    f"grid (S = {res['tune_severity']:g}, seed {res['seeds'][0]}; box = quartiles, "
    "whiskers = min/max)",
    fontsize=9,
  )
  ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "robustness_boxplot.png"), dpi=90)
  plt.close(fig)
  hms = {m: g for m, g in grids.items() if "matrix" in g and len(g["cells"]) > 1}
  cols = min(4, max(1, len(hms)))
  rows = -(-len(hms) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), squeeze=False)
  fig.subplots_adjust(hspace=0.45, wspace=0.35)
  vmin = 100 * min(np.nanmin(np.asarray(g["matrix"], float)) for g in hms.values())
  vmax = 100 * max(np.nanmax(np.asarray(g["matrix"], float)) for g in hms.values())
  for ax, (m, g) in zip(axes.flat, hms.items()):
    v = 100 * np.asarray(g["matrix"], float)
    im = ax.imshow(
      np.where(np.isfinite(v), v, vmin), vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto"
    )
    for i in range(v.shape[0]):
      for j in range(v.shape[1]):
        ax.text(
          j,
          i,
          "div" if not np.isfinite(v[i, j]) else f"{v[i, j]:.1f}",
          ha="center",
          va="center",
          fontsize=7,
          color="w" if v[i, j] < (vmin + vmax) / 2 else "k",
        )
    ax.set_xticks(range(v.shape[1]), [f"{c:g}" for c in g["values"][1]])
    ax.set_yticks(range(v.shape[0]), [f"{r:g}" for r in g["values"][0]])
    ax.set_xlabel(g["col_label"] or g["keys"][1].split(".")[-1], fontsize=8)
    ax.set_ylabel(g["keys"][0].split(".")[-1], fontsize=8)
    ax.set_title(f"{m} (range {100 * g['stats']['range']:.1f} pt)", fontsize=9)
  for ax in list(axes.flat)[len(hms) :]:
    ax.axis("off")
  fig.colorbar(im, ax=axes, label="final eval accuracy, %", shrink=0.8)
  fig.suptitle(
    f"{f.title}: final eval accuracy over each grid (S = "
    f"{res['tune_severity']:g}, seed {res['seeds'][0]})",
    fontsize=10,
  )
  fig.savefig(os.path.join(out, "robustness_heatmaps.png"), dpi=80, bbox_inches="tight")
  plt.close(fig)


def report(workdir, out, fam="synthetic"):
  import warnings

  warnings.filterwarnings("ignore", "Mean of empty slice")
  warnings.filterwarnings("ignore", "All-NaN slice")
  f = family(fam)
  os.makedirs(out, exist_ok=True)
  res = collect(workdir) if f.name == "synthetic" else collect_real(workdir, f)
  with open(os.path.join(out, "results.json"), "w") as fh:
    json.dump(res, fh, default=lambda x: None if x is None else float(x))
  if f.name == "synthetic":
    plot_all(res, out)
    return write_tables(res, out)
  plot_real(res, f, out)
  return write_tables_real(res, f, out)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--family", choices=sorted(FAMILIES), default="synthetic")
  ap.add_argument(
    "--workdir",
    default=None,
    help="default runs/async_study (synthetic), runs/async_<family> otherwise",
  )
  ap.add_argument("--out", default=None, help="report folder; default the family's")
  ap.add_argument("--phase", choices=("tune", "final", "report", "edges", "all"), default="all")
  ap.add_argument("--shard", default="0/1", help="i/n: run every n-th job from the i-th")
  ap.add_argument("--methods", default="", help="comma-separated: only these methods' jobs")
  ap.add_argument(
    "--severities",
    default="",
    help="comma-separated straggler slowdowns: the final phase at only these (default all)",
  )
  ap.add_argument(
    "--seed", type=int, default=None, help="tune phase: run the grid on this seed instead"
  )
  ap.add_argument(
    "--where", default="", help="tune phase: only cells with these fields, e.g. hparams.inner_lr=1"
  )
  args = ap.parse_args(argv)
  f = family(args.family)
  workdir = args.workdir or (
    "runs/async_study" if f.name == "synthetic" else f"runs/async_{f.name}"
  )
  out = args.out or f.out
  i, n = (int(x) for x in args.shard.split("/"))
  phases = ["tune", "final", "report"] if args.phase == "all" else [args.phase]
  for ph in phases:
    if ph == "report":
      print(report(workdir, out, f))
      continue
    if ph == "edges":
      print("\n".join(edge_report(workdir, f)) or "every kept point is inside its grid")
      continue
    only = args.methods.split(",") if args.methods else None
    sev = [float(x) for x in args.severities.split(",")] if args.severities else None
    where = {k: float(v) for k, v in (kv.split("=") for kv in args.where.split(",") if kv)}
    jobs = tune_jobs(f, args.seed, where) if ph == "tune" else final_jobs(workdir, f, only, sev)
    if only:
      jobs = [j for j in jobs if j[0] in only]
    mine = jobs[i::n]
    t0 = time.time()
    for k, job in enumerate(mine):
      run_one(
        workdir, *job, log=lambda s: print(f"[{ph} {k + 1}/{len(mine)}] {s}", flush=True), fam=f
      )
    print(f"{ph}: {len(mine)} runs in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
  main()
