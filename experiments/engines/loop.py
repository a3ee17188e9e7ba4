"""The one experiment loop: chunks of steps, evaluation, logging, checkpoints, resume.

    summary = train(config, workdir)

Two engines run behind it (:mod:`experiments.engines.protocol`): :class:`SyncEngine`
(synchronous TailOPT rounds, :func:`tailopt.build_round`) and :class:`AsyncEngine` (the
asynchronous simulator, ``config.mode == 'async'``). An engine knows how to start, run a chunk
of steps and say what to save; the loop owns everything else: the workdir lock, resume, the
metric writer, checkpoints, evaluation, best/target tracking, divergence, SIGINT/SIGTERM, the
progress bar and the summary.

A run writes into ``workdir``: ``metrics.jsonl`` (one line per step; eval metrics merged into
the line of the step they were taken at), TensorBoard event files, ``checkpoints/`` (orbax),
``config.json`` and ``summary.json`` (written atomically). Rerunning the same command resumes
from the newest checkpoint and ends with exactly the numbers of an uninterrupted run; rerunning
a finished run prints its stored summary and changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import sys
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from ml_collections import config_dict

from experiments import checkpoint as ckpt_lib
from experiments import tasks as tasks_lib
from experiments import validate as validate_lib
from experiments.engines import build
from experiments.engines.evaluation import check_report_metric, evaluate, evaluate_all
from experiments.engines.outputs import is_primary, metric_writer, record_code
from experiments.engines.protocol import Engine
from experiments.engines.summary import (
  format_summary,
  horizon,
  final_metrics,
  run_summary,
  stored_summary,
)
from experiments.engines.sync import SyncEngine
from experiments.engines.tracker import DIVERGENCE_FACTOR, Tracker
from experiments.rundir import RunInterrupted, RunLock, StopRequest, atomic_write
from experiments.errors import ConfigError

__all__ = [
  "DIVERGENCE_FACTOR",
  "Run",
  "evaluate",
  "final_params",
  "final_state",
  "format_summary",
  "make_engine",
  "progress_bar",
  "train",
]


@dataclasses.dataclass(frozen=True)
class Run:
  """The parts of one run that the loop works with; fixed for the run (the state and the
  position are passed along separately)."""

  config: Any  # the validated ConfigDict
  workdir: str
  engine: Engine
  model: Any  # experiments.models Model: init, loss, evaluate, meta
  data: Any  # tailopt.data.FederatedData (data.test is evaluated)
  ckpt: ckpt_lib.Checkpointer
  writer: Any  # MetricWriter (process 0) or FollowerWriter
  tracker: Tracker
  fingerprint: str  # ckpt_lib.config_fingerprint of the config
  stop: StopRequest  # .signame is set once SIGINT/SIGTERM asked the run to stop
  on_chunk_end: Optional[Callable[[int, dict], None]] = None  # called with (t, last row)
  quiet: bool = False  # no progress bar and no printed summary


class LogProgress:
  """Progress for a log file (stderr is not a terminal): one plain line at most every
  ``every`` seconds and one at the end, instead of a bar's carriage-return redraws. The
  tqdm calls the loop makes: ``update``, ``set_postfix``, ``close``."""

  def __init__(self, total, initial, label, unit, every: float = 30.0, stream=None):
    self.total, self.n, self.label, self.unit, self.every = total, initial, label, unit, every
    self.start_n, self.t0 = initial, time.monotonic()
    self.last, self.post, self.stream = self.t0, {}, stream or sys.stderr

  def update(self, n: int) -> None:
    self.n += n
    if time.monotonic() - self.last >= self.every:
      self._line()

  def set_postfix(self, post: dict) -> None:
    self.post = dict(post)

  def close(self) -> None:
    if self.n > self.start_n:
      self._line()

  def _line(self) -> None:
    now = time.monotonic()
    self.last = now
    rate = (self.n - self.start_n) / max(now - self.t0, 1e-9)
    extra = "".join(f", {k}={v}" for k, v in self.post.items())
    pct = 100.0 * self.n / max(self.total, 1)
    print(
      f"{self.label}: {self.n}/{self.total} {self.unit}s ({pct:.0f}%), "
      f"{rate:.2f} {self.unit}s/s{extra}",
      file=self.stream,
      flush=True,
    )


def progress_bar(config, total, initial, label, unit="round"):
  """A tqdm bar on a terminal, :class:`LogProgress` lines when stderr is a file or pipe
  (a log), None when ``config.progress`` is off or tqdm is missing."""
  if not config.progress:
    return None
  if not sys.stderr.isatty():
    return LogProgress(total, initial, label, unit)
  try:
    from tqdm.auto import tqdm
  except ImportError:  # pragma: no cover
    return None
  return tqdm(total=total, initial=initial, desc=label, unit=unit, dynamic_ncols=True, leave=False)


@jax.jit
def _all_finite(leaves):
  return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]).all()


def _finite_tree(tree) -> bool:
  """Whether every leaf is finite: one compiled reduction (eager per-leaf checks would
  compile two tiny programs per leaf on a multi-device mesh)."""
  leaves = jax.tree.leaves(tree)
  return not leaves or bool(_all_finite(leaves))


def _fast_frozen_constants():
  """Frozen pretrained layers are closed-over constants; this JAX option keeps them out
  of the compiled program's literal pool (2-5x faster compiles for partly frozen LMs)."""
  try:
    jax.config.update("jax_use_simplified_jaxpr_constants", True)
  except (AttributeError, KeyError):  # an older/newer JAX without the option
    pass


