"""Chunk-wise top-k and scaled-sign codes (tailopt.compression): exact values and bytes by
hand, error feedback with decay, a round, and the config fields."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tailopt
from _compression_helpers import coder
from tailopt import compression as C


def _roundtrip(comp, x, state=None):
  y, payload, state = coder(comp)(x, state, None)
  return np.asarray(y), payload, state


# ------------------------------------------------------------------ top-k
def test_topk_keeps_the_largest_of_each_chunk_with_indices():
  # Chunks of 4: [1, -5, 3, 0.5] keeps -5 (index 1) and 3 (index 2); [2, 0, 0, -1] keeps 2
  # (0) and -1 (3); the tail [7] is a chunk [7, 0, 0, 0] padded: keeps 7 (0) and 0 (1).
  x = jnp.asarray([1.0, -5, 3, 0.5, 2, 0, 0, -1, 7])
  y, p, _ = _roundtrip(C.topk_sparsifier(2, chunk=4), x)
  np.testing.assert_array_equal(y, [0, -5, 3, 0, 2, 0, 0, -1, 7])
  np.testing.assert_array_equal(p["x"]["indices"], [[1, 2], [0, 3], [0, 1]])
  np.testing.assert_array_equal(p["x"]["values"], [[-5, 3], [2, -1], [7, 0]])
  assert p["x"]["indices"].dtype == jnp.uint8
  # Bytes: 3 chunks x 2 kept x (1 index byte + 4 value bytes).
  assert C.payload_bytes(p) == 3 * 2 * (1 + 4)


def test_topk_small_leaf_and_wide_chunk_index_dtype():
  # A leaf smaller than the chunk is one chunk of its own size; k is capped at that size.
  y, p, _ = _roundtrip(C.topk_sparsifier(4, chunk=64), jnp.asarray([3.0, -1.0]))
  np.testing.assert_array_equal(y, [3.0, -1.0])
  assert C.payload_bytes(p) == 2 * (1 + 4)
  # Chunks over 256 coordinates need 2-byte indices.
  x = jnp.arange(600.0) * (-1.0) ** jnp.arange(600)
  y, p, _ = _roundtrip(C.topk_sparsifier(3, chunk=300), x)
  assert p["x"]["indices"].dtype == jnp.uint16
  expect = np.zeros(600)
  expect[[297, 298, 299, 597, 598, 599]] = np.asarray(x)[[297, 298, 299, 597, 598, 599]]
  np.testing.assert_array_equal(y, expect)
  assert C.payload_bytes(p) == 2 * 3 * (2 + 4)


def test_topk_with_quantized_values_by_hand():
  # k = 2 of chunks of 4, 4-bit values with one absmax scale per chunk (qmax 7):
  # chunk [1, -7, 3.5, 0] keeps -7, 3.5: scale 1, codes -7, 4 (3.5 rounds to even 4).
  x = jnp.asarray([1.0, -7.0, 3.5, 0.0])
  y, p, _ = _roundtrip(C.topk_sparsifier(2, chunk=4, value_bits=4), x)
  np.testing.assert_allclose(y, [0.0, -7.0, 4.0, 0.0])
  # Bytes: 2 index bytes + 2 codes in one byte + one float32 scale.
  assert C.payload_bytes(p) == 2 + 1 + 4
  with pytest.raises(ValueError, match="multiple of 4 to pack 2-bit"):
    C.topk_sparsifier(2, chunk=4, value_bits=2)
  with pytest.raises(ValueError, match=r"k=5 must be an integer in \[1, chunk=4\]"):
    C.topk_sparsifier(5, chunk=4)


def test_topk_error_feedback_by_hand_and_sparseloco_decay():
  comp = C.error_feedback(C.topk_sparsifier(1, chunk=2))
  d1 = jnp.asarray([3.0, 2.0])
  y, _, s = _roundtrip(comp, d1)
  np.testing.assert_array_equal(y, [3.0, 0.0])  # sends 3, keeps e = [0, 2]
  np.testing.assert_array_equal(s.residual["x"], [0.0, 2.0])
  y, _, s = _roundtrip(comp, jnp.asarray([1.0, 1.0]), s)  # target [1, 3]: sends 3
  np.testing.assert_array_equal(y, [0.0, 3.0])
  np.testing.assert_array_equal(s.residual["x"], [1.0, 0.0])
  # SparseLoCo: e <- beta e + Delta; send top-k(e); e <- e - sent. beta = 0.5:
  comp = C.error_feedback(C.topk_sparsifier(1, chunk=2), decay=0.5)
  _, _, s = _roundtrip(comp, d1)  # e = [0, 2]
  y, _, s = _roundtrip(comp, jnp.asarray([1.0, 1.5]), s)  # target [1, 1 + 1.5 = 2.5]
  np.testing.assert_array_equal(y, [0.0, 2.5])
  np.testing.assert_array_equal(s.residual["x"], [1.0, 0.0])
  assert comp.name == "ef0.5+top1/2"
  with pytest.raises(ValueError, match="decay=1.5 must be in"):
    C.error_feedback(C.topk_sparsifier(1, 2), decay=1.5)


# ------------------------------------------------------------------ sign
def test_sign_with_block_scale_by_hand():
  # Blocks of 8: [1, -2, 3, -4, 0, 0, 1, 1] has mean |x| 12 / 8 = 1.5; sign(0) = +1.
  # The tail [-3, 6] (padded to 8) counts its 2 coordinates only: scale 9 / 2 = 4.5.
  x = jnp.asarray([1.0, -2, 3, -4, 0, 0, 1, 1, -3, 6])
  y, p, _ = _roundtrip(C.sign_quantizer(8), x)
  np.testing.assert_array_equal(y, [1.5, -1.5, 1.5, -1.5, 1.5, 1.5, 1.5, 1.5, -4.5, 4.5])
  # Signs, most significant bit first: 10101111 = 175; 01 then padding (>= 0) 111111 = 127.
  np.testing.assert_array_equal(p["x"]["signs"], [[175], [127]])
  np.testing.assert_array_equal(p["x"]["scales"], [1.5, 4.5])
  assert C.payload_bytes(p) == 2 * (1 + 4)
  # 1000 coordinates in blocks of 256: 4 blocks of 32 sign bytes + 4 scales.
  _, p, _ = _roundtrip(C.sign_quantizer(256), jnp.ones(1000))
  assert C.payload_bytes(p) == 4 * (32 + 4)
  with pytest.raises(ValueError, match="multiple of 8"):
    C.sign_quantizer(12)


def test_sign_with_error_feedback_recovers_the_sum():
  comp = C.error_feedback(C.sign_quantizer(16))
  rng = np.random.default_rng(0)
  deltas = [jnp.asarray(rng.standard_t(2.0, size=64), jnp.float32) for _ in range(40)]
  state, sent, code = comp.init({"x": deltas[0]}), jnp.zeros(64), coder(comp)
  for d in deltas:
    y, _, state = code(d, state, None)
    sent = sent + y
  np.testing.assert_allclose(sent, sum(deltas) - state.residual["x"], rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ in a round
def _loss(params, batch):
  return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  return {
    "x": rng.normal(size=(8, 2, 4, 300)).astype(np.float32),
    "y": rng.normal(size=(8, 2, 4)).astype(np.float32),
  }


def test_topk_round_bytes_and_mean_of_the_decoded_codes():
  # fedavg with inner lr 0.05, avg outer lr 1: x_1 = mean_i topk(Delta_i) exactly.
  method = tailopt.get_method("fedavg", inner_lr=0.05)
  p0 = {"w": jnp.zeros(300), "b": jnp.zeros(())}
  comp = C.topk_sparsifier(8, chunk=64)
  rnd = tailopt.build_round(_loss, method, local_steps=2, num_clients=8, compressor=comp)
  b = _batch()
  s, m = rnd(rnd.init(p0), b)
  # Bytes: w = 5 chunks of 64 (300 padded to 320) x 8 x (1 + 4); b = one chunk of 1 x (1 + 4).
  assert float(m["bytes_up"]) == 5 * 8 * 5 + 5
  # The dense round's client Deltas, one client at a time (one device), then top-k each.
  one = tailopt.build_round(
    _loss, method, local_steps=2, num_clients=1, mesh=tailopt.client_mesh(1)
  )
  want = np.zeros(300)

  @jax.jit
  def topk_of_delta(params):
    delta = {k: p0[k] - params[k] for k in p0}  # outer lr 1: x_1 = x_0 - Delta
    return comp.decompress(comp.compress(delta, None, None)[0], delta)["w"]

  for i in range(8):
    si, _ = one(one.init(p0), jax.tree.map(lambda a, i=i: a[i : i + 1], b))
    want += np.asarray(topk_of_delta(si.params)) / 8
  np.testing.assert_allclose(np.asarray(s.params["w"]), -want, rtol=1e-5, atol=1e-7)
  # At most 8 clients x 5 chunks x 8 kept coordinates are nonzero (of 300).
  assert 0 < np.count_nonzero(np.asarray(s.params["w"])) <= 8 * 5 * 8


def test_config_fields_build_and_validate():
  from configs import synthetic
  from experiments import validate
  from experiments.engines import build

  c = synthetic.get_config()
  c.compression.kind, c.compression.topk, c.compression.block = "topk", 4, 64
  c.compression.error_feedback, c.compression.ef_decay = True, 0.9
  validate.validate(c)
  up, _ = build.compressors(c, build.make_method(c))
  assert up.name == "ef0.9+top4/64,int8"  # bits (default 8): the values' codes
  c.compression.bits = 32
  assert build.compressors(c, build.make_method(c))[0].name == "ef0.9+top4/64"
  c.compression.kind, c.compression.topk = "sign", 0
  assert build.compressors(c, build.make_method(c))[0].name == "ef0.9+sign/64"
  for fields, needle in [
    (dict(kind="topk", topk=0), "config.compression.topk=0: kind='topk' keeps"),
    (dict(kind="topk", topk=65, block=64), "config.compression.topk=65"),
    (dict(kind="topk", topk=2, bits=2), "config.compression.topk=2 must be a multiple of 4"),
    (dict(kind="int", topk=3), "config.compression.topk=3 is only used with"),
    (dict(kind="sign", block=12), "kind='sign' packs 8 signs a byte"),
    (dict(kind="int", error_feedback=False, ef_decay=0.5), "ef_decay=0.5 decays the error"),
    (dict(kind="bogus"), "config.compression.kind='bogus' is unknown"),
  ]:
    c = synthetic.get_config()
    for k, v in fields.items():
      c.compression[k] = v
    assert any(needle in p for p in validate.problems(c)), (fields, validate.problems(c))


@pytest.mark.slow
@pytest.mark.parametrize(
  "comp",
  [
    C.error_feedback(C.topk_sparsifier(4, chunk=64, value_bits=4), decay=0.9),
    C.error_feedback(C.sign_quantizer(64)),
  ],
  ids=lambda c: c.name,
)
def test_sparse_codes_eight_devices_equal_one(comp):
  # The payloads (indices, packed codes, scales) gathered over 8 devices decode to what one
  # device computes for all 8 clients; the per-client residuals stay with their clients.
  method = tailopt.get_method("bi2clip", inner_lr=0.05)
  p0 = {"w": jnp.zeros(300), "b": jnp.zeros(())}
  out = []
  for mesh in (None, tailopt.client_mesh(1)):
    rnd = tailopt.build_round(
      _loss, method, local_steps=2, num_clients=8, mesh=mesh, compressor=comp
    )
    state = rnd.init(p0)
    for t in range(3):
      state, m = rnd(state, _batch(t))
    out.append((jax.device_get(state), jax.device_get(m)))
  (s8, m8), (s1, m1) = out
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s8.params, s1.params
  )
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
    s8.comm_state.residual,
    s1.comm_state.residual,
  )
  assert float(m8["bytes_up"]) == float(m1["bytes_up"])


def test_bench_round_names_the_sparse_codes():
  from experiments.bench_round import compressed_round

  method = tailopt.get_method("bi2clip")
  assert compressed_round("ef+top8", method, 4)["compressor"].name == "ef+top8/256"
  assert compressed_round("sign", method, 4)["compressor"].name == "sign/256"
