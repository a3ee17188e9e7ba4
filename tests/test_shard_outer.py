"""The sharded server step (``build_round(shard_outer=...)``): an elementwise outer rule's
state and step split over the client devices (reduce-scatter, the rule on each device's
shard, all-gather) give the replicated step's numbers; its state really is split; it
resumes from a checkpoint; settings it does not support are refused in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import tailopt
from tailopt import shard_layout

D_IN, H, N_OUT = 12, 16, 4


def mlp_loss(p, b):
  h = jnp.tanh(b["x"] @ p["w1"] + p["b1"])
  logp = jax.nn.log_softmax(h @ p["w2"] + p["b2"])
  return -jnp.mean(jnp.take_along_axis(logp, b["y"][:, None], axis=1))


def params0():
  k1, k2 = jax.random.split(jax.random.key(3))
  return {
    # 12 x 16 = 192 and 16 x 4 = 64 coordinates: w1 and b1 split evenly over 8 devices,
    # b2 (4) and w2's shards padded; b1 (16) has 2 per device.
    "w1": jax.random.normal(k1, (D_IN, H), jnp.float32) / 4,
    "b1": jnp.zeros(H, jnp.float32),
    "w2": jax.random.normal(k2, (H, N_OUT), jnp.float32) / 4,
    "b2": jnp.full(N_OUT, 0.1, jnp.float32),
  }


def batch_for(c, z, seed):
  r = np.random.default_rng(seed)
  return {
    "x": r.standard_t(1.5, size=(c, z, 8, D_IN)).astype(np.float32),
    "y": r.integers(0, N_OUT, size=(c, z, 8)).astype(np.int32),
  }


def run(name, shard_outer, clients, rounds=3, z=2, weights=None, **kw):
  rnd = tailopt.build_round(
    mlp_loss,
    tailopt.get_method(name),
    local_steps=z,
    num_clients=clients,
    shard_outer=shard_outer,
    **kw,
  )
  state = rnd.init(params0(), seed=1)
  metrics = []
  for t in range(rounds):
    w = None if weights is None else weights[t]
    state, m = rnd(state, batch_for(clients, z, t), w)
    metrics.append(jax.device_get(m))
  return rnd, state, metrics


def per_coordinate_leaves(rnd, state):
  """The outer state's per-coordinate leaves (those split over the client axis)."""
  specs = rnd.parts.schedule.outer_specs(state.params, rnd.parts.server, rnd.axis_name)
  leaves = jax.tree.leaves(state.outer_state)
  spec_leaves = jax.tree.leaves(specs, is_leaf=lambda s: isinstance(s, P))
  return [x for x, s in zip(leaves, spec_leaves) if s == P(rnd.axis_name)]


def _close(b, a, rtol):
  """float32 sums in another reduction order: relative error rtol, and near the zeros that
  cancellation leaves, an absolute error of rtol times the leaf's largest magnitude (a
  momentum coordinate of 4e-4 summed from terms of 1e-2 differs by ~3e-9 on some CPUs)."""
  a, b = np.asarray(a), np.asarray(b)
  scale = float(np.abs(a).max()) if a.size else 0.0
  np.testing.assert_allclose(b, a, rtol=rtol, atol=max(1e-9, rtol * scale))


def assert_same_run(ref, sharded, rtol):
  (r_rnd, r_state, r_m), (s_rnd, s_state, s_m) = ref, sharded
  assert not r_rnd.shard_outer and s_rnd.shard_outer
  for a, b in zip(jax.tree.leaves(r_state.params), jax.tree.leaves(s_state.params)):
    _close(b, a, rtol)
  # The outer state: the replicated one's leaves, flattened, are the sharded one's whole
  # leaves without their padding (scalars such as Adam's count equal).
  for a, b in zip(jax.tree.leaves(r_state.outer_state), jax.tree.leaves(s_state.outer_state)):
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0:  # a scalar (Adam's count): replicated as it was
      assert b.shape == ()
      np.testing.assert_array_equal(b, a)
      continue
    assert b.shape == (shard_layout.chunk(a.size, 8) * 8,)
    _close(b[: a.size], a.ravel(), rtol)
    np.testing.assert_array_equal(b[a.size :], 0.0)  # the padding stays 0
  for a, b in zip(jax.tree.leaves(r_state.inner_state), jax.tree.leaves(s_state.inner_state)):
    _close(b, a, rtol)
  for t in range(len(r_m)):
    assert set(r_m[t]) == set(s_m[t])
    for k in r_m[t]:  # the norms are summed in another order: equal to a few ulps
      np.testing.assert_allclose(s_m[t][k], r_m[t][k], rtol=1e-5, err_msg=k)


