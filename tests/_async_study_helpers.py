"""The async study's CLI on a tiny family with faked runs (``experiments.sweep.run_cell``
without training: a run's files from a known quality), shared by the straggler and the
failures study tests."""

import json
import math
import os

import numpy as np

from experiments import sweep
from experiments.async_study import __main__ as cli
from experiments.async_study import study

CLEAN = [{"commit": "a" * 40, "dirty": False}]


def fake_goodput(cfg) -> float:
  """The faked goodput of a run: 1 - 2 lambda (wait-for-all: 1 - 4 lambda), lambda the
  failure rate."""
  lam = float(cfg.clock.failure_rate)
  return 1.0 - (4.0 if cfg.asynchronous.scheme == "sync" else 2.0) * lam


def fake_run_cell(code=CLEAN):
  """``experiments.sweep.run_cell`` without training: best at inner_lr 0.03, async better
  than sync, worse with failures (+ the failure rate, twice that for sync), a little seed
  noise; the goodput :func:`fake_goodput`."""

  def run_cell(cfg, workdir, quiet=True):
    if os.path.exists(os.path.join(workdir, "summary.json")):
      return json.load(open(os.path.join(workdir, "summary.json")))
    lr, seed = cfg.hparams.inner_lr, cfg.seed
    sync = cfg.asynchronous.scheme == "sync"
    base = 0.1 + (math.log10(lr / 0.03)) ** 2 + (0.2 if sync else 0.0)
    base += (2.0 if sync else 1.0) * float(cfg.clock.failure_rate)
    base += 0.01 * np.random.default_rng(seed).random()
    every, budget = cfg.eval_every_time, cfg.time_budget
    times = list(np.arange(every, budget + 1e-9, every))
    rows = [dict(round=i + 1, time=t, **_metrics(base, t, budget)) for i, t in enumerate(times)]
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as fh:
      fh.writelines(json.dumps(r) + "\n" for r in rows)
    json.dump(cfg.to_dict(), open(os.path.join(workdir, "config.json"), "w"), default=str)
    s = dict(
      report_metric=cfg.report_metric,
      report_mode=cfg.report_mode,
      diverged=False,
      final={k: v for k, v in rows[-1].items() if k.startswith("eval/")},
      total=len(rows),
      done=len(rows),
      horizon={"time_budget": budget},
      server_steps=len(rows),
      tau={"mean": 0.0 if sync else 1.5, "max": 0 if sync else 4},
      goodput={"goodput": fake_goodput(cfg), "lost_jobs": 0},
      wall_s=0.1,
      code=code,
    )
    json.dump(s, open(os.path.join(workdir, "summary.json"), "w"))
    return s

  return run_cell


def _metrics(base, t, budget):
  loss = base * (1 + budget / t) / 2  # falls to ``base`` at the budget
  return {"eval/loss": loss, "eval/accuracy": 1 - loss / 2}


def run_study(tmp_path, monkeypatch, f=study.TINY, code=CLEAN, argv=()):
  """Runs the whole CLI (tune, final, report) on a tiny family with faked runs; returns
  the exported study folder."""
  monkeypatch.setattr(sweep, "run_cell", fake_run_cell(code))
  monkeypatch.setitem(study.FAMILIES, f.name, f)
  out = tmp_path / "out"
  args = ["--family", f.name, "--workdir", str(tmp_path / "runs"), "--out", str(out), *argv]
  assert cli.main(args) == 0
  return out
