r"""One TailOPT round as one jitted function built on ``jax.shard_map``.

.. code-block:: text

    for each client i in parallel (a device axis, clients beyond the device count vmapped):
        x_i = x_t;  z inner steps in lax.scan;  Delta_i = x_t - x_i
    Delta_t = sum_i w_i Delta_i / sum_i w_i        # lax.psum over the client axis
    x_{t+1} = optax.apply_updates(x_t, outer.update(Delta_t))

``w_i`` is 1 (uniform mean, the default), the client's example count (``weighted=True``),
and 0 for clients not sampled this round (``participation=m``: m of the M clients take
part; the others keep their inner state). The outer rule runs replicated on every device
after the reduction, as in data-parallel training, or, for an elementwise rule with
per-coordinate state (``shard_outer``, on by default for the named adaptive and momentum
rules), split over the devices: a reduce-scatter, the rule on each device's 1/n of the
coordinates, an all-gather of the new params.

Example::

    rnd = tailopt.build_round(loss_fn, tailopt.get_method('bi2clip'), local_steps=4,
                              num_clients=8)
    state = rnd.init(params, seed=0)
    for t in range(T):
      state, metrics = rnd(state, batch)      # batch leaves: (clients, z, B, ...)
      jax.block_until_ready(metrics)

The whole run compiles once: the round index lives in the state as an array. State
buffers are donated. Multi-host: pass a mesh over ``jax.devices()`` after
``jax.distributed.initialize()``; nothing here is host-local.

The pieces, in the order a round runs them (each a top-level name here):

* :class:`Participation`: the clients that take part (``participation=m``) and compute.
* :class:`ClientPhase`: each client's z local steps in ``lax.scan`` (per-client noise, inner
  state, per-step non-finite check) and its :math:`\Delta_i`.
* :class:`Aggregator`: :math:`\Delta_i \to \Delta_t` across the client axis, either
  :class:`MeanAggregator` (the plain weighted mean) or :class:`CompressedAggregator`
  (compressed payloads gathered; error-feedback state per client).
* :class:`ServerPhase`: the outer rule on :math:`\Delta_t`; :class:`Broadcast`: its update
  as the nodes receive it (``down_compressor``).
* :class:`Schedule`: the leaves a round synchronizes through :meth:`RoundParts.sync`
  (aggregate, server phase, broadcast): all of them (:class:`FullSchedule`) or fragment
  ``round % F`` (:class:`FragmentSchedule`, streaming; :mod:`tailopt.overlap` overlaps
  its synchronization with the next round's steps), or all of them with the outer rule's
  state and step split over the client devices (:class:`ShardedServerSchedule`).
* :func:`_device_round` (the ``shard_map`` body) and :func:`_round_step` (the jitted
  round) tie them together; a :class:`Round` holds the settings, its :class:`RoundParts`
  and the compiled programs.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Optional, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from tailopt import clipping
from tailopt import compression
from tailopt import local as local_lib
from tailopt import noise as noise_lib
from tailopt import shard_layout
from tailopt.methods import Method


class RoundState(NamedTuple):
  """Everything a run carries from round to round."""

  params: Any  # global model x_t (replicated)
  outer_state: Any  # server optimizer state (replicated)
  inner_state: Any  # per-client inner states, leading axis = clients (sharded)
  noise_state: Any  # per-client noise-injection states or None (sharded)
  round: jax.Array  # int32, rounds completed
  rng: jax.Array  # PRNG key for client sampling
  comm_state: Any = None  # per-client compressor states (error-feedback residuals)
  local_params: Any = None  # per-client models between syncs (streaming, fragments > 1)


def fragment_ids(params, fragments: int) -> list:
  """Assigns each parameter leaf to one of ``fragments`` fragments, balancing their sizes
  (largest leaf first to the lightest fragment; deterministic). Returns one id per leaf in
  ``jax.tree.leaves`` order."""
  leaves = jax.tree.leaves(params)
  if fragments > max(len(leaves), 1):
    raise ValueError(
      f"fragments={fragments} but the model has {len(leaves)} parameter "
      f"arrays; use at most {len(leaves)} fragments."
    )
  order = sorted(range(len(leaves)), key=lambda i: (-int(np.size(leaves[i])), i))
  load = [0] * fragments
  ids = [0] * len(leaves)
  for i in order:
    f = min(range(fragments), key=lambda j: (load[j], j))
    ids[i] = f
    load[f] += int(np.size(leaves[i]))
  return ids


def _select(tree, ids, f):
  """``tree`` with the leaves outside fragment ``f`` replaced by None."""
  leaves, treedef = jax.tree.flatten(tree)
  return jax.tree.unflatten(treedef, [x if i == f else None for x, i in zip(leaves, ids)])


def _merge(tree, part, ids, f):
  """``tree`` with fragment ``f``'s leaves taken from ``part`` (None elsewhere)."""
  leaves, treedef = jax.tree.flatten(tree)
  part_leaves = treedef.flatten_up_to(part)
  return jax.tree.unflatten(
    treedef, [p if i == f else x for x, p, i in zip(leaves, part_leaves, ids)]
  )


