"""Standard datasets through ``tfds.data_source`` (random access, no TensorFlow).

For users with internet access (or with datasets already prepared under
``data_dir`` in ``array_record`` format): GLUE tasks, CIFAR-100, WMT19 and
SQuAD, converted to numpy under the :class:`~tailopt.data.types.FederatedData`
contract. Text loaders take the tokenizer as an argument:

* classification / translation: ``tokenizer(texts, max_len, pairs=None) ->
  (ids, mask)`` int arrays of shape ``(n, max_len)`` -- e.g.
  :meth:`experiments.data.tokenization.Tokenizer.batch_encode`;
* SQuAD (causal LM): ``encode(text) -> list[int]`` plus ``pad_id``/``eos_id``.

When a dataset is neither prepared nor downloadable (no network) the loaders
raise :class:`DatasetUnavailableError`, whose message names the fix and the
offline stand-in. Tests run these paths on ``tfds.testing.mock_data``.

The tasks ``glue``, ``cifar100``, ``wmt19`` and ``squad`` are declared here. Before one is
built, :func:`check_config` fails at once, in one line, when its dataset is not prepared
and the machine is offline (instead of minutes of download retries); ``python -m
experiments.data.fetch --config`` runs :func:`prepare_config`, which builds it now.
"""

from __future__ import annotations

import importlib
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from experiments.data.examples import map_examples, rename
from experiments.data.fetch import MissingArtifactError
from experiments.data.pretrained import minilm_tokenizer
from experiments.data.registry import task
from tailopt.data import partition
from tailopt.data.types import FederatedData, take

__all__ = [
  "DatasetUnavailableError",
  "GLUE_TASKS",
  "check_config",
  "check_tfds",
  "cifar100",
  "glue",
  "prepare_config",
  "read_source",
  "squad",
  "tfds_data_dir",
  "tfds_name",
  "wmt19",
]

#: GLUE task -> (text feature(s), number of classes (1 = regression), eval split).
GLUE_TASKS: dict[str, tuple[tuple[str, ...], int, str]] = {
  "cola": (("sentence",), 2, "validation"),
  "sst2": (("sentence",), 2, "validation"),
  "mrpc": (("sentence1", "sentence2"), 2, "validation"),
  "qqp": (("question1", "question2"), 2, "validation"),
  "stsb": (("sentence1", "sentence2"), 1, "validation"),
  "mnli": (("premise", "hypothesis"), 3, "validation_matched"),
  "qnli": (("question", "sentence"), 2, "validation"),
  "rte": (("sentence1", "sentence2"), 2, "validation"),
  "wnli": (("sentence1", "sentence2"), 2, "validation"),
}

# Builders whose modules tfds does not register on import without TensorFlow.
_BUILDER_MODULES = {
  "glue": "tensorflow_datasets.text.glue",
  "wmt19_translate": "tensorflow_datasets.translate.wmt19",
}

_STAND_INS = {
  "glue": "experiments.data.movie_reviews (VADER movie-review sentences, SST-2's source)",
  "cifar100": "experiments.data.fashion_mnist",
  "wmt19_translate": "none offline; tests use tfds.testing.mock_data",
  "squad": "experiments.data.gutenberg8 / shakespeare_roles text for causal-LM fine-tuning",
}


class DatasetUnavailableError(RuntimeError):
  """A TFDS dataset is not prepared locally and could not be downloaded."""


Tokenizer = Callable[..., tuple[np.ndarray, np.ndarray]]


