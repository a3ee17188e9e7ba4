r"""The simulated clock: a runtime model of the workers and the event schedule it implies.

A *job* is: pull the server model (version :math:`v`), run :math:`H` local inner steps,
push :math:`\Delta = x_v - x_\text{local}` together with :math:`v`. Its duration on worker
:math:`i` is

.. math::

    \mathrm{dur} = H \cdot s_i \cdot \xi + c

with :math:`s_i` the worker's seconds per step (a fixed list, :math:`s_0 e^{\sigma Z}` with
:math:`Z \sim N(0,1)`, or "a fraction :math:`p` of stragglers slowed by :math:`S`"),
:math:`\xi` per-job noise (1, Exp(1) or LogNormal(0, :math:`\sigma_\xi^2`)) and :math:`c` a
communication latency. The runtime model is our decision (spec ``async.md``, "The model of
time"); every part of it is a :class:`ClockConfig` field.

Because the order of events depends only on this model and not on the numbers trained,
the whole schedule is computed up front by :func:`make_schedule` (numpy, event driven),
reproducibly from ``ClockConfig.seed``: worker ``w``'s ``j``-th job duration is drawn from
its own stream ``default_rng([seed, 1, w])``, so it is the same for every scheme and method.

Staleness :math:`\tau` of an update = the server version when it is applied minus the version
it was pulled at. Server versions count server steps (a step that a delay-aware rate
drops still counts as a version [our decision], so the schedule never depends on the numbers).

The schedule is turned into fixed-shape arrays for the jitted simulator (:mod:`.simulator`):

* tick ``s`` (``s = 0..T-1``) = server step ``s``: consumes the arrivals ``arr_*[s]`` (width
  ``A``: ``K`` for the buffered schemes, ``N`` for wait-for-all/deadline, masked by
  ``arr_valid``), applies one outer step (version ``s -> s+1``), then computes every job
  pulled at version ``s+1`` (``waves[r][s]``). Jobs pulled at version 0 are computed at init
  (``wave0``). A job is computed as soon as its start model exists, which is exact because a
  job's result depends only on the model it pulled and on its worker's own state.
* A wave is split in sub-waves ``r = 0, 1, ...``: sub-wave ``r`` holds the ``(r+1)``-th job of
  each worker pulled at that version (a fast worker can pull the same version twice), so that
  within a sub-wave workers are distinct and a worker's jobs run in order (its inner optimizer
  and noise states carry over). Sub-waves are padded to a fixed width with a mask.
* Only jobs whose update is applied within the horizon are computed (jobs discarded by the
  drop-stragglers baseline, or still in flight at the end, are not).
* Each computed job's result lives in a *slot* from its computation to its arrival; slots are
  allocated here, ``num_slots`` is the most ever in use.

Simultaneous events (equal speeds without noise) [our decision, option ``ties``]: with
``'batch'`` (default) all pushes at one instant are processed (in worker order, possibly
filling several buffers) before the pushing workers pull, so they all pull the newest model;
with K = N and equal speeds this is exactly the synchronous round. ``'sequential'`` handles
each event completely (push, maybe step, pull) before the next.
"""

from __future__ import annotations

import dataclasses
import hashlib
import collections
import heapq
import json
from typing import Optional

import numpy as np

from tailopt.asynchronous import membership

SPEED_MODELS = ("fixed", "lognormal", "stragglers")
JOB_NOISE = ("none", "exponential", "lognormal")
SCHEMES = ("buffered", "async", "sync", "drop", "deadline", "quorum")
TIES = ("batch", "sequential")