def _split_sq(tree, axis_name: str, n: int) -> jax.Array:
  """This device's share of the squared L2 norm of a ``tree`` that every device on
  ``axis_name`` holds whole: the squares of its own 1/n of every leaf (a slice at its axis
  index). A ``psum`` of the shares is the squared norm, instead of n devices each reading
  the whole tree."""
  i = jax.lax.axis_index(axis_name)
  total = jnp.zeros([], jnp.float32)
  for g in jax.tree.leaves(tree):
    flat = jnp.ravel(g).astype(jnp.float32)
    if flat.size < 4096 * n:  # small: not worth slicing
      total += jnp.where(i == 0, jnp.sum(jnp.square(flat)), 0.0)
      continue
    chunk = -(-flat.size // n)
    flat = jnp.pad(flat, (0, chunk * n - flat.size))
    part = jax.lax.dynamic_slice(flat, (i * chunk,), (chunk,))
    total += jnp.sum(jnp.square(part))
  return total


PACK_LIMIT = 1 << 16  # leaves up to this size cross the client axis in one buffer


def _psum_packed(tree, axis_name: str):
  """``psum`` of a tree whose small leaves travel together: every leaf of at most
  ``PACK_LIMIT`` elements (per dtype) is concatenated into one buffer and summed in one
  collective (each collective is a rendezvous of the devices); larger leaves go alone."""
  leaves, treedef = jax.tree.flatten(tree)
  out = list(leaves)
  groups = {}
  for i, x in enumerate(leaves):
    if x.size <= PACK_LIMIT:
      groups.setdefault(jnp.dtype(x.dtype), []).append(i)
    else:
      out[i] = jax.lax.psum(x, axis_name)
  for idx in groups.values():
    if len(idx) == 1:
      out[idx[0]] = jax.lax.psum(leaves[idx[0]], axis_name)
      continue
    flat = jax.lax.psum(jnp.concatenate([jnp.ravel(leaves[i]) for i in idx]), axis_name)
    start = 0
    for i in idx:
      n = leaves[i].size
      out[i] = flat[start : start + n].reshape(leaves[i].shape)
      start += n
  return jax.tree.unflatten(treedef, out)


def _place(tree, sharding):
  """Places a host tree at ``sharding`` (one sharding, or a tree of them). On several
  processes, every process passes the same global values and only its own devices'
  shards are taken; leaves that already are ``jax.Array``s are left as they are."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  one = lambda x, sh: (  # noqa: E731
    x
    if isinstance(x, jax.Array)
    else jax.make_array_from_callback(np.shape(x), sh, lambda idx, x=x: np.asarray(x)[idx])
  )
  if isinstance(sharding, jax.sharding.Sharding):
    return jax.tree.map(lambda x: one(x, sharding), tree)
  return jax.tree.map(one, tree, sharding)


def _own_copy(x):
  """A strongly typed copy of ``x`` that the donating round may free."""
  if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
    return x
  return jnp.array(x, dtype=jnp.asarray(x).dtype, copy=True)


def client_mesh(
  num_devices: Optional[int] = None,
  axis_name: str = "clients",
  devices=None,
  model: int = 1,
  model_axis: str = "model",
) -> jax.sharding.Mesh:
  """A mesh over ``num_devices`` devices (default: all) with an Auto client axis.

  ``model > 1`` gives a 2-D mesh ``(num_devices // model, model)`` with axes
  ``(axis_name, model_axis)``: each client group of ``model`` devices holds one replica,
  its parameters and optimizer states sharded FSDP-style over ``model_axis``
  (:func:`model_spec`), for models that do not fit one device.
  """
  devices = list(devices if devices is not None else jax.devices())
  n = len(devices) if num_devices is None else num_devices
  if not 1 <= n <= len(devices):
    raise ValueError(f"num_devices={n} but {len(devices)} devices are available.")
  if not isinstance(model, (int, np.integer)) or model < 1 or n % model:
    raise ValueError(
      f"model={model!r} must be a positive integer dividing the {n} devices "
      "(the mesh is clients x model)."
    )
  auto = jax.sharding.AxisType.Auto
  if model == 1:
    return jax.make_mesh((n,), (axis_name,), axis_types=(auto,), devices=devices[:n])
  return jax.make_mesh(
    (n // model, model), (axis_name, model_axis), axis_types=(auto, auto), devices=devices[:n]
  )


def model_spec(shape, size: int, axis: Optional[str]) -> tuple:
  """The FSDP placement of one array of ``shape`` over a model axis of ``size`` devices:
  its largest dimension divisible by ``size`` is split (the first such, on ties); an
  array with none (scalars, odd sizes) is replicated. Parameters and their optimizer
  moments share shapes, hence placements."""
  spec = [None] * len(shape)
  if axis is None or size <= 1:
    return tuple(spec)
  best = None
  for i, d in enumerate(shape):
    if d % size == 0 and d >= size and (best is None or d > shape[best]):
      best = i
  if best is not None:
    spec[best] = axis
  return tuple(spec)


def _stack(tree, n: int):
  """``tree`` with every leaf repeated along a new leading axis of length ``n`` (one row per
  client)."""
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), tree)


def _keep_active(active, new, old):
  """Per-client trees (leading axis k): ``new`` for the clients taking part (``active``),
  ``old`` for the others."""

  def one(n, o):
    mask = active.reshape((-1,) + (1,) * (jnp.ndim(n) - 1))
    return jnp.where(mask, n, o)

  return jax.tree.map(one, new, old)


class ClientOutput(NamedTuple):
  """What one device's k clients bring back from a round (leading axis k everywhere)."""

  start: Any  # x_i at the start: x_t, or the client's own model when streaming
  delta: Any  # Delta_i = start - x_i after the z steps
  inner_state: Any  # new inner states; a client not taking part keeps its old one
  noise_state: Any  # likewise the noise-injection states (None without noise)
  metrics: dict  # per client: loss, nonfinite_frac, inner_<measurement> (step means)


@dataclasses.dataclass(frozen=True)
class ClientPhase:
  r"""The clients' side of a round, for one device's k clients inside ``shard_map``:

  .. math::

      x_i \leftarrow x_t;\quad \text{repeat } z:\ x_i \leftarrow x_i +
      \mathrm{InnerUpdate}(g_i(x_i) + \xi_i);\qquad \Delta_i = x_t - x_i

  The z steps run in one ``lax.scan`` (``run_local``, from
  :func:`tailopt.local.make_local_run`): the per-client noise :math:`\xi_i` (optional, its
  own PRNG stream per client), the inner state carried from round to round (or a fresh
  ``inner.init(x_t)`` with ``reset_inner_state``), and the per-step non-finite check
  (``check_finite``). Streaming (``fragments``): each client starts from its own model
  instead of :math:`x_t`. A client with weight 0 keeps its inner and noise states.
  """

  run_local: Any  # (x, inner_state, noise_state, batches, round_index, step0) -> LocalResult
  inner: optax.GradientTransformation
  local_steps: int
  axis_name: str
  reset_inner_state: bool = False
  client_loop: str = "auto"  # or "vmap", "sequential"

  def __call__(
    self, params, local_params, inner_state, noise_state, batch, active, round_idx
  ) -> ClientOutput:
    ax = self.axis_name
    step0 = round_idx * self.local_steps
    k = jax.tree.leaves(batch)[0].shape[0]  # this device's clients (all, or the sampled)
    if local_params is None:
      x0 = jax.tree.map(lambda p: jax.lax.pcast(p, ax, to="varying"), params)
      in_x = None
    else:  # streaming: each client's own model
      x0, in_x = local_params, 0
    if self.reset_inner_state:
      fresh = self.inner.init(params)  # a fresh init, exactly as at the start of a run
      start_state = _stack(jax.tree.map(lambda a: jax.lax.pcast(a, ax, to="varying"), fresh), k)
    else:
      start_state = inner_state
    res = self.run_clients(x0, in_x, start_state, noise_state, batch, round_idx, step0)
    return ClientOutput(
      start=x0,
      delta=res.delta,
      inner_state=_keep_active(active, res.inner_state, inner_state),
      noise_state=_keep_active(active, res.noise_state, noise_state),
      metrics=res.metrics,
    )

  def run_clients(self, x0, in_x, start_state, noise_state, batch, round_idx, step0):
    """The device's k clients' local runs: one client runs unbatched (no vmap), several
    run vmapped (``client_loop='vmap'``) or one after another (``'sequential'``, the
    memory of one client's activations). ``in_x``: 0 when every client has its own
    ``x0`` (leading axis k), None when they share it."""
    k = jax.tree.leaves(batch)[0].shape[0]
    if k == 1 or resolve_client_loop(self.client_loop, x0, in_x) == "sequential":

      def one(args):
        x, s, ns, b = args
        return self.run_local(x0 if in_x is None else x, s, ns, b, round_idx, step0)

      xs = None if in_x is None else x0
      if k == 1:
        sq = lambda t: jax.tree.map(lambda a: a[0], t)  # noqa: E731
        out = one((sq(xs), sq(start_state), sq(noise_state), sq(batch)))
        return jax.tree.map(lambda a: a[None], out)
      return jax.lax.map(one, (xs, start_state, noise_state, batch))
    return jax.vmap(self.run_local, in_axes=(in_x, 0, 0, 0, None, None))(
      x0, start_state, noise_state, batch, round_idx, step0
    )


# Per-client model size (bytes) from which ``client_loop='auto'`` runs a device's clients
# one after another. Measured on 8 CPU devices (fedavg, 5-layer MLPs, 8 clients per device
# against 1, paired per-example ratios): vmap is faster at 133 KB of weights per client
# (0.78 against 1.13), the sequential loop from 400 KB (0.92 against 1.01; at 4.7 MB 1.02
# against 1.18): batched clients stop sharing the cache once their weights are large.
AUTO_SEQUENTIAL_BYTES = 256 << 10


def resolve_client_loop(client_loop: str, x0, in_x) -> str:
  """``'vmap'`` or ``'sequential'``: ``client_loop`` itself, or for ``'auto'`` the one the
  model size favours (:data:`AUTO_SEQUENTIAL_BYTES` per client). ``x0``: the clients'
  start params, shared (``in_x`` None) or one row per client (``in_x`` 0). Both loops
  give the same numbers; only speed and activation memory differ."""
  if client_loop != "auto":
    return client_loop
  leaves = jax.tree.leaves(x0)
  per_client = sum(x.size * x.dtype.itemsize for x in leaves)
  if in_x is not None and leaves:
    per_client //= leaves[0].shape[0]
  return "sequential" if per_client >= AUTO_SEQUENTIAL_BYTES else "vmap"


class ClientWeights(NamedTuple):
  r"""The aggregation weights of one device's k clients (inside ``shard_map``): :math:`w_i`
  is 1, the client's example count, or 0 for a client not taking part this round."""

  w: jax.Array  # (k,) float32 w_i
  active: jax.Array  # (k,) bool, w_i > 0
  total: jax.Array  # sum_i w_i over all clients of all devices (1 when all are 0)
  participants: jax.Array  # number of active clients over all devices (float32)

  @classmethod
  def over(cls, w, active, axis_name: str) -> ClientWeights:
    """Both totals in one ``psum`` (each collective is a rendezvous of the devices)."""
    total_w, n_active = jax.lax.psum(
      jnp.stack([jnp.sum(w), jnp.sum(active.astype(jnp.float32))]), axis_name
    )
    return cls(w, active, jnp.where(total_w > 0, total_w, 1.0), n_active)


class Aggregator(Protocol):
  r"""How the clients' pseudo-gradients cross the client axis (inside ``shard_map``):

  .. math::

      \Delta_t = \frac{\sum_i w_i \hat\Delta_i}{\sum_i w_i}

  where :math:`\hat\Delta_i` is what node i sends (:math:`\Delta_i` itself, or its
  compressed payload, decoded). Every device ends with the same :math:`\Delta_t`."""

  def init(self, params, num_clients: int) -> Any:
    """The per-client communication state (leading axis ``num_clients``), or None."""

  def aggregate(self, deltas, state, weights: ClientWeights, like, key) -> tuple:
    """``(Delta_t, state, bytes_up)``: the weighted mean over all clients of ``deltas``
    (this device's k clients' Deltas, leading axis k), shaped and typed like ``like``; the
    clients' new state (kept for those not taking part); the bytes one node sends."""


@dataclasses.dataclass(frozen=True)
class MeanAggregator:
  r"""The plain weighted mean: each device forms :math:`\sum_{i \in \text{dev}} w_i \Delta_i`
  in float32 (or wider), one packed ``psum`` over the client axis adds the devices'
  (:func:`_psum_packed`), and a product with :math:`1 / \sum_i w_i` gives
  :math:`\Delta_t`. What crosses: each :math:`\Delta_i` in its accumulation dtype."""

  axis_name: str

  def init(self, params, num_clients: int):
    return None

  def aggregate(self, deltas, state, weights: ClientWeights, like, key):
    summed = _psum_packed(_weighted_sums(deltas, weights.w), self.axis_name)
    return _divide(summed, weights.total, like), state, _delta_bytes(deltas, like)


def _weighted_sums(deltas, w):
  r"""This device's :math:`\sum_{i \in \text{dev}} w_i \Delta_i` per leaf (leading axis k
  contracted), in float32 or wider (float64)."""

  def wsum(x):
    acc = jnp.promote_types(x.dtype, jnp.float32)
    return jnp.tensordot(w.astype(acc), x.astype(acc), axes=1)

  return jax.tree.map(wsum, deltas)


def _divide(summed, total_w, like):
  """The weighted mean from the summed tree, in the dtypes of ``like``. A product with the
  scalar reciprocal (not a division: XLA keeps a division in a pass of its own) fuses into
  the outer rule's and the norms' reads of the mean."""
  return jax.tree.map(
    lambda t, p: (t * (1.0 / total_w.astype(t.dtype))).astype(p.dtype), summed, like
  )


def _delta_bytes(deltas, like):
  """What one node sends of the plain mean: each Delta (shaped like ``like``) in its
  accumulation dtype (float32, or wider)."""
  sent = jax.tree.map(
    lambda x, p: jax.ShapeDtypeStruct(jnp.shape(p), jnp.promote_types(x.dtype, jnp.float32)),
    deltas,
    like,
  )
  return compression.payload_bytes(sent)


@dataclasses.dataclass(frozen=True)
class CompressedAggregator:
  r"""The compressed gather: node i sends :math:`C(\Delta_i)` (with error feedback,
  :math:`C(\Delta_i + e_i)` and keeps :math:`e_i \leftarrow \Delta_i + e_i - \hat C(\cdot)`
  in its state); the payloads (codes and scales) are all-gathered over the client axis and
  every device decodes and averages them, :math:`\Delta_t = \sum_i w_i \hat C(\Delta_i) /
  \sum_i w_i`, in float32. Node i's randomness (stochastic rounding) is ``fold_in(key, i)``.
  """

  axis_name: str
  compressor: compression.Compressor

  def init(self, params, num_clients: int):
    return _stack(self.compressor.init(params), num_clients)

  def aggregate(self, deltas, state, weights: ClientWeights, like, key):
    ax, comp = self.axis_name, self.compressor
    k = jax.tree.leaves(deltas)[0].shape[0]
    first = jax.lax.axis_index(ax) * k
    keys = jax.vmap(lambda i: jax.random.fold_in(key, first + i))(jnp.arange(k))
    payload, new_state = jax.vmap(comp.compress)(deltas, state, keys)
    per_node = compression.payload_bytes(payload) // k
    # What crosses the axis: the codes and scales, gathered replicated (invariant).
    gathered = jax.lax.all_gather(payload, ax, tiled=True, to="invarying")
    w_all = jax.lax.all_gather(weights.w, ax, tiled=True, to="invarying")
    shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(jnp.shape(p), jnp.float32), like)

    def add(total, xs):
      pay, wi = xs
      dec = comp.decompress(pay, shapes)
      return jax.tree.map(lambda t, d: t + wi * d, total, dec), None

    zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), like)
    total, _ = jax.lax.scan(add, zeros, (gathered, w_all))
    mean = jax.tree.map(lambda t, p: (t / weights.total).astype(p.dtype), total, like)
    return mean, _keep_active(weights.active, new_state, state), per_node