def read_source(
  name: str,
  split: str,
  *,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  limit: int | None = None,
) -> list[dict[str, Any]]:
  """Read ``split`` of TFDS dataset ``name`` into a list of example dicts.

  Uses ``tfds.data_source`` (random access over ``array_record`` files; no
  TensorFlow needed to read). Bytes are decoded to ``str``.

  Raises:
    DatasetUnavailableError: not prepared and not downloadable; the message
      says how to prepare it and which offline stand-in to use instead.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  family = name.split("/")[0].split(":")[0]
  if family in _BUILDER_MODULES:
    importlib.import_module(_BUILDER_MODULES[family])
  try:
    ds = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    n = len(ds) if limit is None else min(limit, len(ds))
    rows = [ds[i] for i in range(n)]
  except Exception as e:  # tfds raises many types here (not found, no network, no TF).
    where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    raise DatasetUnavailableError(
      f"TFDS dataset {name!r} (split {split!r}) is not available in {where} as "
      f"array_record and could not be downloaded ({type(e).__name__}: {str(e)[:300]}). "
      f"Fix: on a machine with internet run `tfds build {name} --file_format=array_record "
      f"--data_dir {where}` (building needs `pip install tensorflow`), or pass "
      f"download=True with network access. Offline stand-in: "
      f"{_STAND_INS.get(family, 'none')}."
    ) from e
  return [_decode(r) for r in rows]


def _decode(x: Any) -> Any:
  if isinstance(x, dict):
    return {k: _decode(v) for k, v in x.items()}
  if isinstance(x, bytes):
    return x.decode("utf-8", errors="replace")
  if isinstance(x, np.ndarray) and x.dtype.kind in ("S", "O") and x.ndim == 0:
    return _decode(x.item())
  if isinstance(x, np.ndarray) and x.dtype.kind == "S":
    return np.char.decode(x, "utf-8")
  return x


def _split_clients(
  train: dict[str, np.ndarray],
  labels: np.ndarray | None,
  num_clients: int,
  partition_kind: str,
  beta: float,
  seed: int,
) -> list[np.ndarray]:
  n = len(next(iter(train.values())))
  if partition_kind == "iid" or labels is None:
    if partition_kind not in ("iid",) and labels is None:
      raise ValueError(f"partition {partition_kind!r} needs class labels.")
    return partition.iid(n, num_clients, seed)
  if partition_kind == "dirichlet":
    return partition.dirichlet(labels, num_clients, beta, seed, min_size=1)
  if partition_kind == "sorted":
    return partition.sorted_by_label(labels, num_clients)
  raise ValueError(
    f"partition_kind must be 'iid', 'dirichlet' or 'sorted', got {partition_kind!r}."
  )


def _federate(
  train: dict,
  test: dict,
  labels: np.ndarray | None,
  num_clients: int,
  partition_kind: str,
  beta: float,
  seed: int,
  meta: dict,
) -> FederatedData:
  parts = _split_clients(train, labels, num_clients, partition_kind, beta, seed)
  meta = dict(
    meta, partition=partition_kind, seed=seed, beta=beta if partition_kind == "dirichlet" else None
  )
  return FederatedData(
    clients=[take(train, p) for p in parts],
    test=test,
    client_names=[f"client_{i}" for i in range(num_clients)],
    meta=meta,
  )


def glue(
  task: str,
  tokenizer: Tokenizer,
  *,
  num_clients: int = 8,
  partition_kind: str = "iid",
  beta: float = 0.5,
  seed: int = 0,
  max_len: int = 128,
  limit: int | None = None,
  test_limit: int | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
) -> FederatedData:
  """GLUE ``task`` (e.g. ``"sst2"``); train split federated, validation as ``test``.

  Examples: ``{"x": ids, "mask": attention mask, "y": label}`` (``y`` float32
  for the STS-B regression task, else int32).
  """
  if task not in GLUE_TASKS:
    raise KeyError(f"Unknown GLUE task {task!r}; known: {', '.join(GLUE_TASKS)}.")
  keys, num_classes, eval_split = GLUE_TASKS[task]

  def convert(rows):
    a = [r[keys[0]] for r in rows]
    b = [r[keys[1]] for r in rows] if len(keys) > 1 else None
    ids, mask = tokenizer(a, max_len, b) if b is not None else tokenizer(a, max_len)
    y = np.array([r["label"] for r in rows], np.float32 if num_classes == 1 else np.int32)
    return {"x": np.asarray(ids, np.int32), "mask": np.asarray(mask, np.int32), "y": y}

  name = f"glue/{task}"
  train = convert(read_source(name, "train", data_dir=data_dir, download=download, limit=limit))
  test = convert(
    read_source(name, eval_split, data_dir=data_dir, download=download, limit=test_limit)
  )
  labels = train["y"] if num_classes > 1 else None
  return _federate(
    train,
    test,
    labels,
    num_clients,
    partition_kind,
    beta,
    seed,
    {
      "source": f"tfds:{name}",
      "task": task,
      "num_classes": num_classes,
      "max_len": max_len,
      "text_features": keys,
      "eval_split": eval_split,
    },
  )


def cifar100(
  *,
  num_clients: int = 10,
  partition_kind: str = "iid",
  beta: float = 0.5,
  seed: int = 0,
  label: str = "label",
  limit: int | None = None,
  test_limit: int | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
) -> FederatedData:
  """CIFAR-100: ``{"x": (n, 32, 32, 3) float32 in [0, 1], "y": int32}``.

  Args:
    label: ``"label"`` (100 fine classes) or ``"coarse_label"`` (20).
  """
  if label not in ("label", "coarse_label"):
    raise ValueError(f"label must be 'label' or 'coarse_label', got {label!r}.")

  def convert(rows):
    x = np.stack([np.asarray(r["image"], np.uint8) for r in rows]).astype(np.float32) / 255.0
    return {"x": x, "y": np.array([int(r[label]) for r in rows], np.int32)}

  train = convert(
    read_source("cifar100", "train", data_dir=data_dir, download=download, limit=limit)
  )
  test = convert(
    read_source("cifar100", "test", data_dir=data_dir, download=download, limit=test_limit)
  )
  return _federate(
    train,
    test,
    train["y"],
    num_clients,
    partition_kind,
    beta,
    seed,
    {
      "source": "tfds:cifar100",
      "num_classes": 100 if label == "label" else 20,
      "image_shape": (32, 32, 3),
      "label": label,
    },
  )


def wmt19(
  pair: str = "de-en",
  tokenizer: Tokenizer | None = None,
  *,
  source: str | None = None,
  num_clients: int = 8,
  seed: int = 0,
  max_len: int = 128,
  limit: int | None = 100_000,
  test_limit: int | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
) -> FederatedData:
  """WMT19 ``pair`` (e.g. ``"de-en"``), translating ``source`` into the other language.

  Examples: ``{"x": source ids, "x_mask", "y": target ids, "y_mask"}``; the
  train split (first ``limit`` pairs; WMT19 de-en has ~38M) is split IID,
  ``validation`` is ``test``.
  """
  if tokenizer is None:
    raise ValueError("wmt19 needs a tokenizer(texts, max_len) -> (ids, mask).")
  langs = pair.split("-")
  if len(langs) != 2:
    raise ValueError(f"pair must look like 'de-en', got {pair!r}.")
  src = source or langs[0]
  if src not in langs:
    raise ValueError(f"source {src!r} is not in pair {pair!r}.")
  tgt = langs[1] if src == langs[0] else langs[0]

  def convert(rows):
    x, xm = tokenizer([r[src] for r in rows], max_len)
    y, ym = tokenizer([r[tgt] for r in rows], max_len)
    return {
      "x": np.asarray(x, np.int32),
      "x_mask": np.asarray(xm, np.int32),
      "y": np.asarray(y, np.int32),
      "y_mask": np.asarray(ym, np.int32),
    }

  name = f"wmt19_translate/{pair}"
  train = convert(read_source(name, "train", data_dir=data_dir, download=download, limit=limit))
  test = convert(
    read_source(name, "validation", data_dir=data_dir, download=download, limit=test_limit)
  )
  return _federate(
    train,
    test,
    None,
    num_clients,
    "iid",
    0.0,
    seed,
    {
      "source": f"tfds:{name}",
      "task": "translation",
      "source_lang": src,
      "target_lang": tgt,
      "max_len": max_len,
    },
  )


def squad_prompt(context: str, question: str) -> str:
  """The prompt a causal LM answers: context, question, then ``Answer:``."""
  return f"Context: {context}\nQuestion: {question}\nAnswer:"


def squad(
  encode: Callable[[str], Sequence[int]],
  *,
  pad_id: int = 0,
  eos_id: int | None = None,
  num_clients: int = 8,
  seed: int = 0,
  max_len: int = 512,
  limit: int | None = None,
  test_limit: int | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
) -> FederatedData:
  """SQuAD v1.1 as causal-LM fine-tuning data (the paper's Qwen2.5 QA task).

  Each example is ``encode(prompt) + encode(" " + first answer) (+ eos)``,
  left-truncated so the answer survives, right-padded to ``max_len``.

  Returns:
    Examples ``{"x": (n, max_len) ids, "mask": attention mask, "loss_mask":
    1 on answer tokens (the LM targets), "prompt_len": (n,) int32}``; the
    ``validation`` split is ``test``; train is split IID across clients.
  """

  def convert(rows):
    n = len(rows)
    x = np.full((n, max_len), pad_id, np.int32)
    mask = np.zeros((n, max_len), np.int32)
    loss = np.zeros((n, max_len), np.int32)
    plen = np.zeros(n, np.int32)
    for i, r in enumerate(rows):
      answers = r["answers"]["text"]
      answer = str(answers[0]) if len(answers) else ""
      p = list(encode(squad_prompt(r["context"], r["question"])))
      a = list(encode(" " + answer)) + ([eos_id] if eos_id is not None else [])
      a = a[:max_len]
      p = p[max(0, len(p) + len(a) - max_len) :]
      seq = p + a
      x[i, : len(seq)] = seq
      mask[i, : len(seq)] = 1
      loss[i, len(p) : len(seq)] = 1
      plen[i] = len(p)
    return {"x": x, "mask": mask, "loss_mask": loss, "prompt_len": plen}

  train = convert(read_source("squad", "train", data_dir=data_dir, download=download, limit=limit))
  test = convert(
    read_source("squad", "validation", data_dir=data_dir, download=download, limit=test_limit)
  )
  return _federate(
    train,
    test,
    None,
    num_clients,
    "iid",
    0.0,
    seed,
    {
      "source": "tfds:squad",
      "task": "causal_lm_qa",
      "max_len": max_len,
      "pad_id": pad_id,
      "eos_id": eos_id,
    },
  )


# ----------------------------------------------------------------------------- per config


def tfds_name(config) -> str | None:
  """The tensorflow-datasets dataset a config's task reads (None: not a tfds task)."""
  d = config.get("data") if hasattr(config, "get") else None
  return {
    "glue": lambda: f"glue/{d.glue_task}",
    "cifar100": lambda: "cifar100",
    "wmt19": lambda: f"wmt19_translate/{d.pair}",
    "squad": lambda: "squad",
  }.get(config.task, lambda: None)()


def tfds_data_dir(config) -> pathlib.Path:
  """``config.data.data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
  d = config.get("data") if hasattr(config, "get") else None
  where = (d.get("data_dir") if d is not None else None) or os.environ.get("TFDS_DATA_DIR")
  return pathlib.Path(os.path.expanduser(where or "~/tensorflow_datasets"))


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
  """Whether ``host:443`` answers within ``timeout`` seconds (DNS included)."""
  import socket
  import threading

  ok = []

  def probe():
    try:
      socket.create_connection((host, 443), timeout=timeout).close()
      ok.append(True)
    except OSError:
      pass

  t = threading.Thread(target=probe, daemon=True)
  t.start()
  t.join(timeout + 0.5)
  return bool(ok)


def _tfds_mocked() -> bool:
  """True inside ``tfds.testing.mock_data`` (the tests' stand-in for a prepared dataset)."""
  try:
    from tensorflow_datasets.core import dataset_builder
  except ImportError:
    return False
  return "mock" in getattr(dataset_builder.DatasetBuilder.download_and_prepare, "__qualname__", "")


def check_tfds(name: str, data_dir: pathlib.Path) -> None:
  """Fails at once, with one line, when tfds dataset ``name`` is not prepared under
  ``data_dir`` and the machine is offline (instead of minutes of download retries)."""
  family = data_dir / pathlib.Path(*name.split(":")[0].split("/"))
  if _tfds_mocked() or family.is_dir() or _online():
    return
  raise MissingArtifactError(
    f"tfds dataset {name!r} is not prepared in {data_dir} and this machine is offline: it "
    f"needs the internet once (it is then cached in {family}); run `python -m "
    f"experiments.data.fetch --config <config>` where there is internet, or use the offline "
    "stand-in config."
  )


def check_config(config) -> None:
  """The tfds tasks' ``check``: :func:`check_tfds` of the config's dataset."""
  check_tfds(tfds_name(config), tfds_data_dir(config))


def prepare_config(config) -> None:
  """The tfds tasks' ``prepare``: tensorflow-datasets builds the dataset into its cache."""
  read_source(tfds_name(config), "train", data_dir=tfds_data_dir(config), limit=1)


def _minilm_batch_encode():
  wp = minilm_tokenizer()  # WordPiece (uncased English vocab; our stand-in)
  return wp, lambda texts, n, pairs=None: wp.batch_encode(texts, max_len=n, pairs=pairs)


@task("glue", artifacts=("minilm",), check=check_config, prepare=prepare_config)
def glue_task(config, make_model):
  """tfds glue/<task> with the MiniLM WordPiece tokenizer and BERT (needs the dataset)."""
  d = config.data
  data = glue(
    d.glue_task,
    _minilm_batch_encode()[1],
    num_clients=config.data_clients or config.clients,
    partition_kind=d.partition,
    seed=config.seed,
    max_len=d.max_len,
    limit=d.limit or None,
    data_dir=d.data_dir or None,
  )
  data = rename(data, {"x": "input_ids", "mask": "attention_mask"})
  return data, make_model(num_classes=data.meta.get("num_classes", 2))


@task("cifar100", check=check_config, prepare=prepare_config)
def cifar100_task(config, make_model):
  """tfds cifar100 with a ViT (the paper's ViT/CIFAR-100 task; needs the dataset)."""
  d = config.data
  data = cifar100(
    num_clients=config.data_clients or config.clients,
    partition_kind=d.partition,
    beta=d.beta,
    seed=config.seed,
    limit=d.limit or None,
    data_dir=d.data_dir or None,
  )
  return data, make_model(input_shape=(32, 32, 3), num_classes=100)


def _to_seq2seq(ex):
  return {
    "src": ex["x"],
    "src_mask": ex["x_mask"],
    "tgt_in": ex["y"][:, :-1],
    "tgt_out": ex["y"][:, 1:],
    "tgt_mask": ex["y_mask"][:, 1:],
  }


@task("wmt19", artifacts=("minilm",), check=check_config, prepare=prepare_config)
def wmt19_task(config, make_model):
  """tfds wmt19_translate/<pair> with a small encoder-decoder (the paper's WMT/T5 task)."""
  d = config.data
  tok, encode = _minilm_batch_encode()
  data = wmt19(
    d.pair,
    encode,
    num_clients=config.data_clients or config.clients,
    seed=config.seed,
    max_len=d.max_len,
    limit=d.limit or None,
    data_dir=d.data_dir or None,
  )
  data.client_test = None
  data = map_examples(data, _to_seq2seq)
  return data, make_model(vocab_size=tok.vocab_size, max_len=d.max_len)


def _to_lm(ex):  # next-token targets; the loss counts answer tokens only
  return {"x": ex["x"][:, :-1], "y": ex["x"][:, 1:], "mask": ex["loss_mask"][:, 1:]}


@task("squad", artifacts=("smollm2",), check=check_config, prepare=prepare_config)
def squad_task(config, make_model):
  """tfds squad fine-tuning of the Llama decoder (the paper's Qwen2.5/SQuAD task)."""
  d = config.data
  model = make_model()
  data = squad(
    model.meta["tokenizer"].encode,
    num_clients=config.data_clients or config.clients,
    seed=config.seed,
    max_len=d.max_len,
    limit=d.limit or None,
    data_dir=d.data_dir or None,
  )
  data.client_test = None
  return map_examples(data, _to_lm), model
