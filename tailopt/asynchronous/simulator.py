r"""The asynchronous simulator: a precomputed clock driving jitted server steps.

.. code-block:: python

    sim = Simulator(loss_fn, tailopt.get_method('bi2clip'), data_fn,
                    clock=ClockConfig(num_workers=8, speeds='stragglers'),
                    config=AsyncConfig(scheme='buffered', buffer_size=4, local_steps=4,
                                       rate=RateConfig('polynomial')),
                    num_steps=200)
    state = sim.init(params, seed=0)
    state, metrics = sim.run(state, 50)      # 50 server steps in one jitted lax.scan
    tree, meta = sim.state_dict(state)       # everything needed to resume
    state = sim.load_state_dict(tree, meta)

``data_fn(worker, job_index, key) -> batches`` returns one job's minibatches, every leaf
with a leading axis of ``local_steps`` (H); it is traced inside the simulator (vmapped over
the jobs of a wave), so index device-resident data or sample with ``key``
(``fold_in(fold_in(data_key, worker), job_index)``).

How it runs (see :mod:`.clock`): the schedule is computed up front; the simulation is a
``lax.scan`` over server steps (ticks) with the schedule slice as scanned inputs, so nothing
recompiles per event and a chunk of any number of steps is one dispatch. Each tick gathers
the K buffered updates from their slots, applies :func:`.server.server_update`, then
computes every job that pulls the new version, ``jax.vmap``-ed together in pieces whose
widths are powers of two (:mod:`.waves`: a wave of 37 jobs runs as pieces of 32, 4 and 1,
each piece only when it holds a job), so no empty slot is computed and the compiled program
holds one copy of the job code per width; a piece of one job runs unbatched. With
``devices > 1`` each piece is split across devices (``shard_map``; widths are powers of two
times the device count, the last piece of a wave padded by fewer than ``devices`` slots).
On several processes (``jax.distributed``) pass ``devices=jax.device_count()``: every
process computes the same schedule and holds the whole (replicated) state, each piece's jobs
are sharded over the devices of all processes, and every input and output is replicated, so
each process reads the metrics and state locally (the caller lets process 0 alone write).

Metrics per server step (numpy, from :meth:`Simulator.run`): ``time`` (simulated seconds),
``version`` (after the step), ``taus`` (per buffered update, -1 for padding), ``workers``
and ``pulled`` (who sent each update and the version it pulled), ``scale`` (delay-aware
factor), ``applied``, ``num_updates``, ``weight_sum``, ``delta_norm``, ``update_norm``, the
outer state's measurements (``outer_clip_above``, ...), and the means over the applied jobs
of their local metrics: ``loss``, ``nonfinite_frac`` and ``inner_*`` (as the round);
``bytes_up`` (the Deltas applied) and ``bytes_down`` (the models pulled after the step).
"""

from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from tailopt import clipping
from tailopt import local as local_lib
from tailopt import noise as noise_lib
from tailopt import rounds as rounds_lib
from tailopt.asynchronous import clock as clock_lib
from tailopt.asynchronous import compensation as comp_lib
from tailopt.asynchronous import server as server_lib
from tailopt.asynchronous import waves as waves_lib
from tailopt.methods import Method

STATE_FORMAT = 2


class SimState(NamedTuple):
  """Everything the simulation carries; a pytree (checkpoint with any pytree saver)."""

  params: Any  # server model x_t
  outer_state: Any  # outer optimizer state
  comp_state: Any  # mean square of adaptive DC (or None)
  inner_state: Any  # per-worker inner optimizer states, leading axis N
  noise_state: Any  # per-worker noise-injection states (or None)
  slot_delta: Any  # Delta of every computed, not yet applied job, leading axis M
  slot_xp: Any  # per-job snapshots of x_pulled (snapshots='per_job') or None
  slot_metrics: dict  # {name: (M,)} local metrics of the job in each slot (loss, ...)
  ring: Any  # last R model versions (snapshots='ring') or None
  tick: jax.Array  # int32: server steps done (= position in the event schedule)
  key: jax.Array  # data PRNG key