@dataclasses.dataclass(frozen=True)
class ClockConfig:
  """Runtime model of the workers. Defaults are our decisions.

  Attributes:
    num_workers: N.
    speeds: ``'fixed'`` (``step_times``, default all ``base_step_time``), ``'lognormal'``
      (``s_i = base_step_time * exp(speed_sigma * Z_i)``) or ``'stragglers'``
      (``round(straggler_fraction * N)`` workers chosen at random have
      ``s_i = base_step_time * straggler_slowdown``, the rest ``base_step_time``).
    step_times: per-worker seconds per local step for ``speeds='fixed'``.
    base_step_time: s_0, seconds per local step.
    speed_sigma: sigma of the log-normal speeds.
    straggler_fraction, straggler_slowdown: p and S of the straggler model.
    job_noise: per-job multiplicative noise xi: ``'none'`` (1), ``'exponential'`` (Exp(1),
      mean 1) or ``'lognormal'`` (exp(noise_sigma * Z)).
    noise_sigma: sigma of log-normal job noise.
    comm_latency: c, seconds added to every job (pull + push).
    seed: seed of the whole schedule (speeds, job noise and failures).
    failure_rate: lambda, failures per second of a worker's up time (0: none); see
      :mod:`.membership`.
    rejoin_rate: mu, rejoins per second of down time (mean down time 1 / mu); > 0 with
      failures.
    failures: explicit down periods ``((worker, down_at, up_at), ...)`` instead of the
      random ones (scripted scenarios, tests).
    job_times: replayed measurements instead of ``H s_i xi``: one tuple of seconds per
      worker, its jobs in order, cycled past the last (``tailopt.timing.load_replay`` reads
      them from a CSV); ``c`` is still added. None (default): the model above.
  """

  num_workers: int = 8
  speeds: str = "lognormal"
  step_times: Optional[tuple] = None
  base_step_time: float = 1.0
  speed_sigma: float = 0.5
  straggler_fraction: float = 0.25
  straggler_slowdown: float = 4.0
  job_noise: str = "lognormal"
  noise_sigma: float = 0.25
  comm_latency: float = 0.0
  seed: int = 0
  failure_rate: float = 0.0
  rejoin_rate: float = 0.0
  failures: Optional[tuple] = None
  job_times: Optional[tuple] = None

  def __post_init__(self):
    if self.step_times is not None and not isinstance(self.step_times, tuple):
      object.__setattr__(self, "step_times", tuple(float(x) for x in self.step_times))
    if self.job_times is not None:
      jt = tuple(tuple(float(x) for x in w) for w in self.job_times)
      object.__setattr__(self, "job_times", jt)
    if self.failures is not None:
      object.__setattr__(
        self, "failures", tuple((int(w), float(a), float(b)) for w, a, b in self.failures)
      )
    self.validate()
    self._validate_failures()

  def _validate_failures(self):
    if self.failure_rate < 0 or self.rejoin_rate < 0:
      raise ValueError("ClockConfig.failure_rate and rejoin_rate must be >= 0 (per second).")
    if self.failure_rate > 0 and self.rejoin_rate <= 0:
      raise ValueError(
        f"ClockConfig.failure_rate={self.failure_rate} needs rejoin_rate > 0 (a failed "
        "worker must come back, or the server could wait forever)."
      )
    if self.failures is not None and self.failure_rate > 0:
      raise ValueError("ClockConfig: give failures (explicit periods) or failure_rate, not both.")
    for w, a, b in self.failures or ():
      if not (0 <= w < self.num_workers and 0 < a < b < float("inf")):
        raise ValueError(
          f"ClockConfig.failures entry ({w}, {a}, {b}) must be (worker in [0, "
          f"{self.num_workers}), down_at > 0, up_at > down_at), finite."
        )

  def validate(self):
    if not isinstance(self.num_workers, (int, np.integer)) or self.num_workers < 1:
      raise ValueError(
        f"ClockConfig.num_workers must be an integer >= 1, got {self.num_workers!r}."
      )
    if self.speeds not in SPEED_MODELS:
      raise ValueError(f"Unknown ClockConfig.speeds={self.speeds!r}; choose one of {SPEED_MODELS}.")
    if self.job_noise not in JOB_NOISE:
      raise ValueError(
        f"Unknown ClockConfig.job_noise={self.job_noise!r}; choose one of {JOB_NOISE}."
      )
    if self.step_times is not None:
      if self.speeds != "fixed":
        raise ValueError("ClockConfig.step_times is only used with speeds='fixed'.")
      if len(self.step_times) != self.num_workers:
        raise ValueError(
          f"ClockConfig.step_times has {len(self.step_times)} entries for "
          f"num_workers={self.num_workers}; give one per worker."
        )
      if min(self.step_times) <= 0:
        raise ValueError("ClockConfig.step_times must all be > 0 seconds per step.")
    if self.base_step_time <= 0:
      raise ValueError(f"ClockConfig.base_step_time={self.base_step_time} must be > 0.")
    if not 0.0 <= self.straggler_fraction <= 1.0:
      raise ValueError(
        f"ClockConfig.straggler_fraction={self.straggler_fraction} must be in [0, 1]."
      )
    if self.straggler_slowdown < 1.0:
      raise ValueError(
        f"ClockConfig.straggler_slowdown={self.straggler_slowdown} must be "
        ">= 1 (a factor by which stragglers are slower)."
      )
    if self.speed_sigma < 0 or self.noise_sigma < 0:
      raise ValueError("ClockConfig.speed_sigma and noise_sigma must be >= 0.")
    if self.comm_latency < 0:
      raise ValueError(f"ClockConfig.comm_latency={self.comm_latency} must be >= 0.")
    if self.job_times is not None and (
      len(self.job_times) != self.num_workers
      or not all(len(w) and min(w) >= 0 for w in self.job_times)
    ):
      raise ValueError(
        f"ClockConfig.job_times needs one non-empty list of seconds >= 0 per worker "
        f"({self.num_workers}); got {len(self.job_times)}."
      )

  def step_time_per_worker(self) -> np.ndarray:
    """s_i, seconds per local step of each worker (float64, shape (N,))."""
    n = self.num_workers
    rng = np.random.default_rng([self.seed, 0])
    if self.speeds == "fixed":
      if self.step_times is None:
        return np.full(n, self.base_step_time, np.float64)
      return np.asarray(self.step_times, np.float64)
    if self.speeds == "lognormal":
      return self.base_step_time * np.exp(self.speed_sigma * rng.standard_normal(n))
    slow = rng.permutation(n)[: int(round(self.straggler_fraction * n))]
    s = np.full(n, self.base_step_time, np.float64)
    s[slow] *= self.straggler_slowdown
    return s

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    if d["step_times"] is not None:
      d["step_times"] = list(d["step_times"])
    if d["failures"] is not None:
      d["failures"] = [list(x) for x in d["failures"]]
    if d["job_times"] is None:
      del d["job_times"]  # absent, as before replays existed (schedule fingerprints)
    else:
      d["job_times"] = [list(w) for w in d["job_times"]]
    return d

  @property
  def has_failures(self) -> bool:
    return self.failure_rate > 0 or bool(self.failures)


