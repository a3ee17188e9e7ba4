"""The asynchronous studies under the study rules: asynchronous TailOPT against synchronous
and asynchronous baselines, with stragglers or with worker failures.

    python -m experiments.async_study --family synthetic --workdir runs/async_study \\
        --phase tune --shard 0/2
    python -m experiments.async_study --family fashion_mnist --workdir runs/async_fm \\
        --phase final
    python -m experiments.async_study --family movie_reviews --workdir runs/async_mr \\
        --phase report --out experiments/results/async_real/movie_reviews
    python -m experiments.async_study --family failures_synthetic --workdir runs/async_fs

Phases: ``tune`` (every grid cell at the tuning severity (the tuning value of the family's
condition: straggler slowdown, or failure rate) on the tuning seeds, then the grid-edge
extension of each method whose cells are finished; run it again after the other shards),
``final`` (each kept point at every severity on its fresh report seeds), ``report``
(``sweep.json`` in the workdir; the study exported with every per-seed run to ``--out`` and
its report written there: ``python -m experiments.report OUT [--check]``), ``edges`` (kept
points on a grid edge), ``all`` (tune, final, report). The study table is
``experiments/async_study/study.py``; ``experiments/results/async*/run_study.sh`` run it all.
"""

from __future__ import annotations

import argparse
import sys


def _parser():
  from experiments.async_study.study import FAMILIES

  ap = argparse.ArgumentParser(
    prog="python -m experiments.async_study",
    description=__doc__.split("\n\n")[0].replace("\n", " "),
    epilog="Phases: " + __doc__.split("Phases: ")[1],
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
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
    help="comma-separated values of the family's condition (straggler slowdowns, or failure "
    "rates): the final phase at only these (default all)",
  )
  ap.add_argument(
    "--seed", type=int, default=None, help="tune phase: run the grid on this seed (a check)"
  )
  ap.add_argument(
    "--where", default="", help="tune phase: only cells with these fields, e.g. hparams.inner_lr=1"
  )
  ap.add_argument("--debug", action="store_true", help="print tracebacks of user errors")
  return ap


def _parse(ap, args):
  """The shard, methods, severities and cells of the arguments; a bad one is one line."""
  from experiments.async_study.study import family

  f = family(args.family)
  try:
    i, n = (int(x) for x in args.shard.split("/"))
    assert 0 <= i < n
  except (ValueError, AssertionError):
    ap.error(f"--shard {args.shard!r}: give i/n with 0 <= i < n, e.g. --shard 0/2")
  only = [m for m in args.methods.split(",") if m] or None
  unknown = sorted(set(only or []) - set(f.methods))
  if unknown:
    ap.error(
      f"--methods: {', '.join(unknown)} not in family {f.name}; choose from {', '.join(f.methods)}"
    )
  try:
    sev = [float(x) for x in args.severities.split(",") if x] or None
    where = {k: float(v) for k, v in (kv.split("=") for kv in args.where.split(",") if kv)}
  except ValueError:
    ap.error(
      "--severities takes numbers (e.g. 1,16); --where field=number pairs (e.g. hparams.inner_lr=1)"
    )
  if sev and not set(sev) <= set(f.severities):
    ap.error(
      f"--severities {args.severities}: the family's are {', '.join(f'{s:g}' for s in f.severities)}"
    )
  return f, (i, n), only, sev, where


def main(argv=None):
  ap = _parser()
  args = ap.parse_args(argv)
  f, shard, only, sev, where = _parse(ap, args)
  from experiments import cli

  def run():
    from experiments.async_study import jobs, report

    workdir = args.workdir or (
      "runs/async_study" if f.name == "synthetic" else f"runs/async_{f.name}"
    )
    phases = ["tune", "final", "report"] if args.phase == "all" else [args.phase]
    log = lambda s: print(s, flush=True)
    for ph in phases:
      if ph == "tune":
        jobs.tune_phase(workdir, f, shard, only, args.seed, where, log)
      elif ph == "final":
        todo = jobs.final_jobs(workdir, f, only, sev)
        jobs.run_jobs(workdir, f, todo[shard[0] :: shard[1]], "final", f.length, log)
      elif ph == "report":
        print(report.write(workdir, args.out or f.out, f, log))
      else:
        print("\n".join(jobs.edge_report(workdir, f)) or "every kept point is inside its grid")

  return cli.run_cli(run, args.debug)


if __name__ == "__main__":
  sys.exit(main())