def _key0():
  """The shape and dtype of a default PRNG key's raw data."""
  return jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))


def _is_key(x) -> bool:
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_numpy(x):
  """Arrays to numpy; typed PRNG keys to their raw uint32 data."""
  return np.asarray(jax.random.key_data(x) if _is_key(x) else x)


def _from_numpy(x, like):
  if _is_key(like):
    return jax.random.wrap_key_data(jnp.asarray(x))
  return jnp.asarray(x, dtype=like.dtype)


def _gather(tree, idx):
  return jax.tree.map(lambda a: a[idx], tree)


def _scatter(tree, idx, values):
  return jax.tree.map(lambda a, v: a.at[idx].set(v.astype(a.dtype), mode="drop"), tree, values)


def _stack(tree, n):
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), tree)


class Simulator:
  """Asynchronous (or synchronous-on-a-clock) training of any tailopt method.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar`` (or ``(scalar, aux)`` with ``has_aux``).
    method: a :class:`tailopt.Method`; its inner transform runs the local jobs and (unless
      ``outer`` is given) its outer transform the server steps.
    data_fn: ``data_fn(worker, job_index, key) -> batches`` (leading axis H), or
      ``data_fn(data, worker, job_index, key)`` when ``data`` is given; traced.
    clock: the :class:`ClockConfig`.
    config: the :class:`AsyncConfig`.
    num_steps: T, the horizon in server steps (the schedule is precomputed for it).
    outer: optional outer transform overriding ``method.outer`` (e.g. Delayed Nesterov).
    outer_clip: a stateless clipping transform applied to each Delta before delay
      compensation (``clip_then_compensate``); default ``method.outer_clip`` when
      ``outer`` is not overridden.
    noise: optional gradient-noise transform (e.g. :func:`tailopt.inject_noise`), with a
      PRNG stream per worker (``fold_in`` of the worker index, as the synchronous round).
    devices: number of devices to split each wave over (default 1: vmap on one device).
    data: optional pytree of arrays (e.g. the device-resident dataset) passed to
      ``data_fn`` as an argument of the jitted functions rather than baked in as constants.
    check_finite: report ``nonfinite_frac`` (the fraction of local steps whose gradient
      had a NaN or an infinity), as the synchronous round; ``False`` drops the check.
    wave_plan: how a version's jobs are cut into pieces (:mod:`.waves`): ``'bucketed'``
      (default; widths of powers of two times ``devices``, nothing computed for empty
      slots on one device) or ``'padded'`` (every sub-wave at the widest width, the
      reference).
    job_loop: how a piece's jobs run on a device: ``'vmap'`` (batched), ``'sequential'``
      (one after another) or ``'auto'`` (default: sequential from
      :data:`tailopt.rounds.AUTO_SEQUENTIAL_BYTES` of params, as the synchronous round's
      ``client_loop``). The two give the same numbers.
  """

  def __init__(
    self,
    loss_fn: Callable,
    method: Method,
    data_fn: Callable,
    *,
    clock: clock_lib.ClockConfig,
    config: server_lib.AsyncConfig = None,
    num_steps: int,
    outer: Optional[optax.GradientTransformation] = None,
    outer_clip=None,
    noise: Optional[optax.GradientTransformation] = None,
    has_aux: bool = False,
    devices: int = 1,
    data: Any = None,
    check_finite: bool = True,
    wave_plan: str = "bucketed",
    job_loop: str = "auto",
  ):
    config = config or server_lib.AsyncConfig()
    if not isinstance(method, Method):
      raise TypeError(
        f"method must be a tailopt.Method (tailopt.get_method(name) or "
        f"tailopt.Method(inner=..., outer=...)), got {type(method).__name__}."
      )
    self.loss_fn, self.method, self.data_fn = loss_fn, method, data_fn
    self.clock, self.config, self.num_steps = clock, config, int(num_steps)
    self.noise, self.has_aux = noise, has_aux
    self.check_finite = bool(check_finite)
    self.data = data
    n = clock.num_workers
    self.num_workers = n
    k = config.k_for(n)
    self.schedule = clock_lib.make_schedule(
      clock,
      scheme=config.scheme,
      buffer_size=k,
      local_steps=config.local_steps,
      num_steps=self.num_steps,
      dynamic_local_steps_on=config.dynamic_local_steps,
      ties=config.ties,
      deadline=config.deadline,
      quorum=config.quorum_for(n),
    )
    self.buffer_size = k
    sched = self.schedule
    self.outer = outer if outer is not None else method.outer
    self.outer_clip = (
      outer_clip if outer_clip is not None else (method.outer_clip if outer is None else None)
    )
    self.inner = method.inner
    self.dynamic = bool(
      config.dynamic_local_steps and np.any(sched.local_steps != sched.max_local_steps)
    )
    run = local_lib.make_local_run(
      loss_fn, self.inner, noise=noise, has_aux=has_aux, check_finite=check_finite
    )
    if self.dynamic:
      self._job = run
    else:
      self._job = lambda p, s, ns, b, v, s0, n_: run(p, s, ns, b, v, s0)
    self.snapshot_mode = (
      comp_lib.resolve_snapshots(config.snapshots, sched.num_slots, sched.ring_size)
      if config.needs_snapshots
      else "none"
    )
    self._place_waves(devices, wave_plan)
    # On several processes every input and output is replicated over the mesh of all
    # their devices: each process holds the whole state and reads its metrics locally.
    self._compile(job_loop)
    self.data = self._put(data)
    self._template = None

  # ---------------------------------------------------------------- construction
  def _compile(self, job_loop: str):
    """The jitted init and run (with replicated inputs and outputs on several processes)."""
    if job_loop not in ("auto", "vmap", "sequential"):
      raise ValueError(f"job_loop={job_loop!r}; use 'auto', 'vmap' or 'sequential'.")
    self.job_loop = job_loop
    out = {} if self._replicated is None else dict(out_shardings=self._replicated)
    # The local steps' carry updated in place on CPU (as the round compiles).
    mesh = self._mesh or jax.make_mesh((1,), ("jobs",), devices=jax.devices()[:1])
    out["compiler_options"] = rounds_lib.compiler_options(mesh)
    self._init_jit = jax.jit(self._init_fn, **out)
    self._run_jit = jax.jit(self._run_fn, donate_argnums=(0,), **out)
    out.pop("compiler_options")
    self._wrap_key = jax.jit(jax.random.wrap_key_data, **out)

  def _place_waves(self, devices: int, wave_plan: str):
    """The device mesh the waves are split over (``devices > 1``) and the schedule's
    waves cut into pieces (:func:`.waves.plan_schedule`)."""
    if devices < 1 or devices > len(jax.devices()):
      raise ValueError(f"devices={devices}; between 1 and {len(jax.devices())} available.")
    if jax.process_count() > 1 and devices != jax.device_count():
      raise ValueError(
        f"devices={devices} on {jax.process_count()} processes: a multi-process simulation "
        f"splits its waves over all {jax.device_count()} devices; pass devices="
        f"{jax.device_count()}."
      )
    self.devices = int(devices)
    self._mesh = self._replicated = None
    if self.devices > 1:
      self._mesh = jax.make_mesh(
        (self.devices,),
        ("jobs",),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=jax.devices()[: self.devices],
      )
      if jax.process_count() > 1:
        self._replicated = jax.sharding.NamedSharding(self._mesh, P())
    if wave_plan not in waves_lib.PLANS:
      raise ValueError(f"wave_plan={wave_plan!r}; choose one of {waves_lib.PLANS}.")
    self.wave_plan = wave_plan
    self._wave0, self._waves = waves_lib.plan_schedule(self.schedule, self.devices, wave_plan)

  def _waves_of(self, st, pieces, x_v, data, version):
    """Runs one version's pieces (``{width: record of (R, width)}``): the R sub-waves in
    order, within a sub-wave each piece (widest first) only if it holds a job; its jobs
    pull model ``version`` (the round index their inner schedules see)."""
    if pieces is None:
      return st

    def one_subwave(st, recs):
      for w in sorted(recs, reverse=True):
        st = self._wave(st, recs[w], x_v, data, version)
      return st

    subs = next(iter(pieces.values()))["valid"].shape[0]
    if subs == 1:
      return one_subwave(st, jax.tree.map(lambda a: a[0], pieces))
    return jax.lax.scan(lambda c, recs: (one_subwave(c, recs), None), st, pieces)[0]

  @property
  def wave_widths(self) -> list:
    """The widths of the pieces the per-step waves are cut into, as compiled (widest
    first)."""
    return [] if self._waves is None else sorted(self._waves, reverse=True)

  def wave_stats(self) -> dict:
    """Useful jobs, computed job slots and their ratio (``utilisation``) over the whole
    horizon, the jobs computed at init included (:func:`.waves.plan_stats`)."""
    return waves_lib.plan_stats(self._wave0, self._waves)

  @property
  def needs_snapshots(self) -> bool:
    return self.config.needs_snapshots

  # ---------------------------------------------------------------- jitted pieces
  def _jobs(self, x_v, inner_st, noise_st, batches, version, step0, steps):
    """The local runs of a piece of jobs (leading axis): vmapped or one after another
    (``job_loop``), unbatched where a device holds one job; split over the devices with
    ``devices > 1``."""

    def run(x, s, ns, b, v, s0, n_):
      if jax.tree.leaves(b)[0].shape[0] == 1:
        sq = lambda t: jax.tree.map(lambda a: a[0], t)  # noqa: E731
        out = self._job(x, sq(s), sq(ns), sq(b), v, s0[0], n_[0])
        return jax.tree.map(lambda a: a[None], out)
      if rounds_lib.resolve_client_loop(self.job_loop, x, None) == "sequential":
        one = lambda a: self._job(x, a[0], a[1], a[2], v, a[3], a[4])  # noqa: E731
        return jax.lax.map(one, (s, ns, b, s0, n_))
      return jax.vmap(self._job, in_axes=(None, 0, 0, 0, None, 0, 0))(x, s, ns, b, v, s0, n_)

    if self._mesh is None:
      return run(x_v, inner_st, noise_st, batches, version, step0, steps)
    ax = "jobs"

    def body(x, s, ns, b, v, s0, n_):
      x = jax.tree.map(lambda p: jax.lax.pcast(p, ax, to="varying"), x)
      return run(x, s, ns, b, v, s0, n_)

    sharded = jax.shard_map(
      body,
      mesh=self._mesh,
      in_specs=(P(), P(ax), P(ax), P(ax), P(), P(ax), P(ax)),
      out_specs=P(ax),
      check_vma=True,
    )
    return sharded(x_v, inner_st, noise_st, batches, version, step0, steps)

  def _batches(self, data, w, j, keys):
    if self.data is None:
      return jax.vmap(self.data_fn)(w, j, keys)
    return jax.vmap(self.data_fn, in_axes=(None, 0, 0, 0))(data, w, j, keys)

  def _wave(self, st: SimState, rec, x_v, data, version) -> SimState:
    n, m = self.num_workers, self.schedule.num_slots
    valid = rec["valid"].astype(bool)

    def compute(st):
      w = jnp.minimum(rec["worker"], n - 1)
      if self.config.reset_inner_state:  # a fresh inner.init for every job
        inner_st = _stack(self.inner.init(x_v), valid.shape[0])
      else:
        inner_st = _gather(st.inner_state, w)
      noise_st = None if st.noise_state is None else _gather(st.noise_state, w)
      keys = jax.vmap(lambda wi, j: jax.random.fold_in(jax.random.fold_in(st.key, wi), j))(
        w, rec["job"]
      )
      batches = self._batches(data, w, rec["job"], keys)
      res = self._jobs(x_v, inner_st, noise_st, batches, version, rec["step0"], rec["steps"])
      widx = jnp.where(valid, rec["worker"], n)
      sidx = jnp.where(valid, rec["slot"], m)
      new = dict(
        inner_state=_scatter(st.inner_state, widx, res.inner_state),
        noise_state=(
          None if st.noise_state is None else _scatter(st.noise_state, widx, res.noise_state)
        ),
        slot_delta=_scatter(st.slot_delta, sidx, res.delta),
        slot_metrics={
          k: v.at[sidx].set(res.metrics[k], mode="drop") for k, v in st.slot_metrics.items()
        },
      )
      if st.slot_xp is not None:
        width = valid.shape[0]
        new["slot_xp"] = _scatter(st.slot_xp, sidx, _stack(x_v, width))
      return st._replace(**new)

    return jax.lax.cond(jnp.any(valid), compute, lambda s: s, st)

  def _init_fn(self, params, key_data, data=None):
    key = jax.random.wrap_key_data(key_data)
    n, m = self.num_workers, self.schedule.num_slots
    inner_state = _stack(self.inner.init(params), n)
    noise_state = None
    if self.noise is not None:
      base = self.noise.init(params)
      noise_state = jax.vmap(lambda i: noise_lib.fold_in_client(base, i))(jnp.arange(n))
    zeros = jax.tree.map(jnp.zeros_like, params)
    slot_xp = _stack(zeros, m) if self.snapshot_mode == "per_job" else None
    ring = None
    if self.snapshot_mode == "ring":
      ring = _stack(zeros, self.schedule.ring_size)
      ring = jax.tree.map(lambda r, p: r.at[0].set(p), ring, params)
    st = SimState(
      params=params,
      outer_state=self.outer.init(params),
      comp_state=server_lib.init_comp_state(self.config, params),
      inner_state=inner_state,
      noise_state=noise_state,
      slot_delta=_stack(zeros, m),
      slot_xp=slot_xp,
      slot_metrics={k: jnp.zeros((m,), jnp.float32) for k in self.local_metric_names(params)},
      ring=ring,
      tick=jnp.zeros([], jnp.int32),
      key=key,
    )
    if self._wave0 is not None:
      wave0 = jax.tree.map(lambda a: jnp.asarray(a[0]), self._wave0)
      st = self._waves_of(st, wave0, params, data, jnp.zeros([], jnp.int32))
    return st

  def _tick(self, st: SimState, xs, data):
    arr, waves = xs
    m = self.schedule.num_slots
    t = st.tick
    valid = arr["valid"].astype(bool)
    sidx = jnp.minimum(arr["slot"], m - 1)
    deltas = _gather(st.slot_delta, sidx)
    taus = t - arr["pulled"]
    diffs = None
    if self.snapshot_mode == "ring":
      xp = _gather(st.ring, arr["pulled"] % self.schedule.ring_size)
      diffs = jax.tree.map(lambda x, p: x[None] - p, st.params, xp)
    elif self.snapshot_mode == "per_job":
      xp = _gather(st.slot_xp, sidx)
      diffs = jax.tree.map(lambda x, p: x[None] - p, st.params, xp)
    params, outer_state, comp_state, metrics = server_lib.server_update(
      self.config,
      self.outer,
      self.outer_clip,
      self.num_workers,
      st.params,
      st.outer_state,
      st.comp_state,
      deltas,
      diffs,
      taus,
      valid,
      t,
      local_metrics={k: v[sidx] for k, v in st.slot_metrics.items()},
      samples=self._samples(arr),
    )
    ring = st.ring
    if ring is not None:
      slot = (t + 1) % self.schedule.ring_size
      ring = jax.tree.map(lambda r, p: r.at[slot].set(p), ring, params)
    st = st._replace(params=params, outer_state=outer_state, comp_state=comp_state, ring=ring)
    st = self._waves_of(st, waves, params, data, t + 1)
    metrics["taus"] = jnp.where(valid, taus, -1)
    # Communication: every applied update is one node's Delta sent up; every job that
    # pulls the new version receives the model. Bytes of the arrays that would cross.
    metrics["bytes_up"] = metrics["num_updates"] * float(comp_lib.tree_bytes(st.params))
    pulled = sum(
      (jnp.sum(rec["valid"].astype(jnp.float32)) for rec in (waves or {}).values()),
      jnp.zeros([], jnp.float32),
    )
    metrics["bytes_down"] = pulled * float(comp_lib.tree_bytes(st.params))
    return st._replace(tick=t + 1), metrics

  def _samples(self, arr):
    """The examples behind each buffered update (``merge``), or None for uniform merging."""
    if self.config.merge == "steps":
      return arr["steps"].astype(jnp.float32)
    if self.config.merge == "dataset":
      counts = jnp.asarray(self.config.worker_samples + (0.0,), jnp.float32)
      return counts[arr["worker"]]  # worker N (padding) -> 0
    return None

  def _run_fn(self, st, arr, waves, data):
    return jax.lax.scan(lambda c, x: self._tick(c, x, data), st, (arr, waves))

  def _put(self, tree):
    """Host values (numpy or arrays on this process) as inputs of the jitted functions: on
    one process as they are, on several replicated over every process's devices (each
    process passes the same values: the schedule and the data are computed identically)."""
    if self._replicated is None or tree is None:
      return tree
    rep = self._replicated

    def one(x):
      if _is_key(x):
        return self._wrap_key(one(jax.random.key_data(x)))
      a = np.asarray(x)
      return jax.make_array_from_callback(a.shape, rep, lambda idx: a[idx])

    return jax.tree.map(one, tree)

  def local_metric_names(self, params) -> list:
    """Names of the per-job metrics (averaged into each server step's metrics):
    ``loss``, ``nonfinite_frac`` (with ``check_finite``) and the inner state's measurements
    (``inner_*``)."""
    names = jax.eval_shape(lambda p: clipping.measurements(self.inner.init(p), "inner_"), params)
    return ["loss"] + (["nonfinite_frac"] if self.check_finite else []) + sorted(names)

  # ---------------------------------------------------------------- public API
  def init(self, params, seed: int = 0) -> SimState:
    """The initial state: x_0, outer state, per-worker states, and every job pulled at
    version 0 already computed (vmapped). ``seed`` seeds the data keys."""
    key_data = jax.random.key_data(jax.random.key(seed))
    st = self._init_jit(self._put(params), self._put(key_data), self.data)
    self._template = jax.eval_shape(lambda s: s, st)
    return st

  def run(self, state: SimState, num_steps: Optional[int] = None):
    """Runs ``num_steps`` server steps (default: to the horizon) in one jitted scan.

    Blocks on the result. Returns ``(state, metrics)`` with metrics as numpy arrays with a
    leading axis of ``num_steps`` (see the module doc). The input state is donated.
    """
    t0 = int(state.tick)
    n = self.num_steps - t0 if num_steps is None else int(num_steps)
    if n < 1 or t0 + n > self.num_steps:
      raise ValueError(
        f"run(num_steps={num_steps}) from server step {t0}: the schedule "
        f"has {self.num_steps} steps; ask for 1..{self.num_steps - t0}."
      )
    sl = slice(t0, t0 + n)
    sched = self.schedule
    arr = {k: jnp.asarray(sched.arr[k][sl]) for k in ("slot", "worker", "pulled", "valid", "steps")}
    waves = None
    if self._waves is not None:
      waves = jax.tree.map(lambda a: jnp.asarray(a[sl]), self._waves)
    state, metrics = self._run_jit(state, self._put(arr), self._put(waves), self.data)
    metrics = jax.device_get(metrics)
    metrics["time"] = sched.tick_time[sl].copy()
    metrics["workers"] = sched.arr["worker"][sl].copy()  # N marks padding
    metrics["pulled"] = np.where(sched.arr["valid"][sl] > 0, sched.arr["pulled"][sl], -1)
    metrics["version"] = np.arange(t0 + 1, t0 + n + 1)
    return state, metrics

  def goodput(self) -> dict:
    """Useful local steps ÷ all local steps done by the horizon, with the lost and abandoned
    work (:meth:`.clock.Schedule.goodput`)."""
    return self.schedule.goodput()

  def tau_stats(self) -> dict:
    """max, mean and histogram of the staleness of every applied update."""
    return self.schedule.tau_stats()

  def memory_report(self, state: SimState) -> dict:
    """Bytes of the parts of the state (server snapshots are the algorithm's cost; the slots
    of pending Deltas are the simulator's in-flight store)."""
    pb = comp_lib.tree_bytes(state.params)
    rep = comp_lib.memory_report(
      pb,
      num_slots=self.schedule.num_slots,
      ring_size=self.schedule.ring_size,
      snapshots=self.config.snapshots,
      needs_snapshots=self.needs_snapshots,
      adaptive=self.config.compensation.kind == "adaptive",
    )
    rep.update(
      param_bytes=pb,
      outer_state_bytes=comp_lib.tree_bytes(state.outer_state),
      inner_state_bytes=comp_lib.tree_bytes(state.inner_state),
      inflight_delta_bytes=comp_lib.tree_bytes(state.slot_delta),
      num_slots=self.schedule.num_slots,
      ring_size=self.schedule.ring_size,
      max_staleness=self.schedule.max_staleness,
    )
    return rep

  def meta(self) -> dict:
    """JSON-able description of the run (configs and the schedule's fingerprint)."""
    return dict(
      format=STATE_FORMAT,
      fingerprint=self.schedule.fingerprint,
      num_steps=self.num_steps,
      method=self.method.name,
      clock=self.clock.to_dict(),
      config=self.config.to_dict(),
    )

  def state_dict(self, state: SimState):
    """``(tree, meta)``: a pytree of numpy arrays (dict of the :class:`SimState` fields,
    PRNG key as raw data) and a small JSON-able dict with the position in the event
    schedule (``tick``) and what is needed to check a resume matches."""
    tree = {f: jax.tree.map(_to_numpy, getattr(state, f)) for f in SimState._fields}
    meta = self.meta()
    meta["tick"] = int(state.tick)
    json.dumps(meta)  # must be JSON-able
    return tree, meta

  def state_dict_template(self, params_like) -> dict:
    """The structure of :meth:`state_dict`'s tree as ``jax.ShapeDtypeStruct`` leaves (a
    restore target for orbax), without computing anything."""
    if self._template is None:
      self._template = jax.eval_shape(self._init_fn, params_like, _key0(), self.data)
    conv = lambda l: jax.eval_shape(jax.random.key_data, l) if _is_key(l) else l  # noqa
    return {f: jax.tree.map(conv, getattr(self._template, f)) for f in SimState._fields}

  def load_state_dict(self, tree, meta: dict, params_like=None) -> SimState:
    """Rebuilds a :class:`SimState` from :meth:`state_dict`'s output (e.g. after orbax).

    The simulator must be built with the same clock, config and horizon (checked through
    the schedule fingerprint). Needs :meth:`init` to have run, or ``params_like``.
    """
    if meta.get("fingerprint") != self.schedule.fingerprint:
      raise ValueError(
        "load_state_dict: the saved run's schedule fingerprint "
        f"{meta.get('fingerprint')!r} differs from this simulator's "
        f"{self.schedule.fingerprint!r}; build the Simulator with the same ClockConfig, "
        "AsyncConfig and num_steps as the saved run."
      )
    if self._template is None:
      if params_like is None:
        raise ValueError(
          "load_state_dict needs params_like (or call init first) to know the state's structure."
        )
      self._template = jax.eval_shape(self._init_fn, params_like, _key0(), self.data)
    fields = {}
    for f in SimState._fields:
      like = getattr(self._template, f)
      leaves = jax.tree.leaves(tree[f])
      like_leaves, treedef = jax.tree.flatten(like)
      if len(leaves) != len(like_leaves):
        raise ValueError(
          f"load_state_dict: field {f!r} has {len(leaves)} arrays, expected {len(like_leaves)}."
        )
      fields[f] = jax.tree.unflatten(
        treedef, [_from_numpy(x, l) for x, l in zip(leaves, like_leaves)]
      )
    st = self._put(SimState(**fields))
    if int(st.tick) != int(meta["tick"]):
      raise ValueError(f"load_state_dict: state tick {int(st.tick)} != meta tick {meta['tick']}.")
    return st
