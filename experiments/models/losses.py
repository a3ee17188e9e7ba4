"""Losses and evaluation metrics shared by the models, and the causal-LM batch format.

Metrics follow the :class:`~experiments.models.contract.Model` contract: means over the batch
plus ``count``, the weight of those means.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from experiments.models.contract import Batch


def softmax_xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-position cross-entropy of integer ``labels`` under ``logits`` (float32)."""
  logits = logits.astype(jnp.float32)
  logz = jax.nn.logsumexp(logits, axis=-1)
  picked = jnp.take_along_axis(logits, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return logz - picked


def classification_metrics(logits: jax.Array, labels: jax.Array) -> dict:
  """Mean loss / accuracy over a batch of examples; ``count`` = batch size."""
  xent = softmax_xent(logits, labels)
  acc = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return {
    "loss": jnp.mean(xent),
    "accuracy": jnp.mean(acc),
    "count": jnp.asarray(labels.shape[0], jnp.float32),
  }


def token_metrics(logits: jax.Array, labels: jax.Array, mask: jax.Array | None) -> dict:
  """Masked per-token mean loss / accuracy; ``count`` = number of counted tokens.

  ``perplexity`` is ``exp(loss)`` of this batch.
  """
  xent = softmax_xent(logits, labels)
  if mask is None:
    mask = jnp.ones(labels.shape, jnp.float32)
  mask = mask.astype(jnp.float32)
  n = jnp.sum(mask)
  denom = jnp.maximum(n, 1.0)
  loss = jnp.sum(xent * mask) / denom
  acc = jnp.sum((jnp.argmax(logits, -1) == labels) * mask) / denom
  return {"loss": loss, "accuracy": acc, "perplexity": jnp.exp(loss), "count": n}


def masked_token_loss(logits: jax.Array, labels: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Masked mean next-token cross-entropy (the LM training loss)."""
  xent = softmax_xent(logits, labels)
  if mask is None:
    return jnp.mean(xent)
  mask = mask.astype(jnp.float32)
  return jnp.sum(xent * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def lm_inputs(batch: Batch) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """Normalise a causal-LM batch to ``(x, y, mask)``.

  Accepts ``{'x', 'y'[, 'mask']}`` (inputs and next-token targets, both ``(B, L)``) or
  ``{'input_ids'[, 'attention_mask']}`` (shifted here: ``x = ids[:, :-1]``,
  ``y = ids[:, 1:]``).
  """
  if "x" in batch:
    if "y" not in batch:
      raise KeyError("LM batch has 'x' but no 'y' (next-token targets, same shape as 'x').")
    return batch["x"], batch["y"], batch.get("mask")
  if "input_ids" in batch:
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    return ids[:, :-1], ids[:, 1:], None if mask is None else mask[:, 1:]
  raise KeyError(
    f"LM batch needs keys {{'x','y'[,'mask']}} or {{'input_ids'[,'attention_mask']}}; "
    f"got {sorted(batch)}."
  )
