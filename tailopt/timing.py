r"""One simulated clock for synchronous and asynchronous runs: compute, network and server.

The model (our decision; it *simulates* communication from byte counts, it measures nothing):

* **Compute.** Client :math:`i`'s local phase of round (job) :math:`r` takes
  :math:`c_{i,r} = z \, s_i \, \xi_{i,r} + c_0` seconds: :math:`s_i` its seconds per local step,
  :math:`\xi_{i,r}` per-job noise and :math:`c_0` a fixed latency, all from the asynchronous
  clock's :class:`~tailopt.asynchronous.ClockConfig` (fixed, log-normal or straggler speeds;
  none, exponential or log-normal noise), drawn from the same per-worker streams, so a
  synchronous run and an asynchronous run with one ``ClockConfig`` see the same jobs. Or
  :math:`z s_i \xi_{i,r}` is *replayed* from measured seconds (``ClockConfig.job_times``;
  :func:`load_replay` reads a CSV of ``worker,job,seconds``, :func:`replayed` sets them; a
  worker's jobs are cycled past the last one measured), in both engines.
* **Network** (:class:`NetworkConfig`). Sending :math:`B` bytes over a link of :math:`b` Gb/s
  with one-way latency :math:`\ell` takes :math:`\ell + 8B / (b \cdot 10^9)` seconds. Uplink
  and downlink bandwidth (and latency) may differ per client; bandwidth 0 means a free link.
* **Server.** One outer step takes ``server_step_s`` seconds.

A synchronous round (:class:`SyncClock`) of participants :math:`P` with :math:`B_\uparrow`
bytes sent per node (the compressed payload, the streamed fragment: the round's
``bytes_up``) and :math:`B_\downarrow` received (``bytes_down``) lasts

.. math::

    T_r = \max_{i \in P} \big(c_{i,r} + \ell^\uparrow_i + 8B_\uparrow / b^\uparrow_i\big)
      + t_\text{server} + \max_{i \in P} \big(\ell^\downarrow_i + 8B_\downarrow / b^\downarrow_i\big)

(the server waits for the last upload, steps, then broadcasts). An asynchronous job adds its
pull and push, :func:`job_comm_seconds`, to the clock's latency :math:`c_0`.

With overlapped streaming (``delay``) a client starts its next round at once and waits at
its :math:`\tau`-th step only for an average that has not arrived (:class:`SyncClock`).

Limits: links are independent (no shared bottleneck, no congestion, no all-reduce
topology); bandwidth is constant over time; without ``delay`` a client's computation and
communication do not overlap; the host's real speed plays no part.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from typing import Optional, Union

import numpy as np

from tailopt.asynchronous.clock import ClockConfig

Number = Union[int, float]


def _per_client(value, n: int, name: str) -> np.ndarray:
  """A scalar or one value per client as a float64 array of shape (n,)."""
  if isinstance(value, (tuple, list, np.ndarray)):
    arr = np.asarray(value, np.float64)
    if arr.shape != (n,):
      raise ValueError(
        f"NetworkConfig.{name} has {arr.size} entries for {n} clients; give one per client "
        "or a single number."
      )
    return arr
  return np.full(n, float(value), np.float64)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  """The links between the clients and the server.

  Attributes:
    bandwidth_gbps: Gb/s of every link, both directions; 0 = free (no transfer time).
    uplink_gbps, downlink_gbps: per direction, a number or one per client (None =
      ``bandwidth_gbps``; 0 = free).
    latency_ms: one-way latency of every message, a number or one per client.
    server_step_s: seconds of one outer (server) step.
  """

  bandwidth_gbps: Number = 0.0
  uplink_gbps: Optional[Union[Number, tuple]] = None
  downlink_gbps: Optional[Union[Number, tuple]] = None
  latency_ms: Union[Number, tuple] = 0.0
  server_step_s: Number = 0.0

  def __post_init__(self):
    for name in ("uplink_gbps", "downlink_gbps", "latency_ms"):
      v = getattr(self, name)
      if isinstance(v, (list, np.ndarray)):
        object.__setattr__(self, name, tuple(float(x) for x in v))
    for name in ("bandwidth_gbps", "uplink_gbps", "downlink_gbps", "latency_ms", "server_step_s"):
      v = getattr(self, name)
      vals = v if isinstance(v, tuple) else () if v is None else (v,)
      if any(not math.isfinite(float(x)) or float(x) < 0 for x in vals):
        raise ValueError(f"NetworkConfig.{name}={v!r} must be finite and >= 0.")

  def seconds_per_byte(self, direction: str, n: int) -> np.ndarray:
    """``8 / (b * 1e9)`` per client (0 for a free link), ``direction`` 'up' or 'down'."""
    own = self.uplink_gbps if direction == "up" else self.downlink_gbps
    name = "uplink_gbps" if direction == "up" else "downlink_gbps"
    gbps = _per_client(self.bandwidth_gbps if own is None else own, n, name)
    with np.errstate(divide="ignore"):
      return np.where(gbps > 0, 8.0 / (gbps * 1e9), 0.0)

  def transfer_seconds(self, nbytes: float, direction: str, n: int) -> np.ndarray:
    """Seconds for each of ``n`` clients to send (``'up'``) or receive (``'down'``)
    ``nbytes`` bytes: latency plus bytes over bandwidth."""
    lat = _per_client(self.latency_ms, n, "latency_ms") / 1e3
    return lat + float(nbytes) * self.seconds_per_byte(direction, n)


def job_comm_seconds(network: NetworkConfig, bytes_up: float, bytes_down: float) -> float:
  """The pull (``bytes_down``) plus the push (``bytes_up``) of one asynchronous job, for a
  network whose links are all alike (the async clock has one latency for all workers)."""
  up = network.transfer_seconds(bytes_up, "up", 1)[0]
  down = network.transfer_seconds(bytes_down, "down", 1)[0]
  return float(up + down)


def uniform_links(network: NetworkConfig) -> bool:
  """Whether every client has the same links (what the asynchronous clock can model)."""
  return not any(
    isinstance(v, tuple) and len(set(v)) > 1
    for v in (network.uplink_gbps, network.downlink_gbps, network.latency_ms)
  )


def load_replay(path: str) -> dict:
  """Measured compute seconds from a CSV with the header ``worker,job,seconds``: worker
  ``w``'s ``job``-th local phase took ``seconds``. Returns ``{worker: seconds in job
  order}``; raises ValueError (one line naming the file and the fix) on a bad file."""
  if not os.path.isfile(path):
    raise ValueError(f"replay file {path!r} does not exist; give a CSV of worker,job,seconds.")
  rows: dict = {}
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    if reader.fieldnames is None or not {"worker", "job", "seconds"} <= set(reader.fieldnames):
      raise ValueError(
        f"replay file {path}: header {reader.fieldnames} must name worker, job and seconds."
      )
    for line, row in enumerate(reader, start=2):
      try:
        w, j, s = int(row["worker"]), int(row["job"]), float(row["seconds"])
      except (TypeError, ValueError):
        raise ValueError(
          f"replay file {path}, line {line}: worker and job must be integers and seconds a "
          f"number; got {dict(row)}."
        ) from None
      if w < 0 or j < 0 or not math.isfinite(s) or s < 0:
        raise ValueError(
          f"replay file {path}, line {line}: needs worker >= 0, job >= 0 and finite "
          f"seconds >= 0; got {dict(row)}."
        )
      rows.setdefault(w, {})[j] = s
  return {w: np.asarray([jobs[j] for j in sorted(jobs)], np.float64) for w, jobs in rows.items()}


def _noise(clock: ClockConfig, rng: np.random.Generator, n: int) -> np.ndarray:
  """``n`` draws of the per-job noise xi from one worker's stream (as the async clock)."""
  if clock.job_noise == "none":
    return np.ones(n)
  if clock.job_noise == "exponential":
    return np.asarray([rng.exponential(1.0) for _ in range(n)])
  return np.exp(clock.noise_sigma * np.asarray([rng.standard_normal() for _ in range(n)]))


