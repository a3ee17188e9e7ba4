r"""A parameter tree split coordinate-wise over a device axis of n devices, for an outer rule
that runs on 1/n of every leaf (the sharded server step of :func:`tailopt.build_round`).

Every leaf of size s is flattened and zero-padded to :math:`n c` elements,
:math:`c = \lceil s / n \rceil`; device j holds elements :math:`[j c, (j + 1) c)`. An
elementwise outer rule's state built on the flat padded tree (:func:`flat`) has, per
parameter leaf, one ``(n c,)`` array per moment, stored split over the axis; its scalars
(a step count, scheduled hyperparameters) stay replicated (:func:`state_specs`).

Inside ``shard_map`` (manual over the axis):

* :func:`scatter_sum` — the reduce-scatter: each device's tree summed over the axis, and
  device j keeps its shard of every leaf (``lax.psum_scatter(..., tiled=True)``);
* :func:`local_shard` — device j's shard of a replicated tree (a slice, no communication);
* :func:`gather` — the all-gather: every device's shard back into the full replicated tree
  (``lax.all_gather(..., tiled=True)``), the padding dropped;
* :func:`valid` — the mask of device j's coordinates that are not padding.

Leaves of at most :data:`PACK_LIMIT` elements (per dtype) cross the axis in one buffer laid
out ``(n, sum of their c)``, so each device's shard of the buffer is its shards of those
leaves side by side; larger leaves go alone (each collective is a rendezvous).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

PACK_LIMIT = 1 << 16


def chunk(size: int, n: int) -> int:
  """Elements of one leaf of ``size`` elements on each of ``n`` devices (at least 1)."""
  return max(1, -(-int(size) // n))


def _padded_flat(x, n: int):
  flat = jnp.ravel(x)
  return jnp.pad(flat, (0, chunk(flat.size, n) * n - flat.size))


def flat(tree, n: int):
  """``tree`` with every leaf flattened and zero-padded to a multiple of ``n`` elements (the
  layout of the sharded outer state, whole)."""
  return jax.tree.map(lambda x: _padded_flat(x, n), tree)


def abstract(tree, n: int, shard: bool):
  """Shapes of :func:`flat` of ``tree`` (``shard=False``) or of one device's shard of it."""

  def one(x):
    c = chunk(x.size, n)
    return jax.ShapeDtypeStruct((c if shard else c * n,), x.dtype)

  return jax.tree.map(one, tree)


def state_specs(init_fn, params, n: int, axis_name: str, where: str = "outer rule"):
  """The ``PartitionSpec`` of every leaf of ``init_fn``'s state on the flat layout of
  ``params`` (shapes suffice): ``P(axis_name)`` for a leaf with one element per coordinate
  (its shape follows the layout: ``(n c,)`` whole, ``(c,)`` per device), ``P()`` for a leaf
  that does not depend on the coordinates (a count, a hyperparameter). Raises
  ``ValueError`` for any other leaf: the rule is then not elementwise."""
  params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), x.dtype), params)
  whole = jax.eval_shape(init_fn, abstract(params, n, shard=False))
  part = jax.eval_shape(init_fn, abstract(params, n, shard=True))

  def one(path, w, s):
    if w.shape == s.shape:
      return P()
    if w.ndim == 1 and s.ndim == 1 and w.shape[0] == n * s.shape[0]:
      return P(axis_name)
    raise ValueError(
      f"{where} state leaf {jax.tree_util.keystr(path)} has shape {w.shape} on the flat "
      f"layout, neither per-coordinate nor a scalar: the rule is not elementwise; build the "
      "round with shard_outer=False."
    )

  return jax.tree_util.tree_map_with_path(one, whole, part)


def has_sharded_state(init_fn, n: int) -> bool:
  """Whether ``init_fn``'s state holds a per-coordinate array (probed on one leaf of n
  coordinates): sharding then saves memory and work; otherwise there is nothing to split."""
  probe = {"x": jax.ShapeDtypeStruct((n,), jnp.float32)}
  try:
    specs = state_specs(init_fn, probe, n, "_")
  except ValueError:
    return False
  return any(s == P("_") for s in jax.tree.leaves(specs, is_leaf=lambda s: isinstance(s, P)))


def _groups(leaves) -> tuple[dict, list]:
  """``({dtype: indices of the small leaves}, indices of the large leaves)``."""
  small, large = {}, []
  for i, x in enumerate(leaves):
    if x.size <= PACK_LIMIT:
      small.setdefault(jnp.dtype(x.dtype), []).append(i)
    else:
      large.append(i)
  return small, large


def scatter_sum(tree, axis_name: str, n: int):
  """Inside ``shard_map``: ``tree`` (the same shapes on every device) summed over
  ``axis_name``, each device keeping its shard of every leaf (leaves ``(c,)``)."""
  leaves, treedef = jax.tree.flatten(tree)
  out = [None] * len(leaves)
  small, large = _groups(leaves)
  for i in large:
    out[i] = jax.lax.psum_scatter(_padded_flat(leaves[i], n), axis_name, tiled=True)
  for idx in small.values():
    rows = [_padded_flat(leaves[i], n).reshape(n, -1) for i in idx]
    buf = jnp.concatenate(rows, axis=1).reshape(-1) if len(rows) > 1 else rows[0].reshape(-1)
    mine = jax.lax.psum_scatter(buf, axis_name, tiled=True)
    start = 0
    for i, r in zip(idx, rows):
      out[i] = mine[start : start + r.shape[1]]
      start += r.shape[1]
  return jax.tree.unflatten(treedef, out)


def local_shard(tree, axis_name: str, n: int):
  """Inside ``shard_map``: this device's shard of every leaf of a replicated ``tree``."""
  j = jax.lax.axis_index(axis_name)

  def one(x):
    c = chunk(x.size, n)
    return jax.lax.dynamic_slice(_padded_flat(x, n), (j * c,), (c,))

  return jax.tree.map(one, tree)


def gather(shards, like, axis_name: str, n: int):
  """Inside ``shard_map``: the devices' ``shards`` (leaves ``(c,)``) gathered into whole
  replicated leaves shaped like ``like``'s (the padding dropped)."""
  leaves, treedef = jax.tree.flatten(shards)
  like_leaves = treedef.flatten_up_to(like)
  full = [None] * len(leaves)
  small, large = _groups(like_leaves)
  for i in large:
    full[i] = jax.lax.all_gather(leaves[i], axis_name, tiled=True, to="invarying")
  for idx in small.values():
    parts = [leaves[i] for i in idx]
    buf = jnp.concatenate(parts) if len(parts) > 1 else parts[0]
    rows = jax.lax.all_gather(buf, axis_name, tiled=True, to="invarying").reshape(n, -1)
    start = 0
    for i, p in zip(idx, parts):
      full[i] = rows[:, start : start + p.shape[0]].reshape(-1)
      start += p.shape[0]
  out = [f[: jnp.size(x)].reshape(jnp.shape(x)) for f, x in zip(full, like_leaves)]
  return jax.tree.unflatten(treedef, out)


def valid(shards, like, axis_name: str, n: int) -> Any:
  """Inside ``shard_map``: per leaf, the mask of this device's coordinates that are not
  padding (``like``: the whole tree, for the sizes)."""
  j = jax.lax.axis_index(axis_name)
  return jax.tree.map(
    lambda s, x: j * s.shape[0] + jnp.arange(s.shape[0]) < jnp.size(x), shards, like
  )
