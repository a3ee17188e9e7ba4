"""Failures, rejoins, the quorum server, sample-weighted merging and goodput, by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

import tailopt
from tailopt import asynchronous as A
from tailopt.asynchronous import membership

from _async_helpers import B
from _async_helpers import toy_data as _data
from _async_helpers import toy_loss as _loss


def _clock(step_times=(1.0, 2.5, 3.7), **kw):
  return A.ClockConfig(num_workers=3, speeds="fixed", step_times=step_times, job_noise="none", **kw)


def _reference(pulled, workers, lr=0.5, weights=None):
  """x_{t+1} = x_t - sum_k n_k lr (x_{pulled_k} - B[w_k]) / sum_k n_k (n_k = 1 or weights)."""
  xs = [0.0]
  for ps, ws in zip(pulled, workers):
    n = [1.0 if weights is None else weights[w] for w in ws]
    d = sum(nk * lr * (xs[p] - B[w]) for nk, p, w in zip(n, ps, ws)) / sum(n)
    xs.append(xs[-1] - d)
  return xs


def _run_stepwise(sim, steps):
  st = sim.init(jnp.zeros((1,), jnp.float32))
  xs = [0.0]
  for _ in range(steps):
    st, _ = sim.run(st, 1)
    xs.append(float(np.asarray(st.params)[0]))
  return xs


def test_a_failed_worker_loses_its_job_and_rejoins_with_the_newest_model():
  # Scheme B, step times 1, 2.5, 3.7 s. Worker 0 is down from 1.5 to 2.2 s:
  # t=1 w0(v0) -> v1; w0 pulls v1, job due at 2 but lost at 1.5 | t=2.2 w0 back, pulls v1
  # | t=2.5 w1(v0) -> v2 | t=3.2 w0(v1) -> v3 | t=3.7 w2(v0) -> v4 | t=4.2 w0(v3) -> v5
  # | t=5 w1(v2) -> v6.
  clock = _clock(failures=((0, 1.5, 2.2),))
  s = A.make_schedule(clock, scheme="async", num_steps=6)
  np.testing.assert_allclose(s.tick_time, [1, 2.5, 3.2, 3.7, 4.2, 5])
  np.testing.assert_array_equal(s.arr["worker"][:, 0], [0, 1, 0, 2, 0, 1])
  np.testing.assert_array_equal(s.arr["pulled"][:, 0], [0, 0, 1, 0, 3, 2])
  lost = [j for j in s.jobs if j.lost_at >= 0]
  assert [(j.worker, j.index, j.start, j.lost_at) for j in lost] == [(0, 1, 1.0, 1.5)]
  # Goodput: 6 applied one-step jobs; the lost job ran 0.5 of its 1 s.
  g = s.goodput()
  assert (g["useful_steps"], g["lost_jobs"], g["lost_steps"]) == (6.0, 1, 0.5)
  assert g["goodput"] == pytest.approx(6 / 6.5)

  sim = A.Simulator(
    _loss,
    tailopt.get_method("fedavg", inner_lr=0.5, outer_lr=1.0),
    _data,
    clock=clock,
    config=A.AsyncConfig(scheme="async"),
    num_steps=6,
  )
  assert sim.wave_stats()["jobs"] == 6  # the lost job is never computed
  ref = _reference(s.arr["pulled"].tolist(), s.arr["worker"].tolist())
  np.testing.assert_allclose(_run_stepwise(sim, 6), ref, rtol=1e-6, atol=1e-7)
  assert sim.goodput() == g


def test_wait_for_all_redoes_a_failed_job():
  # Worker 2 (3.7 s per job) is down from 3.0 to 4.0 s: its round-0 job is lost at 3.0 and
  # redone from 4.0 (pulling version 0 again), so round 0 closes at 7.7, round 1 at 11.4.
  s = A.make_schedule(_clock(failures=((2, 3.0, 4.0),)), scheme="sync", num_steps=2)
  np.testing.assert_allclose(s.tick_time, [7.7, 11.4])
  np.testing.assert_array_equal(s.arr["pulled"], [[0, 0, 0], [1, 1, 1]])
  g = s.goodput()
  assert g["lost_jobs"] == 1 and g["lost_steps"] == pytest.approx(3.0 / 3.7)
  assert g["goodput"] == pytest.approx(6 / (6 + 3.0 / 3.7))
  # Dropping the slowest instead abandons its job at each close (2.5 s of 3.7 s).
  d = A.make_schedule(_clock(), scheme="drop", buffer_size=2, num_steps=3)
  gd = d.goodput()
  assert gd["abandoned_jobs"] == 3 and gd["abandoned_steps"] == pytest.approx(3 * 2.5 / 3.7)
  assert gd["lost_jobs"] == 0 and gd["useful_steps"] == 6.0


def test_grace_window_hand_values():
  assert membership.grace_window([], 3.0) == np.inf
  assert membership.grace_window([1.0, 2.0, 2.0], 0.0) == 2.0
  # median 2, |d - 2| = 1, 0, 0, 8 -> MAD 0.5
  assert membership.grace_window([1.0, 2.0, 2.0, 10.0], 2.0) == 3.0


def test_quorum_server_by_hand():
  # Step times 1, 2, 5 s; Q = 1, cap K = 3, window median + 0 MAD of the last 3 delays.
  # t=1 w0(v0) in, no window yet | t=2 w0(v0), w1(v0) in: K reached -> step 0 at 2; delays
  #   1, 2, 2: window 2 -> next deadline 4 | t=3 w0(v1) in (Q met, timer at 4)
  # | t=4 w0(v1) in, past the deadline -> step 1 at 4 (delays 2, 1, 2: deadline 6); then
  #   w1(v1) in, Q met, timer at 6 | t=5 w0(v2), w2(v0) in: K -> step 2 at 5 (delays
  #   0, 1, 1: deadline 6) | t=6 w0(v3) in, at the deadline -> step 3 at 6.
  clock = _clock((1.0, 2.0, 5.0))
  cfg = A.AsyncConfig(scheme="quorum", min_quorum=1, grace_k=0.0, grace_window=3)
  s = A.make_schedule(clock, scheme="quorum", buffer_size=3, num_steps=4, quorum=cfg.quorum_for(3))
  np.testing.assert_allclose(s.tick_time, [2, 4, 5, 6])
  valid = s.arr["valid"].astype(bool)
  assert [list(s.arr["worker"][t][valid[t]]) for t in range(4)] == [
    [0, 0, 1],
    [0, 0],
    [1, 0, 2],
    [0],
  ]
  assert [list(s.arr["pulled"][t][valid[t]]) for t in range(4)] == [
    [0, 0, 0],
    [1, 1],
    [1, 2, 0],
    [3],
  ]
  sim = A.Simulator(
    _loss,
    tailopt.get_method("fedavg", inner_lr=0.5, outer_lr=1.0),
    _data,
    clock=clock,
    config=cfg,
    num_steps=4,
  )
  assert sim.buffer_size == 3  # the cap defaults to N
  pulled = [list(s.arr["pulled"][t][valid[t]]) for t in range(4)]
  workers = [list(s.arr["worker"][t][valid[t]]) for t in range(4)]
  np.testing.assert_allclose(
    _run_stepwise(sim, 4), _reference(pulled, workers), rtol=1e-6, atol=1e-7
  )


def test_sample_weighted_merging_by_hand():
  avg = tailopt.get_method("fedavg", outer_lr=1.0)
  x = jnp.zeros((1,), jnp.float32)
  cfg = A.AsyncConfig(merge="steps")
  out = A.server_update(
    cfg,
    avg.outer,
    None,
    4,
    x,
    avg.outer.init(x),
    None,
    jnp.asarray([[1.0], [3.0], [7.0]]),
    None,
    jnp.zeros(3, jnp.int32),
    jnp.asarray([1, 1, 0]),
    0,
    samples=jnp.asarray([1.0, 3.0, 5.0]),
  )
  np.testing.assert_allclose(out[0], [-(1 * 1 + 3 * 3) / 4])  # padding (7, n=5) ignored
  # Through the simulator: wait-for-all rounds weighted by the workers' dataset sizes.
  sizes = (1.0, 2.0, 5.0)
  sim = A.Simulator(
    _loss,
    tailopt.get_method("fedavg", inner_lr=0.5, outer_lr=1.0),
    _data,
    clock=_clock(),
    config=A.AsyncConfig(scheme="sync", merge="dataset", worker_samples=sizes),
    num_steps=3,
  )
  ref = _reference([[t] * 3 for t in range(3)], [[0, 1, 2]] * 3, weights=sizes)
  np.testing.assert_allclose(_run_stepwise(sim, 3), ref, rtol=1e-6, atol=1e-7)
  assert not np.allclose(ref, _reference([[t] * 3 for t in range(3)], [[0, 1, 2]] * 3))


def test_random_failures_reproducible_and_at_the_configured_rates():
  lam, mu = 0.1, 0.5
  line = membership.Timeline(lam, mu, np.random.default_rng(0))
  line.up_at(20000.0)
  down = np.asarray(line.up) - np.asarray(line.down)
  up = np.diff(np.concatenate([[0.0], line.down]))[1:] - down[:-1]
  assert abs(down.mean() - 1 / mu) < 0.1 and abs(up.mean() - 1 / lam) < 1.0
  clock = A.ClockConfig(num_workers=6, failure_rate=lam, rejoin_rate=mu, seed=2)
  a = A.make_schedule(clock, scheme="buffered", buffer_size=3, local_steps=2, num_steps=60)
  b = A.make_schedule(clock, scheme="buffered", buffer_size=3, local_steps=2, num_steps=60)
  assert a.fingerprint == b.fingerprint and a.goodput() == b.goodput()
  assert a.goodput()["lost_jobs"] > 0 and 0 < a.goodput()["goodput"] < 1
  # Without failures the schedule (and a saved run's fingerprint) is what it always was.
  plain = A.make_schedule(
    A.ClockConfig(num_workers=5, seed=3), scheme="sync", local_steps=2, num_steps=7
  )
  assert plain.fingerprint == "395d3a3f885bfb7d"
  assert plain.goodput()["goodput"] == 1.0


@pytest.mark.parametrize(
  "make,match",
  [
    (lambda: _clock(failure_rate=0.1), "needs rejoin_rate > 0"),
    (lambda: _clock(failures=((3, 1.0, 2.0),)), r"failures entry \(3, 1.0, 2.0\)"),
    (lambda: _clock(failures=((0, 2.0, 1.0),)), "up_at > down_at"),
    (lambda: A.AsyncConfig(merge="dataset"), "needs worker_samples"),
    (lambda: A.AsyncConfig(merge="size"), "Unknown merge"),
    (lambda: A.AsyncConfig(grace_k=-1.0), "grace_k"),
    (lambda: A.AsyncConfig(min_quorum=0), "min_quorum"),
    (lambda: A.AsyncConfig(scheme="quorum", min_quorum=4).k_for(3), "min_quorum Q=4 > "),
    (
      lambda: A.AsyncConfig(merge="dataset", worker_samples=(1, 2)).k_for(3),
      "worker_samples has 2 entries",
    ),
  ],
)
def test_membership_config_errors_are_one_line(make, match):
  with pytest.raises(ValueError, match=match) as e:
    make()
  assert "\n" not in str(e.value)


def test_new_fields_at_their_defaults_keep_config_fingerprints():
  from experiments import checkpoint, cli

  for variant in ("configs/async_synthetic.py:runlocal", "configs/async_synthetic.py:fedbuff"):
    d = cli.load_config(variant, []).to_dict()
    assert d["clock"]["failure_rate"] == 0.0 and d["asynchronous"]["merge"] == "uniform"
    before = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    for f in ("failure_rate", "rejoin_rate"):
      before["clock"].pop(f)
    for f in ("min_quorum", "grace_k", "grace_window", "merge", "worker_samples"):
      before["asynchronous"].pop(f, None)
    assert checkpoint.config_fingerprint(d) == checkpoint.config_fingerprint(before)
    d["clock"]["failure_rate"] = 0.1
    assert checkpoint.config_fingerprint(d) != checkpoint.config_fingerprint(before)