def dynamic_local_steps(step_times: np.ndarray, max_steps: int) -> np.ndarray:
  r"""Dynamic local updates (DyLU, Liu et al. 2024, arXiv 2401.09135).

  :math:`H_w = \lfloor v_w / \max_u v_u \cdot H \rfloor` with :math:`v_w = 1/s_w` the
  worker's speed, at least 1, so every worker's job takes about the same time.
  """
  v = 1.0 / np.asarray(step_times, np.float64)
  h = np.floor(v / v.max() * max_steps + 1e-9).astype(np.int64)
  return np.maximum(h, 1)


@dataclasses.dataclass
class Job:
  worker: int
  index: int  # the worker's job counter
  pulled: int  # server version pulled
  start: float
  arrival: float
  steps: int
  consumed_tick: int = -1  # tick whose server step applies it; -1: never (discarded)
  step0: int = 0  # the worker's computed local steps before this job
  slot: int = -1
  lost_at: float = -1.0  # when its worker went down mid-job (the Delta never arrives); -1: not
  abandoned_at: float = -1.0  # when a synchronous round closed without it; -1: not


@dataclasses.dataclass
class Schedule:
  """A precomputed event schedule in fixed-shape numpy arrays (see module doc)."""

  scheme: str
  num_workers: int
  num_steps: int  # T ticks = server steps
  arrivals_per_step: int  # A
  max_local_steps: int  # H (batch length of every job)
  step_times: np.ndarray  # (N,) seconds per step
  local_steps: np.ndarray  # (N,) H_w
  tick_time: np.ndarray  # (T,) simulated time of each server step
  arr: dict  # slot, worker, pulled, valid: (T, A) int32; time (T, A)
  wave0: list  # sub-waves of version 0: dicts of (W,) arrays
  waves: list  # sub-waves of versions 1..T: dicts of (T, W) arrays
  num_slots: int  # M
  max_staleness: int
  jobs: list  # every job started (Job records)
  fingerprint: str

  @property
  def ring_size(self) -> int:
    return self.max_staleness + 1

  @property
  def taus(self) -> np.ndarray:
    """Staleness of every applied update, in application order."""
    t = np.arange(self.num_steps)[:, None] - self.arr["pulled"]
    return t[self.arr["valid"].astype(bool)]

  @property
  def computed_local_steps(self) -> int:
    """Local steps actually computed (jobs whose update is applied)."""
    return int(sum(j.steps for j in self.jobs if j.consumed_tick >= 0))

  def goodput(self) -> dict:
    r"""Useful local steps ÷ all local steps done by the horizon (the last server step).

    Useful: the steps of every applied job. Wasted: the steps done of every job lost to a
    failure or abandoned by a closing synchronous round (``drop``, ``deadline``) by the
    horizon, counted pro rata of the job's duration (steps spread evenly over it). Jobs
    still in flight at the horizon (running, or arrived and not yet applied) are neither.
    Returns ``goodput`` and the counts (``useful_steps``, ``wasted_steps``, ``lost_jobs``,
    ``lost_steps``, ``abandoned_jobs``, ``abandoned_steps``).
    """
    horizon = float(self.tick_time[-1]) if len(self.tick_time) else 0.0
    useful = lost = abandoned = 0.0
    n_lost = n_abandoned = 0
    for j in self.jobs:
      if j.consumed_tick >= 0:
        useful += j.steps
        continue
      end = min(x for x in (j.lost_at, j.abandoned_at, np.inf) if x >= 0)
      if end > horizon or end <= j.start:  # in flight, or never begun (a retry after close)
        continue
      frac = min(1.0, max(0.0, (end - j.start) / max(j.arrival - j.start, 1e-300)))
      if j.lost_at >= 0 and j.lost_at == end:
        lost, n_lost = lost + frac * j.steps, n_lost + 1
      else:
        abandoned, n_abandoned = abandoned + frac * j.steps, n_abandoned + 1
    wasted = lost + abandoned
    return dict(
      goodput=float(useful / (useful + wasted)) if useful + wasted > 0 else 1.0,
      useful_steps=float(useful),
      wasted_steps=float(wasted),
      lost_jobs=n_lost,
      lost_steps=float(lost),
      abandoned_jobs=n_abandoned,
      abandoned_steps=float(abandoned),
    )

  def tau_stats(self) -> dict:
    t = self.taus
    hist = np.bincount(t, minlength=1) if t.size else np.zeros(1, np.int64)
    return dict(
      max=int(t.max(initial=0)), mean=float(t.mean()) if t.size else 0.0, histogram=hist.tolist()
    )