def compute_seconds(clock: ClockConfig, local_steps: int, rounds: int) -> np.ndarray:
  r"""``(rounds, N)``: :math:`c_{i,r}`, the seconds of worker i's r-th local phase of
  ``local_steps`` steps: :math:`z s_i \xi_{i,r} + c_0` from ``clock`` (worker i's noise from
  the stream ``default_rng([seed, 1, i])``, as :func:`tailopt.asynchronous.make_schedule`),
  or the clock's replayed ``job_times`` (cycled) + :math:`c_0`."""
  n = clock.num_workers
  out = np.empty((rounds, n), np.float64)
  if clock.job_times is not None:
    for w in range(n):
      out[:, w] = np.resize(np.asarray(clock.job_times[w], np.float64), rounds)
    return out + clock.comm_latency
  s = clock.step_time_per_worker()
  for w in range(n):
    xi = _noise(clock, np.random.default_rng([clock.seed, 1, w]), rounds)
    out[:, w] = local_steps * s[w] * xi + clock.comm_latency
  return out


def replayed(clock: ClockConfig, replay: dict) -> ClockConfig:
  """``clock`` with the measured seconds of :func:`load_replay` as its ``job_times``
  (ValueError naming the workers without any)."""
  n = clock.num_workers
  missing = [w for w in range(n) if w not in replay or not len(replay[w])]
  if missing:
    raise ValueError(
      f"the replay has no measured jobs for workers {missing}; give at least one row "
      f"for each of the {n} workers."
    )
  return dataclasses.replace(clock, job_times=tuple(tuple(replay[w]) for w in range(n)))


