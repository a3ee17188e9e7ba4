"""The asynchronous engine: a simulated-clock run of
:class:`tailopt.asynchronous.Simulator` (spec ``async.md``), for configs with
``mode='async'`` (configs/async_*.py; schema in ``configs/async_common.py``).

    python -m experiments.main --config configs/async_synthetic.py:runlocal --workdir /tmp/a
    python -m experiments.main --config configs/async_synthetic.py:fedbuff --workdir /tmp/b
    python -m experiments.main --config configs/async_fashion_mnist.py:runlocal --workdir /tmp/f

N = ``config.clients`` workers, worker ``w`` trains on dataset client ``w``; the clock
(``config.clock``) fixes the event schedule up front; ``config.asynchronous`` holds the
protocol. The loop (``experiments.engines.loop``) runs chunks of ``config.chunk`` server
steps (one jitted ``lax.scan`` each; chunk boundaries are multiples of ``chunk`` counted from
step 0, so a resumed run runs exactly the chunks of an uninterrupted one) and owns resume,
metrics, checkpoints, evaluation and the summary. Besides the loop's outputs an async run writes:

* per-step ``metrics.jsonl`` lines with ``time`` (simulated seconds), ``train/*``,
  ``tau/max`` and ``tau/mean``; TensorBoard events also against simulated time
  (``workdir/by_time``);
* ``tau.json`` and ``tau_histogram.png``: staleness of every applied update;
* checkpoints of the full simulator state (:meth:`Simulator.state_dict`) with the position in
  the event schedule, checked against the schedule's fingerprint on resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import jax
import numpy as np

from experiments import checkpoint as ckpt_lib
from experiments.engines import build as build_lib
from experiments.engines.outputs import is_primary
from experiments.rundir import atomic_write
from experiments.errors import ConfigError
from tailopt import asynchronous as A
from tailopt import timing
from tailopt.data.batching import make_data_fn, stack_clients
from tailopt.data.types import FederatedData

# Per-step simulator outputs that are not training metrics.
_NOT_METRICS = ("taus", "time", "workers", "pulled", "version")


# ---------------------------------------------------------------------------- build


def clock_config(config, param_bytes=None) -> A.ClockConfig:
  """The async clock of ``config.clock``; with ``config.network`` its latency also holds a
  job's pull and push of ``param_bytes`` each (:func:`tailopt.timing.job_comm_seconds`)."""
  clock = build_lib.clock_config(config)
  net = build_lib.network_config(config)
  per_byte = net.seconds_per_byte("up", 1)[0] + net.seconds_per_byte("down", 1)[0]
  if per_byte and param_bytes is None:
    raise ValueError("the network's transfer time needs the model's size (param_bytes).")
  comm = timing.job_comm_seconds(net, param_bytes or 0.0, param_bytes or 0.0)
  return dataclasses.replace(clock, comm_latency=clock.comm_latency + comm) if comm else clock


def async_config(config, worker_samples=None) -> A.AsyncConfig:
  """The :class:`AsyncConfig` of a config; ``worker_samples`` (the clients' example
  counts) is used by ``merge='dataset'``."""
  d = config.asynchronous.to_dict()
  for k in ("outer", "outer_period", "preset"):
    d.pop(k)
  if d.get("merge") == "dataset":
    if worker_samples is None:
      raise ConfigError(
        "config.asynchronous.merge='dataset' weights updates by the clients' example counts, "
        "which only the built task knows; build the engine from the task's data."
      )
    d["worker_samples"] = tuple(float(x) for x in worker_samples)
  return A.AsyncConfig(
    local_steps=config.local_steps, reset_inner_state=config.reset_inner_state, **d
  )


