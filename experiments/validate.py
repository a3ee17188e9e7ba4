"""Checks a run's config before anything compiles; one clear line per problem."""

from __future__ import annotations

import re

import jax

import tailopt
from tailopt.noise import DISTRIBUTIONS


class ConfigError(ValueError):
  """A config field is wrong. The message names the field and the fix."""


def _int(config, field, lo=None):
  v = config.get(field)
  if not isinstance(v, int) or isinstance(v, bool):
    raise ConfigError(f"config.{field}={v!r} must be an integer; set e.g. "
                      f"--config.{field}={lo if lo is not None else 1}.")
  if lo is not None and v < lo:
    raise ConfigError(f"config.{field}={v} must be >= {lo}; set --config.{field}={lo} or more.")
  return v


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


def compressors(config, method):
  """(node compressor, broadcast compressor) from ``config.compression`` (None = off)."""
  cc = config.get("compression")
  if cc is None:
    return None, None
  bound = None
  if cc.kind == "fixed":
    bound = tailopt.compression.biclip_delta_bound(method, config.local_steps)
  up = tailopt.compression.make(cc.kind, bits=cc.bits, block=cc.block,
                                stochastic=cc.stochastic, error_feedback_on=cc.error_feedback,
                                bound=bound)
  down = None if cc.down == "none" else tailopt.compression.make(
      cc.down, bits=cc.bits, block=cc.block)
  return up, down


def _check_compression(config):
  cc = config.get("compression")
  if cc is None:
    return
  if cc.kind not in ("none", "int", "fp8", "fixed", "fp32"):
    raise ConfigError(f"config.compression.kind={cc.kind!r} is unknown; use none, int, fp8, "
                      "fixed or fp32.")
  if cc.down not in ("none", "int", "fp8"):
    raise ConfigError(f"config.compression.down={cc.down!r}; use none, int or fp8.")
  if cc.bits not in (2, 4, 8, 32):
    raise ConfigError(f"config.compression.bits={cc.bits}; use 2, 4, 8 or 32 (none).")
  if not isinstance(cc.block, int) or cc.block < 1 or cc.block % 4:
    raise ConfigError(f"config.compression.block={cc.block}; use a positive multiple of 4.")
  if cc.kind == "fixed" and cc.bits != 32:
    method = tailopt.get_method(config.method, **method_hparams(config))
    if tailopt.compression.biclip_delta_bound(method, config.local_steps) is None:
      raise ConfigError(
          "config.compression.kind='fixed' needs a BiClip inner with a constant rate and "
          f"threshold (its range is z * inner_lr * inner_upper); config.method="
          f"{config.method!r} has none. Use kind='int'.")
  fragments = config.get("fragments") or 0
  if not isinstance(fragments, int) or fragments < 0:
    raise ConfigError(f"config.fragments={fragments!r}; use 0 (off) or F >= 1.")


def resolve_devices(config) -> int:
  n_avail = jax.device_count()
  if config.devices:
    return config.devices
  return max(d for d in range(1, n_avail + 1) if config.clients % d == 0)


def validate(config, tasks=None) -> None:
  """Raises :class:`ConfigError` for the first problem found."""
  if tasks is not None and config.task not in tasks:
    raise ConfigError(f"config.task={config.task!r} is unknown; choose one of "
                      f"{sorted(tasks)}.")
  for f, lo in (("clients", 1), ("local_steps", 1), ("batch_size", 1), ("rounds", 0),
                ("eval_every", 0), ("checkpoint_every", 0), ("seed", 0), ("devices", 0),
                ("participation", 0), ("data_clients", 0), ("eval_batch_size", 1)):
    _int(config, f, lo)
  ignored = ignored_hparams(config)
  if ignored:
    used = ", ".join(tailopt.method_hyperparameters(config.method))
    raise ConfigError(
        f"config.hparams.{ignored[0]} is set but config.method={config.method!r} does not "
        f"use it{' (nor ' + ', '.join(ignored[1:]) + ')' if ignored[1:] else ''}; remove "
        f"the override. {config.method} uses: {used}.")
  hp = method_hparams(config)
  for k, v in hp.items():
    if k in ("inner_schedule", "bias_correction"):
      continue
    if not isinstance(v, (int, float)) or isinstance(v, bool):
      raise ConfigError(f"config.hparams.{k}={v!r} must be a number.")
  try:
    tailopt.get_method(config.method, **hp)
  except ValueError as e:
    keys = "|".join(tailopt.default_hyperparameters())
    msg = re.sub(rf"\b({keys})(?==)", r"config.hparams.\1", str(e))
    if msg == str(e):
      msg = f"config.method={config.method!r}: {msg}"
    raise ConfigError(msg) from None
  _check_compression(config)
  if config.noise.distribution not in ("none",) + DISTRIBUTIONS:
    raise ConfigError(f"config.noise.distribution={config.noise.distribution!r} is unknown; "
                      f"choose one of {('none',) + DISTRIBUTIONS}.")
  if config.noise.distribution == "stable" and not 0 < config.noise.alpha <= 2:
    raise ConfigError(f"config.noise.alpha={config.noise.alpha} must be in (0, 2] for "
                      "stable noise.")
  if config.noise.distribution in ("pareto",) and config.noise.alpha <= 0:
    raise ConfigError(f"config.noise.alpha={config.noise.alpha} must be > 0.")
  if config.noise.distribution == "student_t" and config.noise.df <= 0:
    raise ConfigError(f"config.noise.df={config.noise.df} must be > 0.")
  n_avail = jax.device_count()
  if config.devices > n_avail:
    raise ConfigError(f"config.devices={config.devices} but only {n_avail} devices exist; "
                      "use --config.devices=0 (automatic) or fewer.")
  n_dev = resolve_devices(config)
  if config.clients % n_dev:
    raise ConfigError(
        f"config.clients={config.clients} is not divisible by config.devices={n_dev}; use a "
        f"multiple of {n_dev} clients or --config.devices=0 to pick a divisor.")
  if config.participation > config.clients:
    raise ConfigError(f"config.participation={config.participation} > config.clients="
                      f"{config.clients}; sample at most that many (0 = all).")
  if config.data_clients and config.data_clients < config.clients:
    raise ConfigError(f"config.data_clients={config.data_clients} < config.clients="
                      f"{config.clients}; the dataset must have at least one client per slot.")
  if config.report_mode not in ("min", "max"):
    raise ConfigError(f"config.report_mode={config.report_mode!r}; use 'min' or 'max'.")
