"""Tests for the encoder-decoder transformer, its decoding, and the model registry."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.models import get_model, list_models
from experiments.models.testing import check_contract

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


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
  return {
    k: jnp.asarray(v)
    for k, v in dict(
      src=src, src_mask=src_mask, tgt_in=tgt_in, tgt_out=tgt, tgt_mask=tgt_mask
    ).items()
  }


def test_seq2seq():
  model = get_model(
    "seq2seq",
    vocab_size=40,
    d_model=32,
    num_heads=4,
    encoder_layers=2,
    decoder_layers=2,
    mlp_dim=64,
    max_len=16,
  )
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
  assert (
    get_model("char_transformer", vocab_size=50, d_model=16, num_layers=1, num_heads=2).meta["task"]
    == "next_char"
  )


def _tiny(vocab=12, max_len=10, seed=0, scale=4.0):
  model = get_model(
    "seq2seq",
    vocab_size=vocab,
    d_model=16,
    num_heads=2,
    encoder_layers=1,
    decoder_layers=1,
    mlp_dim=32,
    max_len=max_len,
  )
  params = model.init(jax.random.key(seed))
  # Peaked next-token distributions, so argmax ties (and near-ties) do not occur.
  params["embed"] = params["embed"] * scale
  return model, params


def _python_greedy(model, params, src, src_mask, bos, eos, pad, steps):
  """Reference: one teacher-forced forward pass per step, argmax at the newest position.

  The decoder input is the prefix padded to ``steps`` (one compile; the decoder is causal,
  see ``test_seq2seq``, so the padding does not change position ``t``)."""
  apply = jax.jit(model.meta["apply"])
  b = src.shape[0]
  out = np.full((b, steps), pad, np.int32)
  done = np.zeros(b, bool)
  for t in range(steps):
    tgt_in = np.concatenate([np.full((b, 1), bos, np.int32), out[:, :-1]], 1)
    logits = np.asarray(apply(params, dict(src=src, src_mask=src_mask, tgt_in=tgt_in)))
    tok = np.where(done, pad, logits[:, t].argmax(-1))
    out[:, t] = tok
    done |= tok == eos
  return out


def test_greedy_decode_matches_python_argmax_loop():
  model, params = _tiny()
  rng = np.random.default_rng(1)
  src = rng.integers(3, 12, (6, 7)).astype(np.int32)
  src_mask = np.ones_like(src)
  src_mask[2, 4:] = 0
  # EOS = a token row 0 emits at step 3, so some rows stop early (EOS, then padding)
  eos = int(_python_greedy(model, params, src, src_mask, 1, -1, 0, 4)[0, 3])
  want = _python_greedy(model, params, src, src_mask, bos=1, eos=eos, pad=0, steps=9)
  assert (want[0, 4:] == 0).all()
  gen = jax.jit(
    model.meta["generate"],
    static_argnames=("bos_id", "eos_id", "pad_id", "steps", "beam_size", "length_alpha"),
  )
  got = np.asarray(gen(params, src, src_mask, bos_id=1, eos_id=eos, pad_id=0, steps=9))
  np.testing.assert_array_equal(got, want)
  # beam_size=1 is the same greedy search (length normalisation is moot with one beam)
  got1 = np.asarray(
    gen(
      params, src, src_mask, bos_id=1, eos_id=eos, pad_id=0, steps=9, beam_size=1, length_alpha=0.6
    )
  )
  np.testing.assert_array_equal(got1, want)
  with pytest.raises(ValueError, match="max_len=10"):
    model.meta["generate"](params, src, bos_id=1, eos_id=2, steps=11)


@pytest.mark.slow  # the exhaustive search is long; beam=1 == greedy stays fast
def test_beam_search_wide_enough_is_exhaustive_search():
  """With beam >= V**(T-1) nothing is pruned: the beam's best equals brute force."""
  vocab, steps, bos, eos, pad = 5, 3, 1, 2, 0
  model, params = _tiny(vocab=vocab, max_len=steps, scale=2.0)
  srcs = np.array([[3, 4, 2], [4, 4, 3], [2, 3, 3], [0, 1, 4]], np.int32)
  seqs = []
  for s in itertools.product(range(vocab), repeat=steps):
    i = s.index(eos) if eos in s else steps - 1
    if all(x == pad for x in s[i + 1 :]):  # after EOS only padding, at no cost
      seqs.append((s, i + 1))
  tgt = np.array([s for s, _ in seqs], np.int32)
  tgt_in = np.concatenate([np.full((len(tgt), 1), bos, np.int32), tgt[:, :-1]], 1)
  counted = np.arange(steps)[None] < np.array([n for _, n in seqs])[:, None]
  got = np.asarray(
    model.meta["generate"](
      params, srcs, bos_id=bos, eos_id=eos, pad_id=pad, steps=steps, beam_size=vocab ** (steps - 1)
    )
  )
  for row, src in enumerate(srcs):
    logits = model.meta["apply"](params, dict(src=np.repeat(src[None], len(tgt), 0), tgt_in=tgt_in))
    logp = np.asarray(jax.nn.log_softmax(logits, -1))
    score = (np.take_along_axis(logp, tgt[..., None], -1)[..., 0] * counted).sum(1)
    assert got[row].tolist() == tgt[np.argmax(score)].tolist(), row
