"""BERT encoder (all-MiniLM-L6-v2) with mean-pooled sentence embeddings and a classifier head.

Functional implementation of HF ``BertModel`` (post-LN, exact-erf GELU, absolute position
and token-type embeddings); the encoder layers are stacked and run with ``lax.scan``.
Pretrained weights come from the MiniLM ``model.safetensors`` (data artifact ``minilm``).

Params layout::

    embed:  word (V, D), pos (P, D), type (T, D), ln {scale, bias}
    layers: q/k/v/o {w (D, D), b}, ln1, fc1 {w (D, F), b}, fc2 {w (F, D), b}, ln2   [stacked, leading axis = layer]
    head:   {w (D, C), b}                  (classifier on the mean-pooled embedding; new)

Classification batch: ``{'input_ids': int32 (B, L), 'attention_mask': (B, L), 'y': int32 (B,)
[, 'token_type_ids']}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from experiments.models import layers as L
from experiments.models.contract import Model
from experiments.models.losses import classification_metrics, softmax_xent
from experiments.models.trainable import scan_layers, with_trainable
from experiments.models.checkpoints import artifact_file, load_safetensors, save_safetensors


@dataclasses.dataclass(frozen=True)
class BertConfig:
  vocab_size: int = 30522
  hidden_size: int = 384
  num_hidden_layers: int = 6
  num_attention_heads: int = 12
  intermediate_size: int = 1536
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12

  @classmethod
  def from_json(cls, path: str | os.PathLike) -> "BertConfig":
    cfg = json.loads(pathlib.Path(path).read_text())
    if cfg.get("hidden_act", "gelu") != "gelu":
      raise ValueError(f"{path}: hidden_act={cfg['hidden_act']!r} unsupported (only exact 'gelu').")
    return cls(**{f.name: cfg[f.name] for f in dataclasses.fields(cls) if f.name in cfg})


def _hf_names(cfg: BertConfig) -> list[tuple[str, tuple, bool]]:
  """``(HF tensor name, path in our params, transposed?)`` for every BERT weight; torch
  ``Linear`` weights are ``(out, in)``, our kernels ``(in, out)``. Layer paths end with the
  layer index (stacked on the leading axis)."""
  out = [
    ("embeddings.word_embeddings.weight", ("embed", "word"), False),
    ("embeddings.position_embeddings.weight", ("embed", "pos"), False),
    ("embeddings.token_type_embeddings.weight", ("embed", "type"), False),
    ("embeddings.LayerNorm.weight", ("embed", "ln", "scale"), False),
    ("embeddings.LayerNorm.bias", ("embed", "ln", "bias"), False),
  ]
  lin = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
  }
  ln = {"ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}
  for i in range(cfg.num_hidden_layers):
    p = f"encoder.layer.{i}."
    for ours, hf in lin.items():
      out += [
        (p + hf + ".weight", ("layers", ours, "w", i), True),
        (p + hf + ".bias", ("layers", ours, "b", i), False),
      ]
    for ours, hf in ln.items():
      out += [
        (p + hf + ".weight", ("layers", ours, "scale", i), False),
        (p + hf + ".bias", ("layers", ours, "bias", i), False),
      ]
  return out


def load_bert_params(weights: str | os.PathLike, cfg: BertConfig) -> dict:
  """Map an HF BERT safetensors checkpoint to the params layout above (float32 numpy)."""
  t = {k.removeprefix("bert."): v for k, v in load_safetensors(weights).items()}
  flat: dict[tuple, np.ndarray] = {}
  for name, path, transpose in _hf_names(cfg):
    if name not in t:
      raise KeyError(f"{weights}: missing tensor {name!r} (is this a BERT checkpoint?).")
    x = np.asarray(t[name], np.float32)
    flat[path] = x.T.copy() if transpose else x
  params: dict = {}
  for path, x in flat.items():
    if path[0] == "layers":
      continue
    node = params
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = x
  n = cfg.num_hidden_layers
  for path in {p[:-1] for p in flat if p[0] == "layers"}:
    node = params
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = np.stack([flat[path + (i,)] for i in range(n)])
  return params


def save_bert_safetensors(
  params: dict, cfg: BertConfig, path: str | os.PathLike, dtype=None
) -> pathlib.Path:
  """Write (fine-tuned) encoder params back out as an HF-named BERT ``model.safetensors``
  (the inverse of :func:`load_bert_params`; the classifier ``head`` is not part of BERT and
  is skipped). ``dtype``: e.g. ``jnp.bfloat16`` to halve the file; default: as given."""

  def get(p):
    node = params
    for k in p:
      node = node[k]
    return node

  tensors = {}
  for name, p, transpose in _hf_names(cfg):
    x = jnp.asarray(get(p))
    x = x.T if transpose else x
    tensors[name] = x.astype(dtype) if dtype is not None else x
  return save_safetensors(tensors, path, metadata={"format": "pt"})


def load_minilm(path: str | os.PathLike | None = None) -> tuple[dict, BertConfig]:
  """MiniLM params and config.

  ``path``: the directory holding ``model.safetensors`` and ``config.json``, or any parent
  of it (e.g. the ``fetch('minilm')`` root); default: the ``minilm`` data artifact.
  """
  if path is None:
    path = artifact_file("minilm", "model_dir")
  path = pathlib.Path(path)
  if not (path / "model.safetensors").is_file():
    found = sorted(path.glob("**/model.safetensors")) if path.is_dir() else []
    if not found:
      raise FileNotFoundError(
        f"no model.safetensors in {path}; pass the MiniLM model directory "
        "or run `python -m experiments.data.fetch minilm`."
      )
    path = found[0].parent
  cfg = BertConfig.from_json(path / "config.json")
  return load_bert_params(path / "model.safetensors", cfg), cfg


def encode(
  params: dict,
  cfg: BertConfig,
  input_ids: jax.Array,
  attention_mask: jax.Array,
  token_type_ids: jax.Array | None = None,
) -> jax.Array:
  """Token hidden states (B, L, D) of the BERT encoder."""
  b, length = input_ids.shape
  if length > cfg.max_position_embeddings:
    raise ValueError(
      f"sequence length {length} > max_position_embeddings={cfg.max_position_embeddings}."
    )
  e = params["embed"]
  tt = jnp.zeros_like(input_ids) if token_type_ids is None else token_type_ids
  h = e["word"][input_ids] + e["pos"][:length][None] + e["type"][tt]
  h = L.layer_norm(e["ln"], h, cfg.layer_norm_eps)
  mask = L.padding_mask(attention_mask)
  heads, eps = cfg.num_attention_heads, cfg.layer_norm_eps

  def block(h, p):
    h = L.layer_norm(p["ln1"], h + L.mha(p, h, h, mask, heads), eps)
    f = L.dense(p["fc2"], jax.nn.gelu(L.dense(p["fc1"], h), approximate=False))
    return L.layer_norm(p["ln2"], h + f, eps)

  return scan_layers(block, h, params)


def mean_pool(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
  """Mean of token states over the attention mask (sentence-transformers ``Pooling``)."""
  m = attention_mask.astype(hidden.dtype)[..., None]
  return jnp.sum(hidden * m, 1) / jnp.maximum(jnp.sum(m, 1), 1e-9)


def sentence_embedding(
  params: dict,
  cfg: BertConfig,
  input_ids: jax.Array,
  attention_mask: jax.Array,
  normalize: bool = True,
) -> jax.Array:
  """all-MiniLM-L6-v2 sentence embeddings: encoder -> mean pooling -> L2 normalisation."""
  x = mean_pool(encode(params, cfg, input_ids, attention_mask), attention_mask)
  if normalize:
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  return x


def make_bert(
  num_classes: int = 2,
  trainable="all",
  path: str | os.PathLike | None = None,
  *,
  pretrained: bool = True,
  config: BertConfig | None = None,
) -> Model:
  """MiniLM-BERT sequence classifier: mean-pooled encoder output -> linear head.

  ``trainable``: ``'all'`` | ``'head'`` | ``'last_n_layers:N'`` (head + last N encoder
  layers) | predicate on key paths. ``pretrained=False`` builds a randomly initialised
  encoder of ``config`` (no artifact needed; for tests).
  """
  if pretrained:
    weights, cfg = load_minilm(path)
  else:
    weights, cfg = None, config or BertConfig()
  d = cfg.hidden_size

  def init_head(key):
    return {"head": L.dense_init(key, d, num_classes, scale=0.1)}

  def init_all(key):
    ke, kl, kh = jax.random.split(key, 3)
    kw, kp, kt = jax.random.split(ke, 3)

    def layer(k):
      ka, k1, k2 = jax.random.split(k, 3)
      return {
        **L.mha_init(ka, d),
        "ln1": L.layer_norm_init(d),
        "fc1": L.dense_init(k1, d, cfg.intermediate_size),
        "fc2": L.dense_init(k2, cfg.intermediate_size, d, scale=0.5),
        "ln2": L.layer_norm_init(d),
      }

    return {
      "embed": {
        "word": L.embed_init(kw, cfg.vocab_size, d),
        "pos": L.embed_init(kp, cfg.max_position_embeddings, d),
        "type": L.embed_init(kt, cfg.type_vocab_size, d),
        "ln": L.layer_norm_init(d),
      },
      "layers": L.stacked_init(layer, kl, cfg.num_hidden_layers),
      **init_head(kh),
    }

  def logits(params, batch):
    h = encode(
      params, cfg, batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
    )
    return L.dense(params["head"], mean_pool(h, batch["attention_mask"]))

  def loss(params, batch):
    return jnp.mean(softmax_xent(logits(params, batch), batch["y"]))

  def evaluate(params, batch):
    return classification_metrics(logits(params, batch), batch["y"])

  model = with_trainable(
    "bert",
    init_head if pretrained else init_all,
    loss,
    evaluate,
    trainable,
    head_keys=("head",),
    pretrained=weights,
    meta=dict(task="sequence_classification", config=cfg, num_classes=num_classes),
  )
  full = model.meta["full_params"]
  model.meta["apply"] = lambda params, batch: logits(full(params), batch)
  model.meta["embed"] = lambda params, ids, mask: sentence_embedding(full(params), cfg, ids, mask)
  return model
