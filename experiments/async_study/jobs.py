"""The asynchronous study's jobs: the config and folder of every run, the tuning (grid-edge
extension by :func:`experiments.sweep.tune_grid`), the report runs, and the study record
(``sweep.json``, the format of :mod:`experiments.sweep` that ``experiments.report --check``
reads).

A job is ``(method, point, severity, seed)``, ``severity`` a value of the family's condition
(the straggler slowdown, or the failure rate of a failures family). Its run is an ordinary run
of the experiment loop (:func:`experiments.sweep.run_cell`) in
``<workdir>/<method>/<point>/<setting>_seed<seed>`` (``<point>`` named as the sweep names it,
``<setting>`` as :meth:`Family.setting` names the value: ``S4``, ``F0.0125``). Tuning runs
last ``family.budget`` simulated seconds, report runs ``family.length``; tuning and report
seeds are disjoint, so their folders are too.
"""

from __future__ import annotations

import json
import math
import os
import time

from experiments import sweep
from experiments.async_study.study import Family, family, grid_points

REPORT_MODULE = "experiments.async_study.report"
# Config fields the study's report runs may differ in beyond method, seed, length and grid
# fields: the protocol and local steps of each method, the clock seed (the run's seed) and
# the dispatch length (from the steps in the budget).
VARYING = ["asynchronous", "local_steps", "clock.seed", "chunk"]


class NotRun(Exception):
  """A run the study needs has no ``summary.json`` yet (reading a study, not running it)."""


