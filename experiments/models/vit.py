"""Small Vision Transformer (NNX module adapted to pure dict params).

Patchify with a ``patch x patch`` stride-``patch`` convolution, prepend a learned CLS token,
add learned position embeddings, ``depth`` pre-LN blocks (LN -> MHSA -> residual,
LN -> GELU MLP -> residual), final LN, linear head on the CLS token.

Batch: ``{'x': float32 (B, H, W, C), 'y': int32 (B,)}``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from experiments.models.contract import Model
from experiments.models.losses import classification_metrics, softmax_xent
from experiments.models.nnx_adapter import nnx_apply_fns
from experiments.models.trainable import with_trainable


class Block(nnx.Module):
  """Pre-LN transformer encoder block."""

  def __init__(self, dim: int, heads: int, mlp_dim: int, *, rngs: nnx.Rngs):
    self.ln1 = nnx.LayerNorm(dim, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=dim, decode=False, rngs=rngs)
    self.ln2 = nnx.LayerNorm(dim, rngs=rngs)
    self.fc1 = nnx.Linear(dim, mlp_dim, rngs=rngs)
    self.fc2 = nnx.Linear(mlp_dim, dim, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.attn(self.ln1(x))
    return x + self.fc2(jax.nn.gelu(self.fc1(self.ln2(x)), approximate=False))


class ViT(nnx.Module):
  def __init__(
    self,
    image_shape: tuple[int, int, int],
    patch: int,
    num_classes: int,
    dim: int,
    depth: int,
    heads: int,
    mlp_dim: int,
    *,
    rngs: nnx.Rngs,
  ):
    h, w, c = image_shape
    if h % patch or w % patch:
      raise ValueError(f"image {h}x{w} is not divisible by patch={patch}.")
    n = (h // patch) * (w // patch)
    self.patch_embed = nnx.Conv(
      c, dim, (patch, patch), strides=(patch, patch), padding="VALID", rngs=rngs
    )
    self.cls = nnx.Param(jnp.zeros((1, 1, dim), jnp.float32))
    self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, n + 1, dim), jnp.float32))
    self.depth = depth
    for i in range(depth):  # named attributes -> str keys in the pure dict
      setattr(self, f"block{i}", Block(dim, heads, mlp_dim, rngs=rngs))
    self.final_ln = nnx.LayerNorm(dim, rngs=rngs)
    self.head = nnx.Linear(dim, num_classes, kernel_init=nnx.initializers.zeros, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.patch_embed(x)
    b, gh, gw, d = x.shape
    x = x.reshape(b, gh * gw, d)
    x = jnp.concatenate([jnp.broadcast_to(self.cls[...], (b, 1, d)), x], axis=1) + self.pos[...]
    for i in range(self.depth):
      x = getattr(self, f"block{i}")(x)
    return self.head(self.final_ln(x)[:, 0])


def make_vit(
  input_shape: tuple[int, int, int] = (28, 28, 1),
  num_classes: int = 10,
  patch: int = 7,
  dim: int = 64,
  depth: int = 4,
  heads: int = 4,
  mlp_dim: int = 128,
  trainable="all",
) -> Model:
  """Small ViT for ``input_shape = (H, W, C)`` images; ``trainable='head'`` is a linear probe."""
  init, apply = nnx_apply_fns(
    lambda rngs: ViT(tuple(input_shape), patch, num_classes, dim, depth, heads, mlp_dim, rngs=rngs)
  )

  def _check(x):
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
      raise ValueError(
        f"vit expects images (B, {', '.join(map(str, input_shape))}); got {x.shape}."
      )
    return x.astype(jnp.float32)

  def loss(params, batch):
    return jnp.mean(softmax_xent(apply(params, _check(batch["x"])), batch["y"]))

  def evaluate(params, batch):
    return classification_metrics(apply(params, _check(batch["x"])), batch["y"])

  cfg = dict(
    input_shape=tuple(input_shape),
    num_classes=num_classes,
    patch=patch,
    dim=dim,
    depth=depth,
    heads=heads,
    mlp_dim=mlp_dim,
  )
  model = with_trainable(
    "vit",
    init,
    loss,
    evaluate,
    trainable,
    head_keys=("head",),
    final_keys=("final_ln",),
    meta=dict(task="image_classification", config=cfg),
  )
  full = model.meta["full_params"]
  model.meta["apply"] = lambda params, x: apply(full(params), _check(x))
  return model
