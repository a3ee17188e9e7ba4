"""Tests for the character-level causal transformer LM."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from experiments.models.char_transformer import make_char_transformer
from experiments.models.testing import check_contract

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

CFG = dict(vocab_size=90, d_model=32, num_layers=2, num_heads=4, seq_len=24)


def _batch(b=4, length=24, vocab=90, seed=0):
  rng = np.random.default_rng(seed)
  # Periodic "text" so the next char is predictable.
  base = rng.integers(0, vocab, size=7)
  seq = np.stack([np.roll(np.tile(base, 10), -i)[: length + 1] for i in range(b)]).astype(np.int32)
  return {"x": jnp.asarray(seq[:, :-1]), "y": jnp.asarray(seq[:, 1:])}


@pytest.fixture(scope="module")
def model():
  return make_char_transformer(**CFG)


def test_shapes_and_causality(model):
  params = model.init(jax.random.key(1))
  assert params["layers"]["attn"]["q"]["w"].shape == (2, 32, 32)
  assert model.meta["num_params"] == sum(x.size for x in jax.tree.leaves(params))
  apply = jax.jit(model.meta["apply"])
  x = _batch()["x"]
  a = apply(params, x)
  assert a.shape == (4, 24, 90)
  # changing a future token must not change earlier logits
  b = apply(params, x.at[:, 10].set((x[:, 10] + 1) % 90))
  np.testing.assert_allclose(a[:, :10], b[:, :10], atol=1e-5)
  assert not np.allclose(a[:, 10:], b[:, 10:])


def test_contract_and_training(model):
  out = check_contract(model, _batch(), lr=0.5, steps=20)
  assert out["loss0"] > np.log(90) - 1.0
  assert out["loss_end"] < 0.7 * out["loss0"]


def test_mask_and_trainable_last_layer():
  model = make_char_transformer(**CFG, trainable="last_n_layers:1")
  params = model.init(jax.random.key(0))
  assert set(params) == {"layers", "head", "final_ln"}
  assert params["layers"]["ln1"]["scale"].shape == (1, 32)
  assert model.meta["frozen"]["frozen_layers"]["ln1"]["scale"].shape == (1, 32)
  b = _batch()
  mask = jnp.zeros_like(b["x"], jnp.float32).at[:, :5].set(1.0)

  # as in a training round: per-client grads, vmapped, inside shard_map over a client mesh
  mesh = jax.make_mesh((2,), ("clients",))
  cbatch = jax.device_put(
    jax.tree.map(lambda x: jnp.stack([x, x[::-1]]), {**b, "mask": mask}),
    NamedSharding(mesh, P("clients")),
  )
  params = jax.device_put(params, NamedSharding(mesh, P()))
  sharded_grads = jax.shard_map(
    lambda p, cb: jax.vmap(jax.grad(model.loss), in_axes=(None, 0))(p, cb),
    mesh=mesh,
    in_specs=(P(), P("clients")),
    out_specs=P("clients"),
  )

  @jax.jit
  def f(p):
    return model.evaluate(p, {**b, "mask": mask}), sharded_grads(p, cbatch)

  ev, g = f(params)
  assert float(ev["count"]) == 4 * 5
  assert jax.tree.structure(g) == jax.tree.structure(params)
  assert all(x.shape[0] == 2 and np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(g))
  with pytest.raises(ValueError, match="has 2 layers"):
    make_char_transformer(**CFG, trainable="last_n_layers:3")
  with pytest.raises(ValueError, match="unknown trainable"):
    make_char_transformer(**CFG, trainable="everything")