def resolve_steps(config, clock: A.ClockConfig, acfg: A.AsyncConfig) -> int:
  """T: ``server_steps``, or with ``time_budget`` > 0 the steps done by that simulated time
  (at least 1; rounded up to whole chunks when ``chunk`` is set, so every dispatch has one
  compiled length; the schedule is pure numpy, so this costs nothing on the device)."""
  if not config.time_budget:
    return int(config.server_steps)
  budget = float(config.time_budget)
  k = acfg.k_for(clock.num_workers)
  t = max(8, int(config.server_steps))
  while True:
    s = A.make_schedule(
      clock,
      scheme=acfg.scheme,
      buffer_size=k,
      local_steps=acfg.local_steps,
      num_steps=t,
      dynamic_local_steps_on=acfg.dynamic_local_steps,
      ties=acfg.ties,
      deadline=acfg.deadline,
      quorum=acfg.quorum_for(clock.num_workers),
    )
    if s.tick_time[-1] > budget:
      steps = max(1, int(np.searchsorted(s.tick_time, budget, side="right")))
      if config.chunk:  # whole chunks (one compiled scan length): cover at least the budget
        steps = -(-steps // config.chunk) * config.chunk
      return steps
    t *= 2


def sim_devices(config) -> int:
  """The devices the waves are split over: ``config.devices`` (at least 1) on one process,
  every device of every process on several (each process computes the same schedule and
  holds the whole state; a wave's jobs are sharded over all devices)."""
  if jax.process_count() > 1:
    return jax.device_count()
  return max(1, config.devices)


def build_simulator(config, data: FederatedData, model):
  """The :class:`Simulator` of a validated config (and the stacked data it uses)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))
  clock = clock_config(config, param_bytes)
  acfg = async_config(config, data.client_sizes())
  method = build_lib.make_method(config)
  outer = None
  if config.asynchronous.outer == "delayed_nesterov":
    hp = method.hparams
    outer = A.delayed_nesterov(
      float(hp["outer_lr"]),
      float(hp["momentum"]),
      config.asynchronous.outer_period or config.clients,
    )
  steps = resolve_steps(config, clock, acfg)
  stacked = stack_clients(data)
  if len(data.clients) != config.clients:
    raise ConfigError(
      f"the task built {len(data.clients)} clients for config.clients="
      f"{config.clients} workers; set --config.data_clients=0."
    )
  sim = A.Simulator(
    model.loss,
    method,
    make_data_fn(config.local_steps, config.batch_size),
    clock=clock,
    config=acfg,
    num_steps=steps,
    outer=outer,
    noise=build_lib.make_noise(config),
    devices=sim_devices(config),
    data=stacked,
  )
  return sim


def eval_steps(config, sim) -> set:
  """Server steps (chunk ends) at which a run evaluates: every ``eval_every`` steps, the
  first chunk end at or past each multiple of ``eval_every_time`` simulated seconds, and
  the last step. A pure function of the config and the schedule (so resume agrees)."""
  t_all, ch = sim.num_steps, build_lib.resolve_chunk(config)
  ends = list(range(ch, t_all, ch)) + [t_all]
  out = {t_all}
  if config.eval_every:
    out |= {t for t in ends if t % config.eval_every == 0}
  if config.eval_every_time:
    every = float(config.eval_every_time)
    nxt = every
    for t in ends:
      now = float(sim.schedule.tick_time[t - 1])
      if now >= nxt:
        out.add(t)
        nxt = (math.floor(now / every) + 1) * every
  return out


def tau_report(sim) -> dict:
  """Staleness of every applied update over the whole horizon (known from the schedule)."""
  s = sim.schedule
  stats = sim.tau_stats()
  valid = s.arr["valid"].astype(bool)
  taus = np.arange(s.num_steps)[:, None] - s.arr["pulled"]
  per_worker = {}
  for w in range(s.num_workers):
    t = taus[valid & (s.arr["worker"] == w)]
    per_worker[str(w)] = dict(
      updates=int(t.size),
      mean=float(t.mean()) if t.size else 0.0,
      max=int(t.max(initial=0)),
      step_time=float(s.step_times[w]),
      local_steps=int(s.local_steps[w]),
    )
  return dict(
    scheme=s.scheme,
    num_workers=s.num_workers,
    server_steps=s.num_steps,
    buffer_size=s.arrivals_per_step,
    sim_time=float(s.tick_time[-1]),
    updates=int(valid.sum()),
    computed_local_steps=s.computed_local_steps,
    max=stats["max"],
    mean=stats["mean"],
    histogram=stats["histogram"],
    per_worker=per_worker,
    goodput=sim.goodput(),
  )


def plot_tau_histogram(rep: dict, path: str, title: str = ""):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  hist = np.asarray(rep["histogram"])
  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.bar(np.arange(len(hist)), hist, width=0.9, color="tab:blue")
  ax.set_xlabel("staleness tau (server versions)")
  ax.set_ylabel("applied updates")
  ax.set_title(
    title or f"{rep['scheme']}: tau max {rep['max']}, mean {rep['mean']:.2f}", fontsize=9
  )
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def run_label(config) -> str:
  a = config.asynchronous
  if a.preset:
    return a.preset
  return f"{config.method}/{a.scheme}"


def _rows(metrics: dict) -> list[dict]:
  """Per-server-step metric lines from one chunk's numpy metrics (every per-step scalar
  the simulator reports becomes ``train/<name>``)."""
  taus = np.asarray(metrics["taus"])
  valid = taus >= 0
  n = len(metrics["version"])
  keys = [
    k for k, v in metrics.items() if k not in _NOT_METRICS and np.ndim(v) == 1 and len(v) == n
  ]
  rows = []
  for i in range(n):
    t = taus[i][valid[i]]
    now = float(metrics["time"][i])  # simulated seconds: `time` (as before) and `sim_time`
    r = {"round": int(metrics["version"][i]), "time": now, "sim_time": now}
    r.update({f"train/{k}": float(metrics[k][i]) for k in keys})
    r["tau/max"] = float(t.max()) if t.size else 0.0
    r["tau/mean"] = float(t.mean()) if t.size else 0.0
    rows.append(r)
  return rows


class AsyncEngine:
  """The simulator behind the loop (the :class:`~experiments.engines.protocol.Engine` of
  ``mode='async'``): a chunk = ``chunk`` server steps in one jitted scan."""

  unit = "step"

  def __init__(self, config, data, model):
    self.config = config
    self.sim = build_simulator(config, data, model)  # ValueErrors: ConfigErrors in make_engine
    self.total = self.sim.num_steps
    self.chunk = build_lib.resolve_chunk(config)
    self.evals = eval_steps(config, self.sim)
    self.label = run_label(config)
    self.title = f"tailopt async run: {self.label} on {config.task}"

  def init(self, params):
    return self.sim.init(params, seed=self.config.seed)

  def restore_template(self, params):
    return self.sim.state_dict_template(params)

  def save(self, state, t: int):
    tree, meta = self.sim.state_dict(state)
    return tree, {
      "sim_time": float(self.sim.schedule.tick_time[max(t, 1) - 1]),
      "schedule": self.sim.schedule.fingerprint,
      "sim": meta,
    }

  def load(self, tree, record, params):
    if record.get("schedule") != self.sim.schedule.fingerprint:
      raise ckpt_lib.CheckpointError(
        f"the checkpoint was written for event schedule {record.get('schedule')} but this "
        f"config gives {self.sim.schedule.fingerprint}; use a fresh --workdir or the "
        "original config."
      )
    return self.sim.load_state_dict(tree, record["sim"], params_like=params)

  def params(self, state):
    return state.params

  def chunk_len(self, t: int) -> int:
    return min(self.chunk - t % self.chunk, self.total - t)

  def eval_at(self, t: int) -> bool:
    return t in self.evals

  def run(self, state, t: int, n: int):
    state, metrics = self.sim.run(state, n)  # blocks on the chunk's results
    rows = _rows(metrics)
    taus = np.asarray(metrics["taus"])
    if rows and (taus >= 0).any():  # the chunk's staleness, as a TensorBoard histogram
      rows[-1]["hist/tau"] = taus[taus >= 0]
    return state, rows

  def start(self, workdir, state):
    del state
    self.tau = tau_report(self.sim)
    if not is_primary():  # process 0 alone writes
      return
    atomic_write(os.path.join(workdir, "tau.json"), json.dumps(self.tau, indent=1))
    png = os.path.join(workdir, "tau_histogram.png")
    if not os.path.exists(png):
      plot_tau_histogram(
        self.tau,
        png,
        f"{self.label}: tau max {self.tau['max']}, mean "
        f"{self.tau['mean']:.2f} ({self.tau['updates']} updates)",
      )

  def postfix(self, row) -> dict:
    return {"t": f"{row['time']:.0f}s", "tau": f"{row['tau/mean']:.1f}"}

  def summary(self, state, t: int, out: dict) -> dict:
    c, a, ck, sim = self.config, self.config.asynchronous, self.config.clock, self.sim
    tick = sim.schedule.tick_time
    clock_desc = (
      f"{ck.speeds}"
      + (
        f" (p={ck.straggler_fraction}, S={ck.straggler_slowdown})"
        if ck.speeds == "stragglers"
        else ""
      )
      + f", job noise {ck.job_noise}, latency {ck.comm_latency}"
    )
    return dict(
      preset=a.preset,
      scheme=sim.config.scheme,
      workers=c.clients,
      buffer_size=sim.buffer_size,
      local_steps=c.local_steps,
      rate=a.rate.family,
      compensation=a.compensation.kind,
      clock=clock_desc,
      clock_config=sim.clock.to_dict(),
      server_steps=self.total,
      steps_done=t,
      best_step=out["best_at"],
      steps_per_s=out["per_s"],
      sim_time=float(tick[max(t, 1) - 1]),
      horizon_time=float(tick[-1]),
      tau=dict(max=self.tau["max"], mean=self.tau["mean"]),
      goodput=self.tau["goodput"],
      memory={
        k: v for k, v in sim.memory_report(state).items() if isinstance(v, (int, float, str))
      },
    )

  def summary_rows(self, s: dict) -> list:
    m = s["memory"]
    return [
      ("simulated time", f"{s['sim_time']:.1f} s"),
      (
        "protocol",
        f"scheme={s['scheme']} N={s['workers']} K={s['buffer_size']} "
        f"z={s['local_steps']}; rate={s['rate']}, comp={s['compensation']}",
      ),
      ("clock", s["clock"]),
      ("staleness tau", f"max {s['tau']['max']}, mean {s['tau']['mean']:.2f}"),
      (
        "goodput",
        f"{s['goodput']['goodput']:.3f} (useful / all local steps; "
        f"{s['goodput']['lost_jobs']} jobs lost to failures, "
        f"{s['goodput']['abandoned_jobs']} abandoned)",
      ),
      (
        "snapshot memory",
        f"{m['snapshot_bytes'] / 1e6:.3g} MB ({m['snapshot_mode']}); "
        f"in-flight Deltas {m['inflight_delta_bytes'] / 1e6:.3g} MB",
      ),
    ]
