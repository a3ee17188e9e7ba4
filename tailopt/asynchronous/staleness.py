r"""Delay-aware learning rates :math:`s(\tau)` and their reduction over a buffer.

The outer step is :math:`\eta_t \cdot s(\tau)` with one of these families (spec ``async.md``,
"Delay-aware learning rate"):

==============  =====================================================================  =========================
family          :math:`s(\tau)`                                                         from
==============  =====================================================================  =========================
``constant``    :math:`1`                                                               --
``polynomial``  :math:`(1 + \tau)^{-a}` (``a = 0.5`` typical)                           FedAsync, FedBuff
``hinge``       :math:`1` if :math:`\tau \le b` else :math:`1 / (a(\tau - b) + 1)`      FedAsync
``inverse``     :math:`1 / \max(1, \tau)`                                               --
``threshold``   :math:`\min(1, \tau_C / \tau)`, :math:`\tau_C` = concurrency (N)        Koloskova et al. 2022
``drop``        :math:`1` if :math:`\tau \le \tau_{max}` else :math:`0`                 --
==============  =====================================================================  =========================

References: Xie, Koyejo & Gupta, "Asynchronous Federated Optimization" (FedAsync), 2019;
Nguyen et al., "Federated Learning with Buffered Asynchronous Aggregation" (FedBuff),
AISTATS 2022; Koloskova, Stich & Jaggi, "Sharper Convergence Guarantees for Asynchronous SGD
for Distributed and Federated Learning", NeurIPS 2022.

Every family gives :math:`s(0) = 1`. The buffered scheme reduces the buffer's staleness by
``'max'`` (:math:`s(\max_k \tau_k)`, default, our decision: the most conservative),
``'mean'`` (:math:`s(\bar\tau)`) or ``'weights'`` (each :math:`\Delta_k` weighted by
:math:`s(\tau_k)` before the mean, FedBuff's form). Default parameters (``a = 0.5`` for
polynomial; ``a = 10, b = 4`` for hinge; ``tau_max = 2N`` for drop) are our decisions.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax.numpy as jnp

FAMILIES = ("constant", "polynomial", "hinge", "inverse", "threshold", "drop")
REDUCTIONS = ("max", "mean", "weights")


@dataclasses.dataclass(frozen=True)
class RateConfig:
  """A delay-aware rate family and its parameters.

  Attributes:
    family: one of :data:`FAMILIES`.
    a: exponent of ``polynomial`` (default 0.5) or slope of ``hinge`` (default 10).
    b: ``hinge`` knee (default 4).
    tau_c: ``threshold`` concurrency (default: number of workers N).
    tau_max: ``drop`` cut-off (default 2N).
  """

  family: str = "constant"
  a: Optional[float] = None
  b: Optional[float] = None
  tau_c: Optional[float] = None
  tau_max: Optional[float] = None

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(
        f"Unknown delay-aware rate family {self.family!r}; choose one of {FAMILIES}."
      )
    for name in ("a", "b", "tau_c", "tau_max"):
      v = getattr(self, name)
      if v is not None and (v != v or v < 0):
        raise ValueError(f"RateConfig.{name}={v} must be a number >= 0.")

  def resolved(self, num_workers: int) -> "RateConfig":
    """Fills defaults that depend on the family or on N."""
    a = self.a if self.a is not None else {"polynomial": 0.5, "hinge": 10.0}.get(self.family, 0.0)
    b = self.b if self.b is not None else (4.0 if self.family == "hinge" else 0.0)
    tau_c = self.tau_c if self.tau_c is not None else float(num_workers)
    tau_max = self.tau_max if self.tau_max is not None else float(2 * num_workers)
    return dataclasses.replace(
      self, a=float(a), b=float(b), tau_c=float(tau_c), tau_max=float(tau_max)
    )


def staleness_scale(cfg: RateConfig, tau, num_workers: int = 1) -> jnp.ndarray:
  """:math:`s(\\tau)` elementwise (float32); ``tau`` may be a float (mean reduction)."""
  c = cfg.resolved(num_workers)
  t = jnp.maximum(jnp.asarray(tau, jnp.float32), 0.0)
  if c.family == "constant":
    return jnp.ones_like(t)
  if c.family == "polynomial":
    return (1.0 + t) ** (-c.a)
  if c.family == "hinge":
    return jnp.where(t <= c.b, 1.0, 1.0 / (c.a * (t - c.b) + 1.0))
  if c.family == "inverse":
    return 1.0 / jnp.maximum(1.0, t)
  if c.family == "threshold":
    return jnp.where(t <= 0, 1.0, jnp.minimum(1.0, c.tau_c / jnp.where(t > 0, t, 1.0)))
  if c.family == "drop":
    return jnp.where(t <= c.tau_max, 1.0, 0.0)
  raise AssertionError(c.family)


def reduce_staleness(
  cfg: RateConfig, reduction: str, taus, valid, num_workers: int = 1
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Per-update weights ``w_k`` and the step scale ``s`` for a buffer.

  Returns ``(w, scale)``: with ``'weights'`` reduction ``w_k = s(tau_k)`` (masked) and
  ``scale = 1``; with ``'max'``/``'mean'`` ``w_k = 1`` (masked) and ``scale = s(max tau)``
  or ``s(mean tau)`` over the valid entries.
  """
  if reduction not in REDUCTIONS:
    raise ValueError(f"Unknown staleness reduction {reduction!r}; choose one of {REDUCTIONS}.")
  valid = jnp.asarray(valid).astype(bool)
  taus = jnp.asarray(taus, jnp.float32)
  ones = valid.astype(jnp.float32)
  if reduction == "weights":
    return ones * staleness_scale(cfg, taus, num_workers), jnp.ones([], jnp.float32)
  if reduction == "max":
    t = jnp.max(jnp.where(valid, taus, 0.0))
  else:
    t = jnp.sum(jnp.where(valid, taus, 0.0)) / jnp.maximum(jnp.sum(ones), 1.0)
  return ones, staleness_scale(cfg, t, num_workers)
