"""``python -m experiments.tailbench``: rank optimizers under heavy-tailed gradient noise.

    python -m experiments.tailbench --suite small [--workdir runs/tailbench/small]
    python -m experiments.tailbench --suite smoke --optimizer my_opt.py:make --name mine \\
        [--outer my_outer.py:make] [--methods fedavg,bi2clip] [--tasks least_squares]

``my_opt.py`` defines ``make(learning_rate) -> optax.GradientTransformation``: the inner
(node) rule under an averaging outer rule (``--outer``: the outer rule, given
``learning_rate=1.0``, over an SGD inner rule), tuned over the inner learning rate on the
suite's grid like every method, with its own row. Suites: ``smoke`` (2 tasks x 2 noise
laws), ``small`` (least squares, logistic, MLP x stable alpha 1.1, 1.5, 2.0), ``full``
(adds alpha 1.3, 1.8, Student-t df 1.5, 3, one node, Gutenberg-8 and Fashion-MNIST),
``tiny`` (for the tests). Rerunning the command resumes: finished runs are read back.
Writes ``leaderboard.md``, ``leaderboard.json``, ``quality_vs_alpha.png`` and
``curves_<task>.png`` into the run folder; each ``<task>/<noise>/`` is a study that
``python -m experiments.report`` reads.
"""

from __future__ import annotations

import json
import os
import sys
import time

from experiments.errors import UserError


def entries(methods: str, name: str, optimizer: str, outer: str) -> dict:
  """The leaderboard's rows: the standard set (or ``methods`` of it) and the user's rule."""
  from experiments import optax_rules
  from experiments.tailbench.suites import STANDARD, Entry

  chosen = [m for m in methods.split(",") if m] if methods else list(STANDARD)
  unknown = [m for m in chosen if m not in STANDARD]
  if unknown:
    raise UserError(f"--methods: unknown {unknown}; choose from {', '.join(STANDARD)}.")
  out = {m: STANDARD[m] for m in chosen}
  if not (optimizer or outer):
    if name:
      raise UserError("--name is given without --optimizer or --outer; give FILE.py:make.")
    return out
  if not name:
    raise UserError("--optimizer/--outer need --name (the row's label), e.g. --name mine.")
  if name in STANDARD or "/" in name:
    raise UserError(f"--name {name!r} is taken by the standard set or has a '/'; pick another.")
  for flag, spec, lr in (("--optimizer", optimizer, 0.01), ("--outer", outer, 1.0)):
    if spec:
      optax_rules.build(optax_rules.resolve(spec, flag), lr, flag)
  about = " + ".join(
    x for x in (optimizer and f"inner {optimizer}", outer and f"outer {outer}") if x
  )
  out[name] = Entry("avg-sgd", inner=optimizer, outer=outer, about=about)
  return out


def select_tasks(suite, tasks: str) -> dict:
  """The suite's tasks, or those named in ``tasks`` (comma-separated)."""
  chosen = [t for t in tasks.split(",") if t] if tasks else list(suite.tasks)
  unknown = [t for t in chosen if t not in suite.tasks]
  if unknown:
    raise UserError(
      f"--tasks: {unknown} not in suite {suite.name}; choose from {', '.join(suite.tasks)}."
    )
  return {t: suite.tasks[t] for t in chosen}


def select_noises(tasks: dict, noises: str):
  """The noise labels of ``noises`` (comma-separated; None = all), each one of the tasks'."""
  from experiments.tailbench.suites import noise_label

  if not noises:
    return None
  chosen = {n for n in noises.split(",") if n}
  known = {noise_label(n) for t in tasks.values() for n in t.noises}
  if chosen - known:
    raise UserError(
      f"--noises: {sorted(chosen - known)} not among the tasks' noise laws; choose from "
      f"{', '.join(sorted(known))}."
    )
  return chosen


def check_user_files(workdir: str, rows: dict) -> None:
  """Records the sha256 of every user file in ``workdir/user_rules.json``; a file changed
  since the stored runs were made is a one-line error (its runs would be stale)."""
  from experiments import optax_rules
  from experiments.rundir import atomic_write

  path = os.path.join(workdir, "user_rules.json")
  stored = json.load(open(path)) if os.path.exists(path) else {}
  for label, e in rows.items():
    for spec in (e.inner, e.outer):
      if spec and spec not in optax_rules.RULES:
        sha = optax_rules.resolve(spec).sha256
        key = f"{label}:{spec}"
        if stored.get(key, sha) != sha:
          raise UserError(
            f"{spec} changed since its runs in {workdir}; use a new --name or --workdir."
          )
        stored[key] = sha
  os.makedirs(workdir, exist_ok=True)
  atomic_write(path, json.dumps(stored, indent=2))


def compile_cache(workdir: str) -> None:
  """XLA's persistent compilation cache under the run folder: report seeds share programs."""
  import jax

  jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, ".xla_cache"))
  for option, value in (
    ("jax_persistent_cache_min_compile_time_secs", 0),
    ("jax_persistent_cache_min_entry_size_bytes", 0),
  ):
    try:
      jax.config.update(option, value)
    except (AttributeError, KeyError):  # an option this JAX does not have
      pass


