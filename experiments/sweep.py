"""Hyperparameter grids x methods x seeds, sequential and resumable.

    python -m experiments.sweep --config configs/synthetic.py:study --workdir runs/s \\
        [--methods fedavg,bi2clip] [--seeds 0,1,2] [--set noise.alpha=1.1] \\
        [--grid 'hparams.inner_lr=0.01,0.1'] [--protocol tune-first|full]

Each method's grid is the cartesian product of the config's ``sweep.grids['*']`` and
``sweep.grids[method]`` (``"field=v1,v2"`` strings; ``--grid`` adds to every method).
Protocol ``tune-first`` (default) runs every grid point on the first seed, picks the best
point per method by the config's ``report_metric`` (final value; a diverged run is worst),
then runs that point on the remaining seeds. ``full`` runs every point on every seed and
picks by the mean over seeds. Every cell is an ordinary run of the one loop
(``experiments.train``, either mode); a finished cell returns its stored summary, so rerunning
the command resumes. At the end it writes ``report.md``, plots and ``results.json`` (see
:mod:`experiments.report`). ``experiments.async_study`` reuses :func:`run_cell` and
:func:`score` with its own grid and report.
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


def cell_config(base_config, method, point, seed):
  """The config of one cell: the base config with the method, seed and grid point set."""
  cfg = base_config.copy_and_resolve_references()
  cfg.method = method
  cfg.seed = seed
  cfg.progress = False
  for field, value in point.items():
    set_field(cfg, field, value)
  return cfg


def run_cell(cfg, workdir, quiet=True):
  """Runs (resumes, or reads back when finished) one cell: an ordinary run of the loop."""
  from experiments import train

  return train.train(cfg, workdir, quiet=quiet)


def sweep(
  config, workdir: str, methods=None, seeds=None, extra_grid=(), protocol="tune-first", log=print
) -> dict:
  methods = methods or list(config.sweep.methods) or [config.method]
  seeds = seeds or list(config.sweep.seeds) or [config.seed]
  os.makedirs(workdir, exist_ok=True)
  results = {"config": config.to_dict(), "protocol": protocol, "methods": {}}
  t0 = time.time()
  for method in methods:
    grid = method_grid(config, method, extra_grid)
    tune_seeds = seeds[:1] if protocol == "tune-first" else seeds
    cells = {}
    for point in grid:
      name = cell_name(point)
      runs = []
      for seed in tune_seeds:
        d = os.path.join(workdir, method, name, f"seed{seed}")
        s = run_cell(cell_config(config, method, point, seed), d)
        runs.append(s)
        log(
          f"[{time.time() - t0:7.1f}s] {method:<12} {name:<40} seed={seed} "
          f"{s['report_metric']}={s['final'].get(s['report_metric'], float('nan')):.5g}"
          f"{' DIVERGED' if s['diverged'] else ''}"
        )
      cells[name] = {"point": point, "score": sum(score(r) for r in runs) / len(runs)}
    best_name = min(cells, key=lambda n: cells[n]["score"])
    best = cells[best_name]
    for seed in seeds:
      if seed in tune_seeds:
        continue
      d = os.path.join(workdir, method, best_name, f"seed{seed}")
      s = run_cell(cell_config(config, method, best["point"], seed), d)
      log(
        f"[{time.time() - t0:7.1f}s] {method:<12} {best_name:<40} seed={seed} "
        f"{s['report_metric']}={s['final'].get(s['report_metric'], float('nan')):.5g}"
        f"{' DIVERGED' if s['diverged'] else ''}"
      )
    results["methods"][method] = {
      "grid": {n: {"point": c["point"], "score": c["score"]} for n, c in cells.items()},
      "best": best_name,
      "best_point": best["point"],
      "runs": [os.path.join(method, best_name, f"seed{s}") for s in seeds],
    }
  atomic_write(os.path.join(workdir, "sweep.json"), json.dumps(results, indent=2, default=str))
  from experiments import report

  report.write_report(workdir)
  return results


def main(argv=None):
  from experiments import cli

  p = cli.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.splitlines()[0])
  p.add_argument("--config", required=True, help="configs/<x>.py[:variant]")
  p.add_argument("--workdir", required=True)
  p.add_argument("--methods", default="")
  p.add_argument("--seeds", default="")
  p.add_argument("--set", action="append", default=[], help="field=value override")
  p.add_argument("--grid", action="append", default=[], help="field=v1,v2 for every method")
  p.add_argument("--protocol", choices=("tune-first", "full"), default="tune-first")
  p.add_argument("--debug", action="store_true", help="print tracebacks of user errors")
  args = p.parse_args(argv)

  def run():
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    config = cli.load_config(args.config, args.set)
    for spec in args.grid:
      parse_assignment(spec)
    methods = [m for m in args.methods.split(",") if m] or None
    seeds = [int(s) for s in args.seeds.split(",") if s] or None
    sweep(config, args.workdir, methods, seeds, args.grid, args.protocol)

  return cli.run_cli(run, args.debug)


if __name__ == "__main__":
  sys.exit(main())