@dataclasses.dataclass(frozen=True)
class Broadcast:
  r"""The server's update as the nodes receive it: :math:`\hat u_t = D(C(u_t))` through
  the stateless ``down_compressor`` (every replica applies the same decoded update), or
  :math:`u_t` itself. ``__call__`` returns ``(received, bytes_down)``."""

  down_compressor: Optional[compression.Compressor] = None

  def __call__(self, updates, key):
    down = self.down_compressor
    if down is None:
      return updates, compression.payload_bytes(updates)
    payload, _ = down.compress(updates, down.init(updates), key)
    shapes = jax.tree.map(lambda u: jax.ShapeDtypeStruct(jnp.shape(u), u.dtype), updates)
    return down.decompress(payload, shapes), compression.payload_bytes(payload)


@dataclasses.dataclass(frozen=True)
class ServerPhase:
  r"""The server's step on the aggregated pseudo-gradient, replicated on every device after
  the reduction (as in data-parallel training), or on each device's shard of the
  coordinates (:class:`ShardedServerSchedule`):

  .. math::

      u_t, s_{t+1} = \mathrm{OuterUpdate}(\Delta_t, s_t, x_t;\ t)

  The outer rule gets the round index as ``round_index`` (its schedules read it). The
  caller applies :math:`x_{t+1} = x_t + \hat u_t` after the :class:`Broadcast`."""

  outer: optax.GradientTransformation

  def init(self, params):
    return self.outer.init(params)

  def __call__(self, delta, state, params, round_idx):
    outer = optax.with_extra_args_support(self.outer)
    return outer.update(delta, state, params, round_index=round_idx)


class SyncResult(NamedTuple):
  """One synchronization of a set of leaves (:meth:`RoundParts.sync`)."""

  params: Any  # x_{t+1} = x_t + u_t on those leaves
  outer_state: Any  # s_{t+1}
  comm_state: Any  # the aggregator's per-client state
  updates: Any  # u_t as the nodes received it
  delta: Any  # Delta_t
  bytes_up: Any  # what one node sends
  bytes_down: Any  # and what it receives


class ScheduleOutput(NamedTuple):
  """What a synchronization schedule hands back to the device round."""

  params: Any  # x_{t+1}
  outer_state: Any
  comm_state: Any
  local_params: Any  # the clients' own models (streaming), else None
  metrics: dict  # outer_<measurement>, and delta_norm / update_norm when computed here
  norm_shares: list  # this device's shares of |Delta_t|^2 and |u_t|^2 to psum, or []
  bytes_up: Any  # bytes one participating node sends this round
  bytes_down: Any  # and receives
  bytes_cumulative: jax.Array  # bytes up + down of one node through this round


class Schedule(Protocol):
  """Which leaves a round synchronizes, and the states that takes."""

  def init(self, params, num_clients: int, aggregator: Aggregator, server: ServerPhase):
    """``(outer_state, comm_state, local_params)`` of a new run."""

  def outer_specs(self, params, server: ServerPhase, axis_name: str):
    """The ``PartitionSpec`` of every outer-state leaf over the client axis, or None: the
    outer state is replicated over it (split over a model axis, if any)."""

  def __call__(
    self, parts, clients, params, outer_state, comm_state, local_params, weights, round_idx, keys
  ) -> ScheduleOutput:
    """Synchronizes this round's leaves from the ``clients``' output
    (:meth:`RoundParts.sync`); ``weights``: :class:`ClientWeights`; ``keys``: (the
    aggregator's, the broadcast's)."""


@dataclasses.dataclass(frozen=True)
class FullSchedule:
  r"""Every round synchronizes every leaf: :math:`\Delta_t` from all the clients'
  :math:`\Delta_i = x_t - x_i`, one outer state, :math:`x_{t+1} = x_t + \hat u_t`."""

  def init(self, params, num_clients: int, aggregator: Aggregator, server: ServerPhase):
    """``(outer state, the aggregator's per-client state, None)``: no per-client models."""
    return server.init(params), aggregator.init(params, num_clients), None

  def outer_specs(self, params, server: ServerPhase, axis_name: str):
    return None  # replicated

  def __call__(
    self, parts, clients, params, outer_state, comm_state, local_params, weights, round_idx, keys
  ) -> ScheduleOutput:
    out = parts.sync(clients.delta, params, outer_state, comm_state, weights, round_idx, keys)
    ax, n = parts.axis_name, parts.num_devices
    return ScheduleOutput(
      params=out.params,
      outer_state=out.outer_state,
      comm_state=out.comm_state,
      local_params=None,
      metrics=clipping.measurements(out.outer_state, "outer_"),
      # Each device squares 1/n of the replicated Delta_t and u_t; the round's psum adds.
      norm_shares=[_split_sq(out.delta, ax, n), _split_sq(out.updates, ax, n)],
      bytes_up=out.bytes_up,
      bytes_down=out.bytes_down,
      # Static per round, so a closed form of the round index: nothing to carry or restore.
      bytes_cumulative=(round_idx + 1).astype(jnp.float32) * float(out.bytes_up + out.bytes_down),
    )


