"""The one experiment loop: chunks of steps, evaluation, logging, checkpoints, resume.

    summary = train(config, workdir)

Two engines run behind it: :class:`SyncEngine` (synchronous TailOPT rounds,
:func:`tailopt.build_round`) and ``experiments.async_train.AsyncEngine`` (the asynchronous
simulator, ``config.mode == 'async'``). An engine knows how to start, run a chunk of steps
and say what to save; the loop owns everything else: the workdir lock, resume, the metric
writer, checkpoints, evaluation, best/target tracking, divergence, SIGINT/SIGTERM, the
progress bar and the summary.

A run writes into ``workdir``: ``metrics.jsonl`` (one line per step; eval metrics merged into
the line of the step they were taken at), TensorBoard event files, ``checkpoints/`` (orbax),
``config.json`` and ``summary.json`` (written atomically). Rerunning the same command resumes
from the newest checkpoint and ends with exactly the numbers of an uninterrupted run; rerunning
a finished run prints its stored summary and changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

import tailopt
from experiments import checkpoint as ckpt_lib
from experiments import provenance
from experiments import tasks as tasks_lib
from experiments import validate as validate_lib
from experiments.metrics_log import MetricWriter, read_jsonl
from experiments.rundir import RunInterrupted, RunLock, StopRequest, atomic_write
from experiments.validate import ConfigError
from tailopt.data.batching import ClientBatches, eval_batches

# A run whose training loss grows past this multiple of its first value has diverged.
DIVERGENCE_FACTOR = 1e6


def make_noise(config):
  n = config.noise
  if n.distribution == "none":
    return None
  return tailopt.inject_noise(
    n.distribution, n.scale, alpha=n.alpha, df=n.df, seed=config.seed + 17
  )


def make_round(config, model, method, batches: ClientBatches) -> tailopt.Round:
  mesh = tailopt.client_mesh(
    validate_lib.resolve_devices(config), model=int(config.get("mesh", {}).get("model", 1) or 1)
  )
  # Sampled clients do not own a slot across rounds: their inner states live in the
  # engine's host-side store (SyncEngine), swapped into the slots every round.
  reset = config.reset_inner_state
  up, down = validate_lib.compressors(config, method)
  return tailopt.build_round(
    model.loss,
    method,
    local_steps=config.local_steps,
    num_clients=config.clients,
    mesh=mesh,
    reset_inner_state=reset,
    participation=config.participation or None,
    noise=make_noise(config),
    compressor=up,
    down_compressor=down,
    fragments=config.get("fragments") or None,
    client_loop=config.get("client_loop", "vmap"),
  )


def is_primary() -> bool:
  """Process 0 writes the run directory's files (metrics, summaries, logs); every
  process computes, and all of them take part in checkpoints (orbax, multi-host)."""
  return jax.process_index() == 0


class _FollowerWriter:
  """The metric writer of a process other than 0: it reads the rows a resumed run keeps
  (to track best and divergence exactly as process 0 does) and writes nothing."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")

  def resume(self, round_index: int) -> list[dict]:
    rows = read_jsonl(self.path) if os.path.exists(self.path) else []
    return [r for r in rows if r.get("round", 0) <= round_index]

  def write(self, round_index, metrics):
    del round_index, metrics

  def write_hparams(self, hparams, metrics):
    del hparams, metrics

  def write_histogram(self, round_index, tag, values):
    del round_index, tag, values

  def close(self):
    pass


def evaluate(eval_fn, params, examples: dict, batch_size: int) -> dict:
  """Count-weighted means of ``eval_fn`` over a held-out set."""
  sums, total = {}, 0.0
  for batch in eval_batches(examples, batch_size):
    m = jax.device_get(eval_fn(params, batch))
    c = float(m.pop("count"))
    total += c
    for k, v in m.items():
      sums[k] = sums.get(k, 0.0) + float(v) * c
  return {k: v / max(total, 1.0) for k, v in sums.items()}


