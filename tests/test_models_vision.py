"""Tests for the small CNN and ViT image classifiers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.models.cnn import make_cnn
from experiments.models.testing import check_contract
from experiments.models.vit import make_vit

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


def _batch(b=16, shape=(16, 16, 1), classes=4, seed=0):
  """Class k = a bright k-th quadrant plus noise: learnable in a few steps."""
  rng = np.random.default_rng(seed)
  y = np.arange(b) % classes
  x = 0.1 * rng.standard_normal((b, *shape)).astype(np.float32)
  h, w = shape[0] // 2, shape[1] // 2
  for i, k in enumerate(y):
    r, c = divmod(int(k), 2)
    x[i, r * h : (r + 1) * h, c * w : (c + 1) * w] += 1.0
  return {"x": jnp.asarray(x), "y": jnp.asarray(y, jnp.int32)}


def test_cnn():
  model = make_cnn(input_shape=(16, 16, 1), num_classes=4, channels=(8, 16), hidden=32)
  params = model.init(jax.random.key(0))
  assert set(params) == {"stage0_conv0", "stage1_conv0", "hidden", "head"}
  assert params["stage1_conv0"]["kernel"].shape == (3, 3, 8, 16)
  out = check_contract(model, _batch(), lr=0.3, steps=20)
  assert out["loss_end"] < 0.8 * out["loss0"]
  with pytest.raises(ValueError, match="expects images"):
    model.loss(params, {"x": jnp.ones((2, 8, 8, 1)), "y": jnp.zeros((2,), jnp.int32)})


def test_vit():
  model = make_vit(
    input_shape=(16, 16, 1), num_classes=4, patch=4, dim=32, depth=2, heads=4, mlp_dim=64
  )
  params = model.init(jax.random.key(0))
  assert params["pos"].shape == (1, 17, 32) and params["cls"].shape == (1, 1, 32)
  assert params["block1"]["attn"]["query"]["kernel"].shape == (32, 4, 8)
  out = check_contract(model, _batch(), lr=0.1, steps=20)
  assert out["loss_end"] < 0.8 * out["loss0"]


def test_vit_head_only():
  model = make_vit(
    input_shape=(16, 16, 1),
    num_classes=4,
    patch=4,
    dim=32,
    depth=1,
    heads=4,
    mlp_dim=64,
    trainable="head",
  )
  params = model.init(jax.random.key(0))
  assert set(params) == {"head"}
  assert model.meta["num_params"] == 32 * 4 + 4 < model.meta["num_params_total"]
  logits = jax.jit(model.meta["apply"])(params, _batch()["x"])
  assert logits.shape == (16, 4)
  np.testing.assert_allclose(logits, 0.0, atol=1e-6)  # zero-initialised head
  g = jax.jit(jax.grad(model.loss))(params, _batch())
  assert float(jnp.abs(g["head"]["kernel"]).max()) > 0
