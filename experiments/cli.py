"""Config files and command lines, shared by ``experiments.main`` and ``experiments.sweep``.

* :func:`load_config`: ``configs/x.py[:variant]`` -> ConfigDict (a missing file or an
  unknown variant is one :class:`UserError` line);
* :func:`set_field` / :func:`parse_assignment`: ``--config.a.b=value`` overrides and sweep
  grids (an unknown field or a value of the wrong type is one line);
* :func:`run_cli`: runs a command so that every user error prints one line and exits 2
  (the traceback only with ``--debug``), and SIGINT/SIGTERM exit 0 with how to resume.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import sys
import traceback

from experiments.errors import ConfigError, UserError


OVERRIDE_HELP = """\
Any config field can be set on the command line: --config.<field>=<value> (dotted for
nested fields; a value is a Python literal, true/false, or a word). A config file takes
variants after a colon. For example:

  {prog} --config configs/synthetic.py:runlocal --workdir /tmp/run \\
      --config.method=bi2clip --config.rounds=20 --config.noise.alpha=1.1

Rerunning the same command resumes the run in --workdir. Outputs: <workdir>/metrics.jsonl,
summary.json and TensorBoard events (tensorboard --logdir <workdir>)."""


def parse_value(text: str):
  t = text.strip()
  if t.lower() in ("true", "false"):
    return t.lower() == "true"
  if t.lower().lstrip("+-") in ("nan", "inf", "infinity"):
    return float(t)
  try:
    return ast.literal_eval(t)
  except (ValueError, SyntaxError):
    return t


def parse_assignment(spec: str) -> tuple[str, list]:
  """``"a.b=1,2"`` -> ("a.b", [1, 2])."""
  if "=" not in spec:
    raise ConfigError(f"{spec!r} must look like field=value[,value...]")
  field, values = spec.split("=", 1)
  return field.strip(), [parse_value(v) for v in values.split(",")]


def set_field(config, field: str, value):
  """``config.<field> = value`` for a dotted field that must exist (one-line errors)."""
  node = config
  *path, last = field.split(".")
  for i, p in enumerate(path):
    if not hasattr(node, "keys") or p not in node:
      prefix = ".".join(path[:i])
      raise ConfigError(
        f"config has no field {'.'.join(path[: i + 1])!r} (in --config.{field})"
        f"{_did_you_mean(node, p, prefix)}; check the spelling against the config file."
      )
    node = node[p]
  if not hasattr(node, "keys") or last not in node:
    near = sorted(k for k in node.keys()) if hasattr(node, "keys") else []
    hint = _did_you_mean(node, last, ".".join(path))
    raise ConfigError(f"config has no field {field!r}{hint}; fields here: {', '.join(near[:30])}.")
  old = node[last]
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if isinstance(old, tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    node[last] = value
  except (TypeError, ValueError) as e:
    del e
    try:
      kind = node.get_ref(last).get_type().__name__
    except Exception:  # noqa: BLE001 - not a reference: use the current value's type
      kind = type(old).__name__
    example = f", e.g. --config.{field}={old!r}" if old is not None else ""
    raise ConfigError(
      f"config.{field}={value!r} has the wrong type; it must be of type {kind}{example}."
    ) from None


def _did_you_mean(node, name: str, prefix: str) -> str:
  """``" (did you mean 'a.b'?)"`` for the closest field of ``node`` to ``name``, or ""."""
  keys = [str(k) for k in node.keys()] if hasattr(node, "keys") else []
  close = difflib.get_close_matches(name, keys, n=1, cutoff=0.6)
  if not close:
    return ""
  return f" (did you mean {'.'.join(filter(None, [prefix, close[0]]))!r}?)"


def load_config(spec: str, overrides=()):
  """The config of ``path[:variant]`` with ``overrides`` (``"field=value"``) applied."""
  from configs.common import load

  try:
    config = load(spec)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  for spec_ in overrides:
    field, values = parse_assignment(spec_)
    set_field(config, field, values[0] if len(values) == 1 else values)
  return config


def split_config_overrides(argv):
  """Pulls ``--config.field=value`` (or ``--config.field value``) out of ``argv``."""
  rest, overrides = [], []
  it = iter(argv)
  for a in it:
    if a.startswith("--config.") and len(a) > len("--config."):
      body = a[len("--config.") :]
      if "=" not in body:
        body = f"{body}={next(it, '')}"
      overrides.append(body)
    else:
      rest.append(a)
  return rest, overrides


class ArgumentParser(argparse.ArgumentParser):
  """argparse with one-line errors (exit 2, no usage block)."""

  def error(self, message):
    print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
    sys.exit(2)


def run_cli(fn, debug: bool) -> int:
  """Runs ``fn()``: a :class:`UserError` (or data that cannot be had) prints one line (a
  config: one per problem) and returns 2; an interrupted run prints how to resume and
  returns 0."""
  from experiments.rundir import RunInterrupted
  from experiments.data.fetch import MissingArtifactError
  from experiments.data.tfds_sources import DatasetUnavailableError

  try:
    fn()
  except RunInterrupted as e:
    print(str(e), file=sys.stderr)
    return 0
  except (UserError, MissingArtifactError, DatasetUnavailableError) as e:
    if debug:
      traceback.print_exc()
    text = str(e).strip() or type(e).__name__
    # A config lists one problem per line; anything else is one line.
    lines = text.splitlines() if isinstance(e, ConfigError) else [" ".join(text.split())]
    for line in lines:
      print(f"error: {line}", file=sys.stderr)
    return 2
  return 0