def _finite_tree(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def progress_bar(config, total, initial, label, unit="round"):
  """A tqdm bar (None when ``config.progress`` is off or tqdm is missing)."""
  if not config.progress:
    return None
  try:
    from tqdm.auto import tqdm
  except ImportError:  # pragma: no cover
    return None
  return tqdm(total=total, initial=initial, desc=label, unit=unit, dynamic_ncols=True, leave=False)


def describe_noise(config) -> str:
  n = config.noise
  if n.distribution == "none":
    return "none"
  return f"{n.distribution}(alpha={n.alpha}, df={n.df}, scale={n.scale})"


def summary_box(title: str, rows, width: int = 64) -> str:
  """``rows`` of (label, value) under a title, aligned, between rules."""
  w = max(len(r[0]) for r in rows)
  return "\n".join(
    ["", "=" * width, f" {title}", "=" * width]
    + [f" {k:<{w}}  {v}" for k, v in rows]
    + ["=" * width]
  )


def _fast_frozen_constants():
  """Frozen pretrained layers are closed-over constants; this JAX option keeps them out
  of the compiled program's literal pool (2-5x faster compiles for partly frozen LMs)."""
  try:
    jax.config.update("jax_use_simplified_jaxpr_constants", True)
  except (AttributeError, KeyError):  # an older/newer JAX without the option
    pass


# ---------------------------------------------------------------------------- engines


class SyncEngine:
  """Synchronous TailOPT rounds of :func:`tailopt.build_round`; a chunk of R rounds runs as
  one jitted ``lax.scan`` (:meth:`tailopt.Round.multi`, the numbers of R single calls).
  Chunks end at multiples of ``config.chunk`` (0: auto, at most 25) and at evaluation and checkpoint
  rounds, counted from round 0, so a resumed run runs exactly the chunks of an
  uninterrupted one. Batches are a pure function of (seed, round), so the saved state is
  the round state alone; on several processes each builds only its own clients' rows."""

  unit = "round"

  def __init__(self, config, data, model):
    self.config = config
    method = tailopt.get_method(config.method, **validate_lib.method_hparams(config))
    self.batches = ClientBatches(
      data,
      local_steps=config.local_steps,
      batch_size=config.batch_size,
      seed=config.seed,
      clients_per_round=config.clients,
    )
    self.rnd = make_round(config, model, method, self.batches)
    self.store = None  # inner states of a sampled population, by dataset client
    if self.batches.samples_clients and not config.reset_inner_state:
      if jax.process_count() > 1:
        raise ConfigError(
          "config.data_clients: keeping sampled clients' inner states (a host-side "
          "store) runs on one process; set --config.reset_inner_state=True to run on "
          "several."
        )
      self.store = True  # built by init() from a fresh inner.init
    self.total = int(config.rounds)
    self.label = config.method
    self.title = f"tailopt run: {config.method} on {config.task}"

  def init(self, params):
    if self.store is not None:
      fresh = jax.device_get(jax.jit(self.rnd.method.inner.init)(params))
      self.store = tailopt.ClientStateStore(fresh)
    return self.rnd.init(params, seed=self.config.seed)

  def restore_template(self, params):
    state = self.init(params)
    if self.store is None:
      return state
    store = self.store
    return lambda record: (state, store.template(int(record["stored_clients"])))

  def save(self, state, t: int):
    if self.store is None:
      return state, {"data_position": t}
    return (state, self.store.to_tree()), {"data_position": t, "stored_clients": len(self.store)}

  def load(self, tree, record, params):
    del record, params
    if self.store is None:
      return tree
    state, stored = tree
    self.store.load_tree(stored)
    return state

  def params(self, state):
    return state.params

  def chunk_len(self, t: int) -> int:
    if self.store is not None:
      return 1  # the store swaps the inner states between rounds
    c = self.config
    ends = [self.total]
    for every in (validate_lib.resolve_chunk(c), c.eval_every, c.checkpoint_every):
      if every:
        ends.append(t - t % every + every)
    return max(min(ends) - t, 1)

  def _batch(self, r: int):
    """Round ``r``'s batch (this process's rows, placed globally, on several processes)."""
    if jax.process_count() == 1:
      return self.batches(r)
    return self.rnd.shard_local_batch(self.batches(r, slots=self.rnd.local_clients()))

  def eval_at(self, t: int) -> bool:
    e = self.config.eval_every
    return bool(e) and (t % e == 0 or t == self.total)

  def run(self, state, t: int, n: int):
    weighted = self.config.weighted
    if n == 1:
      if self.store is not None:  # this round's clients' own inner states
        ids = self.batches.client_ids(t)
        state = state._replace(inner_state=self.rnd.place_clients(self.store.gather(ids)))
      state, metrics = self.rnd(
        state, self._batch(t), self.batches.weights(t) if weighted else None
      )
      if self.store is not None:
        self.store.scatter(ids, jax.device_get(state.inner_state))
      per_round = [jax.device_get(metrics)]
    else:
      if jax.process_count() == 1:
        parts = [self.batches(r) for r in range(t, t + n)]
        batches = {k: np.stack([b[k] for b in parts]) for k in parts[0]}
      else:  # this process's rows of every round, placed as one global array
        parts = [self._batch(r) for r in range(t, t + n)]
        batches = jax.tree.map(lambda *xs: jnp.stack(xs), *parts)
      weights = np.stack([self.batches.weights(r) for r in range(t, t + n)]) if weighted else None
      state, metrics = self.rnd.multi(state, batches, weights)
      metrics = jax.device_get(metrics)
      per_round = [{k: v[i] for k, v in metrics.items()} for i in range(n)]
    rows = [
      {"round": t + 1 + i, **{f"train/{k}": float(v) for k, v in m.items()}}
      for i, m in enumerate(per_round)
    ]
    return state, rows

  def start(self, workdir, state):
    del workdir, state

  def postfix(self, row) -> dict:
    return {}

  def summary(self, state, t: int, out: dict) -> dict:
    c = self.config
    mesh = " x ".join(f"{n} {a}" for a, n in self.rnd.mesh.shape.items())
    return dict(
      clients=c.clients,
      local_steps=c.local_steps,
      rounds=self.total,
      mesh=mesh,
      processes=jax.process_count(),
      rounds_done=t,
      best_round=out["best_at"],
      rounds_per_s=out["per_s"],
    )

  def summary_rows(self, s: dict) -> list:
    rows = [
      ("clients x local steps", f"{s['clients']} x {s['local_steps']}"),
      (
        "mesh",
        s["mesh"] + (f" on {s['processes']} processes" if s.get("processes", 1) > 1 else ""),
      ),
    ]
    return rows


def make_engine(config, data, model):
  """The engine of ``config.mode``; a ValueError of the setup (e.g. a client without
  examples, an impossible clock) is a one-line :class:`ConfigError`."""
  try:
    if validate_lib.is_async(config):
      if jax.process_count() > 1:
        raise ConfigError(
          f"config.mode='async' runs in one process (the simulator plays all "
          f"{config.clients} workers on one host's devices, config.devices); start it "
          "without --coordinator/--num_processes/--multihost."
        )
      from experiments import async_train

      return async_train.AsyncEngine(config, data, model)
    return SyncEngine(config, data, model)
  except ValueError as e:
    if isinstance(e, ConfigError):
      raise
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ConfigError(f"config (mode {config.get('mode', 'sync')!r}): {first}") from e


# ---------------------------------------------------------------------------- the loop


class _Tracker:
  """Best value / time to target of the report metric, the last value of every metric, and
  divergence (a non-finite or exploding training loss), fed row by row (history first)."""

  def __init__(self, config):
    self.metric = config.report_metric
    self.sign = 1.0 if config.report_mode == "min" else -1.0
    self.target = config.get("target")
    self.best = self.best_at = self.best_time = self.time_to_target = None
    self.first_loss = None
    self.diverged = None  # a one-line reason once diverged
    self.last: dict = {}
    self.seen: set = set()

  def __call__(self, row: dict):
    self.last.update(row)
    self.seen.update(row)
    loss = row.get("train/loss")
    if loss is not None and self.diverged is None:
      if self.first_loss is None and math.isfinite(loss):
        self.first_loss = loss
      if not math.isfinite(loss):
        self.diverged = f"train/loss={loss} at {row['round']}"
      elif self.first_loss is not None and abs(loss) > DIVERGENCE_FACTOR * max(
        abs(self.first_loss), 1e-12
      ):
        self.diverged = (
          f"train/loss={loss:.3g} at {row['round']} is more than "
          f"{DIVERGENCE_FACTOR:.0e} x its first value {self.first_loss:.3g}"
        )
    dn = row.get("train/delta_norm")
    if dn is not None and not math.isfinite(dn) and self.diverged is None:
      self.diverged = f"train/delta_norm={dn} at {row['round']}"
    v = row.get(self.metric)
    if v is None or not math.isfinite(v):
      return
    if self.best is None or self.sign * v < self.sign * self.best:
      self.best, self.best_at, self.best_time = v, row["round"], row.get("time")
    if (
      self.target is not None
      and self.time_to_target is None
      and (self.sign * v <= self.sign * self.target)
    ):
      self.time_to_target = row.get("time", row["round"])


def _horizon(config) -> dict:
  return {k: config.get(k) for k in ("rounds", "server_steps", "time_budget") if k in config}


def _stored_summary(workdir, fingerprint, horizon) -> Optional[dict]:
  """The summary of a finished run of this very config in ``workdir``, if there is one."""
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return None
  try:
    s = json.load(open(path))
  except (OSError, json.JSONDecodeError):
    return None
  if s.get("finished") and s.get("fingerprint") == fingerprint and s.get("horizon") == horizon:
    return s
  return None


def _check_report_metric(config, model, engine, state, data, tracker):
  """``config.report_metric`` must be something the run logs (checked before training for
  eval metrics, after the first chunk for train metrics)."""
  m = config.report_metric
  if m.startswith("eval/"):
    batch = next(eval_batches(data.test, config.eval_batch_size))
    keys = set(jax.eval_shape(model.evaluate, engine.params(state), batch)) - {"count"}
    keys |= set(model.meta.get("corpus_eval_keys", ()))  # e.g. BLEU
    if m[len("eval/") :] not in keys:
      raise ConfigError(
        f"config.report_metric={m!r} is never logged; this task's eval "
        f"metrics are {sorted('eval/' + k for k in keys)}."
      )
  elif tracker.seen and m not in tracker.seen:
    raise ConfigError(
      f"config.report_metric={m!r} is never logged; the run logs "
      f"{sorted(k for k in tracker.seen if k.startswith('train/'))}."
    )


def format_summary(summary: dict) -> str:
  """The one-screen summary printed at the end of a run."""
  s = summary
  unit = s["unit"]
  rows = [
    ("workdir", s["workdir"]),
    (
      f"{unit}s",
      f"{s['done']} / {s['total']}"
      + (f" (resumed from {s['resumed_from']})" if s["resumed_from"] else ""),
    ),
  ]
  rows += s.get("engine_rows", [])
  rows += [
    ("noise", s["noise"]),
    (
      "hyperparameters",
      ", ".join(f"{k}={v}" for k, v in s["hparams"].items()) or "method defaults",
    ),
    ("wall time", f"{s['wall_s']:.1f} s ({s['per_s']:.1f} {unit}s/s)"),
  ]
  for k, v in s["final"].items():
    rows.append((f"final {k}", f"{v:.6g}"))
  if s.get("best") is not None:
    when = f"at {unit} {s['best_at']}"
    if s.get("best_time") is not None:
      when += f" (t = {s['best_time']:.1f} s)"
    rows.append((f"best {s['report_metric']}", f"{s['best']:.6g} {when}"))
  if s.get("target") is not None:
    ttt = s.get("time_to_target")
    rows.append(
      (
        f"time to {s['report_metric']} {'<=' if s['report_mode'] == 'min' else '>='}"
        f" {s['target']:g}",
        "not reached" if ttt is None else f"{ttt:.1f} s",
      )
    )
  if s["diverged"]:
    rows.append(("diverged", s["diverged_reason"]))
  return summary_box(f"{s['title']}{' (DIVERGED)' if s['diverged'] else ''}", rows, width=68)


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
  horizon = _horizon(config)
  # One run per workdir; on several processes, process 0 holds the lock for all of them.
  lock = RunLock(workdir) if is_primary() else contextlib.nullcontext()
  with lock:
    stored = _stored_summary(workdir, fingerprint, horizon)
    if stored is not None:
      if not quiet and is_primary():
        print(format_summary(stored))
        print(f"(already finished; stored result from {workdir}/summary.json)")
      return stored
    # SIGINT/SIGTERM from here on (data loading and compilation included) stop the run at
    # the end of the next chunk, with a checkpoint.
    with StopRequest() as stop:
      return _train_locked(config, workdir, fingerprint, horizon, on_chunk_end, quiet, stop)


def _train_locked(config, workdir, fingerprint, horizon, on_chunk_end, quiet, stop):
  _fast_frozen_constants()
  data, model = tasks_lib.build_task(config)
  engine = make_engine(config, data, model)
  params = model.init(jax.random.key(config.seed))
  ckpt = ckpt_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"), config.checkpoint_every, config.keep_checkpoints
  )
  try:
    start = 0
    restored = (
      ckpt.restore(engine.restore_template(params), fingerprint)
      if ckpt.latest_round() is not None
      else None
    )
    if restored is not None:
      tree, record = restored
      state = engine.load(tree, record, params)
      start = int(record["round"])
    else:
      state = engine.init(params)
    del params
    if is_primary():
      atomic_write(
        os.path.join(workdir, "config.json"), json.dumps(config.to_dict(), indent=2, default=str)
      )
      _record_code(workdir, resumed=start > 0)
    engine.start(workdir, state)
    writer = (
      MetricWriter(workdir, time_axis=validate_lib.is_async(config))
      if is_primary()
      else _FollowerWriter(workdir)
    )
    tracker = _Tracker(config)
    # A run resumed at round 0 drops its round-0 evaluation too; _loop writes it again.
    for row in writer.resume(start if start or not config.eval_at_start else -1):
      tracker(row)
    _check_report_metric(config, model, engine, state, data, tracker)
    return _loop(
      config,
      workdir,
      engine,
      model,
      data,
      state,
      start,
      ckpt,
      writer,
      tracker,
      fingerprint,
      horizon,
      on_chunk_end,
      quiet,
      stop,
    )
  finally:
    ckpt.close()


