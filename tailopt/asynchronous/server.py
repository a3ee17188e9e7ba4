r"""The asynchronous server: configuration and one server step.

Schemes (spec ``async.md``, "The two communication schemes"; ``AsyncConfig.scheme``):

* ``'buffered'`` (scheme A, FedBuff-like): arriving :math:`\Delta`'s are buffered; after K of
  them the server applies one outer step to their (optionally weighted) mean.
* ``'async'`` (scheme B): K = 1, every arrival triggers an outer step.
* ``'sync'``: synchronous TailOPT on the same clock (round time = slowest worker).
* ``'drop'``: synchronous rounds that close after the fastest K; the rest are discarded.
* ``'deadline'``: synchronous rounds that close ``deadline`` seconds after they start.
* ``'quorum'``: asynchronous; a step once at least Q = ``min_quorum`` updates are in and the
  adaptive grace window (median + ``grace_k`` MAD of recent arrival delays) has passed, or
  once K = ``buffer_size`` (the cap, default N) are in (:mod:`.membership`).

After pushing, a worker pulls the newest model and starts its next job at once. One server
step (tick ``t``, consuming the buffer :math:`\{(\Delta_k, v_k)\}_{k<K}`, model :math:`x_t`):

.. math::

    \tau_k &= t - v_k \\
    \Delta_k &\leftarrow \Delta_k + (x_t - x_{v_k})
        \quad\text{(only with pseudo\_gradient='model\_diff', FedAsync: } x_t - x_\text{local})\\
    \Delta_k &\leftarrow \Delta_k + \lambda\,\Delta_k\odot\Delta_k\odot(x_t - x_{v_k})
        \quad\text{(delay compensation, optional)}\\
    \bar\Delta &= \textstyle\sum_k w_k \Delta_k / Z \qquad (Z = K \text{ or } \textstyle\sum_k w_k)\\
    u, S &\leftarrow \mathrm{outer}(\bar\Delta, S) \qquad x_{t+1} = x_t + s\,u

with :math:`w_k = s(\tau_k)` and :math:`s = 1` for the ``'weights'`` reduction (FedBuff), and
:math:`w_k = 1`, :math:`s = s(\max_k\tau_k)` or :math:`s(\bar\tau)` otherwise. Sample-weighted
merging (``merge='steps'`` or ``'dataset'``) multiplies :math:`w_k` by the examples behind
update k, :math:`n_k` (its job's local steps, or its worker's dataset size), and
:math:`Z = \sum_k n_k` (or :math:`\sum_k w_k n_k` with ``weight_normalization='sum'``). The scale
:math:`s` multiplies the outer update *after* the outer rule (and its clipping) by default,
never :math:`\Delta` before it, because BiClip's lower threshold would push down-weighted
coordinates back up to :math:`\tilde d`; ``scale_order='before_outer'`` multiplies
:math:`\bar\Delta` instead so the difference can be measured [our decision, spec]. A step
whose scale or weights are all zero (``drop`` rate) leaves the model and outer state
unchanged but still counts as a server version [our decision].

Any tailopt method plugs in: its inner transform runs the local jobs, its outer transform
(or an override such as :func:`.baselines.delayed_nesterov`) the server step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax

from tailopt import clipping
from tailopt.asynchronous import clock as clock_lib
from tailopt.asynchronous import compensation as comp_lib
from tailopt.asynchronous import staleness as stale_lib

SCALE_ORDERS = ("after_outer", "before_outer")
NORMALIZATIONS = ("count", "sum")
MERGES = ("uniform", "steps", "dataset")
PSEUDO_GRADIENTS = ("delta", "model_diff")


@dataclasses.dataclass(frozen=True)
class AsyncConfig:
  """Everything about the asynchronous protocol except the clock and the method.

  Defaults are our decisions (spec ``async.md``) unless noted.

  Attributes:
    scheme: ``'buffered'`` (A), ``'async'`` (B), ``'sync'``, ``'drop'`` or ``'deadline'``
      (``'A'``/``'B'`` are accepted as aliases).
    buffer_size: K (``'buffered'`` and ``'drop'``); default ``max(1, N // 2)``.
    local_steps: z local steps per job (H, the most, with ``dynamic_local_steps``).
    dynamic_local_steps: worker w runs ``floor(v_w / max v * H)`` steps (Liu et al. 2024).
    ties: ``'batch'`` or ``'sequential'`` handling of simultaneous events (see clock).
    deadline: seconds per round for ``scheme='deadline'``.
    rate: the delay-aware rate :class:`RateConfig` (default constant).
    reduction: buffer staleness reduction ``'max'`` (default), ``'mean'``, ``'weights'``.
    scale_order: ``'after_outer'`` (default) or ``'before_outer'``.
    weight_normalization: ``'count'`` (divide by the number of updates, FedBuff; default)
      or ``'sum'`` (by the sum of weights), for ``reduction='weights'``.
    compensation: :class:`CompensationConfig` (default none).
    pseudo_gradient: ``'delta'`` (default) or ``'model_diff'`` (x_now - x_local, which with
      outer SGD(alpha) is FedAsync's mixing x <- (1 - alpha) x + alpha x_local).
    snapshots: ``'auto'``, ``'ring'`` or ``'per_job'`` store of pulled models.
    reset_inner_state: fresh inner optimizer state every job (default: kept per worker).
    min_quorum: Q of ``scheme='quorum'`` (default 1).
    grace_k: k of the grace window median + k MAD (default 3).
    grace_window: how many recent arrivals the window is measured over (0: N).
    merge: ``'uniform'`` (default), ``'steps'`` (each update weighted by its job's local
      steps: the examples it saw at a fixed batch) or ``'dataset'`` (by its worker's
      dataset size, ``worker_samples``).
    worker_samples: per-worker example counts for ``merge='dataset'``.
  """

  scheme: str = "buffered"
  buffer_size: Optional[int] = None
  local_steps: int = 1
  dynamic_local_steps: bool = False
  ties: str = "batch"
  deadline: Optional[float] = None
  rate: stale_lib.RateConfig = stale_lib.RateConfig()
  reduction: str = "max"
  scale_order: str = "after_outer"
  weight_normalization: str = "count"
  compensation: comp_lib.CompensationConfig = comp_lib.CompensationConfig()
  pseudo_gradient: str = "delta"
  snapshots: str = "auto"
  reset_inner_state: bool = False
  min_quorum: int = 1
  grace_k: float = 3.0
  grace_window: int = 0
  merge: str = "uniform"
  worker_samples: Optional[tuple] = None

  def __post_init__(self):
    if isinstance(self.rate, dict):
      object.__setattr__(self, "rate", stale_lib.RateConfig(**self.rate))
    if isinstance(self.compensation, dict):
      object.__setattr__(self, "compensation", comp_lib.CompensationConfig(**self.compensation))
    alias = {"a": "buffered", "b": "async"}.get(str(self.scheme).lower())
    if alias:
      object.__setattr__(self, "scheme", alias)
    if self.scheme not in clock_lib.SCHEMES:
      raise ValueError(
        f"Unknown scheme {self.scheme!r}; choose one of {clock_lib.SCHEMES}"
        " ('buffered' = scheme A, 'async' = scheme B)."
      )
    if self.reduction not in stale_lib.REDUCTIONS:
      raise ValueError(
        f"Unknown reduction {self.reduction!r}; choose one of {stale_lib.REDUCTIONS}."
      )
    if self.scale_order not in SCALE_ORDERS:
      raise ValueError(f"Unknown scale_order {self.scale_order!r}; choose one of {SCALE_ORDERS}.")
    if self.weight_normalization not in NORMALIZATIONS:
      raise ValueError(
        f"Unknown weight_normalization {self.weight_normalization!r}; "
        f"choose one of {NORMALIZATIONS}."
      )
    if self.pseudo_gradient not in PSEUDO_GRADIENTS:
      raise ValueError(
        f"Unknown pseudo_gradient {self.pseudo_gradient!r}; choose one of {PSEUDO_GRADIENTS}."
      )
    if self.snapshots not in comp_lib.SNAPSHOTS:
      raise ValueError(f"Unknown snapshots {self.snapshots!r}; choose one of {comp_lib.SNAPSHOTS}.")
    if self.ties not in clock_lib.TIES:
      raise ValueError(f"Unknown ties {self.ties!r}; choose one of {clock_lib.TIES}.")
    if not isinstance(self.local_steps, int) or self.local_steps < 1:
      raise ValueError(f"local_steps must be an integer >= 1, got {self.local_steps!r}.")
    if self.buffer_size is not None and (
      not isinstance(self.buffer_size, int) or self.buffer_size < 1
    ):
      raise ValueError(f"buffer_size K must be an integer >= 1, got {self.buffer_size!r}.")
    self._validate_membership()

  def _validate_membership(self):
    if self.worker_samples is not None:
      object.__setattr__(self, "worker_samples", tuple(float(x) for x in self.worker_samples))
    if self.merge not in MERGES:
      raise ValueError(f"Unknown merge {self.merge!r}; choose one of {MERGES}.")
    if self.merge == "dataset" and not self.worker_samples:
      raise ValueError("merge='dataset' needs worker_samples (each worker's example count).")
    if self.worker_samples is not None and min(self.worker_samples, default=1) <= 0:
      raise ValueError("worker_samples must all be > 0 (examples per worker).")
    if not isinstance(self.min_quorum, int) or self.min_quorum < 1:
      raise ValueError(f"min_quorum Q must be an integer >= 1, got {self.min_quorum!r}.")
    if not self.grace_k >= 0:
      raise ValueError(f"grace_k={self.grace_k!r} must be >= 0 (median + grace_k * MAD).")
    if not isinstance(self.grace_window, int) or self.grace_window < 0:
      raise ValueError(f"grace_window={self.grace_window!r} must be an integer >= 0 (0: N).")

  def k_for(self, num_workers: int) -> int:
    """The buffer size K this config uses with N workers (validated)."""
    if self.scheme == "async":
      return 1
    if self.scheme in ("sync", "deadline"):
      return num_workers
    default = num_workers if self.scheme == "quorum" else max(1, num_workers // 2)
    k = self.buffer_size if self.buffer_size is not None else default
    if k > num_workers:
      raise ValueError(
        f"buffer_size K={k} > num_workers N={num_workers}: the server would "
        "wait forever. Use 1 <= K <= N."
      )
    if self.scheme == "quorum" and self.min_quorum > k:
      raise ValueError(f"min_quorum Q={self.min_quorum} > buffer_size K={k}; use 1 <= Q <= K.")
    if self.merge == "dataset" and len(self.worker_samples) != num_workers:
      raise ValueError(
        f"worker_samples has {len(self.worker_samples)} entries for N={num_workers} "
        "workers; give one per worker."
      )
    return k

  def quorum_for(self, num_workers: int):
    """``(Q, grace_k, grace_window)`` for :func:`.clock.make_schedule` (None unless
    ``scheme='quorum'``)."""
    if self.scheme != "quorum":
      return None
    return (self.min_quorum, float(self.grace_k), self.grace_window or num_workers)

  @property
  def needs_snapshots(self) -> bool:
    return self.compensation.enabled or self.pseudo_gradient == "model_diff"

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "AsyncConfig":
    return cls(**d)


def init_comp_state(cfg: AsyncConfig, params):
  """The mean square of DC-ASGD-a (zeros like params) or None."""
  if cfg.compensation.kind == "adaptive":
    return jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
  return None


def _clip_each(clip: optax.GradientTransformation, deltas, tick):
  """Clips every buffered Delta_k (leading axis) with a stateless clipping transform
  (e.g. the method's ``outer_clip``), its schedules at round ``tick``."""
  clip = optax.with_extra_args_support(clip)

  def one(tree):
    return clip.update(tree, clip.init(tree), None, round_index=tick)[0]

  return jax.vmap(one)(deltas)


def _mask_padding(deltas, diffs, valid):
  """Zeroes the padding entries (``valid`` false) of the buffered Deltas and model
  differences, so that nothing non-finite in an unused slot can leak in."""
  vmask = lambda x: valid.reshape((-1,) + (1,) * (x.ndim - 1))  # noqa: E731
  deltas = jax.tree.map(lambda d: jnp.where(vmask(d), d, jnp.zeros_like(d)), deltas)
  if diffs is not None:
    diffs = jax.tree.map(lambda d: jnp.where(vmask(d), d, jnp.zeros_like(d)), diffs)
  return deltas, diffs


def _pseudo_gradients(cfg: AsyncConfig, deltas, diffs):
  """The pseudo-gradient of each update: Delta, or with ``pseudo_gradient='model_diff'``
  ``x_now - x_local = Delta + (x_now - x_pulled)`` (FedAsync)."""
  if cfg.pseudo_gradient == "model_diff":
    return jax.tree.map(lambda d, x: d + x.astype(d.dtype), deltas, diffs)
  return deltas


def _adaptive_compensation(comp, comp_state, deltas, diffs, valid_f, n_valid):
  """DC-ASGD-a: updates the mean square with the buffer's mean of Delta_k^2 (valid entries)
  and compensates with ``lambda = lam0 / sqrt(MS + eps)``; returns ``(deltas, comp_state)``."""
  mask = lambda x: valid_f.reshape((-1,) + (1,) * (x.ndim - 1))  # noqa: E731
  sq_mean = jax.tree.map(
    lambda d: (
      jnp.sum(mask(d) * jnp.square(d.astype(jnp.float32)), axis=0) / jnp.maximum(n_valid, 1.0)
    ),
    deltas,
  )
  new_comp = comp_lib.update_mean_square(comp_state, sq_mean, comp.momentum)
  lam = jax.tree.map(lambda l: l[None], comp_lib.adaptive_lambda(new_comp, comp.lam0, comp.eps))
  deltas = jax.tree.map(lambda d, x, l: (d + l * d * d * x).astype(d.dtype), deltas, diffs, lam)
  return deltas, new_comp


def _compensate(cfg: AsyncConfig, outer_clip, comp_state, deltas, diffs, valid_f, n_valid, tick):
  """Delay compensation of the buffered Deltas (each clipped first with ``outer_clip`` for
  ``clip_then_compensate``), constant or adaptive; returns ``(deltas, comp_state)``,
  unchanged when compensation is off."""
  comp = cfg.compensation
  if not comp.enabled:
    return deltas, comp_state
  if comp.order == "clip_then_compensate" and outer_clip is not None:
    deltas = _clip_each(outer_clip, deltas, tick)
  if comp.kind == "adaptive":
    return _adaptive_compensation(comp, comp_state, deltas, diffs, valid_f, n_valid)
  return comp_lib.compensate(deltas, diffs, comp.lam), comp_state


def _weighted_mean(cfg: AsyncConfig, w, n_valid, deltas, params, samples=None):
  """The buffer's aggregate ``sum_k w_k n_k Delta_k / Z`` (Z = the number of valid updates
  or, with ``samples`` n_k, their sum; the sum of the weights w_k n_k with
  ``weight_normalization='sum'``), in the params' dtypes."""
  if samples is not None:  # zero for padding
    n_valid = jnp.sum(samples)
    w = w * samples
  if cfg.reduction == "weights" and cfg.weight_normalization == "sum":
    total = jnp.sum(w)
  else:
    total = n_valid
  safe_total = jnp.where(total > 0, total, 1.0)
  return jax.tree.map(
    lambda d, p: (jnp.tensordot(w, d.astype(jnp.float32), axes=1) / safe_total).astype(p.dtype),
    deltas,
    params,
  )


def _scaled_outer_step(cfg: AsyncConfig, outer, agg, scale, outer_state, params, tick):
  """The outer rule (with its clipping) on the aggregate, the delay-aware scale applied
  after it (default) or to the aggregate before it. Returns ``(agg, updates, outer_state)``
  with ``agg`` the aggregate as the outer rule saw it (scaled with ``'before_outer'``)."""
  if cfg.scale_order == "before_outer":
    agg = jax.tree.map(lambda a: a * scale.astype(a.dtype), agg)
  updates, new_outer = optax.with_extra_args_support(outer).update(
    agg, outer_state, params, round_index=tick
  )
  if cfg.scale_order == "after_outer":
    updates = jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)
  return agg, updates, new_outer


def _apply_or_skip(apply, params, updates, new_outer, outer_state, new_comp, comp_state):
  """Applies the updates; where ``apply`` is false (a zero scale or all-zero weights) the
  model, outer and compensation states stay as they were. Returns the three."""
  new_params = optax.apply_updates(params, updates)
  keep = lambda new, old: jax.tree.map(  # noqa: E731
    lambda a, b: jnp.where(apply, a, b), new, old
  )
  new_params = keep(new_params, params)
  new_outer = keep(new_outer, outer_state)
  new_comp = keep(new_comp, comp_state) if new_comp is not None else None
  return new_params, new_outer, new_comp


def _step_metrics(scale, apply, n_valid, w, agg, updates, new_outer, local_metrics, valid_f):
  """The server step's metrics: scale, applied, counts and norms, the outer state's
  measurements (``outer_*``) and the jobs' local metrics averaged over the valid updates."""
  metrics = dict(
    scale=scale,
    applied=apply.astype(jnp.float32),
    num_updates=n_valid,
    weight_sum=jnp.sum(w),
    delta_norm=clipping.global_norm(agg),
    update_norm=clipping.global_norm(updates) * apply.astype(jnp.float32),
  )
  metrics.update(clipping.measurements(new_outer, "outer_"))
  for name, v in (local_metrics or {}).items():
    metrics[name] = jnp.sum(valid_f * v) / jnp.maximum(n_valid, 1.0)
  return metrics


def server_update(
  cfg: AsyncConfig,
  outer: optax.GradientTransformation,
  outer_clip: Optional[optax.GradientTransformation],
  num_workers: int,
  params,
  outer_state,
  comp_state,
  deltas,
  diffs,
  taus,
  valid,
  tick,
  local_metrics: Optional[dict] = None,
  samples=None,
) -> tuple[optax.Params, optax.OptState, Any, dict]:
  """One server step over a buffer (pure JAX; see module doc).

  Args:
    deltas: pytree with a leading buffer axis A (the pushed Delta_k).
    diffs: x_now - x_pulled per update (leading axis A) or None.
    taus: (A,) int32 staleness; valid: (A,) mask; tick: server step index t.
    outer_clip: the stateless clipping transform applied to each Delta_k before
      compensation (``clip_then_compensate``), or None.
    local_metrics: optional ``{name: (A,)}`` metrics of the jobs (loss, nonfinite_frac,
      inner clip fractions...), averaged over the valid updates into the metrics.
    samples: optional ``(A,)`` examples behind each update (sample-weighted merging).

  Returns:
    ``(params, outer_state, comp_state, metrics)``.
  """
  valid = jnp.asarray(valid).astype(bool)
  valid_f = valid.astype(jnp.float32)
  n_valid = jnp.sum(valid_f)
  deltas, diffs = _mask_padding(deltas, diffs, valid)
  deltas = _pseudo_gradients(cfg, deltas, diffs)
  deltas, new_comp = _compensate(cfg, outer_clip, comp_state, deltas, diffs, valid_f, n_valid, tick)
  w, scale = stale_lib.reduce_staleness(cfg.rate, cfg.reduction, taus, valid, num_workers)
  if samples is not None:
    samples = jnp.where(valid, jnp.asarray(samples, jnp.float32), 0.0)
  agg = _weighted_mean(cfg, w, n_valid, deltas, params, samples)
  agg, updates, new_outer = _scaled_outer_step(cfg, outer, agg, scale, outer_state, params, tick)
  apply = (scale > 0) & (jnp.sum(w) > 0)
  new_params, new_outer, new_comp = _apply_or_skip(
    apply, params, updates, new_outer, outer_state, new_comp, comp_state
  )
  metrics = _step_metrics(scale, apply, n_valid, w, agg, updates, new_outer, local_metrics, valid_f)
  return new_params, new_outer, new_comp, metrics
