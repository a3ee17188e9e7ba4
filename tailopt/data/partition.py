"""Split example indices across clients.

Every function returns a list of ``num_clients`` int64 index arrays into the
dataset. Partitions are disjoint and (except where documented) cover every
example; all randomness comes from the ``rng`` argument (an ``int`` seed or a
``numpy.random.Generator``), so a seed reproduces the split exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["by_group", "dirichlet", "iid", "label_skew", "sample_clients", "sorted_by_label"]

RngLike = int | np.random.Generator | None


def _rng(rng: RngLike) -> np.random.Generator:
  return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_clients(num_clients: int, n: int) -> None:
  if num_clients < 1:
    raise ValueError(f"num_clients must be >= 1, got {num_clients}.")
  if num_clients > n:
    raise ValueError(f"Cannot split {n} examples across {num_clients} clients.")


def iid(
  labels_or_n: int | Sequence | np.ndarray, num_clients: int, rng: RngLike = 0
) -> list[np.ndarray]:
  """Shuffle and deal examples into ``num_clients`` near-equal shards.

  Args:
    labels_or_n: number of examples, or any array whose length is that number.
    num_clients: number of shards; sizes differ by at most one.
    rng: seed or generator.
  """
  n = labels_or_n if isinstance(labels_or_n, (int, np.integer)) else len(labels_or_n)
  _check_clients(num_clients, int(n))
  perm = _rng(rng).permutation(int(n))
  return [np.sort(p).astype(np.int64) for p in np.array_split(perm, num_clients)]


def dirichlet(
  labels: Sequence | np.ndarray,
  num_clients: int,
  beta: float,
  rng: RngLike = 0,
  min_size: int = 10,
  max_tries: int = 1000,
) -> list[np.ndarray]:
  """Label-skewed split: per class, client shares ~ Dirichlet(beta * 1).

  The standard recipe of Hsu et al. (2019) / Yurochkin et al. (2019): for each
  class the class's examples are divided among clients in proportions drawn
  from a symmetric Dirichlet; small ``beta`` gives few classes per client,
  large ``beta`` approaches IID. Resampled until every client has at least
  ``min_size`` examples.

  Raises:
    ValueError: ``min_size`` could not be met in ``max_tries`` draws.
  """
  labels = np.asarray(labels)
  n = len(labels)
  _check_clients(num_clients, n)
  if beta <= 0:
    raise ValueError(f"beta must be > 0, got {beta}.")
  if min_size * num_clients > n:
    raise ValueError(f"min_size={min_size} x {num_clients} clients exceeds {n} examples.")
  g = _rng(rng)
  classes = np.unique(labels)
  by_class = [np.flatnonzero(labels == c) for c in classes]
  for _ in range(max_tries):
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for idx in by_class:
      idx = g.permutation(idx)
      p = g.dirichlet(np.full(num_clients, beta))
      cuts = (np.cumsum(p)[:-1] * len(idx)).astype(np.int64)
      for k, chunk in enumerate(np.split(idx, cuts)):
        parts[k].append(chunk)
    out = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
    if min(len(o) for o in out) >= min_size:
      return out
  raise ValueError(
    f"Dirichlet(beta={beta}) split gave a client fewer than {min_size} examples in "
    f"{max_tries} tries; raise beta or lower min_size."
  )


def sorted_by_label(labels: Sequence | np.ndarray, num_clients: int) -> list[np.ndarray]:
  """Extreme non-IID: sort by label (stable) and cut into contiguous shards."""
  labels = np.asarray(labels)
  _check_clients(num_clients, len(labels))
  order = np.argsort(labels, kind="stable")
  return [np.sort(p).astype(np.int64) for p in np.array_split(order, num_clients)]


def by_group(groups: Sequence | np.ndarray) -> list[np.ndarray]:
  """Natural split: one client per distinct group value, in sorted group order.

  Args:
    groups: per-example group ids (work, role, domain...).
  """
  groups = np.asarray(groups)
  return [np.flatnonzero(groups == g).astype(np.int64) for g in np.unique(groups)]


def label_skew(labels: Sequence | np.ndarray, parts: Sequence[np.ndarray]) -> float:
  """Mean total-variation distance between client label histograms and the global one.

  0 for a perfectly IID split, approaching 1 - 1/num_classes for one class per
  client; used to check that Dirichlet skew grows as beta falls.
  """
  labels = np.asarray(labels)
  classes, inv = np.unique(labels, return_inverse=True)
  glob = np.bincount(inv, minlength=len(classes)) / len(labels)
  tv = []
  for p in parts:
    if len(p):
      h = np.bincount(inv[p], minlength=len(classes)) / len(p)
      tv.append(0.5 * np.abs(h - glob).sum())
  return float(np.mean(tv))


def sample_clients(
  num_clients: int, m: int, rng: RngLike = 0, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
  """Choose ``m`` distinct client ids for a round, sorted.

  Args:
    num_clients: population size.
    m: clients per round (``m >= num_clients`` returns everyone).
    rng: seed or generator; pass one generator across rounds for a stream.
    weights: optional sampling weights (e.g. client sizes).
  """
  if m >= num_clients:
    return np.arange(num_clients, dtype=np.int64)
  if m < 1:
    raise ValueError(f"m must be >= 1, got {m}.")
  p = None
  if weights is not None:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (num_clients,) or (w < 0).any() or w.sum() <= 0:
      raise ValueError(f"weights must be {num_clients} non-negative numbers with positive sum.")
    p = w / w.sum()
  return np.sort(_rng(rng).choice(num_clients, size=m, replace=False, p=p)).astype(np.int64)
