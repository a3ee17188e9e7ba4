"""The wall-clock study's runs: the config and folder of every run, the tuning (grid-edge
extension by :func:`experiments.sweep.tune_grid`), the report runs, the retimed copies of the
synchronous ones (:mod:`experiments.retime`) and the study record (``sweep.json``, the format
of :mod:`experiments.sweep` that ``experiments.report --check`` reads).

Folders (relative to the study's workdir): ``<arm>/<point>/seed<s>`` a run at the tuning
bandwidth; ``<arm>/<point>/<setting>_seed<s>`` the report run at another bandwidth (a
retimed copy for a synchronous arm, a run of its own for the asynchronous one).
"""

from __future__ import annotations

import json
import math
import os
import time

from experiments import retime, sweep
from experiments.wallclock.study import Task, grid_points, setting, task

REPORT_MODULE = "experiments.wallclock.report"
# Config fields the report runs may differ in beyond method, seed, length and grid fields:
# what makes an arm (code, fragments, overlap, the asynchronous protocol and its fields),
# the clock's seed (the run's seed) and the evaluation interval (server steps of the
# asynchronous arm).
VARYING = [
  "compression",
  "fragments",
  "overlap",
  "clock.seed",
  "clock.failure_rate",
  "clock.rejoin_rate",
  "mode",
  "server_steps",
  "time_budget",
  "eval_every",
  "eval_every_time",
  "target",
  "asynchronous",
  "chunk",
  "participation",
  "weighted",
  "sweep",
]


def run_config(t, arm: str, point: dict, seed: int, bandwidth: float, phase: str = "tune"):
  """The config of one run: the task's config with the arm's fields, the grid point, the
  seed (also the clock's), the links and the phase's length."""
  from configs.common import load
  from experiments.cli import set_field

  t = task(t)
  a = t.arms[arm]
  c = load(t.config)
  if a.mode == "async":
    c = _async_config(c)
  c.method = a.method
  c.seed, c.clock.seed, c.progress = seed, seed, False
  c.network.bandwidth_gbps = float(bandwidth)
  for k, v in {**a.fields, **point}.items():
    set_field(c, k, v)
  if a.mode == "async":
    c.server_steps = t.length(arm, phase)
  else:
    c.rounds = t.length(arm, phase)
  return c