class SyncClock:
  """Durations of synchronous rounds (module doc): precomputed compute seconds for
  ``rounds`` rounds of ``clock.num_workers`` clients, and the network.

  ``delay`` (overlapped streaming, :mod:`tailopt.overlap`): a client does not wait for the
  round's broadcast before it starts the next round; it runs ``delay`` of its ``z`` steps,
  waits there only if the average :math:`A_i` has not reached it yet, then runs the rest:
  :math:`E_i \leftarrow \max(E_i + c_{i,r}\,\tau/z,\ A_i) + c_{i,r}(z - \tau)/z`, and
  :math:`A_i = \max_j (E_j + \text{up}_j) + t_\text{server} + \text{down}_i`. The time of
  a round is when its average has reached every client, :math:`\max_i A_i`. The per-client
  times are the clock's state (:meth:`state`, kept in checkpoints).
  """

  def __init__(
    self,
    clock: ClockConfig,
    network: NetworkConfig,
    local_steps: int,
    rounds: int,
    delay: Optional[int] = None,
  ):
    self.clock, self.network = clock, network
    self.local_steps, self.delay = int(local_steps), delay
    if delay is not None and not 0 <= delay <= local_steps:
      raise ValueError(f"SyncClock: delay={delay} must be in [0, local_steps={local_steps}].")
    self.compute = compute_seconds(clock, local_steps, rounds)
    n = clock.num_workers
    self._up = (network.transfer_seconds(0.0, "up", n), network.seconds_per_byte("up", n))
    self._down = (network.transfer_seconds(0.0, "down", n), network.seconds_per_byte("down", n))
    self._ends = self._arrive = None  # per client, overlapped streaming only

  def round_seconds(self, r: int, bytes_up: float, bytes_down: float, active=None) -> float:
    """:math:`T_r` of round ``r`` (0-based) with ``active`` (a boolean mask of the clients
    taking part; None = all) sending ``bytes_up`` and receiving ``bytes_down`` each."""
    lat_up, spb_up = self._up
    lat_down, spb_down = self._down
    mask = self._mask(active)
    if not mask.any():
      return float(self.network.server_step_s)
    arrive = self.compute[r] + lat_up + float(bytes_up) * spb_up
    down = lat_down + float(bytes_down) * spb_down
    return float(arrive[mask].max() + self.network.server_step_s + down[mask].max())

  def _mask(self, active) -> np.ndarray:
    n = self.clock.num_workers
    return np.ones(n, bool) if active is None else np.asarray(active, bool)

  def times(self, start: int, start_time: float, bytes_up, bytes_down, active=None) -> np.ndarray:
    """The simulated time at the end of rounds ``start .. start + n - 1`` (n = the length
    of ``bytes_up``), from ``start_time`` at the end of round ``start - 1``; ``active``:
    ``(n, N)`` masks or None. With ``delay``, the clients' own times carry over calls."""
    t, out = float(start_time), []
    for i, (u, d) in enumerate(zip(bytes_up, bytes_down)):
      act = None if active is None else active[i]
      if self.delay is None:
        t += self.round_seconds(start + i, u, d, act)
      else:
        t = self._overlapped(start + i, t, u, d, self._mask(act))
      out.append(t)
    return np.asarray(out, np.float64)

  def _overlapped(self, r: int, now: float, bytes_up, bytes_down, mask) -> float:
    """One round of the overlapped recurrence (class doc); returns :math:`\max_i A_i`."""
    n = self.clock.num_workers
    if self._ends is None:  # the first round: every client starts now, nothing in flight
      self._ends, self._arrive = np.full(n, now), np.full(n, now)
    frac = self.delay / self.local_steps
    c = self.compute[r]
    ends = np.maximum(self._ends + c * frac, self._arrive) + c * (1.0 - frac)
    self._ends = np.where(mask, ends, self._ends)
    if not mask.any():
      return now
    lat_up, spb_up = self._up
    lat_down, spb_down = self._down
    sent = (self._ends + lat_up + float(bytes_up) * spb_up)[mask].max()
    self._arrive = sent + self.network.server_step_s + lat_down + float(bytes_down) * spb_down
    return float(self._arrive[mask].max())

  def state(self):
    """The clients' own times (overlapped streaming; None otherwise), JSON-able."""
    if self._ends is None:
      return None
    return {"ends": self._ends.tolist(), "arrive": self._arrive.tolist()}

  def load_state(self, state) -> None:
    """Restores :meth:`state` (None: a fresh clock)."""
    if state is None:
      self._ends = self._arrive = None
      return
    self._ends = np.asarray(state["ends"], np.float64)
    self._arrive = np.asarray(state["arrive"], np.float64)
