"""The container every tailopt data loader returns."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["FederatedData", "num_examples", "take"]

Examples = dict[str, np.ndarray]


def num_examples(examples: Examples) -> int:
  """Leading dimension shared by all arrays of ``examples`` (0 if empty)."""
  sizes = {k: int(np.shape(v)[0]) for k, v in examples.items()}
  if len(set(sizes.values())) > 1:
    raise ValueError(f"Arrays disagree on the number of examples: {sizes}.")
  return next(iter(sizes.values()), 0)


def take(examples: Examples, index: np.ndarray | slice) -> Examples:
  """Select the same rows from every array of ``examples``."""
  return {k: np.asarray(v)[index] for k, v in examples.items()}


@dataclasses.dataclass
class FederatedData:
  """A dataset split across clients (nodes).

  Attributes:
    clients: per-client training examples; each a dict of arrays sharing a
      leading dimension, e.g. ``{"x": (n, 28, 28, 1) float32, "y": (n,) int32}``.
    test: pooled held-out examples, same keys as the clients.
    client_names: one human-readable name per client (work title, role, domain
      or ``"client_<i>"``).
    client_test: optional per-client held-out examples (natural splits such as
      the per-work 80/20 split of gutenberg8); ``None`` when not meaningful.
    meta: free-form description: ``num_classes``, ``vocab``, ``seq_len``,
      ``source`` and whatever the loader documents.
  """

  clients: list[Examples]
  test: Examples
  client_names: list[str]
  client_test: list[Examples] | None = None
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if len(self.client_names) != len(self.clients):
      raise ValueError(f"{len(self.clients)} clients but {len(self.client_names)} client_names.")
    if self.client_test is not None and len(self.client_test) != len(self.clients):
      raise ValueError(f"{len(self.clients)} clients but {len(self.client_test)} client_test sets.")
    for c in self.clients:
      num_examples(c)
    num_examples(self.test)

  @property
  def num_clients(self) -> int:
    return len(self.clients)

  def client_sizes(self) -> np.ndarray:
    """Number of training examples per client, int64 array."""
    return np.array([num_examples(c) for c in self.clients], dtype=np.int64)

  @property
  def num_train(self) -> int:
    return int(self.client_sizes().sum())

  @property
  def num_test(self) -> int:
    return num_examples(self.test)

  def summary(self) -> str:
    """One line: clients, example counts and size spread."""
    s = self.client_sizes()
    return (
      f"{self.num_clients} clients, {self.num_train} train / {self.num_test} test "
      f"examples, per-client min/median/max {s.min() if len(s) else 0}/"
      f"{int(np.median(s)) if len(s) else 0}/{s.max() if len(s) else 0}"
    )
