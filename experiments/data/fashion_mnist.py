"""Fashion-MNIST (the offline stand-in for CIFAR-100) from the Debian package.

The ``fashion-mnist`` artifact (Debian ``dataset-fashion-mnist``) holds the
four gzipped IDX files: 60,000 training and 10,000 test 28x28 greyscale images
of 10 clothing classes, 6,000 / 1,000 per class. Images come back as float32
``(n, 28, 28, 1)`` in [0, 1] (optionally standardised), labels as int32.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import struct

import numpy as np

from experiments.data import fetch
from experiments.data.fetch import Artifact, Source
from experiments.data.registry import task
from tailopt.data import partition
from tailopt.data.types import FederatedData, take

__all__ = [
  "ARTIFACTS",
  "CLASS_NAMES",
  "FASHION_MNIST",
  "MEAN",
  "STD",
  "load",
  "load_arrays",
  "read_idx",
]

FASHION_MNIST = Artifact(
  name="fashion-mnist",
  description=(
    "Fashion-MNIST IDX files, 60k train / 10k test "
    "(usr/share/datasets/fashion-mnist/*.gz); used by experiments.data.fashion_mnist."
  ),
  sources=(
    Source(
      "debian",
      "dataset-fashion-mnist",
      "0.0~git20200523.55506a9-1",
      "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
      "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
      30900652,
      "pool/main/d/dataset-fashion-mnist/dataset-fashion-mnist_0.0%7egit20200523.55506a9-1_all.deb",
    ),
  ),
  files={
    "dir": "usr/share/datasets/fashion-mnist",
    "train_images": "usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
    "train_labels": "usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
    "test_images": "usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
    "test_labels": "usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
  },
  license="MIT",
)

ARTIFACTS = (FASHION_MNIST,)

CLASS_NAMES = (
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
)
#: Mean and standard deviation of the training pixels scaled to [0, 1].
MEAN, STD = 0.2860406, 0.3530242

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Read an IDX file (optionally gzipped) into a numpy array."""
  path = pathlib.Path(path)
  raw = path.read_bytes()
  if raw[:2] == b"\x1f\x8b":
    raw = gzip.decompress(raw)
  zero, dtype_code, ndim = struct.unpack_from(">HBB", raw, 0)
  if zero != 0 or dtype_code not in _DTYPES:
    raise ValueError(f"{path} is not an IDX file (header {raw[:4].hex()}).")
  shape = struct.unpack_from(f">{ndim}I", raw, 4)
  data = np.frombuffer(raw, dtype=_DTYPES[dtype_code], offset=4 + 4 * ndim)
  if data.size != int(np.prod(shape)):
    raise ValueError(f"{path}: header says {shape} but holds {data.size} values.")
  return data.reshape(shape)


def load_arrays(
  split: str = "train",
  limit: int | None = None,
  standardize: bool = False,
  cache_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """``(images, labels)`` of one split: float32 ``(n, 28, 28, 1)``, int32 ``(n,)``.

  Args:
    split: ``"train"`` (60,000) or ``"test"`` (10,000).
    limit: keep the first ``limit`` examples.
    standardize: subtract :data:`MEAN` and divide by :data:`STD`; else [0, 1].
  """
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
  x = read_idx(fetch.artifact_file(FASHION_MNIST, f"{split}_images", cache_dir))
  y = read_idx(fetch.artifact_file(FASHION_MNIST, f"{split}_labels", cache_dir))
  if limit is not None:
    x, y = x[:limit], y[:limit]
  x = x.astype(np.float32)[..., None] / 255.0
  if standardize:
    x = (x - MEAN) / STD
  return x, y.astype(np.int32)


def load(
  num_clients: int = 10,
  partition_kind: str = "iid",
  beta: float = 0.5,
  seed: int = 0,
  limit: int | None = None,
  test_limit: int | None = None,
  standardize: bool = False,
  min_size: int = 10,
  cache_dir: str | os.PathLike | None = None,
) -> FederatedData:
  """Fashion-MNIST split across ``num_clients``.

  Args:
    num_clients: number of clients.
    partition_kind: ``"iid"``, ``"dirichlet"`` (label skew with ``beta``) or
      ``"sorted"`` (sort by label, contiguous shards: 1-2 classes per client
      when ``num_clients >= 10``).
    beta: Dirichlet concentration.
    seed: partition seed.
    limit: use only the first ``limit`` training images; ``test_limit`` likewise.
    standardize: standardise pixels (see :func:`load_arrays`).
    min_size: minimum examples per client for ``dirichlet``.

  Returns:
    ``FederatedData`` with ``{"x": (n, 28, 28, 1) float32, "y": (n,) int32}``
    examples and ``meta`` ``num_classes=10``, ``image_shape``, ``class_names``.
  """
  x, y = load_arrays("train", limit, standardize, cache_dir)
  xt, yt = load_arrays("test", test_limit, standardize, cache_dir)
  if partition_kind == "iid":
    parts = partition.iid(len(y), num_clients, seed)
  elif partition_kind == "dirichlet":
    parts = partition.dirichlet(y, num_clients, beta, seed, min_size=min_size)
  elif partition_kind == "sorted":
    parts = partition.sorted_by_label(y, num_clients)
  else:
    raise ValueError(
      f"partition_kind must be 'iid', 'dirichlet' or 'sorted', got {partition_kind!r}."
    )
  train = {"x": x, "y": y}
  return FederatedData(
    clients=[take(train, p) for p in parts],
    test={"x": xt, "y": yt},
    client_names=[f"client_{i}" for i in range(num_clients)],
    meta={
      "source": "dataset-fashion-mnist",
      "num_classes": 10,
      "image_shape": (28, 28, 1),
      "class_names": CLASS_NAMES,
      "partition": partition_kind,
      "beta": beta if partition_kind == "dirichlet" else None,
      "seed": seed,
      "standardized": standardize,
    },
  )


@task("fashion_mnist", artifacts=("fashion-mnist",))
def fashion_mnist_task(config, make_model):
  """Fashion-MNIST (60k/10k) with a CNN or a small ViT: the ViT/CIFAR-100 stand-in."""
  d = config.data
  data = load(
    num_clients=config.data_clients or config.clients,
    partition_kind=d.partition,
    beta=d.beta,
    seed=config.seed,
    limit=d.limit or None,
    test_limit=d.test_limit or None,
    standardize=True,
  )
  return data, make_model(input_shape=(28, 28, 1), num_classes=10)
