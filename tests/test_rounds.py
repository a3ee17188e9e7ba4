"""The shard_map round: reductions to FedAvg and SGD, device-count invariance, options."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tailopt

D, B = 5, 4


def loss_fn(p, b):
  return jnp.mean((b["x"] @ p["w"] + p["c"] - b["y"]) ** 2)


def make_batch(c, z, seed=0):
  r = np.random.default_rng(seed)
  return {
    "x": r.normal(size=(c, z, B, D)).astype(np.float32),
    "y": (r.standard_cauchy(size=(c, z, B))).astype(np.float32),
  }


def params0():
  return {"w": jnp.full((D,), 0.1), "c": jnp.zeros(())}


def np_grad(w, c, x, y):
  r = x @ w + c - y
  return 2 * x.T @ r / len(y), 2 * np.mean(r)


def test_fedavg_equals_average_of_local_sgd():
  C, z, lr = 16, 3, 0.05
  rnd = tailopt.build_round(
    loss_fn, tailopt.get_method("fedavg", inner_lr=lr), local_steps=z, num_clients=C
  )
  state = rnd.init(params0())
  w, c = np.full(D, 0.1), 0.0
  for t in range(2):
    batch = make_batch(C, z, seed=t)
    state, metrics = rnd(state, batch)
    ws, cs = [], []
    for i in range(C):
      wi, ci = w.copy(), c
      for s in range(z):
        gw, gc = np_grad(wi, ci, batch["x"][i, s], batch["y"][i, s])
        wi, ci = wi - lr * gw, ci - lr * gc
      ws.append(wi)
      cs.append(ci)
    dw, dc = w - np.mean(ws, 0), c - np.mean(cs)
    w, c = w - dw, c - dc
    np.testing.assert_allclose(state.params["w"], w, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(state.params["c"], c, rtol=2e-5, atol=1e-6)
    assert float(metrics["delta_norm"]) == pytest.approx(np.sqrt(np.sum(dw**2) + dc**2), rel=1e-4)
  assert int(state.round) == 2


def test_one_node_one_step_is_clipped_sgd():
  mesh = tailopt.client_mesh(1)
  m = tailopt.get_method("avg-biclip", inner_lr=0.1, inner_upper=0.5, inner_lower=0.05)
  rnd = tailopt.build_round(loss_fn, m, local_steps=1, num_clients=1, mesh=mesh)
  state = rnd.init(params0())
  tx = optax.chain(tailopt.bi_clip(0.5, 0.05), optax.sgd(0.1))
  p = params0()
  s = tx.init(p)
  for t in range(3):
    batch = make_batch(1, 1, seed=t)
    state, _ = rnd(state, batch)
    g = jax.grad(loss_fn)(p, jax.tree.map(lambda a: a[0, 0], batch))
    u, s = tx.update(g, s, p)
    p = optax.apply_updates(p, u)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), state.params, p)


@pytest.mark.parametrize(
  "name,kw",
  [
    ("bi2clip", dict(inner_lower=0.05)),
    pytest.param("adam2", dict(participation=5), marks=pytest.mark.slow),
    pytest.param("diloco", dict(reset_inner_state=True), marks=pytest.mark.slow),
  ],
)
def test_one_device_vmap_equals_eight_device_shard_map(name, kw):
  C, z = 16, 2
  noise = tailopt.inject_noise("stable", 0.3, alpha=1.5, seed=3)
  hp = {k: v for k, v in kw.items() if k == "inner_lower"}
  opts = {k: v for k, v in kw.items() if k != "inner_lower"}
  results = []
  for n_dev in (1, 8):
    rnd = tailopt.build_round(
      loss_fn,
      tailopt.get_method(name, **hp),
      local_steps=z,
      num_clients=C,
      mesh=tailopt.client_mesh(n_dev),
      noise=noise,
      **opts,
    )
    state = rnd.init(params0(), seed=1)
    for t in range(3):
      state, metrics = rnd(state, make_batch(C, z, seed=t))
    results.append((jax.device_get(state.params), jax.device_get(metrics)))
  (p1, m1), (p8, m8) = results
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p1, p8)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), m1, m8)


def test_bi2clip_round_state_holds_no_arrays():
  rnd = tailopt.build_round(
    loss_fn, tailopt.get_method("bi2clip", clip_stats=False), local_steps=2, num_clients=8
  )
  state = rnd.init(params0())
  assert jax.tree.leaves(state.inner_state) == []
  assert jax.tree.leaves(state.outer_state) == []
  # With clip statistics: one float32 scalar per client per measurement, nothing more.
  rnd = tailopt.build_round(loss_fn, tailopt.get_method("bi2clip"), local_steps=2, num_clients=8)
  state = rnd.init(params0())
  assert [x.shape for x in jax.tree.leaves(state.inner_state)] == [(8,), (8,)]
  assert [x.shape for x in jax.tree.leaves(state.outer_state)] == [(), ()]


def test_weighted_aggregation():
  C, z, lr = 8, 1, 0.1
  weights = np.arange(1, C + 1, dtype=np.float32)
  batch = make_batch(C, z)
  rnd = tailopt.build_round(
    loss_fn, tailopt.get_method("fedavg", inner_lr=lr), local_steps=z, num_clients=C
  )
  state, _ = rnd(rnd.init(params0()), batch, weights=weights)
  gws = [np_grad(np.full(D, 0.1), 0.0, batch["x"][i, 0], batch["y"][i, 0])[0] for i in range(C)]
  want = 0.1 - lr * np.tensordot(weights, np.array(gws), 1) / weights.sum()
  np.testing.assert_allclose(state.params["w"], want, rtol=1e-5)


def test_partial_participation_keeps_absent_inner_state():
  C, z = 8, 2
  rnd = tailopt.build_round(
    loss_fn, tailopt.get_method("adam2"), local_steps=z, num_clients=C, participation=3
  )
  state = rnd.init(params0())
  state, metrics = rnd(state, make_batch(C, z))
  counts = np.asarray(state.inner_state[0].count)
  assert float(metrics["participants"]) == 3
  assert sorted(counts.tolist()) == [0] * 5 + [z] * 3


def test_reset_inner_state_forgets_previous_rounds():
  C, z = 8, 2
  batch = make_batch(C, z, seed=5)
  outs = {}
  for reset in (False, True):
    rnd = tailopt.build_round(
      loss_fn,
      tailopt.get_method("adam2"),
      local_steps=z,
      num_clients=C,
      reset_inner_state=reset,
      donate=False,
    )
    state = rnd.init(params0())
    warmed, _ = rnd(state, make_batch(C, z, seed=9))
    # Same params, one state with history and one fresh: the next round must agree iff reset.
    fresh = warmed._replace(inner_state=rnd.init(warmed.params).inner_state)
    a, _ = rnd(warmed, batch)
    b, _ = rnd(fresh, batch)
    outs[reset] = np.allclose(a.params["w"], b.params["w"], rtol=1e-6)
  assert outs == {False: False, True: True}


def test_noise_streams_differ_per_client():
  rnd = tailopt.build_round(
    loss_fn,
    tailopt.get_method("fedavg"),
    local_steps=1,
    num_clients=8,
    noise=tailopt.inject_noise("cauchy", 1.0),
  )
  keys = jax.random.key_data(rnd.init(params0()).noise_state.rng_key)
  assert len({tuple(np.asarray(k).ravel()) for k in keys}) == 8


def test_compiles_once_for_a_run(caplog):
  rnd = tailopt.build_round(loss_fn, tailopt.get_method("bi2clip"), local_steps=2, num_clients=8)
  state = rnd.init({"w": jnp.full((D,), 0.1), "c": jnp.zeros(())})  # weakly typed w
  with jax.log_compiles(True), caplog.at_level(logging.DEBUG):
    for t in range(4):
      state, m = rnd(state, make_batch(8, 2, seed=t))
      jax.block_until_ready(m)
  compiles = [r for r in caplog.records if "Compiling jit(step)" in r.getMessage()]
  assert len(compiles) == 1


def test_clip_metrics_count_inner_and_outer_clipping():
  # Huge thresholds -> nothing clipped; tiny upper -> everything clipped from above.
  m_none = tailopt.get_method(
    "bi2clip", inner_upper=1e9, inner_lower=0.0, outer_upper=1e9, outer_lower=0.0
  )
  m_all = tailopt.get_method(
    "bi2clip", inner_upper=1e-2, inner_lower=0.0, outer_upper=1e-9, outer_lower=0.0
  )
  for m, want in ((m_none, 0.0), (m_all, 1.0)):
    rnd = tailopt.build_round(loss_fn, m, local_steps=2, num_clients=8)
    batch = make_batch(8, 2)
    batch["x"], batch["y"] = np.abs(batch["x"]), np.full_like(batch["y"], -100.0)
    _, metrics = rnd(rnd.init(params0()), batch)  # every gradient coordinate > 0
    assert float(metrics["inner_clip_above"]) == pytest.approx(want)
    assert float(metrics["outer_clip_above"]) == pytest.approx(want)


def test_errors_name_the_problem():
  m = tailopt.get_method("fedavg")
  with pytest.raises(ValueError, match="num_clients=12 is not divisible by the 8 devices"):
    tailopt.build_round(loss_fn, m, local_steps=1, num_clients=12)
  with pytest.raises(ValueError, match="local_steps \\(z\\) must be an integer >= 1"):
    tailopt.build_round(loss_fn, m, local_steps=0, num_clients=8)
  rnd = tailopt.build_round(loss_fn, m, local_steps=2, num_clients=8)
  with pytest.raises(ValueError, match="batch leaf \\['x'\\] has shape \\(8, 3, 4, 5\\)"):
    rnd(rnd.init(params0()), make_batch(8, 3))
  with pytest.raises(ValueError, match="participation=9"):
    tailopt.build_round(loss_fn, m, local_steps=1, num_clients=8, participation=9)


def test_user_input_errors_are_one_line_from_the_api():
  """Each mistake a caller can make with a round raises one ValueError at the call, naming
  the leaf or shape, instead of a traceback from inside tracing."""
  m = tailopt.get_method("fedavg", inner_lr=0.1)
  rnd = tailopt.build_round(loss_fn, m, local_steps=2, num_clients=8)
  good = make_batch(8, 2)
  state = rnd.init(params0())
  uneven = dict(good, y=np.ones((8, 2, B + 1), np.float32))
  with pytest.raises(ValueError, match=r"different minibatch sizes .*\['y'\]\": 5"):
    rnd(state, uneven)
  wide = dict(good, x=np.ones((8, 2, B, D + 1), np.float32))
  with pytest.raises(ValueError, match=r"fails on one client's minibatch .*'x': \(4, 6\)"):
    rnd(state, wide)
  with pytest.raises(ValueError, match=r"params leaf \['w'\] has dtype int32"):
    rnd.init({"w": jnp.zeros((D,), jnp.int32), "c": jnp.zeros(())})
  vec = tailopt.build_round(
    lambda p, b: (b["x"] @ p["w"] + p["c"] - b["y"]) ** 2, m, local_steps=2, num_clients=8
  )
  with pytest.raises(ValueError, match=r"must return a scalar .* returned \(4,\)"):
    vec(vec.init(params0()), good)
  aux = tailopt.build_round(loss_fn, m, local_steps=2, num_clients=8, has_aux=True)
  with pytest.raises(ValueError, match="has_aux=True but loss_fn returned a single value"):
    aux(aux.init(params0()), good)
  with pytest.raises(ValueError, match="different minibatch sizes"):
    rnd.multi(state, jax.tree.map(lambda x: x[None], uneven))
  # The good batch still runs after the refusals, and the check runs once per signature.
  state, _ = rnd(state, good)
  assert len(rnd.checked_batches) == 1


def test_error_feedback_and_client_store_refuse_bad_arguments():
  with pytest.raises(TypeError, match="error_feedback needs a Compressor .* got NoneType"):
    tailopt.compression.error_feedback(None)
  store = tailopt.ClientStateStore({"a": jnp.zeros(3)})
  with pytest.raises(ValueError, match=r"4 ids but stacked leaves have shapes \[\(2, 3\)\]"):
    store.scatter(np.arange(4), {"a": np.zeros((2, 3))})
  assert len(store) == 0  # nothing half-stored


def _scan_body_copies(hlo: str, shape: str) -> int:
  """Copies of an array of ``shape`` (e.g. 'f32[96,96]') inside the while bodies of a
  compiled program's HLO text."""
  import re

  bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
  count, current = 0, None
  for line in hlo.splitlines():
    if not line.startswith(" "):
      m = re.match(r"^%?(\S+) .*\{$", line)
      current = m.group(1) if m else None
    elif current in bodies and re.match(rf"\s*\S+ = {re.escape(shape)}\S* copy\(", line):
      count += 1
  return count


