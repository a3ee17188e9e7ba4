"""Tests for the MiniLM BERT encoder: parity with an independent numpy forward pass,
sentence-similarity sanity, and the Model contract."""

import json
import pathlib
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.models.bert import (
  BertConfig,
  load_bert_params,
  load_minilm,
  make_bert,
  save_bert_safetensors,
)
from _data_helpers import unavailable
from experiments.models.checkpoints import load_safetensors, save_safetensors
from experiments.data.tokenization import Tokenizer
from experiments.models.testing import check_contract

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

# [CLS] ... [SEP] WordPiece ids (bert-base-uncased vocab of all-MiniLM-L6-v2).
SENTENCES = {
  "A man is playing a guitar.": [101, 1037, 2158, 2003, 2652, 1037, 2858, 1012, 102],
  "Someone is playing the guitar.": [101, 2619, 2003, 2652, 1996, 2858, 1012, 102],
  "The stock market fell sharply today.": [101, 1996, 4518, 3006, 3062, 9249, 2651, 1012, 102],
  "Tokenization of unaffable words works.": [
    101,
    19204,
    3989,
    1997,
    14477,
    20961,
    3468,
    2616,
    2573,
    1012,
    102,
  ],
}


@pytest.fixture(scope="module")
def model_dir():
  from experiments.data.fetch import MissingArtifactError
  from experiments.models.checkpoints import artifact_file

  try:
    return pathlib.Path(artifact_file("minilm", "model_dir"))
  except MissingArtifactError as e:
    unavailable(str(e))


@pytest.fixture(scope="module")
def head_model(model_dir):
  return make_bert(num_classes=2, trainable="head", path=model_dir)


def _padded(sentences):
  ids = [SENTENCES[s] for s in sentences]
  n = max(map(len, ids))
  x = np.zeros((len(ids), n), np.int32)
  m = np.zeros((len(ids), n), np.int32)
  for i, t in enumerate(ids):
    x[i, : len(t)] = t
    m[i, : len(t)] = 1
  return x, m


# ----------------------------------------------------------------- independent numpy reference


def _np_safetensors(path):
  raw = pathlib.Path(path).read_bytes()
  n = struct.unpack("<Q", raw[:8])[0]
  header = json.loads(raw[8 : 8 + n])
  return {
    k: np.frombuffer(
      raw, np.float32, int(np.prod(v["shape"])), 8 + n + v["data_offsets"][0]
    ).reshape(v["shape"])
    for k, v in header.items()
    if k != "__metadata__" and v["dtype"] == "F32"
  }


