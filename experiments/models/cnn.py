"""Small CNN image classifier (NNX module adapted to pure dict params).

Architecture: ``[Conv3x3 -> ReLU (x convs_per_stage) -> MaxPool2]`` x ``len(channels)``
stages, flatten, Dense(hidden) -> ReLU -> Dense(num_classes).

Batch: ``{'x': float32 (B, H, W, C), 'y': int32 (B,)}``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from experiments.models.contract import Model
from experiments.models.losses import classification_metrics, softmax_xent
from experiments.models.nnx_adapter import nnx_apply_fns
from experiments.models.trainable import with_trainable


class CNN(nnx.Module):
  """Conv stages + MLP head. Params are named ``stage{i}_conv{j}``, ``hidden``, ``head``."""

  def __init__(
    self,
    input_shape: tuple[int, int, int],
    num_classes: int,
    channels: Sequence[int],
    hidden: int,
    convs_per_stage: int,
    *,
    rngs: nnx.Rngs,
  ):
    # Named attributes (not nnx.List) so the pure-dict params have str keys only.
    self.stage_names = tuple(
      tuple(f"stage{i}_conv{j}" for j in range(convs_per_stage)) for i in range(len(channels))
    )
    h, w, cin = input_shape
    for names, c in zip(self.stage_names, channels):
      for name in names:
        setattr(self, name, nnx.Conv(cin, c, (3, 3), padding="SAME", rngs=rngs))
        cin = c
      h, w = -(-h // 2), -(-w // 2)  # SAME max-pool halves (rounding up)
    self.hidden = nnx.Linear(h * w * cin, hidden, rngs=rngs)
    self.head = nnx.Linear(hidden, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    for names in self.stage_names:
      for name in names:
        x = jax.nn.relu(getattr(self, name)(x))
      x = nnx.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
    x = x.reshape(x.shape[0], -1)
    return self.head(jax.nn.relu(self.hidden(x)))


def make_cnn(
  input_shape: tuple[int, int, int] = (28, 28, 1),
  num_classes: int = 10,
  channels: Sequence[int] = (32, 64),
  hidden: int = 128,
  convs_per_stage: int = 1,
  trainable="all",
) -> Model:
  """Small CNN for ``input_shape = (H, W, C)`` images (e.g. Fashion-MNIST, digits)."""
  init, apply = nnx_apply_fns(
    lambda rngs: CNN(
      tuple(input_shape), num_classes, tuple(channels), hidden, convs_per_stage, rngs=rngs
    )
  )

  def _check(x):
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
      raise ValueError(
        f"cnn expects images (B, {', '.join(map(str, input_shape))}); got {x.shape}."
      )
    return x.astype(jnp.float32)

  def loss(params, batch):
    return jnp.mean(softmax_xent(apply(params, _check(batch["x"])), batch["y"]))

  def evaluate(params, batch):
    return classification_metrics(apply(params, _check(batch["x"])), batch["y"])

  cfg = dict(
    input_shape=tuple(input_shape),
    num_classes=num_classes,
    channels=tuple(channels),
    hidden=hidden,
    convs_per_stage=convs_per_stage,
  )
  model = with_trainable(
    "cnn",
    init,
    loss,
    evaluate,
    trainable,
    head_keys=("head",),
    meta=dict(task="image_classification", config=cfg),
  )
  full = model.meta["full_params"]
  model.meta["apply"] = lambda params, x: apply(full(params), _check(x))
  return model