def make_engine(config, data, model) -> Engine:
  """The engine of ``config.mode``; a ValueError of the setup (e.g. a client without
  examples, an impossible clock) is a one-line :class:`ConfigError`."""
  try:
    if build.is_async(config):
      from experiments.engines.asynchronous import AsyncEngine

      return AsyncEngine(config, data, model)
    return SyncEngine(config, data, model)
  except ValueError as e:
    if isinstance(e, ConfigError):
      raise
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ConfigError(f"config (mode {config.get('mode', 'sync')!r}): {first}") from e


# ---------------------------------------------------------------------------- start


def train(
  config: config_dict.ConfigDict,
  workdir: str,
  *,
  on_chunk_end: Optional[Callable[[int, dict], None]] = None,
  quiet: bool = False,
) -> dict:
  """Runs (or resumes) one experiment; returns the summary dict (also in summary.json).

  Raises a :class:`experiments.validate.UserError` (one line per problem) for anything the
  user can fix, and :class:`experiments.rundir.RunInterrupted` after SIGINT/SIGTERM (with a
  checkpoint written at the end of the current chunk).
  """
  validate_lib.validate(config, tasks_lib.TASKS)
  fingerprint = ckpt_lib.config_fingerprint(config.to_dict())
  # One run per workdir; on several processes, process 0 holds the lock for all of them.
  lock = RunLock(workdir) if is_primary() else contextlib.nullcontext()
  with lock:
    stored = stored_summary(workdir, fingerprint, horizon(config))
    if stored is not None:
      if not quiet and is_primary():
        print(format_summary(stored))
        print(f"(already finished; stored result from {workdir}/summary.json)")
      return stored
    # SIGINT/SIGTERM from here on (data loading and compilation included) stop the run at
    # the end of the next chunk, with a checkpoint.
    with StopRequest() as stop:
      return _train_locked(config, workdir, fingerprint, on_chunk_end, quiet, stop)


def _restore(engine: Engine, ckpt: ckpt_lib.Checkpointer, params, fingerprint):
  """``(state, start)``: the newest checkpoint's state and round, or a fresh state at 0."""
  step = ckpt.latest_round()
  if step is None:
    return engine.init(params), 0
  tree, record = ckpt.restore(engine.restore_template(params), fingerprint)
  try:
    return engine.load(tree, record, params), int(record["round"])
  except KeyError as e:
    raise ckpt.missing_field(step, e) from None


def _train_locked(config, workdir, fingerprint, on_chunk_end, quiet, stop):
  _fast_frozen_constants()
  data, model = tasks_lib.build_task(config)
  engine = make_engine(config, data, model)
  params = model.init(jax.random.key(config.seed))
  ckpt = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"), config.checkpoint_every, config.keep_checkpoints
  )
  try:
    state, start = _restore(engine, ckpt, params, fingerprint)
    del params
    if is_primary():
      atomic_write(
        os.path.join(workdir, "config.json"), json.dumps(config.to_dict(), indent=2, default=str)
      )
      record_code(workdir, resumed=start > 0)
    engine.start(workdir, state)
    writer = metric_writer(workdir, time_axis=build.is_async(config))
    tracker = Tracker(config)
    # A run resumed at round 0 drops its round-0 evaluation too; _loop writes it again.
    for row in writer.resume(start if start or not config.eval_at_start else -1):
      tracker(row)
    check_report_metric(config, model, engine, state, data, tracker)
    run = Run(
      config=config,
      workdir=workdir,
      engine=engine,
      model=model,
      data=data,
      ckpt=ckpt,
      writer=writer,
      tracker=tracker,
      fingerprint=fingerprint,
      stop=stop,
      on_chunk_end=on_chunk_end,
      quiet=quiet,
    )
    return _loop(run, state, start)
  finally:
    ckpt.close()


# ---------------------------------------------------------------------------- the loop


def _save(run: Run, state, t: int, force: bool = False) -> None:
  tree, extra = run.engine.save(state, t)
  run.ckpt.save(t, tree, {"round": t, "fingerprint": run.fingerprint, **extra}, force=force)


def _evaluate(run: Run, eval_fn, state) -> dict:
  return evaluate_all(run.config, run.model, eval_fn, run.engine.params(state), run.data)


