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
import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from experiments.data import fetch
from experiments.data.examples import rename
from experiments.data.fetch import Artifact, Source
from experiments.data.pretrained import minilm_tokenizer
from experiments.data.registry import task
from tailopt.data import partition
from tailopt.data.types import FederatedData, take

__all__ = [
  "ARTIFACTS",
  "DOMAINS",
  "DOMAIN_STATS",
  "Snippets",
  "VADER",
  "binarize",
  "load",
  "read_snippets",
]


def _untar_vader(root: pathlib.Path) -> None:
  """Unpack the ICWSM-2014 ground-truth tarball shipped inside the sdist."""
  inner = root / "vaderSentiment-3.3.2" / "additional_resources" / "hutto_ICWSM_2014.tar.gz"
  fetch.extract_tar(inner, root)


VADER = Artifact(
  name="vader",
  description=(
    "Hutto & Gilbert (ICWSM 2014) human-rated sentiment snippets: movie reviews, "
    "tweets, Amazon reviews, NYT editorials (hutto_ICWSM_2014/*_GroundTruth.txt); "
    "used by experiments.data.movie_reviews."
  ),
  sources=(
    Source(
      "pypi",
      "vaderSentiment",
      "3.3.2",
      "vaderSentiment-3.3.2.tar.gz",
      "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
      2466783,
    ),
  ),
  post=_untar_vader,
  files={
    "dir": "hutto_ICWSM_2014",
    "movie_reviews": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    "tweets": "hutto_ICWSM_2014/tweets_GroundTruth.txt",
    "amazon": "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
    "nyt": "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
  },
  license="MIT",
)

ARTIFACTS = (VADER,)

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
  path = fetch.artifact_file(VADER, DOMAINS[domain], cache_dir)
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


@task("movie_reviews", artifacts=("vader", "minilm"))
def movie_reviews_task(config, make_model):
  """Rotten-tomatoes sentences (SST-2's domain) + MiniLM-BERT: the RoBERTa/GLUE stand-in."""
  d = config.data
  data = load(
    num_clients=config.data_clients or config.clients,
    partition_kind=d.partition,
    domains=tuple(d.domains),
    beta=d.beta,
    seed=config.seed,
    max_len=d.max_len,
    limit=d.limit or None,
  )
  data = rename(data, {"x": "input_ids", "mask": "attention_mask"}, drop=("domain",))
  return data, make_model(num_classes=2)
