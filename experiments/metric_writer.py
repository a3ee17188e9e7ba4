"""Metrics to JSON lines and to TensorBoard event files, without TensorFlow.

TensorBoard reads TFRecord files of ``Event`` protocol buffers. A scalar needs only a
handful of fields, so they are encoded here by hand (protobuf wire format) with the
TFRecord framing (length, masked CRC-32C of the length, payload, masked CRC-32C). All of it
sits behind :class:`EventFile` (one TensorBoard axis) and :class:`MetricWriter` (the one
writer of a run), so the encoder can be swapped without touching the loop.

Resume safety: :meth:`MetricWriter.resume` drops every ``metrics.jsonl`` line and every
TensorBoard event past the restored position (and a torn last line or record left by a
kill mid-write), so no step is ever written twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import socket
import struct
import time
from typing import Callable, Mapping, Optional

_CRC_TABLE = []
for _i in range(256):
  _c = _i
  for _ in range(8):
    _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
  _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), as TFRecord uses."""
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  while True:
    b = n & 0x7F
    n >>= 7
    if n:
      out.append(b | 0x80)
    else:
      out.append(b)
      return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
  return _varint((num << 3) | wire) + payload


def _len_field(num: int, data: bytes) -> bytes:
  return _field(num, 2, _varint(len(data)) + data)


def encode_event(wall_time: float, step: int = 0, scalars: Mapping[str, float] = None,
                 file_version: str = None) -> bytes:
  """An ``Event`` proto: wall_time (1, double), step (2, int64), file_version (3),
  summary (5) of ``Summary.Value{tag (1), simple_value (2, float)}``."""
  out = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
  if file_version is not None:
    out += _len_field(3, file_version.encode())
  if scalars:
    values = b"".join(
        _len_field(1, _len_field(1, tag.encode()) + _field(2, 5, struct.pack("<f", v)))
        for tag, v in scalars.items())
    out += _len_field(5, values)
  return out


def tfrecord(payload: bytes) -> bytes:
  length = struct.pack("<Q", len(payload))
  return (length + struct.pack("<I", _masked_crc(length)) + payload
          + struct.pack("<I", _masked_crc(payload)))


def read_tfrecords(path: str, strict: bool = True) -> list[bytes]:
  """Reads back the payloads of a TFRecord file, checking both CRCs. With ``strict=False``
  a torn or corrupt tail (a kill mid-write) ends the file instead of raising."""
  out = []
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    try:
      (n,) = struct.unpack("<Q", data[pos:pos + 8])
      (crc_len,) = struct.unpack("<I", data[pos + 8:pos + 12])
      if crc_len != _masked_crc(data[pos:pos + 8]):
        raise ValueError(f"{path}: corrupt record length at byte {pos}")
      payload = data[pos + 12:pos + 12 + n]
      (crc,) = struct.unpack("<I", data[pos + 12 + n:pos + 16 + n])
      if crc != _masked_crc(payload):
        raise ValueError(f"{path}: corrupt record payload at byte {pos}")
    except (ValueError, struct.error):
      if strict:
        raise
      break
    out.append(payload)
    pos += 16 + n
  return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
  out, shift = 0, 0
  while True:
    b = data[pos]
    pos += 1
    out |= (b & 0x7F) << shift
    shift += 7
    if not b & 0x80:
      return out, pos


def event_step(payload: bytes) -> tuple[float, int]:
  """``(wall_time, step)`` of an encoded ``Event`` (fields 1 and 2; other fields skipped)."""
  pos, wall, step = 0, 0.0, 0
  while pos < len(payload):
    key, pos = _read_varint(payload, pos)
    num, wire = key >> 3, key & 7
    if wire == 0:
      v, pos = _read_varint(payload, pos)
      if num == 2:
        step = v
    elif wire == 1:
      if num == 1:
        (wall,) = struct.unpack("<d", payload[pos:pos + 8])
      pos += 8
    elif wire == 2:
      ln, pos = _read_varint(payload, pos)
      pos += ln
    elif wire == 5:
      pos += 4
    else:  # pragma: no cover - not written by any TensorBoard writer we know
      break
  return wall, step


