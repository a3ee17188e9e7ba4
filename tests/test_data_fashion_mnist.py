"""Fashion-MNIST from the Debian IDX files."""

import gzip
import struct

import numpy as np
import pytest

from _data_helpers import need
from experiments.data import fashion_mnist
from tailopt.data import partition

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow


def test_read_idx_synthetic(tmp_path):
  arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  p = tmp_path / "a-idx3-ubyte.gz"
  p.write_bytes(gzip.compress(struct.pack(">HBB3I", 0, 8, 3, 2, 3, 4) + arr.tobytes()))
  np.testing.assert_array_equal(fashion_mnist.read_idx(p), arr)
  (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
  with pytest.raises(ValueError, match="not an IDX"):
    fashion_mnist.read_idx(tmp_path / "bad")


@pytest.fixture(scope="module")
def train():
  need("fashion-mnist")
  return fashion_mnist.load_arrays("train")


@pytest.mark.data
def test_arrays(train):
  x, y = train
  assert x.shape == (60000, 28, 28, 1) and x.dtype == np.float32
  assert y.dtype == np.int32 and y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
  assert np.bincount(y).tolist() == [6000] * 10
  assert 0.0 <= x.min() and x.max() <= 1.0
  assert x.mean() == pytest.approx(fashion_mnist.MEAN, abs=1e-5)
  assert x.std() == pytest.approx(fashion_mnist.STD, abs=1e-5)
  xt, yt = fashion_mnist.load_arrays("test", limit=500, standardize=True)
  assert xt.shape == (500, 28, 28, 1) and yt[:5].tolist() == [9, 2, 1, 1, 6]
  assert abs(xt.mean()) < 0.1


@pytest.mark.data
@pytest.mark.parametrize("kind", ["iid", "dirichlet", "sorted"])
def test_load_partitions(kind, train):
  d = fashion_mnist.load(10, kind, beta=0.1, seed=0, limit=6000, test_limit=1000)
  assert d.num_clients == 10 and d.num_train == 6000 and d.num_test == 1000
  assert d.meta["num_classes"] == 10 and d.client_test is None
  y = train[1][:6000]
  ys = np.concatenate([c["y"] for c in d.clients])
  assert np.bincount(ys).tolist() == np.bincount(y).tolist()  # covers the data
  skew = partition.label_skew(
    y,
    partition.iid(6000, 10, 0)
    if kind == "iid"
    else partition.dirichlet(y, 10, 0.1, 0)
    if kind == "dirichlet"
    else partition.sorted_by_label(y, 10),
  )
  if kind == "iid":
    assert skew < 0.1
    assert all(len(np.unique(c["y"])) == 10 for c in d.clients)
  elif kind == "sorted":
    # contiguous label ranges: client k's labels never exceed client k+1's
    for a, b in zip(d.clients, d.clients[1:]):
      assert a["y"].max() <= b["y"].min()
    assert np.bincount(d.clients[0]["y"]).tolist() == [560, 40]  # 560 zeros in the first 6k
  else:
    assert skew > 0.4
  # images stay attached to their labels
  x0 = d.clients[3]["x"][0]
  row = np.flatnonzero((train[0][:6000] == x0).all(axis=(1, 2, 3)))[0]
  assert train[1][row] == d.clients[3]["y"][0]


def test_bad_partition_name(train):
  with pytest.raises(ValueError, match="partition_kind"):
    fashion_mnist.load(2, "zipf", limit=100)
