import struct

from experiments import metric_writer as mw


def test_crc32c_known_vector():
  assert mw.crc32c(b"123456789") == 0xE3069283
  assert mw.crc32c(b"") == 0


def test_event_file_roundtrip(tmp_path):
  w = mw.MetricWriter(str(tmp_path))
  w.write(3, {"train/loss": 0.5})
  w.write(4, {"train/loss": 0.25, "eval/accuracy": 0.75})
  w.close()
  events = [f for f in tmp_path.iterdir() if f.name.startswith("events.out.tfevents")]
  records = mw.read_tfrecords(str(events[0]))
  assert len(records) == 3
  assert b"brain.Event:2" in records[0]
  # Step 3 is field 2 (varint) right after the 9-byte wall_time field.
  assert records[1][9:11] == bytes([0x10, 3])
  assert b"train/loss" in records[1] and struct.pack("<f", 0.5) in records[1]
  assert b"eval/accuracy" in records[2] and struct.pack("<f", 0.75) in records[2]
  w2 = mw.MetricWriter(str(tmp_path), tensorboard=False)
  w2.resume(3)
  assert [r["round"] for r in mw.read_jsonl(w2.jsonl_path)] == [3]


def test_corrupt_record_is_detected(tmp_path):
  p = tmp_path / "f"
  p.write_bytes(mw.tfrecord(b"hello")[:-1] + b"\x00")
  try:
    mw.read_tfrecords(str(p))
  except ValueError as e:
    assert "corrupt record payload" in str(e)
  else:
    raise AssertionError("corruption not detected")