def _async_config(c):
  """Asynchronous Bi²Clip on the synchronous config's task, clock and links: buffered
  (scheme A), K = N/2, evaluated every 2 x ``eval_every`` server steps (the same client
  work)."""
  from configs import async_common

  every, clock = int(c.eval_every), c.clock.to_dict()
  c = async_common.async_fields(c)
  c.clock.update(clock)  # async_fields starts from the shared defaults: keep the task's
  c.sweep = c.sweep.to_dict() | {"methods": [], "grids": {}}
  c.asynchronous.buffer_size = max(1, c.clients // 2)
  c.eval_every, c.chunk = 2 * every, 2 * every
  return c


def run_rel(arm, point, seed, bandwidth, t) -> str:
  """A run's folder relative to the study's workdir."""
  t = task(t)
  name = f"seed{seed}" if bandwidth == t.tune_bandwidth else f"{setting(bandwidth)}_seed{seed}"
  return os.path.join(arm, sweep.cell_name(point), name)


def run_one(workdir, t, arm, point, seed, bandwidth, phase, log=print, runner=None) -> dict:
  """Runs (or reads back, when finished) one run; returns its summary. ``runner(config,
  run_dir)`` makes the run (default :func:`experiments.sweep.run_cell`; tests pass a fake)."""
  t = task(t)
  c = run_config(t, arm, point, seed, bandwidth, phase)
  t0 = time.time()
  s = (runner or sweep.run_cell)(c, os.path.join(workdir, run_rel(arm, point, seed, bandwidth, t)))
  metric = s["report_metric"]
  log(
    f"{phase:<6} {arm:<18} {sweep.cell_name(point):<20} {setting(bandwidth):>8} seed={seed} "
    f"{metric}={s['final'].get(metric, math.nan):.4g}{' DIVERGED' if s['diverged'] else ''} "
    f"({time.time() - t0:.1f} s)"
  )
  return s


def tune_arm(workdir, t, arm, log=print, runner=None) -> dict:
  """Tunes one arm under the rules at the tuning bandwidth on the tuning seeds: ``{"cells",
  "best", "best_point", "edges"}`` (:func:`experiments.sweep.tune_grid`)."""
  t = task(t)
  t.check_seeds()

  def one(point, seed):
    rel = run_rel(arm, point, seed, t.tune_bandwidth, t)
    return rel, run_one(workdir, t, arm, point, seed, t.tune_bandwidth, "tune", log, runner)

  plan = dict(tune_seeds=list(t.tune_seeds), bounds={}, max_extensions=t.max_extensions)
  return sweep.tune_grid(grid_points(t.arms[arm].grid), one, plan)


def report_arm(workdir, t, arm, tuned: dict, log=print, runner=None) -> dict:
  """The kept point's report runs: ``{setting: [run folders]}``. A synchronous arm runs once
  per seed at the tuning bandwidth and is retimed to the others; the asynchronous arm runs at
  every bandwidth."""
  t = task(t)
  point, runs = tuned["best_point"], {}
  for seed in t.report_seeds:
    source = run_rel(arm, point, seed, t.tune_bandwidth, t)
    run_one(workdir, t, arm, point, seed, t.tune_bandwidth, "report", log, runner)
    for bw in t.bandwidths:
      rel = run_rel(arm, point, seed, bw, t)
      if bw == t.tune_bandwidth:  # the run just made
        pass
      elif t.arms[arm].mode == "async":
        run_one(workdir, t, arm, point, seed, bw, "report", log, runner)
      else:
        out = os.path.join(workdir, rel)
        retime.retime_run(os.path.join(workdir, source), out, bandwidth_gbps=float(bw))
      runs.setdefault(setting(bw), []).append(rel)
  return runs


def study(workdir, t, log=print, runner=None, arms=None) -> dict:
  """Tunes and reports every arm (or ``arms``), resuming; writes ``<workdir>/sweep.json``
  and returns it."""
  from experiments import provenance
  from experiments.rundir import atomic_write

  t = task(t)
  os.makedirs(workdir, exist_ok=True)
  methods = {}
  for arm in arms or list(t.arms):
    tuned = tune_arm(workdir, t, arm, log, runner)
    for e in tuned["edges"]:
      if e["status"] == "open":
        log(f"{arm}: kept {tuned['best']} is on the open {e['side']} edge of {e['field']}")
    methods[arm] = dict(
      grid=tuned["cells"],
      best=tuned["best"],
      best_point=tuned["best_point"],
      edges=tuned["edges"],
      runs=report_arm(workdir, t, arm, tuned, log, runner),
      tune_rounds=t.length(arm, "tune"),
      report_rounds=t.length(arm, "report"),
    )
  record = {"rules": 2, **header(t), "code": provenance.code_version(), "methods": methods}
  atomic_write(os.path.join(workdir, "sweep.json"), json.dumps(record, indent=1, default=str))
  return record


def header(t: Task) -> dict:
  """Everything ``sweep.json`` says about the study besides its methods."""
  return dict(
    unit="round",
    task=t.name,
    configs={
      m: t.config + (" (asynchronous)" if a.mode == "async" else "") for m, a in t.arms.items()
    },
    arms={m: dict(method=a.method, mode=a.mode, fields=a.fields) for m, a in t.arms.items()},
    tune_seeds=list(t.tune_seeds),
    report_seeds=list(t.report_seeds),
    tune_rounds=t.tune_rounds,
    report_rounds=t.report_rounds,
    budgets=list(t.budgets),
    reference=t.reference,
    settings={setting(b): {"network.bandwidth_gbps": float(b)} for b in t.bandwidths},
    tune_setting=setting(t.tune_bandwidth),
    varying=VARYING,
    bounds_in=f"the arms of task {t.name!r} in experiments/wallclock/study.py",
    report_module=REPORT_MODULE,
    study=dict(title=t.title, targets=list(t.targets), bandwidths=list(t.bandwidths)),
  )
