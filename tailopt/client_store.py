"""Per-client inner optimizer states of a sampled client population, kept on the host.

When a round's slots are filled by clients sampled from a larger population (cross-device
federated learning: e.g. 16 of 1,426 Shakespeare roles per round), a stateful inner rule
(Adam, momentum) keeps each real client's state across the rounds it takes part in:

.. code-block:: python

    store = tailopt.ClientStateStore(rnd.method.inner.init(params))
    for t in range(T):
      ids = sample_clients(t)                                  # dataset client ids
      state = state._replace(inner_state=rnd.place_clients(store.gather(ids)))
      state, metrics = rnd(state, batch_of(ids, t))
      store.scatter(ids, jax.device_get(state.inner_state))

A client seen for the first time starts from ``fresh`` (a fresh ``inner.init``). Host
memory grows with the clients seen: (clients seen) x (one inner state).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


class ClientStateStore:
  """Inner states by dataset client id (numpy, on the host); see the module doc."""

  def __init__(self, fresh: Any):
    self._fresh_leaves, self._treedef = jax.tree.flatten(jax.device_get(fresh))
    self._fresh_leaves = [np.asarray(x) for x in self._fresh_leaves]
    self._states: dict[int, list] = {}

  def __len__(self) -> int:
    return len(self._states)

  def gather(self, ids) -> Any:
    """The states of clients ``ids``, stacked (leading axis ``len(ids)``)."""
    rows = [self._states.get(int(i), self._fresh_leaves) for i in ids]
    leaves = [np.stack([r[j] for r in rows]) for j in range(len(self._fresh_leaves))]
    return jax.tree.unflatten(self._treedef, leaves)

  def scatter(self, ids, stacked) -> None:
    """Stores row ``k`` of ``stacked`` (a host tree, leading axis ``len(ids)``) as client
    ``ids[k]``'s state."""
    leaves = self._treedef.flatten_up_to(stacked)
    n = len(ids)
    short = [np.shape(x) for x in leaves if np.ndim(x) < 1 or np.shape(x)[0] != n]
    if short:
      raise ValueError(
        f"ClientStateStore.scatter: {n} ids but stacked leaves have shapes {short}; every "
        f"leaf needs a leading axis of len(ids) = {n} (one row per client)."
      )
    for k, i in enumerate(ids):
      self._states[int(i)] = [np.array(x[k]) for x in leaves]

  def to_tree(self) -> dict:
    """A checkpointable form: ``{"ids": (n,), "leaves": [(n, ...) per leaf]}``, sorted."""
    ids = sorted(self._states)
    leaves = [
      np.stack([self._states[i][j] for i in ids]) if ids else np.zeros((0,) + f.shape, f.dtype)
      for j, f in enumerate(self._fresh_leaves)
    ]
    return {"ids": np.asarray(ids, np.int64), "leaves": leaves}

  def template(self, n: int) -> dict:
    """The shapes of :meth:`to_tree` with ``n`` clients stored (for a checkpoint restore)."""
    return {
      "ids": np.zeros((n,), np.int64),
      "leaves": [np.zeros((n,) + f.shape, f.dtype) for f in self._fresh_leaves],
    }

  def load_tree(self, tree: dict) -> None:
    """Replaces the contents with a :meth:`to_tree` result."""
    leaves = [np.asarray(x) for x in tree["leaves"]]
    self._states = {int(i): [x[k] for x in leaves] for k, i in enumerate(np.asarray(tree["ids"]))}
