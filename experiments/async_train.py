"""The asynchronous runner: a config in, a simulated-clock run out.

    python -m experiments.main --config configs/async_synthetic.py:runlocal --workdir /tmp/a
    python -m experiments.main --config configs/async_synthetic.py:fedbuff --workdir /tmp/b
    python -m experiments.main --config configs/async_fashion_mnist.py:runlocal --workdir /tmp/f

``experiments.main`` dispatches here when ``config.mode == 'async'``. The run is a
:class:`tailopt.asynchronous.Simulator` (spec ``async.md``): N = ``config.clients`` workers,
worker ``w`` trains on dataset client ``w``; the clock (``config.clock``) fixes the event
schedule up front; ``config.asynchronous`` holds the protocol (scheme A ``'buffered'``,
scheme B ``'async'``, the synchronous ``'sync'``/``'drop'``/``'deadline'`` baselines on the
same clock, delay-aware rate, compensation, ...). ``config.method`` is any tailopt method; the
baselines of prior work are config variants built from the library presets
(:func:`apply_preset`: ``fedasync``, ``fedbuff``, ``dcasgd``, ``async_local_sgd``).

A run writes into ``workdir``:

* ``metrics.jsonl``: one line per server step (``round`` = server step, ``time`` = simulated
  seconds, ``train/*``, ``tau/max``, ``tau/mean``), eval metrics (``eval/*``) merged into the
  line of the step they were taken at;
* TensorBoard events against server steps (``workdir``) and against simulated time
  (``workdir/by_time``: step = simulated milliseconds, event wall time = simulated seconds);
* ``tau.json`` and ``tau_histogram.png``: staleness of every applied update (max, mean,
  histogram; per worker);
* ``checkpoints/`` (orbax): the full simulator state (params, server/outer state,
  compensation state, per-worker inner and noise states, in-flight Deltas and snapshots, the
  position in the event schedule, the data key). Rerunning resumes mid-run and ends with
  exactly the numbers of an uninterrupted run;
* ``summary.json`` and a one-screen summary.

Data: every client's examples are padded to one length and stacked (leading axis N) and
passed to the simulator as ``data=``; a job draws its ``z`` minibatches with replacement from
its worker's examples inside jit, with the simulator's per-(worker, job) key.

The simulation runs in chunks of ``config.chunk`` server steps (one jitted ``lax.scan``
each); evaluation and checkpoints happen at chunk ends. Step-based evaluation
(``eval_every``) must be a multiple of the chunk; time-based evaluation
(``eval_every_time`` simulated seconds) evaluates at the first chunk end at or past each
multiple. Chunk boundaries are multiples of ``chunk`` counted from step 0, so a resumed run
runs exactly the chunks of an uninterrupted one.
"""

from __future__ import annotations

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
from experiments import tasks as tasks_lib
from experiments import train as train_lib
from experiments import validate as validate_lib
from experiments.metric_writer import MetricWriter, encode_event, tfrecord
from experiments.validate import ConfigError
from tailopt import asynchronous as A
from tailopt.data.types import FederatedData
from tailopt.noise import DISTRIBUTIONS

OUTERS = ("method", "delayed_nesterov")
PRESET_NAMES = tuple(sorted(A.PRESETS))
# Config fields that do not change the numbers of a run (everything else is fingerprinted).
_UNFINGERPRINTED = ("progress", "keep_checkpoints", "target")


# ---------------------------------------------------------------------------- config


