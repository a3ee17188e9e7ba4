"""Compressors, the bytes metric, compressed and streaming rounds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tailopt
from _compression_helpers import coder
from tailopt import compression as C


def _x(n=1000, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_t(1.5, size=n), jnp.float32)


def _roundtrip(comp, x, key=jax.random.key(0)):
  y, payload, _ = coder(comp)(x, None, key)
  return y, payload


# ------------------------------------------------------------------ error bounds
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_int_quantizer_error_bound_and_packing(bits):
  x = _x(1000)
  y, payload = _roundtrip(C.int_quantizer(bits, block=64), x)
  blocks = np.pad(np.asarray(x), (0, 24)).reshape(-1, 64)
  scale = np.abs(blocks).max(1) / ((1 << (bits - 1)) - 1)
  err = np.abs(np.pad(np.asarray(y - x), (0, 24)).reshape(-1, 64))
  assert np.all(err <= scale[:, None] / 2 * (1 + 1e-5))
  # Packed: bits/8 bytes per coordinate (16 blocks of 64) plus one float32 scale per block.
  assert C.payload_bytes(payload) == 16 * 64 * bits // 8 + 16 * 4
  assert payload["x"]["codes"].dtype == (jnp.int8 if bits == 8 else jnp.uint8)


def test_stochastic_rounding_is_unbiased():
  x = jnp.clip(_x(256, seed=1), -2.0, 2.0)
  blockmax = np.abs(np.asarray(x)).reshape(-1, 64).max(1).repeat(64)
  n = 4000
  keys = jax.random.split(jax.random.key(3), n)
  for comp, step in (
    (C.int_quantizer(4, 64, stochastic=True), blockmax / 7),
    (C.fixed_range_quantizer(2.0, 2, stochastic=True), np.full(256, 2.0)),
  ):
    ys = np.asarray(jax.vmap(lambda k, comp=comp: _roundtrip(comp, x, k)[0])(keys))
    assert np.all(np.abs(ys - np.asarray(x)) < step * (1 + 1e-5))  # within one step
    # Unbiased: the mean error is within 5 standard errors (sd <= step / 2).
    assert np.all(np.abs(ys.mean(0) - np.asarray(x)) <= 5 * step / 2 / np.sqrt(n))
    assert np.abs(ys[0] - np.asarray(x)).max() > 0  # it does quantize


def test_fp8_relative_error_bound():
  x = _x(512, seed=2)
  y, payload = _roundtrip(C.fp8_quantizer(block=128), x)
  xb = np.asarray(x).reshape(-1, 128)
  big = np.abs(xb) > np.abs(xb).max(1, keepdims=True) * 2.0**-6  # normal range of e4m3
  rel = np.abs((np.asarray(y).reshape(-1, 128) - xb)[big] / xb[big])
  assert rel.max() <= 2.0**-4 + 1e-6
  assert payload["x"]["codes"].dtype == jnp.float8_e4m3fn
  assert C.payload_bytes(payload) == 512 + 4 * 4


def test_fixed_range_grid_bound_and_no_scales():
  y, payload = _roundtrip(C.fixed_range_quantizer(1.0, 4), jnp.linspace(-1.5, 1.5, 301))
  x = np.linspace(-1.5, 1.5, 301)
  inside = np.abs(x) <= 1.0
  assert np.abs(np.asarray(y)[inside] - x[inside]).max() <= (1 / 7) / 2 + 1e-6
  np.testing.assert_allclose(np.asarray(y)[~inside], np.sign(x[~inside]), atol=1e-6)
  assert set(payload["x"]) == {"codes"} and C.payload_bytes(payload) == 151


def test_bi2clip_delta_lies_in_the_fixed_range():
  method = tailopt.get_method("bi2clip", inner_lr=0.05, inner_upper=0.5, inner_lower=0.01)
  bound = C.biclip_delta_bound(method, 3)
  assert bound == pytest.approx(3 * 0.05 * 0.5)
  assert C.biclip_delta_bound(tailopt.get_method("fedavg"), 3) is None

  def loss(p, b):
    return jnp.sum(b["g"] * p["w"])

  run = tailopt.make_local_run(loss, method.inner)
  g = jnp.asarray(np.random.default_rng(0).standard_cauchy((3, 50)) * 100, jnp.float32)
  res = run({"w": jnp.zeros(50)}, method.inner.init({"w": jnp.zeros(50)}), None, {"g": g})
  assert np.abs(np.asarray(res.delta["w"])).max() <= bound * (1 + 1e-6)


def test_error_feedback_recovers_the_sum():
  comp = C.error_feedback(C.int_quantizer(2, block=16))
  rng = np.random.default_rng(0)
  deltas = [jnp.asarray(rng.normal(size=64), jnp.float32) for _ in range(50)]
  state, code = comp.init({"x": deltas[0]}), coder(comp)
  sent = jnp.zeros(64)
  for t, d in enumerate(deltas):
    y, _, state = code(d, state, jax.random.key(t))
    sent = sent + y
  total = sum(deltas)
  # Exactly: what was sent = the sum of the Deltas minus the last residual ...
  np.testing.assert_allclose(sent, total - state.residual["x"], rtol=1e-5, atol=1e-5)
  # ... and the residual stays bounded, so the relative error of the sum vanishes.
  assert float(jnp.linalg.norm(sent - total) / jnp.linalg.norm(total)) < 0.2
  plain_code = coder(C.int_quantizer(2, 16))
  plain = sum(plain_code(d, None, None)[0] for d in deltas)
  assert jnp.linalg.norm(sent - total) < jnp.linalg.norm(plain - total)


# ------------------------------------------------------------------ rounds
def _loss(params, batch):
  return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def _batch(c=8, z=2, seed=0):
  rng = np.random.default_rng(seed)
  return {
    "x": rng.normal(size=(c, z, 4, 300)).astype(np.float32),
    "y": rng.normal(size=(c, z, 4)).astype(np.float32),
  }


P0 = {"w": jnp.zeros(300), "b": jnp.zeros(())}


def _run(rounds=3, mesh=None, **kw):
  method = kw.pop("method", tailopt.get_method("bi2clip", inner_lr=0.05))
  rnd = tailopt.build_round(_loss, method, local_steps=2, num_clients=8, mesh=mesh, **kw)
  state = rnd.init(P0)
  for t in range(rounds):
    state, metrics = rnd(state, _batch(seed=t))
  return state, jax.device_get(metrics), rnd


def test_bytes_metric_equals_the_arrays_sizes():
  _, m, _ = _run(3)
  assert m["bytes_up"] == 301 * 4 and m["bytes_down"] == 301 * 4
  assert m["bytes_cumulative"] == 3 * 2 * 301 * 4
  comp = C.int_quantizer(8, block=128)
  _, m, _ = _run(1, compressor=comp)
  payload, _ = comp.compress(P0, None, jax.random.key(0))
  assert m["bytes_up"] == C.payload_bytes(payload) == 384 + 3 * 4 + 4 + 4  # bias: one 4-wide block
  _, m, _ = _run(1, compressor=C.int_quantizer(4, 128), down_compressor=C.fp8_quantizer(128))
  assert m["bytes_up"] == 192 + 12 + 2 + 4 and m["bytes_down"] == 384 + 12 + 1 + 4


def test_compressed_round_gathers_the_codes_not_floats():
  _, _, rnd = _run(1, compressor=C.int_quantizer(8, 128))
  state = rnd.init(P0)
  hlo = rnd._step.lower(state, _batch(), jnp.ones(8)).as_text()
  gathers = [line for line in hlo.splitlines() if "all_gather" in line or "all-gather" in line]
  assert any("i8" in line or "s8" in line for line in gathers), gathers[:3]
  assert not any("all_reduce" in line and "300" in line for line in hlo.splitlines())


@pytest.mark.parametrize(
  "comp",
  [
    pytest.param(C.int_quantizer(8, 64), marks=pytest.mark.slow),
    C.error_feedback(C.int_quantizer(4, 64, stochastic=True)),
  ],
  ids=lambda c: c.name,
)
def test_compressed_eight_device_round_equals_one_device(comp):
  s8, m8, _ = _run(3, compressor=comp)
  s1, m1, _ = _run(3, compressor=comp, mesh=tailopt.client_mesh(1))
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s8.params, s1.params
  )
  np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5)


@pytest.mark.slow
def test_compression_changes_little_at_8_bits_and_ef_helps_at_2():
  s32, _, _ = _run(5)
  s8, _, _ = _run(5, compressor=C.int_quantizer(8, 64))
  s2, _, _ = _run(5, compressor=C.int_quantizer(2, 64))
  s2ef, _, _ = _run(5, compressor=C.error_feedback(C.int_quantizer(2, 64)))
  err = lambda s: float(jnp.linalg.norm(s.params["w"] - s32.params["w"]))  # noqa: E731
  assert err(s8) < 0.05 * float(jnp.linalg.norm(s32.params["w"]))
  assert err(s2ef) < err(s2)


@pytest.mark.parametrize("name", ["bi2clip", pytest.param("adam2", marks=pytest.mark.slow)])
def test_streaming_with_one_fragment_is_the_plain_round(name):
  method = tailopt.get_method(name)
  s0, m0, _ = _run(3, method=method)
  s1, m1, _ = _run(3, method=method, fragments=1)
  jax.tree.map(np.testing.assert_array_equal, s0.params, s1.params)
  assert m1["bytes_up"] == m0["bytes_up"]


def test_streaming_two_fragments_by_hand():
  # One client, z = 1, SGD inner (lr 0.1) on f(x) = 0.5 |x - t|^2, avg outer (lr 1):
  # leaves 'a' (size 2) and 'b' (size 1) fall in fragments 0 and 1; round t syncs t % 2.
  def loss(p, b):
    return 0.5 * (jnp.sum((p["a"] - b["t"][:2]) ** 2) + jnp.sum((p["b"] - b["t"][2:]) ** 2))

  rnd = tailopt.build_round(
    loss,
    tailopt.get_method("fedavg", inner_lr=0.1),
    local_steps=1,
    num_clients=1,
    mesh=tailopt.client_mesh(1),
    fragments=2,
  )
  state = rnd.init({"a": jnp.zeros(2), "b": jnp.zeros(1)})
  t = np.array([1.0, 2.0, 3.0], np.float32)
  local, glob = np.zeros(3), np.zeros(3)
  ups = []
  for r in range(4):
    state, m = rnd(state, {"t": jnp.asarray(t)[None, None]})
    local = local - 0.1 * (local - t)  # the client's own model keeps training
    sync = slice(0, 2) if r % 2 == 0 else slice(2, 3)
    glob[sync] = local[sync]  # avg outer, lr 1, one client: x = x_local
    ups.append(float(m["bytes_up"]))
    got = np.concatenate([np.asarray(state.params["a"]), np.asarray(state.params["b"])])
    np.testing.assert_allclose(got, glob, rtol=1e-6)
  assert ups == [8.0, 4.0, 8.0, 4.0]
  assert float(m["bytes_cumulative"]) == 2 * (8 + 8) + 2 * (4 + 4)  # up + down, 4 rounds


def test_streaming_composes_with_compression_and_bad_arguments():
  s, m, _ = _run(2, fragments=2, compressor=C.error_feedback(C.int_quantizer(8, 64)))
  assert np.isfinite(np.asarray(s.params["w"])).all()
  with pytest.raises(ValueError, match="fragments=0"):
    _run(1, fragments=0)
  with pytest.raises(ValueError, match="at most 2 fragments"):
    _run(1, fragments=3)
  with pytest.raises(ValueError, match="down_compressor must be stateless"):
    _run(1, down_compressor=C.error_feedback(C.int_quantizer()))
  with pytest.raises(ValueError, match="bits=3"):
    C.int_quantizer(3)


def test_simulator_reports_bytes_per_server_step():
  from tailopt import asynchronous as A

  def data_fn(worker, job, key):
    return {"x": jax.random.normal(key, (2, 4, 300)), "y": jnp.zeros((2, 4))}

  sim = A.Simulator(
    _loss,
    tailopt.get_method("fedavg"),
    data_fn,
    clock=A.ClockConfig(num_workers=4, speeds="fixed", job_noise="none"),
    config=A.AsyncConfig(scheme="buffered", buffer_size=4, local_steps=2),
    num_steps=2,
  )
  _, m = sim.run(sim.init(P0), 2)
  # Equal speeds: each step applies the 4 Deltas and the 4 workers pull the new model
  # (after the last step nobody pulls: those jobs lie beyond the horizon).
  np.testing.assert_array_equal(m["bytes_up"], [4 * 301 * 4] * 2)
  np.testing.assert_array_equal(m["bytes_down"], [4 * 301 * 4, 0])
