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

from tailopt.models import layers as L
from tailopt.models.base import Model, classification_metrics, scan_layers, softmax_xent, with_trainable
from tailopt.models.checkpoints import artifact_file, load_safetensors


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


def load_bert_params(weights: str | os.PathLike, cfg: BertConfig) -> dict:
    """Map an HF BERT safetensors checkpoint to the params layout above (float32 numpy)."""
    t = load_safetensors(weights)
    t = {k.removeprefix("bert."): v for k, v in t.items()}

    def get(name):
        if name not in t:
            raise KeyError(f"{weights}: missing tensor {name!r} (is this a BERT checkpoint?).")
        return np.asarray(t[name], np.float32)

    def lin(prefix):  # torch Linear weight is (out, in)
        return {"w": get(prefix + ".weight").T.copy(), "b": get(prefix + ".bias")}

    def ln(prefix):
        return {"scale": get(prefix + ".weight"), "bias": get(prefix + ".bias")}

    def layer(i):
        p = f"encoder.layer.{i}."
        return {
            "q": lin(p + "attention.self.query"),
            "k": lin(p + "attention.self.key"),
            "v": lin(p + "attention.self.value"),
            "o": lin(p + "attention.output.dense"),
            "ln1": ln(p + "attention.output.LayerNorm"),
            "fc1": lin(p + "intermediate.dense"),
            "fc2": lin(p + "output.dense"),
            "ln2": ln(p + "output.LayerNorm"),
        }

    per_layer = [layer(i) for i in range(cfg.num_hidden_layers)]
    return {
        "embed": {
            "word": get("embeddings.word_embeddings.weight"),
            "pos": get("embeddings.position_embeddings.weight"),
            "type": get("embeddings.token_type_embeddings.weight"),
            "ln": ln("embeddings.LayerNorm"),
        },
        "layers": jax.tree.map(lambda *xs: np.stack(xs), *per_layer),
    }


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
            raise FileNotFoundError(f"no model.safetensors in {path}; pass the MiniLM model directory "
                                    "or run `python -m tailopt.data.fetch minilm`.")
        path = found[0].parent
    cfg = BertConfig.from_json(path / "config.json")
    return load_bert_params(path / "model.safetensors", cfg), cfg


def encode(params: dict, cfg: BertConfig, input_ids: jax.Array, attention_mask: jax.Array,
           token_type_ids: jax.Array | None = None) -> jax.Array:
    """Token hidden states (B, L, D) of the BERT encoder."""
    b, length = input_ids.shape
    if length > cfg.max_position_embeddings:
        raise ValueError(f"sequence length {length} > max_position_embeddings={cfg.max_position_embeddings}.")
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


def sentence_embedding(params: dict, cfg: BertConfig, input_ids: jax.Array, attention_mask: jax.Array,
                       normalize: bool = True) -> jax.Array:
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
            return {**L.mha_init(ka, d), "ln1": L.layer_norm_init(d),
                    "fc1": L.dense_init(k1, d, cfg.intermediate_size),
                    "fc2": L.dense_init(k2, cfg.intermediate_size, d, scale=0.5), "ln2": L.layer_norm_init(d)}

        return {
            "embed": {"word": L.embed_init(kw, cfg.vocab_size, d), "pos": L.embed_init(kp, cfg.max_position_embeddings, d),
                      "type": L.embed_init(kt, cfg.type_vocab_size, d), "ln": L.layer_norm_init(d)},
            "layers": L.stacked_init(layer, kl, cfg.num_hidden_layers),
            **init_head(kh),
        }

    def logits(params, batch):
        h = encode(params, cfg, batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return L.dense(params["head"], mean_pool(h, batch["attention_mask"]))

    def loss(params, batch):
        return jnp.mean(softmax_xent(logits(params, batch), batch["y"]))

    def evaluate(params, batch):
        return classification_metrics(logits(params, batch), batch["y"])

    model = with_trainable(
        "bert", init_head if pretrained else init_all, loss, evaluate, trainable,
        head_keys=("head",), pretrained=weights,
        meta=dict(task="sequence_classification", config=cfg, num_classes=num_classes),
    )
    full = model.meta["full_params"]
    model.meta["apply"] = lambda params, batch: logits(full(params), batch)
    model.meta["embed"] = lambda params, ids, mask: sentence_embedding(full(params), cfg, ids, mask)
    return model