def _record_code(workdir: str, resumed: bool) -> list:
  """Writes ``code.json``: every code version (commit, dirty) this run has run under; a
  fresh start forgets the versions of whatever ran in ``workdir`` before."""
  path = os.path.join(workdir, "code.json")
  previous = None
  if resumed and os.path.exists(path):
    try:
      previous = json.load(open(path))
    except (OSError, json.JSONDecodeError):
      previous = [{"commit": None, "dirty": None}]  # unreadable: the earlier code is unknown
  versions = provenance.merge(previous, provenance.code_version())
  atomic_write(path, json.dumps(versions))
  return versions


def _code_versions(workdir: str) -> list:
  try:
    return json.load(open(os.path.join(workdir, "code.json")))
  except (OSError, json.JSONDecodeError):
    return [{"commit": None, "dirty": None}]


def _evaluate_all(config, model, eval_fn, params, data) -> dict:
  """The ``eval/`` metrics of ``params``: the held-out means, and the corpus-level metrics a
  task attaches to its model (e.g. BLEU of decoded verses)."""
  ev = evaluate(eval_fn, params, data.test, config.eval_batch_size)
  if model.meta.get("corpus_eval") is not None:
    ev.update({k: float(v) for k, v in model.meta["corpus_eval"](params).items()})
  return {f"eval/{k}": v for k, v in ev.items()}