@pytest.mark.parametrize(
  "name,clients,kw",
  [
    ("adam2", 8, {}),
    # One representative in the default suite; the others behind `slow`.
    pytest.param("diloco", 16, dict(participation=5), marks=pytest.mark.slow),
    pytest.param("fedadam", 16, dict(weighted=True), marks=pytest.mark.slow),
    pytest.param("adam2", 16, dict(participation=11, weighted=True), marks=pytest.mark.slow),
  ],
)
def test_sharded_step_equals_the_replicated_step(name, clients, kw):
  kw = dict(kw)
  weights = None
  if kw.pop("weighted", False):
    weights = np.random.default_rng(7).integers(1, 30, size=(3, clients)).astype(np.float32)
  ref = run(name, False, clients, weights=weights, **kw)
  sharded = run(name, "auto", clients, weights=weights, **kw)
  assert_same_run(ref, sharded, rtol=1e-6)
  assert float(sharded[2][-1]["delta_norm"]) > 0 and float(sharded[2][-1]["update_norm"]) > 0


@pytest.mark.slow
def test_sharded_step_under_x64():
  with jax.enable_x64(True):
    ref = run("adam2", False, 8, rounds=2)
    sharded = run("adam2", True, 8, rounds=2)
    assert sharded[1].params["w1"].dtype == jnp.float32
  assert_same_run(ref, sharded, rtol=1e-6)


def test_outer_state_is_split_over_the_client_axis():
  rnd = tailopt.build_round(
    mlp_loss, tailopt.get_method("adam2"), local_steps=1, num_clients=8, donate=False
  )
  assert rnd.shard_outer  # 'auto': an elementwise rule with per-coordinate moments
  st = rnd.init(params0())
  for state in (st, rnd(st, batch_for(8, 1, 0))[0]):
    count, *moments = jax.tree.leaves(state.outer_state)
    assert count.shape == () and count.sharding.spec == P()
    assert len(moments) == 8  # mu and nu of the 4 leaves
    for x in moments:
      assert x.ndim == 1 and x.shape[0] % 8 == 0
      assert x.sharding.spec == P("clients")
      assert {s.data.shape for s in x.addressable_shards} == {(x.shape[0] // 8,)}
    assert len(per_coordinate_leaves(rnd, state)) == 8
    assert all(a is None for a in state.params["w1"].sharding.spec)  # the params stay whole


def test_multi_equals_separate_calls_bit_for_bit():
  rnd = tailopt.build_round(
    mlp_loss, tailopt.get_method("adam2"), local_steps=2, num_clients=8, participation=5
  )
  assert rnd.shard_outer
  batches = [batch_for(8, 2, t) for t in range(3)]
  a = rnd.init(params0(), seed=2)
  for b in batches:
    a, _ = rnd(a, b)
  stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
  m, _ = rnd.multi(rnd.init(params0(), seed=2), stacked)
  for x, y in zip(
    jax.tree.leaves((a.params, a.outer_state)), jax.tree.leaves((m.params, m.outer_state))
  ):
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    assert x.sharding == y.sharding


def test_checkpoint_restores_the_sharded_state_and_resumes_bit_for_bit(tmp_path):
  from experiments import checkpoint as ckpt_lib

  rnd = tailopt.build_round(mlp_loss, tailopt.get_method("diloco"), local_steps=2, num_clients=8)
  assert rnd.shard_outer
  state = rnd.init(params0())
  for t in range(2):
    state, _ = rnd(state, batch_for(8, 2, t))
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), every=1)
  ckpt.save(2, state, {"fingerprint": "x"})
  straight = state
  for t in (2, 3):
    straight, m_straight = rnd(straight, batch_for(8, 2, t))
  restored, _ = ckpt.restore(rnd.init(params0()), "x")
  ckpt.close()
  for x in per_coordinate_leaves(rnd, restored):
    assert x.sharding.spec == P("clients")
  assert int(restored.round) == 2
  for t in (2, 3):
    restored, m_restored = rnd(restored, batch_for(8, 2, t))
  for x, y in zip(jax.tree.leaves(straight), jax.tree.leaves(restored)):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
  for k in m_straight:
    np.testing.assert_array_equal(m_restored[k], m_straight[k])


def test_auto_keeps_the_replicated_step_where_it_does_not_apply():
  build = lambda m, **kw: tailopt.build_round(  # noqa: E731
    mlp_loss, m, local_steps=1, num_clients=8, **kw
  )
  get = tailopt.get_method
  assert build(get("fedyogi")).shard_outer and build(get("fedadagrad")).shard_outer
  assert build(get("avgm-sgd")).shard_outer
  assert not build(get("fedavg")).shard_outer  # no state to split
  assert not build(get("bi2clip")).shard_outer  # clip statistics: not elementwise
  assert not get("biclip-adam").outer_elementwise
  mine = tailopt.Method(inner=optax.sgd(0.1), outer=optax.adam(0.01))
  assert not build(mine).shard_outer  # undeclared: replicated unless forced
  assert build(mine, shard_outer=True).shard_outer
  assert not build(get("adam2"), compressor=tailopt.compression.int_quantizer(8)).shard_outer
  assert not build(get("adam2"), mesh=tailopt.client_mesh(8, model=4)).shard_outer
  assert not build(get("adam2"), mesh=tailopt.client_mesh(1)).shard_outer
  assert not build(get("adam2"), shard_outer=False).shard_outer