def _xi(clock: ClockConfig, rng: np.random.Generator) -> float:
  if clock.job_noise == "none":
    return 1.0
  if clock.job_noise == "exponential":
    return float(rng.exponential(1.0))
  return float(np.exp(clock.noise_sigma * rng.standard_normal()))


def _check_quorum(quorum, k: int) -> None:
  """Validates ``quorum = (Q, grace_k, window)`` against the cap K."""
  if quorum is None or len(quorum) != 3:
    raise ValueError("scheme='quorum' needs quorum=(min_quorum Q, grace_k, grace_window).")
  q, gk, win = quorum
  if not isinstance(q, (int, np.integer)) or not 1 <= q <= k:
    raise ValueError(f"min_quorum Q={q!r} must be an integer with 1 <= Q <= K={k} (the cap).")
  if not gk >= 0:
    raise ValueError(f"grace_k={gk!r} must be >= 0 (window = median + grace_k * MAD).")
  if not isinstance(win, (int, np.integer)) or win < 1:
    raise ValueError(f"grace_window={win!r} must be an integer >= 1 (recent arrivals).")


def _check_schedule_args(clock, scheme, buffer_size, local_steps, num_steps, ties, deadline):
  """Validates :func:`make_schedule`'s arguments; returns the buffer size K the scheme uses
  (1 for ``'async'``, N for ``'sync'``, else ``buffer_size`` as given)."""
  n = clock.num_workers
  if scheme not in SCHEMES:
    raise ValueError(f"Unknown scheme {scheme!r}; choose one of {SCHEMES}.")
  if ties not in TIES:
    raise ValueError(f"Unknown ties={ties!r}; choose one of {TIES}.")
  if not isinstance(local_steps, (int, np.integer)) or local_steps < 1:
    raise ValueError(f"local_steps must be an integer >= 1, got {local_steps!r}.")
  if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
    raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}.")
  if scheme == "async":
    buffer_size = 1
  if scheme == "sync":
    buffer_size = n
  if scheme in ("buffered", "async", "drop", "quorum"):
    if not isinstance(buffer_size, (int, np.integer)) or not 1 <= buffer_size <= n:
      raise ValueError(
        f"buffer_size K={buffer_size!r} must be an integer with 1 <= K <= num_workers="
        f"{n} (the server cannot wait for more updates than there are workers)."
      )
  if scheme == "deadline" and (deadline is None or deadline <= 0):
    raise ValueError("scheme='deadline' needs deadline > 0 (seconds per round).")
  return buffer_size