@dataclasses.dataclass(frozen=True)
class FragmentSchedule:
  r"""Streaming synchronization: the parameter leaves are split into F fragments
  (:func:`fragment_ids`) and round t synchronizes fragment :math:`f = t \bmod F` only, so a
  round sends 1/F of the model. Clients keep their own models :math:`x_i` between syncs:

  .. math::

      \Delta_i^{(f)} = x_t^{(f)} - x_i^{(f)},\qquad
      x_{t+1}^{(f)} = x_t^{(f)} + \hat u_t^{(f)},\qquad x_i^{(f)} \leftarrow x_{t+1}^{(f)}

  through the round's aggregator, server phase and broadcast (:meth:`RoundParts.sync`) on
  the fragment's leaves; the outer rule and the aggregator keep one state per fragment. The
  F branches are one ``lax.switch`` on the round index."""

  fragments: int

  def init(self, params, num_clients: int, aggregator: Aggregator, server: ServerPhase):
    """``(one outer state per fragment, one aggregator state per fragment (None for the
    plain mean), the clients' own models: x_0 each)``."""
    ids = fragment_ids(params, self.fragments)
    trees = [_select(params, ids, f) for f in range(self.fragments)]
    outer_state = tuple(server.init(tree) for tree in trees)
    comm_state = None
    if not isinstance(aggregator, MeanAggregator):
      comm_state = tuple(aggregator.init(tree, num_clients) for tree in trees)
    return outer_state, comm_state, _stack(params, num_clients)

  def outer_specs(self, params, server: ServerPhase, axis_name: str):
    return None  # replicated

  def __call__(
    self, parts, clients, params, outer_state, comm_state, local_params, weights, round_idx, keys
  ) -> ScheduleOutput:
    ids = fragment_ids(params, self.fragments)
    frag_bytes = {}  # fragment -> bytes up + down, static, filled while tracing

    def branch(f):
      def run(outer_states, comm_st):
        # Delta of the fragment since its last sync, x_global - x_local.
        x_end = jax.tree.map(lambda a, d: a - d, clients.start, clients.delta)
        deltas = _select(jax.tree.map(lambda g, x: g[None] - x, params, x_end), ids, f)
        like = _select(params, ids, f)
        c_in = None if comm_st is None else comm_st[f]
        out = parts.sync(deltas, like, outer_states[f], c_in, weights, round_idx, keys)
        outer_states = tuple(out.outer_state if g == f else o for g, o in enumerate(outer_states))
        if comm_st is not None:
          comm_st = tuple(out.comm_state if g == f else c for g, c in enumerate(comm_st))
        frag_bytes[f] = out.bytes_up + out.bytes_down
        metrics = dict(
          clipping.measurements(outer_states[f], "outer_"),
          delta_norm=clipping.global_norm(out.delta),
          update_norm=clipping.global_norm(out.updates),
        )
        up, down = jnp.float32(out.bytes_up), jnp.float32(out.bytes_down)
        return _merge(params, out.params, ids, f), outer_states, comm_st, metrics, up, down

      return run

    new_params, outer_state, comm_state, metrics, up, down = jax.lax.switch(
      round_idx % self.fragments,
      [branch(f) for f in range(self.fragments)],
      outer_state,
      comm_state,
    )
    new_local = self.restart(clients, local_params, new_params, ids, weights.active, round_idx)
    # Bytes through this round: a closed form of the round index (nothing to carry).
    per = np.asarray([frag_bytes[f] for f in range(self.fragments)], np.float64)
    prefix = jnp.asarray(np.concatenate([[0.0], np.cumsum(per)]), jnp.float32)
    n, nf = round_idx + 1, self.fragments
    cumulative = (n // nf).astype(jnp.float32) * float(per.sum()) + prefix[n % nf]
    return ScheduleOutput(
      new_params, outer_state, comm_state, new_local, metrics, [], up, down, cumulative
    )

  def restart(self, clients, local_params, new_params, ids, active, round_idx):
    """The clients' own models after the round: each continues from its own (a client not
    taking part keeps its old one), and the synchronized fragment restarts from the new
    global model."""
    x_end = jax.tree.map(lambda a, d: a - d, clients.start, clients.delta)
    x_end = _keep_active(active, x_end, local_params)
    f_now = round_idx % self.fragments
    leaves, treedef = jax.tree.flatten(x_end)
    g_leaves = jax.tree.leaves(new_params)
    return jax.tree.unflatten(
      treedef,
      [
        jnp.where(f_now == i, jnp.broadcast_to(g, x.shape).astype(x.dtype), x)
        for x, g, i in zip(leaves, g_leaves, ids)
      ],
    )


@dataclasses.dataclass(frozen=True)
class ShardedServerSchedule:
  r"""Every round synchronizes every leaf, as :class:`FullSchedule`, with the outer rule's
  state and step split over the n devices of the client axis (``shard_outer``; valid for an
  elementwise outer rule, one whose update and state at a coordinate depend only on that
  coordinate and on scalars such as a step count). Device j holds shard j of every leaf
  (:mod:`tailopt.shard_layout`) and computes

  .. math::

      \Delta_t^{(j)} = \Big[\textstyle\sum_i w_i \Delta_i\Big]^{(j)} / \sum_i w_i
      \quad(\text{reduce-scatter}),\qquad
      u_t^{(j)}, s_{t+1}^{(j)} = \mathrm{OuterUpdate}(\Delta_t^{(j)}, s_t^{(j)}, x_t^{(j)}),

  :math:`x_{t+1}^{(j)} = x_t^{(j)} + u_t^{(j)}`, and an all-gather of the shards gives every
  device :math:`x_{t+1}`: the same arithmetic as the replicated step, each coordinate
  computed once instead of n times, and the outer state's per-coordinate leaves stored
  split ``P(axis)`` (its scalars replicated). The plain mean only (no compressor, no
  ``down_compressor``, no fragments, no model axis). The bytes metrics are those of the
  replicated round (a node sends its Delta and receives the update)."""

  num_devices: int

  def init(self, params, num_clients: int, aggregator: Aggregator, server: ServerPhase):
    """``(the outer state on the flat padded layout, None, None)``."""
    return server.init(shard_layout.flat(params, self.num_devices)), None, None

  def outer_specs(self, params, server: ServerPhase, axis_name: str):
    return shard_layout.state_specs(server.init, params, self.num_devices, axis_name)

  def __call__(
    self, parts, clients, params, outer_state, comm_state, local_params, weights, round_idx, keys
  ) -> ScheduleOutput:
    ax, n = parts.axis_name, self.num_devices
    summed = shard_layout.scatter_sum(_weighted_sums(clients.delta, weights.w), ax, n)
    like = shard_layout.local_shard(params, ax, n)
    delta = _divide(summed, weights.total, like)
    updates, outer_state = parts.server(delta, outer_state, like, round_idx)
    _check_replicated(outer_state, self.outer_specs(params, parts.server, ax), ax)
    new_params = shard_layout.gather(optax.apply_updates(like, updates), params, ax, n)
    mask = shard_layout.valid(updates, params, ax, n)
    sq = lambda t: sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in t)  # noqa: E731
    up = _delta_bytes(clients.delta, params)
    down = compression.payload_bytes(
      jax.tree.map(lambda u, p: jax.ShapeDtypeStruct(jnp.shape(p), u.dtype), updates, params)
    )
    return ScheduleOutput(
      params=new_params,
      outer_state=outer_state,
      comm_state=None,
      local_params=None,
      metrics=clipping.measurements(outer_state, "outer_"),
      norm_shares=[
        sq(jax.tree.leaves(delta)),  # the padding of Delta is 0
        sq(jax.tree.leaves(jax.tree.map(lambda u, m: jnp.where(m, u, 0), updates, mask))),
      ],
      bytes_up=up,
      bytes_down=down,
      bytes_cumulative=(round_idx + 1).astype(jnp.float32) * float(up + down),
    )


def _check_replicated(outer_state, specs, axis_name: str):
  """Raises ``ValueError`` (one line) if an outer-state leaf meant to be replicated (a
  scalar) came out of the sharded step depending on the device's shard: the rule reads
  across coordinates (e.g. clip statistics of its input) and is not elementwise."""
  spec_leaves = jax.tree.leaves(specs, is_leaf=lambda s: isinstance(s, P))
  for (path, x), spec in zip(jax.tree_util.tree_leaves_with_path(outer_state), spec_leaves):
    if spec == P() and axis_name in local_lib._varying_axes(x):
      raise ValueError(
        f"outer state leaf {jax.tree_util.keystr(path)} depends on the coordinates of the "
        "device's shard (a statistic over the update?): the outer rule is not elementwise; "
        "build the round with shard_outer=False."
      )


