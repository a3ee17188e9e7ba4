"""The async benchmark runs end to end on a tiny setting and reports every figure."""

import json
import subprocess
import sys

import numpy as np
import pytest

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


def test_bench_async_quick():
  cmd = [sys.executable, "-m", "experiments.bench_async", "--quick"]
  res = subprocess.run(cmd, capture_output=True, text=True, timeout=500)
  assert res.returncode == 0, res.stderr[-2000:]
  out = json.loads(res.stdout.strip().splitlines()[-1])
  assert "load average before the timings" in res.stdout and len(out["load_average_before"]) == 3
  # The bucketed plan computes no padding on one device; the padded one does for K > 1.
  assert all(v["bucketed"] == 1.0 for v in out["utilisation"].values())
  assert out["utilisation"]["16"]["padded"] < 0.5
  # Paired ratios: recomputed from the per-repeat samples of the same repeats.
  t = {k: np.asarray(v) for k, v in out["samples_s"].items()}
  assert all(len(v) == out["repeats"] == 2 for v in t.values())
  for name, r in out["async_over_sync"].items():
    ratios = t[name] / t["sync"]
    assert r["median"] == pytest.approx(float(np.median(ratios)))
    assert r["range"] == pytest.approx([float(ratios.min()), float(ratios.max())])
  thr = out["jobs_per_s"]["bucketed"]
  jobs1, jobs16 = thr["1"]["jobs"], thr["16"]["jobs"]
  r = (t["thr 1 bucketed"] / jobs1) / (t["thr 16 bucketed"] / jobs16)
  assert thr["16"]["vs_k1"]["median"] == pytest.approx(float(np.median(r)))
