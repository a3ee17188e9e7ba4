"""Sentence sentiment (SST-2's source domain) from the VADER ground-truth sets.

Hutto & Gilbert (ICWSM 2014) had humans rate snippets from four domains on
[-4, 4]; the ``vader`` artifact (PyPI ``vaderSentiment==3.3.2`` sdist) ships the
mean ratings as ``<domain>_GroundTruth.txt`` (``id<TAB>mean score<TAB>text``).
The movie-review file holds the 10,605 rotten-tomatoes sentences that SST-2
was built from. We binarise by the sign of the mean score, dropping
near-neutral snippets with ``|score| <= 0.5``, and tokenise with MiniLM's
WordPiece tokenizer (its own ``tokenizer.json``, run by Hugging Face ``tokenizers``).

Measured (threshold 0.5): movie 10,605 -> 10,043 kept (4,982 positive / 5,061
negative); tweets 4,200 -> 3,362 (2,300 / 1,062); amazon 3,708 -> 2,943
(1,725 / 1,218); nyt 5,190 -> 2,788 (1,100 / 1,688). See :data:`DOMAIN_STATS`.

Partitions: ``"domain"`` gives the natural 4-domain non-IID split (one client
per domain); ``"iid"``, ``"dirichlet"`` and ``"sorted"`` split the pooled
training examples of the chosen domains across ``num_clients``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from experiments.data import fetch
from tailopt.data import partition
from tailopt.data.types import FederatedData, take
from experiments.models.tokenization import Tokenizer

__all__ = [
  "DOMAINS",
  "DOMAIN_STATS",
  "Snippets",
  "binarize",
  "load",
  "read_snippets",
  "minilm_tokenizer",
]

#: Domain name -> key of the file in the ``vader`` artifact.
DOMAINS = {"movie": "movie_reviews", "tweets": "tweets", "amazon": "amazon", "nyt": "nyt"}

#: (rows, kept at |score| > 0.5, positive, negative), measured on vaderSentiment 3.3.2.
DOMAIN_STATS = {
  "movie": (10605, 10043, 4982, 5061),
  "tweets": (4200, 3362, 2300, 1062),
  "amazon": (3708, 2943, 1725, 1218),
  "nyt": (5190, 2788, 1100, 1688),
}


@dataclasses.dataclass
class Snippets:
  """Raw rows of one ground-truth file."""

  ids: list[str]
  scores: np.ndarray  # float64, mean human rating in [-4, 4]
  texts: list[str]


def read_snippets(domain: str = "movie", cache_dir: str | os.PathLike | None = None) -> Snippets:
  """Read ``<domain>_GroundTruth.txt`` from the fetched ``vader`` artifact."""
  if domain not in DOMAINS:
    raise KeyError(f"Unknown domain {domain!r}; known: {', '.join(DOMAINS)}.")
  path = fetch.artifact_file("vader", DOMAINS[domain], cache_dir)
  ids, scores, texts = [], [], []
  with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
      parts = line.rstrip("\r\n").split("\t")
      if len(parts) < 3 or not parts[0]:
        continue
      ids.append(parts[0])
      scores.append(float(parts[1]))
      texts.append("\t".join(parts[2:]))
  return Snippets(ids, np.asarray(scores, dtype=np.float64), texts)


def binarize(scores: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
  """``(keep, labels)``: keep ``|score| > threshold``; label 1 if positive else 0."""
  scores = np.asarray(scores)
  keep = np.abs(scores) > threshold
  return keep, (scores > 0).astype(np.int32)


def minilm_tokenizer(cache_dir: str | os.PathLike | None = None) -> Tokenizer:
  """The all-MiniLM-L6-v2 WordPiece tokenizer (``tokenizers``, from the ``minilm`` artifact's tokenizer.json)."""
  return Tokenizer.from_file(fetch.artifact_file("minilm", "tokenizer", cache_dir))


def load(
  num_clients: int = 4,
  partition_kind: str = "domain",
  domains: Sequence[str] = ("movie", "tweets", "amazon", "nyt"),
  *,
  beta: float = 0.5,
  seed: int = 0,
  max_len: int = 64,
  threshold: float = 0.5,
  test_fraction: float = 0.2,
  limit: int | None = None,
  tokenizer: Callable[[Sequence[str], int], tuple[np.ndarray, np.ndarray]] | None = None,
  cache_dir: str | os.PathLike | None = None,
) -> FederatedData:
  """Binary sentiment examples split across clients.

  Args:
    num_clients: clients for ``iid`` / ``dirichlet`` / ``sorted``; ignored for
      ``domain`` (one client per domain).
    partition_kind: ``"domain"``, ``"iid"``, ``"dirichlet"`` or ``"sorted"``.
    domains: which files to use; ``("movie",)`` is the SST-2-like task.
    beta: Dirichlet concentration (``dirichlet`` only).
    seed: seeds the train/test split and the partition.
    max_len: tokens per example including ``[CLS]`` and ``[SEP]``.
    threshold: drop snippets with ``|score| <= threshold``.
    test_fraction: held-out fraction, drawn per domain at random.
    limit: keep a random subset of at most this many (kept) snippets per
      domain, for fast tests (the files are sorted, so not the first rows).
    tokenizer: ``f(texts, max_len) -> (ids, mask)``; default MiniLM WordPiece.
    cache_dir: artifact cache.

  Returns:
    ``FederatedData`` whose examples are ``{"x": (n, max_len) int32 token ids,
    "mask": (n, max_len) int32 attention mask, "y": (n,) int32 labels,
    "domain": (n,) int32 domain index}``; ``client_test`` is per domain for the
    ``domain`` split, else ``None``. ``meta`` has ``num_classes`` (2),
    ``vocab_size``, ``max_len``, ``domains``, ``pad_id``.
  """
  unknown = [d for d in domains if d not in DOMAINS]
  if unknown:
    raise KeyError(f"Unknown domains {unknown}; known: {', '.join(DOMAINS)}.")
  if partition_kind not in ("domain", "iid", "dirichlet", "sorted"):
    raise ValueError(f"partition_kind must be domain/iid/dirichlet/sorted, got {partition_kind!r}.")
  if tokenizer is None:
    wp = minilm_tokenizer(cache_dir)
    tokenizer = lambda texts, n: wp.batch_encode(texts, max_len=n)
    vocab_size, pad_id = wp.vocab_size, wp.pad_id
  else:
    vocab_size, pad_id = None, 0
  rng = np.random.default_rng(seed)
  trains, tests = [], []
  for d_i, d in enumerate(domains):
    s = read_snippets(d, cache_dir)
    keep, labels = binarize(s.scores, threshold)
    idx = np.flatnonzero(keep)
    if limit is not None and limit < len(idx):
      # The files are ordered (e.g. movie positives first): subsample at random.
      idx = np.sort(rng.choice(idx, size=limit, replace=False))
    x, mask = tokenizer([s.texts[i] for i in idx], max_len)
    ex = {
      "x": np.asarray(x, np.int32),
      "mask": np.asarray(mask, np.int32),
      "y": labels[idx],
      "domain": np.full(len(idx), d_i, np.int32),
    }
    perm = rng.permutation(len(idx))
    n_test = int(round(len(idx) * test_fraction))
    tests.append(take(ex, np.sort(perm[:n_test])))
    trains.append(take(ex, np.sort(perm[n_test:])))
  pooled_test = {k: np.concatenate([t[k] for t in tests]) for k in tests[0]}
  meta = {
    "source": "vaderSentiment==3.3.2 hutto_ICWSM_2014",
    "task": "binary_sentiment",
    "num_classes": 2,
    "vocab_size": vocab_size,
    "max_len": max_len,
    "pad_id": pad_id,
    "domains": list(domains),
    "threshold": threshold,
    "partition": partition_kind,
  }
  if partition_kind == "domain":
    return FederatedData(
      clients=trains, test=pooled_test, client_names=list(domains), client_test=tests, meta=meta
    )
  train = {k: np.concatenate([t[k] for t in trains]) for k in trains[0]}
  if partition_kind == "iid":
    parts = partition.iid(len(train["y"]), num_clients, rng)
  elif partition_kind == "dirichlet":
    parts = partition.dirichlet(train["y"], num_clients, beta, rng, min_size=1)
  else:
    parts = partition.sorted_by_label(train["y"], num_clients)
  meta.update(beta=beta if partition_kind == "dirichlet" else None)
  return FederatedData(
    clients=[take(train, p) for p in parts],
    test=pooled_test,
    client_names=[f"client_{i}" for i in range(num_clients)],
    meta=meta,
  )