@dataclasses.dataclass(frozen=True)
class Participation:
  r"""Client sampling: each round, ``m`` of the M clients are drawn uniformly without
  replacement (``m=None``: all take part); the others get weight 0, so they neither count in
  the mean nor change their states. Only the sampled clients compute: :attr:`padded` of
  them (m rounded up to a multiple of the client-axis devices; the extra ones unsampled,
  of weight 0) have their states and batches gathered before the device round and
  scattered back after it."""

  num_clients: int
  m: Optional[int]
  num_devices: int

  @property
  def padded(self) -> int:
    """How many clients compute each round."""
    if self.m is None:
      return self.num_clients
    return min(self.num_clients, -(-self.m // self.num_devices) * self.num_devices)

  def sample(self, key, weights):
    """``(weights, idx)``: the weights with the unsampled clients' set to 0, and the sorted
    indices of the clients that compute (None when all of them do)."""
    if self.m is None:
      return weights, None
    perm = jax.random.permutation(key, self.num_clients)
    mask = jnp.zeros((self.num_clients,), jnp.float32).at[perm[: self.m]].set(1.0)
    weights = weights * mask
    if self.padded == self.num_clients:
      return weights, None
    return weights, jnp.sort(perm[: self.padded])

  def masks(self, rng, rounds: int) -> np.ndarray:
    """``(rounds, M)`` booleans: the clients drawn in each of the next ``rounds`` rounds
    from a state's ``rng``, exactly as the round draws them (all True without sampling).
    On the host, for a simulated clock that needs who took part."""
    if self.m is None:
      return np.ones((rounds, self.num_clients), bool)
    out = np.zeros((rounds, self.num_clients), bool)
    for r in range(rounds):
      rng, key = jax.random.split(rng)
      out[r, np.asarray(jax.random.permutation(key, self.num_clients))[: self.m]] = True
    return out


@dataclasses.dataclass(frozen=True)
class RoundParts:
  """The named pieces of a round, as :func:`build_round` assembles them."""

  client: ClientPhase
  aggregator: Aggregator  # MeanAggregator or CompressedAggregator
  server: ServerPhase
  broadcast: Broadcast
  schedule: Schedule  # FullSchedule, or FragmentSchedule (streaming)
  sampling: Participation
  mesh: jax.sharding.Mesh
  axis_name: str

  @property
  def num_devices(self) -> int:
    """The devices on the client axis."""
    return self.mesh.shape[self.axis_name]

  def sync(self, deltas, like, outer_state, comm_state, weights, round_idx, keys) -> SyncResult:
    r"""Synchronizes the leaves of ``like`` from the clients' ``deltas``: the aggregate
    :math:`\Delta_t`, the server phase's :math:`u_t`, the broadcast :math:`\hat u_t`, and
    :math:`x_{t+1} = x_t + \hat u_t`. ``keys``: (the aggregator's, the broadcast's)."""
    up_key, down_key = keys
    delta, comm_state, up = self.aggregator.aggregate(deltas, comm_state, weights, like, up_key)
    updates, outer_state = self.server(delta, outer_state, like, round_idx)
    updates, down = self.broadcast(updates, down_key)
    new = optax.apply_updates(like, updates)
    return SyncResult(new, outer_state, comm_state, updates, delta, up, down)


def _device_round(
  parts: RoundParts,
  params,
  outer_state,
  inner_state,
  noise_state,
  batch,
  w,
  round_idx,
  comm_state,
  local_params,
  ckey,
):
  """The round on one device's k clients, the body of ``shard_map`` (manual over the client
  axis): the client phase, the weights' totals, the schedule's synchronization (aggregate,
  server phase, broadcast), and the metrics: the clients' means over the active ones and
  the norms' shares in one ``psum``."""
  ax = parts.axis_name
  active = w > 0
  clients = parts.client(params, local_params, inner_state, noise_state, batch, active, round_idx)
  weights = ClientWeights.over(w, active, ax)
  keys = (ckey, jax.random.fold_in(ckey, 2**31 - 1))  # the broadcast's: not a client index
  synced = parts.schedule(
    parts, clients, params, outer_state, comm_state, local_params, weights, round_idx, keys
  )
  names = sorted(clients.metrics)
  local = [jnp.sum(jnp.where(active, clients.metrics[k], 0.0)) for k in names]
  summed = jax.lax.psum(jnp.stack(local + synced.norm_shares).astype(jnp.float32), ax)
  metrics = {k: summed[i] / jnp.maximum(weights.participants, 1.0) for i, k in enumerate(names)}
  if synced.norm_shares:
    metrics.update(delta_norm=jnp.sqrt(summed[-2]), update_norm=jnp.sqrt(summed[-1]))
  metrics.update(
    synced.metrics,
    participants=weights.participants,
    bytes_up=jnp.float32(synced.bytes_up),
    bytes_down=jnp.float32(synced.bytes_down),
    bytes_cumulative=synced.bytes_cumulative,
  )
  return (
    synced.params,
    synced.outer_state,
    clients.inner_state,
    clients.noise_state,
    synced.comm_state,
    synced.local_params,
    metrics,
  )


def _round_step(device_round, sampling: Participation, pin, state: RoundState, batch, weights):
  """One round on the global arrays: draws the round's clients (:class:`Participation`),
  runs ``device_round`` (the ``shard_map`` of :func:`_device_round`) on those that compute,
  and puts their new states back. ``pin``: the state's shardings (with a model axis, so
  every part stays on its placement), or None."""
  rng, key = jax.random.split(state.rng)
  weights, idx = sampling.sample(key, weights)
  ckey = jax.random.fold_in(key, 1)  # compression's randomness (stochastic rounding)
  per_client = (state.inner_state, state.noise_state, state.comm_state, state.local_params)
  ins = per_client + (batch, weights)
  if idx is not None:
    # Only the sampled clients compute: gather their states and batches (padded to a
    # multiple of the devices with unsampled clients of weight 0, which stay unchanged),
    # run them, scatter the new states back.
    ins = jax.tree.map(lambda x: x[idx], ins)
  inner_s, noise_s, comm_s, local_s, b, w = ins
  params, outer_state, *outs, metrics = device_round(
    state.params, state.outer_state, inner_s, noise_s, b, w, state.round, comm_s, local_s, ckey
  )
  outs = tuple(outs)
  if idx is not None:
    outs = jax.tree.map(lambda full, part: full.at[idx].set(part), per_client, outs)
  inner_state, noise_state, comm_state, local_params = outs
  new_state = RoundState(
    params=params,
    outer_state=outer_state,
    inner_state=inner_state,
    noise_state=noise_state,
    round=state.round + 1,
    rng=rng,
    comm_state=comm_state,
    local_params=local_params,
  )
  if pin is not None:
    new_state = jax.lax.with_sharding_constraint(new_state, pin(new_state))
  return new_state, metrics


def _compile_round(parts: RoundParts, donate: bool):
  """The jitted ``step(state, batch, weights)`` (one round) and ``steps(state, batches,
  weights)`` (R rounds in one ``lax.scan``), donating the state when ``donate``."""
  ax, mesh = parts.axis_name, parts.mesh
  rep, cl = P(), P(ax)
  pin = None
  if _model_axis(mesh, ax) is not None:
    pin = functools.partial(_state_shardings, mesh, ax)

  def step(state: RoundState, batch, weights):
    # The outer state's specs follow the params' shapes (split over the client axis with
    # shard_outer, else replicated). Manual over the client axis only: a model axis stays
    # automatic (GSPMD shards the inner steps, the reduction and the outer rule along the
    # parameters' placement).
    outer = parts.schedule.outer_specs(state.params, parts.server, ax) or rep
    device_round = jax.shard_map(
      functools.partial(_device_round, parts),
      mesh=mesh,
      in_specs=(rep, outer, cl, cl, cl, cl, rep, cl, cl, rep),
      out_specs=(rep, outer, cl, cl, cl, cl, rep),
      check_vma=True,
      axis_names={ax},
    )
    return _round_step(device_round, parts.sampling, pin, state, batch, weights)

  def steps(state: RoundState, batches, weights):
    """R rounds in one ``lax.scan``: batches and weights carry a leading round axis."""

    def body(st, xs):
      b, w = xs
      return step(st, b, w)

    return jax.lax.scan(body, state, (batches, weights))

  opts = dict(donate_argnums=(0,) if donate else (), compiler_options=compiler_options(mesh))
  return jax.jit(step, **opts), jax.jit(steps, **opts)


def compiler_options(mesh) -> Optional[dict]:
  """XLA options for a program on ``mesh``'s devices. On CPU, copy insertion with region
  analysis: without it XLA copies every weight matrix of a ``lax.scan`` carry at the top of
  each local step (it cannot prove the step's last read of ``x`` precedes the write of its
  update), an extra read and write of the model per step that a data-parallel loop, whose
  gradient all-reduce orders the two, does not pay. The arithmetic is unchanged."""
  if mesh.devices.flat[0].platform == "cpu":
    return {"xla_cpu_copy_insertion_use_region_analysis": True}
  return None


def _model_axis(mesh, axis_name: str) -> Optional[str]:
  """The mesh's model axis (parameters sharded over it), or None."""
  others = [a for a in mesh.axis_names if a != axis_name]
  return others[0] if others else None


def _placement(mesh, axis_name: str, tree, per_client: bool):
  """NamedShardings of a state subtree: per-client leaves split over the client axis
  (leading axis), model-sized dimensions over the model axis (:func:`model_spec`)."""
  model_axis = _model_axis(mesh, axis_name)
  size = mesh.shape[model_axis] if model_axis else 1

  def one(x):
    shape = tuple(x.shape)
    if per_client:
      return NamedSharding(mesh, P(axis_name, *model_spec(shape[1:], size, model_axis)))
    return NamedSharding(mesh, P(*model_spec(shape, size, model_axis)))

  return jax.tree.map(one, tree)


def _state_shardings(mesh, axis_name: str, state: RoundState, outer_specs=None) -> RoundState:
  """Where each part of a round state lives (see :func:`_placement`); ``outer_specs``: the
  outer state's ``PartitionSpec``\ s when it is split over the client axis (``shard_outer``)."""
  rep = NamedSharding(mesh, P())
  if outer_specs is None:
    outer = _placement(mesh, axis_name, state.outer_state, False)
  else:
    outer = jax.tree.map(
      lambda s: NamedSharding(mesh, s), outer_specs, is_leaf=lambda s: isinstance(s, P)
    )
  return RoundState(
    params=_placement(mesh, axis_name, state.params, False),
    outer_state=outer,
    inner_state=_placement(mesh, axis_name, state.inner_state, True),
    noise_state=_placement(mesh, axis_name, state.noise_state, True),
    round=rep,
    rng=rep,
    comm_state=_placement(mesh, axis_name, state.comm_state, True),
    local_params=_placement(mesh, axis_name, state.local_params, True),
  )


def _dtype(x):
  return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _check_params(params):
  """Raises ``ValueError`` naming the first parameter leaf that is not floating point
  (gradients, and so every rule, need real-valued parameters)."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if not jnp.issubdtype(_dtype(leaf), jnp.inexact):
      raise ValueError(
        f"params leaf {jax.tree_util.keystr(path)} has dtype {_dtype(leaf)}; tailopt trains "
        "floating-point parameters: cast it (e.g. x.astype(jnp.float32)) or keep it out "
        "of params (a constant in loss_fn or in the batch)."
      )


def _check_loss_fn(loss_fn, params, minibatch, has_aux: bool):
  """``loss_fn(params, minibatch)`` traced on shapes; raises one ``ValueError`` if it
  fails or does not return a scalar (and an aux with ``has_aux``)."""
  shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)
  try:
    out = jax.eval_shape(loss_fn, params, minibatch)
  except Exception as e:  # noqa: BLE001 -- any tracing error, re-raised in one line
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise ValueError(
      f"loss_fn(params, batch) fails on one client's minibatch (batch shapes "
      f"{shapes(minibatch)}, params shapes {shapes(params)}): {type(e).__name__}: {first}"
    ) from None
  if has_aux:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
      raise ValueError(
        "has_aux=True but loss_fn returned a single value; return (loss, aux) or build the "
        "round with has_aux=False."
      )
    out = out[0]
  if not (hasattr(out, "shape") and tuple(out.shape) == ()):
    got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
    raise ValueError(
      f"loss_fn must return a scalar (the mean loss of one minibatch); it returned {got}: "
      "reduce it, e.g. jnp.mean(...)"
      + (", or pass has_aux=True for (loss, aux)." if isinstance(out, (tuple, list)) else ".")
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Round:
  """A compiled TailOPT round. Call it as ``state, metrics = round(state, batch)``.

  Built by :func:`build_round`, by keyword: the settings it was built with, its named
  pieces (``parts``: client phase, aggregator, server phase, broadcast, schedule,
  sampling) and the jitted programs ``compiled_step`` (one round) and ``compiled_steps``
  (R rounds, :meth:`multi`)."""

  loss_fn: Any
  method: Method
  local_steps: int
  num_clients: int
  mesh: jax.sharding.Mesh
  axis_name: str = "clients"
  reset_inner_state: bool = False
  participation: Optional[int] = None
  noise: Optional[optax.GradientTransformation] = None
  has_aux: bool = False
  donate: bool = True
  compressor: Optional[compression.Compressor] = None
  down_compressor: Optional[compression.Compressor] = None
  fragments: Optional[int] = None
  client_loop: str = "auto"
  check_finite: bool = True
  shard_outer: bool = False
  parts: RoundParts = dataclasses.field(repr=False, compare=False)
  compiled_step: Any = dataclasses.field(repr=False, compare=False)
  compiled_steps: Any = dataclasses.field(repr=False, compare=False)
  # Batch signatures whose loss has been checked (see _check_loss), so a call checks once.
  checked_batches: set = dataclasses.field(default_factory=set, repr=False, compare=False)

  @property
  def _step(self):
    """The jitted one-round program (``compiled_step``), e.g. to ``.lower()`` it."""
    return self.compiled_step

  @property
  def _steps(self):
    """The jitted R-round program (``compiled_steps``)."""
    return self.compiled_steps

  @property
  def clients_per_device(self) -> int:
    return self.num_clients // self.mesh.shape[self.axis_name]

  @property
  def model_axis(self) -> Optional[str]:
    """The mesh's model axis (parameters sharded over it), or None."""
    return _model_axis(self.mesh, self.axis_name)

  def _shardings(self):
    rep = NamedSharding(self.mesh, P())
    cl = NamedSharding(self.mesh, P(self.axis_name))
    return rep, cl

  def placement(self, tree, per_client: bool):
    """NamedShardings of a state subtree: per-client leaves split over the client axis
    (leading axis), model-sized dimensions over the model axis (:func:`model_spec`)."""
    return _placement(self.mesh, self.axis_name, tree, per_client)

  def place_clients(self, tree):
    """Places a host tree of per-client values (leading axis ``num_clients``, e.g. inner
    states from a :class:`tailopt.ClientStateStore`) where the round keeps them."""
    return _place(tree, self.placement(tree, True))

  def state_shardings(self, state: RoundState) -> RoundState:
    """Where each part of a round state lives (see :meth:`placement`; with ``shard_outer``
    the outer state's per-coordinate leaves are split over the client axis)."""
    parts = self.parts
    specs = parts.schedule.outer_specs(state.params, parts.server, self.axis_name)
    return _state_shardings(self.mesh, self.axis_name, state, specs)

  def _build_state(self, params, seed) -> RoundState:
    c, parts = self.num_clients, self.parts
    inner_state = _stack(self.method.inner.init(params), c)
    noise_state = None
    if self.noise is not None:
      base = self.noise.init(params)
      noise_state = jax.vmap(lambda i: noise_lib.fold_in_client(base, i))(jnp.arange(c))
    # One outer state (and aggregator state) per fragment when streaming.
    outer_state, comm_state, local_params = parts.schedule.init(
      params, c, parts.aggregator, parts.server
    )
    state = RoundState(
      params=params,
      outer_state=outer_state,
      inner_state=inner_state,
      noise_state=noise_state,
      round=jnp.zeros([], jnp.int32),
      rng=jax.random.key(seed),
      comm_state=comm_state,
      local_params=local_params,
    )
    # Strongly typed leaves: a weakly typed input (jnp.full(.., 0.1)) would come back
    # strong from the first round and force a second compile.
    return jax.tree.map(_own_copy, state)

  def participants(self, state: RoundState, rounds: int) -> np.ndarray:
    """``(rounds, num_clients)`` booleans: who takes part in the next ``rounds`` rounds
    from ``state`` (:meth:`Participation.masks`); call it before the state is donated."""
    rng = state.rng
    if not rng.is_fully_addressable:  # several processes: this process's replica of the key
      rng = rng.addressable_data(0)
    return self.parts.sampling.masks(rng, rounds)

  def init(self, params, seed: int = 0) -> RoundState:
    """The initial state: params and outer state replicated over the clients (split over
    a model axis), inner states one per client.

    Built by one jitted program straight into its shardings, so the peak memory is the
    state's own (each device materializes only its clients' shards), and every array is
    global: this works unchanged on several processes (``jax.distributed``), where every
    process passes the same ``params`` (e.g. initialized from the same seed). The state
    owns its buffers (the donating round never frees the caller's ``params``).
    """
    if jax.process_count() > 1:
      # Host values are taken as the same global value on every process.
      params = jax.tree.map(
        lambda x: (
          x
          if isinstance(x, jax.Array) and not x.is_fully_addressable
          else np.asarray(jax.device_get(x))
        ),
        params,
      )
    _check_params(params)
    abstract = jax.eval_shape(lambda p: self._build_state(p, seed), params)
    shardings = self.state_shardings(abstract)
    build = jax.jit(lambda p: self._build_state(p, seed), out_shardings=shardings)
    return build(params)

  def local_clients(self) -> np.ndarray:
    """The client slots whose batches this process places (all of them on one process):
    pass their rows to :meth:`shard_local_batch`."""
    idx = self._shardings()[1].addressable_devices_indices_map((self.num_clients,))
    rows = sorted({i for sl in idx.values() for i in range(*sl[0].indices(self.num_clients))})
    return np.asarray(rows, np.int64)

  def shard_batch(self, batch):
    """Places a (clients, z, ...) batch with its client axis split over the mesh.

    On several processes every process may pass the same global batch (only its own
    devices' rows are placed); to build only this process's clients' data, use
    :meth:`local_clients` and :meth:`shard_local_batch`.
    """
    self.check_batch(batch)
    return _place(batch, self._shardings()[1])

  def shard_local_batch(self, local_batch):
    """The global batch from this process's rows (leaves ``(len(local_clients()), z,
    ...)``), without any process holding the others' data."""
    sharding = self._shardings()[1]
    n_local = len(self.local_clients())

    def one(x):
      x = np.asarray(x)
      if x.shape[:1] != (n_local,) or x.ndim < 2 or x.shape[1] != self.local_steps:
        raise ValueError(
          f"local batch leaf has shape {x.shape}; expected leading axes ({n_local} local "
          f"clients, local_steps={self.local_steps}, ...) (see Round.local_clients())."
        )
      return jax.make_array_from_process_local_data(sharding, x, (self.num_clients,) + x.shape[1:])

    return jax.tree.map(one, local_batch)

  def check_batch(self, batch, lead: int = 0):
    """Raises ``ValueError`` (one line naming the leaf) unless every leaf of ``batch``
    has leading axes ``(clients, local_steps)`` after ``lead`` axes, and every leaf with
    a minibatch axis has the same minibatch size."""
    sizes = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
      shape = np.shape(leaf)[lead:]
      if len(shape) < 2 or shape[0] != self.num_clients or shape[1] != self.local_steps:
        raise ValueError(
          f"batch leaf {jax.tree_util.keystr(path)} has shape {shape}; every leaf must "
          f"have leading axes (clients={self.num_clients}, local_steps="
          f"{self.local_steps}, ...). Stack one minibatch per local step per client."
        )
      if len(shape) > 2:
        sizes[jax.tree_util.keystr(path)] = shape[2]
    if len(set(sizes.values())) > 1:
      raise ValueError(
        f"batch leaves have different minibatch sizes (axis {lead + 2}): {sizes}; every "
        "leaf of one client's minibatch must hold the same examples."
      )

  def _check_loss(self, params, batch, lead: int = 0):
    """Traces ``loss_fn`` once per batch signature on one client's minibatch (shapes
    only) and turns a failure into one ``ValueError`` naming the shapes: features that do
    not match the params, a loss that is not a scalar."""
    leaves, treedef = jax.tree.flatten(batch)
    key = (treedef, tuple((np.shape(x)[lead:], _dtype(x)) for x in leaves))
    if key in self.checked_batches:
      return
    one = [jax.ShapeDtypeStruct(np.shape(x)[lead + 2 :], _dtype(x)) for x in leaves]
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), _dtype(x)), params)
    _check_loss_fn(self.loss_fn, abstract, jax.tree.unflatten(treedef, one), self.has_aux)
    self.checked_batches.add(key)

  def multi(self, state: RoundState, batches, weights=None):
    """Runs R rounds in one jitted ``lax.scan`` (one dispatch instead of R): every leaf
    of ``batches`` has a leading round axis, ``(R, clients, z, ...)``, and ``weights``
    (optional) is ``(R, clients)``. Returns the state after the R rounds and the
    metrics stacked over them (leading axis R). The numbers are those of R calls; a new
    R compiles once more."""
    leaves = jax.tree.leaves(batches)
    r = np.shape(leaves[0])[0] if leaves and np.ndim(leaves[0]) else 0
    if r < 1 or any(np.shape(x)[:1] != (r,) for x in leaves):
      raise ValueError(
        "Round.multi: every batch leaf needs a leading round axis of the "
        f"same length R >= 1 (got shapes {[np.shape(x) for x in leaves]})."
      )
    self.check_batch(batches, lead=1)
    self._check_live(state)
    self._check_loss(state.params, batches, lead=1)
    if weights is None:
      weights = np.ones((r, self.num_clients), np.float32)
    elif np.shape(weights) != (r, self.num_clients):
      raise ValueError(
        f"weights has shape {np.shape(weights)}; expected (R={r}, "
        f"{self.num_clients}): one row of client weights per round."
      )
    else:
      for row in np.asarray(weights):
        self._check_weights(row)
    if not isinstance(weights, jax.Array):
      weights = np.asarray(weights, np.float32)
    if jax.process_count() > 1:
      batches = _place(batches, NamedSharding(self.mesh, P(None, self.axis_name)))
    return self._steps(state, batches, weights)

  def _check_live(self, state):
    if self.donate and any(
      getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(state)
    ):
      raise ValueError(
        "this RoundState was donated to an earlier round call and its buffers are gone; "
        "pass the state that call returned, keep a copy before the call "
        "(jax.tree.map(jnp.copy, state)), or build the round with donate=False."
      )

  def _check_weights(self, weights):
    if np.shape(weights) != (self.num_clients,):
      raise ValueError(
        f"weights has shape {np.shape(weights)}; expected ({self.num_clients},), one "
        "per client (e.g. local example counts)."
      )
    if not isinstance(weights, jax.core.Tracer):
      w = np.asarray(weights, np.float64)
      if not np.all(np.isfinite(w)):
        raise ValueError(
          "weights must be finite; got NaN or inf at clients "
          f"{np.flatnonzero(~np.isfinite(w)).tolist()}."
        )
      if np.any(w < 0):
        raise ValueError(
          f"weights must be >= 0; negative at clients {np.flatnonzero(w < 0).tolist()}."
        )
      if not np.any(w > 0):
        raise ValueError(
          "weights are all zero: no client would count in the mean; give "
          "at least one client a positive weight."
        )

  def __call__(self, state: RoundState, batch, weights=None):
    """Runs one round. ``weights``: optional (clients,) aggregation weights (finite,
    >= 0, not all zero)."""
    self.check_batch(batch)
    self._check_live(state)
    self._check_loss(state.params, batch)
    if jax.process_count() > 1:
      batch = self.shard_batch(batch)
    if weights is None:
      weights = np.ones((self.num_clients,), np.float32)
    else:
      self._check_weights(weights)
    if not isinstance(weights, jax.Array):
      weights = np.asarray(weights, np.float32)  # a host value: global on every process
    return self._step(state, batch, weights.astype(np.float32))