def async_fields(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """Turns a base config (``configs.common.base_config`` + a task) into an async one.

  Adds ``mode``, ``server_steps``, ``time_budget``, ``chunk``, ``eval_every_time``,
  ``target``, ``clock`` and ``asynchronous``; removes the synchronous-only ``rounds``,
  ``participation`` and ``weighted``. Defaults are our decisions (spec ``async.md``).
  """
  fl, it = (lambda: config_dict.placeholder(float)), (lambda: config_dict.placeholder(int))
  for k in ("rounds", "participation", "weighted"):
    if k in c:
      del c[k]
  c.mode = "async"
  c.server_steps = 200        # T, server steps (versions); see time_budget
  c.time_budget = 0.0         # > 0: T = the server steps that complete by this sim time
  c.chunk = 0                 # server steps per jitted dispatch; 0 = gcd of the cadences
  c.eval_every = 25           # server steps (0 = off); a multiple of chunk
  c.eval_every_time = 0.0     # simulated seconds (0 = off)
  c.target = fl()             # report_metric target for time-to-target in the summary
  # The runtime model; N = config.clients (tailopt.asynchronous.ClockConfig).
  c.clock = config_dict.ConfigDict({
      "speeds": "stragglers", "step_times": config_dict.placeholder(tuple),
      "base_step_time": 1.0, "speed_sigma": 0.5, "straggler_fraction": 0.25,
      "straggler_slowdown": 4.0, "job_noise": "lognormal", "noise_sigma": 0.25,
      "comm_latency": 0.0, "seed": 0})
  # The protocol (tailopt.asynchronous.AsyncConfig); local_steps = config.local_steps,
  # reset_inner_state = config.reset_inner_state.
  c.asynchronous = config_dict.ConfigDict({
      "scheme": "buffered", "buffer_size": it(), "dynamic_local_steps": False,
      "ties": "batch", "deadline": fl(),
      "rate": {"family": "constant", "a": fl(), "b": fl(), "tau_c": fl(), "tau_max": fl()},
      "reduction": "max", "scale_order": "after_outer", "weight_normalization": "count",
      "compensation": {"kind": "none", "lam": 0.04, "lam0": 2.0, "momentum": 0.95,
                       "eps": 1e-7, "order": "compensate_then_clip"},
      "pseudo_gradient": "delta", "snapshots": "auto",
      "outer": "method",      # 'method' (the method's outer rule) or 'delayed_nesterov'
      "outer_period": 0,      # Delayed Nesterov period; 0 = N
      "preset": "",           # label of the baseline the fields came from (apply_preset)
  })
  return c


def apply_preset(c: config_dict.ConfigDict, name: str, **kwargs) -> config_dict.ConfigDict:
  """Sets ``c``'s method, hyperparameters and protocol to a library baseline preset.

  The fields come from calling the preset itself (``tailopt.asynchronous.PRESETS``) with the
  config's N, z and K, plus ``kwargs`` (e.g. ``alpha=``, ``server_lr=``, ``lr=``), so a
  preset run is exactly ``Simulator(..., **preset(...))``. Later command-line overrides win.
  """
  if name not in A.PRESETS:
    raise ValueError(f"unknown preset {name!r}; choose one of {PRESET_NAMES}.")
  n, z = c.clients, c.local_steps
  a = c.asynchronous
  if name == "fedasync":
    setup = A.fedasync(local_steps=z, **kwargs)
  elif name == "fedbuff":
    setup = A.fedbuff(buffer_size=a.buffer_size or max(1, n // 2), local_steps=z, **kwargs)
  elif name == "dcasgd":
    setup = A.dcasgd(**kwargs)
  else:
    setup = A.async_local_sgd(num_workers=n, local_steps=z, **kwargs)
  m = setup.method
  c.method = m.name
  for k in list(c.hparams.keys()):
    c.hparams[k] = None
  for k in ("inner_lr", "outer_lr", "momentum"):
    if k in m.hparams:   # the hyperparameters the preset's method uses
      c.hparams[k] = float(m.hparams[k])
  d = setup.config.to_dict()
  c.local_steps = int(d.pop("local_steps"))
  c.reset_inner_state = bool(d.pop("reset_inner_state"))
  for k, v in d.items():
    if isinstance(v, dict):
      for k2, v2 in v.items():
        a[k][k2] = v2
    else:
      a[k] = v
  if setup.outer is not None:  # async_local_sgd: Delayed Nesterov
    a.outer = "delayed_nesterov"
    a.outer_period = int(kwargs.get("period") or 0)
  else:
    a.outer = "method"
  a.preset = name
  return c


PROTOCOL_VARIANTS = ("scheme_b", "sync", "drop", "rate", "comp")
BASELINE_VARIANTS = ("fedasync", "fedbuff", "dcasgd", "async_local_sgd", "fedavg")


def apply_variants(c: config_dict.ConfigDict, variants, *, baseline_lr: float
                   ) -> config_dict.ConfigDict:
  """The protocol and baseline variants shared by the async configs.

  ``scheme_b`` (K = 1), ``sync`` (wait-for-all on the same clock), ``drop`` (fastest K),
  ``rate`` (polynomial delay-aware rate, a = 0.5), ``comp`` (adaptive delay compensation);
  baselines ``fedasync``, ``fedbuff``, ``dcasgd``, ``async_local_sgd`` (library presets via
  :func:`apply_preset`, learning rate ``baseline_lr``) and ``fedavg`` (synchronous FedAvg on
  the clock).
  """
  v = set(variants)
  a = c.asynchronous
  if "scheme_b" in v:
    a.scheme = "async"
  if "sync" in v:
    a.scheme = "sync"
  if "drop" in v:
    a.scheme = "drop"
  if "rate" in v:
    a.rate.family, a.rate.a = "polynomial", 0.5
  if "comp" in v:
    a.compensation.kind = "adaptive"
  if "fedavg" in v:
    c.method = "fedavg"
    for k in list(c.hparams.keys()):
      c.hparams[k] = None
    c.hparams.inner_lr = baseline_lr
    a.scheme = "sync"
  for name in ("fedasync", "fedbuff", "async_local_sgd"):
    if name in v:
      apply_preset(c, name, inner_lr=baseline_lr)
  if "dcasgd" in v:
    apply_preset(c, "dcasgd", lr=baseline_lr)
  return c


def _problems(config, tasks) -> list[str]:
  """Every problem of an async config, one line each (empty: valid)."""
  out = []
  add = out.append

  def intf(field, lo, node=config, prefix="config"):
    v = node.get(field)
    if not isinstance(v, int) or isinstance(v, bool):
      add(f"{prefix}.{field}={v!r} must be an integer >= {lo}.")
      return None
    if v < lo:
      add(f"{prefix}.{field}={v} must be >= {lo}; set --{prefix}.{field}={lo} or more.")
      return None
    return v

  if config.get("mode") != "async":
    add(f"config.mode={config.get('mode')!r}; the async runner needs mode='async'.")
  if tasks is not None and config.task not in tasks:
    add(f"config.task={config.task!r} is unknown; choose one of {sorted(tasks)}.")
  ints = {f: intf(f, lo) for f, lo in (
      ("clients", 1), ("local_steps", 1), ("batch_size", 1), ("server_steps", 1),
      ("chunk", 0), ("eval_every", 0), ("checkpoint_every", 0), ("seed", 0),
      ("devices", 0), ("data_clients", 0), ("eval_batch_size", 1))}
  n = ints["clients"]
  for f in ("time_budget", "eval_every_time"):
    v = config.get(f)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
      add(f"config.{f}={v!r} must be a number >= 0 (simulated seconds; 0 = off).")
  if n and config.data_clients and config.data_clients != n:
    add(f"config.data_clients={config.data_clients} != config.clients={n}: in async mode "
        "worker w trains on dataset client w; use --config.data_clients=0.")
  # Method and its hyperparameters (as the synchronous runner checks them).
  hp = validate_lib.method_hparams(config)
  bad_hp = False
  for k, v in hp.items():
    if k == "inner_schedule":
      continue
    if not isinstance(v, (int, float)) or isinstance(v, bool):
      add(f"config.hparams.{k}={v!r} must be a number.")
      bad_hp = True
    elif k != "momentum" and v < 0:
      add(f"config.hparams.{k}={v} is negative; use a value >= 0.")
      bad_hp = True
  for level in ("inner", "outer"):
    u, d = hp.get(f"{level}_upper"), hp.get(f"{level}_lower")
    if isinstance(u, (int, float)) and isinstance(d, (int, float)) and d > u:
      add(f"config.hparams.{level}_lower={d} > config.hparams.{level}_upper={u}: clipping "
          f"needs u >= d; lower {level}_lower or raise {level}_upper.")
      bad_hp = True
  if not bad_hp:
    try:
      tailopt.get_method(config.method, **hp)
    except ValueError as e:
      hint = (f" (baselines of prior work are config variants: "
              f"{', '.join(PRESET_NAMES)}, e.g. configs/async_synthetic.py:fedbuff)"
              if config.method in A.PRESETS else "")
      add(f"config.method={config.method!r}: {e}{hint}")
  nz = config.noise
  if nz.distribution not in ("none",) + DISTRIBUTIONS:
    add(f"config.noise.distribution={nz.distribution!r} is unknown; choose one of "
        f"{('none',) + DISTRIBUTIONS}.")
  elif nz.distribution == "stable" and not 0 < nz.alpha <= 2:
    add(f"config.noise.alpha={nz.alpha} must be in (0, 2] for stable noise.")
  if config.report_mode not in ("min", "max"):
    add(f"config.report_mode={config.report_mode!r}; use 'min' or 'max'.")
  if isinstance(config.devices, int) and config.devices > jax.device_count():
    add(f"config.devices={config.devices} but only {jax.device_count()} devices exist; use "
        "--config.devices=0 (one device, vmapped) or fewer.")
  # Cadences: multiples of the chunk.
  ch = resolve_chunk(config) if all(isinstance(config.get(f), int) for f in (
      "chunk", "eval_every", "checkpoint_every")) else None
  if ch:
    for f in ("eval_every", "checkpoint_every"):
      v = config.get(f)
      if isinstance(v, int) and v > 0 and v % ch:
        add(f"config.{f}={v} is not a multiple of config.chunk={ch} (evaluation and "
            f"checkpoints happen at chunk ends); set --config.chunk to a divisor of {v}.")
  # Clock.
  ck = config.clock
  if ck.speeds not in A.SPEED_MODELS:
    add(f"config.clock.speeds={ck.speeds!r} is unknown; choose one of {A.SPEED_MODELS}.")
  if ck.job_noise not in A.JOB_NOISE:
    add(f"config.clock.job_noise={ck.job_noise!r} is unknown; choose one of "
        f"{A.JOB_NOISE}.")
  if ck.step_times is not None:
    if ck.speeds != "fixed":
      add("config.clock.step_times is only used with config.clock.speeds='fixed'.")
    elif n and len(ck.step_times) != n:
      add(f"config.clock.step_times has {len(ck.step_times)} entries for config.clients="
          f"{n} workers; give one per worker.")
  if not 0.0 <= ck.straggler_fraction <= 1.0:
    add(f"config.clock.straggler_fraction={ck.straggler_fraction} must be in [0, 1].")
  if ck.straggler_slowdown < 1.0:
    add(f"config.clock.straggler_slowdown={ck.straggler_slowdown} must be >= 1 (how many "
        "times slower a straggler is).")
  for f in ("base_step_time",):
    if ck[f] <= 0:
      add(f"config.clock.{f}={ck[f]} must be > 0.")
  for f in ("speed_sigma", "noise_sigma", "comm_latency"):
    if ck[f] < 0:
      add(f"config.clock.{f}={ck[f]} must be >= 0.")
  # Protocol.
  a = config.asynchronous
  scheme = {"a": "buffered", "b": "async"}.get(str(a.scheme).lower(), a.scheme)
  if scheme not in A.SCHEMES:
    add(f"config.asynchronous.scheme={a.scheme!r} is unknown; choose one of {A.SCHEMES} "
        "('buffered' = scheme A, 'async' = scheme B; 'A'/'B' also work).")
  k = a.buffer_size
  if k is not None and (not isinstance(k, int) or k < 1):
    add(f"config.asynchronous.buffer_size={k!r} must be an integer >= 1 (K).")
  elif n and scheme in ("buffered", "drop") and k is not None and k > n:
    add(f"config.asynchronous.buffer_size={k} > config.clients={n}: the server cannot wait "
        f"for more updates (K) than there are workers (N); use 1 <= K <= {n}.")
  if scheme == "deadline" and not (a.deadline and a.deadline > 0):
    add("config.asynchronous.scheme='deadline' needs config.asynchronous.deadline > 0 "
        "(simulated seconds per round).")
  choices = (("rate.family", a.rate.family, A.FAMILIES),
             ("reduction", a.reduction, A.REDUCTIONS),
             ("scale_order", a.scale_order, ("after_outer", "before_outer")),
             ("weight_normalization", a.weight_normalization, ("count", "sum")),
             ("compensation.kind", a.compensation.kind, ("none", "constant", "adaptive")),
             ("compensation.order", a.compensation.order,
              ("compensate_then_clip", "clip_then_compensate")),
             ("pseudo_gradient", a.pseudo_gradient, ("delta", "model_diff")),
             ("snapshots", a.snapshots, ("auto", "ring", "per_job")),
             ("ties", a.ties, ("batch", "sequential")),
             ("outer", a.outer, OUTERS))
  for name, v, allowed in choices:
    if v not in allowed:
      what = "delay-aware rate family" if name == "rate.family" else "value"
      add(f"config.asynchronous.{name}={v!r} is an unknown {what}; choose one of "
          f"{tuple(allowed)}.")
  for f in ("a", "b", "tau_c", "tau_max"):
    v = a.rate[f]
    if v is not None and v < 0:
      add(f"config.asynchronous.rate.{f}={v} must be >= 0.")
  if not 0.0 <= a.compensation.momentum < 1.0:
    add(f"config.asynchronous.compensation.momentum={a.compensation.momentum} must be in "
        "[0, 1).")
  for f in ("lam", "lam0", "eps"):
    if a.compensation[f] < 0:
      add(f"config.asynchronous.compensation.{f}={a.compensation[f]} must be >= 0.")
  if not isinstance(a.outer_period, int) or a.outer_period < 0:
    add(f"config.asynchronous.outer_period={a.outer_period!r} must be an integer >= 0 "
        "(0 = N).")
  if a.preset and a.preset not in A.PRESETS:
    add(f"config.asynchronous.preset={a.preset!r} is unknown; use '' or one of "
        f"{PRESET_NAMES}.")
  if a.outer == "delayed_nesterov" and hp.get("momentum") is not None and not (
      0 <= hp["momentum"] < 1):
    add(f"config.hparams.momentum={hp['momentum']} must be in [0, 1) for Delayed Nesterov.")
  return out


def validate(config, tasks=None) -> None:
  """Raises :class:`ConfigError` listing every problem of the config, one line each."""
  problems = _problems(config, tasks)
  if problems:
    raise ConfigError("\n".join(problems))


def resolve_chunk(config) -> int:
  if config.chunk:
    return int(config.chunk)
  cad = [v for v in (config.eval_every, config.checkpoint_every) if v]
  return int(np.gcd.reduce(cad)) if cad else 50


def clock_config(config) -> A.ClockConfig:
  d = config.clock.to_dict()
  if d.get("step_times") is not None:
    d["step_times"] = tuple(float(x) for x in d["step_times"])
  return A.ClockConfig(num_workers=config.clients, **d)


def async_config(config) -> A.AsyncConfig:
  d = config.asynchronous.to_dict()
  for k in ("outer", "outer_period", "preset"):
    d.pop(k)
  return A.AsyncConfig(local_steps=config.local_steps,
                       reset_inner_state=config.reset_inner_state, **d)


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
    s = A.make_schedule(clock, scheme=acfg.scheme, buffer_size=k,
                        local_steps=acfg.local_steps, num_steps=t,
                        dynamic_local_steps_on=acfg.dynamic_local_steps, ties=acfg.ties,
                        deadline=acfg.deadline)
    if s.tick_time[-1] > budget:
      steps = max(1, int(np.searchsorted(s.tick_time, budget, side="right")))
      if config.chunk:  # whole chunks (one compiled scan length): cover at least the budget
        steps = -(-steps // config.chunk) * config.chunk
      return steps
    t *= 2


# ---------------------------------------------------------------------------- data


def stack_clients(data: FederatedData) -> dict:
  """Client examples padded to the largest client and stacked: ``{"examples": {key: (N,
  max_n, ...)}, "sizes": (N,) int32}`` (device arrays; passed to the simulator as data)."""
  sizes = data.client_sizes()
  if (sizes == 0).any():
    raise ConfigError(f"clients {np.flatnonzero(sizes == 0).tolist()} have no training "
                      "examples; change the partition.")
  m = int(sizes.max())
  out = {}
  for k in data.clients[0]:
    first = np.asarray(data.clients[0][k])
    arr = np.zeros((len(sizes), m) + first.shape[1:], first.dtype)
    for i, c in enumerate(data.clients):
      arr[i, :sizes[i]] = np.asarray(c[k])
    out[k] = jnp.asarray(arr)
  return {"examples": out, "sizes": jnp.asarray(sizes, jnp.int32)}


def make_data_fn(local_steps: int, batch_size: int) -> Callable:
  """``data_fn(data, worker, job_index, key)``: z minibatches drawn with replacement from the
  worker's own examples (the key is the simulator's per-(worker, job) key)."""
  def data_fn(data, worker, job_index, key):
    del job_index  # already folded into key
    n = data["sizes"][worker]
    idx = jax.random.randint(key, (local_steps, batch_size), 0, n)
    return {k: v[worker, idx] for k, v in data["examples"].items()}
  return data_fn


# ---------------------------------------------------------------------------- build


def build(config, data: FederatedData, model):
  """The :class:`Simulator` of a validated config (and the stacked data it uses)."""
  clock = clock_config(config)
  acfg = async_config(config)
  method = tailopt.get_method(config.method, **validate_lib.method_hparams(config))
  outer = None
  if config.asynchronous.outer == "delayed_nesterov":
    hp = method.hparams
    outer = A.delayed_nesterov(float(hp["outer_lr"]), float(hp["momentum"]),
                               config.asynchronous.outer_period or config.clients)
  steps = resolve_steps(config, clock, acfg)
  stacked = stack_clients(data)
  if len(data.clients) != config.clients:
    raise ConfigError(f"the task built {len(data.clients)} clients for config.clients="
                      f"{config.clients} workers; set --config.data_clients=0.")
  sim = A.Simulator(model.loss, method, make_data_fn(config.local_steps, config.batch_size),
                    clock=clock, config=acfg, num_steps=steps, outer=outer,
                    noise=train_lib.make_noise(config), devices=max(1, config.devices),
                    data=stacked)
  return sim


def eval_steps(config, sim) -> set:
  """Server steps (chunk ends) at which a run evaluates: every ``eval_every`` steps, the
  first chunk end at or past each multiple of ``eval_every_time`` simulated seconds, and
  the last step. A pure function of the config and the schedule (so resume agrees)."""
  t_all, ch = sim.num_steps, resolve_chunk(config)
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


# ---------------------------------------------------------------------------- outputs


class TimeAxisWriter:
  """TensorBoard events against simulated time: step = simulated milliseconds, event wall
  time = simulated seconds (TensorBoard's "relative" axis then reads simulated time)."""

  def __init__(self, directory: str):
    os.makedirs(directory, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.simtime.{os.getpid()}"
    self._f = open(os.path.join(directory, name), "ab")
    self._f.write(tfrecord(encode_event(0.0, 0, file_version="brain.Event:2")))

  def write(self, sim_time: float, metrics: dict):
    self._f.write(tfrecord(encode_event(float(sim_time), int(round(sim_time * 1000)),
                                        {k: float(v) for k, v in metrics.items()})))

  def close(self):
    self._f.flush()
    self._f.close()


def tau_report(sim) -> dict:
  """Staleness of every applied update over the whole horizon (known from the schedule)."""
  s = sim.schedule
  stats = sim.tau_stats()
  valid = s.arr["valid"].astype(bool)
  taus = (np.arange(s.num_steps)[:, None] - s.arr["pulled"])
  per_worker = {}
  for w in range(s.num_workers):
    t = taus[valid & (s.arr["worker"] == w)]
    per_worker[str(w)] = dict(updates=int(t.size), mean=float(t.mean()) if t.size else 0.0,
                              max=int(t.max(initial=0)),
                              step_time=float(s.step_times[w]),
                              local_steps=int(s.local_steps[w]))
  return dict(scheme=s.scheme, num_workers=s.num_workers, server_steps=s.num_steps,
              buffer_size=s.arrivals_per_step, sim_time=float(s.tick_time[-1]),
              updates=int(valid.sum()), computed_local_steps=s.computed_local_steps,
              max=stats["max"], mean=stats["mean"], histogram=stats["histogram"],
              per_worker=per_worker)


def plot_tau_histogram(rep: dict, path: str, title: str = ""):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  hist = np.asarray(rep["histogram"])
  fig, ax = plt.subplots(figsize=(5, 3.2))
  ax.bar(np.arange(len(hist)), hist, width=0.9, color="tab:blue")
  ax.set_xlabel("staleness tau (server versions)")
  ax.set_ylabel("applied updates")
  ax.set_title(title or f"{rep['scheme']}: tau max {rep['max']}, mean {rep['mean']:.2f}",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _rows(metrics: dict) -> list[dict]:
  """Per-server-step metric lines from one chunk's numpy metrics."""
  taus = np.asarray(metrics["taus"])
  valid = taus >= 0
  n = len(metrics["version"])
  keys = [k for k in ("loss", "scale", "applied", "num_updates", "weight_sum", "delta_norm",
                      "update_norm", "outer_clip_above", "outer_clip_below")
          if k in metrics]
  rows = []
  for i in range(n):
    t = taus[i][valid[i]]
    r = {"round": int(metrics["version"][i]), "time": float(metrics["time"][i])}
    r.update({f"train/{k}": float(metrics[k][i]) for k in keys})
    r["tau/max"] = float(t.max()) if t.size else 0.0
    r["tau/mean"] = float(t.mean()) if t.size else 0.0
    rows.append(r)
  return rows


def format_summary(s: dict) -> str:
  """The one-screen summary printed at the end of a run."""
  rows = [("workdir", s["workdir"]),
          ("server steps", f"{s['steps_done']} / {s['server_steps']}"
           + (f" (resumed from {s['resumed_from']})" if s["resumed_from"] else "")),
          ("simulated time", f"{s['sim_time']:.1f} s"),
          ("protocol", f"scheme={s['scheme']} N={s['workers']} K={s['buffer_size']} "
                       f"z={s['local_steps']}; rate={s['rate']}, comp={s['compensation']}"),
          ("clock", s["clock"]),
          ("staleness tau", f"max {s['tau']['max']}, mean {s['tau']['mean']:.2f}"),
          ("noise", s["noise"]),
          ("hyperparameters", ", ".join(f"{k}={v}" for k, v in s["hparams"].items())
           or "method defaults"),
          ("snapshot memory", f"{s['memory']['snapshot_bytes'] / 1e6:.3g} MB "
                              f"({s['memory']['snapshot_mode']}); in-flight Deltas "
                              f"{s['memory']['inflight_delta_bytes'] / 1e6:.3g} MB"),
          ("wall time", f"{s['wall_s']:.1f} s ({s['steps_per_s']:.1f} server steps/s)")]
  for k, v in s["final"].items():
    rows.append((f"final {k}", f"{v:.6g}"))
  if s.get("best") is not None:
    rows.append((f"best {s['report_metric']}",
                 f"{s['best']:.6g} at step {s['best_step']} (t = {s['best_time']:.1f} s)"))
  if s.get("target") is not None:
    ttt = s.get("time_to_target")
    rows.append((f"time to {s['report_metric']} {'<=' if s['report_mode'] == 'min' else '>='}"
                 f" {s['target']:g}", "not reached" if ttt is None else f"{ttt:.1f} s"))
  return train_lib.summary_box(f"tailopt async run: {s['label']} on {s['task']}"
                               f"{' (DIVERGED)' if s['diverged'] else ''}", rows, width=68)


def run_label(config) -> str:
  a = config.asynchronous
  if a.preset:
    return a.preset
  return f"{config.method}/{a.scheme}"


# ---------------------------------------------------------------------------- train


def train(config: config_dict.ConfigDict, workdir: str, *,
          on_chunk_end: Optional[Callable[[int, dict], None]] = None,
          quiet: bool = False) -> dict:
  """Runs (or resumes) one async experiment; returns the summary (also summary.json)."""
  validate(config, tasks_lib.TASKS)
  os.makedirs(workdir, exist_ok=True)
  data, model = tasks_lib.build_task(config)
  try:
    sim = build(config, data, model)
  except ValueError as e:
    if isinstance(e, ConfigError):
      raise
    raise ConfigError(f"config.asynchronous/clock: {e}") from None
  label = run_label(config)
  params = model.init(jax.random.key(config.seed))
  t_all = sim.num_steps
  chunk = resolve_chunk(config)
  evals = eval_steps(config, sim)
  sched_time = sim.schedule.tick_time

  cfg_dict = config.to_dict()
  fingerprint = ckpt_lib.config_fingerprint(
      {k: v for k, v in cfg_dict.items() if k not in _UNFINGERPRINTED}, ignore=())
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                               config.checkpoint_every, config.keep_checkpoints)
  start = 0
  if ckpt.latest_round() is not None:
    template = sim.state_dict_template(params)
    tree, record = ckpt.restore(template, fingerprint)
    if record.get("schedule") != sim.schedule.fingerprint:
      raise ckpt_lib.CheckpointError(
          f"checkpoint in {workdir}/checkpoints was written for schedule "
          f"{record.get('schedule')} but this config gives {sim.schedule.fingerprint}; use a "
          "fresh --workdir.")
    state = sim.load_state_dict(tree, record["sim"], params_like=params)
    start = int(record["round"])
  else:
    state = sim.init(params, seed=config.seed)
  del params

  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(cfg_dict, f, indent=2, default=str)
  tau = tau_report(sim)
  with open(os.path.join(workdir, "tau.json"), "w") as f:
    json.dump(tau, f, indent=1)
  if not os.path.exists(os.path.join(workdir, "tau_histogram.png")):
    plot_tau_histogram(tau, os.path.join(workdir, "tau_histogram.png"),
                       f"{label}: tau max {tau['max']}, mean {tau['mean']:.2f} "
                       f"({tau['updates']} updates)")

  writer = MetricWriter(workdir)
  writer.truncate_after(start)
  by_time = TimeAxisWriter(os.path.join(workdir, "by_time"))
  eval_fn = jax.jit(model.evaluate)
  sign = 1.0 if config.report_mode == "min" else -1.0
  target = config.target
  best = best_step = best_time = ttt = None

  def track(rec):
    nonlocal best, best_step, best_time, ttt
    v = rec.get(config.report_metric)
    if v is None or not math.isfinite(v):
      return
    if best is None or sign * v < sign * best:
      best, best_step, best_time = v, rec["round"], rec["time"]
    if target is not None and ttt is None and sign * v <= sign * target:
      ttt = rec["time"]

  if start:
    for rec in (json.loads(l) for l in open(writer.jsonl_path) if l.strip()):
      track(rec)

  bar = None if quiet else train_lib.progress_bar(config, t_all, start, label, unit="step")
  diverged = False
  last = {}
  t = start
  t0 = time.perf_counter()
  try:
    while t < t_all:
      n = min(chunk - t % chunk, t_all - t)
      state, metrics = sim.run(state, n)       # blocks on the chunk's results
      t += n
      rows = _rows(metrics)
      if t in evals:
        ev = train_lib.evaluate(eval_fn, state.params, data.test, config.eval_batch_size)
        rows[-1].update({f"eval/{k}": v for k, v in ev.items()})
      for r in rows:
        writer.write(r["round"], {k: v for k, v in r.items() if k != "round"})
        by_time.write(r["time"], {k: v for k, v in r.items() if k not in ("round", "time")})
        track(r)
      last.update(rows[-1])
      loss = np.asarray(metrics["loss"])
      if not np.all(np.isfinite(loss)) or not np.all(np.isfinite(metrics["delta_norm"])):
        diverged = True
      if bar is not None:
        bar.update(n)
        post = {"t": f"{rows[-1]['time']:.0f}s", "loss": f"{rows[-1]['train/loss']:.4g}",
                "tau": f"{rows[-1]['tau/mean']:.1f}"}
        if config.report_metric in rows[-1]:
          post[config.report_metric.split("/")[-1]] = f"{rows[-1][config.report_metric]:.4g}"
        bar.set_postfix(post)
      if diverged and config.stop_on_nan:
        break
      tree, meta = sim.state_dict(state)
      ckpt.save(t, tree, {"round": t, "sim_time": float(sched_time[t - 1]),
                          "fingerprint": fingerprint, "schedule": sim.schedule.fingerprint,
                          "sim": meta})
      if on_chunk_end is not None:
        on_chunk_end(t, rows[-1])
  finally:
    if bar is not None:
      bar.close()
    writer.close()
    by_time.close()
  wall = time.perf_counter() - t0
  if not diverged:
    diverged = not train_lib._finite_tree(state.params)  # noqa: SLF001
  tree, meta = sim.state_dict(state)
  ckpt.save(t, tree, {"round": t, "sim_time": float(sched_time[max(t, 1) - 1]),
                      "fingerprint": fingerprint, "schedule": sim.schedule.fingerprint,
                      "sim": meta}, force=True)
  ckpt.close()
  final = {k: v for k, v in last.items() if k.startswith("eval/") or k == "train/loss"}
  if diverged:
    final[config.report_metric] = math.inf * sign
  a = config.asynchronous
  ck = config.clock
  clock_desc = (f"{ck.speeds}" + (f" (p={ck.straggler_fraction}, S={ck.straggler_slowdown})"
                                  if ck.speeds == "stragglers" else "")
                + f", job noise {ck.job_noise}, latency {ck.comm_latency}")
  summary = dict(
      workdir=os.path.abspath(workdir), task=config.task, method=config.method, label=label,
      preset=a.preset, hparams=validate_lib.method_hparams(config), seed=config.seed,
      scheme=sim.config.scheme, workers=config.clients, buffer_size=sim.buffer_size,
      local_steps=config.local_steps, rate=a.rate.family, compensation=a.compensation.kind,
      clock=clock_desc, clock_config=sim.clock.to_dict(),
      noise=train_lib.describe_noise(config),
      server_steps=t_all, steps_done=t, resumed_from=start,
      finished=(t == t_all) or diverged, diverged=diverged,
      sim_time=float(sched_time[max(t, 1) - 1]), horizon_time=float(sched_time[-1]),
      tau=dict(max=tau["max"], mean=tau["mean"]),
      memory={k: v for k, v in sim.memory_report(state).items()
              if isinstance(v, (int, float, str))},
      wall_s=wall, steps_per_s=(t - start) / max(wall, 1e-9),
      report_metric=config.report_metric, report_mode=config.report_mode,
      best=None if diverged else best, best_step=None if diverged else best_step,
      best_time=None if diverged else best_time, target=target,
      time_to_target=None if diverged else ttt, final=final)
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2, default=float)
  if not quiet:
    print(format_summary(summary))
  return summary


def final_state(config, workdir: str):
  """The newest checkpointed simulator state of a run (``(SimState, record)``)."""
  data, model = tasks_lib.build_task(config)
  sim = build(config, data, model)
  params = model.init(jax.random.key(config.seed))
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), 0)
  try:
    if ckpt.latest_round() is None:
      raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints")
    tree, record = ckpt.restore(sim.state_dict_template(params))
  finally:
    ckpt.close()
  return sim.load_state_dict(tree, record["sim"], params_like=params), record
