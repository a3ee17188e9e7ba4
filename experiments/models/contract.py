"""The model contract shared by every model: a :class:`Model` is a bundle of *pure functions
over a plain pytree*:

* ``init(key) -> params``: a nested ``dict`` of ``jnp`` arrays (no NNX objects).
* ``loss(params, batch) -> scalar``: mean training loss, pure and traceable, so the
  training round can ``jax.grad`` it, ``jax.vmap`` it over clients and run it inside
  ``jax.shard_map`` / ``lax.scan``.
* ``evaluate(params, batch) -> dict``: ``{'loss', 'accuracy', 'count', ...}`` where the
  metrics are means over the batch and ``count`` is the weight of those means (number of
  examples, or number of predicted tokens for language models), so callers aggregate
  several batches as ``sum(m * count) / sum(count)``.

Every Model's ``meta`` also has: ``num_params`` (trainable), ``num_params_total``,
``trainable``, ``frozen``, ``full_params`` (trainable -> full params), ``loss_with_frozen``,
``apply`` (forward pass on the trainable params), ``task`` and ``config`` (see
:mod:`experiments.models.trainable` for the trainable/frozen split).

Implementation style
--------------------
Transformers (char LM, BERT, Llama, seq2seq) are written *functionally* on dict params:
their layers are stacked along a leading axis and run with ``lax.scan``, pretrained
checkpoints map onto the dicts directly, and trainable/frozen partitions are dict
operations. The small from-scratch vision models (CNN, ViT) are NNX modules adapted with
:func:`experiments.models.nnx_adapter.nnx_apply_fns`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import numpy as np

Params = Any  # nested dict of jnp arrays
Batch = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Model:
  """A model as pure functions over a plain params pytree (see module docstring)."""

  init: Callable[[jax.Array], Params]
  loss: Callable[[Params, Batch], jax.Array]
  evaluate: Callable[[Params, Batch], dict]
  name: str
  meta: dict = dataclasses.field(default_factory=dict)


def count_params(tree: Params) -> int:
  """Total number of scalar entries in a pytree of arrays."""
  return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(tree)))
