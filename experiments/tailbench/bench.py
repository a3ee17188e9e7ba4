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


def _study_plan(suite, task_label, task, noise, entries: dict, root, kept=None) -> dict:
  """One (task, noise) study's folder, base config and rules (nothing run yet)."""
  from experiments import provenance

  study = os.path.join(root, task_label, noise_label(noise))
  os.makedirs(study, exist_ok=True)
  base = base_config(suite, task, noise)
  plan = sweep_lib.study_plan(base, list(entries))
  results = {"rules": 2, "config": base.to_dict(), **plan, "methods": {}}
  results["code"] = provenance.code_version()
  results["tailbench"] = {"suite": suite.name, "task": task_label, "noise": noise}
  results["varying"] = ["optax_rules"]  # the entries' inner/outer rules (their `tuned` too)
  if kept:
    results["tailbench"]["tuned_on"] = noise_label(tune_noise(suite, task))
  return {"study": study, "base": base, "plan": plan, "results": results}


def _finish_study(suite, prep: dict, entries: dict) -> str:
  """Writes a study's ``sweep.json`` (its entries' records in ``prep``), report,
  ``tail_index.json`` and ``costs.json``; returns the study folder."""
  from experiments import report

  study, results = prep["study"], prep["results"]
  atomic_write(os.path.join(study, "sweep.json"), json.dumps(results, indent=2, default=str))
  if suite.study_reports:
    report.write_report(study)
  tail_index(*_tail_args(suite, prep))
  costs(prep["base"], entries, results["methods"], os.path.join(study, "costs.json"))
  return study


def _tail_args(suite, prep: dict) -> tuple:
  """:func:`tail_index`'s arguments for a study whose records are in ``prep``: the
  pseudo-gradients at fedavg's kept learning rate (0.01 without a fedavg row)."""
  fedavg = prep["results"]["methods"].get("fedavg", {}).get("best_point", {})
  lr = fedavg.get("hparams.inner_lr", 0.01)
  return prep["base"], suite.tail_draws, lr, os.path.join(prep["study"], "tail_index.json")


def _print(line: str) -> None:
  print(line, flush=True)  # a worker's stdout is a pipe or file: one line at a time


def _entry_job(args: tuple) -> dict:
  """:func:`run_entry` in a worker process (its progress lines on the shared stdout)."""
  return run_entry(*args[:6], _print, args[6])


def run_studies(
  suite, task_label, task, noises, entries: dict, root, log=print, kept=None, pool=None
) -> list:
  """Runs (resumes) every entry on each of ``noises`` of one task and writes each study
  (:func:`_finish_study`); returns the study folders in ``noises``' order. ``kept``:
  ``{label: point}`` tuned under ``suite.tune_noise`` (then no grid is tuned here).
  ``pool`` (a ``concurrent.futures`` executor, e.g. :func:`worker_pool`): the entries of
  all the studies run concurrently on its workers; each run is the same pure function of
  its config wherever it runs, so the records do not depend on the pool."""
  preps = [_study_plan(suite, task_label, task, n, entries, root, kept) for n in noises]
  jobs = [
    (p["base"], suite, p["study"], label, entry, p["plan"], kept[label] if kept else None)
    for p in preps
    for label, entry in entries.items()
  ]
  if pool is None:
    records = [run_entry(*job[:6], log, job[6]) for job in jobs]
  else:
    records = [f.result() for f in [pool.submit(_entry_job, job) for job in jobs]]
  it = iter(records)
  for p in preps:
    for label in entries:
      p["results"]["methods"][label] = next(it)
  if pool is not None:  # the tail indices side by side (_finish_study reads them back)
    for f in [pool.submit(tail_index, *_tail_args(suite, p)) for p in preps]:
      f.result()
  return [_finish_study(suite, p, entries) for p in preps]


def run_study(
  suite, task_label, task, noise, entries: dict, root, log=print, kept=None, pool=None
) -> str:
  """One (task, noise) study (:func:`run_studies`); returns its folder."""
  return run_studies(suite, task_label, task, [noise], entries, root, log, kept, pool)[0]


# jax settings a worker takes from the parent process (they change the compiled programs).
_FORWARDED = (
  "jax_enable_x64",
  "jax_disable_most_optimizations",
  "jax_default_matmul_precision",
  "jax_default_prng_impl",
  "jax_threefry_partitionable",
  "jax_compilation_cache_dir",
  "jax_persistent_cache_min_compile_time_secs",
  "jax_persistent_cache_min_entry_size_bytes",
)


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
  """Ends this worker when its parent process is gone (killed: no pool left to shut it down),
  instead of finishing an entry nobody will read and idling forever. A killed run resumes."""
  import threading
  import time

  def watch():
    while os.getppid() == parent:
      time.sleep(every)
    os._exit(1)

  threading.Thread(target=watch, daemon=True).start()


def _init_worker(settings: dict, parent: int) -> None:
  import jax
  from absl import logging

  _exit_with_parent(parent)

  logging.set_verbosity(logging.WARNING)
  for name, value in settings.items():
    jax.config.update(name, value)


def resolve_workers(workers: int) -> int:
  """``workers`` (0 = auto: one per CPU core, at most 8, on a CPU backend; 1 on an
  accelerator, whose memory one process holds)."""
  if workers > 0:
    return workers
  import jax

  if jax.default_backend() != "cpu":
    return 1
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return max(1, min(8, cores or 1))


def worker_pool(workers: int):
  """A pool of ``workers`` spawned processes with this process's jax settings, or None
  for one worker (everything runs here)."""
  if workers <= 1:
    return None
  import concurrent.futures
  import multiprocessing

  import jax

  values = getattr(jax.config, "values", {})
  settings = {k: values[k] for k in _FORWARDED if k in values}
  return concurrent.futures.ProcessPoolExecutor(
    workers,
    mp_context=multiprocessing.get_context("spawn"),
    initializer=_init_worker,
    initargs=(settings, os.getpid()),
  )


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


def tune_noise(suite, task):
  """The noise law a task tunes on (:attr:`Suite.tune_noise` when the task has it; None:
  each of its noise laws tunes its own learning rate, e.g. a real task's natural noise)."""
  if suite.tune_noise is None:
    return None
  labels = {noise_label(n) for n in task.noises}
  return suite.tune_noise if noise_label(suite.tune_noise) in labels else None


def run_task(suite, task_label, task, entries: dict, root, log=print, only=None, pool=None):
  """Every noise law of one task (or those labelled in ``only``); with a tuning noise law
  (:func:`tune_noise`), that law first (tuned), then the others at its kept points, all
  together. Returns ``{noise label: study folder}`` in the task's noise order."""
  studies = {}
  kept = None
  tune = tune_noise(suite, task)
  if tune is not None:
    first = run_study(suite, task_label, task, tune, entries, root, log, None, pool)
    studies[noise_label(tune)] = first
    record = json.load(open(os.path.join(first, "sweep.json")))["methods"]
    kept = {label: record[label]["best_point"] for label in entries}
  rest = [
    n
    for n in task.noises
    if noise_label(n) not in studies and (only is None or noise_label(n) in only)
  ]
  for noise, study in zip(
    rest, run_studies(suite, task_label, task, rest, entries, root, log, kept, pool)
  ):
    studies[noise_label(noise)] = study
  return {noise_label(n): studies[noise_label(n)] for n in task.noises if noise_label(n) in studies}
