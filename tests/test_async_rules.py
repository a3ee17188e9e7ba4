"""Delay-aware rates, compensation, the server step and the baselines against hand values."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tailopt
from tailopt import asynchronous as A

# A tiny problem: worker w minimises 0.5 |x - B[w]|^2 (gradient x - B[w]).
B = np.array([[1.0, -1.0], [-2.0, 0.5], [3.0, 2.0]], np.float32)


def _loss(x, batch):
  return 0.5 * jnp.sum((x - batch) ** 2)


def _data(b, w, j, key):
  del j, key
  return b[w][None]  # (z=1, 2)


def _clock():
  return A.ClockConfig(num_workers=3, speeds="fixed", step_times=(1.0, 2.5, 3.7), job_noise="none")


def _sim(method, config, steps=8, outer=None, clock=None, data_fn=_data):
  return A.Simulator(
    _loss,
    method,
    data_fn,
    clock=clock or _clock(),
    config=config,
    num_steps=steps,
    outer=outer,
    data=jnp.asarray(B),
  )


def _run_stepwise(sim, x0=(0.0, 0.0)):
  st = sim.init(jnp.asarray(x0, jnp.float32))
  xs = [np.asarray(st.params)]
  for _ in range(sim.num_steps):
    st, _ = sim.run(st, 1)
    xs.append(np.asarray(st.params))
  return xs


# ----------------------------------------------------------------- delay-aware rates
TAUS = np.array([0, 1, 3, 8])


@pytest.mark.parametrize(
  "cfg,expected",
  [
    (A.RateConfig("constant"), [1, 1, 1, 1]),
    (A.RateConfig("polynomial"), [1, 2**-0.5, 0.5, 1 / 3]),
    (A.RateConfig("polynomial", a=1.0), [1, 0.5, 0.25, 1 / 9]),
    (A.RateConfig("hinge"), [1, 1, 1, 1 / 41]),  # a = 10, b = 4
    (A.RateConfig("hinge", a=2.0, b=1.0), [1, 1, 1 / 5, 1 / 15]),
    (A.RateConfig("inverse"), [1, 1, 1 / 3, 1 / 8]),
    (A.RateConfig("threshold"), [1, 1, 1, 0.5]),  # tau_C = N = 4
    (A.RateConfig("threshold", tau_c=2.0), [1, 1, 2 / 3, 0.25]),
    (A.RateConfig("drop"), [1, 1, 1, 1]),  # tau_max = 2N = 8
    (A.RateConfig("drop", tau_max=3), [1, 1, 1, 0]),
  ],
)
def test_rate_families_hand_values(cfg, expected):
  np.testing.assert_allclose(A.staleness_scale(cfg, TAUS, num_workers=4), expected, rtol=1e-6)


def test_buffer_reductions():
  cfg = A.RateConfig("polynomial", a=1.0)
  taus, valid = jnp.array([0, 2, 6]), jnp.array([1, 1, 0])
  w, s = A.reduce_staleness(cfg, "max", taus, valid)
  np.testing.assert_allclose(w, [1, 1, 0])
  np.testing.assert_allclose(s, 1 / 3, rtol=1e-6)
  w, s = A.reduce_staleness(cfg, "mean", taus, valid)
  np.testing.assert_allclose(w, [1, 1, 0])
  np.testing.assert_allclose(s, 0.5, rtol=1e-6)  # mean tau over valid = 1
  w, s = A.reduce_staleness(cfg, "weights", taus, valid)
  np.testing.assert_allclose(w, [1, 1 / 3, 0], rtol=1e-6)
  np.testing.assert_allclose(s, 1)


# ----------------------------------------------------------------- compensation
def test_compensation_formula_hand_values():
  d = {"a": jnp.array([1.0, -2.0])}
  diff = {"a": jnp.array([0.5, 1.0])}
  out = A.compensate(d, diff, 0.1)  # Delta + lam Delta^2 (x_now - x_pulled)
  np.testing.assert_allclose(out["a"], [1.05, -1.6], rtol=1e-6)
  ms = A.update_mean_square({"a": jnp.zeros(2)}, {"a": jnp.array([4.0, 1.0])}, 0.95)
  np.testing.assert_allclose(ms["a"], [0.2, 0.05], rtol=1e-6)
  lam = A.adaptive_lambda(ms, 2.0, 1e-7)
  np.testing.assert_allclose(lam["a"], 2.0 / np.sqrt([0.2 + 1e-7, 0.05 + 1e-7]), rtol=1e-6)


def _server(cfg, method, deltas, taus, diffs=None, n=4):
  x = jnp.zeros((1,), jnp.float32)
  deltas = jnp.asarray(deltas, jnp.float32)[:, None]
  diffs = None if diffs is None else jnp.asarray(diffs, jnp.float32)[:, None]
  st = method.outer.init(x)
  comp = A.server.init_comp_state(cfg, x)
  return A.server_update(
    cfg,
    method.outer,
    method.outer_clip,
    n,
    x,
    st,
    comp,
    deltas,
    diffs,
    jnp.asarray(taus),
    jnp.ones(len(taus), jnp.int32),
    0,
  )


def test_server_step_scale_and_order():
  avg = tailopt.get_method("fedavg", outer_lr=1.0)
  poly = A.RateConfig("polynomial")
  x, *_ = _server(A.AsyncConfig(rate=poly), avg, [1.0, 3.0], [0, 3])
  np.testing.assert_allclose(x, [-0.5 * 2.0])  # s(max tau = 3) = 1/2, mean = 2
  x, *_ = _server(A.AsyncConfig(rate=poly, reduction="weights"), avg, [1.0, 3.0], [0, 3])
  np.testing.assert_allclose(x, [-(1.0 + 0.5 * 3.0) / 2])  # FedBuff: / K
  x, *_ = _server(
    A.AsyncConfig(rate=poly, reduction="weights", weight_normalization="sum"),
    avg,
    [1.0, 3.0],
    [0, 3],
  )
  np.testing.assert_allclose(x, [-(1.0 + 0.5 * 3.0) / 1.5], rtol=1e-6)
  # BiClip outer (u=1, d=0.5), Delta = 0.2, s(tau=15) = 1/4: after the clip the scale
  # survives (0.5 * 0.25); before it the lower threshold undoes it (0.05 -> 0.5).
  bic = tailopt.get_method("bi2clip", outer_lr=1.0, outer_upper=1.0, outer_lower=0.5)
  x, *_ = _server(A.AsyncConfig(rate=poly), bic, [0.2], [15])
  np.testing.assert_allclose(x, [-0.125])
  x, *_ = _server(A.AsyncConfig(rate=poly, scale_order="before_outer"), bic, [0.2], [15])
  np.testing.assert_allclose(x, [-0.5])
  # drop: the step is skipped, outer state untouched.
  x, st, _, m = _server(
    A.AsyncConfig(rate=A.RateConfig("drop", tau_max=2)), tailopt.get_method("fedadam"), [1.0], [3]
  )
  np.testing.assert_allclose(x, [0.0])
  assert float(m["applied"]) == 0.0
  assert int(st[0].count) == 0


def test_compensation_order_against_the_outer_clip():
  # Delta = 2, x_now - x_pulled = 1, lam = 1: compensated Delta = 2 + 4 = 6.
  bic = tailopt.get_method("bi2clip", outer_lr=1.0, outer_upper=3.0, outer_lower=0.0)
  comp = A.CompensationConfig("constant", lam=1.0)
  x, *_ = _server(A.AsyncConfig(compensation=comp), bic, [2.0], [1], diffs=[1.0])
  np.testing.assert_allclose(x, [-3.0])  # compensate (6), clip to 3
  comp2 = A.CompensationConfig("constant", lam=0.5, order="clip_then_compensate")
  bic2 = tailopt.get_method("bi2clip", outer_lr=1.0, outer_upper=1.5, outer_lower=0.0)
  x, *_ = _server(A.AsyncConfig(compensation=comp2), bic2, [2.0], [1], diffs=[1.0])
  # clip 2 -> 1.5, compensate 1.5 + 0.5 * 2.25 = 2.625, outer clip -> 1.5
  np.testing.assert_allclose(x, [-1.5])
  comp3 = A.CompensationConfig("constant", lam=0.5, order="clip_then_compensate")
  x, *_ = _server(A.AsyncConfig(compensation=comp3), bic, [4.0], [1], diffs=[-1.0])
  # clip 4 -> 3, compensate 3 - 0.5 * 9 = -1.5 (within [0, 3]) -> x = 1.5
  np.testing.assert_allclose(x, [1.5])
  ada = A.CompensationConfig("adaptive", lam0=2.0, momentum=0.5, eps=0.0)
  x, _, ms, _ = _server(
    A.AsyncConfig(compensation=ada),
    tailopt.get_method("fedavg", outer_lr=1.0),
    [2.0],
    [1],
    diffs=[1.0],
  )
  # MS = 0.5 * 4 = 2, lam = 2 / sqrt(2), Delta = 2 + sqrt(2) * 4
  np.testing.assert_allclose(np.asarray(ms), [2.0])
  np.testing.assert_allclose(x, [-(2.0 + np.sqrt(2.0) * 4.0)], rtol=1e-6)


# ----------------------------------------------------------------- Delayed Nesterov
def test_delayed_nesterov_hand_values():
  tx = A.delayed_nesterov(1.0, momentum=0.5, period=2)
  st = tx.init(jnp.zeros(1))
  outs = []
  for g in (1.0, 2.0, 4.0, 8.0):
    u, st = tx.update(jnp.array([g]), st)
    outs.append(float(u[0]))
  np.testing.assert_allclose(outs, [-0.5, -1.75, -2.0, -7.375])
  # period 1 is plain Nesterov SGD.
  tx1, ref = A.delayed_nesterov(0.3, 0.9, 1), optax.sgd(0.3, momentum=0.9, nesterov=True)
  s1, s2 = tx1.init(jnp.zeros(3)), ref.init(jnp.zeros(3))
  for g in np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32):
    u1, s1 = tx1.update(jnp.asarray(g), s1)
    u2, s2 = ref.update(jnp.asarray(g), s2)
    np.testing.assert_allclose(u1, u2, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- baselines, end to end
def _schedule_lists(sim):
  s = sim.schedule
  return s.arr["pulled"], s.arr["worker"], s.arr["valid"].astype(bool)


def test_fedasync_mixing_by_hand():
  alpha, lr = 0.5, 0.5
  setup = A.fedasync(alpha=alpha, inner_lr=lr)
  sim = _sim(setup.method, setup.config)
  xs = _run_stepwise(sim)
  pulled, workers, _ = _schedule_lists(sim)
  ref = [np.zeros(2)]
  for t in range(sim.num_steps):
    p, w = pulled[t, 0], workers[t, 0]
    x_local = ref[p] - lr * (ref[p] - B[w])
    a = alpha * (1 + (t - p)) ** -0.5
    ref.append((1 - a) * ref[-1] + a * x_local)
  np.testing.assert_allclose(np.stack(xs), np.stack(ref), rtol=1e-5, atol=1e-6)


def test_fedbuff_by_hand():
  eta, lr = 0.8, 0.5
  setup = A.fedbuff(buffer_size=2, server_lr=eta, inner_lr=lr)
  sim = _sim(setup.method, setup.config, steps=5)
  xs = _run_stepwise(sim)
  pulled, workers, _ = _schedule_lists(sim)
  ref = [np.zeros(2)]
  for t in range(sim.num_steps):
    d = [(1 + t - p) ** -0.5 * lr * (ref[p] - B[w]) for p, w in zip(pulled[t], workers[t])]
    ref.append(ref[-1] - eta * np.sum(d, axis=0) / 2)
  np.testing.assert_allclose(np.stack(xs), np.stack(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("adaptive", [False, True])
def test_dcasgd_by_hand(adaptive):
  eta, lam = 0.3, 0.2
  setup = A.dcasgd(lr=eta, lam=lam, adaptive=adaptive, lam0=1.0, momentum=0.9)
  sim = _sim(setup.method, setup.config)
  xs = _run_stepwise(sim)
  pulled, workers, _ = _schedule_lists(sim)
  ref, ms = [np.zeros(2)], np.zeros(2)
  for t in range(sim.num_steps):
    p, w = pulled[t, 0], workers[t, 0]
    g = ref[p] - B[w]
    if adaptive:
      ms = 0.9 * ms + 0.1 * g * g
      lam_t = 1.0 / np.sqrt(ms + 1e-7)
    else:
      lam_t = lam
    ref.append(ref[-1] - eta * (g + lam_t * g * g * (ref[-1] - ref[p])))
  np.testing.assert_allclose(np.stack(xs), np.stack(ref), rtol=1e-5, atol=1e-6)


def test_snapshot_modes_agree():
  res = []
  for snap in ("ring", "per_job"):
    cfg = A.AsyncConfig(
      scheme="buffered",
      buffer_size=2,
      snapshots=snap,
      compensation=A.CompensationConfig("constant", lam=0.5),
    )
    sim = _sim(tailopt.get_method("fedavg", inner_lr=0.5), cfg, steps=5)
    assert sim.snapshot_mode == snap
    st, _ = sim.run(sim.init(jnp.zeros(2)))
    res.append(np.asarray(st.params))
  np.testing.assert_allclose(res[0], res[1], rtol=1e-6)


def test_dynamic_local_steps_and_delayed_nesterov_by_hand():
  # Wait-for-all rounds; worker speeds 1, 2, 4 s/step, H = 4 -> H_w = 4, 2, 1 steps.
  lr, z = 0.25, 4
  clock = A.ClockConfig(num_workers=3, speeds="fixed", step_times=(1.0, 2.0, 4.0), job_noise="none")
  setup = A.async_local_sgd(
    num_workers=3, local_steps=z, inner_lr=lr, lr=1.0, momentum=0.5, period=2
  )
  cfg = A.AsyncConfig(scheme="sync", local_steps=z, dynamic_local_steps=True)
  data4 = lambda b, w, j, key: jnp.broadcast_to(b[w], (z, 2))  # noqa: E731
  sim = _sim(setup.method, cfg, steps=4, outer=setup.outer, clock=clock, data_fn=data4)
  np.testing.assert_array_equal(sim.schedule.local_steps, [4, 2, 1])
  np.testing.assert_allclose(sim.schedule.tick_time, [4, 8, 12, 16])
  xs = _run_stepwise(sim)
  ref, m, buf = [np.zeros(2)], np.zeros(2), np.zeros(2)
  for t in range(4):
    x = ref[-1]
    d = np.mean([(1 - (1 - lr) ** h) * (x - B[w]) for w, h in enumerate([4, 2, 1])], 0)
    buf = buf + d
    if (t + 1) % 2:
      ref.append(x - 0.5 * d)
    else:
      m = 0.5 * m + buf / 2
      ref.append(x - (0.5 * m + d / 2))
      buf = np.zeros(2)
  np.testing.assert_allclose(np.stack(xs), np.stack(ref), rtol=1e-5, atol=1e-6)


def test_waves_split_across_devices_match_vmap():
  res = []
  for devices in (1, 2):
    cfg = A.AsyncConfig(scheme="buffered", buffer_size=2)
    sim = A.Simulator(
      _loss,
      tailopt.get_method("bi2clip", inner_lr=0.5),
      _data,
      clock=A.ClockConfig(num_workers=3, seed=4),
      config=cfg,
      num_steps=6,
      data=jnp.asarray(B),
      devices=devices,
    )
    st, m = sim.run(sim.init(jnp.zeros(2)))
    res.append((np.asarray(st.params), m["loss"]))
  np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-6)
  np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-6)


@pytest.mark.parametrize(
  "scheme,kw", [("drop", dict(buffer_size=2)), ("deadline", dict(deadline=3.0))]
)
def test_drop_stragglers_and_deadline_by_hand(scheme, kw):
  # Step times 1, 2.5, 3.7 s: the slowest worker (3.7 s) never makes the round.
  lr = 0.5
  sim = _sim(tailopt.get_method("fedavg", inner_lr=lr), A.AsyncConfig(scheme=scheme, **kw), steps=4)
  xs = _run_stepwise(sim)
  ref = [np.zeros(2)]
  for _ in range(4):
    ref.append(ref[-1] - np.mean([lr * (ref[-1] - B[w]) for w in (0, 1)], axis=0))
  np.testing.assert_allclose(np.stack(xs), np.stack(ref), rtol=1e-5, atol=1e-6)