def build_round(
  loss_fn,
  method: Optional[Method] = None,
  *,
  local_steps: int,
  num_clients: int,
  inner: Optional[optax.GradientTransformation] = None,
  outer: Optional[optax.GradientTransformation] = None,
  mesh: Optional[jax.sharding.Mesh] = None,
  axis_name: str = "clients",
  reset_inner_state: bool = False,
  participation: Optional[int] = None,
  noise: Optional[optax.GradientTransformation] = None,
  has_aux: bool = False,
  donate: bool = True,
  compressor: Optional[compression.Compressor] = None,
  down_compressor: Optional[compression.Compressor] = None,
  fragments: Optional[int] = None,
  client_loop: str = "auto",
  check_finite: bool = True,
  shard_outer="auto",
) -> Round:
  r"""Builds the jitted round.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar`` (or ``(scalar, aux)`` with
      ``has_aux``) for one client's minibatch.
    method: a :class:`tailopt.Method` (``tailopt.get_method(name)`` or
      ``tailopt.Method(inner=..., outer=...)``); or pass ``inner=`` and ``outer=``.
    local_steps: z >= 1 inner steps per round.
    num_clients: clients per round; a multiple of the mesh's client-axis size.
    inner, outer: any two ``optax.GradientTransformation``\ s, instead of ``method``.
    mesh: a mesh with axis ``axis_name`` (default :func:`client_mesh` over all devices).
    reset_inner_state: start every round from a fresh ``inner.init(x_t)`` (the DiLoCo and
      FedOpt meaning; default: keep inner state per client across rounds, as DiLoCo
      does). Schedules still see the global round through the ``round_index`` argument.
    participation: if set, ``m`` of the clients are sampled uniformly each round; the
      others neither count in the mean nor change their inner state. Only the sampled
      clients' local steps run (their states and batches are gathered, rounded up to a
      multiple of the client-axis devices, and scattered back).
    noise: optional transform (e.g. :func:`tailopt.inject_noise`) applied to every
      gradient before the inner rule, with per-client PRNG streams.
    donate: donate the state's buffers to the round (in-place update); a donated state
      cannot be passed again.
    compressor: a :class:`tailopt.compression.Compressor` applied to each node's Delta;
      the payloads (codes and scales) are all-gathered over the client axis and decoded
      and averaged on every device. Its state (error feedback) is kept per client.
    down_compressor: a stateless compressor applied to the server's update before it is
      broadcast (every replica applies the decoded update).
    fragments: Streaming synchronization: the parameter leaves are split into F
      fragments (:func:`fragment_ids`) and fragment ``round % F`` is synchronized each
      round, so a round sends 1/F of the model; clients keep their own model between
      syncs and the outer rule keeps one state per fragment. ``None`` (default): every
      round synchronizes the whole model.
    client_loop: how a device runs its clients when it holds more than one: ``"vmap"``
      (batched: fastest for small models), ``"sequential"`` (one after another in
      ``lax.map``: the activation memory of one client, and faster per example once a
      client's weights are large) or ``"auto"`` (default: sequential from
      :data:`AUTO_SEQUENTIAL_BYTES` of params per client, else vmap). The two give the same
      numbers. A device that holds one client runs it unbatched either way.
    check_finite: count the local steps whose gradient had a NaN or an infinity (metric
      ``nonfinite_frac``; default). It reads every gradient once more per step, about 5%
      of a 1.19M-parameter MLP's round on CPU (``experiments.bench_round``); ``False``
      drops the check and the metric.
    shard_outer: split the outer rule's state and step over the client devices
      (:class:`ShardedServerSchedule`: a reduce-scatter of the Deltas, the rule on each
      device's 1/n of the coordinates, an all-gather of the new params) instead of running
      it replicated on every device after an all-reduce. Only valid for an elementwise outer
      rule (its update and state at a coordinate depend on that coordinate alone and on
      scalars such as a step count; not an L2 or global-norm clip, nor a rule whose clip
      statistics read across coordinates). ``'auto'`` (default): when the method declares
      its outer rule elementwise (:attr:`Method.outer_elementwise`: the named adaptive and
      momentum rules) and its state holds per-coordinate arrays, on a mesh of several
      client devices without a model axis, compressor, down_compressor or fragments.
      ``True`` forces it (with your own rule, that is your declaration that it is
      elementwise; a state leaf that is neither per-coordinate nor a scalar is refused);
      ``False`` keeps the replicated step. The numbers equal the replicated step's; the
      outer state's per-coordinate leaves are then stored flattened and padded to a
      multiple of the client devices (:mod:`tailopt.shard_layout`), split over them.

  Metrics ``bytes_up`` and ``bytes_down`` are the bytes one participating node sends and
  receives this round, from the arrays that cross the client axis (the payload, or the
  float32 Delta; the params or the compressed update); ``bytes_cumulative`` is their sum
  over the rounds so far (a function of the round index, so it survives a resume).
  """
  method = _resolve_method(method, inner, outer)
  mesh = _check_arguments(
    local_steps,
    num_clients,
    mesh,
    axis_name,
    participation,
    fragments,
    down_compressor,
    client_loop,
  )
  shard_outer = _resolve_shard_outer(
    shard_outer, method, mesh, axis_name, compressor, down_compressor, fragments
  )
  settings = dict(
    loss_fn=loss_fn,
    method=method,
    local_steps=int(local_steps),
    num_clients=int(num_clients),
    mesh=mesh,
    axis_name=axis_name,
    reset_inner_state=reset_inner_state,
    participation=participation,
    noise=noise,
    has_aux=has_aux,
    donate=donate,
    compressor=compressor,
    down_compressor=down_compressor,
    fragments=fragments,
    client_loop=client_loop,
    check_finite=bool(check_finite),
    shard_outer=shard_outer,
  )
  parts = _round_parts(**settings)
  step, steps = _compile_round(parts, donate)
  return Round(**settings, parts=parts, compiled_step=step, compiled_steps=steps)


