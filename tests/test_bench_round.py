"""The round benchmark runs end to end on a tiny model and reports every column."""

import json
import subprocess
import sys

import numpy as np
import pytest

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


def test_bench_round_smoke():
  cmd = [
    sys.executable,
    "-m",
    "experiments.bench_round",
    "--width=32",
    "--depth=2",
    "--batch=8",
    "--repeats=2",
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
  assert out["data_parallel_gspmd_s"] > 0
  # The two data-parallel loops (shard_map, GSPMD) do the same arithmetic.
  assert out["data_parallel_max_abs_diff"] < 1e-4
  assert len(out["load_average_before"]) == 3 and "load average before the timings" in res.stdout
  # Every ratio is paired: the median of the per-repeat ratios of timings of the same repeat.
  t = {k: np.asarray(v) for k, v in out["samples_s"].items()}
  assert all(len(v) == out["repeats"] == 2 for v in t.values())
  refs = {
    "fedavg": "fedavg",
    "bare": "bare",
    "bare_average": "bare + average",
    "data_parallel": "data parallel",
    "data_parallel_gspmd": "data parallel (GSPMD)",
    "naive_loop": "naive loop",
  }
  for name in ("fedavg", "bi2clip"):
    r = out["methods"][name]
    for key, ref in refs.items():
      ratios = t[name] / t[ref]
      assert r[f"ratio_to_{key}"] == pytest.approx(float(np.median(ratios)))
      assert r[f"ratio_to_{key}_range"] == pytest.approx([ratios.min(), ratios.max()])
  assert set(out["baselines"]) == {
    "bare",
    "bare + average",
    "data parallel",
    "data parallel (GSPMD)",
    "naive loop",
  }
  assert out["baselines"]["data parallel"]["ratio_to_data_parallel"] == 1.0
  assert "/DP-GSPMD" in res.stdout and "data parallel (GSPMD)" in res.stdout
  unchecked = out["methods"]["bi2clip unchecked"]
  assert unchecked["node_state_bytes"] == out["methods"]["bi2clip"]["node_state_bytes"]
  assert set(out["compressed"]) == {"fedavg+int8"}
  assert out["compressed"]["fedavg+int8"]["bytes_ratio"] < 0.5
  ratios = t["fedavg+int8"] / t["fedavg"]
  assert out["compressed"]["fedavg+int8"]["ratio_to_uncompressed"] == pytest.approx(
    float(np.median(ratios))
  )
  assert out["mesh_2d"]["params_bytes_per_device"] < out["mesh_2d"]["params_bytes_per_device_1d"]
  assert "bare + average" in res.stdout
