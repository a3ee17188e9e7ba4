"""The batch samplers of a run: the data position is the round / the (worker, job).

Synchronous rounds sample on the host (:class:`ClientBatches`); the asynchronous simulator
samples inside jit from the stacked client data (:func:`stack_clients`,
:func:`make_data_fn`); held-out sets are read in order (:func:`eval_batches`).


``ClientBatches(data, ...)(t)`` returns the round-``t`` batch, every leaf shaped
``(clients, local_steps, batch_size, ...)``, drawn from a generator seeded by
``(seed, t)``. A resumed run therefore sees exactly the batches an uninterrupted run
would, with nothing to store but the round. Minibatches are sampled with replacement
within each client. When the dataset has more clients than a round has slots
(``clients_per_round``), each round samples that many distinct clients (client
sampling, as in cross-device federated learning).
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

from tailopt.data.types import FederatedData, num_examples


class ClientBatches:
  """Round-indexed batches for the training round (see module doc)."""

  def __init__(
    self,
    data: FederatedData,
    *,
    local_steps: int,
    batch_size: int,
    seed: int = 0,
    clients_per_round: Optional[int] = None,
  ):
    self.data = data
    self.local_steps = local_steps
    self.batch_size = batch_size
    self.seed = seed
    m = data.num_clients if clients_per_round is None else clients_per_round
    if not 1 <= m <= data.num_clients:
      raise ValueError(
        f"clients_per_round={clients_per_round} but the dataset has {data.num_clients} "
        "clients; use a number between 1 and that."
      )
    self.clients_per_round = m
    self.sizes = data.client_sizes()
    empty = [data.client_names[i] for i in np.flatnonzero(self.sizes == 0)]
    if empty:
      raise ValueError(
        f"clients {empty[:5]} have no training examples; drop them or change the partition."
      )

  @property
  def samples_clients(self) -> bool:
    return self.clients_per_round < self.data.num_clients

  def client_ids(self, round_index: int) -> np.ndarray:
    """The dataset clients that fill the round's slots."""
    if not self.samples_clients:
      return np.arange(self.data.num_clients)
    rng = np.random.default_rng([self.seed, round_index, 1])
    return np.sort(rng.choice(self.data.num_clients, self.clients_per_round, replace=False))

  def __call__(self, round_index: int, slots=None) -> dict:
    """The round's batch; ``slots`` (optional): only these rows (slot indices), e.g. a
    process's own clients (``Round.local_clients()``), the same rows as in the full batch
    without gathering the others' examples."""
    rng = np.random.default_rng([self.seed, round_index])
    ids = self.client_ids(round_index)
    keep = set(range(len(ids)) if slots is None else (int(i) for i in slots))
    shape = (self.local_steps, self.batch_size)
    per_client = []
    for slot, cid in enumerate(ids):
      idx = rng.integers(0, self.sizes[cid], size=shape)  # drawn for every slot, in order
      if slot in keep:
        per_client.append({k: np.asarray(v)[idx] for k, v in self.data.clients[cid].items()})
    return {k: np.stack([c[k] for c in per_client]) for k in per_client[0]}

  def weights(self, round_index: int) -> np.ndarray:
    """Example counts of the round's clients (for weighted aggregation)."""
    return self.sizes[self.client_ids(round_index)].astype(np.float32)


def eval_batches(examples: dict, batch_size: int) -> Iterator[dict]:
  """Consecutive batches of a held-out set; the last one may be smaller."""
  n = num_examples(examples)
  for start in range(0, n, batch_size):
    yield {k: np.asarray(v)[start : start + batch_size] for k, v in examples.items()}


def stack_clients(data: FederatedData) -> dict:
  """Client examples padded to the largest client and stacked: ``{"examples": {key: (N,
  max_n, ...)}, "sizes": (N,) int32}`` (device arrays; passed to the simulator as data)."""
  sizes = data.client_sizes()
  if (sizes == 0).any():
    raise ValueError(
      f"clients {np.flatnonzero(sizes == 0).tolist()} have no training "
      "examples; change the partition."
    )
  m = int(sizes.max())
  out = {}
  for k in data.clients[0]:
    first = np.asarray(data.clients[0][k])
    arr = np.zeros((len(sizes), m) + first.shape[1:], first.dtype)
    for i, c in enumerate(data.clients):
      arr[i, : sizes[i]] = np.asarray(c[k])
    out[k] = jnp.asarray(arr)
  return {"examples": out, "sizes": jnp.asarray(sizes, jnp.int32)}


def make_data_fn(local_steps: int, batch_size: int) -> Callable:
  """``data_fn(data, worker, job_index, key)``: z minibatches drawn with replacement from the
  worker's own examples (the key is the simulator's per-(worker, job) key)."""

  def data_fn(data, worker, job_index, key):
    del job_index  # already folded into key
    n = data["sizes"][worker]
    idx = jax.random.randint(key, (local_steps, batch_size), 0, n)
    return {k: v[worker, idx] for k, v in data["examples"].items()}

  return data_fn
