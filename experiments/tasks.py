"""Task registry: a config names a task; a task builds (FederatedData, Model)."""

from __future__ import annotations

from typing import Callable

from tailopt.data import synthetic
from experiments.models import simple

TaskBuilder = Callable[..., tuple]
TASKS: dict[str, TaskBuilder] = {}


def register(name: str):
  def deco(fn):
    TASKS[name] = fn
    return fn

  return deco


@register("synthetic")
def synthetic_task(config):
  s = config.synthetic
  n_clients = config.data_clients or config.clients
  data = synthetic.make_task(
    s.task,
    num_clients=n_clients,
    dim=s.dim,
    examples_per_client=s.examples_per_client,
    test_examples=s.test_examples,
    partition=s.partition,
    heterogeneity=s.heterogeneity,
    dirichlet_beta=s.dirichlet_beta,
    num_classes=s.num_classes,
    label_noise=s.label_noise,
    seed=config.seed,
  )
  if s.task == "least_squares":
    model = simple.make_linear_regression(s.dim)
  elif s.task == "logistic":
    model = simple.make_logistic_regression(s.dim)
  else:
    model = simple.make_mlp_classifier(s.dim, s.num_classes, hidden=s.hidden)
  return data, model


def build_task(config):
  """``(FederatedData, Model)`` of a config. Every data artifact the task needs is fetched
  first, all at once (a no-op when cached; one-line ``MissingArtifactError`` when it cannot
  be had), and a tfds task that is not prepared fails at once when offline."""
  if config.task not in TASKS:
    raise ValueError(f"config.task={config.task!r} is unknown; choose one of {sorted(TASKS)}.")
  from experiments.data import fetch

  fetch.ensure_for_config(config)
  return TASKS[config.task](config)


# ---------------------------------------------------------------------------
# Real-data families (offline stand-ins for the papers' datasets).


def _kwargs(section) -> dict:
  return section.to_dict() if hasattr(section, "to_dict") else dict(section)


def _rename(data, mapping: dict, drop=()):
  def fix(ex):
    return {mapping.get(k, k): v for k, v in ex.items() if k not in drop}

  data.clients = [fix(c) for c in data.clients]
  data.test = fix(data.test)
  if data.client_test is not None:
    data.client_test = [fix(c) for c in data.client_test]
  return data


def _get_model(config, **fixed):
  from experiments.models import registry

  kwargs = _kwargs(config.model.kwargs)
  kwargs.update(fixed)
  return registry.get_model(config.model.name, **kwargs)


@register("fashion_mnist")
def fashion_mnist_task(config):
  """Fashion-MNIST (60k/10k) with a CNN or a small ViT: the ViT/CIFAR-100 stand-in."""
  from experiments.data import fashion_mnist

  d = config.data
  data = fashion_mnist.load(
    num_clients=config.data_clients or config.clients,
    partition_kind=d.partition,
    beta=d.beta,
    seed=config.seed,
    limit=d.limit or None,
    test_limit=d.test_limit or None,
    standardize=True,
  )
  return data, _get_model(config, input_shape=(28, 28, 1), num_classes=10)


@register("gutenberg8")
def gutenberg8_task(config):
  """Eight public-domain works, one per node, next-character LM (the "Philosopher" set)."""
  from experiments.data import gutenberg8

  d = config.data
  data = gutenberg8.load(
    seq_len=d.seq_len,
    max_chars_per_work=d.max_chars_per_work or None,
    stride=d.stride,
    test_stride=d.test_stride,
    targets="seq",
  )
  return data, _get_model(config, vocab_size=data.meta["vocab_size"], seq_len=d.seq_len)


@register("shakespeare_roles")
def shakespeare_roles_task(config):
  """LEAF-style per-role Shakespeare (up to 1,426 roles), sampled ``clients`` per round."""
  from experiments.data import shakespeare_roles

  d = config.data
  data = shakespeare_roles.load(
    seq_len=d.seq_len,
    min_chars=d.min_chars,
    max_roles=d.max_roles or None,
    stride=d.stride,
    test_stride=d.test_stride,
    targets="seq",
  )
  return data, _get_model(config, vocab_size=data.meta["vocab_size"], seq_len=d.seq_len)


