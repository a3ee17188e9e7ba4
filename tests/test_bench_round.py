"""The round benchmark runs end to end on a tiny model and reports every column."""

import json
import subprocess
import sys

import pytest


def test_bench_round_smoke():
  cmd = [
    sys.executable,
    "-m",
    "experiments.bench_round",
    "--width=32",
    "--depth=2",
    "--batch=8",
    "--repeats=1",
    "--methods=fedavg,bi2clip",
    "--compressors=int8",
    "--mesh-model=2",
    "--init-clients=0",
    "--fused=0",
  ]
  res = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
  assert res.returncode == 0, res.stderr[-2000:]
  out = json.loads(res.stdout.strip().splitlines()[-1])
  assert out["bare_round_s"] > 0 and out["bare_average_s"] > 0 and out["data_parallel_s"] > 0
  for name in ("fedavg", "bi2clip"):
    r = out["methods"][name]
    assert r["ratio_to_bare_average"] == pytest.approx(r["median_round_s"] / out["bare_average_s"])
  unchecked = out["methods"]["bi2clip unchecked"]
  assert unchecked["node_state_bytes"] == out["methods"]["bi2clip"]["node_state_bytes"]
  assert set(out["compressed"]) == {"fedavg+int8"}
  assert out["compressed"]["fedavg+int8"]["bytes_ratio"] < 0.5
  assert out["mesh_2d"]["params_bytes_per_device"] < out["mesh_2d"]["params_bytes_per_device_1d"]
  assert "bare + average" in res.stdout
