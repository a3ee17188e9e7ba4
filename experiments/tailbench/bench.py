"""tailbench's runs: one study per (task, noise law), under :mod:`experiments.sweep`'s rules.

For each (task, noise) folder ``RUN/<task>/<noise>/``: every entry of the leaderboard is
tuned on ``hparams.inner_lr`` (:func:`experiments.sweep.tune_grid`: the suite's grid, edges
extended until the kept point is interior), its kept point is run on the fresh report
seeds, and ``sweep.json`` is written as :func:`experiments.sweep.sweep` writes it, so
``python -m experiments.report RUN/<task>/<noise>`` (and ``--check``) read it as any study.
Every cell is an ordinary run of the one loop; a finished cell is read back (resume). Also
per folder: ``tail_index.json`` (the tail index of the gradients and pseudo-gradients,
:mod:`experiments.tail_index`) and ``costs.json`` (optimizer-state bytes per entry).
"""

from __future__ import annotations

import json
import math
import os

from experiments import sweep as sweep_lib
from experiments.rundir import atomic_write
from experiments.tailbench.suites import Entry, Suite, Task, noise_label


def base_config(suite: Suite, task: Task, noise: dict):
  """The task's config sized for the suite, with the noise law set."""
  from experiments import cli

  cfg = cli.load_config(task.config)
  for field, value in task.overrides:
    cli.set_field(cfg, field, value)
  cfg.rounds = suite.rounds
  cfg.eval_every = suite.eval_every
  cfg.progress = False
  cfg.tuned = {}
  for k, v in noise.items():
    cfg.noise[k] = v
  cfg.sweep.tune_seeds = list(suite.tune_seeds)
  cfg.sweep.report_seeds = list(suite.report_seeds)
  cfg.sweep.max_extensions = suite.max_extensions
  cfg.sweep.bounds = [f"hparams.inner_lr=None,{suite.lr_bound}"]
  return cfg


def entry_config(base, entry: Entry, point: dict, seed: int):
  """One cell: the entry's method, rules and fixed point, the grid point and the seed."""
  cfg = sweep_lib.cell_config(base, entry.method, point, seed)
  cfg.tuned = {entry.method: dict(entry.fixed)}
  cfg.optax_rules.inner = entry.inner
  cfg.optax_rules.outer = entry.outer
  return cfg


def _grid(suite: Suite) -> list:
  return [{"hparams.inner_lr": lr} for lr in suite.lrs]


def run_entry(base, suite, study, label, entry: Entry, plan, log, kept=None) -> dict:
  """Tunes one entry (on the suite's grid, or only at ``kept``: a point tuned under another
  noise law) and runs its kept point on the report seeds: ``sweep.json``'s record."""

  def run(point, seed):
    rel = os.path.join(label, sweep_lib.cell_name(point), f"seed{seed}")
    s = sweep_lib.run_cell(entry_config(base, entry, point, seed), os.path.join(study, rel))
    sweep_lib._log(log, label, sweep_lib.cell_name(point), seed, s, "tune")
    return rel, s

  tuned = sweep_lib.tune_grid([kept] if kept else _grid(suite), run, plan)
  runs = []
  for seed in plan["report_seeds"]:
    rel = os.path.join(label, tuned["best"], f"seed{seed}")
    cfg = entry_config(base, entry, tuned["best_point"], seed)
    s = sweep_lib.run_cell(cfg, os.path.join(study, rel))
    sweep_lib._log(log, label, tuned["best"], seed, s, "report")
    runs.append(rel)
  for e in tuned["edges"]:
    if e["status"] == "open":
      log(f"{label}: kept point {tuned['best']} is on the open {e['side']} edge of {e['field']}")
  return {
    "grid": tuned["cells"],
    "best": tuned["best"],
    "best_point": tuned["best_point"],
    "edges": tuned["edges"],
    "runs": runs,
    "entry": {
      "method": entry.method,
      "inner": entry.inner,
      "outer": entry.outer,
      "fixed": dict(entry.fixed),
      "about": entry.about,
    },
  }


