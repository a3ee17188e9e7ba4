"""Tests for the encoder-decoder transformer and the model registry."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tailopt.models import get_model, list_models
from tailopt.models.testing import check_contract


def _batch(b=4, s=9, t=8, vocab=40, seed=0):
    """Copy task with a per-example shift: tgt = (src + 1) mod vocab."""
    rng = np.random.default_rng(seed)
    src = rng.integers(3, vocab, (b, s)).astype(np.int32)
    tgt = (src[:, :t] + 1) % vocab
    tgt_in = np.concatenate([np.ones((b, 1), np.int32), tgt[:, :-1]], 1)
    src_mask = np.ones((b, s), np.int32)
    src_mask[0, 6:] = 0
    tgt_mask = np.ones((b, t), np.float32)
    tgt_mask[1, 5:] = 0
    return {k: jnp.asarray(v) for k, v in dict(src=src, src_mask=src_mask, tgt_in=tgt_in, tgt_out=tgt,
                                                  tgt_mask=tgt_mask).items()}


def test_seq2seq():
    model = get_model("seq2seq", vocab_size=40, d_model=32, num_heads=4, encoder_layers=2,
                      decoder_layers=2, mlp_dim=64, max_len=16)
    params = model.init(jax.random.key(0))
    assert params["encoder"]["attn"]["q"]["w"].shape == (2, 32, 32)
    b = _batch()
    apply = jax.jit(model.meta["apply"])
    assert apply(params, b).shape == (4, 8, 40)
    # decoder is causal: changing tgt_in at t=5 leaves logits before 5 unchanged
    b2 = {**b, "tgt_in": b["tgt_in"].at[:, 5].set(7)}
    np.testing.assert_allclose(apply(params, b)[:, :5], apply(params, b2)[:, :5], atol=1e-5)
    # padded source positions are ignored
    b3 = {**b, "src": b["src"].at[0, 7].set(3)}
    np.testing.assert_allclose(apply(params, b)[0], apply(params, b3)[0], atol=1e-5)
    out = check_contract(model, b, lr=0.5, steps=20)
    assert out["loss_end"] < 0.8 * out["loss0"]
    assert float(out["metrics0"]["count"]) == 4 * 8 - 3


def test_registry():
    assert {"char_transformer", "cnn", "vit", "bert", "llama", "seq2seq"} <= set(list_models())
    with pytest.raises(KeyError, match="known models: .*cnn"):
        get_model("resnet9000")
    with pytest.raises(TypeError, match="make_cnn"):
        get_model("cnn", no_such_arg=1)
    assert get_model("char_transformer", vocab_size=50, d_model=16, num_layers=1, num_heads=2).meta["task"] == "next_char"
