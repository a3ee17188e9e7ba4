"""The one config validator: every problem of a run's config, one line each, before anything
compiles. Synchronous (``mode`` absent or ``'sync'``) and asynchronous (``mode='async'``)
configs share the common checks; the async ones add the clock, protocol and cadence checks.
It only checks: what a config resolves to (the method's hyperparameters, the compressors, the
devices, the chunk) is built by ``experiments.engines.build``.

The user-error classes live in ``experiments.errors`` (re-exported here): anything a user
can cause raises a :class:`UserError` whose message is one line (per problem) naming the field
or file and the fix; ``experiments.main`` prints it without a traceback and exits with
status 2.
"""

from __future__ import annotations

import math
import re

import jax

import tailopt
from experiments.engines.build import (
  ignored_hparams,
  is_async,
  method_hparams,
  resolve_chunk,
  resolve_devices,
)
from experiments.errors import ConfigError, UserError  # noqa: F401 -- re-exported
from tailopt import timing
from tailopt.noise import DISTRIBUTIONS


def _compression_problems(config, add):
  cc = config.get("compression")
  if cc is None:
    return
  kinds = tailopt.compression.KINDS
  if cc.kind not in kinds:
    add(f"config.compression.kind={cc.kind!r} is unknown; use {', '.join(kinds)}.")
  if cc.down not in ("none", "int", "fp8"):
    add(f"config.compression.down={cc.down!r}; use none, int or fp8.")
  if cc.bits not in (2, 4, 8, 32):
    add(f"config.compression.bits={cc.bits}; use 2, 4, 8 or 32 (none).")
  if not isinstance(cc.block, int) or cc.block < 1 or cc.block % 4:
    add(f"config.compression.block={cc.block}; use a positive multiple of 4.")
  elif cc.kind == "sign" and cc.block % 8:
    add(
      f"config.compression.block={cc.block}; kind='sign' packs 8 signs a byte: use a multiple of 8."
    )
  if cc.error_feedback and cc.kind == "none":
    add(
      "config.compression.error_feedback=True has nothing to correct: config.compression."
      "kind='none' sends every update uncompressed; set --config.compression.kind=int (or "
      "fp8, fixed, topk, sign) or --config.compression.error_feedback=False."
    )
  _sparse_problems(cc, add)
  if cc.kind == "fixed" and cc.bits != 32:
    try:
      method = tailopt.get_method(config.method, **method_hparams(config))
    except ValueError:
      return  # reported with the method
    if tailopt.compression.biclip_delta_bound(method, config.local_steps) is None:
      add(
        "config.compression.kind='fixed' needs a BiClip inner with a constant rate and "
        "threshold (its range is z * inner_lr * inner_upper); config.method="
        f"{config.method!r} has none. Use kind='int'."
      )
  fragments = config.get("fragments") or 0
  if not isinstance(fragments, int) or fragments < 0:
    add(f"config.fragments={fragments!r}; use 0 (off) or F >= 1.")
  _overlap_problems(config, fragments, add)


def _overlap_problems(config, fragments, add):
  """``config.overlap``: overlapped streaming (tailopt.overlap)."""
  o = config.get("overlap")
  if o is None:
    return
  z = config.get("local_steps")
  if not isinstance(o.delay, int) or isinstance(o.delay, bool) or o.delay < 0:
    add(f"config.overlap.delay={o.delay!r} must be an integer >= 0 (inner steps).")
  elif isinstance(z, int) and o.delay > z:
    add(
      f"config.overlap.delay={o.delay} > config.local_steps={z}: the fragment must arrive "
      f"within the next round; use 0..{z}."
    )
  if not _number(o.alpha) or not 0.0 <= o.alpha <= 1.0:
    add(f"config.overlap.alpha={o.alpha!r} must be in [0, 1] (the global fragment's weight).")
  if (o.delay, o.alpha, o.eager) == (0, 1.0, False):
    return
  if is_async(config):
    add("config.overlap applies to synchronous streaming; remove it from an async config.")
  elif not fragments:
    add(
      "config.overlap is set but streaming is off; set --config.fragments=F (>= 1) or "
      "leave config.overlap at delay=0, alpha=1, eager=False."
    )
  elif config.get("participation"):
    add(
      "config.overlap needs every client in every round (a client left out would miss the "
      "merge); set --config.participation=0."
    )


