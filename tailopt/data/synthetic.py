"""Synthetic federated tasks for heavy-tailed studies: generated data, no download.

Three tasks, each split across clients IID or non-IID:

* ``least_squares``: ``y = x . w* + eps`` with ``eps ~ N(0, label_noise^2)``.
* ``logistic``: binary labels ``y ~ Bernoulli(sigmoid(x . w*))``.
* ``mlp``: ``num_classes`` labels from the argmax of a random teacher MLP.

Non-IID (``partition``): ``'iid'``; ``'shift'`` gives client ``i`` features
``x ~ N(mu_i, I)`` with ``mu_i ~ N(0, heterogeneity^2 I)`` (covariate shift, all tasks);
``'dirichlet'`` and ``'sorted'`` split a classification task's pooled examples by label
(:mod:`tailopt.data.partition`). The heavy-tailed part is injected into the gradients
by the training round (``tailopt.inject_noise``), so the tail index is a config field.
"""

from __future__ import annotations

import numpy as np

from tailopt.data import partition as partition_lib
from tailopt.data.types import FederatedData, take

TASKS = ("least_squares", "logistic", "mlp")
PARTITIONS = ("iid", "shift", "dirichlet", "sorted")


def _teacher_mlp(rng, dim, hidden, num_classes):
  w1 = rng.normal(size=(dim, hidden)) / np.sqrt(dim)
  w2 = rng.normal(size=(hidden, num_classes)) / np.sqrt(hidden)
  return lambda x: np.argmax(np.tanh(x @ w1) @ w2, axis=-1)


def make_task(
  task: str = "least_squares",
  *,
  num_clients: int = 8,
  dim: int = 20,
  examples_per_client: int = 512,
  test_examples: int = 2048,
  partition: str = "iid",
  heterogeneity: float = 1.0,
  dirichlet_beta: float = 0.3,
  num_classes: int = 10,
  label_noise: float = 0.1,
  seed: int = 0,
) -> FederatedData:
  """Generates a synthetic federated dataset (deterministic in ``seed``)."""
  if task not in TASKS:
    raise ValueError(f"Unknown synthetic task {task!r}; choose one of {TASKS}.")
  if partition not in PARTITIONS:
    raise ValueError(f"Unknown partition {partition!r}; choose one of {PARTITIONS}.")
  if partition in ("dirichlet", "sorted") and task == "least_squares":
    raise ValueError(
      f"partition={partition!r} splits by label, but least_squares has real-valued "
      "targets; use partition='shift' (covariate shift) or 'iid'."
    )
  rng = np.random.default_rng(seed)
  w_star = rng.normal(size=(dim,)) / np.sqrt(dim)
  teacher = _teacher_mlp(rng, dim, 64, num_classes) if task == "mlp" else None

  def label(x):
    if task == "least_squares":
      return (x @ w_star + label_noise * rng.normal(size=len(x))).astype(np.float32)
    if task == "logistic":
      p = 1.0 / (1.0 + np.exp(-4.0 * (x @ w_star)))
      return (rng.uniform(size=len(x)) < p).astype(np.int32)
    return teacher(x).astype(np.int32)

  n = num_clients * examples_per_client
  if partition == "shift":
    mus = heterogeneity * rng.normal(size=(num_clients, dim)) / np.sqrt(dim)
    clients = []
    for i in range(num_clients):
      x = (rng.normal(size=(examples_per_client, dim)) + mus[i]).astype(np.float32)
      clients.append({"x": x, "y": label(x)})
    xt = (
      rng.normal(size=(test_examples, dim)) + mus[rng.integers(0, num_clients, test_examples)]
    ).astype(np.float32)
    test = {"x": xt, "y": label(xt)}
  else:
    x = rng.normal(size=(n + test_examples, dim)).astype(np.float32)
    pool = {"x": x, "y": label(x)}
    train, test = take(pool, slice(0, n)), take(pool, slice(n, None))
    if partition == "iid":
      parts = partition_lib.iid(n, num_clients, rng)
    elif partition == "dirichlet":
      parts = partition_lib.dirichlet(train["y"], num_clients, dirichlet_beta, rng)
    else:
      parts = partition_lib.sorted_by_label(train["y"], num_clients)
    clients = [take(train, idx) for idx in parts]
  meta = dict(
    task=task,
    dim=dim,
    partition=partition,
    source="synthetic",
    num_classes={"least_squares": 0, "logistic": 2, "mlp": num_classes}[task],
    w_star=w_star if task != "mlp" else None,
  )
  return FederatedData(
    clients=clients, test=test, client_names=[f"client_{i}" for i in range(num_clients)], meta=meta
  )
