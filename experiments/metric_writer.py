"""Metrics to JSON lines and to TensorBoard event files, without TensorFlow.

TensorBoard reads TFRecord files of ``Event`` protocol buffers. A scalar needs only a
handful of fields, so they are encoded here by hand (protobuf wire format) with the
TFRecord framing (length, masked CRC-32C of the length, payload, masked CRC-32C).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from typing import Mapping

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


def read_tfrecords(path: str) -> list[bytes]:
  """Reads back the payloads of a TFRecord file, checking both CRCs."""
  out = []
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    (n,) = struct.unpack("<Q", data[pos:pos + 8])
    (crc_len,) = struct.unpack("<I", data[pos + 8:pos + 12])
    if crc_len != _masked_crc(data[pos:pos + 8]):
      raise ValueError(f"{path}: corrupt record length at byte {pos}")
    payload = data[pos + 12:pos + 12 + n]
    (crc,) = struct.unpack("<I", data[pos + 12 + n:pos + 16 + n])
    if crc != _masked_crc(payload):
      raise ValueError(f"{path}: corrupt record payload at byte {pos}")
    out.append(payload)
    pos += 16 + n
  return out


class MetricWriter:
  """Writes ``{"round": t, **metrics}`` lines to ``metrics.jsonl`` and TensorBoard events."""

  def __init__(self, workdir: str, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if tensorboard:
      name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
      self._tb = open(os.path.join(workdir, name), "ab")
      self._tb.write(tfrecord(encode_event(time.time(), 0, file_version="brain.Event:2")))

  def truncate_after(self, round_index: int):
    """Drops lines past ``round_index`` (written by a run that was then interrupted)."""
    if not os.path.exists(self.jsonl_path):
      return
    with open(self.jsonl_path) as f:
      lines = [l for l in f if l.strip() and json.loads(l).get("round", 0) <= round_index]
    with open(self.jsonl_path, "w") as f:
      f.writelines(lines)

  def write(self, round_index: int, metrics: Mapping[str, float]):
    clean = {k: float(v) for k, v in metrics.items()}
    with open(self.jsonl_path, "a") as f:
      f.write(json.dumps({"round": int(round_index), **clean}) + "\n")
    if self._tb is not None:
      self._tb.write(tfrecord(encode_event(time.time(), int(round_index), clean)))
      self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(l) for l in f if l.strip()]