def run_study(suite, task_label, task, noise, entries: dict, root, log=print, kept=None) -> str:
  """Runs (resumes) every entry on one (task, noise); writes ``sweep.json``, the study's
  report, ``tail_index.json`` and ``costs.json``; returns the study folder. ``kept``:
  ``{label: point}`` tuned under ``suite.tune_noise`` (then no grid is tuned here)."""
  from experiments import provenance, report

  study = os.path.join(root, task_label, noise_label(noise))
  os.makedirs(study, exist_ok=True)
  base = base_config(suite, task, noise)
  plan = sweep_lib.study_plan(base, list(entries))
  results = {"rules": 2, "config": base.to_dict(), **plan, "methods": {}}
  results["code"] = provenance.code_version()
  results["tailbench"] = {"suite": suite.name, "task": task_label, "noise": noise}
  results["varying"] = ["optax_rules"]  # the entries' inner/outer rules (their `tuned` too)
  if kept:
    results["tailbench"]["tuned_on"] = noise_label(suite.tune_noise)
  for label, entry in entries.items():
    point = kept[label] if kept else None
    results["methods"][label] = run_entry(base, suite, study, label, entry, plan, log, point)
  atomic_write(os.path.join(study, "sweep.json"), json.dumps(results, indent=2, default=str))
  if suite.study_reports:
    report.write_report(study)
  fedavg = results["methods"].get("fedavg", {}).get("best_point", {})
  lr = fedavg.get("hparams.inner_lr", 0.01)
  tail_index(base, suite.tail_draws, lr, os.path.join(study, "tail_index.json"))
  costs(base, entries, results["methods"], os.path.join(study, "costs.json"))
  return study


def tail_index(config, draws: int, lr: float, path: str) -> dict:
  """The stable tail index (median over orderings) of all params' gradients and
  pseudo-gradients (``z`` SGD steps at ``lr``: fedavg's kept learning rate) at the initial
  point (:func:`experiments.tail_index.draws`), cached in ``path``."""
  if os.path.exists(path):
    return json.load(open(path))
  import numpy as np

  import tailopt
  from experiments import tail_index as ti

  cfg = config.copy_and_resolve_references()
  cfg.hparams.inner_lr = float(lr)
  groups, info = ti.draws(cfg, draws, int(cfg.batch_size), seed=0)
  out = {"draws": draws, **info}
  for kind, i in (("gradients", 1), ("pseudo_gradients", 2)):
    x = np.concatenate([g[i] for g in groups], axis=1)
    est = ti.estimate(x)
    if est["stable_alpha"] is None:  # fewer coordinates than tail_index.MIN_COORDS: one
      est = {"stable_alpha": float(tailopt.noise_tail_index(x, "stable"))}  # ordering
    out[kind] = float(ti.headline(est))
  atomic_write(path, json.dumps(out, indent=2))
  return out


def _tree_bytes(tree) -> int:
  import jax
  import numpy as np

  return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def costs(base, entries: dict, records: dict, path: str) -> dict:
  """Per entry at its kept point: the bytes of one node's inner-rule state and of the
  server's outer-rule state (from ``jax.eval_shape`` of their ``init`` on the model's
  params), and the model's parameter bytes."""
  import jax

  from experiments import tasks
  from experiments.engines import build

  _, model = tasks.build_task(base)
  params = jax.eval_shape(model.init, jax.random.key(0))
  out = {"param_bytes": _tree_bytes(params), "entries": {}}
  for label, entry in entries.items():
    cfg = entry_config(base, entry, records[label]["best_point"], 0)
    method = build.make_method(cfg)
    out["entries"][label] = {
      "node_state_bytes": _tree_bytes(jax.eval_shape(method.inner.init, params)),
      "server_state_bytes": _tree_bytes(jax.eval_shape(method.outer.init, params)),
    }
  atomic_write(path, json.dumps(out, indent=2))
  return out


def finite_or_none(v):
  return float(v) if v is not None and math.isfinite(v) else None


def run_task(suite, task_label, task, entries: dict, root, log=print, only=None) -> dict:
  """Every noise law of one task (or those labelled in ``only``); with ``suite.tune_noise``,
  that law first (tuned), then the others at its kept points. Returns ``{noise label:
  study folder}`` in the task's noise order."""
  studies = {}
  kept = None
  if suite.tune_noise is not None:
    first = run_study(suite, task_label, task, suite.tune_noise, entries, root, log)
    studies[noise_label(suite.tune_noise)] = first
    record = json.load(open(os.path.join(first, "sweep.json")))["methods"]
    kept = {label: record[label]["best_point"] for label in entries}
  for noise in task.noises:
    label = noise_label(noise)
    if label not in studies and (only is None or label in only):
      studies[label] = run_study(suite, task_label, task, noise, entries, root, log, kept)
  return {noise_label(n): studies[noise_label(n)] for n in task.noises if noise_label(n) in studies}
