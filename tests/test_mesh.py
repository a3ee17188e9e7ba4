"""Scale-out layouts of the round: the 2-D (clients x model) mesh, one client per device
without vmap, sequential clients, jit-built state, process-local batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tailopt

D_IN, H, N_OUT = 12, 16, 4


def mlp_loss(p, b):
  h = jnp.tanh(b["x"] @ p["w1"] + p["b1"])
  logits = h @ p["w2"] + p["b2"]
  logp = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(logp, b["y"][:, None], axis=1))


def params0():
  # Host draws: a 2-D jax.random draw compiles for a second or two on the 8 CPU devices.
  r = np.random.default_rng(3)
  return {
    "w1": jnp.asarray(r.normal(size=(D_IN, H)) / 4, jnp.float32),
    "b1": jnp.zeros(H),
    "w2": jnp.asarray(r.normal(size=(H, N_OUT)) / 4, jnp.float32),
    "b2": jnp.zeros(N_OUT),
  }


def batch_for(c, z, seed):
  r = np.random.default_rng(seed)
  return {
    "x": r.standard_t(1.5, size=(c, z, 8, D_IN)).astype(np.float32),
    "y": r.integers(0, N_OUT, size=(c, z, 8)).astype(np.int32),
  }


def run(method, mesh, clients=2, z=3, rounds=3, **kw):
  rnd = tailopt.build_round(mlp_loss, method, local_steps=z, num_clients=clients, mesh=mesh, **kw)
  state = rnd.init(params0())
  metrics = []
  for t in range(rounds):
    state, m = rnd(state, rnd.shard_batch(batch_for(clients, z, t)))
    metrics.append(jax.device_get(m))
  return rnd, state, metrics


def shard_bytes(tree):
  """Bytes of the largest per-device share of ``tree``."""
  per = {}
  for x in jax.tree.leaves(tree):
    for s in x.addressable_shards:
      per[s.device] = per.get(s.device, 0) + s.data.size * s.data.dtype.itemsize
  return max(per.values())


@pytest.mark.parametrize(
  "name", ["bi2clip", *(pytest.param(n, marks=pytest.mark.slow) for n in ("adam2", "diloco"))]
)
def test_2d_mesh_matches_replicated(name):
  # Bi2Clip's inner lower clip makes every local step +-lr*d, so a client's summed update
  # can cancel to exactly 0 in one reduction order and to +-1e-10 in another, which the
  # outer BiClip maps to 0 and to +-d (its one discontinuity). The comparison of two
  # layouts' rounding is only meaningful away from it: no inner lower clip here.
  method = tailopt.get_method(name, **({"inner_lower": 0.0} if name == "bi2clip" else {}))
  # The reference keeps the outer state whole on each device (shard_outer=False) to
  # compare per-device bytes; the 2-D round keeps it too ('auto' with a model axis).
  _, ref, ref_m = run(method, tailopt.client_mesh(2), shard_outer=False)
  rnd, st, m = run(method, tailopt.client_mesh(8, model=4))
  assert not rnd.shard_outer
  assert rnd.model_axis == "model"
  for a, b in zip(jax.tree.leaves(ref.params), jax.tree.leaves(st.params)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(ref.inner_state), jax.tree.leaves(st.inner_state)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(m[-1]["loss"], ref_m[-1]["loss"], rtol=1e-5)
  # Parameters and states stay split over the model axis (no gather after a round)...
  assert st.params["w1"].sharding.spec == jax.sharding.PartitionSpec("model", None) or st.params[
    "w1"
  ].sharding.spec == jax.sharding.PartitionSpec(None, "model")
  # ...so each device holds a quarter of them (every leaf here has a dimension % 4 == 0).
  assert shard_bytes(st.params) * 4 == shard_bytes(ref.params)
  if shard_bytes(ref.inner_state) > 1000:  # per-client moments (not just clip stats)
    assert shard_bytes(st.inner_state) * 4 <= shard_bytes(ref.inner_state) + 64
  if name == "adam2":
    assert shard_bytes(st.outer_state) * 4 <= shard_bytes(ref.outer_state) + 64


def test_model_spec_picks_largest_divisible_dim():
  assert tailopt.rounds.model_spec((12, 16), 4, "m") == (None, "m")
  assert tailopt.rounds.model_spec((16, 12), 4, "m") == ("m", None)
  assert tailopt.rounds.model_spec((5, 3), 4, "m") == (None, None)
  assert tailopt.rounds.model_spec((), 4, "m") == ()
  assert tailopt.rounds.model_spec((16,), 1, "m") == (None,)


def test_client_mesh_model_must_divide():
  with pytest.raises(ValueError, match="model=3"):
    tailopt.client_mesh(8, model=3)


def test_unbatched_and_sequential_clients_match_vmap():
  method = tailopt.get_method("adam2")
  # 8 clients on 8 devices: one per device, run unbatched.
  _, one, _ = run(method, tailopt.client_mesh(8), clients=8)
  # The same 8 clients on 2 devices, vmapped and sequential.
  _, vm, _ = run(method, tailopt.client_mesh(2), clients=8, client_loop="vmap")
  _, sq, _ = run(method, tailopt.client_mesh(2), clients=8, client_loop="sequential")
  for a, b, c in zip(jax.tree.leaves(one), jax.tree.leaves(vm), jax.tree.leaves(sq)):
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
      continue
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    if a.shape != b.shape:  # the sharded outer state, padded to a multiple of the devices
      m = min(a.size, b.size)
      a, b, c = a[:m], b[:m], c[:m]
    np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(c, a, rtol=2e-5, atol=1e-6)
  with pytest.raises(ValueError, match="client_loop"):
    tailopt.build_round(mlp_loss, method, local_steps=1, num_clients=8, client_loop="pmap")


def test_auto_client_loop_goes_sequential_for_large_models():
  from tailopt.rounds import AUTO_SEQUENTIAL_BYTES, resolve_client_loop

  n = AUTO_SEQUENTIAL_BYTES // 4  # float32 parameters per client at the threshold
  small = {"w": jnp.zeros((n - 1,), jnp.float32)}
  large = {"w": jnp.zeros((n // 2,), jnp.float32), "b": jnp.zeros((n // 2,), jnp.float32)}
  assert resolve_client_loop("auto", small, None) == "vmap"
  assert resolve_client_loop("auto", large, None) == "sequential"
  # One row per client (streaming): the size of one row counts.
  assert resolve_client_loop("auto", {"w": jnp.zeros((3, n), jnp.float32)}, 0) == "sequential"
  assert resolve_client_loop("auto", {"w": jnp.zeros((3, n - 1), jnp.float32)}, 0) == "vmap"
  assert resolve_client_loop("vmap", large, None) == "vmap"
  assert resolve_client_loop("sequential", small, None) == "sequential"


def test_init_is_sharded_and_owns_its_buffers():
  rnd = tailopt.build_round(mlp_loss, tailopt.get_method("adam2"), local_steps=1, num_clients=16)
  p = params0()
  st = rnd.init(p)
  # Each device holds only its two clients' inner states.
  full = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(st.inner_state))
  assert shard_bytes(st.inner_state) * 8 == full
  st2, _ = rnd(st, rnd.shard_batch(batch_for(16, 1, 0)))
  assert all(not x.is_deleted() for x in jax.tree.leaves(p))  # caller's params intact
  assert st2.params["w1"].dtype == jnp.float32


def test_local_batch_equals_global_batch():
  rnd = tailopt.build_round(mlp_loss, tailopt.get_method("fedavg"), local_steps=2, num_clients=8)
  np.testing.assert_array_equal(rnd.local_clients(), np.arange(8))  # one process
  b = batch_for(8, 2, 0)
  g = rnd.shard_local_batch(b)
  np.testing.assert_array_equal(np.asarray(g["x"]), b["x"])
  assert g["x"].sharding == rnd.shard_batch(b)["x"].sharding
  with pytest.raises(ValueError, match="local batch leaf"):
    rnd.shard_local_batch({"x": b["x"][:3]})


@pytest.mark.parametrize("name", ["bi2clip", pytest.param("adam2", marks=pytest.mark.slow)])
def test_fused_rounds_equal_separate_calls(name):
  method = tailopt.get_method(name)
  z, C, R = 2, 8, 4
  rnd = tailopt.build_round(mlp_loss, method, local_steps=z, num_clients=C, participation=5)
  batches = [batch_for(C, z, t) for t in range(R)]
  a = rnd.init(params0(), seed=1)
  ma = []
  for b in batches:
    a, m = rnd(a, b)
    ma.append(jax.device_get(m))
  b0 = rnd.init(params0(), seed=1)
  stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
  b1, mb = rnd.multi(b0, stacked)
  mb = jax.device_get(mb)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b1)):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))  # bit for bit
  for t in range(R):
    for k in ma[t]:
      np.testing.assert_array_equal(mb[k][t], ma[t][k])
  with pytest.raises(ValueError, match="leading round axis"):
    rnd.multi(b1, batches[0] | {"y": batches[0]["y"][:1]})


def test_participation_computes_only_the_sampled_clients():
  """m = 2 of 16 clients on 2 devices: the round runs 2 clients' local steps, not 16 (the
  compiled program's flops), with the numbers of the masked full computation."""
  method = tailopt.get_method("adam2")
  mesh = tailopt.client_mesh(2)

  def flops(rnd, state, b):
    cost = rnd._step.lower(state, b, np.ones(16, np.float32)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return cost["flops"]

  b = batch_for(16, 3, 0)
  full = tailopt.build_round(
    mlp_loss, method, local_steps=3, num_clients=16, mesh=mesh, donate=False
  )
  part = tailopt.build_round(
    mlp_loss, method, local_steps=3, num_clients=16, mesh=mesh, participation=2, donate=False
  )
  s_full, s_part = full.init(params0()), part.init(params0())
  assert flops(part, s_part, b) < 0.3 * flops(full, s_full, b)
  # Same numbers as weighting the full computation by the same sample.
  st, m = part(s_part, b)
  perm = jax.random.permutation(jax.random.split(s_part.rng)[1], 16)
  w = np.zeros(16, np.float32)
  w[np.asarray(perm[:2])] = 1.0
  ref, mref = full(s_full, b, w)
  for x, y in zip(
    jax.tree.leaves((st.params, st.inner_state, st.outer_state)),
    jax.tree.leaves((ref.params, ref.inner_state, ref.outer_state)),
  ):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5, atol=1e-7)
  assert float(m["participants"]) == 2.0
  np.testing.assert_allclose(m["loss"], mref["loss"], rtol=1e-5)


