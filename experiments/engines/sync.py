"""The synchronous engine: TailOPT rounds of :func:`tailopt.build_round` behind the loop.

A chunk of R rounds runs as one jitted ``lax.scan`` (:meth:`tailopt.Round.multi`, the
numbers of R single calls). Batches are a pure function of (seed, round), so the saved
state is the round state alone (plus, when clients are sampled from a larger population,
the host-side store of their inner states). Every round's row has ``sim_time``: the
simulated clock (:class:`tailopt.timing.SyncClock`: the slowest participant's compute, its
upload of the round's ``bytes_up``, the server step and the broadcast of ``bytes_down``),
kept in the checkpoint's record so a resumed run continues it.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import tailopt
from experiments.engines import build
from experiments.errors import ConfigError
from tailopt import overlap as overlap_lib
from tailopt.data.batching import ClientBatches


def make_round(config, model, method, batches: ClientBatches) -> tailopt.Round:
  """The :class:`tailopt.Round` of a validated config (mesh, compressors, noise, ...)."""
  del batches  # the round's shapes come from the config
  mesh = tailopt.client_mesh(
    build.resolve_devices(config), model=int(config.get("mesh", {}).get("model", 1) or 1)
  )
  # Sampled clients do not own a slot across rounds: their inner states live in the
  # engine's host-side store (SyncEngine), swapped into the slots every round.
  up, down = build.compressors(config, method)
  ov = build.overlap(config)
  make = tailopt.build_round
  if ov is not None:  # overlapped streaming
    make = functools.partial(overlap_lib.build_round, overlap=ov)
  return make(
    model.loss,
    method,
    local_steps=config.local_steps,
    num_clients=config.clients,
    mesh=mesh,
    reset_inner_state=config.reset_inner_state,
    participation=config.participation or None,
    noise=build.make_noise(config),
    compressor=up,
    down_compressor=down,
    fragments=config.get("fragments") or None,
    client_loop=config.get("client_loop", "auto"),
    shard_outer=shard_outer(config),
  )


def shard_outer(config):
  """``config.shard_outer`` ('auto', 'on' or 'off') as :func:`tailopt.build_round` takes
  it: 'auto', True or False."""
  return {"on": True, "off": False}.get(config.get("shard_outer", "auto"), "auto")


def check_fragments(config, params) -> None:
  """``config.fragments`` must not exceed the model's parameter leaves (fragments are
  whole leaves): one :class:`ConfigError` line otherwise."""
  fragments = config.get("fragments") or 0
  leaves = len(jax.tree.leaves(params))
  if fragments > max(leaves, 1):
    raise ConfigError(
      f"config.fragments={fragments} but the model of config.task={config.task!r} has "
      f"{leaves} parameter arrays (leaves), and a fragment is whole leaves; use "
      f"--config.fragments={leaves} or fewer (0 = off)."
    )


class SyncEngine:
  """Synchronous TailOPT rounds (the :class:`~experiments.engines.protocol.Engine` of
  ``mode='sync'``). Chunks end at multiples of ``config.chunk`` (0: auto, at most 25) and
  at evaluation and checkpoint rounds, counted from round 0, so a resumed run runs exactly
  the chunks of an uninterrupted one; on several processes each builds only its own
  clients' rows."""

  unit = "round"

  def __init__(self, config, data, model):
    self.config = config
    self.batches = ClientBatches(
      data,
      local_steps=config.local_steps,
      batch_size=config.batch_size,
      seed=config.seed,
      clients_per_round=config.clients,
    )
    self.rnd = make_round(config, model, build.make_method(config), self.batches)
    self.store = None  # inner states of a sampled population, by dataset client
    if self.batches.samples_clients and not config.reset_inner_state:
      if jax.process_count() > 1:
        raise ConfigError(
          "config.data_clients: keeping sampled clients' inner states (a host-side "
          "store) runs on one process; set --config.reset_inner_state=True to run on "
          "several."
        )
      self.store = True  # built by init() from a fresh inner.init
    self.total = int(config.rounds)
    self.clock = build.sync_clock(config)
    self.sim_time = 0.0  # simulated seconds at the end of the rounds done
    self.label = config.method
    self.title = f"tailopt run: {config.method} on {config.task}"

  def init(self, params):
    check_fragments(self.config, params)
    self.sim_time = 0.0
    self.clock.load_state(None)
    if self.store is not None:
      fresh = jax.device_get(jax.jit(self.rnd.method.inner.init)(params))
      self.store = tailopt.ClientStateStore(fresh)
    return self.rnd.init(params, seed=self.config.seed)

  def restore_template(self, params):
    state = self.init(params)
    if self.store is None:
      return state
    store = self.store
    return lambda record: (state, store.template(int(record["stored_clients"])))

  def save(self, state, t: int):
    extra = {"data_position": t, "sim_time": self.sim_time, "clock": self.clock.state()}
    if self.store is None:
      return state, extra
    return (state, self.store.to_tree()), {**extra, "stored_clients": len(self.store)}

  def load(self, tree, record, params):
    del params
    # A checkpoint from before the simulated clock: its time is unknown (NaN), not 0.
    self.sim_time = float(record.get("sim_time", math.nan))
    self.clock.load_state(record.get("clock"))
    if self.store is None:
      return tree
    state, stored = tree
    self.store.load_tree(stored)
    return state

  def params(self, state):
    return state.params

  def chunk_len(self, t: int) -> int:
    if self.store is not None:
      return 1  # the store swaps the inner states between rounds
    c = self.config
    ends = [self.total]
    for every in (build.resolve_chunk(c), c.eval_every, c.checkpoint_every):
      if every:
        ends.append(t - t % every + every)
    return max(min(ends) - t, 1)

  def eval_at(self, t: int) -> bool:
    e = self.config.eval_every
    return bool(e) and (t % e == 0 or t == self.total)

  def _batch(self, r: int):
    """Round ``r``'s batch (this process's rows, placed globally, on several processes)."""
    if jax.process_count() == 1:
      return self.batches(r)
    return self.rnd.shard_local_batch(self.batches(r, slots=self.rnd.local_clients()))

  def _one_round(self, state, t: int):
    """Round ``t`` alone (with the sampled clients' own inner states, if stored)."""
    weights = self.batches.weights(t) if self.config.weighted else None
    if self.store is not None:
      ids = self.batches.client_ids(t)
      state = state._replace(inner_state=self.rnd.place_clients(self.store.gather(ids)))
    state, metrics = self.rnd(state, self._batch(t), weights)
    if self.store is not None:
      self.store.scatter(ids, jax.device_get(state.inner_state))
    return state, [jax.device_get(metrics)]

  def _fused_rounds(self, state, t: int, n: int):
    """Rounds ``t .. t + n - 1`` in one dispatch (:meth:`tailopt.Round.multi`)."""
    if jax.process_count() == 1:
      parts = [self.batches(r) for r in range(t, t + n)]
      batches = {k: np.stack([b[k] for b in parts]) for k in parts[0]}
    else:  # this process's rows of every round, placed as one global array
      parts = [self._batch(r) for r in range(t, t + n)]
      batches = jax.tree.map(lambda *xs: jnp.stack(xs), *parts)
    weights = None
    if self.config.weighted:
      weights = np.stack([self.batches.weights(r) for r in range(t, t + n)])
    state, metrics = self.rnd.multi(state, batches, weights)
    metrics = jax.device_get(metrics)
    return state, [{k: v[i] for k, v in metrics.items()} for i in range(n)]

  def run(self, state, t: int, n: int):
    active = self.rnd.participants(state, n)  # before the chunk donates the state
    state, per_round = self._one_round(state, t) if n == 1 else self._fused_rounds(state, t, n)
    times = self.clock.times(
      t,
      self.sim_time,
      [float(m["bytes_up"]) for m in per_round],
      [float(m["bytes_down"]) for m in per_round],
      active,
    )
    self.sim_time = float(times[-1])
    rows = [
      {
        "round": t + 1 + i,
        "sim_time": float(times[i]),
        **{f"train/{k}": float(v) for k, v in m.items()},
      }
      for i, m in enumerate(per_round)
    ]
    return state, rows

  def start(self, workdir, state):
    del workdir, state

  def postfix(self, row) -> dict:
    del row
    return {}

  def summary(self, state, t: int, out: dict) -> dict:
    del state
    c = self.config
    mesh = " x ".join(f"{n} {a}" for a, n in self.rnd.mesh.shape.items())
    return dict(
      clients=c.clients,
      local_steps=c.local_steps,
      rounds=self.total,
      mesh=mesh,
      processes=jax.process_count(),
      rounds_done=t,
      best_round=out["best_at"],
      rounds_per_s=out["per_s"],
      sim_time=self.sim_time,
    )

  def summary_rows(self, s: dict) -> list:
    procs = f" on {s['processes']} processes" if s.get("processes", 1) > 1 else ""
    return [
      ("clients x local steps", f"{s['clients']} x {s['local_steps']}"),
      ("mesh", s["mesh"] + procs),
      ("simulated time", f"{s.get('sim_time', math.nan):.1f} s"),
    ]