def test_a_forced_user_rule_matches_the_replicated_step():
  """``shard_outer=True`` with your own rule (your declaration that it is elementwise):
  optax's Adam followed by a constant shift, whose update on the padding is not 0 (the
  padding must count neither in ``update_norm`` nor in the params)."""
  shift = optax.stateless(lambda u, p: jax.tree.map(lambda x: x + 0.01, u))
  mine = tailopt.Method(inner=optax.sgd(0.05), outer=optax.chain(optax.adam(0.01), shift))
  out = []
  for so in (False, True):
    rnd = tailopt.build_round(mlp_loss, mine, local_steps=2, num_clients=8, shard_outer=so)
    st = rnd.init(params0())
    for t in range(2):
      st, m = rnd(st, batch_for(8, 2, t))
    out.append((st.params, jax.device_get(m)))
  for a, b in zip(jax.tree.leaves(out[0][0]), jax.tree.leaves(out[1][0])):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-9)
  for k in ("delta_norm", "update_norm"):
    np.testing.assert_allclose(out[1][1][k], out[0][1][k], rtol=1e-5)


def _stacked_state():
  def init(p):
    return jax.tree.map(lambda x: jnp.zeros((2,) + x.shape, x.dtype), p)

  return optax.GradientTransformation(init, lambda u, s, p=None: (u, s))


@pytest.mark.parametrize(
  "kw,match",
  [
    (dict(compressor="int8"), "does not support compressor="),
    (dict(down_compressor="int8"), "does not support down_compressor="),
    (dict(fragments=2), "does not support fragments="),
    (dict(mesh="2d"), "does not support a model axis"),
    (dict(shard_outer="yes"), "shard_outer='yes'"),
  ],
)
def test_unsupported_settings_are_refused_in_one_line(kw, match):
  kw = dict(kw)
  for key in ("compressor", "down_compressor"):
    if key in kw:
      kw[key] = tailopt.compression.int_quantizer(8)
  if kw.get("mesh") == "2d":
    kw["mesh"] = tailopt.client_mesh(8, model=4)
  kw.setdefault("shard_outer", True)
  with pytest.raises(ValueError, match=match) as e:
    tailopt.build_round(mlp_loss, tailopt.get_method("adam2"), local_steps=1, num_clients=8, **kw)
  assert "\n" not in str(e.value)


def test_a_rule_that_is_not_elementwise_is_refused():
  # A state leaf that is neither per-coordinate nor a scalar.
  m = tailopt.Method(inner=optax.sgd(0.1), outer=_stacked_state())
  rnd = tailopt.build_round(mlp_loss, m, local_steps=1, num_clients=8, shard_outer=True)
  with pytest.raises(ValueError, match="not elementwise") as e:
    rnd.init(params0())
  assert "\n" not in str(e.value)
  # Clip statistics over the whole update (a scalar that depends on every coordinate).
  clip = tailopt.monitor_clip(tailopt.l2_clip(1.0))
  m = tailopt.Method(inner=optax.sgd(0.1), outer=optax.chain(clip, optax.adam(0.01)))
  rnd = tailopt.build_round(mlp_loss, m, local_steps=1, num_clients=8, shard_outer=True)
  with pytest.raises(ValueError, match="not elementwise"):
    rnd(rnd.init(params0()), batch_for(8, 1, 0))


def test_layout_scatter_and_gather_round_trip():
  """The layout on its own: the reduce-scatter of n copies is n times each device's shard
  of the tree, and the all-gather of the shards is the tree (odd sizes, packed and large
  leaves, two dtypes)."""
  mesh = tailopt.client_mesh(8)
  n = 8
  r = np.random.default_rng(0)
  ints = lambda *shape: r.integers(-9, 10, size=shape)  # noqa: E731 -- sums are exact
  tree = {
    "a": jnp.asarray(ints(3, 5), jnp.float32),
    "b": jnp.asarray(ints(7), jnp.float32),
    "big": jnp.asarray(ints(shard_layout.PACK_LIMIT + 3), jnp.float32),
    "h": jnp.asarray(ints(11), jnp.bfloat16),
    "s": jnp.asarray(2.0, jnp.float32),
  }

  def body(t):
    mine = shard_layout.local_shard(t, "clients", n)
    summed = shard_layout.scatter_sum(t, "clients", n)
    back = shard_layout.gather(mine, t, "clients", n)
    ok = jax.tree.map(lambda s, m: jnp.all(s == n * m), summed, mine)
    return back, jax.lax.pmin(jnp.stack(jax.tree.leaves(ok)).all().astype(jnp.int32), "clients")

  back, ok = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=P(), out_specs=(P(), P())))(tree)
  assert int(ok) == 1
  for k in tree:
    np.testing.assert_array_equal(np.asarray(back[k]), np.asarray(tree[k]))
