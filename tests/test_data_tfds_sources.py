"""TFDS loaders on `tfds.testing.mock_data` (random data through `tfds.data_source`)."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from experiments.data import tfds_sources  # noqa: E402

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


def hash_tokenizer(texts, max_len, pairs=None):
  """A deterministic stand-in tokenizer: [CLS]=1 words... [SEP]=2, hashed word ids, pad 0."""
  ids = np.zeros((len(texts), max_len), np.int32)
  mask = np.zeros_like(ids)
  for i, t in enumerate(texts):
    words = t.split() + (["[SEP]"] + pairs[i].split() if pairs is not None else [])
    row = [1] + [3 + sum(map(ord, w)) % 997 for w in words][: max_len - 2] + [2]
    ids[i, : len(row)] = row
    mask[i, : len(row)] = 1
  return ids, mask


@pytest.fixture
def mock():
  with tfds.testing.mock_data(num_examples=24):
    yield


def test_glue_sst2(mock):
  d = tfds_sources.glue("sst2", hash_tokenizer, num_clients=4, max_len=16)
  assert d.num_clients == 4 and d.client_sizes().tolist() == [6, 6, 6, 6]
  assert d.num_test == 24 and d.meta["num_classes"] == 2 and d.meta["eval_split"] == "validation"
  c = d.clients[0]
  assert c["x"].shape == (6, 16) and c["x"].dtype == np.int32 and c["y"].dtype == np.int32
  assert (c["x"][:, 0] == 1).all() and set(np.unique(c["y"])) <= {0, 1}


def test_glue_pair_task_and_regression(mock):
  d = tfds_sources.glue(
    "mnli",
    hash_tokenizer,
    num_clients=3,
    max_len=24,
    partition_kind="dirichlet",
    beta=0.3,
    limit=12,
    test_limit=6,
  )
  assert d.num_train == 12 and d.num_test == 6 and d.meta["num_classes"] == 3
  assert d.meta["text_features"] == ("premise", "hypothesis")
  assert set(np.unique(np.concatenate([c["y"] for c in d.clients]))) <= {0, 1, 2}
  s = tfds_sources.glue("stsb", hash_tokenizer, num_clients=2, max_len=8)
  assert s.clients[0]["y"].dtype == np.float32 and s.meta["num_classes"] == 1
  with pytest.raises(KeyError, match="sst2"):
    tfds_sources.glue("sst3", hash_tokenizer)


def test_cifar100(mock):
  d = tfds_sources.cifar100(num_clients=3, partition_kind="sorted")
  assert d.clients[0]["x"].shape == (8, 32, 32, 3) and d.clients[0]["x"].dtype == np.float32
  assert 0.0 <= d.test["x"].min() and d.test["x"].max() <= 1.0
  ys = [c["y"] for c in d.clients]
  assert ys[0].max() <= ys[1].min() and ys[1].max() <= ys[2].min()  # sorted by label
  assert d.meta["num_classes"] == 100
  coarse = tfds_sources.cifar100(num_clients=2, label="coarse_label")
  assert coarse.meta["num_classes"] == 20 and coarse.test["y"].max() < 20


def test_wmt19(mock):
  d = tfds_sources.wmt19("de-en", hash_tokenizer, source="en", num_clients=2, max_len=10, limit=10)
  assert d.meta["source_lang"] == "en" and d.meta["target_lang"] == "de"
  assert set(d.clients[0]) == {"x", "x_mask", "y", "y_mask"} and d.num_train == 10
  with pytest.raises(ValueError, match="tokenizer"):
    tfds_sources.wmt19("de-en")
  with pytest.raises(ValueError, match="source"):
    tfds_sources.wmt19("de-en", hash_tokenizer, source="fr")


def test_squad_answer_tokens_are_the_targets(mock):
  encode = lambda s: [3 + ord(ch) % 50 for ch in s]
  d = tfds_sources.squad(encode, pad_id=0, eos_id=1, num_clients=2, max_len=64, limit=8)
  c = d.clients[0]
  assert c["x"].shape == (4, 64)
  for row, m, lm, p in zip(c["x"], c["mask"], c["loss_mask"], c["prompt_len"]):
    n = int(m.sum())
    assert lm[:p].sum() == 0 and lm[p:n].all() and not lm[n:].any()
    assert row[n - 1] == 1  # eos closes the answer
    assert (row[n:] == 0).all()


def test_unavailable_dataset_names_the_fix(tmp_path):
  with pytest.raises(tfds_sources.DatasetUnavailableError) as e:
    tfds_sources.read_source("cifar100", "train", data_dir=tmp_path, download=False)
  msg = str(e.value)
  assert "tfds build cifar100 --file_format=array_record" in msg
  assert "experiments.data.fashion_mnist" in msg
