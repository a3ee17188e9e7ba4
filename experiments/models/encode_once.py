"""``config.data.encode_once``: run a model's frozen part once per example, not at every step.

A model whose first part is frozen computes the same states for an example at every step.
:func:`encode_once` runs that part once over every example set of the data (memoised in
memory and on disk under the artifact cache) and returns the data as those states and the
model as its trained part alone: the same function of the same trainable parameters, with
the same initialisation, loss and metrics.

* MiniLM with ``trainable='head'``: examples become their mean-pooled sentence states ``x``;
  the model is the classifier head.
* A Llama-family LM with ``trainable='last_n_layers:N'``: examples become the states ``h``
  entering the trained blocks (:func:`experiments.models.llama.split_at_frozen`); the model
  is the trained tail.
"""

from __future__ import annotations

import hashlib
import os

import jax
import numpy as np

from experiments.data.examples import map_examples
from experiments.data.fetch import cache_dir
from experiments.models import bert, llama
from experiments.models.contract import Model
from experiments.models.losses import classification_metrics, softmax_xent

__all__ = ["encode_once"]

_ENCODED: dict = {}  # cache key -> encoded examples (float32)


def encode_once(data, model: Model, batch_size: int):
  """``(data, model)`` with the frozen part of ``model`` run once (see the module docstring);
  ``batch_size``: examples per forward pass. ``ValueError`` for any other model."""
  cfg = model.meta.get("config")
  if isinstance(cfg, bert.BertConfig):
    return _encode_head_once(data, model, batch_size)
  if isinstance(cfg, llama.LlamaConfig):
    return _encode_lm_once(data, model, batch_size)
  raise ValueError(
    f"config.data.encode_once works for MiniLM (bert, trainable='head') and Llama-family "
    f"models (trainable='last_n_layers:N'), not model {model.name!r}; set it to False."
  )


def _encode_cached(name: str, identity: bytes, fn, arrays: tuple, batch_size: int):
  """``fn(*rows)`` over the rows of ``arrays`` in batches of ``batch_size``, as float32,
  memoised in memory and on disk under ``<cache>/<name>/`` by a sha1 of ``identity`` (the
  frozen weights' identity) and the arrays: a study's runs and processes encode each example
  once. Files are written atomically (concurrent runs may write the same one)."""
  arrays = tuple(np.asarray(a) for a in arrays)
  h = hashlib.sha1(identity)
  for a in arrays:
    h.update(a.tobytes() + str((a.shape, a.dtype)).encode())
  key = name + "/" + h.hexdigest()
  path = os.path.join(cache_dir(), name, h.hexdigest() + ".npy")
  if key not in _ENCODED and os.path.exists(path):
    _ENCODED[key] = np.load(path)
  if key not in _ENCODED:
    n = len(arrays[0])
    out = [
      np.asarray(fn(*(a[i : i + batch_size] for a in arrays))) for i in range(0, n, batch_size)
    ]
    if not out:
      spec = [jax.ShapeDtypeStruct((1,) + a.shape[1:], a.dtype) for a in arrays]
      out = [np.zeros((0,) + jax.eval_shape(fn, *spec).shape[1:])]
    _ENCODED[key] = np.concatenate(out).astype(np.float32)
    try:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = f"{path}.{os.getpid()}.tmp.npy"
      np.save(tmp, _ENCODED[key])
      os.replace(tmp, path)
    except OSError:
      pass
  return _ENCODED[key]


def _encode_head_once(data, model: Model, batch_size: int):
  """A head-only MiniLM (``trainable='head'``) with its frozen encoder run once: every
  example becomes its mean-pooled sentence state ``x`` (no dropout, so the same numbers the
  encoder gives at every step) and the model is the classifier head alone, with the same
  parameters, initialisation, loss and metrics. The same function of the trainable
  parameters as the head-only MiniLM, without a forward pass of the encoder per step."""
  if model.meta.get("trainable") != "head":
    raise ValueError("config.data.encode_once needs config.model.kwargs.trainable='head'.")
  frozen, cfg = model.meta["frozen"], model.meta["config"]
  pool = jax.jit(lambda ids, m: bert.mean_pool(bert.encode(frozen, cfg, ids, m), m))
  identity = b"minilm" + repr(cfg).encode()  # the MiniLM weights are pinned by sha256

  def featurize(ex):
    x = _encode_cached(
      "minilm-encoded", identity, pool, (ex["input_ids"], ex["attention_mask"]), batch_size
    )
    return {"x": x, "y": ex["y"]}

  map_examples(data, featurize)

  def logits(params, batch):
    return batch["x"] @ params["head"]["w"] + params["head"]["b"]

  meta = {
    k: v
    for k, v in model.meta.items()
    if k not in ("frozen", "full_params", "loss_with_frozen", "apply")
  }
  meta.update(encode_once=True)
  head = Model(
    init=model.init,
    loss=lambda p, b: softmax_xent(logits(p, b), b["y"]).mean(),
    evaluate=lambda p, b: classification_metrics(logits(p, b), b["y"]),
    name="bert_head",
    meta=meta,
  )
  return data, head


def _encode_lm_once(data, model: Model, batch_size: int):
  """A Llama-family LM with ``trainable='last_n_layers:N'`` and its frozen embedding and
  first blocks run once per sequence (:func:`experiments.models.llama.split_at_frozen`):
  every example becomes ``{'h', 'y'}``, the states entering the trained blocks, and the
  model is the trained tail, the same function of the same parameters."""
  encode, tail = llama.split_at_frozen(model)
  enc = llama.encoder_params(model)
  identity = hashlib.sha1(repr(model.meta["config"]).encode())
  for leaf in jax.tree.leaves(enc):  # the frozen weights themselves: any change re-encodes
    identity.update(np.ascontiguousarray(jax.device_get(leaf)).data)
  run = jax.jit(encode)

  def featurize(ex):
    h = _encode_cached(
      "lm-encoded", identity.digest(), lambda x: run(enc, x), (ex["x"],), batch_size
    )
    return {"h": h, **{k: v for k, v in ex.items() if k != "x"}}

  return map_examples(data, featurize), tail
