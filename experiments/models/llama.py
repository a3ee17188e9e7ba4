"""Llama-family decoder (SmolLM2-135M, Qwen2.5-0.5B) loaded from a GGUF file, dequantised to float32.

Functional implementation: token embedding, ``n`` blocks (RMSNorm -> GQA self-attention
with RoPE -> residual, RMSNorm -> SwiGLU MLP -> residual) stacked and run with
``lax.scan``, final RMSNorm, LM head. Two GGUF architectures:

* ``llama`` (SmolLM2): no attention biases, LM head tied to the embedding.
* ``qwen2`` (Qwen2.5): Q/K/V projections with biases, an untied ``output.weight`` head.

RoPE base, RMSNorm epsilon, widths and head counts come from the file's metadata
(``<arch>.rope.freq_base``, ``<arch>.attention.layer_norm_rms_epsilon``, ...). The file is
read and dequantised by the ``gguf`` package (:class:`experiments.models.checkpoints.GGUF`);
the tokenizer is built from its vocabulary with Hugging Face ``tokenizers``
(:class:`experiments.data.tokenization.Tokenizer`).

**Q/K permutation.** For ``llama`` GGUFs, llama.cpp's converter stores ``attn_q``/``attn_k``
rows permuted so that RoPE rotates *adjacent* pairs ``(2i, 2i+1)`` within each head; HF
Llama rotates the halves ``(i, i + d/2)`` (``rotate_half``). :func:`unpermute_qk` undoes
the permutation, so the params here are in HF layout and :func:`apply_rope` is the HF
formulation. ``qwen2`` GGUFs are stored unpermuted (llama.cpp's NEOX RoPE = rotate_half).

Params layout (float32; kernels ``(in, out)``; ``layers`` stacked on a leading axis)::

    embed (V, D)      # also the LM head when tied
    head (D, V)       # untied LM head (qwen2)
    layers: attn_norm (D,), q (D, H*hd), k (D, Hkv*hd), v (D, Hkv*hd), o (H*hd, D),
            [q_bias (H*hd,), k_bias (Hkv*hd,), v_bias (Hkv*hd,)]   # qwen2
            ffn_norm (D,), gate (D, F), up (D, F), down (F, D)
    final_norm (D,)

Causal-LM batch: ``{'x', 'y'[, 'mask']}`` or ``{'input_ids'[, 'attention_mask']}`` (see
:func:`experiments.models.losses.lm_inputs`); padding must be on the right.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.models import layers as L
from experiments.models.contract import Model
from experiments.models.losses import lm_inputs, masked_token_loss, token_metrics
from experiments.models.trainable import layer_stacks, merge_params, scan_layers, with_trainable
from experiments.models.checkpoints import GGUF, artifact_file, find_gguf
from experiments.data.tokenization import Tokenizer


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  vocab_size: int = 49152
  dim: int = 576
  num_layers: int = 30
  num_heads: int = 9
  num_kv_heads: int = 3
  ffn_dim: int = 1536
  rope_theta: float = 100000.0
  norm_eps: float = 1e-5
  max_seq_len: int = 8192
  qkv_bias: bool = False
  tied_embeddings: bool = True
  arch: str = "llama"

  @property
  def head_dim(self) -> int:
    return self.dim // self.num_heads

  @classmethod
  def from_gguf(cls, g: GGUF) -> "LlamaConfig":
    md = g.metadata
    arch = md.get("general.architecture")
    if arch not in ("llama", "qwen2"):
      raise ValueError(f"{g.path}: general.architecture={arch!r}; supported: 'llama', 'qwen2'.")

    def a(key, *default):
      if f"{arch}.{key}" in md:
        return md[f"{arch}.{key}"]
      if default:
        return default[0]
      raise ValueError(
        f"{g.path}: metadata key {arch}.{key} is missing; is this a complete {arch} GGUF?"
      )

    cfg = cls(
      vocab_size=int(a("vocab_size", len(md["tokenizer.ggml.tokens"]))),
      dim=int(a("embedding_length")),
      num_layers=int(a("block_count")),
      num_heads=int(a("attention.head_count")),
      num_kv_heads=int(a("attention.head_count_kv", a("attention.head_count"))),
      ffn_dim=int(a("feed_forward_length")),
      rope_theta=float(a("rope.freq_base", 10000.0)),
      norm_eps=float(a("attention.layer_norm_rms_epsilon")),
      max_seq_len=int(a("context_length", 2048)),
      qkv_bias="blk.0.attn_q.bias" in g.tensors,
      tied_embeddings="output.weight" not in g.tensors,
      arch=arch,
    )
    rope_dim = a("rope.dimension_count", cfg.head_dim)
    if rope_dim != cfg.head_dim:
      raise NotImplementedError(
        f"{g.path}: partial RoPE (rope dim {rope_dim} != head dim {cfg.head_dim})."
      )
    return cfg


def unpermute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
  """Undo llama.cpp's Q/K row permutation: ``(out, in)`` GGUF rows -> HF ``rotate_half`` rows."""
  out, din = w.shape
  return w.reshape(n_heads, out // n_heads // 2, 2, din).swapaxes(1, 2).reshape(out, din)


def load_llama_gguf(
  path: str | os.PathLike | GGUF | None = None, num_layers: int | None = None
) -> tuple[dict, LlamaConfig, GGUF]:
  """Read and dequantise a Llama-family GGUF into the params layout (numpy float32).

  ``path``: a ``.gguf`` file, a directory containing exactly one (e.g. the
  ``fetch('smollm2')`` root), or an opened :class:`GGUF`; default: the ``smollm2`` data
  artifact. ``num_layers`` keeps only the first layers (fast tests). Returns
  ``(params, config, gguf_file)``.
  """
  if isinstance(path, GGUF):
    g = path
  else:
    g = GGUF(find_gguf(artifact_file("smollm2", "gguf") if path is None else path))
  cfg = LlamaConfig.from_gguf(g)
  if num_layers is not None:
    if not 1 <= num_layers <= cfg.num_layers:
      raise ValueError(f"num_layers={num_layers} not in [1, {cfg.num_layers}].")
    cfg = dataclasses.replace(cfg, num_layers=num_layers)
  # llama.cpp permutes Q/K rows of 'llama' checkpoints only (see the module docstring)
  qk = (lambda w, heads: unpermute_qk(w, heads)) if cfg.arch == "llama" else (lambda w, heads: w)

  def layer(i):
    t = lambda n, kind="weight": g.tensor(f"blk.{i}.{n}.{kind}")  # noqa: E731
    p = {
      "attn_norm": t("attn_norm"),
      "q": qk(t("attn_q"), cfg.num_heads).T,
      "k": qk(t("attn_k"), cfg.num_kv_heads).T,
      "v": t("attn_v").T,
      "o": t("attn_output").T,
      "ffn_norm": t("ffn_norm"),
      "gate": t("ffn_gate").T,
      "up": t("ffn_up").T,
      "down": t("ffn_down").T,
    }
    if cfg.qkv_bias:
      p.update(q_bias=t("attn_q", "bias"), k_bias=t("attn_k", "bias"), v_bias=t("attn_v", "bias"))
    return p

  per_layer = [layer(i) for i in range(cfg.num_layers)]
  params = {
    "embed": g.tensor("token_embd.weight"),
    "layers": {k: np.ascontiguousarray(np.stack([p[k] for p in per_layer])) for k in per_layer[0]},
    "final_norm": g.tensor("output_norm.weight"),
  }
  del per_layer
  if not cfg.tied_embeddings:
    params["head"] = np.ascontiguousarray(g.tensor("output.weight").T)
  return params, cfg, g


# Hugging Face (transformers) LlamaForCausalLM / Qwen2ForCausalLM tensor names of our layer params;
# torch Linear weights are (out, in), our kernels (in, out). HF stores Q/K unpermuted (rotate_half).
_HF_LAYER = {
  "attn_norm": ("input_layernorm.weight", False),
  "ffn_norm": ("post_attention_layernorm.weight", False),
  "q": ("self_attn.q_proj.weight", True),
  "k": ("self_attn.k_proj.weight", True),
  "v": ("self_attn.v_proj.weight", True),
  "o": ("self_attn.o_proj.weight", True),
  "q_bias": ("self_attn.q_proj.bias", False),
  "k_bias": ("self_attn.k_proj.bias", False),
  "v_bias": ("self_attn.v_proj.bias", False),
  "gate": ("mlp.gate_proj.weight", True),
  "up": ("mlp.up_proj.weight", True),
  "down": ("mlp.down_proj.weight", True),
}


def load_llama_hf(
  path: str | os.PathLike, num_layers: int | None = None
) -> tuple[dict, LlamaConfig, Tokenizer]:
  """Params, config and tokenizer of a Hugging Face Llama/Qwen2 checkpoint directory
  (``config.json``, ``*.safetensors``, ``tokenizer.json``), read with ``safetensors`` and
  ``tokenizers``; or of a Hub repository id (e.g. ``'Qwen/Qwen2.5-0.5B-Instruct'``),
  downloaded with ``huggingface_hub`` where the internet is available."""
  import json

  from experiments.models.checkpoints import load_safetensors

  path = pathlib.Path(path)
  if not (path / "config.json").is_file():
    repo = os.fspath(path)
    try:
      from huggingface_hub import snapshot_download

      path = pathlib.Path(snapshot_download(repo, allow_patterns=["*.json", "*.safetensors"]))
    except Exception as e:  # not installed, offline, unknown repo
      raise FileNotFoundError(
        f"{repo} is neither a model directory (config.json, *.safetensors, tokenizer.json) nor a "
        f"downloadable Hub repo ({type(e).__name__}); with internet: pip install huggingface_hub, "
        "offline: use the GGUF (python -m experiments.data.fetch qwen2.5-0.5b)."
      ) from None
  hc = json.loads((path / "config.json").read_text())
  if hc.get("model_type") not in ("llama", "qwen2"):
    raise ValueError(
      f"{path}/config.json: model_type={hc.get('model_type')!r}; supported: 'llama', 'qwen2'."
    )
  t = {}
  for f in sorted(path.glob("*.safetensors")):
    t.update(load_safetensors(f))
  n = int(hc["num_hidden_layers"]) if num_layers is None else num_layers
  cfg = LlamaConfig(
    vocab_size=int(hc["vocab_size"]),
    dim=int(hc["hidden_size"]),
    num_layers=n,
    num_heads=int(hc["num_attention_heads"]),
    num_kv_heads=int(hc.get("num_key_value_heads", hc["num_attention_heads"])),
    ffn_dim=int(hc["intermediate_size"]),
    rope_theta=float(hc.get("rope_theta", 10000.0)),
    norm_eps=float(hc["rms_norm_eps"]),
    max_seq_len=int(hc.get("max_position_embeddings", 2048)),
    qkv_bias="model.layers.0.self_attn.q_proj.bias" in t,
    tied_embeddings=bool(hc.get("tie_word_embeddings", "lm_head.weight" not in t)),
    arch=hc["model_type"],
  )
  f32 = lambda name: np.asarray(t[name], np.float32)  # noqa: E731  (bf16 checkpoints widen here)
  keys = [k for k in _HF_LAYER if cfg.qkv_bias or not k.endswith("_bias")]
  params = {
    "embed": f32("model.embed_tokens.weight"),
    "layers": {
      k: np.stack(
        [
          f32(f"model.layers.{i}.{_HF_LAYER[k][0]}").T
          if _HF_LAYER[k][1]
          else f32(f"model.layers.{i}.{_HF_LAYER[k][0]}")
          for i in range(n)
        ]
      )
      for k in keys
    },
    "final_norm": f32("model.norm.weight"),
  }
  if not cfg.tied_embeddings:
    params["head"] = np.ascontiguousarray(f32("lm_head.weight").T)
  return params, cfg, Tokenizer.from_file(path / "tokenizer.json")


def save_llama_hf(
  params: dict,
  cfg: LlamaConfig,
  directory: str | os.PathLike,
  tokenizer: Tokenizer | None = None,
  dtype=None,
) -> pathlib.Path:
  """Write (fine-tuned, full) params as a Hugging Face checkpoint directory: ``model.safetensors``
  with HF names, ``config.json`` and, given the tokenizer, ``tokenizer.json``; the inverse of
  :func:`load_llama_hf`. ``dtype``: e.g. ``jnp.bfloat16``; default: as given."""
  import json

  from experiments.models.checkpoints import save_safetensors

  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  cast = (lambda x: jnp.asarray(x).astype(dtype)) if dtype is not None else jnp.asarray  # noqa: E731
  out = {
    "model.embed_tokens.weight": cast(params["embed"]),
    "model.norm.weight": cast(params["final_norm"]),
  }
  stacks = layer_stacks(params)  # a trainable split keeps the first blocks under 'frozen_layers'
  layers = jax.tree.map(lambda *xs: jnp.concatenate(xs), *stacks) if len(stacks) > 1 else stacks[0]
  for k, stack in layers.items():
    name, transpose = _HF_LAYER[k]
    for i in range(stack.shape[0]):
      out[f"model.layers.{i}.{name}"] = cast(stack[i].T if transpose else stack[i])
  if not cfg.tied_embeddings:
    out["lm_head.weight"] = cast(params["head"].T)
  save_safetensors(out, directory / "model.safetensors", metadata={"format": "pt"})
  hc = {
    "architectures": ["Qwen2ForCausalLM" if cfg.arch == "qwen2" else "LlamaForCausalLM"],
    "model_type": cfg.arch,
    "vocab_size": cfg.vocab_size,
    "hidden_size": cfg.dim,
    "num_hidden_layers": cfg.num_layers,
    "num_attention_heads": cfg.num_heads,
    "num_key_value_heads": cfg.num_kv_heads,
    "intermediate_size": cfg.ffn_dim,
    "rope_theta": cfg.rope_theta,
    "rms_norm_eps": cfg.norm_eps,
    "hidden_act": "silu",
    "max_position_embeddings": cfg.max_seq_len,
    "tie_word_embeddings": cfg.tied_embeddings,
    "attention_bias": cfg.qkv_bias,
  }
  (directory / "config.json").write_text(json.dumps(hc, indent=2))
  if tokenizer is not None:
    tokenizer.hf.save(str(directory / "tokenizer.json"))
  return directory


def rope_tables(
  length: int, head_dim: int, theta: float, offset: int = 0
) -> tuple[jax.Array, jax.Array]:
  """HF Llama cos/sin tables, shape (length, head_dim)."""
  inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
  ang = np.outer(np.arange(offset, offset + length, dtype=np.float64), inv)
  ang = np.concatenate([ang, ang], axis=-1)
  return jnp.asarray(np.cos(ang), jnp.float32), jnp.asarray(np.sin(ang), jnp.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """``x * cos + rotate_half(x) * sin`` for x (B, L, H, hd)."""
  half = x.shape[-1] // 2
  rot = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return x * cos[None, :, None, :] + rot * sin[None, :, None, :]


def run_blocks(params: dict, cfg: LlamaConfig, h: jax.Array) -> jax.Array:
  """The transformer blocks of ``params`` (its stacks in order: ``frozen_layers`` then
  ``layers``) on input states ``h`` (B, L, D), positions 0..L-1, causal attention."""
  b, length, _ = h.shape
  hd, eps = cfg.head_dim, cfg.norm_eps
  cos, sin = rope_tables(length, hd, cfg.rope_theta)
  mask = L.causal_mask(length)

  def block(h, p):
    x = L.rms_norm(p["attn_norm"], h, eps)
    q, k, v = x @ p["q"], x @ p["k"], x @ p["v"]
    if cfg.qkv_bias:
      q, k, v = q + p["q_bias"], k + p["k_bias"], v + p["v_bias"]
    q = apply_rope(q.reshape(b, length, cfg.num_heads, hd), cos, sin)
    k = apply_rope(k.reshape(b, length, cfg.num_kv_heads, hd), cos, sin)
    v = v.reshape(b, length, cfg.num_kv_heads, hd)
    h = h + L.attention(q, k, v, mask).reshape(b, length, -1) @ p["o"]
    x = L.rms_norm(p["ffn_norm"], h, eps)
    return h + (jax.nn.silu(x @ p["gate"]) * (x @ p["up"])) @ p["down"]

  return scan_layers(block, h, params)


def lm_logits(params: dict, cfg: LlamaConfig, h: jax.Array) -> jax.Array:
  """Final RMSNorm and LM head (the tied embedding or the untied ``head``) on states (B, L, D)."""
  head = params["embed"].T if cfg.tied_embeddings else params["head"]
  return L.rms_norm(params["final_norm"], h, cfg.norm_eps) @ head


def forward(params: dict, cfg: LlamaConfig, tokens: jax.Array) -> jax.Array:
  """Logits (B, L, V) for int tokens (B, L), causal attention."""
  return lm_logits(params, cfg, run_blocks(params, cfg, params["embed"][tokens]))


def greedy_generate(
  params: dict,
  cfg: LlamaConfig,
  prompt: Sequence[int],
  max_new_tokens: int,
  eos_id: int | None = None,
) -> list[int]:
  """Greedy decoding without a KV cache: one jitted full forward per token over a fixed-size
  right-padded buffer (a single compilation). Returns only the new token ids."""
  total = len(prompt) + max_new_tokens
  buf = np.zeros((1, total), np.int32)
  buf[0, : len(prompt)] = prompt

  @jax.jit
  def next_token(params, buf, pos):
    logits = forward(params, cfg, buf)
    return jnp.argmax(jax.lax.dynamic_index_in_dim(logits[0], pos - 1, keepdims=False))

  out = []
  for pos in range(len(prompt), total):
    t = int(next_token(params, jnp.asarray(buf), pos))
    out.append(t)
    buf[0, pos] = t
    if eos_id is not None and t == eos_id:
      break
  return out


def make_llama(
  trainable="all",
  path: str | os.PathLike | GGUF | None = None,
  num_layers: int | None = None,
  *,
  pretrained: bool = True,
  config: LlamaConfig | None = None,
  artifact: str = "smollm2",
  hf: str | os.PathLike | None = None,
) -> Model:
  """Causal LM from a Llama-family GGUF (or a random ``config`` with ``pretrained=False``).

  ``path``: a ``.gguf`` file, a directory holding one, or an opened :class:`GGUF`; default: the data artifact
  ``artifact`` (``'smollm2'``: SmolLM2-135M-Instruct; ``'qwen2.5-0.5b'``: Qwen2.5-Coder-0.5B-Instruct).
  ``trainable``: ``'all'`` | ``'last_n_layers:N'`` (last N blocks + final norm; embedding and
  LM head stay frozen) | ``'head'`` (the LM head: the tied embedding, or the untied
  ``head``) | a predicate on key paths. ``num_layers`` truncates the pretrained stack
  (tests, ablations). ``hf``: instead of a GGUF, a Hugging Face checkpoint directory or Hub
  repo id (:func:`load_llama_hf`). ``meta['tokenizer']`` is the model's tokenizer when pretrained.
  """
  tokenizer = None
  if pretrained and hf is not None:
    weights, cfg, tokenizer = load_llama_hf(hf, num_layers)
  elif pretrained:
    weights, cfg, g = load_llama_gguf(
      artifact_file(artifact, "gguf") if path is None else path, num_layers
    )
    tokenizer = Tokenizer.from_gguf(g)
    del g
  else:
    weights, cfg = None, config or LlamaConfig()
  d, hd = cfg.dim, cfg.head_dim

  def init_all(key):
    ke, kl, kh = jax.random.split(key, 3)

    def layer(k):
      ks = jax.random.split(k, 7)
      p = {
        "attn_norm": jnp.ones((d,)),
        "ffn_norm": jnp.ones((d,)),
        "q": L.dense_init(ks[0], d, cfg.num_heads * hd, bias=False)["w"],
        "k": L.dense_init(ks[1], d, cfg.num_kv_heads * hd, bias=False)["w"],
        "v": L.dense_init(ks[2], d, cfg.num_kv_heads * hd, bias=False)["w"],
        "o": L.dense_init(ks[3], cfg.num_heads * hd, d, bias=False, scale=0.5)["w"],
        "gate": L.dense_init(ks[4], d, cfg.ffn_dim, bias=False)["w"],
        "up": L.dense_init(ks[5], d, cfg.ffn_dim, bias=False)["w"],
        "down": L.dense_init(ks[6], cfg.ffn_dim, d, bias=False, scale=0.5)["w"],
      }
      if cfg.qkv_bias:
        p.update(
          q_bias=jnp.zeros((cfg.num_heads * hd,)),
          k_bias=jnp.zeros((cfg.num_kv_heads * hd,)),
          v_bias=jnp.zeros((cfg.num_kv_heads * hd,)),
        )
      return p

    out = {
      "embed": L.embed_init(ke, cfg.vocab_size, d),
      "layers": L.stacked_init(layer, kl, cfg.num_layers),
      "final_norm": jnp.ones((d,)),
    }
    if not cfg.tied_embeddings:
      out["head"] = L.dense_init(kh, d, cfg.vocab_size, bias=False)["w"]
    return out

  def loss(params, batch):
    x, y, m = lm_inputs(batch)
    return masked_token_loss(forward(params, cfg, x), y, m)

  def evaluate(params, batch):
    x, y, m = lm_inputs(batch)
    return token_metrics(forward(params, cfg, x), y, m)

  model = with_trainable(
    "llama",
    (lambda key: {}) if pretrained else init_all,
    loss,
    evaluate,
    trainable,
    head_keys=("embed",) if cfg.tied_embeddings else ("head",),
    final_keys=("final_norm",),
    head_with_layers=False,
    pretrained=weights,
    meta=dict(task="causal_lm", config=cfg, tokenizer=tokenizer),
  )
  full = model.meta["full_params"]
  model.meta["apply"] = lambda params, tokens: forward(full(params), cfg, tokens)
  model.meta["generate"] = lambda params, prompt, n, eos_id=None: greedy_generate(
    full(params), cfg, prompt, n, eos_id
  )
  return model


def split_at_frozen(model: Model) -> tuple:
  """Cut a ``trainable='last_n_layers:N'`` LM where training starts: ``(encode, tail)``.

  ``encode(frozen, tokens)`` (jittable; ``frozen`` is :func:`encoder_params` of the model)
  runs the frozen embedding and first blocks, ``(B, L) int -> (B, L, D)``. ``tail`` is a
  :class:`Model` on batches ``{'h', 'y'[, 'mask']}`` of those states with the model's
  params, init, loss and metrics: for ``h = encode(x)`` its loss is the full model's loss
  on ``{'x', 'y'[, 'mask']}``, and so are its gradients (the blocks have no dropout, so the
  frozen part's output is fixed). Training then runs the frozen blocks once per example
  instead of at every step. The LM head stays a frozen constant of the tail.
  """
  trainable = model.meta.get("trainable")
  if not (isinstance(trainable, str) and trainable.startswith("last_n_layers:")):
    raise ValueError(
      f"encode_once needs config.model.kwargs.trainable='last_n_layers:N'; got {trainable!r}."
    )
  cfg, frozen = model.meta["config"], model.meta["frozen"]
  head_key = "embed" if cfg.tied_embeddings else "head"
  head = {head_key: frozen[head_key]}

  def encode(enc: dict, tokens):
    h = enc["embed"][tokens]
    if "frozen_layers" in enc:
      h = run_blocks({"layers": enc["frozen_layers"]}, cfg, h)
    return h

  def logits(params, batch):
    p = merge_params(params, jax.lax.optimization_barrier(head))
    return lm_logits(p, cfg, run_blocks(p, cfg, batch["h"]))

  def loss(params, batch):
    return masked_token_loss(logits(params, batch), batch["y"], batch.get("mask"))

  def evaluate(params, batch):
    return token_metrics(logits(params, batch), batch["y"], batch.get("mask"))

  drop = ("frozen", "full_params", "loss_with_frozen", "apply", "generate")
  meta = {k: v for k, v in model.meta.items() if k not in drop}
  meta.update(encode_once=True)
  tail = Model(init=model.init, loss=loss, evaluate=evaluate, name=model.name + "_tail", meta=meta)
  return encode, tail


def encoder_params(model: Model) -> dict:
  """The frozen part :func:`split_at_frozen`'s ``encode`` runs: the embedding and the frozen
  blocks (``frozen_layers``, absent when every block trains)."""
  frozen = model.meta["frozen"]
  return {k: frozen[k] for k in ("embed", "frozen_layers") if k in frozen}


def make_qwen2(
  trainable="all",
  path: str | os.PathLike | GGUF | None = None,
  num_layers: int | None = None,
  **kwargs,
) -> Model:
  """:func:`make_llama` on the ``qwen2.5-0.5b`` artifact (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF)."""
  return make_llama(trainable, path, num_layers, artifact="qwen2.5-0.5b", **kwargs)
