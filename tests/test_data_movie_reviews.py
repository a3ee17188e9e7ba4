"""VADER ground-truth sentiment sets: rows, binarisation, tokenisation, splits."""

import numpy as np
import pytest

from _data_helpers import need
from experiments.data import movie_reviews, pretrained
from tailopt.data import partition

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def artifacts():
  need("vader")
  need("minilm")


def test_movie_rows(artifacts):
  s = movie_reviews.read_snippets("movie")
  assert len(s.ids) == len(s.texts) == len(s.scores) == 10605
  assert s.ids[0] == "1" and s.scores[0] == pytest.approx(2.26666666667)
  assert s.texts[0].startswith("The Rock is destined to be the 21st Century's new ''Conan''")
  assert s.texts[2] == "Effective but too tepid biopic" and s.scores[2] == pytest.approx(-0.6)
  assert s.scores.min() >= -4 and s.scores.max() <= 4


def test_binarize():
  keep, y = movie_reviews.binarize(np.array([-0.6, 0.5, -0.5, 0.51, 3.0, 0.0]))
  assert keep.tolist() == [True, False, False, True, True, False]
  assert y[keep].tolist() == [0, 1, 1]


def test_domain_statistics(artifacts):
  for domain, (rows, kept, pos, neg) in movie_reviews.DOMAIN_STATS.items():
    s = movie_reviews.read_snippets(domain)
    keep, y = movie_reviews.binarize(s.scores)
    assert (len(s.ids), int(keep.sum()), int(y[keep].sum()), int((1 - y[keep]).sum())) == (
      rows,
      kept,
      pos,
      neg,
    ), domain


def test_load_domain_split(artifacts):
  d = movie_reviews.load(partition_kind="domain", limit=100, max_len=32, seed=0)
  assert d.client_names == ["movie", "tweets", "amazon", "nyt"]
  assert d.client_sizes().tolist() == [80, 80, 80, 80] and d.num_test == 80
  for i, (c, t) in enumerate(zip(d.clients, d.client_test)):
    assert set(c) == {"x", "mask", "y", "domain"}
    assert c["x"].shape == (80, 32) and c["x"].dtype == np.int32
    assert (c["domain"] == i).all() and (t["domain"] == i).all()
    assert (c["x"][:, 0] == 101).all()  # [CLS]
    assert (c["mask"].sum(1) >= 3).all()
    np.testing.assert_array_equal(c["x"] == 0, c["mask"] == 0)  # pad exactly where mask is 0
  assert d.meta["num_classes"] == 2 and d.meta["vocab_size"] == 30522


def test_known_sentence_tokens_and_label(artifacts):
  s = movie_reviews.read_snippets("movie")
  keep, y = movie_reviews.binarize(s.scores[:3])
  assert keep.tolist() == [True, True, True] and y.tolist() == [1, 1, 0]
  ids, mask = pretrained.minilm_tokenizer().batch_encode(s.texts[:3], max_len=12)
  # Row 3 of the file, "Effective but too tepid biopic", mean score -0.6 -> negative.
  assert ids[2].tolist() == [101, 4621, 2021, 2205, 8915, 23267, 16012, 24330, 102, 0, 0, 0]
  assert mask[0].tolist() == [1] * 12  # the long first sentence is truncated
  # The file lists rotten-tomatoes' 5,331 "fresh" sentences before the 5,274
  # "rotten" ones; the human mean scores agree in sign for ~93-95% of them.
  assert 0.93 < (s.scores[:5331] > 0).mean() < 0.94
  assert 0.94 < (s.scores[5331:] < 0).mean() < 0.95


def test_limit_subsamples_both_classes(artifacts):
  d = movie_reviews.load(partition_kind="domain", domains=("movie",), limit=200, max_len=8)
  assert 0.35 < np.concatenate([d.clients[0]["y"], d.test["y"]]).mean() < 0.65


@pytest.mark.parametrize("kind", ["iid", "dirichlet", "sorted"])
def test_load_client_partitions(artifacts, kind):
  d = movie_reviews.load(
    num_clients=5, partition_kind=kind, domains=("movie",), limit=400, beta=0.1, max_len=16
  )
  assert d.num_clients == 5 and d.num_train == 320 and d.num_test == 80
  y = np.concatenate([c["y"] for c in d.clients])
  skew = partition.label_skew(y, np.split(np.arange(len(y)), np.cumsum(d.client_sizes())[:-1]))
  if kind == "iid":
    assert skew < 0.15
  else:
    assert skew > 0.2