def test_norm_metrics_of_large_leaves_split_over_devices():
  """delta_norm / update_norm of leaves large enough to be split over the 8 devices (each
  sums its slice) equal the norm of the parameter change."""
  d = 203  # 203 x 203 = 41,209 coordinates: sliced, with a padded last slice
  loss = lambda p, b: jnp.mean((b["x"] @ p["w"] - b["y"]) ** 2) + jnp.sum(p["c"] ** 2)  # noqa
  rnd = tailopt.build_round(
    loss, tailopt.get_method("fedavg", inner_lr=0.1), local_steps=2, num_clients=8, donate=False
  )
  p = {"w": jnp.zeros((d, d)), "c": jnp.ones(3)}
  r = np.random.default_rng(0)
  b = {
    "x": r.normal(size=(8, 2, 4, d)).astype(np.float32),
    "y": r.normal(size=(8, 2, 4, d)).astype(np.float32),
  }
  st = rnd.init(p)
  st2, m = rnd(st, b)
  change = np.sqrt(
    sum(
      np.sum((np.asarray(a, np.float64) - np.asarray(c, np.float64)) ** 2)
      for a, c in zip(jax.tree.leaves(st2.params), jax.tree.leaves(st.params))
    )
  )
  np.testing.assert_allclose(float(m["delta_norm"]), change, rtol=1e-5)
  np.testing.assert_allclose(float(m["update_norm"]), change, rtol=1e-5)
