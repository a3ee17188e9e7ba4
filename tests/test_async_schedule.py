"""The simulated clock: hand-written schedules, determinism and config errors."""

import jax.numpy as jnp
import numpy as np
import pytest

import tailopt
from tailopt import asynchronous as A

from _async_helpers import B
from _async_helpers import toy_data as _data
from _async_helpers import toy_loss as _loss


def _three_worker_clock():
  return A.ClockConfig(num_workers=3, speeds="fixed", step_times=(1.0, 2.5, 3.7), job_noise="none")


def _reference(pulled, workers, lr=0.5, steps=None):
  """x_{t+1} = x_t - mean_k lr (x_{pulled_k} - B[w_k]) with hand-written versions."""
  xs = [0.0]
  for ps, ws in zip(pulled, workers):
    d = np.mean([lr * (xs[p] - B[w]) for p, w in zip(ps, ws)])
    xs.append(xs[-1] - d)
  return xs


def test_scheme_b_three_workers_by_hand():
  # Worker step times 1, 2.5, 3.7 s, one step per job, an outer step per arrival.
  # t=1 w0(v0) | t=2 w0(v1) | t=2.5 w1(v0) | t=3 w0(v2) | t=3.7 w2(v0) | t=4 w0(v4)
  # | t=5 w0(v6) and w1(v3) arrive together (w0 first; both then pull v8).
  s = A.make_schedule(_three_worker_clock(), scheme="async", num_steps=8)
  np.testing.assert_allclose(s.tick_time, [1, 2, 2.5, 3, 3.7, 4, 5, 5])
  np.testing.assert_array_equal(s.arr["worker"][:, 0], [0, 0, 1, 0, 2, 0, 0, 1])
  np.testing.assert_array_equal(s.arr["pulled"][:, 0], [0, 1, 0, 2, 0, 4, 6, 3])
  np.testing.assert_array_equal(s.taus, [0, 0, 2, 1, 4, 1, 0, 4])
  assert s.max_staleness == 4 and s.tau_stats()["histogram"] == [3, 2, 1, 0, 2]

  sim = A.Simulator(
    _loss,
    tailopt.get_method("fedavg", inner_lr=0.5, outer_lr=1.0),
    _data,
    clock=_three_worker_clock(),
    config=A.AsyncConfig(scheme="async"),
    num_steps=8,
  )
  st = sim.init(jnp.zeros((1,), jnp.float32))
  ref = _reference(
    [[0], [1], [0], [2], [0], [4], [6], [3]], [[0], [0], [1], [0], [2], [0], [0], [1]]
  )
  # Hand values of the first applied updates: Delta = 0.5 (x_pulled - b_w).
  np.testing.assert_allclose(ref[:6], [0.0, 0.5, 0.75, -0.25, -0.125, 1.375])
  for t in range(8):  # one server step at a time, checked one by one
    st, m = sim.run(st, 1)
    assert int(m["version"][0]) == t + 1
    assert int(m["taus"][0, 0]) == [0, 0, 2, 1, 4, 1, 0, 4][t]
    np.testing.assert_allclose(np.asarray(st.params), [ref[t + 1]], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(st.params), [0.59375], rtol=1e-6)


def test_scheme_a_buffer_of_two_by_hand():
  # K = 2. t=1 w0(v0) | t=2 w0(v0) -> step 0 | t=2.5 w1(v0) | t=3 w0(v1) -> step 1
  # | t=3.7 w2(v0) | t=4 w0(v2) -> step 2 | t=5 w0(v3), w1(v1) -> step 3.
  # Worker 0 pulls version 0 twice (t=0 and t=1): a second sub-wave at version 0.
  s = A.make_schedule(_three_worker_clock(), scheme="buffered", buffer_size=2, num_steps=4)
  np.testing.assert_allclose(s.tick_time, [2, 3, 4, 5])
  np.testing.assert_array_equal(s.arr["worker"], [[0, 0], [1, 0], [2, 0], [0, 1]])
  np.testing.assert_array_equal(s.arr["pulled"], [[0, 0], [0, 1], [0, 2], [3, 1]])
  np.testing.assert_array_equal(s.taus, [0, 0, 1, 0, 2, 0, 0, 2])
  assert len(s.wave0) == 2 and list(s.wave0[1]["worker"]) == [0]

  sim = A.Simulator(
    _loss,
    tailopt.get_method("fedavg", inner_lr=0.5, outer_lr=1.0),
    _data,
    clock=_three_worker_clock(),
    config=A.AsyncConfig(scheme="buffered", buffer_size=2),
    num_steps=4,
  )
  st = sim.init(jnp.zeros((1,), jnp.float32))
  ref = _reference(s.arr["pulled"].tolist(), s.arr["worker"].tolist())
  for t in range(4):
    st, m = sim.run(st, 1)
    np.testing.assert_allclose(np.asarray(st.params), [ref[t + 1]], rtol=1e-6)
  # Hand values: step 0 averages two Deltas of -0.5; step 1 averages 1.0 (w1 at x_0) and
  # -0.25 (w0 at x_1 = 0.5).
  np.testing.assert_allclose(ref[1:3], [0.5, 0.125])