class _JobLog:
  """Every job started, in start order, with its duration ``H_w s_w xi + c``: worker ``w``'s
  ``j``-th noise ``xi`` comes from its own stream ``default_rng([seed, 1, w])``; a job whose
  worker goes down before it arrives is marked lost (:mod:`.membership`)."""

  def __init__(self, clock: ClockConfig, step_times: np.ndarray, local_steps: np.ndarray):
    self.clock, self.s, self.h_w = clock, step_times, local_steps
    n = clock.num_workers
    self.rngs = [np.random.default_rng([clock.seed, 1, w]) for w in range(n)]
    self.lines = membership.timelines(clock)
    self.counts = [0] * n
    self.jobs: list[Job] = []

  def start(self, w: int, t: float, v: int) -> int:
    """Worker ``w`` (up at ``t``) pulls version ``v`` at time ``t``; returns the new job's
    id. If the worker goes down before the job arrives, the job's ``lost_at`` is set."""
    if self.clock.job_times is not None:  # replayed seconds, cycled
      times = self.clock.job_times[w]
      dur = times[self.counts[w] % len(times)] + self.clock.comm_latency
    else:
      dur = self.h_w[w] * self.s[w] * _xi(self.clock, self.rngs[w]) + self.clock.comm_latency
    j = Job(
      worker=w, index=self.counts[w], pulled=v, start=t, arrival=t + dur, steps=int(self.h_w[w])
    )
    down, _ = self.lines[w].next_failure(t)
    if down < j.arrival:
      j.lost_at = down
    self.counts[w] += 1
    self.jobs.append(j)
    return len(self.jobs) - 1

  def rejoin(self, jid: int) -> float:
    """When the worker of lost job ``jid`` is back up."""
    j = self.jobs[jid]
    return self.lines[j.worker].up_at(j.lost_at)


ARRIVAL, REJOIN, TIMER = 0, 1, 2  # event kinds; at one instant arrivals come first


class _Server:
  """The buffered servers' step rule: a step once the buffer holds K updates, or (``quorum``
  = ``(Q, k, window)``) at least Q and the grace window since the last step has passed."""

  def __init__(self, k: int, quorum=None):
    self.k, self.quorum = k, quorum
    self.buf: list[int] = []
    self.version, self.opened = 0, 0.0
    self.deadline = float("inf")
    if quorum:
      self.delays = collections.deque(maxlen=quorum[2])

  def push(self, jid: int, t: float) -> tuple[bool, Optional[float]]:
    """Adds an arrival; returns (step now, time of a grace timer to set or None)."""
    self.buf.append(jid)
    if not self.quorum:
      return len(self.buf) == self.k, None
    self.delays.append(t - self.opened)
    q = self.quorum[0]
    if len(self.buf) == self.k or (len(self.buf) >= q and t >= self.deadline):
      return True, None
    return False, (self.deadline if len(self.buf) == q and self.deadline < np.inf else None)

  def step(self, t: float) -> tuple:
    """Closes the buffer at ``t``; returns the tick ``(t, job ids)``."""
    tick = (t, self.buf)
    self.buf, self.version, self.opened = [], self.version + 1, t
    if self.quorum:
      self.deadline = t + membership.grace_window(list(self.delays), self.quorum[1])
    return tick


def _buffered_ticks(log: _JobLog, k: int, num_steps: int, ties: str, quorum=None) -> list:
  """Event loop of the buffered schemes (``'buffered'``, ``'async'``, ``'quorum'``): a
  worker pulls the newest version as soon as it has pushed (see ``ties``) or rejoined.
  Returns the ticks ``[(time, [job ids in application order])]``."""
  jobs, n = log.jobs, log.clock.num_workers
  ticks, heap, srv = [], [], _Server(k, quorum)

  def begin(w, t):
    jid = log.start(w, t, srv.version)
    if jobs[jid].lost_at >= 0:
      heapq.heappush(heap, (log.rejoin(jid), REJOIN, w, jid))
    else:
      heapq.heappush(heap, (jobs[jid].arrival, ARRIVAL, w, jid))

  for w in range(n):
    begin(w, 0.0)
  while len(ticks) < num_steps:
    t, kind, w, jid = heapq.heappop(heap)
    if kind == REJOIN:
      begin(w, t)
      continue
    if kind == TIMER:
      if jid == srv.version and srv.buf:
        ticks.append(srv.step(t))
      continue
    group = [(w, jid)]
    while ties == "batch" and heap and heap[0][:2] == (t, ARRIVAL):
      group.append(heapq.heappop(heap)[2:])
    pulls = []
    for w, jid in group:
      if len(ticks) >= num_steps:
        break
      now, timer = srv.push(jid, t)
      if now:
        ticks.append(srv.step(t))
      elif timer is not None:
        heapq.heappush(heap, (timer, TIMER, -1, srv.version))
      if ties == "sequential":
        begin(w, t)
      else:
        pulls.append(w)
    for w in pulls:
      begin(w, t)
  return ticks


