"""experiments.tail_index: per-coordinate tail index of gradients and pseudo-gradients."""

import json
import os

import numpy as np
import pytest

from experiments import tail_index
from tailopt import noise

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

INJECTED = "synthetic_injected_a1.5"


def test_estimate_is_blind_to_coordinate_scales():
  # Gaussian noise (alpha = 2) whose coordinate scales span four decades, uncentred (a
  # mean per coordinate). Pooling the coordinates (the old measurement) reads ~1.0 here.
  rng = np.random.default_rng(0)
  scales = 10.0 ** rng.uniform(-3, 1, 3000)
  x = rng.normal(size=(32, 3000)) * scales + rng.normal(size=3000) * 5 * scales
  est = tail_index.estimate(x)
  assert est["coords"] == est["coords_used"] == 3000
  assert est["stable_alpha"] >= 1.9 and est["stable_alpha_orderings"]["p10"] >= 1.9
  assert est["hill_alpha"] > 2.0  # light tails
  # A group of zeros (no noise) gets no estimate; all params still read the rest.
  s = tail_index.summarise([("a", x[:, :2000]), ("b", x[:, 2000:]), ("zero", np.zeros((32, 100)))])
  assert s["groups"]["zero"]["stable_alpha"] is None
  assert s["overall"]["coords"] == 3100 and s["overall"]["coords_used"] == 3000
  assert s["overall"]["stable_alpha"] >= 1.9
  assert s["groups_counted"] == 2 and s["groups_below_1.8"] == 0  # groups of >= 1,000 coords


@pytest.mark.slow  # ~30 s of CPU (compiles, 16 + 80 gradients); 45-100 s on a loaded 2-core box
def test_synthetic_injected_alpha_is_recovered(tmp_path):
  out = tail_index.main(["--out", str(tmp_path), "--families", INJECTED, "--batches", "16"])
  assert os.path.exists(tmp_path / "tail_index.png")
  assert json.load(open(tmp_path / "tail_index.json")) == out
  r = out[INJECTED]
  assert r["num_params"] == 8074 and r["num_batches"] == 16
  pg = r["pseudo_gradient"]
  assert (pg["local_steps"], pg["lr"]) == (5, 0.001)  # synthetic.py's z and tuned fedavg lr
  assert pg["lr_source"] == "config.tuned['fedavg']['inner_lr']"
  for key in ("gradients", "pseudo_gradients"):
    s = r[key]
    assert s["overall"]["coords"] == 8074
    assert set(s["groups"]) and all(g["stable_alpha"] is not None for g in s["groups"].values())
    assert s["groups_counted"] == 2  # the two weight matrices of >= 1,000 coordinates
    assert 0 < s["lowest_group_alpha"] <= 2 and 0 < s["overall"]["hill_alpha"]
  o = r["gradients"]["overall"]
  assert o["stable_alpha"] == pytest.approx(1.5, abs=0.15)
  assert tail_index.headline(o) == pytest.approx(1.5, abs=0.15)  # median over orderings
  q = o["stable_alpha_orderings"]
  assert q["n"] == 16 and q["p10"] <= q["median"] <= q["p90"]


def test_pooled_estimator_fails_the_scale_check():
  # The check above can fail: the old pooled measurement (centre, ravel, permute) on the same
  # kind of draws reads far below 2.
  rng = np.random.default_rng(0)
  scales = 10.0 ** rng.uniform(-3, 1, 3000)
  x = rng.normal(size=(32, 3000)) * scales
  pooled = rng.permutation((x - x.mean(0)).ravel())
  assert float(noise.stable_tail_index(pooled)) < 1.5  # reads 0.97


def test_pseudo_gradients_use_the_study_kept_fedavg_point(tmp_path):
  """A family with a study takes its pseudo-gradients' lr and z from that study's kept
  FedAvg point; a study without one is a one-line error naming its sweep.json."""
  ti = tail_index

  sweep = {
    "config": {"local_steps": 3},
    "methods": {"fedavg": {"best_point": {"hparams.inner_lr": 0.25}}},
  }
  (tmp_path / "sweep.json").write_text(json.dumps(sweep))
  lr, z, source = ti.study_fedavg_point(str(tmp_path))
  assert (lr, z) == (0.25, 3) and source.startswith(str(tmp_path / "sweep.json"))
  # the committed movie-reviews study kept FedAvg at lr 0.1 with z = 2 (its config: 0.01, 8)
  c = ti._config("movie_reviews_minilm")
  where = "experiments/results/real/movie_reviews/sweep.json: kept fedavg point"
  assert ti.pseudo_lr(c) == (0.1, where) and c.local_steps == 2
  del sweep["methods"]["fedavg"]
  (tmp_path / "sweep.json").write_text(json.dumps(sweep))
  with pytest.raises(SystemExit, match="no kept FedAvg point") as e:
    ti.study_fedavg_point(str(tmp_path))
  assert "\n" not in str(e.value)