def atomic_write(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and ``os.replace`` (never torn)."""
  d = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp.", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


class EventFile:
  """One TensorBoard axis in ``directory``: ``write(step, scalars, wall_time)``.

  ``purge(keep)`` rewrites the directory's earlier event files without the events for
  which ``keep(step)`` is false (and without a torn tail), so a resumed run never shows a
  step twice.
  """

  PREFIX = "events.out.tfevents."

  def __init__(self, directory: str, tag: str = ""):
    os.makedirs(directory, exist_ok=True)
    self.directory = directory
    self._tag = tag
    self._f = None

  def _files(self) -> list[str]:
    return sorted(os.path.join(self.directory, f) for f in os.listdir(self.directory)
                  if f.startswith(self.PREFIX))

  def purge(self, keep: Callable[[int], bool]) -> None:
    for path in self._files():
      records = read_tfrecords(path, strict=False)
      kept = [r for r in records if keep(event_step(r)[1]) or b"brain.Event" in r[:64]]
      if len(kept) == len(records) and os.path.getsize(path) == sum(16 + len(r)
                                                                     for r in records):
        continue
      tmp = path + ".purge"
      with open(tmp, "wb") as f:
        f.writelines(tfrecord(r) for r in kept)
      os.replace(tmp, path)

  def _open(self):
    name = (f"{self.PREFIX}{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
            f"{self._tag}")
    self._f = open(os.path.join(self.directory, name), "ab")
    self._f.write(tfrecord(encode_event(time.time(), 0, file_version="brain.Event:2")))

  def write(self, step: int, scalars: Mapping[str, float], wall_time: Optional[float] = None):
    if self._f is None:
      self._open()
    self._f.write(tfrecord(encode_event(time.time() if wall_time is None else wall_time,
                                        int(step), scalars)))

  def flush(self):
    if self._f is not None:
      self._f.flush()

  def close(self):
    if self._f is not None:
      self._f.close()
      self._f = None


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
      raise ValueError(f"{path} line {i + 1} is not JSON; delete that line (or the run "
                       "directory) and rerun.") from None
  if lines and not lines[-1].endswith("\n") and not torn:
    torn = True   # a complete-looking last line without its newline: rewrite it whole
  return rows, torn


class MetricWriter:
  """The one writer of a run: ``metrics.jsonl`` (``{"round": t, **metrics}``) and
  TensorBoard events against rounds/server steps in ``workdir``; with ``time_axis`` also
  events against simulated time in ``workdir/by_time`` (step = simulated milliseconds,
  event wall time = simulated seconds, so TensorBoard's "relative" axis reads simulated
  time)."""

  def __init__(self, workdir: str, tensorboard: bool = True, time_axis: bool = False):
    os.makedirs(workdir, exist_ok=True)
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    self._tb = EventFile(workdir) if tensorboard else None
    self._by_time = (EventFile(os.path.join(workdir, "by_time"), ".simtime")
                     if tensorboard and time_axis else None)

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
      self._tb.purge(lambda step: step <= round_index)
    if self._by_time is not None:
      cut = max((r.get("time", 0.0) for r in rows), default=0.0)
      ms = int(round(cut * 1000))
      self._by_time.purge(lambda step: step <= ms if rows else False)
    return rows

  def write(self, round_index: int, metrics: Mapping[str, float]):
    clean = {k: float(v) for k, v in metrics.items()}
    with open(self.jsonl_path, "a") as f:
      f.write(json.dumps({"round": int(round_index), **clean}) + "\n")
    if self._tb is not None:
      self._tb.write(int(round_index), clean)
      self._tb.flush()
    if self._by_time is not None and "time" in clean:
      t = clean["time"]
      self._by_time.write(int(round(t * 1000)),
                          {k: v for k, v in clean.items() if k != "time"}, wall_time=t)

  def close(self):
    for w in (self._tb, self._by_time):
      if w is not None:
        w.close()
