r"""Delay compensation of stale pseudo-gradients (DC-ASGD form) and its memory.

First-order correction of a stale :math:`\Delta` (computed at :math:`x_\text{pulled}`) toward
the current model, elementwise (Zheng et al., "Asynchronous Stochastic Gradient Descent with
Delay Compensation", ICML 2017):

.. math::

    \Delta \leftarrow \Delta + \lambda\, \Delta \odot \Delta \odot (x_\text{now} - x_\text{pulled})

with :math:`\lambda` constant, or adaptive (DC-ASGD-a)

.. math::

    MS \leftarrow m\, MS + (1 - m)\, \Delta^2, \qquad \lambda = \lambda_0 / \sqrt{MS + \epsilon}

elementwise (``m = 0.95``, ``lambda_0 = 2`` as in DC-ASGD-a). With a buffer of K updates the
mean square is updated once per server step with the buffer's mean of :math:`\Delta_k^2`
[our decision; with K = 1 it is DC-ASGD-a exactly].

Order [our decision, option ``order``]: heavy tails make :math:`\Delta\odot\Delta` explode on
outlier coordinates, so by default we compensate first and let the outer clip (e.g. Bi²Clip's
BiClip on the aggregate) act after (``'compensate_then_clip'``). ``'clip_then_compensate'``
clips each :math:`\Delta_k` with the method's outer clip thresholds before compensating (the
outer rule then runs as usual).

:math:`x_\text{now} - x_\text{pulled}` (the sum of the outer updates since the pull) needs the
pulled model. Two exact stores [option ``snapshots``]: ``'ring'``, a ring buffer of the last
``max_tau + 1`` model versions (``(max_tau + 1) P``), or ``'per_job'``, a snapshot per in-flight
job (``M P``, M ~ N); ``'auto'`` (default) takes the smaller. :func:`memory_report` gives the
bytes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

KINDS = ("none", "constant", "adaptive")
ORDERS = ("compensate_then_clip", "clip_then_compensate")
SNAPSHOTS = ("auto", "ring", "per_job")


@dataclasses.dataclass(frozen=True)
class CompensationConfig:
  """Delay compensation settings.

  Attributes:
    kind: ``'none'`` (default), ``'constant'`` (``lam``) or ``'adaptive'`` (DC-ASGD-a).
    lam: constant lambda (default 0.04, DC-ASGD-c's value for CIFAR; our default).
    lam0: adaptive lambda_0 (2.0, DC-ASGD-a).
    momentum: m of the mean square (0.95, DC-ASGD-a).
    eps: epsilon under the square root (1e-7).
    order: ``'compensate_then_clip'`` (default) or ``'clip_then_compensate'``.
  """

  kind: str = "none"
  lam: float = 0.04
  lam0: float = 2.0
  momentum: float = 0.95
  eps: float = 1e-7
  order: str = "compensate_then_clip"

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Unknown compensation kind {self.kind!r}; choose one of {KINDS}.")
    if self.order not in ORDERS:
      raise ValueError(f"Unknown compensation order {self.order!r}; choose one of {ORDERS}.")
    if not 0.0 <= self.momentum < 1.0:
      raise ValueError(f"CompensationConfig.momentum={self.momentum} must be in [0, 1).")
    if self.lam < 0 or self.lam0 < 0 or self.eps < 0:
      raise ValueError("CompensationConfig lam, lam0 and eps must be >= 0.")

  @property
  def enabled(self) -> bool:
    return self.kind != "none"


def compensate(delta, diff, lam) -> optax.Updates:
  r""":math:`\Delta + \lambda \Delta \odot \Delta \odot (x_\text{now} - x_\text{pulled})`.

  ``delta``, ``diff`` (= x_now - x_pulled) and ``lam`` (scalar or tree like ``delta``) are
  pytrees of the same structure (``lam`` may be a scalar).
  """
  if jax.tree.structure(lam) != jax.tree.structure(delta):  # a scalar lambda
    return jax.tree.map(lambda d, x: d + lam * d * d * x, delta, diff)
  return jax.tree.map(lambda d, x, l: d + l * d * d * x, delta, diff, lam)


def update_mean_square(ms, sq_mean, momentum: float) -> optax.Updates:
  """``MS <- m MS + (1 - m) mean_k Delta_k^2`` (tree-wise)."""
  return jax.tree.map(lambda a, b: momentum * a + (1.0 - momentum) * b, ms, sq_mean)


def adaptive_lambda(ms, lam0: float, eps: float) -> optax.Updates:
  """``lambda = lam0 / sqrt(MS + eps)`` elementwise."""
  return jax.tree.map(lambda a: lam0 / jnp.sqrt(a + eps), ms)


def tree_bytes(tree) -> int:
  return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, "dtype")))


def memory_report(
  param_bytes: int,
  *,
  num_slots: int,
  ring_size: int,
  snapshots: str,
  needs_snapshots: bool,
  adaptive: bool,
) -> dict:
  """Bytes the server needs for compensation (and FedAsync mixing).

  Returns a dict with ``snapshot_mode``, ``snapshot_bytes`` (ring or per-job snapshots,
  0 when no rule needs x_pulled), the alternative's bytes, and ``mean_square_bytes`` (1P for
  adaptive lambda).
  """
  ring = ring_size * param_bytes
  per_job = num_slots * param_bytes
  mode = resolve_snapshots(snapshots, num_slots, ring_size) if needs_snapshots else "none"
  used = {"ring": ring, "per_job": per_job, "none": 0}[mode]
  return dict(
    snapshot_mode=mode,
    snapshot_bytes=used,
    ring_bytes_if_used=ring,
    per_job_bytes_if_used=per_job,
    mean_square_bytes=param_bytes if adaptive else 0,
  )


def resolve_snapshots(snapshots: str, num_slots: int, ring_size: int) -> str:
  if snapshots not in SNAPSHOTS:
    raise ValueError(f"Unknown snapshots={snapshots!r}; choose one of {SNAPSHOTS}.")
  if snapshots != "auto":
    return snapshots
  return "ring" if ring_size <= num_slots else "per_job"