@pytest.mark.parametrize("clients", [8, 16])
def test_local_steps_update_the_carry_in_place(clients):
  """The z local steps write each new weight matrix over the old one: no copy of a
  carried matrix inside the scan (XLA's CPU copy insertion without region analysis copies
  every one at the top of each step). Checked on the compiled program, not by timing."""
  W = 96

  def mlp(p, b):
    h = jnp.tanh(b["x"] @ p["w1"])
    return jnp.mean((jnp.tanh(h @ p["w2"]) @ p["w3"] - b["y"]) ** 2)

  r = np.random.default_rng(0)
  params = {k: jnp.asarray(r.normal(size=(W, W)) / W, jnp.float32) for k in ("w1", "w2")}
  params["w3"] = jnp.zeros((W,), jnp.float32)
  rnd = tailopt.build_round(mlp, tailopt.get_method("fedavg"), local_steps=3, num_clients=clients)
  state = rnd.init(params)
  batch = rnd.shard_batch(
    {"x": np.zeros((clients, 3, 4, W), np.float32), "y": np.zeros((clients, 3, 4), np.float32)}
  )
  w = rnd.place_clients(np.ones((clients,), np.float32))
  hlo = rnd.compiled_step.lower(state, batch, w).compile().as_text()
  assert "while" in hlo
  assert _scan_body_copies(hlo, f"f32[{W},{W}]") == 0