@register("movie_reviews")
def movie_reviews_task(config):
  """Rotten-tomatoes sentences (SST-2's domain) + MiniLM-BERT: the RoBERTa/GLUE stand-in."""
  from experiments.data import movie_reviews

  d = config.data
  data = movie_reviews.load(
    num_clients=config.data_clients or config.clients,
    partition_kind=d.partition,
    domains=tuple(d.domains),
    beta=d.beta,
    seed=config.seed,
    max_len=d.max_len,
    limit=d.limit or None,
  )
  data = _rename(data, {"x": "input_ids", "mask": "attention_mask"}, drop=("domain",))
  model = _get_model(config, num_classes=2)
  if d.get("encode_once"):
    return _encode_once(data, model, config.eval_batch_size)
  return data, model


_ENCODED: dict = {}  # cache key -> encoded examples (float32)


def _encode_cached(name: str, identity: bytes, fn, arrays: tuple, batch_size: int):
  """``fn(*rows)`` over the rows of ``arrays`` in batches of ``batch_size``, as float32,
  memoised in memory and on disk under ``<cache>/<name>/`` by a sha1 of ``identity`` (the
  frozen weights' identity) and the arrays: a study's runs and processes encode each example
  once. Files are written atomically (concurrent runs may write the same one)."""
  import hashlib
  import os
  import jax
  import numpy as np
  from experiments.data.fetch import cache_dir

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


def _map_examples(data, featurize):
  data.clients = [featurize(c) for c in data.clients]
  data.test = featurize(data.test)
  if data.client_test is not None:
    data.client_test = [featurize(c) for c in data.client_test]
  return data


def _encode_once(data, model, batch_size: int):
  """A head-only MiniLM (``trainable='head'``) with its frozen encoder run once: every
  example becomes its mean-pooled sentence state ``x`` (no dropout, so the same numbers the
  encoder gives at every step) and the model is the classifier head alone, with the same
  parameters, initialisation, loss and metrics. The same function of the trainable
  parameters as the head-only MiniLM, without a forward pass of the encoder per step."""
  import jax
  from experiments.models import bert
  from experiments.models.contract import Model
  from experiments.models.losses import classification_metrics, softmax_xent

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

  _map_examples(data, featurize)

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


def _encode_lm_once(data, model, batch_size: int):
  """A Llama-family LM with ``trainable='last_n_layers:N'`` and its frozen embedding and
  first blocks run once per sequence (:func:`experiments.models.llama.split_at_frozen`):
  every example becomes ``{'h', 'y'}``, the states entering the trained blocks, and the
  model is the trained tail, the same function of the same parameters."""
  import hashlib
  import jax
  import numpy as np
  from experiments.models import llama

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

  return _map_examples(data, featurize), tail


def _lm_sequences(ids, seq_len: int, stride: int):
  import numpy as np

  ids = np.asarray(ids, np.int32)
  starts = np.arange(0, max(len(ids) - seq_len - 1, 0) + 1, stride)
  windows = (
    np.stack([ids[s : s + seq_len + 1] for s in starts])
    if len(starts)
    else (np.zeros((0, seq_len + 1), np.int32))
  )
  return {"x": windows[:, :-1], "y": windows[:, 1:]}


@register("smollm2_text")
def smollm2_text_task(config):
  """SmolLM2-135M (GGUF) fine-tuned as a causal LM on the Gutenberg-8 works, one per node:
  the Qwen2.5/SQuAD stand-in."""
  import numpy as np
  from experiments.data import gutenberg8
  from tailopt.data.types import FederatedData

  d = config.data
  model = _get_model(config)
  tok = model.meta["tokenizer"]
  clients, tests, names = [], [], []
  for work in gutenberg8.WORKS:
    text = gutenberg8.read_work(work)[: d.max_chars_per_work or None]
    ids = tok.encode(text)
    cut = int(0.8 * len(ids))
    clients.append(_lm_sequences(ids[:cut], d.seq_len, d.stride))
    tests.append(_lm_sequences(ids[cut:], d.seq_len, d.test_stride))
    names.append(work.name)
  test = {k: np.concatenate([t[k] for t in tests]) for k in tests[0]}
  data = FederatedData(
    clients=clients,
    test=test,
    client_names=names,
    client_test=tests,
    meta=dict(source=f"gutenberg8+{config.model.name}-bpe", task="causal_lm"),
  )
  if d.get("encode_once"):
    return _encode_lm_once(data, model, config.eval_batch_size)
  return data, model


@register("qwen25_text")
def qwen25_text_task(config):
  """Qwen2.5-0.5B (GGUF) fine-tuned as a causal LM on the Gutenberg-8 works, one per node:
  the Qwen2.5/SQuAD stand-in with the paper's model family (same data as smollm2_text)."""
  return smollm2_text_task(config)


