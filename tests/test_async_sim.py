"""The simulator: equality with the synchronous round, resume, determinism, memory."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tailopt
from tailopt import asynchronous as A

N, Z, BATCH, DIN = 8, 2, 4, 3


def _mlp_init(seed):
  rng = np.random.default_rng(seed)
  return {
    "w1": jnp.asarray(rng.normal(size=(DIN, 8)) * 0.5, jnp.float32),
    "b1": jnp.zeros((8,), jnp.float32),
    "w2": jnp.asarray(rng.normal(size=(8, 1)) * 0.5, jnp.float32),
  }


def _loss(p, batch):
  x, y = batch
  h = jnp.tanh(x @ p["w1"] + p["b1"])
  return jnp.mean((h @ p["w2"] - y) ** 2)


def _dataset(num_jobs, n=N, seed=0):
  rng = np.random.default_rng(seed)  # numpy: no compile in the tests
  x = rng.normal(size=(n, num_jobs, Z, BATCH, DIN)).astype(np.float32)
  y = rng.normal(size=(n, num_jobs, Z, BATCH, 1)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(y)


def _take(data, w, j, key):
  del key
  x, y = data
  return x[w, j], y[w, j]


@pytest.mark.parametrize("scheme", ["buffered", pytest.param("sync", marks=pytest.mark.slow)])
def test_buffer_n_with_equal_speeds_equals_synchronous_round(scheme):
  rounds = 3
  data = _dataset(rounds + 1)
  method = tailopt.get_method(
    "bi2clip",
    inner_lr=0.05,
    inner_upper=0.5,
    inner_lower=0.01,
    outer_lr=1.0,
    outer_upper=0.05,
    outer_lower=1e-3,
  )
  params = _mlp_init(1)

  # No injected noise here (compile time on 2 cores); the simulator seeds each worker's
  # noise stream with the same fold_in of the worker index as the round does.
  noise = None
  rnd = tailopt.build_round(_loss, method, local_steps=Z, num_clients=N, noise=noise, donate=False)
  st = rnd.init(params, seed=0)
  for r in range(rounds):
    st, _ = rnd(st, rnd.shard_batch((data[0][:, r], data[1][:, r])))
  sync_params = jax.device_get(st.params)

  clock = A.ClockConfig(num_workers=N, speeds="fixed", job_noise="none")
  cfg = A.AsyncConfig(
    scheme=scheme, buffer_size=N, local_steps=Z, rate=A.RateConfig("polynomial")
  )  # tau = 0 -> scale 1
  sim = A.Simulator(
    _loss, method, _take, clock=clock, config=cfg, data=data, num_steps=rounds, noise=noise
  )
  s = sim.init(params)
  s, m = sim.run(s)
  assert (m["taus"] == 0).all() and np.allclose(m["time"], [2, 4, 6])
  for k in params:
    np.testing.assert_allclose(np.asarray(s.params[k]), sync_params[k], rtol=1e-5, atol=1e-6)
  # The async run's params moved (the comparison is not vacuous).
  assert not np.allclose(np.asarray(s.params["w2"]), np.asarray(params["w2"]))


def _linear_loss(p, batch):
  x, y = batch
  return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


def _linear_init():
  return {
    "w": jnp.asarray(np.linspace(-1, 1, DIN)[:, None], jnp.float32),
    "b": jnp.zeros((1,), jnp.float32),
  }


def _resume_sim(num_steps=12, noise=True):
  data = _dataset(num_steps + 4, n=4)
  clock = A.ClockConfig(num_workers=4, speeds="lognormal", job_noise="exponential", seed=5)
  cfg = A.AsyncConfig(
    scheme="buffered",
    buffer_size=2,
    local_steps=Z,
    rate=A.RateConfig("polynomial"),
    compensation=A.CompensationConfig("adaptive"),
  )
  method = tailopt.get_method("adam-biclip", inner_lr=0.05, outer_lr=0.01)
  return A.Simulator(
    _linear_loss,
    method,
    _take,
    clock=clock,
    config=cfg,
    data=data,
    num_steps=num_steps,
    noise=tailopt.inject_noise("gaussian", 0.05, seed=1) if noise else None,
  )


@pytest.mark.slow  # tests/test_smoke.py resumes a killed run in the default suite
def test_resume_mid_run_equals_uninterrupted(tmp_path):
  params = _linear_init()
  sim = _resume_sim()
  st, m_a = sim.run(sim.init(params, seed=7), 6)
  # Save: a pytree of numpy arrays (params, server/inner/noise states, in-flight jobs and
  # snapshots, RNG) and a small JSON (position in the event schedule, configs).
  tree, meta = sim.state_dict(st)
  assert meta["tick"] == 6
  np.savez(tmp_path / "state.npz", *jax.tree.leaves(tree))
  (tmp_path / "meta.json").write_text(json.dumps(meta))
  full, m_b = sim.run(st)  # the uninterrupted continuation

  fresh = _resume_sim()  # what a new process does; nothing is recomputed
  loaded = np.load(tmp_path / "state.npz")
  leaves = [loaded[f"arr_{i}"] for i in range(len(loaded.files))]
  template = fresh.state_dict_template(params)
  tree2 = jax.tree.unflatten(jax.tree.structure(template), leaves)
  st2 = fresh.load_state_dict(
    tree2, json.loads((tmp_path / "meta.json").read_text()), params_like=params
  )
  st2, m_c = fresh.run(st2)
  for k in params:
    np.testing.assert_allclose(
      np.asarray(st2.params[k]), np.asarray(full.params[k]), rtol=1e-6, atol=1e-7
    )
  np.testing.assert_array_equal(m_c["taus"], m_b["taus"])
  np.testing.assert_allclose(m_c["loss"], m_b["loss"], rtol=1e-6)
  assert m_a["taus"].shape == (6, 2) and m_c["version"][-1] == 12


def test_resume_rejects_a_different_schedule():
  meta = dict(_resume_sim(noise=False).meta(), tick=3)
  other = _resume_sim(num_steps=13, noise=False)
  with pytest.raises(ValueError, match="fingerprint"):
    other.load_state_dict({}, meta)


def test_determinism_and_memory_report():
  params = _linear_init()
  outs = []
  for _ in range(2):
    sim = _resume_sim(6, noise=False)
    st, m = sim.run(sim.init(params, seed=1))
    outs.append((jax.device_get(st.params), m))
  for k in params:
    np.testing.assert_array_equal(outs[0][0][k], outs[1][0][k])
  np.testing.assert_array_equal(outs[0][1]["loss"], outs[1][1]["loss"])
  rep = sim.memory_report(st)
  pb = sum(np.asarray(v).nbytes for v in params.values())
  assert rep["param_bytes"] == pb
  assert rep["mean_square_bytes"] == pb  # adaptive lambda keeps 1P
  assert rep["snapshot_mode"] in ("ring", "per_job")
  expect = (
    sim.schedule.ring_size if rep["snapshot_mode"] == "ring" else sim.schedule.num_slots
  ) * pb
  assert rep["snapshot_bytes"] == expect
  assert rep["inflight_delta_bytes"] == sim.schedule.num_slots * pb
  assert rep["outer_state_bytes"] >= 2 * pb  # FedAdam outer: m and v
  stats = sim.tau_stats()
  assert stats["max"] == sim.schedule.max_staleness and sum(stats["histogram"]) == 12


def test_bad_simulator_config():
  data = _dataset(4)
  _data_fn = lambda d: lambda w, j, key: _take(d, w, j, key)  # noqa: E731
  with pytest.raises(ValueError, match="buffer_size"):
    A.Simulator(
      _loss,
      tailopt.get_method("fedavg"),
      _data_fn(data),
      clock=A.ClockConfig(num_workers=4),
      config=A.AsyncConfig(scheme="buffered", buffer_size=5),
      num_steps=3,
    )
  with pytest.raises(ValueError, match="rate family"):
    A.AsyncConfig(rate=A.RateConfig("exponential"))
  with pytest.raises(ValueError, match="rate family"):
    A.AsyncConfig(rate={"family": "cosine"})
  with pytest.raises(ValueError, match="scale_order"):
    A.AsyncConfig(scale_order="sideways")
  with pytest.raises(ValueError, match="compensation kind"):
    A.CompensationConfig("quadratic")
  with pytest.raises(ValueError, match="order"):
    A.CompensationConfig("constant", order="never")
  with pytest.raises(ValueError, match="reduction"):
    A.AsyncConfig(reduction="median")
  with pytest.raises(TypeError, match="tailopt.Method"):
    A.Simulator(_loss, "bi2clip", _data_fn(data), clock=A.ClockConfig(num_workers=4), num_steps=3)
  sim = A.Simulator(
    _loss,
    tailopt.get_method("fedavg"),
    _data_fn(data),
    clock=A.ClockConfig(num_workers=8),
    num_steps=2,
  )
  st = sim.init(_mlp_init(0))
  with pytest.raises(ValueError, match="schedule has 2 steps"):
    sim.run(st, 3)