def _round_parts(
  *,
  loss_fn,
  method: Method,
  local_steps: int,
  num_clients: int,
  mesh,
  axis_name: str,
  reset_inner_state: bool,
  participation: Optional[int],
  noise,
  has_aux: bool,
  compressor,
  down_compressor,
  fragments: Optional[int],
  client_loop: str,
  check_finite: bool,
  shard_outer: bool,
  **_,
) -> RoundParts:
  """The pieces of a round with the :func:`build_round` settings."""
  client = ClientPhase(
    run_local=local_lib.make_local_run(
      loss_fn, method.inner, noise=noise, has_aux=has_aux, check_finite=check_finite
    ),
    inner=method.inner,
    local_steps=local_steps,
    axis_name=axis_name,
    reset_inner_state=reset_inner_state,
    client_loop=client_loop,
  )
  if compressor is None:
    aggregator = MeanAggregator(axis_name)
  else:
    aggregator = CompressedAggregator(axis_name, compressor)
  return RoundParts(
    client=client,
    aggregator=aggregator,
    server=ServerPhase(method.outer),
    broadcast=Broadcast(down_compressor),
    schedule=_schedule(fragments, shard_outer, mesh.shape[axis_name]),
    sampling=Participation(num_clients, participation, mesh.shape[axis_name]),
    mesh=mesh,
    axis_name=axis_name,
  )