def _close_round(jobs, order, scheme, k, t0, deadline, n):
  """The jobs a synchronous round keeps (``order``: its jobs by arrival) and when it closes:
  all (``'sync'``), the fastest K (``'drop'``) or those in by the deadline, at least one."""
  if scheme == "sync":
    return order, jobs[order[-1]].arrival
  if scheme == "drop":
    kept = order[:k]
    return kept, jobs[kept[-1]].arrival
  kept = [i for i in order if jobs[i].arrival <= t0 + deadline] or order[:1]
  close = jobs[order[-1]].arrival if len(kept) == n else max(t0 + deadline, jobs[kept[-1]].arrival)
  return kept, close


def _attempt(log: _JobLog, w: int, t0: float, r: int) -> int:
  """Worker ``w``'s job of round ``r`` (started at ``t0``, or when it is back up): retried
  after every failure, pulling version ``r`` again; returns the job that arrives."""
  jid = log.start(w, log.lines[w].up_at(t0), r)
  while log.jobs[jid].lost_at >= 0:
    jid = log.start(w, log.rejoin(jid), r)
  return jid


def _round_ticks(log: _JobLog, scheme: str, k: int, num_steps: int, deadline) -> list:
  """Rounds of the synchronous schemes (``'sync'``, ``'drop'``, ``'deadline'``): every
  worker pulls at the round's start (a worker that is down, when it is back up; a failed
  job is redone); the next round starts when it closes, abandoning the jobs it did not keep.
  Returns the ticks ``[(time, [kept job ids in worker order])]``."""
  jobs, n = log.jobs, log.clock.num_workers
  ticks = []
  t0 = 0.0
  for r in range(num_steps):
    first = len(jobs)
    ids = [_attempt(log, w, t0, r) for w in range(n)]
    order = sorted(ids, key=lambda i: (jobs[i].arrival, jobs[i].worker))
    kept, close = _close_round(jobs, order, scheme, k, t0, deadline, n)
    keep = set(kept)
    for i in range(first, len(jobs)):
      j = jobs[i]
      if i not in keep and j.lost_at < 0:
        j.abandoned_at = close
      elif j.lost_at > close:  # the round closed first: abandoned, not lost
        j.lost_at, j.abandoned_at = -1.0, close
    ticks.append((close, sorted(kept, key=lambda i: jobs[i].worker)))
    t0 = close
  return ticks


def _mark_consumed(jobs: list, ticks: list, n: int) -> None:
  """Sets each applied job's ``consumed_tick`` and its worker's local-step counter
  ``step0`` (computed jobs only, in each worker's job order)."""
  for tick, (_, ids) in enumerate(ticks):
    for i in ids:
      jobs[i].consumed_tick = tick
  done = [0] * n
  for j in jobs:  # jobs of one worker appear in index order
    if j.consumed_tick >= 0:
      j.step0 = done[j.worker]
      done[j.worker] += j.steps


def _allocate_slots(jobs: list) -> tuple[list, int]:
  """Gives every computed job a slot, held from its computation to its arrival; returns
  the computed job ids (in computation order) and the number of slots M (at least 1).

  Positions: the wave of version v is computed at 2v - 1; tick a reads its arrivals at 2a.
  """
  computed = [i for i, j in enumerate(jobs) if j.consumed_tick >= 0]
  computed.sort(key=lambda i: (jobs[i].pulled, jobs[i].start, jobs[i].worker, jobs[i].index))
  free: list[int] = []
  busy: list[tuple[int, int]] = []  # (read position, slot)
  num_slots = 0
  for i in computed:
    j = jobs[i]
    pos = 2 * j.pulled - 1
    while busy and busy[0][0] < pos:
      heapq.heappush(free, heapq.heappop(busy)[1])
    if free:
      j.slot = heapq.heappop(free)
    else:
      j.slot = num_slots
      num_slots += 1
    heapq.heappush(busy, (2 * j.consumed_tick, j.slot))
  return computed, max(num_slots, 1)