def _sparse_problems(cc, add):
  """``config.compression.topk`` and ``ef_decay``: used only where they mean something."""
  k, decay = cc.get("topk", 0), cc.get("ef_decay", 1.0)
  if cc.kind == "topk":
    block = cc.block if isinstance(cc.block, int) and cc.block > 0 else None
    if not isinstance(k, int) or isinstance(k, bool) or k < 1 or (block and k > block):
      add(
        f"config.compression.topk={k!r}: kind='topk' keeps topk coordinates of every "
        f"config.compression.block={cc.block}; set --config.compression.topk to an integer "
        "in [1, block]."
      )
    elif cc.bits in (2, 4) and k % (8 // cc.bits):
      add(
        f"config.compression.topk={k} must be a multiple of {8 // cc.bits} to pack "
        f"{cc.bits}-bit values (config.compression.bits={cc.bits}); or use bits=8 or 32."
      )
  elif k:
    add(
      f"config.compression.topk={k!r} is only used with config.compression.kind='topk'; "
      "set --config.compression.topk=0 or --config.compression.kind=topk."
    )
  if not _number(decay) or not 0.0 <= decay <= 1.0:
    add(f"config.compression.ef_decay={decay!r} must be a number in [0, 1] (1 = plain EF).")
  elif decay != 1.0 and not cc.error_feedback:
    add(
      f"config.compression.ef_decay={decay} decays the error feedback, which is off; set "
      "--config.compression.error_feedback=True or ef_decay=1."
    )


def _rule_problems(config, add):
  """``config.optax_rules``: each set spec must resolve (a known rule or FILE.py:FUNCTION)."""
  rules = config.get("optax_rules")
  for level in ("inner", "outer"):
    spec = rules.get(level) if rules is not None else ""
    if spec:
      from experiments import optax_rules
      from experiments.errors import UserError

      try:
        optax_rules.resolve(spec, f"config.optax_rules.{level}")
      except UserError as e:
        add(str(e))


def _number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def problems(config, tasks=None) -> list[str]:
  """Every problem of ``config``, one line each (empty: valid)."""
  out: list[str] = []
  add = out.append
  asynchronous = is_async(config)

  def intf(field, lo):
    v = config.get(field)
    if not isinstance(v, int) or isinstance(v, bool):
      add(f"config.{field}={v!r} must be an integer; set e.g. --config.{field}={max(lo, 1)}.")
      return None
    if v < lo:
      add(f"config.{field}={v} must be >= {lo}; set --config.{field}={lo} or more.")
      return None
    return v

  if config.get("mode", "sync") not in ("sync", "async"):
    add(f"config.mode={config.get('mode')!r} is unknown; use 'sync' or 'async'.")
  if tasks is not None and config.task not in tasks:
    add(f"config.task={config.task!r} is unknown; choose one of {sorted(tasks)}.")
  ints = [
    ("clients", 1),
    ("local_steps", 1),
    ("batch_size", 1),
    ("eval_every", 0),
    ("checkpoint_every", 0),
    ("keep_checkpoints", 1),
    ("seed", 0),
    ("devices", 0),
    ("data_clients", 0),
    ("eval_batch_size", 1),
  ]
  ints += (
    [("server_steps", 1), ("chunk", 0)]
    if asynchronous
    else [("rounds", 0), ("participation", 0)] + [("chunk", 0)] * ("chunk" in config)
  )
  iv = {f: intf(f, lo) for f, lo in ints}
  n = iv["clients"]

  # Method hyperparameters.
  hp = method_hparams(config)
  bad_hp = False
  ignored = ignored_hparams(config)
  if ignored:
    try:
      used = ", ".join(tailopt.method_hyperparameters(config.method))
    except ValueError:
      used = "?"
    for k in ignored:
      add(
        f"config.hparams.{k} is set but config.method={config.method!r} does not use it; "
        f"remove the override. {config.method} uses: {used}."
      )
    bad_hp = True
  for k, v in hp.items():
    if k in ("inner_schedule", "bias_correction") or k in ignored:
      continue
    if not _number(v):
      add(f"config.hparams.{k}={v!r} must be a number.")
      bad_hp = True
    elif not math.isfinite(v):
      add(f"config.hparams.{k}={v} is not finite; use a finite number.")
      bad_hp = True
    elif k == "momentum" and not 0 <= v < 1:
      add(
        f"config.hparams.momentum={v} must be in [0, 1); momentum >= 1 makes the outer "
        "step diverge."
      )
      bad_hp = True
    elif k != "momentum" and not k.endswith("_exponent") and v < 0:
      add(f"config.hparams.{k}={v} is negative; use a value >= 0.")
      bad_hp = True
  for level in ("inner", "outer"):
    u, d = hp.get(f"{level}_upper"), hp.get(f"{level}_lower")
    if _number(u) and _number(d) and d > u:
      add(
        f"config.hparams.{level}_lower={d} > config.hparams.{level}_upper={u}: clipping "
        f"needs u >= d; lower {level}_lower or raise {level}_upper."
      )
      bad_hp = True
  if not bad_hp:
    try:
      tailopt.get_method(config.method, **hp)
    except ValueError as e:
      hint = ""
      if asynchronous:
        from tailopt import asynchronous as A

        if config.method in A.PRESETS:
          hint = (
            f" (baselines of prior work are config variants: "
            f"{', '.join(sorted(A.PRESETS))}, e.g. configs/async_synthetic.py:fedbuff)"
          )
      keys = "|".join(tailopt.default_hyperparameters())
      msg = re.sub(rf"\b({keys})(?==)", r"config.hparams.\1", str(e))
      if msg == str(e):
        msg = f"config.method={config.method!r}: {msg}"
      add(msg + hint)
  _compression_problems(config, add)
  _rule_problems(config, add)

  # Noise.
  nz = config.noise
  if nz.distribution not in ("none",) + DISTRIBUTIONS:
    add(
      f"config.noise.distribution={nz.distribution!r} is unknown; choose one of "
      f"{('none',) + DISTRIBUTIONS}."
    )
  elif nz.distribution != "none":
    if not _number(nz.scale) or not math.isfinite(nz.scale) or nz.scale < 0:
      add(f"config.noise.scale={nz.scale!r} must be a finite number >= 0.")
    if nz.distribution == "stable" and not 0 < nz.alpha <= 2:
      add(f"config.noise.alpha={nz.alpha} must be in (0, 2] for stable noise.")
    if nz.distribution == "pareto" and nz.alpha <= 0:
      add(f"config.noise.alpha={nz.alpha} must be > 0.")
    if nz.distribution == "student_t" and nz.df <= 0:
      add(f"config.noise.df={nz.df} must be > 0.")

  # Reporting.
  if config.report_mode not in ("min", "max"):
    add(f"config.report_mode={config.report_mode!r}; use 'min' or 'max'.")
  rm = config.report_metric
  if not isinstance(rm, str) or not rm.startswith(("eval/", "train/")):
    add(
      f"config.report_metric={rm!r} must name a logged metric, 'eval/<name>' or "
      "'train/<name>' (e.g. 'eval/loss')."
    )
  elif (
    rm.startswith("eval/")
    and iv["eval_every"] == 0
    and not (asynchronous and config.eval_every_time)
  ):
    add(
      f"config.report_metric={rm!r} is never logged: evaluation is off; set "
      "--config.eval_every to a positive cadence or report a 'train/' metric."
    )

  # Devices and clients.
  if isinstance(config.devices, int) and config.devices > jax.device_count():
    add(
      f"config.devices={config.devices} but only {jax.device_count()} devices exist; use "
      "--config.devices=0 (automatic) or fewer."
    )
  elif n and not asynchronous and isinstance(config.devices, int) and config.devices >= 0:
    m = config.get("mesh", {}).get("model", 1) if config.get("mesh") is not None else 1
    if not isinstance(m, int) or isinstance(m, bool) or m < 1:
      add(f"config.mesh.model={m!r} must be an integer >= 1 (devices per client group).")
    elif m > jax.device_count():
      add(
        f"config.mesh.model={m} but only {jax.device_count()} devices exist; use at most "
        f"{jax.device_count()}."
      )
    else:
      n_dev = resolve_devices(config)
      if n_dev % m:
        add(
          f"config.devices={n_dev} is not a multiple of config.mesh.model={m}; use a "
          f"multiple of {m} devices or --config.devices=0."
        )
      elif n % (n_dev // m) and m == 1:
        add(
          f"config.clients={n} is not divisible by config.devices={n_dev}; use a multiple "
          f"of {n_dev} clients or --config.devices=0 to pick a divisor."
        )
      elif n % (n_dev // m):
        add(
          f"config.clients={n} is not divisible by the {n_dev // m} client groups of "
          f"config.devices={n_dev} / config.mesh.model={m}; use a multiple of "
          f"{n_dev // m} clients or --config.devices=0 to pick a divisor."
        )
  if config.get("client_loop", "auto") not in ("auto", "vmap", "sequential"):
    add(
      f"config.client_loop={config.get('client_loop')!r} is unknown; use 'auto', 'vmap' or 'sequential'."
    )
  if config.get("shard_outer", "auto") not in ("auto", "on", "off"):
    add(f"config.shard_outer={config.get('shard_outer')!r} is unknown; use 'auto', 'on' or 'off'.")
  if n and not asynchronous and iv["participation"] and iv["participation"] > n:
    add(
      f"config.participation={iv['participation']} > config.clients={n}; sample at most "
      "that many (0 = all)."
    )
  if n and iv["data_clients"]:
    if asynchronous and iv["data_clients"] != n:
      add(
        f"config.data_clients={iv['data_clients']} != config.clients={n}: in async mode "
        "worker w trains on dataset client w; use --config.data_clients=0."
      )
    elif not asynchronous and iv["data_clients"] < n:
      add(
        f"config.data_clients={iv['data_clients']} < config.clients={n}; the dataset must "
        "have at least one client per slot."
      )
  _clock_problems(config, n, add)
  _network_problems(config, n, add)
  if asynchronous:
    _async_problems(config, iv, hp, add)
  return out


def _clock_problems(config, n, add) -> None:
  """``config.clock``: the workers' compute model of both engines (tailopt.timing)."""
  from tailopt import asynchronous as A

  ck = config.get("clock")
  if ck is None:
    return
  if ck.speeds not in A.SPEED_MODELS:
    add(f"config.clock.speeds={ck.speeds!r} is unknown; choose one of {A.SPEED_MODELS}.")
  if ck.job_noise not in A.JOB_NOISE:
    add(f"config.clock.job_noise={ck.job_noise!r} is unknown; choose one of {A.JOB_NOISE}.")
  if ck.step_times is not None:
    if ck.speeds != "fixed":
      add("config.clock.step_times is only used with config.clock.speeds='fixed'.")
    elif n and len(ck.step_times) != n:
      add(
        f"config.clock.step_times has {len(ck.step_times)} entries for config.clients="
        f"{n} workers; give one per worker."
      )
  if not 0.0 <= ck.straggler_fraction <= 1.0:
    add(f"config.clock.straggler_fraction={ck.straggler_fraction} must be in [0, 1].")
  if ck.straggler_slowdown < 1.0:
    add(
      f"config.clock.straggler_slowdown={ck.straggler_slowdown} must be >= 1 (how many "
      "times slower a straggler is)."
    )
  if ck.base_step_time <= 0:
    add(f"config.clock.base_step_time={ck.base_step_time} must be > 0.")
  for f in ("speed_sigma", "noise_sigma", "comm_latency"):
    if ck[f] < 0:
      add(f"config.clock.{f}={ck[f]} must be >= 0.")
  path = ck.get("replay", "")
  if path:
    try:
      got = timing.load_replay(path)
    except ValueError as e:
      add(f"config.clock.replay: {e}")
    else:
      missing = [w for w in range(n or 0) if w not in got]
      if missing:
        add(
          f"config.clock.replay={path!r} has no rows for workers {missing[:8]}; give "
          f"worker,job,seconds for each of the config.clients={n} workers."
        )


def _network_problems(config, n, add) -> None:
  """``config.network``: the simulated links (tailopt.timing.NetworkConfig)."""
  net = config.get("network")
  if net is None:
    return
  for f in ("bandwidth_gbps", "latency_ms", "server_step_s"):
    v = net.get(f)
    if not _number(v) or not math.isfinite(v) or v < 0:
      add(f"config.network.{f}={v!r} must be a finite number >= 0 (0 = free).")
  for f in ("uplink_gbps", "downlink_gbps"):
    v = net.get(f)
    if v is None:
      continue
    if not isinstance(v, (tuple, list)) or (n and len(v) != n):
      add(
        f"config.network.{f}={v!r} must give one Gb/s per client ({n} numbers), or be "
        "None (then config.network.bandwidth_gbps applies)."
      )
    elif any(not _number(x) or not math.isfinite(x) or x < 0 for x in v):
      add(f"config.network.{f}={v!r}: every entry must be a finite number >= 0 (0 = free).")


def _async_network_problems(config, add) -> None:
  """What the asynchronous clock cannot model: one latency for all workers, no server time."""
  net = config.get("network")
  if net is None:
    return
  for f in ("uplink_gbps", "downlink_gbps"):
    v = net.get(f)
    if isinstance(v, (tuple, list)) and len(set(v)) > 1:
      add(
        f"config.network.{f} differs between workers, which the asynchronous clock cannot "
        "model (one latency for all); use config.network.bandwidth_gbps."
      )
  if _number(net.get("server_step_s")) and net.server_step_s > 0:
    add(
      "config.network.server_step_s > 0 is not modeled by the asynchronous clock; set it "
      "to 0 (or run a synchronous config)."
    )


def _async_problems(config, iv, hp, add) -> None:
  from tailopt import asynchronous as A
  from configs.async_common import OUTERS

  n = iv["clients"]
  for f in ("time_budget", "eval_every_time"):
    v = config.get(f)
    if not _number(v) or not math.isfinite(v) or v < 0:
      add(f"config.{f}={v!r} must be a number >= 0 (simulated seconds; 0 = off).")
  # Cadences: multiples of the chunk.
  if all(iv.get(f) is not None for f in ("chunk", "eval_every", "checkpoint_every")):
    ch = resolve_chunk(config)
    for f in ("eval_every", "checkpoint_every"):
      v = config.get(f)
      if v > 0 and v % ch:
        add(
          f"config.{f}={v} is not a multiple of config.chunk={ch} (evaluation and "
          f"checkpoints happen at chunk ends); set --config.chunk to a divisor of {v}."
        )
  _async_network_problems(config, add)
  # Protocol.
  a = config.asynchronous
  scheme = {"a": "buffered", "b": "async"}.get(str(a.scheme).lower(), a.scheme)
  if scheme not in A.SCHEMES:
    add(
      f"config.asynchronous.scheme={a.scheme!r} is unknown; choose one of {A.SCHEMES} "
      "('buffered' = scheme A, 'async' = scheme B; 'A'/'B' also work)."
    )
  k = a.buffer_size
  if k is not None and (not isinstance(k, int) or k < 1):
    add(f"config.asynchronous.buffer_size={k!r} must be an integer >= 1 (K).")
  elif n and scheme in ("buffered", "drop", "quorum") and k is not None and k > n:
    add(
      f"config.asynchronous.buffer_size={k} > config.clients={n}: the server cannot wait "
      f"for more updates (K) than there are workers (N); use 1 <= K <= {n}."
    )
  if scheme == "deadline" and not (a.deadline and a.deadline > 0):
    add(
      "config.asynchronous.scheme='deadline' needs config.asynchronous.deadline > 0 "
      "(simulated seconds per round)."
    )
  choices = (
    ("rate.family", a.rate.family, A.FAMILIES),
    ("reduction", a.reduction, A.REDUCTIONS),
    ("scale_order", a.scale_order, ("after_outer", "before_outer")),
    ("weight_normalization", a.weight_normalization, ("count", "sum")),
    ("compensation.kind", a.compensation.kind, ("none", "constant", "adaptive")),
    ("compensation.order", a.compensation.order, ("compensate_then_clip", "clip_then_compensate")),
    ("pseudo_gradient", a.pseudo_gradient, ("delta", "model_diff")),
    ("snapshots", a.snapshots, ("auto", "ring", "per_job")),
    ("ties", a.ties, ("batch", "sequential")),
    ("outer", a.outer, OUTERS),
  )
  for name, v, allowed in choices:
    if v not in allowed:
      what = "delay-aware rate family" if name == "rate.family" else "value"
      add(f"config.asynchronous.{name}={v!r} is an unknown {what}; choose one of {tuple(allowed)}.")
  for f in ("a", "b", "tau_c", "tau_max"):
    v = a.rate[f]
    if v is not None and v < 0:
      add(f"config.asynchronous.rate.{f}={v} must be >= 0.")
  if not 0.0 <= a.compensation.momentum < 1.0:
    add(f"config.asynchronous.compensation.momentum={a.compensation.momentum} must be in [0, 1).")
  for f in ("lam", "lam0", "eps"):
    if a.compensation[f] < 0:
      add(f"config.asynchronous.compensation.{f}={a.compensation[f]} must be >= 0.")
  if not isinstance(a.outer_period, int) or a.outer_period < 0:
    add(f"config.asynchronous.outer_period={a.outer_period!r} must be an integer >= 0 (0 = N).")
  if a.preset and a.preset not in A.PRESETS:
    add(
      f"config.asynchronous.preset={a.preset!r} is unknown; use '' or one of "
      f"{tuple(sorted(A.PRESETS))}."
    )
  _membership_problems(config, scheme, n, add)


def _membership_problems(config, scheme, n, add) -> None:
  """Failures (``config.clock``), the quorum server and merging (``config.asynchronous``)."""
  from tailopt.asynchronous import server

  ck, a = config.clock, config.asynchronous
  for f in ("failure_rate", "rejoin_rate"):
    if not _number(ck[f]) or not ck[f] >= 0:
      add(f"config.clock.{f}={ck[f]!r} must be a number >= 0 (per simulated second).")
  if _number(ck.failure_rate) and ck.failure_rate > 0 and not ck.rejoin_rate > 0:
    add(
      f"config.clock.failure_rate={ck.failure_rate} needs config.clock.rejoin_rate > 0 "
      "(a failed worker must come back; mean down time = 1 / rejoin_rate)."
    )
  if not isinstance(a.min_quorum, int) or a.min_quorum < 1:
    add(f"config.asynchronous.min_quorum={a.min_quorum!r} must be an integer >= 1 (Q).")
  elif scheme == "quorum" and n and a.min_quorum > (a.buffer_size or n):
    add(
      f"config.asynchronous.min_quorum={a.min_quorum} > the cap K="
      f"{a.buffer_size or n} (config.asynchronous.buffer_size, default N); use Q <= K."
    )
  if not _number(a.grace_k) or not a.grace_k >= 0:
    add(f"config.asynchronous.grace_k={a.grace_k!r} must be a number >= 0.")
  if not isinstance(a.grace_window, int) or a.grace_window < 0:
    add(f"config.asynchronous.grace_window={a.grace_window!r} must be an integer >= 0 (0 = N).")
  if a.merge not in server.MERGES:
    add(f"config.asynchronous.merge={a.merge!r} is unknown; choose one of {server.MERGES}.")


def validate(config, tasks=None) -> None:
  """Raises :class:`ConfigError` listing every problem of the config, one line each."""
  found = problems(config, tasks)
  if found:
    raise ConfigError("\n".join(found))
