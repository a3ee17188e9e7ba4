"""The metrics log of a run: metrics.jsonl, and TensorBoard files read back by TensorBoard."""

import os

import numpy as np
import pytest

from _tensorboard_helpers import event_steps, tensorboard_scalars
from experiments import metrics_log as ml

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


def _event_files(directory):
  return [f for f in os.listdir(directory) if f.startswith("events.out.tfevents")]


def test_scalars_read_back_by_tensorboard(tmp_path):
  w = ml.MetricWriter(str(tmp_path))
  w.write(3, {"train/loss": 0.5})
  w.write(4, {"train/loss": 0.25, "eval/accuracy": 0.75})
  w.write(5, {"train/loss": np.float32(0.1), "eval/accuracy": 1 / 3})
  w.close()
  assert len(_event_files(tmp_path)) == 1
  got = tensorboard_scalars(tmp_path)
  assert set(got) == {"train/loss", "eval/accuracy"}
  assert [(s, v) for s, v, _ in got["train/loss"]] == [
    (3, 0.5),
    (4, 0.25),
    (5, float(np.float32(0.1))),
  ]
  assert [(s, v) for s, v, _ in got["eval/accuracy"]] == [(4, 0.75), (5, float(np.float32(1 / 3)))]
  rows = ml.read_jsonl(w.jsonl_path)
  assert rows[1] == {"round": 4, "train/loss": 0.25, "eval/accuracy": 0.75}
  w2 = ml.MetricWriter(str(tmp_path), tensorboard=False)
  w2.resume(3)
  assert [r["round"] for r in ml.read_jsonl(w2.jsonl_path)] == [3]
  assert len(_event_files(tmp_path)) == 1  # tensorboard=False writes no event file


def test_resume_hides_later_events_and_a_torn_tail(tmp_path):
  w = ml.MetricWriter(str(tmp_path))
  for t in range(1, 11):
    w.write(t, {"train/loss": float(t)})
  w.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"round": 11, "train/lo')  # killed mid-write
  with open(tmp_path / _event_files(tmp_path)[0], "ab") as f:
    f.write(b"\x05\x00\x00")  # a torn TensorBoard record
  w = ml.MetricWriter(str(tmp_path))
  assert [r["round"] for r in w.resume(8)] == list(range(1, 9))
  for t in range(9, 13):
    w.write(t, {"train/loss": 100.0 + t})
  w.close()
  assert [r["round"] for r in ml.read_jsonl(w.jsonl_path)] == list(range(1, 13))
  got = [(s, v) for s, v, _ in tensorboard_scalars(tmp_path)["train/loss"]]
  assert got == [(t, float(t)) for t in range(1, 9)] + [(t, 100.0 + t) for t in range(9, 13)]
  assert len(_event_files(tmp_path)) == 2


def test_time_axis_steps_are_simulated_milliseconds(tmp_path):
  w = ml.MetricWriter(str(tmp_path), time_axis=True)
  w.write(1, {"train/loss": 2.0, "time": 0.5})
  w.write(2, {"train/loss": 1.0, "time": 1.25})
  w.close()
  got = tensorboard_scalars(tmp_path / "by_time")
  assert set(got) == {"train/loss"}
  assert got["train/loss"] == [(500, 2.0, 0.5), (1250, 1.0, 1.25)]
  w = ml.MetricWriter(str(tmp_path), time_axis=True)
  w.resume(1)
  w.write(2, {"train/loss": 3.0, "time": 1.5})
  w.close()
  assert event_steps(tmp_path / "by_time") == [500, 1500]
  assert event_steps(tmp_path) == [1, 2]


def test_histograms_and_hparams(tmp_path):
  ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  w = ml.MetricWriter(str(tmp_path))
  w.write_histogram(5, "tau", np.array([0, 1, 1, 2, 7]))
  w.write_hparams({"method": "bi2clip", "inner_lr": 0.1}, {"best/accuracy": 0.9})
  w.close()
  acc = ea.EventAccumulator(str(tmp_path), size_guidance={ea.HISTOGRAMS: 0})
  acc.Reload()
  (h,) = acc.Histograms("tau")
  assert h.step == 5 and h.histogram_value.num == 5 and h.histogram_value.max == 7
  plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")
  hp = ea.EventAccumulator(str(tmp_path / "hparams"))
  hp.Reload()
  start = plugin_data_pb2.HParamsPluginData.FromString(
    hp.PluginTagToContent("hparams")["_hparams_/session_start_info"]
  ).session_start_info
  assert start.hparams["method"].string_value == "bi2clip"
  assert start.hparams["inner_lr"].number_value == 0.1
  assert [e.value for e in hp.Scalars("best/accuracy")] == [pytest.approx(0.9)]