def run_tasks(suite, tasks, noises, rows, workdir, report_only, pool, log) -> dict:
  """Runs (resumes) every task's studies; returns ``{task: [noise labels]}``."""
  from experiments.tailbench import bench as bench_lib
  from experiments.tailbench.suites import noise_label

  layout = {}
  for task_label, task in tasks.items():
    layout[task_label] = [noise_label(n) for n in task.noises]
    if report_only:
      continue
    done = bench_lib.run_task(suite, task_label, task, rows, workdir, log, noises, pool)
    for noise, study in done.items():
      t = json.load(open(os.path.join(study, "tail_index.json")))
      log(
        f"tail index {task_label} {noise}: gradients "
        f"{t['gradients']:.2f}, pseudo-gradients {t['pseudo_gradients']:.2f} (K={t['draws']})"
      )
  return layout


def bench(args, log=print) -> dict:
  """Runs (resumes) the suite and writes the leaderboard; returns it."""
  from experiments import provenance
  from experiments.tailbench import bench as bench_lib
  from experiments.tailbench import leaderboard
  from experiments.tailbench.suites import SUITES, noise_label

  suite = SUITES[args.suite]
  tasks = select_tasks(suite, args.tasks)
  noises = select_noises(tasks, args.noises)
  rows = entries(args.methods, args.name, args.optimizer, args.outer)
  workdir = args.workdir or os.path.join("runs", "tailbench", suite.name)
  check_user_files(workdir, rows)
  compile_cache(workdir)
  t0 = time.perf_counter()
  workers = 1 if args.report_only else bench_lib.resolve_workers(args.workers)
  pool = bench_lib.worker_pool(workers)
  try:
    layout = run_tasks(suite, tasks, noises, rows, workdir, args.report_only, pool, log)
  finally:
    if pool is not None:
      pool.shutdown(cancel_futures=True)
  code = provenance.code_version()
  header = dict(
    suite=suite.name,
    code=f"{(code['commit'] or '?')[:10]}{' (dirty)' if code['dirty'] else ''}",
    rounds=suite.rounds,
    lrs=list(suite.lrs),
    tune_seeds=list(suite.tune_seeds),
    report_seeds=list(suite.report_seeds),
    tuned_on=(
      f"{noise_label(suite.tune_noise)} (a task without it: each of its noise laws)"
      if suite.tune_noise
      else "each noise law"
    ),
    wall_s=None if args.report_only else time.perf_counter() - t0,
    workers=workers,
    methods={k: vars(e) | {"fixed": dict(e.fixed)} for k, e in rows.items()},
    tasks={k: dict(config=t.config, **dict(t.overrides)) for k, t in tasks.items()},
  )
  out = workdir
  if args.export:
    out = export(workdir, args.export, layout)
    header["exported_from"] = workdir
  board = leaderboard.write(out, layout, header)
  log(leaderboard.ranking_table(board["ranking"]))
  log(f"leaderboard: {os.path.join(out, 'leaderboard.md')} (and .json, plots)")
  return board


def export(workdir: str, out: str, layout: dict) -> str:
  """Copies every finished (task, noise) study of ``workdir`` to ``out`` with its per-seed
  runs (:func:`experiments.report.export`: summaries, configs, code versions, evaluated
  rows), its ``tail_index.json`` and ``costs.json``: a folder ``experiments.report --check``
  and ``--report-only --workdir OUT`` read as they read the run folder."""
  import shutil

  from experiments import report

  for task, noises in layout.items():
    for noise in noises:
      src, dst = os.path.join(workdir, task, noise), os.path.join(out, task, noise)
      if not os.path.exists(os.path.join(src, "sweep.json")):
        continue  # not run here: the leaderboard lists it as missing
      report.export(src, dst)
      for name in ("tail_index.json", "costs.json"):
        if os.path.exists(os.path.join(src, name)):
          shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
  return out


def main(argv=None) -> int:
  from experiments import cli
  from experiments.tailbench.suites import SUITES

  p = cli.ArgumentParser(
    prog="python -m experiments.tailbench", description=__doc__.splitlines()[0]
  )
  p.add_argument("--suite", default="smoke", choices=sorted(SUITES))
  p.add_argument("--workdir", default="", help="run folder (default runs/tailbench/<suite>)")
  p.add_argument("--tasks", default="", help="a subset of the suite's tasks (comma-separated)")
  p.add_argument("--noises", default="", help="a subset of the noise laws, e.g. stable2")
  p.add_argument("--methods", default="", help="a subset of the standard set, e.g. fedavg,bi2clip")
  p.add_argument("--optimizer", default="", help="FILE.py:make, make(learning_rate) -> inner rule")
  p.add_argument("--outer", default="", help="FILE.py:make, make(learning_rate) -> outer rule")
  p.add_argument("--name", default="", help="the leaderboard label of --optimizer/--outer")
  p.add_argument(
    "--workers",
    type=int,
    default=0,
    help="processes running the entries side by side (0 = one per CPU core, at most 8, on "
    "a CPU backend; 1 on an accelerator); the results do not depend on it",
  )
  p.add_argument(
    "--export",
    default="",
    help="also copy the studies with their per-seed runs here and write the leaderboard "
    "there (a results folder that experiments.report --check reads)",
  )
  p.add_argument(
    "--report-only",
    action="store_true",
    help="write the leaderboard from the finished studies in --workdir; run nothing",
  )
  p.add_argument("--debug", action="store_true", help="print tracebacks of user errors")
  args = p.parse_args(argv)

  def run():
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    bench(args)

  return cli.run_cli(run, args.debug)


if __name__ == "__main__":
  sys.exit(main())