def run_config(method: str, point: dict, severity: float, seed: int, fam="synthetic", budget=None):
  """The config of one run (an ordinary ``configs/<family config>.py:<base>`` config):
  ``budget`` simulated seconds (default the family's tuning budget); a quarter of the workers
  stragglers, then the family's fixed fields, then its condition set to ``severity``."""
  import importlib

  from experiments.engines import asynchronous as async_engine
  from experiments.cli import set_field

  f = family(fam)
  variants, _, _ = f.methods[method]
  module = importlib.import_module(f"configs.{f.config}")
  c = module.get_config(",".join(filter(None, [f.base, variants])))
  c.seed = seed
  c.clock.seed = seed
  c.clock.straggler_fraction = 0.25
  for k, v in f.fixed.items():
    set_field(c, k, v)
  set_field(c, f.condition, float(severity))
  c.time_budget, c.eval_every, c.eval_every_time = budget or f.budget, 0, f.eval_every_time
  c.checkpoint_every, c.progress = 0, False
  for k, v in point.items():
    set_field(c, k, v)
  # About 40 dispatches per run: T from the budget, then whole chunks (< 2.5% over budget).
  c.chunk = 0
  t = async_engine.resolve_steps(c, async_engine.clock_config(c), async_engine.async_config(c))
  c.chunk = max(1, t // 40)
  return c


def run_rel(method, point, severity, seed, fam="synthetic") -> str:
  """A run's folder relative to the study's workdir."""
  name = family(fam).setting(severity)
  return os.path.join(method, sweep.cell_name(point), f"{name}_seed{seed}")


def run_dir(workdir, method, point, severity, seed, fam="synthetic") -> str:
  return os.path.join(workdir, run_rel(method, point, severity, seed, fam))


def run_one(workdir, method, point, severity, seed, log=print, fam="synthetic", budget=None):
  """Runs (or reads back, when finished) one job; returns its summary."""
  f = family(fam)
  c = run_config(method, point, severity, seed, f, budget)
  t0 = time.time()
  s = sweep.run_cell(c, run_dir(workdir, method, point, severity, seed, f))
  short = f.metric.split("/")[-1].replace("accuracy", "acc")
  log(
    f"{method:22s} {sweep.cell_name(point):34s} {f.setting(severity):7s} seed={seed} "
    f"T={s['server_steps']:5d} {short}={s['final'].get(f.metric, math.nan):.4g}"
    f"{' DIVERGED' if s['diverged'] else ''} ({time.time() - t0:.1f} s)"
  )
  return s


def stored(workdir, rel) -> dict:
  """The summary of a finished run, or :class:`NotRun`."""
  try:
    return json.load(open(os.path.join(workdir, rel, "summary.json")))
  except FileNotFoundError:
    raise NotRun(rel) from None


def tune_jobs(fam="synthetic", seed=None, where=None) -> list:
  """Every grid cell at the tuning severity on the tuning seeds (or ``seed``: a check of the
  grid on another seed, not used for selection), optionally only the cells whose fields
  match ``where`` ({field: value}). The extension cells come later (:func:`tune_method`)."""
  f = family(fam)
  seeds = f.tune_seeds if seed is None else (seed,)
  return [
    (m, p, f.tune_severity, s)
    for m, (_, grid, _) in f.methods.items()
    for p in grid_points(grid)
    if all(p.get(k) == v for k, v in (where or {}).items())
    for s in seeds
  ]


def plan_of(f: Family, method: str) -> dict:
  """What :func:`experiments.sweep.tune_grid` needs of a method's tuning."""
  f.check_seeds()
  return dict(
    tune_seeds=list(f.tune_seeds),
    bounds=sweep._bounds(f.bounds_of(method), where=f"family {f.name} bounds of {method}"),
    max_extensions=f.max_extensions,
  )


def tune_method(workdir, method, fam="synthetic", run=True, log=print) -> dict:
  """Tunes one method under the rules (its grid at the tuning severity on the tuning seeds,
  extended until the kept point is interior): ``{"cells", "best", "best_point", "edges"}``.
  ``run=False`` only reads finished runs back, and raises :class:`NotRun` for a missing one."""
  f = family(fam)
  _, grid, _ = f.methods[method]

  def one(point, seed):
    rel = run_rel(method, point, f.tune_severity, seed, f)
    if not run:
      return rel, stored(workdir, rel)
    return rel, run_one(workdir, method, point, f.tune_severity, seed, log, f)

  return sweep.tune_grid(grid_points(grid), one, plan_of(f, method))


def kept_points(workdir, fam="synthetic", only=None) -> tuple[dict, list]:
  """``({method: tuning}, [methods whose tuning is not finished])``, reading runs back."""
  f = family(fam)
  done, todo = {}, []
  for m in f.methods:
    if only and m not in only:
      continue
    try:
      done[m] = tune_method(workdir, m, f, run=False)
    except NotRun:
      todo.append(m)
  return done, todo


def final_jobs(workdir, fam="synthetic", only=None, severities=None) -> list:
  """The report runs: each method's kept point at every severity (or ``severities``, a
  subset of the family's) on its report seeds."""
  f = family(fam)
  sev = f.severities if severities is None else tuple(float(s) for s in severities)
  if not set(sev) <= set(f.severities):
    raise ValueError(f"severities {sev} are not all in the family's {f.severities}.")
  tuned, todo = kept_points(workdir, f, only)
  if todo:
    from experiments.validate import UserError

    raise UserError(
      f"the tuning of {', '.join(todo)} is not finished in {workdir}; run --phase tune "
      "(every shard, then once more for the grid extensions) first."
    )
  return [
    (m, tuned[m]["best_point"], s, seed) for m in tuned for s in sev for seed in f.seeds_of(m)
  ]


def edge_report(workdir, fam="synthetic") -> list[str]:
  """Kept points on an edge of their grid, one line each with why (an open edge breaks the
  rules: the extension steps ran out)."""
  tuned, todo = kept_points(workdir, fam)
  out = [f"{m}: tuning not finished" for m in todo]
  for m, t in tuned.items():
    for e in t["edges"]:
      out.append(f"{m}: kept {t['best']}, on the {e['side']} edge of {e['field']} ({e['status']})")
  return out


def study_record(workdir, fam="synthetic", log=print) -> dict:
  """The study as ``sweep.json`` holds it (the format of :mod:`experiments.sweep`, with the
  severities as settings and the time budgets in simulated seconds). A method whose tuning
  is not finished is left out (and said); a report run not run yet is listed (the check
  names it)."""
  from experiments import provenance

  f = family(fam)
  f.check_seeds()
  tuned, todo = kept_points(workdir, f)
  if not tuned:
    from experiments.validate import UserError

    raise UserError(f"no method's tuning is finished in {workdir}; run --phase tune first.")
  for m in todo:
    log(f"{m}: tuning not finished; left out of the study")
  methods = {}
  for m, t in tuned.items():
    seeds = f.seeds_of(m)
    runs = {
      f.setting(s): [run_rel(m, t["best_point"], s, seed, f) for seed in seeds]
      for s in f.severities
    }
    methods[m] = dict(
      grid=t["cells"],
      best=t["best"],
      best_point=t["best_point"],
      edges=t["edges"],
      runs=runs,
      report_seeds=list(seeds),
    )
  return {"rules": 2, **_header(f), "code": provenance.code_version(), "methods": methods}


def _header(f: Family) -> dict:
  return dict(
    unit="time",
    family=f.name,
    configs={
      m: f"configs/{f.config}.py:{','.join(filter(None, [f.base, v]))}"
      for m, (v, _, _) in f.methods.items()
    },
    tune_seeds=list(f.tune_seeds),
    report_seeds=list(f.report_seeds),
    tune_rounds=f.budget,
    report_rounds=f.length,
    budgets=f.budget_points(),
    reference=f.reference,
    settings={f.setting(s): {f.condition: s} for s in f.severities},
    tune_setting=f.setting(f.tune_severity),
    varying=VARYING,
    claims=[
      dict(
        name=c.name,
        text=c.text,
        a=c.a,
        b=c.b,
        settings=[f.setting(s) for s in c.severities],
        min_seeds=max(c.min_seeds, sweep.MIN_REPORT_SEEDS),
      )
      for c in f.claims
    ],
    bounds_in=f"the bounds of family {f.name!r} in experiments/async_study/study.py",
    report_module=REPORT_MODULE,
    study=dict(
      title=f.title,
      metric=f.metric,
      targets=list(f.targets),
      chance=f.chance,
      labels={m: axis for m, (_, _, axis) in f.methods.items()},
      matched=[dict(label=lab, method=m, grid=g) for lab, m, g in f.matched],
      condition=f.condition,
      fixed=dict(f.fixed),
      notes={f.setting(v): note for v, note in f.notes.items()},
    ),
  )


def write_study(workdir, fam="synthetic", log=print) -> dict:
  """Writes ``<workdir>/sweep.json``; returns what it holds."""
  from experiments.rundir import atomic_write

  record = study_record(workdir, fam, log)
  os.makedirs(workdir, exist_ok=True)
  atomic_write(os.path.join(workdir, "sweep.json"), json.dumps(record, indent=1, default=str))
  return record


def run_jobs(workdir, f: Family, jobs, phase: str, budget=None, log=print) -> None:
  t0 = time.time()
  for k, job in enumerate(jobs):
    run_one(
      workdir, *job, log=lambda s: log(f"[{phase} {k + 1}/{len(jobs)}] {s}"), fam=f, budget=budget
    )
  log(f"{phase}: {len(jobs)} runs in {time.time() - t0:.0f} s")


def tune_phase(workdir, f: Family, shard=(0, 1), only=None, seed=None, where=None, log=print):
  """The tuning phase of one shard ``(i, n)``: every ``n``-th grid cell from the ``i``-th,
  then the grid-edge extension of every ``n``-th method whose cells (of every shard) are
  finished; a method whose cells are not is said, and extended by the next call. ``seed``
  or ``where``: those cells only (a check of the grid), no extension."""
  i, n = shard
  jobs = [j for j in tune_jobs(f, seed, where) if not only or j[0] in only]
  run_jobs(workdir, f, jobs[i::n], "tune", log=log)
  if seed is not None or where:
    return
  for m in [m for m in f.methods if not only or m in only][i::n]:
    try:
      tune_method(workdir, m, f, run=False)  # every cell finished, extension included
    except NotRun:
      if all(
        os.path.exists(os.path.join(workdir, run_rel(*j, f), "summary.json"))
        for j in tune_jobs(f)
        if j[0] == m
      ):
        tune_method(workdir, m, f, run=True, log=lambda s: log(f"[extend] {s}"))
      else:
        log(f"{m}: grid cells of other shards not finished; run --phase tune again to extend")