def test_sync_and_drop_on_the_same_clock():
  clock = _three_worker_clock()
  sync = A.make_schedule(clock, scheme="sync", num_steps=3)
  np.testing.assert_allclose(sync.tick_time, [3.7, 7.4, 11.1])
  assert (sync.taus == 0).all() and sync.arrivals_per_step == 3
  drop = A.make_schedule(clock, scheme="drop", buffer_size=2, num_steps=3)
  np.testing.assert_allclose(drop.tick_time, [2.5, 5.0, 7.5])
  np.testing.assert_array_equal(drop.arr["worker"], [[0, 1]] * 3)
  # The dropped straggler's jobs are never computed.
  assert drop.computed_local_steps == 6
  dl = A.make_schedule(clock, scheme="deadline", deadline=3.0, num_steps=2)
  np.testing.assert_allclose(dl.tick_time, [3.0, 6.0])
  np.testing.assert_array_equal(dl.arr["valid"], [[1, 1, 0], [1, 1, 0]])


def test_equal_speeds_buffer_n_is_synchronous():
  clock = A.ClockConfig(num_workers=4, speeds="fixed", job_noise="none")
  s = A.make_schedule(clock, scheme="buffered", buffer_size=4, num_steps=3, local_steps=2)
  np.testing.assert_allclose(s.tick_time, [2, 4, 6])
  assert (s.taus == 0).all()
  np.testing.assert_array_equal(s.arr["pulled"], [[0] * 4, [1] * 4, [2] * 4])
  seq = A.make_schedule(clock, scheme="buffered", buffer_size=4, num_steps=3, ties="sequential")
  assert seq.taus.max() > 0  # the other tie rule is not synchronous


def test_schedule_is_reproducible_from_seed():
  def sched(seed):
    c = A.ClockConfig(
      num_workers=6, speeds="lognormal", job_noise="exponential", comm_latency=0.1, seed=seed
    )
    return A.make_schedule(c, scheme="buffered", buffer_size=3, num_steps=40, local_steps=2)

  a, b, c = sched(3), sched(3), sched(4)
  np.testing.assert_array_equal(a.tick_time, b.tick_time)
  for k in a.arr:
    np.testing.assert_array_equal(a.arr[k], b.arr[k])
  assert a.fingerprint == b.fingerprint != c.fingerprint
  assert not np.array_equal(a.tick_time, c.tick_time)
  # A worker's job durations do not depend on the scheme.
  s1 = A.make_schedule(A.ClockConfig(num_workers=3, seed=1), scheme="async", num_steps=10)
  s2 = A.make_schedule(A.ClockConfig(num_workers=3, seed=1), scheme="sync", num_steps=10)
  d1 = [j.arrival - j.start for j in s1.jobs if j.worker == 1]
  d2 = [j.arrival - j.start for j in s2.jobs if j.worker == 1]
  n = min(len(d1), len(d2))
  np.testing.assert_allclose(d1[:n], d2[:n])


def test_straggler_speeds_and_dynamic_local_steps():
  c = A.ClockConfig(
    num_workers=8, speeds="stragglers", straggler_fraction=0.25, straggler_slowdown=4.0, seed=0
  )
  s = c.step_time_per_worker()
  assert sorted(s.tolist()) == [1.0] * 6 + [4.0] * 2
  h = A.dynamic_local_steps(np.array([1.0, 2.0, 4.0, 3.0]), 8)
  np.testing.assert_array_equal(h, [8, 4, 2, 2])


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(scheme="buffered", buffer_size=5), "buffer_size"),
    (dict(scheme="nope"), "Unknown scheme"),
    (dict(scheme="deadline"), "deadline"),
    (dict(ties="random"), "ties"),
    (dict(local_steps=0), "local_steps"),
  ],
)
def test_bad_schedule_config(kwargs, match):
  with pytest.raises(ValueError, match=match):
    A.make_schedule(A.ClockConfig(num_workers=4), num_steps=3, **kwargs)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(speeds="gamma"), "speeds"),
    (dict(job_noise="pareto"), "job_noise"),
    (dict(speeds="fixed", step_times=(1.0, 2.0)), "one per worker"),
    (dict(num_workers=0), "num_workers"),
    (dict(straggler_slowdown=0.5), "straggler_slowdown"),
  ],
)
def test_bad_clock_config(kwargs, match):
  with pytest.raises(ValueError, match=match):
    A.ClockConfig(**kwargs)