def _arrival_arrays(jobs, ticks, width, n, num_steps, num_slots) -> dict:
  """The server's buffers: ``(T, A)`` arrays ``slot``, ``worker``, ``pulled``, ``valid``,
  ``time`` and ``steps`` (local steps) of the updates each tick applies (padding: slot M,
  worker N, valid 0)."""
  arr = dict(
    slot=np.full((num_steps, width), num_slots, np.int32),
    worker=np.full((num_steps, width), n, np.int32),
    pulled=np.zeros((num_steps, width), np.int32),
    valid=np.zeros((num_steps, width), np.int32),
    time=np.zeros((num_steps, width), np.float64),
    steps=np.zeros((num_steps, width), np.int32),
  )
  for tick, (_, ids) in enumerate(ticks):
    for c, i in enumerate(ids):
      j = jobs[i]
      arr["slot"][tick, c] = j.slot
      arr["worker"][tick, c] = j.worker
      arr["pulled"][tick, c] = j.pulled
      arr["valid"][tick, c] = 1
      arr["time"][tick, c] = j.arrival
      arr["steps"][tick, c] = j.steps
  return arr


def _max_staleness(arr: dict, num_steps: int) -> int:
  """The largest staleness (tick minus version pulled) of an applied update, 0 if none."""
  valid = arr["valid"].astype(bool)
  taus = (np.arange(num_steps)[:, None] - arr["pulled"])[valid]
  return int(taus.max(initial=0))


def _split_subwaves(jobs: list, ids: list) -> list:
  """Splits the jobs of one version into sub-waves: sub-wave r holds each worker's
  (r+1)-th job (by worker, then job index)."""
  subs: list[list[int]] = []
  seen: dict[int, int] = {}
  for i in sorted(ids, key=lambda i: (jobs[i].worker, jobs[i].index)):
    r = seen.get(jobs[i].worker, 0)
    seen[jobs[i].worker] = r + 1
    while len(subs) <= r:
      subs.append([])
    subs[r].append(i)
  return subs


def _empty_wave(shape, n: int, num_slots: int) -> dict:
  """A wave record of padding (worker N, slot M, valid 0) of the given shape."""
  return dict(
    worker=np.full(shape, n, np.int32),
    job=np.zeros(shape, np.int32),
    slot=np.full(shape, num_slots, np.int32),
    step0=np.zeros(shape, np.int32),
    steps=np.zeros(shape, np.int32),
    valid=np.zeros(shape, np.int32),
  )


def _fill_wave(rec: dict, idx, j: Job) -> None:
  """Writes job ``j`` at position ``idx`` of a wave record."""
  rec["worker"][idx] = j.worker
  rec["job"][idx] = j.index
  rec["slot"][idx] = j.slot
  rec["step0"][idx] = j.step0
  rec["steps"][idx] = j.steps
  rec["valid"][idx] = 1


def _make_waves(jobs, computed, n, num_slots, num_steps) -> tuple[list, list]:
  """The computed jobs grouped by version pulled, split into sub-waves: ``wave0`` (version
  0, records of shape ``(W,)``) and ``waves`` (versions 1..T at row v - 1, ``(T, W)``)."""
  by_version: dict[int, list[int]] = {}
  for i in computed:
    by_version.setdefault(jobs[i].pulled, []).append(i)
  wave0 = []
  for sub in _split_subwaves(jobs, by_version.get(0, [])):
    rec = _empty_wave((len(sub),), n, num_slots)
    for c, i in enumerate(sub):
      _fill_wave(rec, c, jobs[i])
    wave0.append(rec)
  later = {v: _split_subwaves(jobs, ids) for v, ids in by_version.items() if v >= 1}
  n_sub = max((len(x) for x in later.values()), default=0)
  waves = []
  for r in range(n_sub):
    w_r = max(len(x[r]) for x in later.values() if len(x) > r)
    rec = _empty_wave((num_steps, w_r), n, num_slots)
    for v, subs in later.items():
      if len(subs) > r:
        for c, i in enumerate(subs[r]):
          _fill_wave(rec, (v - 1, c), jobs[i])
    waves.append(rec)
  return wave0, waves