def _log(run: Run, rows: list) -> None:
  """Writes the rows (``hist/<tag>`` entries, arrays such as the staleness of a chunk's
  updates, as TensorBoard histograms, not metric columns) and feeds the tracker."""
  for row in rows:
    for key in [k for k in row if k.startswith("hist/")]:
      run.writer.write_histogram(row["round"], key[len("hist/") :], row.pop(key))
    run.writer.write(row["round"], {k: v for k, v in row.items() if k != "round"})
    run.tracker(row)


def _show(run: Run, bar, rows: list, n: int) -> None:
  """Advances the progress bar by ``n`` with the chunk's loss and report metric."""
  if bar is None:
    return
  last = rows[-1]
  bar.update(n)
  post = {"loss": f"{last.get('train/loss', math.nan):.4g}", **run.engine.postfix(last)}
  metric = run.config.report_metric
  if metric in last:
    post[metric.split("/")[-1]] = f"{last[metric]:.4g}"
  bar.set_postfix(post)


def _stopping(run: Run) -> bool:
  return bool(run.tracker.diverged) and run.config.stop_on_nan


def _chunks(run: Run, state, start: int, eval_fn, bar):
  """Runs chunks from ``start`` to the end (or divergence); returns ``(state, t)``."""
  config, engine = run.config, run.engine
  t = start
  if t == 0 and config.eval_at_start and config.eval_every:  # the initial model, as round 0
    row = {"round": 0, "sim_time": 0.0, **_evaluate(run, eval_fn, state)}
    if build.is_async(config):
      row["time"] = 0.0  # on the simulated clock
    run.writer.write(0, {k: v for k, v in row.items() if k != "round"})
    run.tracker(row)
  while t < engine.total and not _stopping(run):
    n = engine.chunk_len(t)
    state, rows = engine.run(state, t, n)
    t += n
    if engine.eval_at(t):
      rows[-1].update(_evaluate(run, eval_fn, state))
    _log(run, rows)
    if t == n + start:
      check_report_metric(config, run.model, engine, state, run.data, run.tracker)
    _show(run, bar, rows, n)
    if _stopping(run):
      break
    _save(run, state, t)
    if run.stop.signame is not None and t < engine.total:
      _save(run, state, t, force=True)
      raise RunInterrupted(os.path.abspath(run.workdir), t, engine.unit, run.stop.signame)
    if run.on_chunk_end is not None:
      run.on_chunk_end(t, rows[-1])
  return state, t


def _loop(run: Run, state, start: int) -> dict:
  """Runs the chunks, then the final checkpoint, HParams and summary."""
  bar = None
  if not run.quiet and is_primary():
    bar = progress_bar(run.config, run.engine.total, start, run.engine.label, run.engine.unit)
  t0 = time.perf_counter()
  try:
    state, t = _chunks(run, state, start, jax.jit(run.model.evaluate), bar)
  except BaseException:
    run.writer.close()
    raise
  finally:
    if bar is not None:
      bar.close()
  return _finish(run, state, start, t, time.perf_counter() - t0)


def _finish(run: Run, state, start: int, t: int, wall: float) -> dict:
  """The end of a run: a final checkpoint, TensorBoard's HParams, ``summary.json``."""
  config, engine, tracker = run.config, run.engine, run.tracker
  if tracker.diverged is None and not _finite_tree(engine.params(state)):
    tracker.diverged = f"non-finite parameters at {engine.unit} {t}"
  _save(run, state, t, force=True)
  final = final_metrics(config, tracker)
  # TensorBoard's HParams dashboard: the method, its hyperparameters and the final metrics.
  hp = {"method": config.method, "seed": config.seed, **build.method_hparams(config)}
  run.writer.write_hparams(
    {k: v for k, v in hp.items() if isinstance(v, (int, float, str, bool))},
    {k: float(v) for k, v in final.items() if math.isfinite(float(v))},
  )
  run.writer.close()
  out = run_summary(
    config,
    engine,
    tracker,
    state,
    workdir=run.workdir,
    start=start,
    t=t,
    wall=wall,
    final=final,
    fingerprint=run.fingerprint,
  )
  if is_primary():
    path = os.path.join(run.workdir, "summary.json")
    atomic_write(path, json.dumps(out, indent=2, default=float))
  if not run.quiet and is_primary():
    print(format_summary(out))
  return out


# ---------------------------------------------------------------------------- analysis


def final_state(config, workdir: str):
  """``(engine, state, record)`` of the newest checkpoint of a run (for analysis/tests)."""
  data, model = tasks_lib.build_task(config)
  engine = make_engine(config, data, model)
  params = model.init(jax.random.key(config.seed))
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), 0)
  try:
    if ckpt.latest_round() is None:
      raise ckpt_lib.CheckpointError(
        f"no checkpoint under {workdir}/checkpoints; run experiments.main on it first."
      )
    tree, record = ckpt.restore(engine.restore_template(params))
  finally:
    ckpt.close()
  return engine, engine.load(tree, record, params), record


def final_params(config, workdir: str):
  """The newest checkpointed global params of a run in ``workdir`` (for analysis/tests)."""
  engine, state, record = final_state(config, workdir)
  return jax.device_get(engine.params(state)), record
