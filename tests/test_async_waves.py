"""Wave plans: pieces of power-of-two widths, no computed padding, same numbers as padded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tailopt
from tailopt import asynchronous as A
from tailopt.asynchronous import waves as W


@pytest.mark.parametrize(
  "n,devices,plan,widest,expected",
  [
    (0, 1, "bucketed", 0, []),
    (1, 1, "bucketed", 0, [1]),
    (37, 1, "bucketed", 0, [32, 4, 1]),  # 37 = 100101b
    (64, 1, "bucketed", 0, [64]),
    (37, 8, "bucketed", 0, [32, 8]),  # ceil(37/8) = 5 = 101b jobs per device
    (3, 8, "bucketed", 0, [8]),  # fewer jobs than devices: one job (or none) per device
    (3, 1, "padded", 5, [5]),
    (3, 2, "padded", 5, [6]),
  ],
)
def test_piece_widths_by_hand(n, devices, plan, widest, expected):
  assert W.piece_widths(n, devices, plan, widest) == expected


def _sub(rows, width, n=9, m=20):
  """A sub-wave record: row t holds jobs (worker, slot) = (w, 10 + w) for w in rows[t]."""
  rec = {f: np.zeros((len(rows), width), np.int32) for f in W.FIELDS}
  rec["worker"][:] = n
  rec["slot"][:] = m
  for t, ws in enumerate(rows):
    for c, w in enumerate(ws):
      rec["worker"][t, c], rec["slot"][t, c], rec["valid"][t, c] = w, 10 + w, 1
      rec["job"][t, c], rec["steps"][t, c] = 1, 2
  return rec


def test_plan_cuts_each_row_into_binary_pieces():
  # Row 0: 7 jobs (4 + 2 + 1), row 1: 2 jobs, row 2: none; a second sub-wave with 1 job.
  subs = [_sub([[0, 1, 2, 3, 4, 5, 6], [7, 8], []], 7), _sub([[3], [], []], 1)]
  plan = W.plan_waves(subs, 1, "bucketed", num_workers=9, num_slots=20)
  assert sorted(plan) == [1, 2, 4]
  assert plan[4]["valid"].shape == (3, 2, 4)
  np.testing.assert_array_equal(plan[4]["worker"][0, 0], [0, 1, 2, 3])
  np.testing.assert_array_equal(plan[2]["worker"][0, 0], [4, 5])
  np.testing.assert_array_equal(plan[1]["worker"][0, 0], [6])
  np.testing.assert_array_equal(plan[2]["worker"][1, 0], [7, 8])
  np.testing.assert_array_equal(plan[1]["worker"][0, 1], [3])  # sub-wave 1 of row 0
  np.testing.assert_array_equal(plan[2]["slot"][1, 0], [17, 18])
  assert plan[4]["valid"][1:].sum() == 0 and plan[4]["worker"][1, 0, 0] == 9  # padding
  assert plan[4]["slot"][2, 0, 0] == 20
  # Every job exactly once, nothing padded: 10 jobs in 10 computed slots.
  assert W.plan_stats(plan) == dict(jobs=10, slots=10, utilisation=1.0)
  padded = W.plan_waves(subs, 1, "padded", num_workers=9, num_slots=20)
  assert sorted(padded) == [7]
  # Three non-empty (row, sub-wave) pairs of width 7.
  assert W.plan_stats(padded) == dict(jobs=10, slots=21, utilisation=10 / 21)
  two = W.plan_waves(subs, 2, "bucketed", num_workers=9, num_slots=20)
  assert sorted(two) == [2, 8]  # 7 jobs: ceil(7/2) = 4 per device, one piece of 2 x 4
  assert W.plan_stats(two)["slots"] == 8 + 2 + 2
  with pytest.raises(ValueError, match="wave plan"):
    W.plan_waves(subs, 1, "sideways", num_workers=9, num_slots=20)


N, Z, DIN = 8, 2, 3


def _loss(p, batch):
  x, y = batch
  h = jnp.tanh(x @ p["w1"] + p["b1"])
  return jnp.mean((h @ p["w2"] - y) ** 2)


def _sims(plans, devices=1, job_loop="auto"):
  rng = np.random.default_rng(0)
  data = (
    jnp.asarray(rng.normal(size=(N, 40, Z, 4, DIN)).astype(np.float32)),
    jnp.asarray(rng.normal(size=(N, 40, Z, 4, 1)).astype(np.float32)),
  )
  params = {
    "w1": jnp.asarray(rng.normal(size=(DIN, 8)) * 0.5, jnp.float32),
    "b1": jnp.zeros((8,), jnp.float32),
    "w2": jnp.asarray(rng.normal(size=(8, 1)) * 0.5, jnp.float32),
  }
  out = {}
  for plan in plans:
    sim = A.Simulator(
      _loss,
      tailopt.get_method("bi2clip", inner_lr=0.05, outer_lr=0.5),
      lambda d, w, j, key: (d[0][w, j], d[1][w, j]),
      clock=A.ClockConfig(num_workers=N, speed_sigma=0.8, job_noise="exponential", seed=3),
      config=A.AsyncConfig(scheme="buffered", buffer_size=3, local_steps=Z),
      num_steps=12,
      data=data,
      devices=devices,
      wave_plan=plan,
      job_loop=job_loop,
    )
    st, m = sim.run(sim.init(params, seed=1))
    out[plan] = (sim, jax.device_get(st.params), m)
  return params, out


def test_bucketed_waves_compute_no_padding_and_match_padded():
  params, out = _sims(("bucketed", "padded"))
  sim_b, p_b, m_b = out["bucketed"]
  sim_p, p_p, m_p = out["padded"]
  assert len(sim_b.wave_widths) >= 2  # several widths: the cut is exercised
  assert all(w & (w - 1) == 0 for w in sim_b.wave_widths)  # powers of two
  assert sim_b.wave_stats()["utilisation"] == 1.0
  assert sim_p.wave_stats()["utilisation"] < 0.9
  assert sim_b.wave_stats()["jobs"] == sim_p.wave_stats()["jobs"]
  # The same jobs on the same inputs: only XLA's fusion of the two programs differs.
  for k in params:
    np.testing.assert_allclose(p_b[k], p_p[k], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(m_b["loss"], m_p["loss"], rtol=1e-6)
  np.testing.assert_array_equal(m_b["bytes_down"], m_p["bytes_down"])
  assert not np.allclose(p_b["w1"], params["w1"])  # it trained


@pytest.mark.slow
def test_sequential_job_loop_matches_vmap():
  params, vm = _sims(("bucketed",), job_loop="vmap")
  _, seq = _sims(("bucketed",), job_loop="sequential")
  for k in params:
    np.testing.assert_allclose(seq["bucketed"][1][k], vm["bucketed"][1][k], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(seq["bucketed"][2]["loss"], vm["bucketed"][2]["loss"], rtol=1e-6)
  with pytest.raises(ValueError, match="job_loop"):
    _sims(("bucketed",), job_loop="parallel")


@pytest.mark.slow
def test_bucketed_waves_over_devices_match_one_device():
  params, one = _sims(("bucketed",))
  _, four = _sims(("bucketed",), devices=4)
  for k in params:
    np.testing.assert_allclose(one["bucketed"][1][k], four["bucketed"][1][k], rtol=1e-6, atol=1e-7)
