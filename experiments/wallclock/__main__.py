"""Runs the wall-clock study of one task (resuming), writes its ``sweep.json`` and report, and
exports it (every per-seed run's evaluated rows) to a results folder.

    python -m experiments.wallclock --task synthetic --workdir runs/wallclock/synthetic \\
        --out experiments/results/wallclock/synthetic [--arms fedavg,bi2clip]

``--task``: ``synthetic``, ``movie_reviews`` or ``tiny`` (a smoke study of seconds). Tables
and plots again from the stored runs: ``python -m experiments.report OUT``; the rules:
``python -m experiments.report OUT --check``.
"""

from __future__ import annotations

import os
import sys

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  )


def main(argv=None):
  from experiments import cli

  p = cli.ArgumentParser(
    prog="python -m experiments.wallclock", description=__doc__.splitlines()[0]
  )
  p.add_argument("--task", required=True, help="synthetic, movie_reviews or tiny")
  p.add_argument("--workdir", required=True, help="where the runs are made (resumable)")
  p.add_argument("--out", default="", help="export the study here (runs' evaluated rows)")
  p.add_argument(
    "--arms",
    default="",
    help="comma-separated arms (default: all); sweep.json then lists only these: run "
    "without --arms at the end (finished runs are read back)",
  )
  p.add_argument("--debug", action="store_true", help="print tracebacks of user errors")
  args = p.parse_args(argv)

  def run():
    import time

    from absl import logging

    from experiments import report
    from experiments.errors import UserError
    from experiments.wallclock import jobs, study

    logging.set_verbosity(logging.WARNING)
    try:
      t = study.task(args.task)
    except ValueError as e:
      raise UserError(f"--task: {e}") from None
    arms = [a for a in args.arms.split(",") if a] or None
    unknown = sorted(set(arms or []) - set(t.arms))
    if unknown:
      raise UserError(f"--arms {unknown} are not arms of task {t.name}; use {', '.join(t.arms)}.")
    t0 = time.time()
    jobs.study(
      args.workdir, t, log=lambda s: print(f"[{time.strftime('%H:%M:%S')}] {s}"), arms=arms
    )
    print(f"study of {t.name}: {time.time() - t0:.0f} s")
    report.write_report(args.workdir)
    if args.out:
      report.export(args.workdir, args.out)
      print(f"exported to {args.out}")

  return cli.run_cli(run, args.debug)


if __name__ == "__main__":
  sys.exit(main())
