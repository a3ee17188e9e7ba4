"""The metrics log of a run: ``metrics.jsonl`` and TensorBoard event files.

:class:`MetricWriter` is the one writer of a run. Every row goes to ``metrics.jsonl``
(``{"round": t, **metrics}``, the record that sweeps and reports read back with
:func:`read_jsonl`) and to TensorBoard event files written by ``tensorboardX``.

Resume safety: :meth:`MetricWriter.resume` drops every ``metrics.jsonl`` line past the
restored position (and a torn last line left by a kill mid-write), so no row is ever
written twice. TensorBoard files are append-only; the writer opened on resume starts with
TensorBoard's own purge marker (``SessionLog.START`` at the first step written again), so
TensorBoard hides the events a killed run wrote past the restored position and shows each
step once. A torn last record of an earlier event file is skipped by TensorBoard's reader.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Optional

from experiments.rundir import atomic_write, disk_full_is_one_line

_EVENTS = "events.out.tfevents."


def read_jsonl(path: str) -> list[dict]:
  """The rows of a ``metrics.jsonl``; a torn last line (a kill mid-write) is ignored."""
  return _parse_jsonl(path)[0]


def _parse_jsonl(path: str) -> tuple[list[dict], bool]:
  """``(rows, torn)``: rows up to a torn last line. A corrupt line before the last one
  is a :class:`ValueError` naming the file and line."""
  with open(path) as f:
    lines = f.readlines()
  rows, torn = [], False
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      if i == len(lines) - 1:
        torn = True
        break
      raise ValueError(
        f"{path} line {i + 1} is not JSON; delete that line (or the run directory) and rerun."
      ) from None
  if lines and not lines[-1].endswith("\n") and not torn:
    torn = True  # a complete-looking last line without its newline: rewrite it whole
  return rows, torn


class _EventAxis:
  """One TensorBoard axis: a ``tensorboardX.SummaryWriter`` on ``directory``, opened on
  the first write (or on :meth:`purge_from`, when the directory already holds events)."""

  def __init__(self, directory: str, suffix: str = ""):
    self.directory = directory
    self._suffix = suffix
    self._purge_step = None
    self._w = None

  def _has_events(self) -> bool:
    return os.path.isdir(self.directory) and any(
      f.startswith(_EVENTS) for f in os.listdir(self.directory)
    )

  def purge_from(self, step: int) -> None:
    """TensorBoard hides the events at ``step`` and later written before now."""
    if self._has_events():
      self._purge_step = max(int(step), 0)
      self._open()

  def _open(self):
    if self._w is None:
      from tensorboardX import SummaryWriter

      os.makedirs(self.directory, exist_ok=True)
      # tensorboardX names files by the second and host only, and TensorBoard reads a
      # directory's files in name order: a counter keeps a resume within the same second
      # from overwriting the earlier file and keeps the files in the order written.
      n = sum(f.startswith(_EVENTS) for f in os.listdir(self.directory))
      self._w = SummaryWriter(
        self.directory,
        purge_step=self._purge_step,
        flush_secs=1,
        filename_suffix=f".{n:06d}{self._suffix}",
      )
    return self._w

  def scalars(
    self, step: int, scalars: Mapping[str, float], wall_time: Optional[float] = None
  ) -> None:
    """All ``scalars`` as one event (one event per row keeps the writer cheap)."""
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.summary import scalar

    summary = Summary(value=[v for k, x in scalars.items() for v in scalar(k, x).value])
    self._open().file_writer.add_summary(summary, int(step), wall_time)

  def histogram(self, tag: str, values, step: int) -> None:
    self._open().add_histogram(tag, values, int(step))

  def hparams(self, hparams: Mapping, metrics: Mapping[str, float]) -> None:
    self._open().add_hparams(dict(hparams), dict(metrics), name="hparams")

  def flush(self):
    if self._w is not None:
      self._w.flush()

  def close(self):
    if self._w is not None:
      self._w.close()
      self._w = None


class MetricWriter:
  """The one writer of a run: ``metrics.jsonl`` (``{"round": t, **metrics}``) and
  TensorBoard events against rounds/server steps in ``workdir``; with ``time_axis`` also
  events against simulated time in ``workdir/by_time`` (step = simulated milliseconds,
  event wall time = simulated seconds, so TensorBoard's "relative" axis reads simulated
  time)."""

  def __init__(self, workdir: str, tensorboard: bool = True, time_axis: bool = False):
    os.makedirs(workdir, exist_ok=True)
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    self._tb = _EventAxis(workdir) if tensorboard else None
    self._by_time = (
      _EventAxis(os.path.join(workdir, "by_time"), ".simtime")
      if tensorboard and time_axis
      else None
    )

  def resume(self, round_index: int) -> list[dict]:
    """Drops everything past ``round_index`` (written by a run that was then interrupted,
    including a torn last line) and returns the rows kept."""
    rows = []
    if os.path.exists(self.jsonl_path):
      rows, torn = _parse_jsonl(self.jsonl_path)
      kept = [r for r in rows if r.get("round", 0) <= round_index]
      if torn or len(kept) != len(rows):
        atomic_write(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in kept))
      rows = kept
    if self._tb is not None:
      self._tb.purge_from(round_index + 1)
    if self._by_time is not None:
      cut = max((r.get("time", 0.0) for r in rows), default=0.0)
      self._by_time.purge_from(int(round(cut * 1000)) + 1 if rows else 0)
    return rows

  def _append(self, line: str) -> None:
    with open(self.jsonl_path, "a") as f:
      f.write(line)

  def write(self, round_index: int, metrics: Mapping[str, float]):
    """Appends one row (a full disk is one :class:`~experiments.rundir.DiskFullError`)."""
    clean = {k: float(v) for k, v in metrics.items()}
    with disk_full_is_one_line(self.jsonl_path):
      self._append(json.dumps({"round": int(round_index), **clean}) + "\n")
    with disk_full_is_one_line(self._tb_dir()):
      if self._tb is not None:
        self._tb.scalars(int(round_index), clean)
      if self._by_time is not None and "time" in clean:
        t = clean["time"]
        self._by_time.scalars(
          int(round(t * 1000)), {k: v for k, v in clean.items() if k != "time"}, wall_time=t
        )

  def _tb_dir(self) -> str:
    return f"the TensorBoard files in {os.path.dirname(self.jsonl_path)}"

  def write_histogram(self, round_index: int, tag: str, values) -> None:
    """A histogram of ``values`` at ``round_index`` (TensorBoard only)."""
    if self._tb is not None:
      with disk_full_is_one_line(self._tb_dir()):
        self._tb.histogram(tag, values, round_index)

  def write_hparams(self, hparams: Mapping, metrics: Mapping[str, float]) -> None:
    """The run's hyperparameters and final metrics for TensorBoard's HParams dashboard."""
    if self._tb is not None:
      with disk_full_is_one_line(self._tb_dir()):
        self._tb.hparams(hparams, metrics)

  def flush(self):
    with disk_full_is_one_line(self._tb_dir()):
      for w in (self._tb, self._by_time):
        if w is not None:
          w.flush()

  def close(self):
    with disk_full_is_one_line(self._tb_dir()):
      for w in (self._tb, self._by_time):
        if w is not None:
          w.close()
