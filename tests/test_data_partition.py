"""Partitioning: disjoint, covering, deterministic, and skewed as documented."""

import numpy as np
import pytest

from tailopt.data import partition

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


def _check_partition(parts, n):
  allidx = np.concatenate(parts)
  assert len(allidx) == n, "partition must cover every example"
  assert len(np.unique(allidx)) == n, "partition must be disjoint"
  assert all(p.dtype == np.int64 for p in parts)


@pytest.fixture
def labels():
  return np.repeat(np.arange(10), 300)  # 3,000 examples, 10 balanced classes


def test_iid_covers_balanced_and_deterministic(labels):
  parts = partition.iid(labels, 7, rng=0)
  _check_partition(parts, len(labels))
  sizes = [len(p) for p in parts]
  assert max(sizes) - min(sizes) <= 1
  again = partition.iid(len(labels), 7, rng=0)  # int n works too
  assert all(np.array_equal(a, b) for a, b in zip(parts, again))
  other = partition.iid(labels, 7, rng=1)
  assert not all(np.array_equal(a, b) for a, b in zip(parts, other))
  assert partition.label_skew(labels, parts) < 0.1


def test_dirichlet_covers_and_skew_grows_as_beta_falls(labels):
  skews = []
  for beta in (100.0, 1.0, 0.1):
    parts = partition.dirichlet(labels, 10, beta, rng=0, min_size=5)
    _check_partition(parts, len(labels))
    assert min(len(p) for p in parts) >= 5
    skews.append(partition.label_skew(labels, parts))
  assert skews[0] < 0.15 < skews[1] < skews[2], skews
  a = partition.dirichlet(labels, 10, 0.5, rng=np.random.default_rng(3))
  b = partition.dirichlet(labels, 10, 0.5, rng=np.random.default_rng(3))
  assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_dirichlet_errors(labels):
  with pytest.raises(ValueError, match="beta"):
    partition.dirichlet(labels, 10, 0.0, rng=0)
  with pytest.raises(ValueError, match="min_size"):
    partition.dirichlet(labels, 10, 0.5, rng=0, min_size=1000)


def test_sorted_by_label_is_extreme(labels):
  parts = partition.sorted_by_label(labels, 20)
  _check_partition(parts, len(labels))
  for p in parts:
    assert len(np.unique(labels[p])) == 1  # 150 examples each, inside one class
  parts = partition.sorted_by_label(labels, 10)
  assert [int(np.unique(labels[p])[0]) for p in parts] == list(range(10))
  assert partition.label_skew(labels, parts) == pytest.approx(0.9)


def test_by_group_natural_split():
  groups = np.array(["b", "a", "b", "c", "a", "b"])
  parts = partition.by_group(groups)
  assert [p.tolist() for p in parts] == [[1, 4], [0, 2, 5], [3]]
  _check_partition(parts, len(groups))


def test_sample_clients():
  s = partition.sample_clients(1426, 10, rng=0)
  assert len(s) == 10 and len(np.unique(s)) == 10 and np.all(np.diff(s) > 0)
  assert np.array_equal(s, partition.sample_clients(1426, 10, rng=0))
  g = np.random.default_rng(0)
  rounds = [partition.sample_clients(1426, 10, rng=g) for _ in range(3)]
  assert not np.array_equal(rounds[0], rounds[1])
  np.testing.assert_array_equal(partition.sample_clients(5, 8, rng=0), np.arange(5))
  w = np.zeros(100)
  w[[3, 7, 9]] = 1.0
  np.testing.assert_array_equal(partition.sample_clients(100, 3, rng=0, weights=w), [3, 7, 9])
  with pytest.raises(ValueError):
    partition.sample_clients(100, 3, weights=np.ones(5))


def test_too_many_clients():
  with pytest.raises(ValueError, match="Cannot split"):
    partition.iid(3, 4)