def _np_sentence_embeddings(model_dir, ids, mask):
  """HF BertModel + sentence-transformers mean pooling + Normalize, in float64 numpy."""
  w = {k: v.astype(np.float64) for k, v in _np_safetensors(model_dir / "model.safetensors").items()}
  cfg = json.loads((model_dir / "config.json").read_text())
  heads, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
  from math import erf, sqrt

  gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + erf(v / sqrt(2.0))))

  def ln(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

  def lin(x, p):
    return x @ w[p + ".weight"].T + w[p + ".bias"]

  b, n = ids.shape
  h = (
    w["embeddings.word_embeddings.weight"][ids]
    + w["embeddings.position_embeddings.weight"][:n]
    + w["embeddings.token_type_embeddings.weight"][0]
  )
  h = ln(h, "embeddings.LayerNorm")
  bias = (1.0 - mask[:, None, None, :]) * -1e9
  for i in range(cfg["num_hidden_layers"]):
    p = f"encoder.layer.{i}."
    d = h.shape[-1] // heads
    q, k, v = (
      lin(h, p + f"attention.self.{t}").reshape(b, n, heads, d).transpose(0, 2, 1, 3)
      for t in ("query", "key", "value")
    )
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
    s = np.exp(s - s.max(-1, keepdims=True))
    a = (s / s.sum(-1, keepdims=True)) @ v
    h = ln(
      h + lin(a.transpose(0, 2, 1, 3).reshape(b, n, -1), p + "attention.output.dense"),
      p + "attention.output.LayerNorm",
    )
    h = ln(
      h + lin(gelu(lin(h, p + "intermediate.dense")), p + "output.dense"), p + "output.LayerNorm"
    )
  e = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  return e / np.linalg.norm(e, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------ tests


def test_sentence_embedding_parity(model_dir, head_model):
  ids, mask = _padded(list(SENTENCES))
  ours = np.asarray(
    jax.jit(head_model.meta["embed"])(head_model.init(jax.random.key(0)), ids, mask)
  )
  ref = _np_sentence_embeddings(model_dir, ids, mask.astype(np.float64))
  err = np.max(np.abs(ours - ref))
  print(f"MiniLM sentence-embedding max abs error vs numpy float64 reference: {err:.2e}")
  assert ours.shape == (4, 384)
  assert err < 1e-5, err


def test_hardcoded_ids_match_tokenizer(model_dir):
  tok = Tokenizer.from_file(model_dir / "tokenizer.json")
  for text, ids in SENTENCES.items():
    assert tok.encode(text) == ids, text


def test_embeddings_unchanged_from_former_reader(head_model):
  """Sentence embeddings through the safetensors package equal those recorded with our former reader."""
  ref = np.load(pathlib.Path(__file__).parent / "goldens" / "old_readers_reference.npz")
  ours = np.asarray(
    jax.jit(head_model.meta["embed"])(
      head_model.init(jax.random.key(0)), ref["minilm_ids"], ref["minilm_mask"]
    )
  )
  err = np.abs(ours - ref["minilm_embed"]).max()
  print(f"MiniLM embeddings max |diff| vs former reader: {err:.2e}")
  assert err < 1e-6


def test_safetensors_keeps_bf16(tmp_path):
  """A file written byte by byte per the safetensors spec: BF16 comes back as bfloat16."""
  vals = np.array([[1.0, -2.5, 3.140625], [0.0, 1e-3, -65280.0]], np.float32)
  bits = (vals.view(np.uint32) >> 16).astype("<u2")  # exact in bf16 except 1e-3 (truncated)
  header = json.dumps(
    {
      "w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, bits.nbytes]},
      "__metadata__": {"format": "pt"},
    }
  ).encode()
  path = tmp_path / "bf16.safetensors"
  path.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes())
  w = load_safetensors(path)["w"]
  assert w.dtype == jnp.bfloat16 and w.shape == (2, 3)
  np.testing.assert_array_equal(
    np.asarray(w, np.float32), (bits.astype(np.uint32) << 16).view(np.float32)
  )
  save_safetensors({"a": {"w": w}}, tmp_path / "out.safetensors")
  raw = (tmp_path / "out.safetensors").read_bytes()
  n = struct.unpack("<Q", raw[:8])[0]
  info = json.loads(raw[8 : 8 + n])["a.w"]
  assert info["dtype"] == "BF16" and raw[8 + n + info["data_offsets"][0] :][:12] == bits.tobytes()


def test_export_fine_tuned_weights_roundtrip(model_dir, tmp_path):
  """save_bert_safetensors writes HF names and layouts: re-read by an independent numpy parser it
  equals the original checkpoint tensor for tensor; a changed weight survives the round trip."""
  params, cfg = load_minilm(model_dir)
  params["layers"]["fc1"]["w"] = params["layers"]["fc1"]["w"] + 1.0  # "fine-tuned"
  out = save_bert_safetensors(params, cfg, tmp_path / "model.safetensors")
  orig = _np_safetensors(model_dir / "model.safetensors")
  new = _np_safetensors(out)
  assert set(new) <= set(orig) and len(new) == len(orig) - ("pooler.dense.weight" in orig) * 2
  for k, v in new.items():
    want = orig[k] + (1.0 if k.endswith("intermediate.dense.weight") else 0.0)
    np.testing.assert_array_equal(v, want, err_msg=k)
  back = load_bert_params(out, cfg)
  np.testing.assert_array_equal(back["layers"]["fc1"]["w"], params["layers"]["fc1"]["w"])


def test_paraphrase_similarity(head_model):
  ids, mask = _padded(list(SENTENCES)[:3])
  e = np.asarray(jax.jit(head_model.meta["embed"])(head_model.init(jax.random.key(0)), ids, mask))
  para, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
  print(f"cos(paraphrase)={para:.3f} cos(unrelated)={unrelated:.3f}")
  assert para > 0.6 and para > unrelated + 0.3


def test_classifier_contract_head_only(head_model):
  assert head_model.meta["num_params"] == 384 * 2 + 2
  assert 22_000_000 < head_model.meta["num_params_total"] < 23_000_000
  ids, mask = _padded(list(SENTENCES))
  batch = {
    "input_ids": jnp.asarray(ids),
    "attention_mask": jnp.asarray(mask),
    "y": jnp.asarray([1, 1, 0, 0], jnp.int32),
  }
  check_contract(head_model, batch, lr=1.0, steps=20)


def test_random_small_bert_last_layer():
  cfg = BertConfig(
    vocab_size=50,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=16,
  )
  model = make_bert(num_classes=3, trainable="last_n_layers:1", pretrained=False, config=cfg)
  params = model.init(jax.random.key(0))
  assert params["layers"]["q"]["w"].shape == (1, 32, 32) and "embed" not in params
  rng = np.random.default_rng(0)
  batch = {
    "input_ids": jnp.asarray(rng.integers(1, 50, (6, 10)), jnp.int32),
    "attention_mask": jnp.ones((6, 10), jnp.int32).at[:3, 7:].set(0),
    "y": jnp.asarray([0, 1, 2, 0, 1, 2], jnp.int32),
  }

  @jax.jit
  def f(p):
    return model.evaluate(p, batch), jax.grad(model.loss)(p, batch)

  ev, g = f(params)
  assert abs(float(ev["loss"]) - np.log(3)) < 0.3 and float(ev["count"]) == 6
  assert set(g) == {"layers", "head"}
  assert all(
    np.all(np.isfinite(np.asarray(x))) and np.abs(np.asarray(x)).max() > 0
    for x in jax.tree.leaves(g)
  )
