"""Studies under one set of rules: tune on tuning seeds, extend grids until the kept point is
interior, report on fresh seeds at several budgets. Sequential and resumable.

    python -m experiments.sweep --config configs/synthetic.py:study --workdir runs/s \\
        [--methods fedavg,bi2clip] [--set noise.alpha=1.1] [--grid 'hparams.inner_lr=0.01,0.1'] \\
        [--tune-seeds 0] [--report-seeds 1,2,3,4,5]

The rules (``config.sweep``, see ``configs/common.py``):

1. **Tune.** Each method's grid is the cartesian product of ``sweep.grids['*']`` and
   ``sweep.grids[method]`` (``"field=v1,v2"`` strings; ``--grid`` adds to every method).
   Every point runs on every tuning seed for ``config.rounds`` rounds; its score is the mean
   over those seeds of the final report metric (a diverged run scores worst).
2. **Interior.** When the best point sits on the edge of a numeric axis (no tried value on
   one side of it, the other fields held), that axis is extended by a geometric step (the
   edge's neighbour ratio; an arithmetic step for axes with values <= 0) and the new point
   is tuned, until the best point is interior or the edge is a hard bound: declared in
   ``sweep.bounds`` (``'field=low,high'``), zero, or the method diverges past it. At most
   ``sweep.max_extensions`` steps per side; an edge left open is recorded and printed.
3. **Report.** The kept point runs on ``sweep.report_seeds`` (at least 5, none a tuning
   seed) for ``sweep.report_rounds`` rounds (0: ``config.rounds``); the report reads the
   metric of each seed at every budget of ``sweep.budgets``.
4. **Settings** (optional). ``sweep.settings`` (``["name: field=value field=value", ...]``,
   e.g. the bit widths of the communication study) names conditions the kept point is
   reported in, each on every report seed; tuning stays in the base config. A setting
   named ``name[m1,m2]`` is run by those methods only. The report gets one section per
   setting and a table of every setting against the first.

Every cell is an ordinary run of the one loop (``experiments.engines.loop``); a finished cell returns
its stored summary, so rerunning the command resumes. At the end it writes ``sweep.json``
and the report (:mod:`experiments.report`; ``--check`` tests the rules).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  )


from experiments.cli import parse_assignment, set_field  # noqa: E402
from experiments.rundir import atomic_write  # noqa: E402
from experiments.validate import ConfigError  # noqa: E402

MIN_REPORT_SEEDS = 5


def method_grid(config, method: str, extra=()) -> list[dict]:
  specs = list(config.sweep.grids.get("*", [])) + list(config.sweep.grids.get(method, []))
  specs += list(extra)
  axes = [parse_assignment(s) for s in specs]
  merged = {}
  for field, values in axes:  # later specs override earlier ones for the same field
    merged[field] = values
  keys = sorted(merged)
  return [dict(zip(keys, combo)) for combo in itertools.product(*(merged[k] for k in keys))]


def cell_name(point: dict) -> str:
  if not point:
    return "default"
  return ",".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(point.items()))


def score(summary: dict) -> float:
  """Lower is better: the final report metric, sign-flipped for 'max'; inf if diverged."""
  if summary.get("diverged"):
    return math.inf
  v = summary["final"].get(summary["report_metric"])
  if v is None or not math.isfinite(v):
    return math.inf
  return v if summary["report_mode"] == "min" else -v


def cell_config(base_config, method, point, seed, rounds=None):
  """The config of one cell: the base config with the method, seed, grid point (and run
  length) set."""
  cfg = base_config.copy_and_resolve_references()
  cfg.method = method
  cfg.seed = seed
  cfg.progress = False
  if rounds:
    cfg.rounds = rounds
  for field, value in point.items():
    set_field(cfg, field, value)
  return cfg


def run_cell(cfg, workdir, quiet=True):
  """Runs (resumes, or reads back when finished) one cell: an ordinary run of the loop."""
  from experiments.engines.loop import train

  return train(cfg, workdir, quiet=quiet)


def study_plan(config, methods=None) -> dict:
  """The rules of ``config.sweep`` resolved and checked (one-line ConfigErrors)."""
  sw = config.sweep
  tune_seeds, report_seeds = check_seeds(sw.tune_seeds, sw.report_seeds)
  rounds = int(config.rounds)
  report_rounds = int(sw.report_rounds) or rounds
  if report_rounds < rounds:
    raise ConfigError(
      f"config.sweep.report_rounds={report_rounds} is below config.rounds={rounds}; report "
      "runs are at least as long as the tuning runs."
    )
  budgets = resolve_budgets(sw.budgets, rounds, report_rounds, int(config.eval_every))
  methods = list(methods or sw.methods or [config.method])
  reference = sw.reference or ("bi2clip" if "bi2clip" in methods else methods[0])
  return dict(
    methods=methods,
    tune_seeds=tune_seeds,
    report_seeds=report_seeds,
    tune_rounds=rounds,
    report_rounds=report_rounds,
    budgets=budgets,
    reference=reference,
    bounds=_bounds(sw.bounds),
    max_extensions=int(sw.max_extensions),
  )


def check_seeds(tune_seeds, report_seeds, where="config.sweep") -> tuple[list, list]:
  """The tuning and report seeds as int lists, or a one-line ConfigError: no tuning seed,
  fewer than ``MIN_REPORT_SEEDS`` distinct report seeds, or a report seed that tunes."""
  tune_seeds = [int(s) for s in tune_seeds]
  report_seeds = [int(s) for s in report_seeds]
  if not tune_seeds:
    raise ConfigError(f"{where}.tune_seeds is empty; give at least one tuning seed.")
  if len(report_seeds) < MIN_REPORT_SEEDS or len(set(report_seeds)) != len(report_seeds):
    raise ConfigError(
      f"{where}.report_seeds={report_seeds}: give at least {MIN_REPORT_SEEDS} distinct "
      "report seeds, e.g. --report-seeds 1,2,3,4,5."
    )
  if set(tune_seeds) & set(report_seeds):
    raise ConfigError(
      f"{where}.report_seeds share {sorted(set(tune_seeds) & set(report_seeds))} with "
      "tune_seeds; report on fresh seeds only."
    )
  return tune_seeds, report_seeds


def resolve_budgets(given, length, report_length, every, unit="round", where="config.sweep"):
  """The sorted budgets: ``given``, or 25% and 50% of ``length`` (rounded to multiples of
  the evaluation interval ``every``), ``length`` and ``report_length``, in rounds
  (``unit='round'``) or simulated seconds (``'time'``). A budget that is not an evaluation
  point of a ``report_length`` run is a one-line ConfigError."""
  cast = int if unit == "round" else float
  budgets = sorted({cast(b) for b in given} or _default_budgets(length, report_length, every))
  bad = [b for b in budgets if b > report_length or (b % every and b != report_length)]
  if bad:
    noun, run, interval = (
      ("rounds", "round", "eval_every")
      if unit == "round"
      else ("times", "second", "eval_every_time")
    )
    raise ConfigError(
      f"{where}.budgets {bad} are not evaluation {noun} of a {report_length:g}-{run} run "
      f"({interval}={every:g}); use multiples of {every:g} up to {report_length:g}."
    )
  return budgets


def _bounds(specs, where="config.sweep.bounds") -> dict:
  """``["field=low,high", ...]`` (``None`` for an open side) -> ``{field: [low, high]}``."""
  out = {}
  for spec in specs:
    field, values = parse_assignment(spec)
    if len(values) != 2 or not all(v is None or _numeric(v) for v in values):
      raise ConfigError(
        f"{where} entry {spec!r} must be 'field=low,high' with numbers or None, "
        "e.g. 'compression.bits=2,32' or 'hparams.inner_lr=None,1.0'."
      )
    out[field] = values
  return out


def _default_budgets(rounds: int, report_rounds: int, every: int) -> set:
  """25% and 50% of the tuning length (rounded to evaluation rounds), it, and the report
  length."""
  early = {round(rounds * f / every) * every for f in (0.25, 0.5)}
  return {b for b in early if b > 0} | {rounds, report_rounds}


def _numeric(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tuned_axes(grid: list[dict]) -> dict:
  """Numeric fields with more than one value in the grid: ``{field: sorted values}``."""
  axes = {}
  for field in grid[0] if grid else {}:
    values = sorted({p[field] for p in grid})
    if len(values) > 1 and all(_numeric(v) for v in values):
      axes[field] = values
  return axes


def _line(cells: dict, best: dict, field: str, finite: bool = False) -> list:
  """Sorted values of ``field`` tried with every other field as in ``best`` (``finite``:
  only points that did not diverge)."""
  same = lambda c: all(c["point"][k] == best[k] for k in best if k != field)
  keep = lambda c: same(c) and (not finite or c["score"] != math.inf)
  return sorted({c["point"][field] for c in cells.values() if keep(c)})


def _step(values: list, side: str, axis: list):
  """The next value past the ``side`` edge of the sorted tried ``values``: the edge's
  neighbour ratio on the grid's ``axis`` (a geometric step when the axis is positive, else
  its arithmetic step); None when there is no step (a zero edge)."""
  v = values[0] if side == "low" else values[-1]
  if side == "low" and v == 0:
    return None
  if all(x > 0 for x in axis):
    ratio = axis[1] / axis[0] if side == "low" else axis[-1] / axis[-2]
    new = v / ratio if side == "low" else v * ratio
  else:
    new = v - (axis[1] - axis[0]) if side == "low" else v + (axis[-1] - axis[-2])
  return float(f"{new:.3g}")


def _edge_status(cells, best, field, side, bounds, axis):
  """Why ``best`` may sit on the ``side`` edge of ``field``: '' when it does not."""
  values = _line(cells, best, field, finite=True)
  v = best[field]
  if (side == "low" and v != values[0]) or (side == "high" and v != values[-1]):
    return ""
  past = [x for x in _line(cells, best, field) if (x < v if side == "low" else x > v)]
  if past:  # tried, and every point past it diverged
    return "diverges past it"
  bound = bounds.get(field, [None, None])[0 if side == "low" else 1]
  if bound is not None and ((side == "low" and v <= bound) or (side == "high" and v >= bound)):
    return "declared bound"
  if side == "low" and v == 0:
    return "zero"
  nxt = _step(values, side, axis)
  if bound is not None and not _within(nxt, [bound, None] if side == "low" else [None, bound]):
    return "declared bound"  # the next step would cross it
  return "open"


def tune(config, workdir, method, plan, extra_grid=(), log=print) -> dict:
  """Step 1 and 2 of the rules for one method: ``{"cells", "best", "edges"}``."""

  def run(point, seed):
    rel = os.path.join(method, cell_name(point), f"seed{seed}")
    s = run_cell(cell_config(config, method, point, seed), os.path.join(workdir, rel))
    _log(log, method, cell_name(point), seed, s, "tune")
    return rel, s

  return tune_grid(method_grid(config, method, extra_grid), run, plan)


def tune_grid(grid: list[dict], run, plan) -> dict:
  """Step 1 and 2 of the rules for one grid of points, whatever runs them: ``run(point,
  seed)`` returns ``(run folder relative to the study, summary)``; ``plan`` gives
  ``tune_seeds``, ``bounds`` and ``max_extensions``. Returns ``{"cells", "best",
  "best_point", "edges"}``."""
  axes = _tuned_axes(grid)
  cells = {}

  def run_point(point, extension=False):
    name = cell_name(point)
    if name not in cells:
      runs, scores = [], []
      for seed in plan["tune_seeds"]:
        rel, s = run(point, seed)
        runs.append(rel)
        scores.append(score(s))
      mean = sum(scores) / len(scores)  # inf if any seed diverged
      cells[name] = dict(point=point, score=mean, runs=runs, extension=extension)
    return cells[name]

  for point in grid:
    run_point(point)
  _extend(cells, axes, plan, run_point)
  best = _best(cells)
  return dict(
    cells=cells, best=cell_name(best), best_point=best, edges=_edges(cells, best, axes, plan)
  )


def _best(cells: dict) -> dict:
  return min(cells.values(), key=lambda c: c["score"])["point"]


def _extend(cells, axes, plan, run_point):
  """Rule 2: while the best point is on an open edge, try the next step past it."""
  steps = {(f, side): 0 for f in axes for side in ("low", "high")}
  while True:
    best = _best(cells)
    todo = []
    for field in axes:
      for side in ("low", "high"):
        status = _edge_status(cells, best, field, side, plan["bounds"], axes[field])
        if status == "open" and steps[(field, side)] < plan["max_extensions"]:
          new = _step(_line(cells, best, field, finite=True), side, axes[field])
          if new is not None and _within(new, plan["bounds"].get(field)):
            todo.append((field, side, new))
    if not todo:
      return
    for field, side, new in todo:
      steps[(field, side)] += 1
      run_point(dict(best, **{field: new}), extension=True)


def _edges(cells, best, axes, plan) -> list:
  """Every edge of a tuned axis ``best`` sits on, with why (open, zero, a bound, ...)."""
  edges = []
  for field in axes:
    for side in ("low", "high"):
      status = _edge_status(cells, best, field, side, plan["bounds"], axes[field])
      if status:
        edges.append(dict(field=field, side=side, value=best[field], status=status))
  return edges


def _within(value, bound) -> bool:
  lo, hi = bound if bound else (None, None)
  return (lo is None or value >= lo) and (hi is None or value <= hi)


def _log(log, method, name, seed, s, phase):
  metric = s["report_metric"]
  log(
    f"[{time.strftime('%H:%M:%S')}] {phase:<6} {method:<12} {name:<40} seed={seed} "
    f"{metric}={s['final'].get(metric, float('nan')):.5g}{' DIVERGED' if s['diverged'] else ''}"
  )


def sweep(config, workdir: str, methods=None, extra_grid=(), log=print) -> dict:
  """Runs the study of ``config`` in ``workdir`` (resuming) and writes ``sweep.json`` and
  the report; returns what ``sweep.json`` holds."""
  from experiments import provenance

  plan = study_plan(config, methods)
  settings = check_settings(config, plan)
  os.makedirs(workdir, exist_ok=True)
  results = {"rules": 2, "config": config.to_dict(), **plan, "methods": {}}
  results["code"] = provenance.code_version()
  if settings:
    results["settings"] = settings
    results["setting_baseline"] = next(iter(settings))
  for method in plan["methods"]:
    tuned = tune(config, workdir, method, plan, extra_grid, log)
    runs = report_runs(config, workdir, method, tuned, plan, settings, log)
    open_edges = [e for e in tuned["edges"] if e["status"] == "open"]
    for e in open_edges:
      log(f"{method}: kept point {tuned['best']} is on the open {e['side']} edge of {e['field']}")
    results["methods"][method] = {
      "grid": tuned["cells"],
      "best": tuned["best"],
      "best_point": tuned["best_point"],
      "edges": tuned["edges"],
      "runs": runs,
    }
  atomic_write(os.path.join(workdir, "sweep.json"), json.dumps(results, indent=2, default=str))
  from experiments import report

  report.write_report(workdir)
  return results


def parse_settings(specs, where="config.sweep.settings") -> tuple[dict, dict]:
  """``["name[m1,m2]: field=value ...", ...]`` -> ``({name: {field: value}}, {name:
  [methods]})`` in the given order (the second only for settings restricted to some
  methods); a one-line ConfigError for a bad entry."""
  out, only = {}, {}
  for spec in specs or []:
    name, sep, rest = str(spec).partition(":")
    name = name.strip()
    if name.endswith("]") and "[" in name:
      name, methods = name[:-1].split("[", 1)
      only[name] = [m.strip() for m in methods.split(",") if m.strip()]
    if not sep or not name or not all(ch.isalnum() or ch in "+-_." for ch in name):
      raise ConfigError(
        f"{where} entry {spec!r} must look like 'name: field=value field=value' with a name "
        "of letters, digits and + - _ ."
      )
    if name in out:
      raise ConfigError(f"{where} names the setting {name!r} twice; give each its own name.")
    fields = {}
    for item in rest.split():
      field, values = parse_assignment(item)
      if len(values) != 1:
        raise ConfigError(f"{where} entry {spec!r}: {item!r} must set one value, not a list.")
      fields[field] = values[0]
    out[name] = fields
  return out, only


def check_settings(config, plan: dict) -> dict:
  """Rule 4's settings of ``config.sweep.settings``, checked before any run (every field
  exists, a restricted setting names study methods only); restrictions go into ``plan``
  (``setting_methods``). One-line ConfigErrors."""
  settings, only = parse_settings(config.sweep.get("settings"))
  for fields in settings.values():
    probe = config.copy_and_resolve_references()
    for field, value in fields.items():
      set_field(probe, field, value)
  for setting, names in only.items():
    unknown = sorted(set(names) - set(plan["methods"]))
    if unknown:
      raise ConfigError(
        f"config.sweep.settings: {setting}[{','.join(names)}] names methods the study does not "
        f"run ({', '.join(unknown)}); study methods: {', '.join(plan['methods'])}."
      )
  if only:
    plan["setting_methods"] = only
  return settings


def report_runs(config, workdir, method, tuned, plan, settings, log=print):
  """Step 3 for one method: its kept point on every report seed (in every setting);
  returns the run folders (``{setting: [folders]}`` with settings)."""
  by_setting = {}
  for setting, fields in (settings or {"": {}}).items():
    if method not in plan.get("setting_methods", {}).get(setting, [method]):
      continue
    runs = []
    for seed in plan["report_seeds"]:
      rel = os.path.join(method, tuned["best"], setting, f"seed{seed}")
      cfg = cell_config(config, method, tuned["best_point"], seed, plan["report_rounds"])
      for field, value in fields.items():
        set_field(cfg, field, value)
      s = run_cell(cfg, os.path.join(workdir, rel))
      _log(log, method, f"{tuned['best']} {setting}".strip(), seed, s, "report")
      runs.append(rel)
    by_setting[setting] = runs
  return by_setting if settings else by_setting[""]


def _seeds(text):
  return [int(s) for s in text.split(",") if s.strip()] if text else None


def main(argv=None):
  from experiments import cli

  p = cli.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.splitlines()[0])
  p.add_argument("--config", required=True, help="configs/<x>.py[:variant]")
  p.add_argument("--workdir", required=True)
  p.add_argument("--methods", default="")
  p.add_argument("--tune-seeds", default="", help="e.g. 0 (default: config.sweep.tune_seeds)")
  p.add_argument("--report-seeds", default="", help="e.g. 1,2,3,4,5 (config.sweep.report_seeds)")
  p.add_argument("--set", action="append", default=[], help="field=value override")
  p.add_argument("--grid", action="append", default=[], help="field=v1,v2 for every method")
  p.add_argument("--debug", action="store_true", help="print tracebacks of user errors")
  args = p.parse_args(argv)

  def run():
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    config = cli.load_config(args.config, args.set)
    for spec in args.grid:
      parse_assignment(spec)
    if _seeds(args.tune_seeds):
      config.sweep.tune_seeds = _seeds(args.tune_seeds)
    if _seeds(args.report_seeds):
      config.sweep.report_seeds = _seeds(args.report_seeds)
    methods = [m for m in args.methods.split(",") if m] or None
    sweep(config, args.workdir, methods, args.grid)

  return cli.run_cli(run, args.debug)


if __name__ == "__main__":
  sys.exit(main())
