"""Reshape every example set of a :class:`~tailopt.data.types.FederatedData` at once.

A task adapts a loader's examples to its model's batch keys (``x`` -> ``input_ids``, a
seq2seq or LM layout, precomputed features): :func:`map_examples` applies one function to
the clients' training sets, the pooled test set and the per-client test sets alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tailopt.data.types import FederatedData

__all__ = ["map_examples", "rename"]

Examples = dict[str, np.ndarray]


def map_examples(data: FederatedData, fn: Callable[[Examples], Examples]) -> FederatedData:
  """``data`` with ``fn`` applied to every example set (in place; returns ``data``)."""
  data.clients = [fn(c) for c in data.clients]
  data.test = fn(data.test)
  if data.client_test is not None:
    data.client_test = [fn(c) for c in data.client_test]
  return data


def rename(data: FederatedData, mapping: Mapping[str, str], drop: Sequence[str] = ()):
  """``data`` with its example keys renamed by ``mapping`` and the keys ``drop`` left out."""
  return map_examples(
    data, lambda ex: {mapping.get(k, k): v for k, v in ex.items() if k not in drop}
  )