@register("glue")
def glue_task(config):
  """tfds glue/<task> with the MiniLM WordPiece tokenizer and BERT (needs the dataset)."""
  from experiments.data import movie_reviews, tfds_sources

  d = config.data
  wp = movie_reviews.minilm_tokenizer()
  tokenizer = lambda texts, n, pairs=None: wp.batch_encode(texts, max_len=n, pairs=pairs)  # noqa: E731
  data = tfds_sources.glue(
    d.glue_task,
    tokenizer,
    num_clients=config.data_clients or config.clients,
    partition_kind=d.partition,
    seed=config.seed,
    max_len=d.max_len,
    limit=d.limit or None,
    data_dir=d.data_dir or None,
  )
  data = _rename(data, {"x": "input_ids", "mask": "attention_mask"})
  return data, _get_model(config, num_classes=data.meta.get("num_classes", 2))


@register("cifar100")
def cifar100_task(config):
  """tfds cifar100 with a ViT (the paper's ViT/CIFAR-100 task; needs the dataset)."""
  from experiments.data import tfds_sources

  d = config.data
  data = tfds_sources.cifar100(
    num_clients=config.data_clients or config.clients,
    partition_kind=d.partition,
    beta=d.beta,
    seed=config.seed,
    limit=d.limit or None,
    data_dir=d.data_dir or None,
  )
  return data, _get_model(config, input_shape=(32, 32, 3), num_classes=100)


@register("wmt19")
def wmt19_task(config):
  """tfds wmt19_translate/<pair> with a small encoder-decoder (the paper's WMT/T5 task)."""
  from experiments.data import movie_reviews, tfds_sources

  d = config.data
  tok = movie_reviews.minilm_tokenizer()  # WordPiece (uncased English vocab; our stand-in)
  data = tfds_sources.wmt19(
    d.pair,
    lambda texts, n: tok.batch_encode(texts, max_len=n),
    num_clients=config.data_clients or config.clients,
    seed=config.seed,
    max_len=d.max_len,
    limit=d.limit or None,
    data_dir=d.data_dir or None,
  )

  def to_seq2seq(ex):
    return {
      "src": ex["x"],
      "src_mask": ex["x_mask"],
      "tgt_in": ex["y"][:, :-1],
      "tgt_out": ex["y"][:, 1:],
      "tgt_mask": ex["y_mask"][:, 1:],
    }

  data.clients = [to_seq2seq(c) for c in data.clients]
  data.test = to_seq2seq(data.test)
  data.client_test = None
  return data, _get_model(config, vocab_size=tok.vocab_size, max_len=d.max_len)


@register("bible_translation")
def bible_translation_task(config):
  """KJV English -> Reina-Valera 1909 Spanish, books by genre across 8 nodes, seq2seq,
  sacrebleu BLEU of greedy (or beam) decodes at each eval: the WMT stand-in."""
  from experiments.data import bible_translation

  d = config.data
  data = bible_translation.load(
    num_clients=config.data_clients or config.clients,
    partition=d.partition,
    vocab_size=d.vocab_size,
    max_len=d.max_len,
    seed=config.seed,
    limit=d.limit or None,
    test_limit=d.test_limit or None,
  )
  model = _get_model(config, vocab_size=data.meta["vocab_size"], max_len=d.max_len)
  # Corpus-level metrics for the train loop's eval (experiments.engines.evaluation: meta['corpus_eval']).
  model.meta["corpus_eval"] = bible_translation.make_bleu_eval(
    model.meta["generate"],
    data,
    num_examples=d.bleu_examples,
    batch_size=config.eval_batch_size,
    beam_size=d.beam_size,
  )
  model.meta["corpus_eval_keys"] = ("bleu",)
  return data, model


@register("squad")
def squad_task(config):
  """tfds squad fine-tuning of the Llama decoder (the paper's Qwen2.5/SQuAD task)."""
  from experiments.data import tfds_sources

  d = config.data
  model = _get_model(config)
  tok = model.meta["tokenizer"]
  data = tfds_sources.squad(
    tok.encode,
    num_clients=config.data_clients or config.clients,
    seed=config.seed,
    max_len=d.max_len,
    limit=d.limit or None,
    data_dir=d.data_dir or None,
  )

  def to_lm(ex):  # next-token targets; the loss counts answer tokens only
    return {"x": ex["x"][:, :-1], "y": ex["x"][:, 1:], "mask": ex["loss_mask"][:, 1:]}

  data.clients = [to_lm(c) for c in data.clients]
  data.test = to_lm(data.test)
  data.client_test = None
  return data, model
