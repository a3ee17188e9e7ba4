r"""One TailOPT round as one jitted function built on ``jax.shard_map``.

.. code-block:: text

    for each client i in parallel (a device axis, clients beyond the device count vmapped):
        x_i = x_t;  z inner steps in lax.scan;  Delta_i = x_t - x_i
    Delta_t = sum_i w_i Delta_i / sum_i w_i        # lax.psum over the client axis
    x_{t+1} = optax.apply_updates(x_t, outer.update(Delta_t))

``w_i`` is 1 (uniform mean, the default), the client's example count (``weighted=True``),
and 0 for clients not sampled this round (``participation=m``: m of the M clients take
part; the others keep their inner state). The outer rule runs replicated on every device
after the reduction, as in data-parallel training.

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
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from tailopt import clipping
from tailopt import local as local_lib
from tailopt import noise as noise_lib
from tailopt.methods import Method


class RoundState(NamedTuple):
  """Everything a run carries from round to round."""
  params: Any          # global model x_t (replicated)
  outer_state: Any     # server optimizer state (replicated)
  inner_state: Any     # per-client inner states, leading axis = clients (sharded)
  noise_state: Any     # per-client noise-injection states or None (sharded)
  round: jax.Array     # int32, rounds completed
  rng: jax.Array       # PRNG key for client sampling


def _own_copy(x):
  """A strongly typed copy of ``x`` that the donating round may free."""
  if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
    return x
  return jnp.array(x, dtype=jnp.asarray(x).dtype, copy=True)


def client_mesh(num_devices: Optional[int] = None, axis_name: str = "clients",
                devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over ``num_devices`` devices (default: all) with an Auto client axis."""
  devices = list(devices if devices is not None else jax.devices())
  n = len(devices) if num_devices is None else num_devices
  if not 1 <= n <= len(devices):
    raise ValueError(f"num_devices={n} but {len(devices)} devices are available.")
  return jax.make_mesh((n,), (axis_name,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices[:n])


@dataclasses.dataclass
class Round:
  """A compiled TailOPT round. Call it as ``state, metrics = round(state, batch)``."""
  loss_fn: Any
  method: Method
  local_steps: int
  num_clients: int
  mesh: jax.sharding.Mesh
  axis_name: str
  reset_inner_state: bool
  participation: Optional[int]
  noise: Optional[optax.GradientTransformation]
  has_aux: bool
  donate: bool = True
  _step: Any = None

  @property
  def clients_per_device(self) -> int:
    return self.num_clients // self.mesh.shape[self.axis_name]

  def _shardings(self):
    rep = NamedSharding(self.mesh, P())
    cl = NamedSharding(self.mesh, P(self.axis_name))
    return rep, cl

  def init(self, params, seed: int = 0) -> RoundState:
    """The initial state: params and outer state replicated, inner states per client."""
    inner = self.method.inner
    rep, cl = self._shardings()
    c = self.num_clients
    stack = lambda tree: jax.tree.map(  # noqa: E731
        lambda x: jnp.broadcast_to(x, (c,) + jnp.shape(x)), tree)
    inner_state = stack(inner.init(params))
    noise_state = None
    if self.noise is not None:
      base = self.noise.init(params)
      noise_state = jax.vmap(lambda i: noise_lib.fold_in_client(base, i))(jnp.arange(c))
    state = RoundState(
        params=params, outer_state=self.method.outer.init(params),
        inner_state=inner_state, noise_state=noise_state,
        round=jnp.zeros([], jnp.int32), rng=jax.random.key(seed))
    shardings = RoundState(rep, rep, cl, cl, rep, rep)
    # Own, strongly typed copies: the round donates its state, which must not free the
    # caller's arrays (device_put may alias them), and a weakly typed input
    # (jnp.full(.., 0.1)) would come back strong and force a second compile.
    state = jax.tree.map(_own_copy, state)
    return jax.tree.map(lambda s, x: jax.device_put(x, s), shardings, state,
                        is_leaf=lambda n: isinstance(n, NamedSharding))

  def shard_batch(self, batch):
    """Places a (clients, z, ...) batch with its client axis split over the mesh.

    Multi-host (``jax.process_count() > 1``): every process passes the same global batch
    (e.g. from a seeded sampler) and only its own devices' shards are placed.
    """
    self.check_batch(batch)
    sharding = self._shardings()[1]
    if jax.process_count() == 1:
      return jax.device_put(batch, sharding)
    return jax.tree.map(
        lambda x: x if isinstance(x, jax.Array) else jax.make_array_from_callback(
            np.shape(x), sharding, lambda idx, x=x: np.asarray(x)[idx]), batch)

  def check_batch(self, batch):
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
      shape = np.shape(leaf)
      if len(shape) < 2 or shape[0] != self.num_clients or shape[1] != self.local_steps:
        raise ValueError(
            f"batch leaf {jax.tree_util.keystr(path)} has shape {shape}; every leaf must "
            f"have leading axes (clients={self.num_clients}, local_steps="
            f"{self.local_steps}, ...). Stack one minibatch per local step per client.")

  def __call__(self, state: RoundState, batch, weights=None):
    """Runs one round. ``weights``: optional (clients,) aggregation weights (finite,
    >= 0, not all zero)."""
    self.check_batch(batch)
    if self.donate and any(getattr(x, "is_deleted", lambda: False)()
                           for x in jax.tree.leaves(state)):
      raise ValueError(
          "this RoundState was donated to an earlier round call and its buffers are gone; "
          "pass the state that call returned, keep a copy before the call "
          "(jax.tree.map(jnp.copy, state)), or build the round with donate=False.")
    if jax.process_count() > 1:
      batch = self.shard_batch(batch)
    if weights is None:
      weights = jnp.ones((self.num_clients,), jnp.float32)
    else:
      if np.shape(weights) != (self.num_clients,):
        raise ValueError(
            f"weights has shape {np.shape(weights)}; expected ({self.num_clients},), one "
            "per client (e.g. local example counts).")
      if not isinstance(weights, jax.core.Tracer):
        w = np.asarray(weights, np.float64)
        if not np.all(np.isfinite(w)):
          raise ValueError("weights must be finite; got NaN or inf at clients "
                           f"{np.flatnonzero(~np.isfinite(w)).tolist()}.")
        if np.any(w < 0):
          raise ValueError("weights must be >= 0; negative at clients "
                           f"{np.flatnonzero(w < 0).tolist()}.")
        if not np.any(w > 0):
          raise ValueError("weights are all zero: no client would count in the mean; give "
                           "at least one client a positive weight.")
    return self._step(state, batch, jnp.asarray(weights, jnp.float32))


def build_round(loss_fn, method: Optional[Method] = None, *, local_steps: int,
                num_clients: int, inner: Optional[optax.GradientTransformation] = None,
                outer: Optional[optax.GradientTransformation] = None,
                mesh: Optional[jax.sharding.Mesh] = None, axis_name: str = "clients",
                reset_inner_state: bool = False, participation: Optional[int] = None,
                noise: Optional[optax.GradientTransformation] = None,
                has_aux: bool = False, donate: bool = True) -> Round:
  """Builds the jitted round.

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
      others neither count in the mean nor change their inner state.
    noise: optional transform (e.g. :func:`tailopt.inject_noise`) applied to every
      gradient before the inner rule, with per-client PRNG streams.
    donate: donate the state's buffers to the round (in-place update); a donated state
      cannot be passed again.
  """
  if method is None:
    if inner is None or outer is None:
      raise ValueError("build_round needs a method (tailopt.get_method(name) or "
                       "tailopt.Method(inner=..., outer=...)) or both inner= and outer=.")
    method = Method(inner=inner, outer=outer)
  elif inner is not None or outer is not None:
    raise ValueError("build_round: pass either method or inner=/outer=, not both.")
  if not isinstance(method, Method):
    raise TypeError(f"method must be a tailopt.Method, got {type(method).__name__}; use "
                    "tailopt.get_method(name) or tailopt.Method(inner=..., outer=...).")
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
        f"tailopt.client_mesh(num_devices=d) with d dividing {num_clients}.")
  if participation is not None and not 1 <= participation <= num_clients:
    raise ValueError(
        f"participation={participation} must be between 1 and num_clients={num_clients}.")

  rnd = Round(loss_fn, method, int(local_steps), int(num_clients), mesh, axis_name,
              reset_inner_state, participation, noise, has_aux, donate)
  z = rnd.local_steps
  inner_tx = method.inner
  outer_tx = optax.with_extra_args_support(method.outer)
  local_run = local_lib.make_local_run(loss_fn, inner_tx, noise=noise, has_aux=has_aux)
  ax = axis_name

  def shard_body(params, outer_state, inner_state, noise_state, batch, weights, round_idx):
    step0 = round_idx * z
    x0 = jax.tree.map(lambda p: jax.lax.pcast(p, ax, to="varying"), params)
    if reset_inner_state:
      fresh = inner_tx.init(params)   # a fresh init, exactly as at the start of a run
      fresh = jax.tree.map(lambda a: jax.lax.pcast(a, ax, to="varying"), fresh)
      k = rnd.clients_per_device
      start_state = jax.tree.map(
          lambda x: jnp.broadcast_to(x, (k,) + jnp.shape(x)), fresh)
    else:
      start_state = inner_state
    res = jax.vmap(local_run, in_axes=(None, 0, 0, 0, None, None))(
        x0, start_state, noise_state, batch, round_idx, step0)

    w = weights
    active = (w > 0)

    def keep_active(new, old):
      mask = active.reshape((-1,) + (1,) * (jnp.ndim(new) - 1))
      return jnp.where(mask, new, old)

    new_inner = jax.tree.map(keep_active, res.inner_state, inner_state)
    new_noise = (None if noise_state is None
                 else jax.tree.map(keep_active, res.noise_state, noise_state))

    total_w = jax.lax.psum(jnp.sum(w), ax)
    safe_w = jnp.where(total_w > 0, total_w, 1.0)

    def wmean(x):  # (k, ...) -> weighted mean over all clients
      acc = jnp.promote_types(x.dtype, jnp.float32)   # float32, or wider (float64)
      wx = jnp.tensordot(w.astype(acc), x.astype(acc), axes=1)
      return jax.lax.psum(wx, ax) / safe_w.astype(acc)

    delta = jax.tree.map(lambda d, p: wmean(d).astype(p.dtype), res.delta, params)
    updates, outer_state = outer_tx.update(delta, outer_state, params,
                                           round_index=round_idx)
    new_params = optax.apply_updates(params, updates)

    n_active = jax.lax.psum(jnp.sum(active.astype(jnp.float32)), ax)
    amean = lambda v: jax.lax.psum(  # noqa: E731
        jnp.sum(jnp.where(active, v, 0.0)), ax) / jnp.maximum(n_active, 1.0)
    metrics = {k: amean(v) for k, v in res.metrics.items()}
    metrics.update(clipping.measurements(outer_state, "outer_"))
    metrics.update(
        delta_norm=clipping.global_norm(delta),
        update_norm=clipping.global_norm(updates),
        participants=n_active)
    return new_params, outer_state, new_inner, new_noise, metrics

  rep, cl = P(), P(ax)
  sharded = jax.shard_map(
      shard_body, mesh=mesh,
      in_specs=(rep, rep, cl, cl, cl, cl, rep),
      out_specs=(rep, rep, cl, cl, rep), check_vma=True)

  def step(state: RoundState, batch, weights):
    rng, key = jax.random.split(state.rng)
    if participation is not None:
      perm = jax.random.permutation(key, num_clients)
      mask = jnp.zeros((num_clients,), jnp.float32).at[perm[:participation]].set(1.0)
      weights = weights * mask
    params, outer_state, inner_state, noise_state, metrics = sharded(
        state.params, state.outer_state, state.inner_state, state.noise_state, batch,
        weights, state.round)
    new_state = RoundState(params, outer_state, inner_state, noise_state,
                           state.round + 1, rng)
    return new_state, metrics

  rnd._step = jax.jit(step, donate_argnums=(0,) if donate else ())
  return rnd