def _schedule(fragments: Optional[int], shard_outer: bool, num_devices: int) -> Schedule:
  if fragments is not None:
    return FragmentSchedule(int(fragments))
  return ShardedServerSchedule(num_devices) if shard_outer else FullSchedule()


def _resolve_shard_outer(
  shard_outer, method, mesh, axis_name, compressor, down_compressor, fragments
) -> bool:
  """:func:`build_round`'s ``shard_outer`` as a bool (``'auto'`` resolved); raises
  ``ValueError`` for ``True`` with a setting the sharded step does not support."""
  if not (isinstance(shard_outer, (bool, np.bool_)) or shard_outer == "auto"):
    raise ValueError(f"shard_outer={shard_outer!r}; use 'auto' (the default), True or False.")
  blockers = [
    what
    for what, present in (
      ("compressor= (the compressed payloads are gathered whole)", compressor is not None),
      ("down_compressor= (the update is compressed whole)", down_compressor is not None),
      ("fragments= (one outer state per fragment)", fragments is not None),
      ("a model axis (the outer state is split over it)", _model_axis(mesh, axis_name)),
    )
    if present
  ]
  n = mesh.shape[axis_name]
  if shard_outer == "auto":
    return bool(
      method.outer_elementwise
      and not blockers
      and n > 1
      and shard_layout.has_sharded_state(method.outer.init, n)
    )
  if shard_outer and blockers:
    raise ValueError(
      f"shard_outer=True does not support {blockers[0]}; build the round with "
      "shard_outer=False (or 'auto')."
    )
  return bool(shard_outer)


def _resolve_method(method, inner, outer) -> Method:
  """``method``, or ``Method(inner, outer)``; exactly one of the two ways."""
  if method is None:
    if inner is None or outer is None:
      raise ValueError(
        "build_round needs a method (tailopt.get_method(name) or "
        "tailopt.Method(inner=..., outer=...)) or both inner= and outer=."
      )
    method = Method(inner=inner, outer=outer)
  elif inner is not None or outer is not None:
    raise ValueError("build_round: pass either method or inner=/outer=, not both.")
  if not isinstance(method, Method):
    raise TypeError(
      f"method must be a tailopt.Method, got {type(method).__name__}; use "
      "tailopt.get_method(name) or tailopt.Method(inner=..., outer=...)."
    )
  return method


def _check_arguments(
  local_steps,
  num_clients,
  mesh,
  axis_name,
  participation,
  fragments,
  down_compressor,
  client_loop,
) -> jax.sharding.Mesh:
  """Checks :func:`build_round`'s arguments; returns the mesh (default: all devices)."""
  if not isinstance(local_steps, (int, np.integer)) or local_steps < 1:
    raise ValueError(f"local_steps (z) must be an integer >= 1, got {local_steps!r}.")
  if mesh is None:
    mesh = client_mesh(axis_name=axis_name)
  if axis_name not in mesh.shape:
    raise ValueError(f"mesh has axes {tuple(mesh.shape)}; it needs an axis {axis_name!r}.")
  n_dev = mesh.shape[axis_name]
  if num_clients < 1 or num_clients % n_dev:
    raise ValueError(
      f"num_clients={num_clients} is not divisible by the {n_dev} devices on mesh axis "
      f"{axis_name!r}. Use a multiple of {n_dev} clients, or a smaller mesh, e.g. "
      f"tailopt.client_mesh(num_devices=d) with d dividing {num_clients}."
    )
  if participation is not None and not 1 <= participation <= num_clients:
    raise ValueError(
      f"participation={participation} must be between 1 and num_clients={num_clients}."
    )
  if fragments is not None and (not isinstance(fragments, (int, np.integer)) or fragments < 1):
    raise ValueError(f"fragments={fragments!r} must be an integer >= 1 (or None).")
  if down_compressor is not None and jax.tree.leaves(
    jax.eval_shape(down_compressor.init, {"x": jax.ShapeDtypeStruct((2,), jnp.float32)})
  ):
    raise ValueError(
      "down_compressor must be stateless (no error feedback): every "
      "replica applies the same decoded update."
    )

  if client_loop not in ("auto", "vmap", "sequential"):
    raise ValueError(
      f"client_loop={client_loop!r}; use 'auto' (by model size), 'vmap' (batched "
      "clients) or 'sequential' (one client at a time, less memory)."
    )
  return mesh
