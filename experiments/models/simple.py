"""Small models for the synthetic tasks: linear / logistic regression and an MLP."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from experiments.models.contract import Model, count_params
from experiments.models.losses import classification_metrics


def make_linear_regression(dim: int) -> Model:
  """``y_hat = x . w + b`` with mean squared error; evaluate reports ``loss`` (MSE)."""

  def init(key):
    del key
    return {"w": jnp.zeros((dim,), jnp.float32), "b": jnp.zeros((), jnp.float32)}

  def loss(params, batch):
    return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)

  def evaluate(params, batch):
    return {"loss": loss(params, batch), "count": jnp.asarray(batch["y"].shape[0], jnp.float32)}

  return Model(init, loss, evaluate, "linear_regression", {"num_params": dim + 1})


def make_logistic_regression(dim: int) -> Model:
  """Binary logistic regression (labels in {0, 1}); ``accuracy`` at threshold 0.5."""

  def init(key):
    del key
    return {"w": jnp.zeros((dim,), jnp.float32), "b": jnp.zeros((), jnp.float32)}

  def logits(params, x):
    return x @ params["w"] + params["b"]

  def loss(params, batch):
    z = logits(params, batch["x"])
    y = batch["y"].astype(jnp.float32)
    return jnp.mean(jax.nn.softplus(z) - y * z)

  def evaluate(params, batch):
    z = logits(params, batch["x"])
    acc = jnp.mean(((z > 0).astype(jnp.int32) == batch["y"]).astype(jnp.float32))
    return {
      "loss": loss(params, batch),
      "accuracy": acc,
      "count": jnp.asarray(batch["y"].shape[0], jnp.float32),
    }

  return Model(init, loss, evaluate, "logistic_regression", {"num_params": dim + 1})


def make_mlp_classifier(dim: int, num_classes: int, hidden: int = 64, depth: int = 2) -> Model:
  """A GELU MLP with ``depth`` hidden layers of width ``hidden``, softmax cross-entropy."""
  sizes = [dim] + [hidden] * depth + [num_classes]

  def init(key):
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
      key, k = jax.random.split(key)
      params[f"dense_{i}"] = {
        "w": jax.random.normal(k, (a, b)) * jnp.sqrt(1.0 / a),
        "b": jnp.zeros((b,)),
      }
    return params

  def apply(params, x):
    h = x
    for i in range(len(sizes) - 1):
      h = h @ params[f"dense_{i}"]["w"] + params[f"dense_{i}"]["b"]
      if i < len(sizes) - 2:
        h = jax.nn.gelu(h)
    return h

  def loss(params, batch):
    return classification_metrics(apply(params, batch["x"]), batch["y"])["loss"]

  def evaluate(params, batch):
    return classification_metrics(apply(params, batch["x"]), batch["y"])

  n = count_params(jax.eval_shape(init, jax.random.key(0)))
  return Model(init, loss, evaluate, "mlp_classifier", {"num_params": n})
