"""What a config resolves to, for both engines: the method's hyperparameters and the method,
the compressors, the injected gradient noise, the devices of the mesh and the steps per
dispatch. Pure functions of the config (nothing here validates: ``experiments.validate``
does, and calls these to check what they give).

    hp = method_hparams(config)          # the tuned point, overridden by config.hparams
    method = make_method(config)         # tailopt.get_method(config.method, **hp)
    up, down = compressors(config, method)
    noise = make_noise(config)           # tailopt.inject_noise(...) or None
    clock = sync_clock(config)           # tailopt.timing.SyncClock: sim_time of every round
"""

from __future__ import annotations

import jax
import numpy as np

import tailopt
from tailopt import timing
from tailopt.asynchronous.clock import ClockConfig


def method_hparams(config) -> dict:
  """The hyperparameters the run passes to ``tailopt.get_method``: the config's tuned
  point for its method (``config.tuned[method]``), overridden by ``config.hparams``
  (None = not set). Anything not given takes the method's default."""
  tuned = config.get("tuned") or {}
  point = tuned.get(config.method) or {}
  point = point.to_dict() if hasattr(point, "to_dict") else dict(point)
  point.update({k: v for k, v in config.hparams.to_dict().items() if v is not None})
  return point


def ignored_hparams(config) -> list:
  """``config.hparams`` fields set to a value that the config's method does not use."""
  set_ = [k for k, v in config.hparams.to_dict().items() if v is not None]
  try:
    used = set(tailopt.method_hyperparameters(config.method))
  except ValueError:
    return []
  return [k for k in set_ if k not in used]


def make_method(config) -> tailopt.Method:
  """The config's method at its hyperparameters (:func:`method_hparams`), its inner/outer
  replaced by ``config.optax_rules`` when set (:mod:`experiments.optax_rules`)."""
  method = tailopt.get_method(config.method, **method_hparams(config))
  rules = config.get("optax_rules")
  if rules is not None and (rules.get("inner") or rules.get("outer")):
    from experiments import optax_rules

    method = optax_rules.apply(method, rules, method.hparams)
  return method


def compressors(config, method):
  """(node compressor, broadcast compressor) from ``config.compression`` (None = off)."""
  cc = config.get("compression")
  if cc is None:
    return None, None
  bound = None
  if cc.kind == "fixed":
    bound = tailopt.compression.biclip_delta_bound(method, config.local_steps)
  up = tailopt.compression.make(
    cc.kind,
    bits=cc.bits,
    block=cc.block,
    stochastic=cc.stochastic,
    error_feedback_on=cc.error_feedback,
    bound=bound,
    topk=cc.get("topk", 0),
    ef_decay=cc.get("ef_decay", 1.0),
  )
  down = (
    None if cc.down == "none" else tailopt.compression.make(cc.down, bits=cc.bits, block=cc.block)
  )
  return up, down


def make_noise(config):
  """The heavy-tailed noise injected into every gradient (``config.noise``), or None."""
  n = config.noise
  if n.distribution == "none":
    return None
  return tailopt.inject_noise(
    n.distribution, n.scale, alpha=n.alpha, df=n.df, seed=config.seed + 17
  )


def is_async(config) -> bool:
  """Whether the config runs the asynchronous engine (``mode='async'``)."""
  return config.get("mode") == "async"


def model_axis_size(config) -> int:
  """Devices per client group (``config.mesh.model``; 1 without a mesh section)."""
  mesh = config.get("mesh")
  return int(mesh.get("model", 1) or 1) if mesh is not None else 1


def resolve_devices(config) -> int:
  """Devices of the run's mesh: ``config.devices``, or the most that hold whole client
  groups (``config.mesh.model`` devices each, a group count dividing ``clients``)."""
  n_avail = jax.device_count()
  if config.devices:
    return config.devices
  m = model_axis_size(config)
  groups = [g for g in range(1, n_avail // m + 1) if config.clients % g == 0]
  return m * max(groups) if groups else m


def resolve_chunk(config) -> int:
  """Steps per dispatch: synchronous runs ``chunk`` rounds (0 = the largest divisor of the
  eval/checkpoint cadences' gcd up to 25; chunks also end at evaluation and checkpoint
  rounds); async runs ``chunk`` server steps (0 = the gcd of the
  eval and checkpoint cadences, else 50)."""
  if not is_async(config):
    if config.get("chunk"):
      return int(config.chunk)
    # Auto: the largest divisor of the cadences' gcd up to 25 (one compiled scan length,
    # progress at least every 25 rounds).
    cad = [v for v in (config.eval_every, config.checkpoint_every) if v]
    g = int(np.gcd.reduce(cad)) if cad else 25
    return max(d for d in range(1, min(g, 25) + 1) if g % d == 0)
  if config.chunk:
    return int(config.chunk)
  cad = [v for v in (config.eval_every, config.checkpoint_every) if v]
  return int(np.gcd.reduce(cad)) if cad else 50


def clock_config(config) -> ClockConfig:
  """The workers' compute model of ``config.clock`` (N = ``config.clients``), with the
  measured seconds of ``config.clock.replay`` (a CSV) as its job times when given."""
  d = config.clock.to_dict()
  path = d.pop("replay", "")
  if d.get("step_times") is not None:
    d["step_times"] = tuple(float(x) for x in d["step_times"])
  clock = ClockConfig(num_workers=config.clients, **d)
  return timing.replayed(clock, timing.load_replay(path)) if path else clock


def network_config(config) -> timing.NetworkConfig:
  """The links of ``config.network`` (free when the config has none)."""
  net = config.get("network")
  if net is None:
    return timing.NetworkConfig()
  d = net.to_dict()
  for k in ("uplink_gbps", "downlink_gbps"):
    if isinstance(d.get(k), (list, tuple)):
      d[k] = tuple(float(x) for x in d[k])
  return timing.NetworkConfig(**d)


def overlap(config):
  """The :class:`tailopt.overlap.Overlap` of a streaming run (``config.overlap`` away from
  its plain-streaming default, with ``config.fragments``), or None."""
  from tailopt.overlap import Overlap

  o = config.get("overlap")
  if o is None or not config.get("fragments"):
    return None
  if (o.delay, float(o.alpha), bool(o.eager)) == (0, 1.0, False):
    return None
  return Overlap(delay=int(o.delay), alpha=float(o.alpha), eager=bool(o.eager))


def sync_clock(config) -> timing.SyncClock:
  """The simulated clock of a synchronous run: ``config.rounds`` rounds of the clock's
  workers (one per slot) and ``config.network``; overlapped streaming credits its delay."""
  ov = overlap(config)
  return timing.SyncClock(
    clock_config(config),
    network_config(config),
    config.local_steps,
    max(int(config.rounds), 1),
    delay=None if ov is None else ov.delay,
  )
