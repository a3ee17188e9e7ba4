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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tailopt.models import layers as L
from tailopt.models.base import Model, masked_token_loss, token_metrics, with_trainable


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
        return {"ln1": L.layer_norm_init(d_model), "attn": L.mha_init(ka, d_model),
                "ln2": L.layer_norm_init(d_model), "mlp": L.mlp_init(km, d_model, mlp_dim)}

    def dec_layer(key):
        ka, kc, km = jax.random.split(key, 3)
        return {"ln1": L.layer_norm_init(d_model), "self_attn": L.mha_init(ka, d_model),
                "ln2": L.layer_norm_init(d_model), "cross_attn": L.mha_init(kc, d_model),
                "ln3": L.layer_norm_init(d_model), "mlp": L.mlp_init(km, d_model, mlp_dim)}

    def init(key):
        ke, kp, kq, k1, k2 = jax.random.split(key, 5)
        return {
            "embed": L.embed_init(ke, vocab_size, d_model, std=d_model ** -0.5),
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

    def apply(params, batch):
        src = batch["src"]
        src_mask = batch.get("src_mask")
        src_mask = jnp.ones(src.shape, jnp.int32) if src_mask is None else src_mask
        return decode(params, encode(params, src, src_mask), src_mask, batch["tgt_in"])

    def loss(params, batch):
        return masked_token_loss(apply(params, batch), batch["tgt_out"], batch.get("tgt_mask"))

    def evaluate(params, batch):
        return token_metrics(apply(params, batch), batch["tgt_out"], batch.get("tgt_mask"))

    cfg = dict(vocab_size=vocab_size, d_model=d_model, num_heads=num_heads, encoder_layers=encoder_layers,
               decoder_layers=decoder_layers, mlp_dim=mlp_dim, max_len=max_len)
    model = with_trainable("seq2seq", init, loss, evaluate, trainable, head_keys=("embed",),
                           meta=dict(task="translation", config=cfg))
    full = model.meta["full_params"]
    model.meta["apply"] = lambda params, batch: apply(full(params), batch)
    return model
