"""Who writes a run's files, and the code versions it ran under (``code.json``).

Every process computes and takes part in checkpoints (orbax, multi-host); process 0 alone
writes the run directory's other files (metrics, summaries, logs).
"""

from __future__ import annotations

import json
import os

import jax

from experiments import provenance
from experiments.metrics_log import MetricWriter, read_jsonl
from experiments.rundir import atomic_write


def is_primary() -> bool:
  """Process 0 writes the run directory's files (metrics, summaries, logs); every
  process computes, and all of them take part in checkpoints (orbax, multi-host)."""
  return jax.process_index() == 0


class FollowerWriter:
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


def metric_writer(workdir: str, time_axis: bool):
  """This process's metric writer: a :class:`MetricWriter` on process 0, else a
  :class:`FollowerWriter`."""
  return MetricWriter(workdir, time_axis=time_axis) if is_primary() else FollowerWriter(workdir)


def record_code(workdir: str, resumed: bool) -> list:
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


def code_versions(workdir: str) -> list:
  """The code versions ``code.json`` records (unknown when it cannot be read)."""
  try:
    return json.load(open(os.path.join(workdir, "code.json")))
  except (OSError, json.JSONDecodeError):
    return [{"commit": None, "dirty": None}]
