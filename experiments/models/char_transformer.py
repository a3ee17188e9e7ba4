"""Character-level causal transformer LM (Philosopher / LEAF-Shakespeare next-char task).

Pre-LN GPT-style decoder: learned token + position embeddings, ``num_layers`` blocks
(causal self-attention + GELU MLP) stacked and run with ``lax.scan``, final LayerNorm,
untied output head.

Batch: ``{'x': int32 (B, L), 'y': int32 (B, L)[, 'mask': (B, L)]}`` where ``y`` is the next
character of ``x``. ``loss`` is the mean next-char cross-entropy; ``evaluate`` returns
per-token ``loss``/``accuracy``/``perplexity`` and ``count`` = number of counted tokens.
"""

from __future__ import annotations

import jax

from experiments.models import layers as L
from experiments.models.contract import Model
from experiments.models.losses import lm_inputs, masked_token_loss, token_metrics
from experiments.models.trainable import scan_layers, with_trainable


def _block_init(key, d, mlp_ratio):
  ka, km = jax.random.split(key)
  return {
    "ln1": L.layer_norm_init(d),
    "attn": L.mha_init(ka, d),
    "ln2": L.layer_norm_init(d),
    "mlp": L.mlp_init(km, d, mlp_ratio * d),
  }


def make_char_transformer(
  vocab_size: int = 96,
  d_model: int = 128,
  num_layers: int = 2,
  num_heads: int = 4,
  seq_len: int = 80,
  mlp_ratio: int = 4,
  trainable="all",
) -> Model:
  """Causal char LM. ``seq_len`` is the maximum context (position-embedding table size)."""
  if d_model % num_heads:
    raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}.")

  def init(key):
    ke, kp, kl, kh = jax.random.split(key, 4)
    return {
      "tok_embed": L.embed_init(ke, vocab_size, d_model),
      "pos_embed": L.embed_init(kp, seq_len, d_model),
      "layers": L.stacked_init(lambda k: _block_init(k, d_model, mlp_ratio), kl, num_layers),
      "final_ln": L.layer_norm_init(d_model),
      "head": L.dense_init(kh, d_model, vocab_size),
    }

  def apply(params, x):
    """Logits (B, L, vocab) for int tokens ``x`` (B, L)."""
    length = x.shape[1]
    if length > seq_len:
      raise ValueError(f"sequence length {length} exceeds seq_len={seq_len}.")
    h = params["tok_embed"][x] + params["pos_embed"][:length]
    mask = L.causal_mask(length)

    def block(h, p):
      a = L.layer_norm(p["ln1"], h)
      h = h + L.mha(p["attn"], a, a, mask, num_heads)
      return h + L.mlp(p["mlp"], L.layer_norm(p["ln2"], h))

    h = scan_layers(block, h, params)
    return L.dense(params["head"], L.layer_norm(params["final_ln"], h))

  def loss(params, batch):
    x, y, m = lm_inputs(batch)
    return masked_token_loss(apply(params, x), y, m)

  def evaluate(params, batch):
    x, y, m = lm_inputs(batch)
    return token_metrics(apply(params, x), y, m)

  cfg = dict(
    vocab_size=vocab_size,
    d_model=d_model,
    num_layers=num_layers,
    num_heads=num_heads,
    seq_len=seq_len,
    mlp_ratio=mlp_ratio,
  )
  model = with_trainable(
    "char_transformer",
    init,
    loss,
    evaluate,
    trainable,
    head_keys=("head",),
    final_keys=("final_ln",),
    meta=dict(task="next_char", config=cfg),
  )
  full = model.meta["full_params"]
  model.meta["apply"] = lambda params, x: apply(full(params), x)
  return model