def _loop(
  config,
  workdir,
  engine,
  model,
  data,
  state,
  start,
  ckpt,
  writer,
  tracker,
  fingerprint,
  horizon,
  on_chunk_end,
  quiet,
  stop,
):
  eval_fn = jax.jit(model.evaluate)
  total = engine.total

  def save(t, force=False):
    tree, extra = engine.save(state, t)
    ckpt.save(t, tree, {"round": t, "fingerprint": fingerprint, **extra}, force=force)

  bar = (
    None
    if quiet or not is_primary()
    else progress_bar(config, total, start, engine.label, unit=engine.unit)
  )
  t = start
  t0 = time.perf_counter()
  try:
    if t == 0 and config.eval_at_start and config.eval_every:  # the initial model, as round 0
      row = {"round": 0, **_evaluate_all(config, model, eval_fn, engine.params(state), data)}
      if validate_lib.is_async(config):
        row["time"] = 0.0  # on the simulated clock
      writer.write(0, {k: v for k, v in row.items() if k != "round"})
      tracker(row)
    while t < total and not (tracker.diverged and config.stop_on_nan):
      n = engine.chunk_len(t)
      state, rows = engine.run(state, t, n)
      t += n
      if engine.eval_at(t):
        rows[-1].update(_evaluate_all(config, model, eval_fn, engine.params(state), data))
      for row in rows:
        # ``hist/<tag>`` entries (arrays, e.g. the staleness of a chunk's updates) are
        # TensorBoard histograms, not metric columns.
        for key in [k for k in row if k.startswith("hist/")]:
          writer.write_histogram(row["round"], key[len("hist/") :], row.pop(key))
        writer.write(row["round"], {k: v for k, v in row.items() if k != "round"})
        tracker(row)
      if t == n + start:
        _check_report_metric(config, model, engine, state, data, tracker)
      if bar is not None:
        bar.update(n)
        post = {"loss": f"{rows[-1].get('train/loss', math.nan):.4g}", **engine.postfix(rows[-1])}
        if config.report_metric in rows[-1]:
          post[config.report_metric.split("/")[-1]] = f"{rows[-1][config.report_metric]:.4g}"
        bar.set_postfix(post)
      if tracker.diverged and config.stop_on_nan:
        break
      save(t)
      if stop.signame is not None and t < total:
        save(t, force=True)
        raise RunInterrupted(os.path.abspath(workdir), t, engine.unit, stop.signame)
      if on_chunk_end is not None:
        on_chunk_end(t, rows[-1])
  except BaseException:
    writer.close()
    raise
  finally:
    if bar is not None:
      bar.close()
  wall = time.perf_counter() - t0
  if tracker.diverged is None and not _finite_tree(engine.params(state)):
    tracker.diverged = f"non-finite parameters at {engine.unit} {t}"
  save(t, force=True)
  diverged = tracker.diverged is not None
  final = {k: v for k, v in tracker.last.items() if k.startswith("eval/") or k == "train/loss"}
  if diverged:
    final[config.report_metric] = math.inf * tracker.sign
  # TensorBoard's HParams dashboard: the method, its hyperparameters and the final metrics.
  hp = {"method": config.method, "seed": config.seed, **validate_lib.method_hparams(config)}
  writer.write_hparams(
    {k: v for k, v in hp.items() if isinstance(v, (int, float, str, bool))},
    {k: float(v) for k, v in final.items() if math.isfinite(float(v))},
  )
  writer.close()
  per_s = (t - start) / max(wall, 1e-9)
  out = dict(
    workdir=os.path.abspath(workdir),
    mode=config.get("mode", "sync"),
    task=config.task,
    method=config.method,
    label=engine.label,
    title=engine.title,
    hparams=validate_lib.method_hparams(config),
    seed=config.seed,
    noise=describe_noise(config),
    unit=engine.unit,
    total=total,
    done=t,
    resumed_from=start,
    finished=(t == total) or diverged,
    diverged=diverged,
    diverged_reason=tracker.diverged,
    wall_s=wall,
    per_s=per_s,
    report_metric=config.report_metric,
    report_mode=config.report_mode,
    best=None if diverged else tracker.best,
    best_at=None if diverged else tracker.best_at,
    best_time=None if diverged else tracker.best_time,
    target=tracker.target,
    time_to_target=None if diverged else tracker.time_to_target,
    final=final,
    fingerprint=fingerprint,
    horizon=horizon,
    code=_code_versions(workdir),
  )
  out.update(engine.summary(state, t, out))
  out["engine_rows"] = engine.summary_rows(out)
  if is_primary():
    atomic_write(os.path.join(workdir, "summary.json"), json.dumps(out, indent=2, default=float))
  if not quiet and is_primary():
    print(format_summary(out))
  return out


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
