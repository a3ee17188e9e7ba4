"""Small encoder-decoder transformer for translation (the WMT config; T5 stand-in).

Pre-LN encoder (bidirectional self-attention) and decoder (causal self-attention +
cross-attention), learned position embeddings, a shared source/target token embedding
tied to the output projection; both stacks run with ``lax.scan``.

Batch::

    src      int32 (B, S)   source tokens          src_mask (B, S)  1 = real token
    tgt_in   int32 (B, T)   decoder inputs (BOS + target[:-1])
    tgt_out  int32 (B, T)   targets                 tgt_mask (B, T)  1 = counted

Masks are optional (default: all ones). ``loss`` is the masked per-token cross-entropy;
``evaluate`` returns per-token ``loss``/``accuracy``/``perplexity``, ``count`` = target tokens.

Decoding: ``meta['generate'](params, src, src_mask, bos_id=, eos_id=, pad_id=, steps=,
beam_size=1, length_alpha=0.0)`` returns ``(B, steps)`` int32 tokens (no BOS; after EOS
every position is ``pad_id``). It is a jittable ``lax.while_loop`` over a fixed-length
decoder buffer that stops early once every row has emitted EOS; the decoder reruns on the
whole buffer each step (causal masking makes later, still-empty positions irrelevant), so
no key/value cache is kept. ``beam_size=1`` is greedy argmax decoding; a larger beam keeps
the ``beam_size`` best prefixes by summed log-probability and returns the best finished one,
its score divided by ``((5 + length) / 6) ** length_alpha`` (GNMT; 0 = no normalisation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from experiments.models import layers as L
from experiments.models.contract import Model
from experiments.models.losses import masked_token_loss, token_metrics
from experiments.models.trainable import with_trainable


def make_seq2seq(
  vocab_size: int = 8000,
  d_model: int = 128,
  num_heads: int = 4,
  encoder_layers: int = 2,
  decoder_layers: int = 2,
  mlp_dim: int = 512,
  max_len: int = 128,
  trainable="all",
) -> Model:
  """Encoder-decoder transformer with a shared, tied vocabulary.

  ``trainable``: ``'all'`` (default), ``'head'`` (the tied embedding / output projection)
  or a predicate on key paths (e.g. ``lambda path: path[0] == 'decoder'``).
  """
  if d_model % num_heads:
    raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}.")

  def enc_layer(key):
    ka, km = jax.random.split(key)
    return {
      "ln1": L.layer_norm_init(d_model),
      "attn": L.mha_init(ka, d_model),
      "ln2": L.layer_norm_init(d_model),
      "mlp": L.mlp_init(km, d_model, mlp_dim),
    }

  def dec_layer(key):
    ka, kc, km = jax.random.split(key, 3)
    return {
      "ln1": L.layer_norm_init(d_model),
      "self_attn": L.mha_init(ka, d_model),
      "ln2": L.layer_norm_init(d_model),
      "cross_attn": L.mha_init(kc, d_model),
      "ln3": L.layer_norm_init(d_model),
      "mlp": L.mlp_init(km, d_model, mlp_dim),
    }

  def init(key):
    ke, kp, kq, k1, k2 = jax.random.split(key, 5)
    return {
      "embed": L.embed_init(ke, vocab_size, d_model, std=d_model**-0.5),
      "src_pos": L.embed_init(kp, max_len, d_model),
      "tgt_pos": L.embed_init(kq, max_len, d_model),
      "encoder": L.stacked_init(enc_layer, k1, encoder_layers),
      "encoder_ln": L.layer_norm_init(d_model),
      "decoder": L.stacked_init(dec_layer, k2, decoder_layers),
      "decoder_ln": L.layer_norm_init(d_model),
    }

  def _embed(params, tokens, pos_key):
    n = tokens.shape[1]
    if n > max_len:
      raise ValueError(f"sequence length {n} exceeds max_len={max_len}.")
    return params["embed"][tokens] * jnp.sqrt(float(d_model)) + params[pos_key][:n]

  def encode(params, src, src_mask):
    mask = L.padding_mask(src_mask)

    def block(h, p):
      a = L.layer_norm(p["ln1"], h)
      h = h + L.mha(p["attn"], a, a, mask, num_heads)
      return h + L.mlp(p["mlp"], L.layer_norm(p["ln2"], h)), None

    h, _ = jax.lax.scan(block, _embed(params, src, "src_pos"), params["encoder"])
    return L.layer_norm(params["encoder_ln"], h)

  def decode(params, memory, src_mask, tgt_in):
    self_mask = L.causal_mask(tgt_in.shape[1])
    cross_mask = L.padding_mask(src_mask)

    def block(h, p):
      a = L.layer_norm(p["ln1"], h)
      h = h + L.mha(p["self_attn"], a, a, self_mask, num_heads)
      h = h + L.mha(p["cross_attn"], L.layer_norm(p["ln2"], h), memory, cross_mask, num_heads)
      return h + L.mlp(p["mlp"], L.layer_norm(p["ln3"], h)), None

    h, _ = jax.lax.scan(block, _embed(params, tgt_in, "tgt_pos"), params["decoder"])
    return L.layer_norm(params["decoder_ln"], h) @ params["embed"].T

  def _src_mask(src, src_mask):
    return jnp.ones(src.shape, jnp.int32) if src_mask is None else src_mask

  def apply(params, batch):
    src = batch["src"]
    src_mask = _src_mask(src, batch.get("src_mask"))
    return decode(params, encode(params, src, src_mask), src_mask, batch["tgt_in"])

  def loss(params, batch):
    return masked_token_loss(apply(params, batch), batch["tgt_out"], batch.get("tgt_mask"))

  def evaluate(params, batch):
    return token_metrics(apply(params, batch), batch["tgt_out"], batch.get("tgt_mask"))

  cfg = dict(
    vocab_size=vocab_size,
    d_model=d_model,
    num_heads=num_heads,
    encoder_layers=encoder_layers,
    decoder_layers=decoder_layers,
    mlp_dim=mlp_dim,
    max_len=max_len,
  )
  model = with_trainable(
    "seq2seq",
    init,
    loss,
    evaluate,
    trainable,
    head_keys=("embed",),
    meta=dict(task="translation", config=cfg),
  )
  full = model.meta["full_params"]
  model.meta["apply"] = lambda params, batch: apply(full(params), batch)

  def generate(
    params,
    src,
    src_mask=None,
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int = 0,
    steps: int | None = None,
    beam_size: int = 1,
    length_alpha: float = 0.0,
  ):
    steps = max_len if steps is None else int(steps)
    if not 1 <= steps <= max_len:
      raise ValueError(f"steps={steps} must be in [1, max_len={max_len}].")
    if beam_size < 1:
      raise ValueError(f"beam_size={beam_size} must be >= 1.")
    p = jax.tree.map(jnp.asarray, full(params))  # numpy params index badly by tracers
    src_mask = _src_mask(src, src_mask)
    return _search(
      p, encode(p, src, src_mask), src_mask, bos_id, eos_id, pad_id, steps, beam_size, length_alpha
    )

  dh = d_model // num_heads

  def _heads(x):
    return x.reshape(x.shape[0], x.shape[1], num_heads, dh)

  def _decode_step(p, cache, cross_mask, tok, t):
    """One decoder position with cached keys/values: ``tok`` (N,) at position ``t`` ->
    next-token logits (N, V) and the cache with position ``t``'s self-attention K/V."""
    h = p["embed"][tok][:, None] * jnp.sqrt(float(d_model)) + p["tgt_pos"][t][None, None]
    self_mask = (jnp.arange(cache["sk"].shape[2]) <= t)[None, None, None, :]

    def block(h, xs):
      lp, ck, cv, sk, sv = xs
      a = L.layer_norm(lp["ln1"], h)
      sa = lp["self_attn"]
      sk = jax.lax.dynamic_update_slice_in_dim(sk, _heads(L.dense(sa["k"], a)), t, axis=1)
      sv = jax.lax.dynamic_update_slice_in_dim(sv, _heads(L.dense(sa["v"], a)), t, axis=1)
      o = L.attention(_heads(L.dense(sa["q"], a)), sk, sv, self_mask)
      h = h + L.dense(sa["o"], o.reshape(h.shape))
      ca = lp["cross_attn"]
      o = L.attention(_heads(L.dense(ca["q"], L.layer_norm(lp["ln2"], h))), ck, cv, cross_mask)
      h = h + L.dense(ca["o"], o.reshape(h.shape))
      return h + L.mlp(lp["mlp"], L.layer_norm(lp["ln3"], h)), (sk, sv)

    h, (sk, sv) = jax.lax.scan(
      block, h, (p["decoder"], cache["ck"], cache["cv"], cache["sk"], cache["sv"])
    )
    logits = L.layer_norm(p["decoder_ln"], h)[:, 0] @ p["embed"].T
    return logits, dict(cache, sk=sk, sv=sv)

  def _search(p, memory, src_mask, bos_id, eos_id, pad_id, steps, k, alpha):
    b = memory.shape[0]
    # Beams are flattened into the batch: row i*k + j is beam j of example i.
    memory = jnp.repeat(memory, k, axis=0)
    cross_mask = L.padding_mask(jnp.repeat(src_mask, k, axis=0))
    ck, cv = jax.vmap(
      lambda lp: (
        _heads(L.dense(lp["cross_attn"]["k"], memory)),
        _heads(L.dense(lp["cross_attn"]["v"], memory)),
      )
    )(p["decoder"])
    empty = jnp.zeros((decoder_layers, b * k, steps, num_heads, dh), memory.dtype)
    cache = dict(ck=ck, cv=cv, sk=empty, sv=empty)
    prev = jnp.full((b * k,), bos_id, jnp.int32)
    out = jnp.full((b * k, steps), pad_id, jnp.int32)
    score = jnp.tile(jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf), (b, 1))  # (b, k)
    done = jnp.zeros((b * k,), bool)
    length = jnp.zeros((b * k,), jnp.int32)

    def cond(c):
      t, _, _, _, _, done, _ = c
      return (t < steps) & ~jnp.all(done)

    def body(c):
      t, cache, prev, out, score, done, length = c
      logits, cache = _decode_step(p, cache, cross_mask, prev, t)
      logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
      v = logp.shape[-1]
      # A finished beam extends only with pad at no cost, so it keeps its score.
      frozen = jnp.full_like(logp, -jnp.inf).at[:, pad_id].set(0.0)
      logp = jnp.where(done[:, None], frozen, logp)
      cand = (score.reshape(-1)[:, None] + logp).reshape(b, k * v)
      # k = 1: top_k is the argmax (first index on ties, like jnp.argmax): greedy.
      new_score, idx = jax.lax.top_k(cand, k)
      src_row = (jnp.arange(b)[:, None] * k + idx // v).reshape(-1)
      tok = (idx % v).astype(jnp.int32).reshape(-1)
      out, done, length = out[src_row], done[src_row], length[src_row]
      cache = dict(cache, sk=cache["sk"][:, src_row], sv=cache["sv"][:, src_row])
      out = out.at[:, t].set(tok)
      length = length + (~done).astype(jnp.int32)
      done = done | (tok == eos_id)
      return t + 1, cache, tok, out, new_score, done, length

    _, _, _, out, score, _, length = jax.lax.while_loop(
      cond, body, (jnp.int32(0), cache, prev, out, score, done, length)
    )
    norm = ((5.0 + length.reshape(b, k)) / 6.0) ** alpha
    best = jnp.argmax(score / norm, axis=-1)
    return out.reshape(b, k, steps)[jnp.arange(b), best]

  model.meta["generate"] = generate
  return model