def _fingerprint(clock, tick_time, **settings) -> str:
  """16 hex digits of sha256 over the clock, the schedule's settings and the tick times."""
  h = hashlib.sha256()
  c = clock.to_dict()
  if not clock.has_failures:  # the fingerprints of runs from before failures existed
    for key in ("failure_rate", "rejoin_rate", "failures"):
      c.pop(key)
  if settings.get("quorum") is None:
    settings.pop("quorum", None)
  h.update(json.dumps(dict(clock=c, **settings), sort_keys=True).encode())
  h.update(tick_time.tobytes())
  return h.hexdigest()[:16]


def make_schedule(
  clock: ClockConfig,
  *,
  scheme: str = "buffered",
  buffer_size: int = 1,
  local_steps: int = 1,
  num_steps: int = 100,
  dynamic_local_steps_on: bool = False,
  ties: str = "batch",
  deadline: Optional[float] = None,
  quorum: Optional[tuple] = None,
) -> Schedule:
  """Simulates the clock for ``num_steps`` server steps and returns the :class:`Schedule`.

  Args:
    clock: the runtime model.
    scheme: ``'buffered'`` (scheme A: a step after every ``buffer_size`` = K arrivals),
      ``'async'`` (scheme B, K = 1), ``'sync'`` (wait for all N every round), ``'drop'``
      (rounds close after the fastest K; the rest are discarded), ``'deadline'`` (rounds close
      ``deadline`` seconds after they start, keeping at least the fastest worker),
      ``'quorum'`` (a step once Q = ``quorum[0]`` arrivals are in and the adaptive grace
      window has passed, or once K = ``buffer_size`` are in).
    buffer_size: K.
    local_steps: z (or H, the most local steps, with ``dynamic_local_steps_on``).
    num_steps: T, server steps to simulate.
    dynamic_local_steps_on: worker w runs ``H_w = floor(v_w / max v * H)`` steps.
    ties: ``'batch'`` or ``'sequential'`` handling of simultaneous events.
    deadline: seconds per round for ``scheme='deadline'``.
    quorum: ``(Q, grace_k, grace_window)`` for ``scheme='quorum'`` (a step once Q updates
      are in and the adaptive grace window has passed, or once K are in; :mod:`.membership`).
  """
  n = clock.num_workers
  buffer_size = _check_schedule_args(
    clock, scheme, buffer_size, local_steps, num_steps, ties, deadline
  )
  s = clock.step_time_per_worker()
  h_w = (
    dynamic_local_steps(s, local_steps)
    if dynamic_local_steps_on
    else np.full(n, local_steps, np.int64)
  )
  if scheme == "quorum":
    _check_quorum(quorum, buffer_size)
    quorum = tuple(quorum)
  else:
    quorum = None
  log = _JobLog(clock, s, h_w)
  if scheme in ("buffered", "async", "quorum"):
    ticks = _buffered_ticks(log, buffer_size, num_steps, ties, quorum)
  else:
    ticks = _round_ticks(log, scheme, buffer_size, num_steps, deadline)
  jobs = log.jobs
  _mark_consumed(jobs, ticks, n)
  computed, num_slots = _allocate_slots(jobs)
  width = {"buffered": buffer_size, "async": 1, "drop": buffer_size, "quorum": buffer_size}
  width = width.get(scheme, n)
  arr = _arrival_arrays(jobs, ticks, width, n, num_steps, num_slots)
  tick_time = np.asarray([t for t, _ in ticks], np.float64)
  wave0, waves = _make_waves(jobs, computed, n, num_slots, num_steps)
  fingerprint = _fingerprint(
    clock,
    tick_time,
    scheme=scheme,
    k=int(buffer_size),
    z=int(local_steps),
    t=int(num_steps),
    dyn=bool(dynamic_local_steps_on),
    ties=ties,
    deadline=deadline,
    quorum=quorum,
  )
  return Schedule(
    scheme=scheme,
    num_workers=n,
    num_steps=int(num_steps),
    arrivals_per_step=width,
    max_local_steps=int(h_w.max()),
    step_times=s,
    local_steps=h_w,
    tick_time=tick_time,
    arr=arr,
    wave0=wave0,
    waves=waves,
    num_slots=num_slots,
    max_staleness=_max_staleness(arr, num_steps),
    jobs=jobs,
    fingerprint=fingerprint,
  )
